"""Convolution, pooling, normalisation and resampling layers (channels-first, like torch and ONNX). Layout:
[C, *spatial].

Geometry helpers (:func:`conv_geometry`, :func:`pool_geometry`) are the single place where
padding and output sizes are computed; every backend reads them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, ClassVar, Literal

from pydantic import Field, PlainValidator, model_validator
from pydantic_core import PydanticCustomError

from .base import invalid
from .layers import Initializer, LayerBase, WeightedLayer, op
from .shapes import Param, Shape, ShapeError, numel
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


def per_axis(value, nd: int, attr: str) -> tuple[int, ...]:
    """An int or a list of one or ``nd`` ints, as one int per spatial axis."""
    if isinstance(value, int):
        return (value,) * nd
    if len(value) == 1:
        return tuple(value) * nd
    if len(value) != nd:
        raise ShapeError(f"needs 1 or {nd} values for {nd} spatial axes" if nd > 1 else
                         "needs one value for the single spatial axis", value, attr)
    return tuple(value)


def _spatial(inputs: list[Shape], nd: int, what: str) -> Shape:
    if len(inputs[0]) != nd + 1:
        axes = {1: "L", 2: "H, W", 3: "D, H, W"}[nd]
        raise ShapeError(f"{what} needs samples of rank {nd + 1} ([C, {axes}])", inputs[0])
    return inputs[0][1:]


@dataclass(frozen=True)
class ConvGeometry:
    """Per spatial axis: kernel, stride, dilation, (begin, end) padding, output size."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    out: tuple[int, ...]

    @property
    def symmetric(self) -> bool:
        """Whether every axis pads the same at both ends."""
        return all(b == e for b, e in self.pads)


