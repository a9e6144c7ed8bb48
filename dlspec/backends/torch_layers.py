"""Torch emitters of the core ops (dlspec/spec/layers.py): dense, activation, dropout, batch norm, flatten,
reshape."""

from __future__ import annotations

from .. import ir
from ..ir import Act
from .context import EmitContext
from .registry import emitter
from .source import Attr, Call, call, method
from .torch_emit import TorchLayer, activation, construct, init_statement


def _inits(ctx: EmitContext) -> list[Call]:
    node = ctx.node
    return [init_statement(p, Attr(ctx.module, p.name)) for p in node.params
            if p.trainable and not (p.init in ("ones", "zeros") and node.op in ("batchnorm", "layernorm"))]


@emitter("torch", ir.ops.Dense)
def _dense(ctx: EmitContext) -> TorchLayer:
    a = ctx.node.attrs
    module = construct("nn.Linear", in_features=ctx.in_shape[-1], out_features=a["units"], bias=a["use_bias"])
    return TorchLayer(activation(Act.of(a["activation"]), call(ctx.module, ctx.x)), module, _inits(ctx))


@emitter("torch", ir.ops.Activation)
def _activation(ctx: EmitContext) -> TorchLayer:
    act = Act.of(ctx.node.attrs)
    out = activation(act, ctx.x)
    if ctx.inplace and act is not None and act.kind in ("relu", "relu6", "leaky_relu", "elu"):
        out = out.plus(inplace=True)
    return TorchLayer(out)


@emitter("torch", ir.ops.Dropout)
def _dropout(ctx: EmitContext) -> TorchLayer:
    return TorchLayer(call(ctx.module, ctx.x), call("nn.Dropout", p=ctx.node.attrs["rate"]))


@emitter("torch", ir.ops.BatchNorm)
def _batchnorm(ctx: EmitContext) -> TorchLayer:
    a, rank = ctx.node.attrs, len(ctx.in_shape)
    cls = {1: "BatchNorm1d", 2: "BatchNorm1d", 3: "BatchNorm2d", 4: "BatchNorm3d"}[rank]
    module = call(f"nn.{cls}", num_features=ctx.in_shape[0], eps=a["eps"], momentum=a["momentum"])
    return TorchLayer(call(ctx.module, ctx.x), module)


@emitter("torch", ir.ops.Flatten)
def _flatten(ctx: EmitContext) -> TorchLayer:
    return TorchLayer(call("torch.flatten", ctx.x, start_dim=1))


@emitter("torch", ir.ops.Reshape)
def _reshape(ctx: EmitContext) -> TorchLayer:
    return TorchLayer(method(ctx.x, "reshape", -1, *ctx.node.shape))
