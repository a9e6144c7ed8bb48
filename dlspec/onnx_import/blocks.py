"""Repeated structure written as blocks.

1. The layer sequence is cut after a layer whose output is the only live value and is read more than once (a
   fork, where residual and inception blocks begin): each piece, a *segment*, reads one value and hands one
   value on, as a block instance does.
2. A segment's *structure* is its layers' types and wiring; attribute values may differ. Consecutive segments of
   one structure form a run; within a run, instances after the first must agree on every attribute (the first may
   differ: `first_args`). A structure seen only once right before runs of another (a downsampling first block)
   becomes that run's `first` block, when it takes every parameter the run's block takes.
3. Attributes that differ between instances of one structure become block parameters, named
   `<local layer>_<attribute>` so that a `first` block and its successor share them.
4. Local names are the torch module names when instances are named `<stage>.<i>.<local>` (a torch.onnx export
   of torchvision), else `<kind><n>` (conv1, bn1, relu1, ...). The block layer is then `<stage>`, or `stage<k>`.
   Instances named `<prefix><i>.<local>` (torchvision's `encoder.layers.encoder_layer_0.ln_1`) become one block
   layer each, `<prefix><i>`, so that every name stays torchvision's.
5. Consecutive segments whose structures repeat with a period of 2 to 4 distinct structures seen nowhere else (a
   Transformer layer, cut at its first residual) are merged one period at a time before runs are found.
"""

from __future__ import annotations

import re

from ..spec.layers import LAYER_TYPES
from .write import comment, flow, layer_dict

KIND = {"conv1d": "conv", "conv2d": "conv", "batchnorm": "bn", "dense": "fc", "maxpool1d": "pool",
        "maxpool2d": "pool", "avgpool1d": "pool", "avgpool2d": "pool", "parameter": "param", "zero_pad": "pad"}


def _segments(layers, inputs: set, outputs: set):
    last, readers = {}, {}
    for k, layer in enumerate(layers):
        for i in layer.inputs:
            last[i] = k
            readers[i] = readers.get(i, 0) + 1
    for o in outputs:
        last[o] = len(layers)
    live = {v for v in inputs if last.get(v, -1) >= 0}
    segs, start, before = [], 0, (next(iter(live)) if len(live) == 1 else None)
    single = set()  # positions after which one value is live (cuts that are not forks)
    for k, layer in enumerate(layers):
        for i in set(layer.inputs):
            if last.get(i) == k:
                live.discard(i)
        if last.get(layer.output, -1) > k:
            live.add(layer.output)
        if live == {layer.output} and layer.output not in outputs:
            single.add(k)
        if live == {layer.output} and layer.output not in outputs and readers.get(layer.output, 0) >= 2:
            segs.append((start, k + 1, before))
            start, before = k + 1, layer.output
    if start < len(layers):
        segs.append((start, len(layers), before))
    return segs, single


def _structure(layers, a, b, x):
    local = {layers[j].output: j - a for j in range(a, b)}
    out = []
    for j in range(a, b):
        refs = tuple("x" if i == x else local.get(i, None) for i in layers[j].inputs)
        if None in refs:
            return None
        out.append((layers[j].type, refs))
    return tuple(out)


def _default(type_, key):
    field = LAYER_TYPES[type_].model_fields.get(key)
    from pydantic_core import PydanticUndefined

    return None if field is None or field.default is PydanticUndefined else field.default


def _values(layers, a, b, keys):
    """Attribute values of one instance, defaults filled in for keys other instances give."""
    return [{k: layers[j].attrs.get(k, _default(layers[j].type, k)) for k in keys[j - a]} for j in range(a, b)]


def _local_names(layers, insts, structure, index=None):
    """(stage name or None, local names): torch-style when every instance is <stage>.<i>.<local>, i its index
    in the block layer (``index``, default 0, 1, ...)."""
    stage, locals_ = None, None
    for n, (a, b, _) in zip(index or range(len(insts)), insts):
        names = [layers[j].name for j in range(a, b)]
        m = [re.fullmatch(r"(.+)\.(\d+)\.(.+)", name) for name in names]
        if not all(m) or len({x.group(1) for x in m}) != 1 or {int(x.group(2)) for x in m} != {n}:
            return None, _generated(layers, insts[0], structure)
        here = [x.group(3) for x in m]
        if stage not in (None, m[0].group(1)):
            return None, _generated(layers, insts[0], structure)
        stage = m[0].group(1)
        if locals_ is None:
            locals_ = here
    return stage, locals_


