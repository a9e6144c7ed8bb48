"""The normalisation, learned-slope, adaptive-pooling and stochastic-depth ops and their helpers, re-exported from
their definitions in dlspec/spec/norm.py."""

from ..spec.norm import (
    PRELU_INIT,
    AdaptiveAvgPool,
    AdaptiveMaxPool,
    LayerNorm,
    PReLU,
    RMSNorm,
    StochasticDepth,
    adaptive_bins,
    adaptive_output,
    norm_axes,
    normalized_shape,
    trailing,
)

__all__ = ["PRELU_INIT", "AdaptiveAvgPool", "AdaptiveMaxPool", "LayerNorm", "PReLU", "RMSNorm", "StochasticDepth",
           "adaptive_bins", "adaptive_output", "norm_axes", "normalized_shape", "trailing"]
