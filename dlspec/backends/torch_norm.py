"""PyTorch emitters for layernorm and rmsnorm over any axes, prelu, adaptive pooling and stochastic depth."""

from __future__ import annotations

from ..ir.norm import norm_axes, normalized_shape, trailing
from .codegen import kwargs, literal
from .context import EmitContext
from .registry import emitter
from .torch_emit import TorchLayer, construct


def _normalize(ctx: EmitContext, cls: str, **extra) -> TorchLayer:
    """``cls`` over the normalised axes: directly when they are the last ones, else between two permutes."""
    axes, rank = norm_axes(ctx.node.attrs, ctx.in_shape), len(ctx.in_shape) + 1
    shape = normalized_shape(ctx.node.attrs, ctx.in_shape)
    module = f"nn.{cls}({kwargs(normalized_shape=shape[0] if len(shape) == 1 else shape, **extra)})"
    if trailing(axes, rank):
        return TorchLayer(f"{ctx.module}({ctx.x})", module)
    perm = [0] + [a for a in range(1, rank) if a not in axes] + list(axes)
    inverse = [perm.index(a) for a in range(rank)]
    return TorchLayer(f"{ctx.module}({ctx.x}.permute{literal(tuple(perm))}).permute{literal(tuple(inverse))}", module)


@emitter("torch", "layernorm")
def _layernorm(ctx: EmitContext) -> TorchLayer:
    return _normalize(ctx, "LayerNorm", eps=ctx.node.attrs["eps"])


@emitter("torch", "rmsnorm")
def _rmsnorm(ctx: EmitContext) -> TorchLayer:
    return _normalize(ctx, "RMSNorm", eps=ctx.node.attrs["eps"])


@emitter("torch", "prelu")
def _prelu(ctx: EmitContext) -> TorchLayer:
    n = 1 if ctx.node.attrs["shared"] else ctx.in_shape[0]
    return TorchLayer(f"{ctx.module}({ctx.x})", construct("nn.PReLU", num_parameters=n, init=0.25))


def _output_size(ctx: EmitContext):
    size = ctx.node.attrs["output_size"]
    return size if isinstance(size, int) else (size[0] if len(size) == 1 else tuple(size))


@emitter("torch", "adaptive_avgpool")
def _adaptive_avg(ctx: EmitContext) -> TorchLayer:
    nd = len(ctx.in_shape) - 1
    return TorchLayer(f"F.adaptive_avg_pool{nd}d({ctx.x}, {kwargs(output_size=_output_size(ctx))})")


@emitter("torch", "adaptive_maxpool")
def _adaptive_max(ctx: EmitContext) -> TorchLayer:
    nd = len(ctx.in_shape) - 1
    return TorchLayer(f"F.adaptive_max_pool{nd}d({ctx.x}, {kwargs(output_size=_output_size(ctx))})")


@emitter("torch", "stochastic_depth")
def _stochastic_depth(ctx: EmitContext) -> TorchLayer:
    a, x = ctx.node.attrs, ctx.x
    keep = 1.0 - a["rate"]
    ones = (1,) * len(ctx.in_shape)
    shape = f"({x}.shape[0], {', '.join(map(str, ones))})" if a["mode"] == "row" else literal((1,) + ones)
    return TorchLayer(f"{x} * {x}.new_empty({shape}).bernoulli_({keep!r}).div_({keep!r}) if self.training else {x}")
