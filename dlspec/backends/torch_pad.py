"""PyTorch emitter of ``pad``."""

from __future__ import annotations

from .. import ir
from ..ir.pad import pad_axes, pad_widths
from .context import EmitContext
from .registry import emitter
from .source import Atom, Attr, BinOp, Lit, Neg, Paren, Subscript, call
from .torch_emit import TorchLayer


def _after(ctx: EmitContext, axis: int, before: int, after: int):
    """The end padding of ``axis``; with ``multiple``, computed from the size at run time (as torchvision's
    ``F.pad(x, (0, 0, 0, W % 2, 0, H % 2))``), so the module pads right at any input size."""
    multiple = ctx.node.attrs["multiple"]
    if multiple == 1:
        return after
    size = Subscript(Attr(ctx.x, "shape"), (Atom(str(axis + 1)),))
    if before + after:
        size = Paren(BinOp("+", (size, Lit(before + after))))
    rest = BinOp("%", (Neg(size), Lit(multiple)))
    return BinOp("+", (Lit(after), rest)) if after else rest


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
    return TorchLayer(call("F.pad", ctx.x, pad=pad, **({"value": value} if value else {})))
