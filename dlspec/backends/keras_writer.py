"""The body of a generated Keras ``build_model``: one line per node, ``Permute`` layers where layouts change
(see keras_emit.py), and one function per block, called once per instance."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import InternalError
from ..ir import Graph
from .classes import group_classes, instances
from .codegen import Namespace, channels_first_perm, channels_last_perm, where
from .keras_emit import ANY, CHANNELS_LAST, FIRST, HELPERS, LOGICAL, Arg, KerasContext, wanted
from .registry import emitters
from .source import Atom, Call, Kw, List, Lit, Node, Stmt, call, mapped


class Writer:
    """Emits the body of ``build_model``, tracking each variable's layout."""

    def __init__(self, graph: Graph, mark: str = "", stems: dict | None = None):
        """``mark``: the prefix of node names in a block function's graph, left out of variable names; ``stems``:
        variable names to start from for some values (a block instance's output is named after the instance)."""
        self.graph, self.lines, self.layouts, self.mark = graph, [], {}, mark
        self.ns = Namespace([], reserved=HELPERS)
        for value in [i.name for i in graph.inputs] + [n.name for n in graph.nodes]:
            stem = (stems or {}).get(value, value)
            stem = stem.removeprefix(mark + ".").replace(".", "_")
            self.ns.vars[value] = self.ns.fresh("x" + stem if stem[:1].isdigit() else stem)  # 0 -> x0
        self.helpers, self.converted = [], {}
        self.weights: list[tuple[str, str, tuple]] = []  # (layer name, Keras layer class, weight entries)
        # every block instance, nested ones included, by its full name: (its instance, draft, the full name of the
        # instance it lies in ("" for none), the name it has there)
        self.blocks: dict[str, tuple] = {}
        self.key = ""  # the full name of the instance this writer drafts ("" for the model)
        self.functions: list[list[str]] = []

    def convert(self, var: str, rank: int, want: str) -> tuple[str, str]:
        """Variable ``var`` in layout ``want`` (through a Permute, made once per value and layout), and its layout."""
        have = self.layouts[var]
        if rank <= 1 or want in (ANY, have):
            return var, have
        if (var, want) in self.converted:  # one Permute per value and layout, shared by its readers
            return self.converted[var, want], want
        perm = channels_last_perm(rank) if want == CHANNELS_LAST else channels_first_perm(rank)
        new = self.ns.fresh(f"{var}_{'nhwc' if want == CHANNELS_LAST else 'nchw'}")
        name = f"{self.mark}.{new}" if self.mark else new  # in a block function, under the instance's name
        permute = call("keras.layers.Permute", dims=perm, name=name)
        self.lines.append(Stmt("    ", f"{new} = ", call(permute, Atom(var))))
        self.layouts[new] = want
        self.converted[var, want] = new
        return new, want

    def block(self, node, inst, table):
        """A call of the block function that computes instance ``inst``; its draft (unwrapped source, with the
        call's arguments left to fill in) depends on the layouts its inputs come in."""
        args = [self.ns[v] for v in node.inputs]
        var = self.ns[node.name]
        key = f"{self.key}.{inst.prefix}" if self.key else inst.prefix
        draft, out = _block_draft(inst, [self.layouts[a] for a in args], table, self, key)
        self.blocks[key] = (replace(inst, prefix=key), draft, self.key, inst.prefix)
        self.layouts[var] = out if len(node.shape) > 1 else LOGICAL
        comment = where(self.graph, replace(node, loc=inst.loc))
        self.lines.append(Stmt("    ", f"{var} = ", call(BlockCall(key), *map(Atom, args)), comment))

    def node(self, node, table):
        """The lines computing ``node`` with its emitter from ``table``, its inputs fed in the layout it declares."""
        shapes = [self.graph.shape_of(v) for v in node.inputs]
        batched = [self.graph.is_batched(v) for v in node.inputs]
        firsts = [self.layouts[self.ns[v]] for v, b in zip(node.inputs, batched) if b]
        # the emitter's declared layout, for the layout the first batched input has now, says how to feed it;
        # then it emits once, seeing the layout it is fed (emitters that read axes depend on it)
        have, emit = firsts[0] if firsts else LOGICAL, table[node.op]
        want, _, probed = wanted(emit, KerasContext(self.graph, node, list(node.inputs), shapes, layout=have))
        args, layout = [], LOGICAL
        for var, shape, b in zip([self.ns[v] for v in node.inputs], shapes, batched):
            if not b:  # parameters stay as they are; emitters bring them to the batched inputs' layout
                args.append(var)
                continue
            new, layout = self.convert(var, len(shape), have if want == FIRST else want)
            args.append(new)
        if probed is not None and layout == have:  # an emitter that declares nothing, already run for this layout
            lay = probed
        else:
            lay = emit(KerasContext(self.graph, node, args, shapes, layout=layout))
        if lay.wants != want:
            raise InternalError(f"the Keras emitter of {node.op} declares layout {want}; its layer wants {lay.wants}")
        if not node.inputs:  # a parameter enters the functional graph through the first model input
            args = [self.ns[self.graph.inputs[0].name]]
        fed: Node = Atom(args[0]) if len(args) == 1 else List(tuple(map(Atom, args)))
        var = self.ns[node.name]
        self.layouts[var] = (lay.out or layout) if len(node.shape) > 1 else LOGICAL
        self.helpers += [h for h in lay.helpers if h not in self.helpers]
        if lay.alias:
            self.lines.append(Stmt("    ", f"{var} = ", fed, where(self.graph, node)))
            return
        for suffix, expr in lay.pre:
            step = self.ns.fresh(f"{var}_{suffix}")
            self.lines.append(Stmt("    ", f"{step} = ", call(expr.plus(name=f"{node.name}.{suffix}"), fed)))
            fed = Atom(step)
        main = self.ns.fresh(f"{var}_raw") if lay.post else var
        comment = "" if lay.post else where(self.graph, node)
        inputs = [fed, *map(Atom, args)]
        called = mapped(lay.call, lambda n: inputs[n.index] if isinstance(n, Arg) else None)
        self.lines.append(Stmt("    ", f"{main} = ", Call(lay.layer, tuple(a for a in called if not isinstance(a, Kw)),
                                                         tuple(a for a in called if isinstance(a, Kw))), comment))
        for i, (suffix, expr) in enumerate(lay.post):
            step = var if i == len(lay.post) - 1 else self.ns.fresh(f"{var}_{suffix}")
            comment = where(self.graph, node) if step == var else ""
            self.lines.append(Stmt("    ", f"{step} = ", call(expr.plus(name=f"{node.name}.{suffix}"), Atom(main)),
                                   comment))
            main = step
        if lay.weights:
            self.weights.append((node.name, str(lay.layer.func).removeprefix("keras.layers."), tuple(lay.weights)))


