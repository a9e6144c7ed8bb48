"""Normalisation over chosen axes, learned-slope activations, adaptive pooling and stochastic depth."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from .base import invalid
from .layers import LayerBase, layer
from .types import Bool, PositiveFloat, Rate
from .vision import Pair

Axes = list[Annotated[int, Field(strict=True)]]


def _check_axes(model, field: str = "axes"):
    axes = getattr(model, field)
    if not axes:
        invalid(field, "must list at least one axis")
    if 0 in axes:
        invalid(field, "must not contain the batch axis 0")
    if len(set(axes)) != len(axes):
        invalid(field, "must not repeat an axis")
    return model


@layer
class LayerNorm(LayerBase):
    """Layer normalisation over `axes` (default the last), with affine scale and shift of the normalised shape."""

    type: Literal["layernorm"] = "layernorm"
    axes: Axes = [-1]
    """Axes normalised together, counting the batch as axis 0; negatives count from the end. `[1]` is the channel
    axis of a [C, H, W] sample (ConvNeXt's LayerNorm2d); `[-2, -1]` normalises the last two axes."""
    eps: PositiveFloat = 1e-5
    """Added to the variance (torch 1e-5, Keras 1e-3; dlspec's default 1e-5)."""

    @model_validator(mode="after")
    def _axes(self):
        return _check_axes(self)


@layer
class RMSNorm(LayerBase):
    """Root-mean-square normalisation over `axes`: y = x / sqrt(mean(x^2) + eps) * weight (no centring, no bias)."""

    type: Literal["rmsnorm"] = "rmsnorm"
    axes: Axes = [-1]
    """Axes normalised together, counting the batch as axis 0; negatives count from the end."""
    eps: PositiveFloat = 1e-6
    """Added to the mean square (dlspec's default 1e-6; torch's nn.RMSNorm defaults to the dtype's epsilon)."""

    @model_validator(mode="after")
    def _axes(self):
        return _check_axes(self)


@layer
class PReLU(LayerBase):
    """x if x >= 0 else weight * x, with a learned slope per channel (axis 1) or one shared slope (torch nn.PReLU;
    parameter `weight`, initially 0.25)."""

    type: Literal["prelu"] = "prelu"
    shared: Bool = False
    """true: one slope for every element; false: one per channel (axis 1)."""


@layer
class AdaptiveAvgPool(LayerBase):
    """torch's adaptive average pooling: output bin i of each spatial axis averages input positions
    floor(i * in / out) to ceil((i + 1) * in / out) - 1."""

    type: Literal["adaptive_avgpool"] = "adaptive_avgpool"
    output_size: Pair = 1
    """Output size: one int for every spatial axis, or one per axis."""


@layer
class AdaptiveMaxPool(LayerBase):
    """torch's adaptive max pooling, with the bins of adaptive_avgpool."""

    type: Literal["adaptive_maxpool"] = "adaptive_maxpool"
    output_size: Pair = 1
    """Output size: one int for every spatial axis, or one per axis."""


@layer
class StochasticDepth(LayerBase):
    """torchvision's StochasticDepth. Training: mode `row` zeroes each whole sample with probability `rate` (mode
    `batch`: the whole batch at once) and scales the rest by 1/(1-rate). Inference: identity."""

    type: Literal["stochastic_depth"] = "stochastic_depth"
    rate: Rate
    """Probability of dropping a sample (row) or the batch (batch)."""
    mode: Literal["row", "batch"] = "row"
    """row: one draw per sample; batch: one draw for the whole batch."""
