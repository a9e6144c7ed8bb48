"""PyTorch emitter for local response normalisation."""

from __future__ import annotations

from .. import ir
from .context import EmitContext
from .registry import emitter
from .source import call
from .torch_emit import TorchLayer


@emitter("torch", ir.lrn.LRN)
def _lrn(ctx: EmitContext) -> TorchLayer:
    a = ctx.node.attrs
    module = call("nn.LocalResponseNorm", size=a["size"], alpha=a["alpha"], beta=a["beta"], k=a["k"])
    return TorchLayer(call(ctx.module, ctx.x), module)