def _generated(layers, inst, structure):
    count, out = {}, []
    for j in range(inst[0], inst[1]):
        layer = layers[j]
        kind = layer.attrs.get("activation") if layer.type == "activation" else KIND.get(layer.type, layer.type)
        count[kind] = count.get(kind, 0) + 1
        out.append(f"{kind}{count[kind]}")
    return out


def find_blocks(layers, names, inputs: set, outputs: set):
    """(body lines, block definition lines or None). Renames the layers inside blocks (their weights follow)."""
    segs, single = _segments(layers, inputs, outputs)
    infos = []
    for a, b, x in segs:
        s = _structure(layers, a, b, x) if x is not None and b - a >= 2 else None
        infos.append((a, b, x, s))
    seen = _count(infos)
    # a segment whose structure does not repeat may begin with one that does (the last residual block before
    # the head): split it where one value is live
    split = []
    for a, b, x, s in infos:
        cut = next((c for c in range(a + 1, b - 1) if c in single and x is not None
                    and seen.get(_structure(layers, a, c + 1, x), 0) >= 2), None) if seen.get(s, 0) < 2 else None
        if cut is None:
            split.append((a, b, x, s))
            continue
        rest = layers[cut].output
        split += [(a, cut + 1, x, _structure(layers, a, cut + 1, x)),
                  (cut + 1, b, rest, _structure(layers, cut + 1, b, rest) if b - cut - 1 >= 2 else None)]
    infos = _periods(layers, split)
    seen = _count(infos)
    keys = {}
    for a, b, _, s in infos:  # the attribute keys of each structure: the union over its instances
        if s is not None and seen[s] >= 2:
            ks = keys.setdefault(s, [set() for _ in range(b - a)])
            for j in range(a, b):
                ks[j - a] |= set(layers[j].attrs)
    keys = {s: [sorted(k) for k in ks] for s, ks in keys.items()}
    params = {}
    for a, b, _, s in infos:
        if s in keys:
            params.setdefault(s, []).append(_values(layers, a, b, keys[s]))
    varying = {s: {(j, k) for j, ks in enumerate(keys[s]) for k in ks if len({repr(v[j][k]) for v in vals}) > 1}
               for s, vals in params.items()}
    # runs
    groups, k = [], 0
    while k < len(infos):
        a, b, x, s = infos[k]
        if s not in keys:
            groups.append(("plain", [infos[k]]))
            k += 1
            continue
        run = [infos[k]]
        k += 1
        while k < len(infos) and infos[k][3] == s and (len(run) == 1 or _args(layers, infos[k], s, keys, varying)
                                                      == _args(layers, run[-1], s, keys, varying)):
            run.append(infos[k])
            k += 1
        groups.append(("run", run))
    merged = []
    for kind, run in groups:
        prev = merged[-1] if merged else None
        if kind == "run" and prev and prev[0] == "run" and len(prev[1]) == 1 and prev[2] is None \
                and prev[1][0][3] != run[0][3] and _firsts(groups, prev[1][0][3]):
            d, shared = prev[1][0], _args(layers, run[-1], run[0][3], keys, varying)
            if _args(layers, run[0], run[0][3], keys, varying) == shared and \
                    set(shared) <= set(_args(layers, d, d[3], keys, varying)):
                merged[-1] = ("run", run, d)
                continue
        merged.append((kind, run, None) if kind == "run" else (kind, run, None))
    # render
    defs, def_names, body, previous, stage_no = {}, {}, [], None, 0
    for kind, run, first in merged:
        if kind == "plain":
            a, b, _, _ = run[0]
            for j in range(a, b):
                body.append(f"  - {flow(layer_dict(layers[j], previous, names))}{comment(layers[j].source)}")
                previous = layers[j].name
            continue
        insts = ([first] if first else []) + run
        structures = [i[3] for i in insts]
        stage, _ = _local_names(layers, [(a, b, x) for a, b, x, _ in insts], structures[0])
        locals_by_structure = {}
        for s in dict.fromkeys(structures):
            of_s = [(n, i) for n, i in enumerate(insts) if i[3] == s]
            _, loc = _local_names(layers, [(a, b, x) for _, (a, b, x, _) in of_s], s, [n for n, _ in of_s])
            locals_by_structure[s] = loc
        dotted = any("." in layers[j].name for a, b, _, _ in insts for j in range(a, b))
        prefix = _numbered(layers, insts) if stage is None and first is None and len(insts) > 1 else None
        if prefix is not None:  # <prefix><i>.<local> (torchvision's encoder_layer_0): one block layer each
            s = run[0][3]
            if s not in def_names:
                def_names[s] = _block_name(prefix[0], def_names)
                a, b, x, _ = insts[0]
                local = [layers[j].name[len(prefix[0]):].partition(".")[2] for j in range(a, b)]
                defs[s] = _definition(layers, a, b, x, s, keys, varying, local, names)
            for n, (a, b, x, _) in enumerate(insts):
                line = {"name": f"{prefix[0]}{prefix[1] + n}", "type": "block", "block": def_names[s]}
                inst_args = _args(layers, (a, b, x, s), s, keys, varying)
                if inst_args:
                    line["args"] = inst_args
                if previous != names[x]:
                    line["inputs"] = [names[x]]
                srcs = [layers[j].source for j in range(a, b)]
                body.append(f"  - {flow(line)}  # onnx: {sum(len(t) for t in srcs)} nodes, {srcs[0][0]} ... "
                            f"{srcs[-1][-1]}")
                names[layers[b - 1].output] = previous = line["name"]
            continue
        if dotted and (stage is None or len(insts) == 1):  # one instance is named <stage>, not <stage>.0
            for a, b, _, _ in insts:  # names with a module path that a block cannot reproduce are kept
                for j in range(a, b):
                    body.append(f"  - {flow(layer_dict(layers[j], previous, names))}{comment(layers[j].source)}")
                    previous = layers[j].name
            continue
        if stage is None:
            stage_no += 1
            stage = f"stage{stage_no}"
            while any(layer.name == stage or layer.name.startswith(stage + ".") for layer in layers):
                stage_no += 1
                stage = f"stage{stage_no}"
        for s in dict.fromkeys(structures):
            if s not in def_names:
                def_names[s] = f"block{len(def_names) + 1}"
                a, b, x, _ = next(i for i in insts if i[3] == s)
                defs[s] = _definition(layers, a, b, x, s, keys, varying, locals_by_structure[s], names)
        indexed = len(insts) > 1
        block_args = _args(layers, run[-1], run[0][3], keys, varying)
        line = {"name": stage, "type": "block", "block": def_names[run[0][3]], "repeat": len(insts)}
        if first:
            line["first"] = def_names[first[3]]
        if block_args:
            line["args"] = block_args
        first_inst = insts[0]
        first_all = _args(layers, first_inst, first_inst[3], keys, varying)
        first_args = {k: v for k, v in first_all.items() if block_args.get(k, object()) != v}
        if first_args:
            line["first_args"] = first_args
        if line["repeat"] == 1:
            del line["repeat"]
        if previous != names[insts[0][2]]:
            line["inputs"] = [names[insts[0][2]]]
        src = [layers[j].source for a, b, _, _ in insts for j in range(a, b)]
        first_src, last_src = src[0][0], src[-1][-1]
        count = sum(len(s) for s in src)
        body.append(f"  - {flow(line)}  # onnx: {count} nodes, {first_src} ... {last_src}")
        for n, (a, b, _x, s) in enumerate(insts):
            for j, local in zip(range(a, b), locals_by_structure[s]):
                layers[j].name = f"{stage}.{n}.{local}" if indexed else f"{stage}.{local}"
        last_inst = insts[-1]
        names[layers[last_inst[1] - 1].output] = stage
        previous = stage
    if not defs:
        return body, None
    lines = []
    for s, name in def_names.items():
        lines += defs[s](name)
    return body, lines


