"""PyTorch emitter of ``pad``."""

from __future__ import annotations

from .. import ir
from ..ir.pad import pad_axes, pad_widths
from .codegen import Raw, kwargs
from .context import EmitContext
from .registry import emitter
from .torch_emit import TorchLayer


def _after(ctx: EmitContext, axis: int, before: int, after: int):
    """The end padding of ``axis``; with ``multiple``, computed from the size at run time (as torchvision's
    ``F.pad(x, (0, 0, 0, W % 2, 0, H % 2))``), so the module pads right at any input size."""
    multiple = ctx.node.attrs["multiple"]
    if multiple == 1:
        return after
    size = f"{ctx.x}.shape[{axis + 1}]" + (f" + {before + after}" if before + after else "")
    rest = f"-{size} % {multiple}" if size.endswith("]") else f"-({size}) % {multiple}"
    return Raw(f"{after} + {rest}" if after else rest)


@emitter("torch", ir.pad.Pad)
def _pad(ctx: EmitContext) -> TorchLayer:
    attrs = ctx.node.attrs
    if attrs["multiple"] == 1:
        widths = {axis: (b, a) for axis, b, a in pad_widths(attrs, ctx.in_shape)}
    else:  # every listed axis: whether it needs padding depends on the size it has at run time
        widths = {axis: (b, _after(ctx, axis, b, a)) for axis, b, a in pad_axes(attrs, ctx.in_shape)}
    if not widths:
        return TorchLayer(ctx.x)
    # F.pad reads (before, after) pairs from the last axis backwards, down to the first axis it pads
    pad = tuple(w for axis in reversed(range(min(widths), len(ctx.in_shape))) for w in widths.get(axis, (0, 0)))
    value = attrs["value"]
    return TorchLayer(f"F.pad({ctx.x}, {kwargs(pad=pad, **({'value': value} if value else {}))})")
