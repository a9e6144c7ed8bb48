"""ONNX emitter for local response normalisation."""

from __future__ import annotations

from .. import ir
from ..ir.lrn import lrn_window
from .context import EmitContext
from .onnx_emit import OnnxGraph
from .registry import emitter


@emitter("onnx", ir.lrn.LRN)
def _lrn(ctx: EmitContext, g: OnnxGraph) -> None:
    a, name = ctx.node.attrs, ctx.node.name
    if a["size"] % 2 and len(ctx.in_shape) == 3:  # ONNX's window equals torch's for an odd size; onnxruntime
        # runs LRN on 4-D tensors only
        g.add("LRN", [ctx.x], name, name, size=a["size"], alpha=a["alpha"], beta=a["beta"], bias=a["k"])
        return
    # an even size (ONNX's window is one channel later than torch's) or another rank: sum the shifted squares
    before, after = lrn_window(a["size"])
    channels, rank = ctx.in_shape[0], len(ctx.in_shape) + 1
    square = g.add("Mul", [ctx.x, ctx.x], f"{name}/square", f"{name}/square")
    pads = [0, before] + [0] * (rank - 2) + [0, after] + [0] * (rank - 2)
    padded = g.add("Pad", [square, g.const(f"{name}/pads", pads, "int64")], f"{name}/padded", f"{name}/padded",
                   mode="constant")
    parts = []
    for i in range(a["size"]):
        step = f"{name}/window{i}"
        bounds = [g.const(f"{step}/starts", [i], "int64"), g.const(f"{step}/ends", [i + channels], "int64"),
                  g.const(f"{step}/axes", [1], "int64")]
        parts.append(g.add("Slice", [padded, *bounds], step, step))
    total = g.add("Sum", parts, f"{name}/sum", f"{name}/sum")
    scaled = g.add("Mul", [total, g.const(f"{name}/scale", a["alpha"] / a["size"])], f"{name}/scaled", f"{name}/scaled")
    shifted = g.add("Add", [scaled, g.const(f"{name}/k", a["k"])], f"{name}/shifted", f"{name}/shifted")
    power = g.add("Pow", [shifted, g.const(f"{name}/beta", a["beta"])], f"{name}/power", f"{name}/power")
    g.add("Div", [ctx.x, power], name, name)
