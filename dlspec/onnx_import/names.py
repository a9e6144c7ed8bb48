"""Names for imported nodes, made valid dlspec names by one rule (documented in docs/spec.md, "Importing ONNX").

1. A layer with weights is named after its first weight's initializer with the parameter suffix removed
   (``layer1.0.conv1.weight`` -> ``layer1.0.conv1``; Caffe2's ``conv1_w_0`` -> ``conv1``); other layers after
   the ONNX node's name, or its first output's name when the node has none.
2. A prefix ending in ``/`` that every name from rule 1's initializers shares (``gpu_0/``) is dropped.
3. Every character other than a letter, digit, ``_`` or ``.`` becomes ``_``; runs of ``_`` shrink to one and
   ``_`` at either end of a dot-separated segment is dropped.
4. A segment that is not all digits and does not start with a letter gets an ``n`` in front; an empty segment
   is dropped; a segment that is a Python keyword or a name generated code uses gets ``_`` appended.
5. A name already taken gets ``_2``, ``_3``, ... appended.
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


def assign(layers, taken: set[str]) -> None:
    """Give every layer its name (rules 1 to 5), in order; ``taken`` holds the input names."""
    hints = [stem(layer.hint) if layer.weights and layer.type != "parameter" else layer.hint for layer in layers]
    prefix = common_prefix([h for h, layer in zip(hints, layers) if layer.weights])
    used = set(taken)
    for hint, layer in zip(hints, layers):
        hint = hint[len(prefix):] if prefix and hint.startswith(prefix) else hint
        base = clean(hint or layer.type)
        name, k = base, 2
        while name in used or any(u.startswith(name + ".") or name.startswith(u + ".") for u in used):
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        layer.name = name
