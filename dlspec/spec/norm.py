"""Normalisation over chosen axes, learned-slope activations, adaptive pooling and stochastic depth.

:func:`norm_axes` and :func:`adaptive_bins` are the single place where normalised axes and adaptive-pooling
bins are computed; every backend reads them.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, model_validator

from .base import invalid
from .layers import LayerBase, op
from .shapes import Param, Shape, ShapeError
from .types import Bool, PositiveFloat, Rate
from .vision import Pair, per_axis

Axes = list[Annotated[int, Field(strict=True)]]


def norm_axes(attrs: dict, shape: Shape) -> tuple[int, ...]:
    """The normalised axes as sorted sample axes 1..r (batch = 0), from ``attrs['axes']``."""
    rank = len(shape) + 1
    out = []
    for a in attrs["axes"]:
        if not -rank < a < rank or a % rank == 0:
            raise ShapeError(f"axes must be non-batch axes of a rank-{rank} tensor (batch included: 1..{rank - 1} "
                             f"or -{rank - 1}..-1)", attrs["axes"], "axes")
        out.append(a % rank)
    if len(set(out)) != len(out):
        raise ShapeError("axes name the same axis twice", attrs["axes"], "axes")
    return tuple(sorted(out))


def normalized_shape(attrs: dict, shape: Shape) -> tuple[int, ...]:
    """Sizes of the normalised axes, in axis order: the shape of weight and bias."""
    return tuple(shape[a - 1] for a in norm_axes(attrs, shape))


def trailing(axes: tuple[int, ...], rank: int) -> bool:
    """Whether sorted ``axes`` are the last axes of a rank-``rank`` tensor (batch included)."""
    return axes == tuple(range(rank - len(axes), rank))


PRELU_INIT = "constant:0.25"


def adaptive_bins(size: int, out: int) -> tuple[tuple[int, int], ...]:
    """torch's adaptive-pooling bins along one axis: [floor(i*size/out), ceil((i+1)*size/out)) for each i."""
    return tuple((i * size // out, math.ceil((i + 1) * size / out)) for i in range(out))


def adaptive_output(attrs: dict, shape: Shape) -> tuple[int, ...]:
    """The output size per spatial axis of a [C, *spatial] sample."""
    nd = len(shape) - 1
    if not 1 <= nd <= 3:
        raise ShapeError("adaptive pooling takes [C, L], [C, H, W] or [C, D, H, W] samples", shape)
    return per_axis(attrs["output_size"], nd, "output_size")


class _OverAxes(LayerBase):
    """What layernorm and rmsnorm share: `axes` (listed, no batch axis, no repeats) and a shape-preserving rule
    that checks them against the input."""

    @model_validator(mode="after")
    def _axes(self):
        if not self.axes:
            invalid("axes", "must list at least one axis")
        if 0 in self.axes:
            invalid("axes", "must not contain the batch axis 0")
        if len(set(self.axes)) != len(self.axes):
            invalid("axes", "must not repeat an axis")
        return self

    @classmethod
    def infer(cls, attrs, inputs):
        norm_axes(attrs, inputs[0])
        return inputs[0]


@op
class LayerNorm(_OverAxes):
    """Layer normalisation over `axes` (default the last), with affine scale and shift of the normalised shape:
    y = (x - mean) / sqrt(var + eps) * weight + bias, mean and biased variance taken over `axes` jointly; weight
    and bias have the normalised shape (the sizes of `axes` in axis order)."""

    type: Literal["layernorm"] = "layernorm"
    axes: Axes = [-1]
    """Axes normalised together, counting the batch as axis 0; negatives count from the end. `[1]` is the channel
    axis of a [C, H, W] sample (ConvNeXt's LayerNorm2d); `[-2, -1]` normalises the last two axes."""
    eps: PositiveFloat = 1e-5
    """Added to the variance (torch 1e-5, Keras 1e-3; dlspec's default 1e-5)."""

    @classmethod
    def params(cls, attrs, inputs):
        shape = normalized_shape(attrs, inputs[0])
        return (Param("weight", shape, "ones"), Param("bias", shape, "zeros"))


@op
class RMSNorm(_OverAxes):
    """Root-mean-square normalisation over `axes`: y = x / sqrt(mean(x^2) + eps) * weight (no centring, no bias),
    the mean taken over `axes` jointly (torch's F.rms_norm); weight has the normalised shape."""

    type: Literal["rmsnorm"] = "rmsnorm"
    axes: Axes = [-1]
    """Axes normalised together, counting the batch as axis 0; negatives count from the end."""
    eps: PositiveFloat = 1e-6
    """Added to the mean square (dlspec's default 1e-6; torch's nn.RMSNorm defaults to the dtype's epsilon)."""

    @classmethod
    def params(cls, attrs, inputs):
        return (Param("weight", normalized_shape(attrs, inputs[0]), "ones"),)


@op
class PReLU(LayerBase):
    """y = x if x >= 0 else weight[c] * x, c the index on axis 1: a learned slope per channel, or with `shared` one
    slope for every element (torch nn.PReLU; parameter `weight` of shape (C,) or (1,), initially 0.25)."""

    type: Literal["prelu"] = "prelu"
    shared: Bool = False
    """true: one slope for every element; false: one per channel (axis 1)."""

    @classmethod
    def infer(cls, attrs, inputs):
        if not inputs[0]:
            raise ShapeError("prelu needs samples with a channel axis", inputs[0])
        return inputs[0]

    @classmethod
    def params(cls, attrs, inputs):
        return (Param("weight", (1,) if attrs["shared"] else (inputs[0][0],), PRELU_INIT),)


class _Adaptive(LayerBase):
    @classmethod
    def infer(cls, attrs, inputs):
        return (inputs[0][0], *adaptive_output(attrs, inputs[0]))


@op
class AdaptiveAvgPool(_Adaptive):
    """torch's adaptive average pooling: output bin i of each spatial axis averages input positions
    floor(i * in / out) to ceil((i + 1) * in / out) - 1 (`adaptive_bins`), y[c, i, j] = mean of x[c, h, w] over
    the bins of i and j; output_size 1 is the global mean, keeping the axes."""

    type: Literal["adaptive_avgpool"] = "adaptive_avgpool"
    output_size: Pair = 1
    """Output size: one int for every spatial axis, or one per axis."""


@op
class AdaptiveMaxPool(_Adaptive):
    """torch's adaptive max pooling, with the bins of adaptive_avgpool: y[c, i, j] = max of x[c, h, w] over the
    bins of i and j."""

    type: Literal["adaptive_maxpool"] = "adaptive_maxpool"
    output_size: Pair = 1
    """Output size: one int for every spatial axis, or one per axis."""


@op
class StochasticDepth(LayerBase):
    """torchvision's StochasticDepth. Training: y = x * m / (1 - rate), m ~ Bernoulli(1 - rate) drawn once per
    sample (mode `row`: each whole sample is zeroed with probability `rate`) or once per batch (mode `batch`).
    Inference: identity."""

    type: Literal["stochastic_depth"] = "stochastic_depth"
    rate: Rate
    """Probability of dropping a sample (row) or the batch (batch)."""
    mode: Literal["row", "batch"] = "row"
    """row: one draw per sample; batch: one draw for the whole batch."""
