"""IR ops for convolution, pooling, normalisation and resampling. Layout: [C, *spatial].

Geometry helpers (:func:`conv_geometry`, :func:`pool_geometry`) are the single place where
padding and output sizes are computed; every backend reads them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import spec
from .graph import Param, Shape
from .ops import Op, ShapeError, _numel, op


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


class _ConvOp(Op):
    nd = 2

    def infer(self, attrs, inputs):
        spatial = _spatial(inputs, self.nd, self.name)
        c, g = inputs[0][0], attrs["groups"]
        if c % g or attrs["filters"] % g:
            raise ShapeError(f"groups must divide the input channels ({c}) and the filters ({attrs['filters']})",
                             g, "groups")
        return (attrs["filters"], *conv_geometry(attrs, spatial).out)

    def params(self, attrs, inputs):
        c, g, f = inputs[0][0], attrs["groups"], attrs["filters"]
        k = per_axis(attrs["kernel"], self.nd, "kernel")
        field = math.prod(k)
        out = (Param("weight", (f, c // g, *k), attrs["kernel_initializer"], c // g * field, f * field),)
        if attrs["use_bias"]:
            out += (Param("bias", (f,), attrs["bias_initializer"], c // g * field, f * field),)
        return out


@op(spec.vision.Conv1d)
class Conv1d(_ConvOp):
    """y[o, l] = act(bias[o] + sum_{c in group(o), j} weight[o, c, j] * x_padded[c, l*stride + j*dilation]).

    weight is (filters, in_channels/groups, k); padding per :func:`conv_geometry`.
    """

    nd = 1


@op(spec.vision.Conv2d)
class Conv2d(_ConvOp):
    """Cross-correlation over H and W as Conv1d, with weight (filters, in_channels/groups, kh, kw)."""

    nd = 2


@op(spec.vision.ConvTranspose2d)
class ConvTranspose2d(Op):
    """torch.nn.ConvTranspose2d: out = (in-1)*stride - 2*padding + kernel + output_padding.

    weight is (in_channels, filters, kh, kw).
    """

    def geometry(self, attrs, spatial):
        k, s = per_axis(attrs["kernel"], 2, "kernel"), per_axis(attrs["stride"], 2, "stride")
        p, op_ = per_axis(attrs["padding"], 2, "padding"), per_axis(attrs["output_padding"], 2, "output_padding")
        if any(o > pi or o >= si for o, pi, si in zip(op_, p, s)):
            raise ShapeError("output_padding must be at most padding and less than stride", attrs["output_padding"],
                             "output_padding")
        out = tuple((i - 1) * si - 2 * pi + ki + oi for i, si, pi, ki, oi in zip(spatial, s, p, k, op_))
        if any(o < 1 for o in out):
            raise ShapeError("padding removes the whole output", attrs["padding"], "padding")
        return k, s, p, op_, out

    def infer(self, attrs, inputs):
        return (attrs["filters"], *self.geometry(attrs, _spatial(inputs, 2, "conv_transpose2d"))[-1])

    def params(self, attrs, inputs):
        c, f = inputs[0][0], attrs["filters"]
        k = per_axis(attrs["kernel"], 2, "kernel")
        field = math.prod(k)
        out = (Param("weight", (c, f, *k), attrs["kernel_initializer"], f * field, c * field),)
        if attrs["use_bias"]:
            out += (Param("bias", (f,), attrs["bias_initializer"], f * field, c * field),)
        return out


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


class _PoolOp(Op):
    nd = 2

    def infer(self, attrs, inputs):
        spatial = _spatial(inputs, self.nd, self.name)
        return (inputs[0][0], *pool_geometry(attrs, spatial).out)


@op(spec.vision.MaxPool1d)
class MaxPool1d(_PoolOp):
    """y[c, l] = max over the window of x padded with -inf; geometry per :func:`pool_geometry`."""

    nd = 1


@op(spec.vision.MaxPool2d)
class MaxPool2d(_PoolOp):
    """Max over 2-D windows of x padded with -inf."""


@op(spec.vision.AvgPool1d)
class AvgPool1d(_PoolOp):
    """Sum over the window of x padded with zeros, divided by the window's divisor (:func:`pool_geometry`)."""

    nd = 1


