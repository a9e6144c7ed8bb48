"""Local response normalisation across channels (AlexNet, GoogLeNet, ZFNet)."""

from __future__ import annotations

from typing import Literal

from .layers import LayerBase, layer
from .types import Number, PositiveFloat, PositiveInt


@layer
class LRN(LayerBase):
    """Local response normalisation across channels, as torch.nn.LocalResponseNorm:
    y[c] = x[c] / (k + alpha / size * sum of x[c']^2 for c' in [c - size//2, c + (size-1)//2]) ** beta,
    channels outside the tensor counting as zero. For an odd size this is ONNX's LRN."""

    type: Literal["lrn"] = "lrn"
    size: PositiveInt
    """Number of neighbouring channels summed (the window includes the channel itself)."""
    alpha: Number = 1e-4
    """Scale of the sum of squares (divided by size; torch and ONNX default 1e-4)."""
    beta: Number = 0.75
    """Exponent (torch and ONNX default 0.75)."""
    k: PositiveFloat = 1.0
    """Additive constant (torch's k, ONNX's bias; default 1.0)."""