def _periods(layers, infos, longest: int = 4):
    """Consecutive segments whose structures repeat with a period of 2 to ``longest`` distinct structures (a
    Transformer layer: the attention with its residual, then the MLP with its residual) merged, one segment per
    period, so that the period becomes the block. Only structures seen nowhere else are merged (a structure also
    used alone elsewhere keeps its own block)."""
    out, k, seen = [], 0, _count(infos)
    while k < len(infos):
        best = None
        for p in range(2, longest + 1):
            pattern = [i[3] for i in infos[k:k + p]]
            if len(pattern) < p or None in pattern or len(set(pattern)) < p:
                continue
            r = 1
            while [i[3] for i in infos[k + r * p:k + (r + 1) * p]] == pattern:
                r += 1
            if r >= 2 and all(seen[t] == r for t in pattern) and (best is None or r * p > best[0] * best[1]):
                best = (r, p)
        if best is None:
            out.append(infos[k])
            k += 1
            continue
        r, p = best
        for j in range(r):
            a, b, x = infos[k + j * p][0], infos[k + (j + 1) * p - 1][1], infos[k + j * p][2]
            out.append((a, b, x, _structure(layers, a, b, x)))
        k += r * p
    return out


def _numbered(layers, insts):
    """(prefix, first index) when instance n's layers are all named ``<prefix><first + n>.<local>``, with one
    list of local names, else None."""
    prefix, base, locals_ = None, None, None
    for n, (a, b, _, _) in enumerate(insts):
        m = [re.fullmatch(r"(.*?[^\d.])(\d+)\.(.+)", layers[j].name) for j in range(a, b)]
        if not all(m) or len({(x.group(1), x.group(2)) for x in m}) != 1:
            return None
        here = [x.group(3) for x in m]
        p, i = m[0].group(1), int(m[0].group(2))
        if prefix is None:
            prefix, base, locals_ = p, i, here
        if p != prefix or i != base + n or here != locals_:
            return None
    return prefix, base


