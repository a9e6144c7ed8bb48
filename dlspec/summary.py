"""A model summary table, as Keras' ``model.summary()`` and torchinfo show it."""

from __future__ import annotations

from .api import Model


def _kind(node) -> str:
    act = node.attrs.get("activation")
    if node.op == "activation":
        return f"activation/{act}"
    if isinstance(act, dict) and act["activation"] != "linear":
        return f"{node.op}/{act['activation']}"
    return node.op


def rows(model: Model) -> list[tuple[str, str, str, int]]:
    """(node, type, output shape, parameter count) for every input and node."""
    def shape(s, batched=True):
        return "(" + ", ".join((["batch"] if batched else []) + list(map(str, s))) + ")"

    out = [(i.name, "input", shape(i.shape), 0) for i in model.graph.inputs]
    for node in model.graph.nodes:
        count = sum(_numel(p.shape) for p in node.params)
        out.append((node.name, _kind(node), shape(node.shape, node.batched), count))
    return out


def summary(model: Model) -> str:
    """The summary as text: one row per node, then totals."""
    cells = [("node", "type", "output shape", "params")]
    cells += [(name, kind, shape, f"{count:,}") for name, kind, shape, count in rows(model)]
    widths = [max(len(r[i]) for r in cells) for i in range(4)]
    lines = ["  ".join([*(c.ljust(w) for c, w in zip(r[:3], widths)), r[3].rjust(widths[3])]) for r in cells]
    rule = "-" * len(lines[0])
    trainable = sum(_numel(p.shape) for n in model.graph.nodes for p in n.params if p.trainable and n.trainable)
    total = model.graph.param_count()
    return "\n".join([f"Model: {model.name} ({model.path})", rule, lines[0], rule, *lines[1:], rule,
                      f"Total params: {total:,}", f"Trainable params: {trainable:,}",
                      f"Non-trainable params: {total - trainable:,}"])


def _numel(shape) -> int:
    out = 1
    for d in shape:
        out *= d
    return out
