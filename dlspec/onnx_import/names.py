"""Names for imported nodes, made valid dlspec names by one rule (documented in docs/spec.md, "Importing ONNX").

1. A layer with weights is named after its first weight's initializer with the parameter suffix removed
   (``layer1.0.conv1.weight`` -> ``layer1.0.conv1``; Caffe2's ``conv1_w_0`` -> ``conv1``), unless the
   initializer has an exporter's generated name (``onnx::Conv_497``). Other layers, and those, are named after
   the ONNX node: a torch scope name ``/layer1/layer1.0/conv1/Conv`` gives the module path ``layer1.0.conv1``
   (with the op appended, ``layer1.0.add``, when other nodes lie inside that module); any other node name is
   taken as it is, and a node without a name is named after its first output.
2. A prefix ending in ``/`` that every name from rule 1's initializers shares (``gpu_0/``) is dropped.
3. Every character other than a letter, digit, ``_`` or ``.`` becomes ``_``; runs of ``_`` shrink to one and
   ``_`` at either end of a dot-separated segment is dropped.
4. A segment that is not all digits and does not start with a letter gets an ``n`` in front; an empty segment
   is dropped; a segment that is a Python keyword or a name generated code uses gets ``_`` appended.
5. A name already taken (or the module path of a name taken) gets ``_2``, ``_3``, ... appended; a last segment
   that is an index ``1`` becomes ``n1_2``, ``n1_3``, ...

A ``parameter`` made from an initializer (also one that folding only reshaped, expanded or cast: ViT's
``class_token``) is named after it, or after the ``Identity`` output that names a shared copy (torch's exporter
shares equal tensors), unless the name is generated (``onnx::``).
"""

from __future__ import annotations

import keyword
import re

from ..spec.types import RESERVED_NAMES

_SUFFIXES = (".weight", ".bias", ".running_mean", ".running_var", ".scale", "_w_0", "_b_0", "_w", "_b",
             "_bn_s_0", "_bn_b_0", "_bn_scale_0", "_bn_bias_0", "_scale_0", "_bias_0", "_s_0", "_bn_w_0")


def stem(initializer: str) -> str:
    """An initializer's name without its parameter suffix."""
    for suffix in _SUFFIXES:
        if initializer.endswith(suffix) and len(initializer) > len(suffix):
            return initializer[: -len(suffix)]
    return initializer


def clean(text: str, dotted: bool = True) -> str:
    """``text`` as a valid dlspec node name (rules 3 and 4); ``dotted=False`` for input names (no dots)."""
    text = re.sub(r"[^A-Za-z0-9_.]" if dotted else r"[^A-Za-z0-9_]", "_", text)
    segments = []
    for seg in text.split("."):
        seg = re.sub(r"_+", "_", seg).strip("_")
        if not seg:
            continue
        if not seg.isdigit() and not seg[0].isalpha():
            seg = "n" + seg
        if keyword.iskeyword(seg) or seg in RESERVED_NAMES:
            seg += "_"
        segments.append(seg)
    if not segments:
        return "node"
    if segments[0].isdigit():
        segments[0] = "n" + segments[0]
    return ".".join(segments)


def common_prefix(names: list[str]) -> str:
    """The longest prefix ending in '/' that every name shares (rule 2)."""
    if not names:
        return ""
    first = names[0]
    cut = first.rfind("/") + 1
    while cut > 0 and not all(n.startswith(first[:cut]) for n in names):
        cut = first.rfind("/", 0, cut - 1) + 1
    return first[:cut]


def scope_path(node_name: str) -> str | None:
    """torch's scope name ``/layer1/layer1.0/conv1/Conv`` as the module path ``layer1.0.conv1`` (None if it is not
    one)."""
    parts = [p for p in node_name.split("/") if p]
    if not node_name.startswith("/") or len(parts) < 2:
        return None
    path, prev = parts[0], parts[0]
    for seg in parts[1:-1]:  # a child scope repeats its parent's name: layer1/layer1.0, downsample/downsample.0
        path = path[: len(path) - len(prev)] + seg if seg.startswith(prev + ".") else f"{path}.{seg}"
        prev = seg
    return path


def _hints(layers) -> tuple[list[str], list[bool]]:
    hints, from_weights, scoped = [], [], []
    for layer in layers:
        op, _, node = layer.source[0].partition(" ") if layer.source else ("", "", "")
        if layer.weights and layer.type != "parameter" and not layer.hint.startswith("onnx::"):
            hints.append(stem(layer.hint))
            from_weights.append(True)
            scoped.append(None)
            continue
        if layer.type == "parameter" and layer.origin and not layer.origin.startswith("onnx::"):
            hints.append(layer.origin)  # torchvision's class_token, encoder.pos_embedding
            from_weights.append(False)
            scoped.append(None)
            continue
        path = scope_path(node)
        hints.append(path if path else (layer.hint if not layer.hint.startswith("onnx::") else node))
        from_weights.append(False)
        scoped.append((path, op) if path else None)
    paths = {s[0] for s in scoped if s}
    for k, s in enumerate(scoped):  # a module with nodes inside it: name the node by its op too
        if s and any(p.startswith(s[0] + ".") for p in paths):
            hints[k] = f"{s[0]}.{s[1].lower()}"
    return hints, from_weights


def assign(layers, taken: set[str]) -> None:
    """Give every layer its name (rules 1 to 5), in order; ``taken`` holds the input names."""
    hints, from_weights = _hints(layers)
    prefix = common_prefix([h for h, w in zip(hints, from_weights) if w])
    used = set(taken)
    for hint, layer in zip(hints, layers):
        hint = hint[len(prefix):] if prefix and hint.startswith(prefix) else hint
        base = clean(hint or layer.type)
        name, k = base, 2
        parent, _, last = base.rpartition(".")
        while name in used or any(u.startswith(name + ".") or name.startswith(u + ".") for u in used):
            name = f"{base}_{k}" if not last.isdigit() else f"{parent + '.' if parent else ''}n{last}_{k}"
            k += 1
        used.add(name)
        layer.name = name
