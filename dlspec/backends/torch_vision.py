"""PyTorch emitters for convolution, pooling, normalisation, resampling and merges."""

from __future__ import annotations

from .. import ir
from ..ir import Act
from ..ir.vision import conv_geometry, per_axis, pool_geometry, zero_pad_amounts
from .context import EmitContext
from .registry import emitter
from .source import Atom, Attr, BinOp, List, Subscript, call, method
from .torch_emit import TorchLayer, activation, construct, init_statement


def _inits(ctx: EmitContext) -> list:
    return [init_statement(p, Attr(ctx.module, p.name)) for p in ctx.node.params]


def _torch_pads(pads) -> tuple[int, ...]:
    """F.pad order: last axis first, (begin, end) each."""
    return tuple(v for b, e in reversed(pads) for v in (b, e))


def _one(values: tuple[int, ...]):
    return values[0] if len(set(values)) == 1 else values


def _conv(ctx: EmitContext) -> TorchLayer:
    a, nd = ctx.node.attrs, len(ctx.in_shape) - 1
    geo = conv_geometry(a, ctx.in_shape[1:])
    x = ctx.x
    if not geo.symmetric:  # TF's `same` on an even input pads one more pixel at the end
        x = call("F.pad", x, _torch_pads(geo.pads))
    padding = _one(tuple(b for b, _ in geo.pads)) if geo.symmetric else 0
    module = construct(f"nn.Conv{nd}d", in_channels=ctx.in_shape[0], out_channels=a["filters"],
                       kernel_size=_one(geo.kernel), stride=_one(geo.stride), padding=padding,
                       dilation=_one(geo.dilation), groups=a["groups"], bias=a["use_bias"])
    return TorchLayer(activation(Act.of(a["activation"]), call(ctx.module, x)), module, _inits(ctx))


emitter("torch", ir.vision.Conv1d)(_conv)
emitter("torch", ir.vision.Conv2d)(_conv)


@emitter("torch", ir.vision.ConvTranspose2d)
def _conv_transpose(ctx: EmitContext) -> TorchLayer:
    a = ctx.node.attrs
    def pair(attr):
        return _one(per_axis(a[attr], 2, attr))

    module = construct("nn.ConvTranspose2d", in_channels=ctx.in_shape[0], out_channels=a["filters"],
                       kernel_size=pair("kernel"), stride=pair("stride"), padding=pair("padding"),
                       output_padding=pair("output_padding"), bias=a["use_bias"])
    return TorchLayer(call(ctx.module, ctx.x), module, _inits(ctx))


def _pool(ctx: EmitContext) -> TorchLayer:
    a, nd = ctx.node.attrs, len(ctx.in_shape) - 1
    geo = pool_geometry(a, ctx.in_shape[1:])
    kind = "Max" if ctx.node.op.startswith("max") else "Avg"
    extra = {"count_include_pad": a["count_include_pad"]} if kind == "Avg" else {}
    stride = {} if _one(geo.stride) == _one(geo.kernel) else {"stride": _one(geo.stride)}  # torch: stride = kernel
    module = construct(f"nn.{kind}Pool{nd}d", kernel_size=_one(geo.kernel), **stride, padding=_one(geo.pads),
                       ceil_mode=a["ceil_mode"], **extra)
    return TorchLayer(call(ctx.module, ctx.x), module)


for _op in (ir.vision.MaxPool1d, ir.vision.MaxPool2d, ir.vision.AvgPool1d, ir.vision.AvgPool2d):
    emitter("torch", _op)(_pool)


def _spatial_dims(ctx: EmitContext) -> tuple[int, ...]:
    return tuple(range(2, len(ctx.in_shape) + 1))


@emitter("torch", ir.vision.GlobalAvgPool)
def _global_avg(ctx: EmitContext) -> TorchLayer:
    return TorchLayer(method(ctx.x, "mean", dim=_spatial_dims(ctx)))


@emitter("torch", ir.vision.GlobalMaxPool)
def _global_max(ctx: EmitContext) -> TorchLayer:
    return TorchLayer(method(ctx.x, "amax", dim=_spatial_dims(ctx)))


@emitter("torch", ir.vision.GroupNorm)
def _groupnorm(ctx: EmitContext) -> TorchLayer:
    a = ctx.node.attrs
    module = call("nn.GroupNorm", num_groups=a["groups"], num_channels=ctx.in_shape[0], eps=a["eps"])
    return TorchLayer(call(ctx.module, ctx.x), module)


@emitter("torch", ir.vision.ZeroPad)
def _zero_pad(ctx: EmitContext) -> TorchLayer:
    pads = zero_pad_amounts(ctx.node.attrs, len(ctx.in_shape) - 1)
    return TorchLayer(call("F.pad", ctx.x, _torch_pads(pads)))


@emitter("torch", ir.vision.Upsample)
def _upsample(ctx: EmitContext) -> TorchLayer:
    a = ctx.node.attrs
    scale = per_axis(a["scale"], len(ctx.in_shape) - 1, "scale")
    align = {"align_corners": a["align_corners"]} if a["mode"] == "bilinear" else {}
    return TorchLayer(call("F.interpolate", ctx.x, scale_factor=_one(tuple(float(s) for s in scale)), mode=a["mode"],
                           **align))


@emitter("torch", ir.merge.Add)
def _add(ctx: EmitContext) -> TorchLayer:
    if ctx.inplace and ctx.in_shapes[0] == ctx.node.shape and ctx.graph.is_batched(ctx.node.inputs[0]):
        # the first summand is read by nothing else and has the result's shape: accumulate into it
        out = ctx.args[0]
        for a in ctx.args[1:]:
            out = method(out, "add_", a)
        return TorchLayer(out)
    return TorchLayer(BinOp("+", tuple(ctx.args)))


@emitter("torch", ir.merge.Multiply)
def _multiply(ctx: EmitContext) -> TorchLayer:
    return TorchLayer(BinOp("*", tuple(ctx.args)))


@emitter("torch", ir.merge.Subtract)
def _subtract(ctx: EmitContext) -> TorchLayer:
    return TorchLayer(BinOp("-", tuple(ctx.args)))


@emitter("torch", ir.merge.Divide)
def _divide(ctx: EmitContext) -> TorchLayer:
    return TorchLayer(BinOp("/", tuple(ctx.args)))


@emitter("torch", ir.merge.Concat)
def _concat(ctx: EmitContext) -> TorchLayer:
    batched = [ctx.graph.is_batched(v) for v in ctx.node.inputs]
    batch = Subscript(Attr(ctx.args[batched.index(True)], "shape"), (Atom("0"),))
    args = [a if b else method(a, "expand", batch, *[-1] * (len(s) - 1))
            for a, b, s in zip(ctx.args, batched, ctx.in_shapes)]
    return TorchLayer(call("torch.cat", List(tuple(args)), dim=ctx.node.attrs["axis"]))
