"""ONNX emitters for convolution, pooling, normalisation, resampling and merges (NCHW, as the spec)."""

from __future__ import annotations

from .. import ir
from ..ir import Act
from ..ir.vision import conv_geometry, per_axis, pool_geometry, zero_pad_amounts
from .context import EmitContext
from .onnx_emit import OnnxGraph, activation
from .registry import emitter


def _onnx_pads(pads) -> list[int]:
    """ONNX order: all begins, then all ends."""
    return [b for b, _ in pads] + [e for _, e in pads]


def _conv(ctx: EmitContext, g: OnnxGraph) -> None:
    node, a = ctx.node, ctx.node.attrs
    geo = conv_geometry(a, ctx.in_shape[1:])
    act, name = Act.of(a["activation"]), node.name
    inputs = [ctx.x, g.param(node, "weight")] + ([g.param(node, "bias")] if a["use_bias"] else [])
    out = name if act is None else f"{name}/conv"
    g.add("Conv", inputs, out, out, kernel_shape=list(geo.kernel), strides=list(geo.stride),
          dilations=list(geo.dilation), pads=_onnx_pads(geo.pads), group=a["groups"])
    if act is not None:
        activation(g, act, out, name, name)


emitter("onnx", ir.vision.Conv1d)(_conv)
emitter("onnx", ir.vision.Conv2d)(_conv)


@emitter("onnx", ir.vision.ConvTranspose2d)
def _conv_transpose(ctx: EmitContext, g: OnnxGraph) -> None:
    node, a = ctx.node, ctx.node.attrs
    p = per_axis(a["padding"], 2, "padding")
    inputs = [ctx.x, g.param(node, "weight")] + ([g.param(node, "bias")] if a["use_bias"] else [])
    g.add("ConvTranspose", inputs, node.name, node.name, kernel_shape=list(per_axis(a["kernel"], 2, "kernel")),
          strides=list(per_axis(a["stride"], 2, "stride")), pads=list(p) + list(p),
          output_padding=list(per_axis(a["output_padding"], 2, "output_padding")))


def _pool(ctx: EmitContext, g: OnnxGraph) -> None:
    # ONNX's ceil_mode lacks torch's rule that drops a last window starting in the padding, so ceil mode
    # is lowered as floor mode over explicit extra end padding. Average pooling then divides by the real
    # pixels only (count_include_pad=0) and rescales where torch also counts the padding.
    node, a, name = ctx.node, ctx.node.attrs, ctx.node.name
    geo = pool_geometry(a, ctx.in_shape[1:])
    attrs = {"kernel_shape": list(geo.kernel), "strides": list(geo.stride),
             "pads": list(geo.pads) + [p + e for p, e in zip(geo.pads, geo.extra)]}
    if node.op.startswith("max"):
        g.add("MaxPool", [ctx.x], name, name, **attrs)
        return
    if not any(geo.extra):
        g.add("AveragePool", [ctx.x], name, name, count_include_pad=int(a["count_include_pad"]), **attrs)
        return
    if not a["count_include_pad"]:
        g.add("AveragePool", [ctx.x], name, name, count_include_pad=0, **attrs)
        return
    import numpy as np

    real = pool_geometry(a, ctx.in_shape[1:], include_pad=False).divisors
    scale = np.ones(geo.out, dtype=np.float64)
    for axis, (r, t) in enumerate(zip(real, geo.divisors)):
        shape = [1] * len(geo.out)
        shape[axis] = len(r)
        scale = scale * (np.asarray(r, dtype=np.float64) / np.asarray(t)).reshape(shape)
    mean = g.add("AveragePool", [ctx.x], f"{name}/mean", f"{name}/mean", count_include_pad=0, **attrs)
    g.add("Mul", [mean, g.const(f"{name}/divisor_scale", scale[None])], name, name)


for _op in (ir.vision.MaxPool1d, ir.vision.MaxPool2d, ir.vision.AvgPool1d, ir.vision.AvgPool2d):
    emitter("onnx", _op)(_pool)


def _global(op_type: str, keep: bool):
    def emit(ctx: EmitContext, g: OnnxGraph) -> None:
        name = ctx.node.name
        if keep:
            g.add(op_type, [ctx.x], name, name)
        else:
            pooled = g.add(op_type, [ctx.x], f"{name}/pool", f"{name}/pool")
            g.add("Flatten", [pooled], name, name, axis=1)

    return emit


