"""ONNX lowering of the tensor ops (permute, slice, reductions, matmul, subtract, divide) and of ``parameter``."""

from __future__ import annotations

from .. import ir
from ..ir.tensor import permutation, reduce_axes, roll_shifts, sample_axis, slice_range
from .context import EmitContext
from .onnx_emit import OnnxGraph
from .registry import emitter


@emitter("onnx", ir.tensor.Parameter)
def _parameter(ctx: EmitContext, g: OnnxGraph) -> None:
    g.param(ctx.node, "")  # an initializer named after the node is the value itself


@emitter("onnx", ir.merge.Subtract)
def _subtract(ctx: EmitContext, g: OnnxGraph) -> None:
    g.add("Sub", ctx.args, ctx.node.name, ctx.node.name)


@emitter("onnx", ir.merge.Divide)
def _divide(ctx: EmitContext, g: OnnxGraph) -> None:
    g.add("Div", ctx.args, ctx.node.name, ctx.node.name)


def _transpose(ctx: EmitContext, g: OnnxGraph) -> None:
    perm = [0] + [d + 1 for d in permutation(ctx.node.attrs, ctx.in_shape)]
    g.add("Transpose", [ctx.x], ctx.node.name, ctx.node.name, perm=perm)


emitter("onnx", ir.tensor.Permute)(_transpose)
emitter("onnx", ir.tensor.Transpose)(_transpose)


@emitter("onnx", ir.tensor.Slice)
def _slice(ctx: EmitContext, g: OnnxGraph) -> None:
    name = ctx.node.name
    axis, start, stop, step = slice_range(ctx.node.attrs, ctx.in_shape)
    consts = [g.const(f"{name}/{k}", [v], "int64") for k, v in
              (("starts", start), ("ends", stop), ("axes", axis + 1), ("steps", step))]
    g.add("Slice", [ctx.x, *consts], name, name)


@emitter("onnx", ir.tensor.Select)
def _select(ctx: EmitContext, g: OnnxGraph) -> None:
    name = ctx.node.name
    axis = sample_axis(ctx.node.attrs["axis"], len(ctx.in_shape))
    index = g.const(f"{name}/index", ctx.node.attrs["index"] % ctx.in_shape[axis], "int64")  # a scalar: axis goes
    g.add("Gather", [ctx.x, index], name, name, axis=axis + 1)


@emitter("onnx", ir.tensor.Roll)
def _roll(ctx: EmitContext, g: OnnxGraph) -> None:
    # ONNX has no roll: per axis, the last `shift` elements, then the rest
    name, x = ctx.node.name, ctx.x
    rolls = roll_shifts(ctx.node.attrs, ctx.in_shape)
    if not rolls:
        g.add("Identity", [x], name, name)
    for k, (axis, shift, _) in enumerate(rolls):
        size, stem = ctx.in_shape[axis], f"{name}/roll{k}"
        parts = []
        for part, (start, stop) in (("tail", (size - shift, size)), ("head", (0, size - shift))):
            consts = [g.const(f"{stem}/{part}_{key}", [v], "int64")
                      for key, v in (("starts", start), ("ends", stop), ("axes", axis + 1))]
            parts.append(g.add("Slice", [x, *consts], f"{stem}/{part}", f"{stem}/{part}"))
        out = name if k == len(rolls) - 1 else stem
        x = g.add("Concat", parts, out, out, axis=axis + 1)


def _reduce(op_type: str):
    def emit(ctx: EmitContext, g: OnnxGraph) -> None:
        name = ctx.node.name
        axes = [a + 1 for a in reduce_axes(ctx.node.attrs, ctx.in_shape)]
        keep = int(ctx.node.attrs["keepdims"])
        if op_type == "ReduceSum" or g.opset >= 18:  # axes became an input (ReduceSum: opset 13, others: 18)
            g.add(op_type, [ctx.x, g.const(f"{name}/axes", axes, "int64")], name, name, keepdims=keep)
        else:
            g.add(op_type, [ctx.x], name, name, axes=axes, keepdims=keep)

    return emit


emitter("onnx", ir.tensor.ReduceMean)(_reduce("ReduceMean"))
emitter("onnx", ir.tensor.ReduceMax)(_reduce("ReduceMax"))
emitter("onnx", ir.tensor.ReduceSum)(_reduce("ReduceSum"))


@emitter("onnx", ir.tensor.MatMul)
def _matmul(ctx: EmitContext, g: OnnxGraph) -> None:
    g.add("MatMul", ctx.args, ctx.node.name, ctx.node.name)
