"""PyTorch emitter for local response normalisation."""

from __future__ import annotations

from .. import ir
from .codegen import kwargs
from .context import EmitContext
from .registry import emitter
from .torch_emit import TorchLayer


@emitter("torch", ir.lrn.LRN)
def _lrn(ctx: EmitContext) -> TorchLayer:
    a = ctx.node.attrs
    module = f"nn.LocalResponseNorm({kwargs(size=a['size'], alpha=a['alpha'], beta=a['beta'], k=a['k'])})"
    return TorchLayer(f"{ctx.module}({ctx.x})", module)
