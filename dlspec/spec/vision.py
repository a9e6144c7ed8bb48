"""Convolution, pooling, normalisation and resampling layers (channels-first, like torch and ONNX)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, PlainValidator, model_validator
from pydantic_core import PydanticCustomError

from .base import invalid
from .layers import Initializer, LayerBase, WeightedLayer, layer
from .types import Bool, PositiveFloat, PositiveInt


def _ints(minimum: int, words: str, extra: tuple = ()):
    """An int >= minimum, or a list of one or two of them (one per spatial axis)."""

    def check(value):
        if value in extra and isinstance(value, str):
            return value
        one = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
        many = isinstance(value, list) and 1 <= len(value) <= 2 and all(
            isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in value)
        if not (one or many):
            alternatives = "".join(f"{e!r} or " for e in extra)
            raise PydanticCustomError("ints", f"must be {alternatives}{words}, or a list of one per spatial axis")
        return value

    schema = int | list[int] | (Literal[extra] if extra else int)  # noqa: PYI016
    return PlainValidator(check, json_schema_input_type=schema)


Pair = Annotated[int | list[int], _ints(1, "a positive integer")]
Amounts = Annotated[int | list[int], _ints(0, "a non-negative integer")]
Padding = Annotated[str | int | list[int], _ints(0, "a non-negative integer", ("valid", "same"))]
NonNegative = Annotated[int, Field(strict=True, ge=0)]


class _Conv(WeightedLayer):
    filters: PositiveInt
    """Number of output channels."""
    kernel: Pair
    """Kernel size: one int for every spatial axis, or one per axis."""
    stride: Pair = 1
    """Stride (both frameworks default to 1)."""
    dilation: Pair = 1
    """Dilation (spacing between kernel taps)."""
    groups: PositiveInt = 1
    """Channel groups; groups = input channels = filters/k is a depthwise convolution."""
    padding: Padding = "valid"
    """`valid` (none), `same` (TF's rule: output = ceil(input / stride), the odd pixel padded at the end,
    for every stride), or explicit symmetric amounts per axis."""


@layer
class Conv1d(_Conv):
    """1-D convolution (cross-correlation, as in every framework) over [C, L] samples."""

    type: Literal["conv1d"] = "conv1d"


@layer
class Conv2d(_Conv):
    """2-D convolution (cross-correlation) over [C, H, W] samples."""

    type: Literal["conv2d"] = "conv2d"


@layer
class ConvTranspose2d(LayerBase):
    """Transposed 2-D convolution (the gradient of conv2d), as torch.nn.ConvTranspose2d defines it."""

    type: Literal["conv_transpose2d"] = "conv_transpose2d"
    filters: PositiveInt
    """Number of output channels."""
    kernel: Pair
    """Kernel size."""
    stride: Pair = 1
    """Stride."""
    padding: Amounts = 0
    """Rows and columns removed from each border of the full output (torch's `padding`)."""
    output_padding: Amounts = 0
    """Extra rows and columns at the end of the output; at most `padding` and less than `stride`."""
    use_bias: Bool = True
    """Whether to add a bias."""
    kernel_initializer: Initializer = "glorot_uniform"
    """Initial distribution of the weight."""
    bias_initializer: Initializer = "zeros"
    """Initial distribution of the bias."""


class _Pool(LayerBase):
    kernel: Pair
    """Window size."""
    stride: Pair | None = None
    """Stride. Default: the window size (as in torch and Keras)."""
    padding: Amounts = 0
    """Implicit padding at both ends of each axis, at most half the window."""
    ceil_mode: Bool = False
    """Round the output size up instead of down (torch's ceil_mode; Keras has none)."""


@layer
class MaxPool1d(_Pool):
    """Max over each window of [C, L] samples; padding never wins (it is -inf)."""

    type: Literal["maxpool1d"] = "maxpool1d"


@layer
class MaxPool2d(_Pool):
    """Max over each window of [C, H, W] samples; padding never wins (it is -inf)."""

    type: Literal["maxpool2d"] = "maxpool2d"


class _AvgPool(_Pool):
    count_include_pad: Bool = True
    """Whether padded zeros count in the divisor (torch's default true; Keras' `same` excludes them)."""


@layer
class AvgPool1d(_AvgPool):
    """Mean over each window of [C, L] samples."""

    type: Literal["avgpool1d"] = "avgpool1d"


@layer
class AvgPool2d(_AvgPool):
    """Mean over each window of [C, H, W] samples."""

    type: Literal["avgpool2d"] = "avgpool2d"


@layer
class GlobalAvgPool(LayerBase):
    """Mean over all spatial axes: [C, ...] -> [C]."""

    type: Literal["global_avgpool"] = "global_avgpool"


@layer
class GlobalMaxPool(LayerBase):
    """Max over all spatial axes: [C, ...] -> [C]."""

    type: Literal["global_maxpool"] = "global_maxpool"


@layer
class GroupNorm(LayerBase):
    """Group normalisation over channels split into `groups`, with per-channel scale and shift."""

    type: Literal["groupnorm"] = "groupnorm"
    groups: PositiveInt
    """Number of channel groups; must divide the channels."""
    eps: PositiveFloat = 1e-5
    """Added to the variance (torch 1e-5, Keras 1e-3; dlspec's default 1e-5)."""


@layer
class ZeroPad(LayerBase):
    """Pads the spatial axes with zeros: an int, one per axis, or [begin, end] pairs per axis."""

    type: Literal["zero_pad"] = "zero_pad"
    padding: NonNegative | list[NonNegative | Annotated[list[NonNegative], Field(min_length=2, max_length=2)]]
    """Amounts: `1`, `[1, 2]` (per axis), or `[[0, 1], [0, 1]]` (begin and end per axis)."""


@layer
class Upsample(LayerBase):
    """Upsamples the spatial axes by an integer factor."""

    type: Literal["upsample"] = "upsample"
    scale: Pair
    """Integer factor per spatial axis."""
    mode: Literal["nearest", "bilinear"] = "nearest"
    """nearest: each output pixel copies input pixel floor(i / scale); bilinear: linear in each axis."""
    align_corners: Bool = False
    """bilinear only: false maps pixel centres (half-pixel, torch's default and Keras');
    true maps corner pixels onto corner pixels."""

    @model_validator(mode="after")
    def _bilinear_only(self):
        if self.given("align_corners") and self.mode != "bilinear":
            invalid("align_corners", "applies only to mode 'bilinear'")
        return self
