"""Local response normalisation across channels (AlexNet, GoogLeNet, ZFNet).

:func:`lrn_window` is the single place where the channel window is computed; every backend reads it.
"""

from __future__ import annotations

from typing import Literal

from .layers import LayerBase, op
from .shapes import ShapeError
from .types import Number, PositiveFloat, PositiveInt


def lrn_window(size: int) -> tuple[int, int]:
    """Channels summed before and after channel c: torch's window [c - size//2, c + (size-1)//2]."""
    return size // 2, (size - 1) // 2


@op
class LRN(LayerBase):
    """Local response normalisation across channels, as torch.nn.LocalResponseNorm:
    y[c] = x[c] / (k + alpha / size * sum of x[c']^2 for c' in [c - size//2, c + (size-1)//2]) ** beta,
    channels outside the tensor counting as zero. For an odd size this is ONNX's LRN (whose window for an even
    size is one channel later). Samples are [C, *spatial] with at least one spatial axis."""

    type: Literal["lrn"] = "lrn"
    size: PositiveInt
    """Number of neighbouring channels summed (the window includes the channel itself)."""
    alpha: Number = 1e-4
    """Scale of the sum of squares (divided by size; torch and ONNX default 1e-4)."""
    beta: Number = 0.75
    """Exponent (torch and ONNX default 0.75)."""
    k: PositiveFloat = 1.0
    """Additive constant (torch's k, ONNX's bias; default 1.0)."""

    @classmethod
    def infer(cls, attrs, inputs):
        if len(inputs[0]) < 2:
            raise ShapeError("lrn needs samples of rank 2 or more ([C, L], [C, H, W], ...)", inputs[0])
        return inputs[0]
