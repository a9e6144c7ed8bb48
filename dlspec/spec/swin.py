"""Swin Transformer's shifted-window self-attention (torchvision's ShiftedWindowAttention) as one layer."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from .base import invalid
from .layers import LayerBase, layer
from .types import PositiveInt
from .vision import Amounts, Pair


def pair(value) -> list[int]:
    """[h, w] of an int or a list of one or two ints."""
    return [value, value] if isinstance(value, int) else list(value) * (2 // len(value))


@layer
class WindowAttention(LayerBase):
    """Multi-head self-attention inside non-overlapping windows of an [H, W, C] sample, with a learned relative
    position bias, optionally on windows shifted cyclically by `shift` (torchvision's ShiftedWindowAttention,
    Swin v1). Parameters and buffer are named as torchvision's: `qkv.weight`, `qkv.bias`, `proj.weight`,
    `proj.bias`, `relative_position_bias_table` and the buffer `relative_position_index`."""

    type: Literal["window_attention"] = "window_attention"
    heads: PositiveInt
    """Number of heads; must divide C."""
    window: Pair
    """Window size [wh, ww] (one int: square). H and W are zero-padded at the end up to multiples of it."""
    shift: Amounts = 0
    """Cyclic shift [sh, sw] of the windows (one int: both), each smaller than its window; torchvision's shifted
    blocks use half the window. An axis whose padded size equals its window is not shifted (torchvision's rule)."""

    @model_validator(mode="after")
    def _shift_inside_window(self):
        if any(s >= w for s, w in zip(pair(self.shift), pair(self.window), strict=True)):
            invalid("shift", f"must be smaller than the window {pair(self.window)} on each axis")
        return self

    def lower_attrs(self) -> dict:
        attrs = super().lower_attrs()
        attrs["window"], attrs["shift"] = pair(self.window), pair(self.shift)
        return attrs