emitter("onnx", ir.vision.GlobalAvgPool)(_global("GlobalAveragePool", keep=False))
emitter("onnx", ir.vision.GlobalMaxPool)(_global("GlobalMaxPool", keep=False))


@emitter("onnx", ir.vision.GroupNorm)
def _groupnorm(ctx: EmitContext, g: OnnxGraph) -> None:
    # GroupNormalization's scale changed meaning in opset 21; this form means one thing everywhere:
    # reshape to (N, G, -1), instance-normalise, reshape back, then the per-channel affine.
    node, name, groups = ctx.node, ctx.node.name, ctx.node.attrs["groups"]
    c, rest = ctx.in_shape[0], len(ctx.in_shape) - 1
    grouped = g.add("Reshape", [ctx.x, g.const(f"{name}/grouped_shape", [0, groups, -1], "int64")],
                    f"{name}/grouped", f"{name}/grouped")
    normed = g.add("InstanceNormalization", [grouped, g.const(f"{name}/ones", [1.0] * groups),
                                             g.const(f"{name}/zeros", [0.0] * groups)],
                   f"{name}/normed", f"{name}/normed", epsilon=node.attrs["eps"])
    shaped = g.add("Reshape", [normed, g.const(f"{name}/shape", [0, c, *ctx.in_shape[1:]], "int64")],
                   f"{name}/restored", f"{name}/restored")
    affine = [c] + [1] * rest
    scale, bias = g.shaped(node, "weight", affine), g.shaped(node, "bias", affine)
    scaled = g.add("Mul", [shaped, scale], f"{name}/scaled", f"{name}/scaled")
    g.add("Add", [scaled, bias], name, name)


@emitter("onnx", ir.vision.ZeroPad)
def _zero_pad(ctx: EmitContext, g: OnnxGraph) -> None:
    pads = ((0, 0), (0, 0)) + zero_pad_amounts(ctx.node.attrs, len(ctx.in_shape) - 1)
    amounts = g.const(f"{ctx.node.name}/pads", _onnx_pads(pads), "int64")
    g.add("Pad", [ctx.x, amounts], ctx.node.name, ctx.node.name, mode="constant")


@emitter("onnx", ir.vision.Upsample)
def _upsample(ctx: EmitContext, g: OnnxGraph) -> None:
    a, name = ctx.node.attrs, ctx.node.name
    scale = per_axis(a["scale"], len(ctx.in_shape) - 1, "scale")
    scales = g.const(f"{name}/scales", [1.0, 1.0] + [float(s) for s in scale])
    if a["mode"] == "nearest":  # torch: source index floor(i / scale)
        attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
    else:
        attrs = {"mode": "linear",
                 "coordinate_transformation_mode": "align_corners" if a["align_corners"] else "half_pixel"}
    g.add("Resize", [ctx.x, "", scales], name, name, **attrs)


@emitter("onnx", ir.merge.Add)
def _add(ctx: EmitContext, g: OnnxGraph) -> None:
    g.add("Sum", ctx.args, ctx.node.name, ctx.node.name)


@emitter("onnx", ir.merge.Multiply)
def _multiply(ctx: EmitContext, g: OnnxGraph) -> None:
    x, name = ctx.args[0], ctx.node.name
    for i, y in enumerate(ctx.args[1:], 1):
        last = i == len(ctx.args) - 1
        x = g.add("Mul", [x, y], name if last else f"{name}/mul{i}", name if last else f"{name}/mul{i}")


@emitter("onnx", ir.merge.Concat)
def _concat(ctx: EmitContext, g: OnnxGraph) -> None:
    name, args = ctx.node.name, list(ctx.args)
    batched = [ctx.graph.is_batched(v) for v in ctx.node.inputs]
    if not all(batched):  # a parameter (1, *shape) is expanded to (N, *shape)
        batch = g.add("Shape", [args[batched.index(True)]], f"{name}/batch", f"{name}/batch", start=0, end=1)
        for i, (b, shape) in enumerate(zip(batched, ctx.in_shapes)):
            if not b:
                rest = g.const(f"{name}/rest{i}", list(shape[1:]), "int64")
                target = g.add("Concat", [batch, rest], f"{name}/shape{i}", f"{name}/shape{i}", axis=0)
                args[i] = g.add("Expand", [args[i], target], f"{name}/expanded{i}", f"{name}/expanded{i}")
    g.add("Concat", args, name, name, axis=ctx.node.attrs["axis"])
