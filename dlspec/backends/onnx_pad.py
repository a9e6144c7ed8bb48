"""ONNX lowering of ``pad``."""

from __future__ import annotations

from .. import ir
from ..ir.pad import pad_widths
from .context import EmitContext
from .onnx_emit import OnnxGraph
from .registry import emitter


@emitter("onnx", ir.pad.Pad)
def _pad(ctx: EmitContext, g: OnnxGraph) -> None:
    name = ctx.node.name
    widths = pad_widths(ctx.node.attrs, ctx.in_shape)
    if not widths:
        g.add("Identity", [ctx.x], name, name)
        return
    rank = len(ctx.in_shape) + 1
    pads = [0] * (2 * rank)  # every axis's before, then every axis's after (opset 17 has no axes input)
    for axis, b, a in widths:
        pads[axis + 1], pads[rank + axis + 1] = b, a
    inputs = [ctx.x, g.const(f"{name}/pads", pads, "int64"), g.const(f"{name}/value", ctx.node.attrs["value"])]
    g.add("Pad", inputs, name, name, mode="constant")