def _block_name(prefix: str, def_names: dict) -> str:
    """The block of instances ``encoder.layers.encoder_layer_<i>`` is ``encoder_layer``, else ``block<n>``."""
    from .names import clean

    name = clean(prefix.rsplit(".", 1)[-1], dotted=False)
    fallback = f"block{len(def_names) + 1}"
    return name if name[:1].isalpha() and name not in def_names.values() and name != fallback else fallback


def _count(infos) -> dict:
    seen = {}
    for _, _, _, s in infos:
        if s is not None:
            seen[s] = seen.get(s, 0) + 1
    return seen


def _firsts(groups, s) -> bool:
    """Whether structure ``s`` occurs more than once, each time alone and right before a run of another."""
    hits = 0
    for n, (kind, run) in enumerate(groups):
        if kind == "run" and run[0][3] == s:
            if len(run) != 1 or n + 1 >= len(groups) or groups[n + 1][0] != "run" or groups[n + 1][1][0][3] == s:
                return False
            hits += 1
    return hits >= 2


def _param(gen, j, key) -> str:
    return f"{gen[j]}_{key}"


def _args(layers, inst, s, keys, varying) -> dict:
    a, b, x, _ = inst
    values = _values(layers, a, b, keys[s])
    gen = _generated(layers, (a, b, x), s)
    return {_param(gen, j, k): values[j][k] for j, k in sorted(varying[s])}


def _definition(layers, a, b, x, s, keys, varying, local, names):
    vary = varying[s]
    gen = _generated(layers, (a, b, x), s)
    plist = [_param(gen, j, k) for j, k in sorted(vary)]

    def render(name):
        out = [f"  {name}:", f"    params: {flow(plist)}" if plist else None, "    layers:"]
        previous = "x"
        for j in range(a, b):
            layer = layers[j]
            d = {"name": local[j - a], "type": layer.type}
            for key in keys[s][j - a]:
                if (j - a, key) in vary:
                    d[key] = "$" + _param(gen, j - a, key)
                elif key in layer.attrs:
                    d[key] = layer.attrs[key]
            ins = ["x" if i == x else local[[layers[t].output for t in range(a, b)].index(i)] for i in layer.inputs]
            if layer.type != "parameter" and ins != [previous]:
                d["inputs"] = ins
            out.append(f"      - {flow(d)}{comment(layer.source)}")
            previous = local[j - a]
        return [line for line in out if line is not None]

    return render
