"""The convolution, pooling, normalisation and resampling ops and their geometry helpers, re-exported from
their definitions in dlspec/spec/vision.py."""

from ..spec.vision import (
    AvgPool1d,
    AvgPool2d,
    Conv1d,
    Conv2d,
    ConvGeometry,
    ConvTranspose2d,
    GlobalAvgPool,
    GlobalMaxPool,
    GroupNorm,
    MaxPool1d,
    MaxPool2d,
    PoolGeometry,
    Upsample,
    ZeroPad,
    conv_geometry,
    per_axis,
    pool_geometry,
    zero_pad_amounts,
)

__all__ = ["AvgPool1d", "AvgPool2d", "Conv1d", "Conv2d", "ConvGeometry", "ConvTranspose2d", "GlobalAvgPool",
           "GlobalMaxPool", "GroupNorm", "MaxPool1d", "MaxPool2d", "PoolGeometry", "Upsample", "ZeroPad",
           "conv_geometry", "per_axis", "pool_geometry", "zero_pad_amounts"]