MARK = "BLOCK__"  # stands for the instance's name in a block function's draft


@dataclass(frozen=True, eq=True)
class BlockCall(Node):
    """Placeholder for the function that builds block instance ``key`` (filled in by :func:`_functions`)."""

    key: str

    def parts(self) -> list:
        return [f"\x00{self.key}\x00"]


@dataclass(frozen=True, eq=True)
class Under(Node):
    """``f"{name}.<local>"``: a layer name under the ``name`` a block function is called with."""

    local: str

    def parts(self) -> list:
        return ["f" + str(Lit("{name}." + self.local))]


def _unmarked(node: Node) -> Node | None:
    """A layer name under the instance's name (``"BLOCK__.conv"``) as ``f"{name}.conv"``."""
    if isinstance(node, Lit) and isinstance(node.value, str) and node.value.startswith(f"{MARK}."):
        return Under(node.value[len(MARK) + 1:])
    return None


def _block_draft(inst, layouts: list[str], table, top: Writer, key: str) -> tuple[list, str]:
    """The source of a function building instance ``inst`` (full name ``key``) whose inputs come in ``layouts``,
    unwrapped, with its layers named f"{name}.<local name>" and the instances nested in it left as calls to fill
    in; and the layout of what it returns. Its weights, helpers and nested instances join ``top``'s."""
    graph = inst.graph
    ins = {i.name for i in graph.inputs}
    inner = {i.output: i for i in instances(graph, containers=True) if i.graph is not None}
    members = {n.name for i in inner.values() for n in i.nodes}

    def mark(v: str) -> str:
        return v if v in ins else f"{MARK}.{v}"

    marked = replace(graph, nodes=[replace(n, name=f"{MARK}.{n.name}", inputs=tuple(map(mark, n.inputs)))
                                   for n in graph.nodes if n.name not in members or n.name in inner],
                     outputs=[f"{MARK}.{o}" for o in graph.outputs])
    w = Writer(marked, MARK, stems={f"{MARK}.{o}": f"{MARK}.{i.prefix}" for o, i in inner.items()})
    w.ns.used.add("name")
    w.key, w.blocks = key, top.blocks
    for inp, layout in zip(graph.inputs, layouts):
        w.layouts[w.ns[inp.name]] = layout
    for node in marked.nodes:
        local = node.name[len(MARK) + 1:]
        if local in inner:
            w.block(replace(node, inputs=tuple(map(mark, inner[local].values))), inner[local], table)
        else:
            w.node(node, table)
    result = w.ns[marked.outputs[0]]
    head = f"def {MARK}({', '.join(w.ns[i.name] for i in graph.inputs)}, name):"
    lines = [head, *(mapped(line, _unmarked) for line in w.lines), Stmt("    ", "return ", Atom(result))]
    top.helpers += [h for h in w.helpers if h not in top.helpers]
    top.weights += [(name.replace(MARK, key, 1), cls, entries) for name, cls, entries in w.weights]
    return lines, w.layouts[result]