def conv_geometry(attrs: dict, in_spatial: Shape) -> ConvGeometry:
    """Padding and output size of a convolution. ``same`` is TF's rule for every stride:
    out = ceil(in / stride), total padding split with the odd pixel at the end."""
    nd = len(in_spatial)
    k, s = per_axis(attrs["kernel"], nd, "kernel"), per_axis(attrs["stride"], nd, "stride")
    d = per_axis(attrs.get("dilation", 1), nd, "dilation")
    span = tuple(di * (ki - 1) + 1 for ki, di in zip(k, d))
    pad = attrs["padding"]
    if pad == "same":
        out = tuple(math.ceil(i / si) for i, si in zip(in_spatial, s))
        total = tuple(max((o - 1) * si + sp - i, 0) for o, si, sp, i in zip(out, s, span, in_spatial))
        pads = tuple((t // 2, t - t // 2) for t in total)
    else:
        pads = tuple((p, p) for p in (per_axis(0 if pad == "valid" else pad, nd, "padding")))
    out = tuple((i + b + e - sp) // si + 1 for i, (b, e), sp, si in zip(in_spatial, pads, span, s))
    if any(o < 1 for o in out):
        raise ShapeError(f"the kernel (span {span}) is larger than the padded input {tuple(in_spatial)}",
                         attrs["kernel"], "kernel")
    return ConvGeometry(k, s, d, pads, out)


@dataclass(frozen=True)
class PoolGeometry:
    """Per spatial axis: window, stride, padding, extra end padding from ceil_mode, output size,
    and the divisor of each output position along the axis (for average pooling)."""

    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    pads: tuple[int, ...]
    extra: tuple[int, ...]
    out: tuple[int, ...]
    bounds: tuple[tuple[int, int], ...]  # the window positions a divisor counts, per axis

    @property
    def divisors(self) -> tuple[tuple[int, ...], ...]:
        """Computed on demand: an axis has as many divisors as output positions, which only emitters need."""
        return tuple(tuple(min(j * s - p + k, hi) - max(j * s - p, lo) for j in range(o))
                     for k, s, p, o, (lo, hi) in zip(self.kernel, self.stride, self.pads, self.out, self.bounds))


def pool_geometry(attrs: dict, in_spatial: Shape, include_pad: bool = True) -> PoolGeometry:
    """torch's pooling arithmetic: out = floor or ceil((in + 2p - k) / s) + 1, where a last window
    that would start in the right padding is dropped. Average-pool divisors count the window inside
    [-p, in + p) when padding is included, else inside [0, in)."""
    nd = len(in_spatial)
    k = per_axis(attrs["kernel"], nd, "kernel")
    s = per_axis(attrs["stride"] or attrs["kernel"], nd, "stride")
    p = per_axis(attrs["padding"], nd, "padding")
    if any(2 * pi > ki for pi, ki in zip(p, k)):
        raise ShapeError("padding must be at most half the window", attrs["padding"], "padding")
    outs, extras, bounds = [], [], []
    for i, ki, si, pi in zip(in_spatial, k, s, p):
        span = i + 2 * pi - ki
        if span < 0:
            raise ShapeError(f"the window {k} is larger than the padded input {tuple(in_spatial)}", attrs["kernel"],
                             "kernel")
        o = (-(-span // si) if attrs["ceil_mode"] else span // si) + 1
        if attrs["ceil_mode"] and (o - 1) * si >= i + pi:
            o -= 1
        outs.append(o)
        extras.append(max((o - 1) * si + ki - (i + 2 * pi), 0))
        bounds.append((-pi, i + pi) if include_pad else (0, i))
    return PoolGeometry(k, s, p, tuple(extras), tuple(outs), tuple(bounds))


def _needs_spatial(inputs, what):
    if len(inputs[0]) < 2:
        raise ShapeError(f"{what} needs samples with spatial axes ([C, L], [C, H, W], ...)", inputs[0])


def zero_pad_amounts(attrs: dict, nd: int) -> tuple[tuple[int, int], ...]:
    """(begin, end) per spatial axis."""
    pad = attrs["padding"]
    if isinstance(pad, int):
        return ((pad, pad),) * nd
    if len(pad) != nd:
        raise ShapeError(f"needs one entry per spatial axis ({nd})", pad, "padding")
    return tuple((p, p) if isinstance(p, int) else tuple(p) for p in pad)


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

    nd: ClassVar[int] = 2  # spatial axes

    @classmethod
    def infer(cls, attrs, inputs):
        spatial = _spatial(inputs, cls.nd, cls.op_name)
        c, g = inputs[0][0], attrs["groups"]
        if c % g or attrs["filters"] % g:
            raise ShapeError(f"groups must divide the input channels ({c}) and the filters ({attrs['filters']})",
                             g, "groups")
        return (attrs["filters"], *conv_geometry(attrs, spatial).out)

    @classmethod
    def params(cls, attrs, inputs):
        c, g, f = inputs[0][0], attrs["groups"], attrs["filters"]
        k = per_axis(attrs["kernel"], cls.nd, "kernel")
        field = math.prod(k)
        out = (Param("weight", (f, c // g, *k), attrs["kernel_initializer"], c // g * field, f * field),)
        if attrs["use_bias"]:
            out += (Param("bias", (f,), attrs["bias_initializer"], c // g * field, f * field),)
        return out


@op
class Conv1d(_Conv):
    """1-D convolution (cross-correlation, as in every framework) over [C, L] samples:
    y[o, l] = act(bias[o] + sum_{c in group(o), j} weight[o, c, j] * x_padded[c, l*stride + j*dilation]),
    with weight (filters, in_channels/groups, k); padding and output size as `conv_geometry` computes them."""

    type: Literal["conv1d"] = "conv1d"

    nd: ClassVar[int] = 1


@op
class Conv2d(_Conv):
    """2-D convolution (cross-correlation) over [C, H, W] samples: conv1d's formula over H and W, with weight
    (filters, in_channels/groups, kh, kw)."""

    type: Literal["conv2d"] = "conv2d"


@op
class ConvTranspose2d(LayerBase):
    """Transposed 2-D convolution (the gradient of conv2d), as torch.nn.ConvTranspose2d defines it:
    out = (in-1)*stride - 2*padding + kernel + output_padding per spatial axis; weight is
    (in_channels, filters, kh, kw)."""

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

    @classmethod
    def geometry(cls, attrs, spatial):
        """(kernel, stride, padding, output_padding, output size), per spatial axis."""
        k, s = per_axis(attrs["kernel"], 2, "kernel"), per_axis(attrs["stride"], 2, "stride")
        p, op_ = per_axis(attrs["padding"], 2, "padding"), per_axis(attrs["output_padding"], 2, "output_padding")
        if any(o > pi or o >= si for o, pi, si in zip(op_, p, s)):
            raise ShapeError("output_padding must be at most padding and less than stride", attrs["output_padding"],
                             "output_padding")
        out = tuple((i - 1) * si - 2 * pi + ki + oi for i, si, pi, ki, oi in zip(spatial, s, p, k, op_))
        if any(o < 1 for o in out):
            raise ShapeError("padding removes the whole output", attrs["padding"], "padding")
        return k, s, p, op_, out

    @classmethod
    def infer(cls, attrs, inputs):
        return (attrs["filters"], *cls.geometry(attrs, _spatial(inputs, 2, "conv_transpose2d"))[-1])

    @classmethod
    def params(cls, attrs, inputs):
        c, f = inputs[0][0], attrs["filters"]
        k = per_axis(attrs["kernel"], 2, "kernel")
        field = math.prod(k)
        out = (Param("weight", (c, f, *k), attrs["kernel_initializer"], f * field, c * field),)
        if attrs["use_bias"]:
            out += (Param("bias", (f,), attrs["bias_initializer"], f * field, c * field),)
        return out


class _Pool(LayerBase):
    kernel: Pair
    """Window size."""
    stride: Pair | None = None
    """Stride. Default: the window size (as in torch and Keras)."""
    padding: Amounts = 0
    """Implicit padding at both ends of each axis, at most half the window."""
    ceil_mode: Bool = False
    """Round the output size up instead of down (torch's ceil_mode; Keras has none)."""

    nd: ClassVar[int] = 2  # spatial axes

    @classmethod
    def infer(cls, attrs, inputs):
        spatial = _spatial(inputs, cls.nd, cls.op_name)
        return (inputs[0][0], *pool_geometry(attrs, spatial).out)


@op
class MaxPool1d(_Pool):
    """Max over each window of [C, L] samples, x padded with -inf (padding never wins); window positions and
    output size as `pool_geometry` computes them."""

    type: Literal["maxpool1d"] = "maxpool1d"

    nd: ClassVar[int] = 1


@op
class MaxPool2d(_Pool):
    """Max over each 2-D window of [C, H, W] samples, x padded with -inf (padding never wins); geometry as
    maxpool1d's on each axis."""

    type: Literal["maxpool2d"] = "maxpool2d"


class _AvgPool(_Pool):
    count_include_pad: Bool = True
    """Whether padded zeros count in the divisor (torch's default true; Keras' `same` excludes them)."""


@op
class AvgPool1d(_AvgPool):
    """Mean over each window of [C, L] samples: the sum over the window of x padded with zeros, divided by the
    window's divisor (`pool_geometry`)."""

    type: Literal["avgpool1d"] = "avgpool1d"

    nd: ClassVar[int] = 1


@op
class AvgPool2d(_AvgPool):
    """Mean over each 2-D window of [C, H, W] samples; divisors as `pool_geometry` computes them (the ceil-mode
    overhang never counts)."""

    type: Literal["avgpool2d"] = "avgpool2d"


@op
class GlobalAvgPool(LayerBase):
    """Mean over all spatial axes: [C, ...] -> [C], y[c] = mean of x[c, ...]."""

    type: Literal["global_avgpool"] = "global_avgpool"

    @classmethod
    def infer(cls, attrs, inputs):
        _needs_spatial(inputs, "global_avgpool")
        return (inputs[0][0],)


@op
class GlobalMaxPool(LayerBase):
    """Max over all spatial axes: [C, ...] -> [C], y[c] = max of x[c, ...]."""

    type: Literal["global_maxpool"] = "global_maxpool"

    @classmethod
    def infer(cls, attrs, inputs):
        _needs_spatial(inputs, "global_maxpool")
        return (inputs[0][0],)


@op
class GroupNorm(LayerBase):
    """Group normalisation over channels split into `groups`, with per-channel scale and shift: each group of each
    sample is normalised over its channels and spatial positions (biased variance, eps inside the square root),
    then y = x_hat * weight[c] + bias[c]."""

    type: Literal["groupnorm"] = "groupnorm"
    groups: PositiveInt
    """Number of channel groups; must divide the channels."""
    eps: PositiveFloat = 1e-5
    """Added to the variance (torch 1e-5, Keras 1e-3; dlspec's default 1e-5)."""

    @classmethod
    def infer(cls, attrs, inputs):
        if len(inputs[0]) < 2 or inputs[0][0] % attrs["groups"]:
            raise ShapeError(f"groups must divide the channels ({inputs[0][0]}) of a [C, ...] sample",
                             attrs["groups"], "groups")
        per_group = inputs[0][0] // attrs["groups"] * numel(inputs[0][1:])
        if per_group < 2:  # torch refuses it at batch 1, and the output would be the bias alone
            raise ShapeError(f"each group must hold at least 2 values (channels / groups x spatial positions of "
                             f"{tuple(inputs[0])} gives {per_group})", attrs["groups"], "groups")
        return inputs[0]

    @classmethod
    def params(cls, attrs, inputs):
        c = inputs[0][0]
        return (Param("weight", (c,), "ones"), Param("bias", (c,), "zeros"))


@op
class ZeroPad(LayerBase):
    """Pads the spatial axes with zeros: an int, one per axis, or [begin, end] pairs per axis."""

    type: Literal["zero_pad"] = "zero_pad"
    padding: NonNegative | list[NonNegative | Annotated[list[NonNegative], Field(min_length=2, max_length=2)]]
    """Amounts: `1`, `[1, 2]` (per axis), or `[[0, 1], [0, 1]]` (begin and end per axis)."""

    @classmethod
    def infer(cls, attrs, inputs):
        _needs_spatial(inputs, "zero_pad")
        pads = zero_pad_amounts(attrs, len(inputs[0]) - 1)
        return (inputs[0][0], *(i + b + e for i, (b, e) in zip(inputs[0][1:], pads)))


@op
class Upsample(LayerBase):
    """Upsamples the spatial axes by an integer factor: output size = input * scale per spatial axis.
    nearest: y[i] = x[floor(i / scale)]. bilinear: linear interpolation at source coordinate
    (i + 0.5) / scale - 0.5 (clamped at 0), or i * (in - 1) / (out - 1) with align_corners."""

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

    @classmethod
    def infer(cls, attrs, inputs):
        nd = len(inputs[0]) - 1
        if nd not in (1, 2) or (attrs["mode"] == "bilinear" and nd != 2):
            raise ShapeError("upsample takes [C, L] (nearest) or [C, H, W] samples", inputs[0])
        scale = per_axis(attrs["scale"], nd, "scale")
        return (inputs[0][0], *(i * s for i, s in zip(inputs[0][1:], scale)))
