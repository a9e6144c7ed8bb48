"""A model summary, as Keras' ``model.summary()`` and torchinfo show it: one row per node with its output
shape, parameters, trainable flag, what it reads ("connected to", as Keras) and its mult-adds, then the
totals (trainable and frozen parameters and buffers counted separately) and the sizes torchinfo estimates.

Counting rules (batch 1, float32 values, as torchinfo's ``summary(model, input_size=(1, ...))``):

- params: the scalars of a node's parameters, trainable or frozen; buffers (BatchNorm's running statistics)
  are counted apart, as torchvision and torchinfo count (Keras' "non-trainable params" mixes the two).
- mult-adds: a node's parameters times the positions it is applied at: the output positions of a convolution
  (all output axes but the channels), the positions of a dense, lstm, gru or attention layer (all axes of its
  input but the last), once for any other layer with parameters (norms, prelu). Embeddings and learned
  ``parameter`` tensors are looked up or added, not multiplied: 0. Layers without parameters: 0.
- input size: the inputs' bytes; forward/backward pass size: twice (values and gradients) the output bytes of
  every node with parameters; params size: 4 bytes per parameter, buffers excluded.
"""

from __future__ import annotations

import math

from .api import Model

CONVS = ("conv1d", "conv2d", "conv_transpose2d")
POSITIONAL = ("dense", "lstm", "gru", "attention")
LOOKUPS = ("embedding", "positional_embedding", "parameter")
MB = 1e6


def _kind(node) -> str:
    act = node.attrs.get("activation")
    if node.op == "activation":
        return f"activation/{act}"
    if isinstance(act, dict) and act["activation"] != "linear":
        return f"{node.op}/{act['activation']}"
    return node.op


def _mult_adds(graph, node) -> int:
    weights = sum(math.prod(p.shape) for p in node.params if p.trainable)
    if not weights or node.op in LOOKUPS:
        return 0
    if node.op in CONVS:
        return weights * math.prod(node.shape[1:])
    if node.op in POSITIONAL:
        return weights * math.prod(graph.shape_of(node.inputs[0])[:-1])
    return weights


def _bytes(shape, dtype="float32") -> int:
    return math.prod(shape) * (8 if dtype == "int64" else 4)


def rows(model: Model) -> list[dict]:
    """One dict per input and node: name, type, output_shape (None for the batch axis), params (trainable or
    frozen), buffers, trainable (True, False for frozen, None without parameters), inputs, mult_adds."""
    graph = model.graph
    out = [{"name": i.name, "type": "input", "output_shape": [None, *i.shape], "params": 0, "buffers": 0,
            "trainable": None, "inputs": [], "mult_adds": 0} for i in graph.inputs]
    for node in graph.nodes:
        params = sum(math.prod(p.shape) for p in node.params if p.trainable)
        out.append({"name": node.name, "type": _kind(node),
                    "output_shape": ([None] if node.batched else []) + list(node.shape), "params": params,
                    "buffers": sum(math.prod(p.shape) for p in node.params if not p.trainable),
                    "trainable": (node.trainable if node.params else None), "inputs": list(node.inputs),
                    "mult_adds": _mult_adds(graph, node)})
    return out


def totals(model: Model) -> dict:
    """Counts and sizes for the whole model at batch 1 (see the module docstring for the rules)."""
    graph = model.graph
    trainable, frozen, buffers = graph.counts()
    forward = sum(2 * _bytes(n.shape) for n in graph.nodes if any(p.trainable for p in n.params))
    inputs = sum(_bytes(i.shape, i.dtype) for i in graph.inputs)
    params = 4 * (trainable + frozen)
    return {"total_params": trainable + frozen, "trainable_params": trainable, "frozen_params": frozen,
            "buffers": buffers, "mult_adds": sum(_mult_adds(graph, n) for n in graph.nodes),
            "input_bytes": inputs, "forward_backward_bytes": forward, "params_bytes": params,
            "total_bytes": inputs + forward + params}


def as_dict(model: Model) -> dict:
    """The summary as JSON-ready data (``dlspec summary --json``)."""
    return {"name": model.name, "path": str(model.path), "nodes": rows(model), "totals": totals(model)}


def _shape(shape) -> str:
    return "(" + ", ".join("batch" if d is None else str(d) for d in shape) + ")"


def _flag(trainable) -> str:
    return "-" if trainable is None else ("Y" if trainable else "N")


def summary(model: Model) -> str:
    """The summary as text: one row per node, then totals and sizes."""
    head = ("node", "type", "output shape", "params", "trainable", "connected to", "mult-adds")
    cells = [head] + [(r["name"], r["type"], _shape(r["output_shape"]), f"{r['params']:,}", _flag(r["trainable"]),
                       ", ".join(r["inputs"]) or "-", f"{r['mult_adds']:,}") for r in rows(model)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(head))]
    right = (3, 6)  # numbers align right
    lines = ["  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in cells]
    rule = "-" * max(len(line) for line in lines)
    t = totals(model)
    return "\n".join([
        f"Model: {model.name} ({model.path})", rule, lines[0], rule, *lines[1:], rule,
        f"Total params: {t['total_params']:,}",
        f"Trainable params: {t['trainable_params']:,}",
        f"Frozen params: {t['frozen_params']:,}",
        f"Buffers: {t['buffers']:,}" + (" (BatchNorm running statistics, not parameters)" if t["buffers"] else ""),
        f"Total mult-adds (batch 1): {_giga(t['mult_adds'])}", rule,
        f"Input size (MB): {t['input_bytes'] / MB:.2f}",
        f"Forward/backward pass size (MB): {t['forward_backward_bytes'] / MB:.2f}",
        f"Params size (MB): {t['params_bytes'] / MB:.2f}",
        f"Estimated total size (MB): {t['total_bytes'] / MB:.2f}", rule])


def _giga(n: int) -> str:
    """1.81 G, 235.15 M (as torchinfo rounds them), or the exact count below a million."""
    return f"{n / 1e9:.2f} G" if n >= 1e9 else f"{n / 1e6:.2f} M" if n >= 1e6 else f"{n:,}"
