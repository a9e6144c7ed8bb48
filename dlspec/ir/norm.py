"""IR ops for normalisation over chosen axes, learned-slope activations, adaptive pooling and stochastic depth.

:func:`norm_axes` and :func:`adaptive_bins` are the single place where normalised axes and adaptive-pooling
bins are computed; every backend reads them.
"""

from __future__ import annotations

import math

from .. import spec
from ..spec.vision import per_axis
from .graph import Param, Shape
from .ops import Op, ShapeError, op


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


@op(spec.norm.LayerNorm)
class LayerNorm(Op):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, mean and biased variance taken over ``axes`` jointly;
    weight and bias have the normalised shape (the sizes of ``axes`` in axis order)."""

    def infer(self, attrs, inputs):
        norm_axes(attrs, inputs[0])
        return inputs[0]

    def params(self, attrs, inputs):
        shape = normalized_shape(attrs, inputs[0])
        return (Param("weight", shape, "ones"), Param("bias", shape, "zeros"))


@op(spec.norm.RMSNorm)
class RMSNorm(Op):
    """y = x / sqrt(mean(x^2) + eps) * weight, the mean taken over ``axes`` jointly (torch's F.rms_norm);
    weight has the normalised shape."""

    def infer(self, attrs, inputs):
        norm_axes(attrs, inputs[0])
        return inputs[0]

    def params(self, attrs, inputs):
        return (Param("weight", normalized_shape(attrs, inputs[0]), "ones"),)


PRELU_INIT = "constant:0.25"


@op(spec.norm.PReLU)
class PReLU(Op):
    """y = x if x >= 0 else weight[c] * x, c the index on axis 1 (torch nn.PReLU); with ``shared`` one slope.
    weight is (C,) or (1,), initially 0.25."""

    def infer(self, attrs, inputs):
        if not inputs[0]:
            raise ShapeError("prelu needs samples with a channel axis", inputs[0])
        return inputs[0]

    def params(self, attrs, inputs):
        return (Param("weight", (1,) if attrs["shared"] else (inputs[0][0],), PRELU_INIT),)


def adaptive_bins(size: int, out: int) -> tuple[tuple[int, int], ...]:
    """torch's adaptive-pooling bins along one axis: [floor(i*size/out), ceil((i+1)*size/out)) for each i."""
    return tuple((i * size // out, math.ceil((i + 1) * size / out)) for i in range(out))


def adaptive_output(attrs: dict, shape: Shape) -> tuple[int, ...]:
    """The output size per spatial axis of a [C, *spatial] sample."""
    nd = len(shape) - 1
    if not 1 <= nd <= 3:
        raise ShapeError("adaptive pooling takes [C, L], [C, H, W] or [C, D, H, W] samples", shape)
    return per_axis(attrs["output_size"], nd, "output_size")


class _Adaptive(Op):
    def infer(self, attrs, inputs):
        return (inputs[0][0], *adaptive_output(attrs, inputs[0]))


@op(spec.norm.AdaptiveAvgPool)
class AdaptiveAvgPool(_Adaptive):
    """y[c, i, j] = mean of x[c, h, w] over the bins of :func:`adaptive_bins` on each spatial axis
    (torch's adaptive_avg_pool; output_size 1 is the global mean, keeping the axes)."""


@op(spec.norm.AdaptiveMaxPool)
class AdaptiveMaxPool(_Adaptive):
    """y[c, i, j] = max of x[c, h, w] over the bins of :func:`adaptive_bins` on each spatial axis."""


@op(spec.norm.StochasticDepth)
class StochasticDepth(Op):
    """Inference: identity. Training (torchvision.ops.StochasticDepth): y = x * m / (1 - rate), m ~ Bernoulli(1 - rate)
    drawn once per sample (mode row) or once per batch (mode batch)."""
