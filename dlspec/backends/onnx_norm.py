"""ONNX emitters for layernorm and rmsnorm over any axes, prelu, adaptive pooling and stochastic depth."""

from __future__ import annotations

from .. import ir
from ..ir.norm import adaptive_bins, adaptive_output, norm_axes, trailing
from .context import EmitContext
from .onnx_emit import OnnxGraph
from .registry import emitter


def reduce(g: OnnxGraph, op: str, x: str, axes: list[int], out: str, name: str, keepdims: int = 1) -> str:
    """ReduceMean/ReduceMax over ``axes``: an attribute before opset 18, an input from it on."""
    if g.opset >= 18:
        return g.add(op, [x, g.const(f"{name}/axes", axes, "int64")], out, name, keepdims=keepdims)
    return g.add(op, [x], out, name, axes=axes, keepdims=keepdims)


@emitter("onnx", ir.norm.LayerNorm)
def _layernorm(ctx: EmitContext, g: OnnxGraph) -> None:
    node, rank = ctx.node, len(ctx.in_shape) + 1
    axes = norm_axes(node.attrs, ctx.in_shape)
    params = [g.param(node, "weight"), g.param(node, "bias")]
    eps = node.attrs["eps"]
    if trailing(axes, rank):
        g.add("LayerNormalization", [ctx.x] + params, node.name, node.name,
              axis=-1 if len(axes) == 1 else axes[0], epsilon=eps)
        return
    perm = [0] + [a for a in range(1, rank) if a not in axes] + list(axes)
    moved = g.add("Transpose", [ctx.x], f"{node.name}/moved", f"{node.name}/moved", perm=perm)
    normed = g.add("LayerNormalization", [moved] + params, f"{node.name}/norm", f"{node.name}/norm",
                   axis=rank - len(axes), epsilon=eps)
    g.add("Transpose", [normed], node.name, node.name, perm=[perm.index(a) for a in range(rank)])


@emitter("onnx", ir.norm.RMSNorm)
def _rmsnorm(ctx: EmitContext, g: OnnxGraph) -> None:
    node, name = ctx.node, ctx.node.name
    axes = norm_axes(node.attrs, ctx.in_shape)
    square = g.add("Mul", [ctx.x, ctx.x], f"{name}/square", f"{name}/square")
    mean = reduce(g, "ReduceMean", square, list(axes), f"{name}/mean_square", f"{name}/mean_square")
    mean = g.add("Add", [mean, g.const(f"{name}/eps", node.attrs["eps"])], f"{name}/plus_eps", f"{name}/plus_eps")
    root = g.add("Sqrt", [mean], f"{name}/rms", f"{name}/rms")
    normed = g.add("Div", [ctx.x, root], f"{name}/normed", f"{name}/normed")
    shape = [d if i + 1 in axes else 1 for i, d in enumerate(ctx.in_shape)]
    g.add("Mul", [normed, g.shaped(node, "weight", shape)], name, name)


@emitter("onnx", ir.norm.PReLU)
def _prelu(ctx: EmitContext, g: OnnxGraph) -> None:
    node = ctx.node
    slope = g.param(node, "weight") if len(ctx.in_shape) == 1 or node.attrs["shared"] else \
        g.shaped(node, "weight", [ctx.in_shape[0]] + [1] * (len(ctx.in_shape) - 1))
    g.add("PRelu", [ctx.x, slope], node.name, node.name)


def _adaptive(kind: str):
    def emit(ctx: EmitContext, g: OnnxGraph) -> None:
        name, spatial = ctx.node.name, ctx.in_shape[1:]
        out = adaptive_output(ctx.node.attrs, ctx.in_shape)
        if set(out) == {1}:
            g.add("GlobalAveragePool" if kind == "avg" else "GlobalMaxPool", [ctx.x], name, name)
            return
        if all(n % o == 0 for n, o in zip(spatial, out)):  # equal bins: plain pooling
            k = [n // o for n, o in zip(spatial, out)]
            g.add("AveragePool" if kind == "avg" else "MaxPool", [ctx.x], name, name, kernel_shape=k, strides=k)
            return
        x, op = ctx.x, "ReduceMean" if kind == "avg" else "ReduceMax"
        steps = [(axis, n, o) for axis, (n, o) in enumerate(zip(spatial, out), start=2) if n != o]
        for s, (axis, n, o) in enumerate(steps):  # separable: one axis after the other, bin by bin
            parts = []
            for i, (start, end) in enumerate(adaptive_bins(n, o)):
                step = f"{name}/axis{axis}_bin{i}"
                bounds = [g.const(f"{step}/starts", [start], "int64"), g.const(f"{step}/ends", [end], "int64"),
                          g.const(f"{step}/slice_axes", [axis], "int64")]
                part = g.add("Slice", [x, *bounds], f"{step}/slice", f"{step}/slice")
                parts.append(reduce(g, op, part, [axis], step, step))
            last = s == len(steps) - 1
            x = g.add("Concat", parts, name if last else f"{name}/axis{axis}", name if last else f"{name}/axis{axis}",
                      axis=axis)

    return emit


emitter("onnx", ir.norm.AdaptiveAvgPool)(_adaptive("avg"))
emitter("onnx", ir.norm.AdaptiveMaxPool)(_adaptive("max"))


@emitter("onnx", ir.norm.StochasticDepth)
def _stochastic_depth(ctx: EmitContext, g: OnnxGraph) -> None:
    g.add("Identity", [ctx.x], ctx.node.name, ctx.node.name)  # stochastic depth is the identity at inference