@op(spec.vision.AvgPool2d)
class AvgPool2d(_PoolOp):
    """Average over 2-D windows; divisors per :func:`pool_geometry` (ceil-mode overhang never counts)."""


def _needs_spatial(inputs, what):
    if len(inputs[0]) < 2:
        raise ShapeError(f"{what} needs samples with spatial axes ([C, L], [C, H, W], ...)", inputs[0])


@op(spec.vision.GlobalAvgPool)
class GlobalAvgPool(Op):
    """y[c] = mean of x[c, ...] over all spatial axes."""

    def infer(self, attrs, inputs):
        _needs_spatial(inputs, "global_avgpool")
        return (inputs[0][0],)


@op(spec.vision.GlobalMaxPool)
class GlobalMaxPool(Op):
    """y[c] = max of x[c, ...] over all spatial axes."""

    def infer(self, attrs, inputs):
        _needs_spatial(inputs, "global_maxpool")
        return (inputs[0][0],)


@op(spec.vision.GroupNorm)
class GroupNorm(Op):
    """Channels split into groups; each group of each sample is normalised over its channels and spatial
    positions (biased variance, eps inside the square root), then y = x_hat * weight[c] + bias[c]."""

    def infer(self, attrs, inputs):
        if len(inputs[0]) < 2 or inputs[0][0] % attrs["groups"]:
            raise ShapeError(f"groups must divide the channels ({inputs[0][0]}) of a [C, ...] sample",
                             attrs["groups"], "groups")
        per_group = inputs[0][0] // attrs["groups"] * _numel(inputs[0][1:])
        if per_group < 2:  # torch refuses it at batch 1, and the output would be the bias alone
            raise ShapeError(f"each group must hold at least 2 values (channels / groups x spatial positions of "
                             f"{tuple(inputs[0])} gives {per_group})", attrs["groups"], "groups")
        return inputs[0]

    def params(self, attrs, inputs):
        c = inputs[0][0]
        return (Param("weight", (c,), "ones"), Param("bias", (c,), "zeros"))


def zero_pad_amounts(attrs: dict, nd: int) -> tuple[tuple[int, int], ...]:
    """(begin, end) per spatial axis."""
    pad = attrs["padding"]
    if isinstance(pad, int):
        return ((pad, pad),) * nd
    if len(pad) != nd:
        raise ShapeError(f"needs one entry per spatial axis ({nd})", pad, "padding")
    return tuple((p, p) if isinstance(p, int) else tuple(p) for p in pad)


@op(spec.vision.ZeroPad)
class ZeroPad(Op):
    """Zeros added before and after each spatial axis."""

    def infer(self, attrs, inputs):
        _needs_spatial(inputs, "zero_pad")
        pads = zero_pad_amounts(attrs, len(inputs[0]) - 1)
        return (inputs[0][0], *(i + b + e for i, (b, e) in zip(inputs[0][1:], pads)))


@op(spec.vision.Upsample)
class Upsample(Op):
    """Output size = input * scale per spatial axis. nearest: y[i] = x[floor(i / scale)].
    bilinear: linear interpolation at source coordinate (i + 0.5) / scale - 0.5 (clamped at 0), or
    i * (in - 1) / (out - 1) with align_corners."""

    def infer(self, attrs, inputs):
        nd = len(inputs[0]) - 1
        if nd not in (1, 2) or (attrs["mode"] == "bilinear" and nd != 2):
            raise ShapeError("upsample takes [C, L] (nearest) or [C, H, W] samples", inputs[0])
        scale = per_axis(attrs["scale"], nd, "scale")
        return (inputs[0][0], *(i * s for i, s in zip(inputs[0][1:], scale)))