def write(graph: Graph) -> Writer:
    """The body of ``build_model``: block instances become calls of one function per block (see _functions)."""
    table = emitters("keras")  # first: emitter modules register the helper names the namespace avoids
    insts = {i.output: i for i in instances(graph, containers=True) if i.graph is not None}
    members = {n.name for i in insts.values() for n in i.nodes}
    w = Writer(replace(graph, nodes=[n for n in graph.nodes if n.name not in members or n.name in insts]),
                stems={out: inst.prefix for out, inst in insts.items()})
    for inp in graph.inputs:
        dtype = {} if inp.dtype == "float32" else {"dtype": inp.dtype}
        w.lines.append(Stmt("    ", f"{w.ns[inp.name]} = ", call("keras.Input", shape=tuple(inp.shape), **dtype,
                                                                     name=inp.name)))
        w.layouts[w.ns[inp.name]] = LOGICAL
    for node in graph.nodes:
        if node.name in insts:
            inst = insts[node.name]
            w.block(replace(node, inputs=inst.values), inst, table)
        elif node.name not in members:
            w.node(node, table)
    w.functions = _functions(w)
    return w


def _functions(w: Writer) -> list[list[str]]:
    """One function per block (per group of instances that one function can make), innermost first: a block used
    inside a block is a function of its own, which the outer one calls. Fills the calls into the drafts and
    into ``w.lines``."""
    if not w.blocks:
        return []
    taken = set(w.ns.used) | set(HELPERS) | {"build_model", "load_weights", "keras_weight", "moved",
                                               "read_safetensors", "keras", "np", "json", "Path"}
    insts = [inst for inst, *_ in w.blocks.values()]
    names = {}
    for block in dict.fromkeys(i.block for i in insts):
        names[block] = block if block not in taken else f"{block}_block"
    drafts = {key: draft for key, (_, draft, *_) in w.blocks.items()}

    def filled(node: Node) -> Node | None:
        if not isinstance(node, Call) or not isinstance(node.func, BlockCall):
            return None
        _, _, parent, local = w.blocks[node.func.key]
        name = Under(local) if parent else Lit(node.func.key)
        return made[node.func.key].call(node.func.key, *node.args, name=name)  # function(inputs, params, name=...)

    def fill(line):
        return mapped(line, filled)

    height: dict[str, int] = {}  # how deep blocks nest inside an instance (the same for all of one block)
    for key, (_, _, parent, _) in w.blocks.items():  # an instance is recorded after those inside it
        height.setdefault(key, 0)
        if parent:
            height[parent] = max(height.get(parent, 0), height[key] + 1)
    made = {}
    for level_height in sorted(set(height.values())):  # all instances of a block together, innermost first
        level = [i for i in insts if max(height[j.prefix] for j in insts if j.block == i.block) == level_height]
        for inst in level:
            draft = [fill(line) for line in drafts[inst.prefix]]
            drafts[inst.prefix] = [draft[0].replace(f"def {MARK}(", f"def {names[inst.block]}("), *draft[1:]]
        for block in dict.fromkeys(i.block for i in level):  # instances whose inputs came in other layouts
            group = [i for i in level if i.block == block]   # have other drafts
            name = names[block]
            inputs = ", ".join(x.name for x in group[0].graph.inputs)
            head = (f"def {name}({inputs}, name):", f"def {name}({inputs}{{params}}, name):")
            found = group_classes(group, drafts, {block: name}, taken | set(names.values()), head, singles=True)
            taken |= {c.name for c in found.values()}
            made.update(found)
    w.lines = [fill(line) for line in w.lines]
    return list({id(c): c.lines for c in made.values()}.values())

