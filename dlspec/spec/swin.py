"""Swin Transformer's shifted-window self-attention (torchvision's ShiftedWindowAttention) as one layer.

The window geometry, the relative position index and the mask of shifted windows are computed here, once; every
backend reads them (or writes the same formulas into its helper)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import model_validator

from .base import invalid
from .layers import LayerBase, op
from .shapes import Param, ShapeError
from .types import PositiveInt
from .vision import Amounts, Pair

MASKED = -100.0  # added to the score of a key in another region of a shifted window (torchvision's value)


@dataclass(frozen=True)
class Windows:
    """Geometry of window attention on an [H, W, C] sample: padded sizes and the shifts that apply."""

    h: int
    w: int
    c: int
    heads: int
    window: tuple[int, int]
    padded: tuple[int, int]  # H and W rounded up to multiples of the window
    shift: tuple[int, int]  # the spec's shift, 0 on an axis whose padded size equals its window

    @property
    def count(self) -> int:
        """Windows per sample."""
        return (self.padded[0] // self.window[0]) * (self.padded[1] // self.window[1])

    @property
    def tokens(self) -> int:
        """Tokens per window."""
        return self.window[0] * self.window[1]


def windows(attrs: dict, shape) -> Windows:
    """The geometry, or a :class:`ShapeError` for a sample that is not [H, W, C] or heads that do not divide C."""
    if len(shape) != 3:
        raise ShapeError("window_attention needs [H, W, C] samples (channels last)", shape)
    h, w, c = shape
    if c % attrs["heads"]:
        raise ShapeError(f"heads must divide the channels ({c})", attrs["heads"], "heads")
    window = tuple(attrs["window"])
    padded = tuple(-(-size // k) * k for size, k in zip((h, w), window, strict=True))
    shift = tuple(0 if k >= p else s for s, k, p in zip(attrs["shift"], window, padded, strict=True))
    return Windows(h, w, c, attrs["heads"], window, padded, shift)


def compact(pair) -> int | list[int]:
    """One int for a square window or shift, as generated code writes it (a block's class then takes it as a
    named argument), else [h, w]."""
    return pair[0] if pair[0] == pair[1] else list(pair)


def relative_position_index(window) -> tuple[int, ...]:
    """torchvision's index into the bias table for each (query i, key j) of a window, tokens row-major:
    (yi - yj + wh - 1) * (2 ww - 1) + (xi - xj + ww - 1), flattened over (i, j)."""
    wh, ww = window
    cells = [(y, x) for y in range(wh) for x in range(ww)]
    return tuple((yi - yj + wh - 1) * (2 * ww - 1) + (xi - xj + ww - 1) for yi, xi in cells for yj, xj in cells)


def regions(padded: int, window: int, shift: int) -> list[int]:
    """Per padded row (or column): which part of the rolled axis it holds, 0, 1 or 2 (all 0 without shift).
    Rows [0, P - window) are 0, [P - window, P - shift) are 1, [P - shift, P) are 2; in a shifted window tokens
    of different parts were not neighbours before the roll."""
    if not shift:
        return [0] * padded
    return [(r >= padded - window) + (r >= padded - shift) for r in range(padded)]


def window_mask(g: Windows) -> list | None:
    """The mask added to the scores, [windows, tokens, tokens] (windows row-major, tokens row-major inside):
    MASKED where query and key lie in different regions (3 * row part + column part), else 0; None without
    shift."""
    if not any(g.shift):
        return None
    rows, cols = (regions(p, k, s) for p, k, s in zip(g.padded, g.window, g.shift, strict=True))
    (wh, ww), out = g.window, []
    for top in range(0, g.padded[0], wh):
        for left in range(0, g.padded[1], ww):
            label = [3 * rows[top + y] + cols[left + x] for y in range(wh) for x in range(ww)]
            out.append([[0.0 if a == b else MASKED for b in label] for a in label])
    return out


def pair(value) -> list[int]:
    """[h, w] of an int or a list of one or two ints."""
    return [value, value] if isinstance(value, int) else list(value) * (2 // len(value))


@op
class WindowAttention(LayerBase):
    """Multi-head self-attention inside non-overlapping windows of an [H, W, C] sample, with a learned relative
    position bias, optionally on windows shifted cyclically by `shift` (torchvision's ShiftedWindowAttention,
    Swin v1). Parameters and buffer are named as torchvision's: `qkv.weight`, `qkv.bias`, `proj.weight`,
    `proj.bias`, `relative_position_bias_table` and the buffer `relative_position_index`.

    Exactly torchvision's shifted_window_attention, C = heads * d:

    1. zero-pad H and W at the end up to multiples of the window (wh, ww);
    2. the shift (sh, sw) becomes 0 on an axis whose padded size equals its window; if a shift remains, roll the
       padded sample by (-sh, -sw) along H, W (torch.roll);
    3. cut into windows of wh * ww tokens (windows row-major, tokens row-major inside);
    4. per window: q, k, v = x @ qkv.weight.T + qkv.bias, split in three along features, each split into heads
       of d features; scores = (q * d ** -0.5) @ k^T + B, where B[h, i, j] =
       relative_position_bias_table[relative_position_index[i * wh*ww + j], h]; with a shift, add the mask:
       -100 where query and key lie in different regions of the rolled sample (rows [0, P - wh), [P - wh, P - sh),
       [P - sh, P), likewise columns), else 0;
    5. softmax over keys, @ v, heads concatenated, @ proj.weight.T + proj.bias;
    6. windows put back, roll by (+sh, +sw), crop to H, W.

    Parameters: qkv.weight (3C, C), qkv.bias (3C), proj.weight (C, C), proj.bias (C),
    relative_position_bias_table ((2wh-1)(2ww-1), heads); buffer relative_position_index ((wh*ww)^2,), the fixed
    index of step 4 (stored as float32, read as integers)."""

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

    @classmethod
    def infer(cls, attrs, inputs):
        windows(attrs, inputs[0])
        return inputs[0]

    @classmethod
    def params(cls, attrs, inputs):
        g = windows(attrs, inputs[0])
        c, (wh, ww) = g.c, g.window
        return (Param("qkv.weight", (3 * c, c), "glorot_uniform", c, 3 * c),
                Param("qkv.bias", (3 * c,), "zeros"),
                Param("proj.weight", (c, c), "glorot_uniform", c, c),
                Param("proj.bias", (c,), "zeros"),
                Param("relative_position_bias_table", ((2 * wh - 1) * (2 * ww - 1), g.heads), "normal"),
                Param("relative_position_index", ((wh * ww) ** 2,), "fixed", trainable=False,
                      value=relative_position_index(g.window)))
