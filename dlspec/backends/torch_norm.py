"""PyTorch emitters for layernorm and rmsnorm over any axes, prelu, adaptive pooling and stochastic depth."""

from __future__ import annotations

from .. import ir
from ..ir.norm import norm_axes, normalized_shape, trailing
from .context import EmitContext
from .registry import emitter
from .source import call, method
from .torch_emit import HELPERS, TorchLayer, construct


def _normalize(ctx: EmitContext, cls: str, **extra) -> TorchLayer:
    """``cls`` over the normalised axes: directly when they are the last ones, else between two permutes."""
    axes, rank = norm_axes(ctx.node.attrs, ctx.in_shape), len(ctx.in_shape) + 1
    shape = normalized_shape(ctx.node.attrs, ctx.in_shape)
    module = call(f"nn.{cls}", normalized_shape=shape[0] if len(shape) == 1 else shape, **extra)
    if trailing(axes, rank):
        return TorchLayer(call(ctx.module, ctx.x), module)
    perm = [0] + [a for a in range(1, rank) if a not in axes] + list(axes)
    inverse = [perm.index(a) for a in range(rank)]
    return TorchLayer(method(call(ctx.module, method(ctx.x, "permute", *perm)), "permute", *inverse), module)


@emitter("torch", ir.norm.LayerNorm)
def _layernorm(ctx: EmitContext) -> TorchLayer:
    return _normalize(ctx, "LayerNorm", eps=ctx.node.attrs["eps"])


@emitter("torch", ir.norm.RMSNorm)
def _rmsnorm(ctx: EmitContext) -> TorchLayer:
    return _normalize(ctx, "RMSNorm", eps=ctx.node.attrs["eps"])


@emitter("torch", ir.norm.PReLU)
def _prelu(ctx: EmitContext) -> TorchLayer:
    n = 1 if ctx.node.attrs["shared"] else ctx.in_shape[0]
    return TorchLayer(call(ctx.module, ctx.x), construct("nn.PReLU", num_parameters=n, init=0.25))


def _output_size(ctx: EmitContext):
    size = ctx.node.attrs["output_size"]
    return size if isinstance(size, int) else (size[0] if len(size) == 1 else tuple(size))


@emitter("torch", ir.norm.AdaptiveAvgPool)
def _adaptive_avg(ctx: EmitContext) -> TorchLayer:
    nd = len(ctx.in_shape) - 1
    return TorchLayer(call(f"F.adaptive_avg_pool{nd}d", ctx.x, output_size=_output_size(ctx)))


@emitter("torch", ir.norm.AdaptiveMaxPool)
def _adaptive_max(ctx: EmitContext) -> TorchLayer:
    nd = len(ctx.in_shape) - 1
    return TorchLayer(call(f"F.adaptive_max_pool{nd}d", ctx.x, output_size=_output_size(ctx)))


HELPERS["StochasticDepth"] = '''
class StochasticDepth(nn.Module):
    """torchvision's StochasticDepth: while training, zeroes whole samples (mode "row") or the whole batch
    (mode "batch") with probability p and scales the rest by 1 / (1 - p); the identity at inference."""

    def __init__(self, p, mode):
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        shape = (1,) * x.dim()
        if self.mode == "row":
            shape = (x.shape[0], *shape[1:])
        return x * x.new_empty(shape).bernoulli_(keep).div_(keep)
'''


@emitter("torch", ir.norm.StochasticDepth)
def _stochastic_depth(ctx: EmitContext) -> TorchLayer:
    """A module, as in torchvision (one short line in forward, however many digits the rate has)."""
    a = ctx.node.attrs
    return TorchLayer(call(ctx.module, ctx.x), call("StochasticDepth", p=a["rate"], mode=a["mode"]),
                      helpers=("StochasticDepth",))
