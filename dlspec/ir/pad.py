"""IR op `pad`: constant padding of non-batch axes."""

from __future__ import annotations

from .. import spec
from .ops import Op, ShapeError, op
from .tensor import sample_axis


def pad_axes(attrs: dict, shape) -> list[tuple[int, int, int]]:
    """(sample axis, before, after) per listed axis, in the spec's order, without ``multiple``'s share."""
    n = len(attrs["axes"])
    out: list[tuple[int, int, int]] = []
    for axis, b, a in zip(attrs["axes"], attrs["before"] or [0] * n, attrs["after"] or [0] * n, strict=True):
        k = sample_axis(axis, len(shape), "axes")
        if any(k == j for j, _, _ in out):
            raise ShapeError("axes must not repeat an axis", attrs["axes"], "axes")
        out.append((k, b, a))
    return out


def pad_widths(attrs: dict, shape) -> list[tuple[int, int, int]]:
    """(sample axis, elements before, elements after) per padded axis, ``multiple``'s share included; axes
    that get no padding are left out."""
    m = attrs["multiple"]
    out = [(k, b, a + -(shape[k] + b + a) % m) for k, b, a in pad_axes(attrs, shape)]
    return [w for w in out if w[1] or w[2]]


@op(spec.pad.Pad)
class Pad(Op):
    """out[..., i + before, ...] = x[..., i, ...] along each listed axis; every other element of the output,
    before and after, is ``value``. An axis of size n becomes before + n + after, where after also holds
    (-(before + n + after)) mod multiple more elements."""

    def infer(self, attrs, inputs):
        shape = list(inputs[0])
        for axis, b, a in pad_widths(attrs, inputs[0]):
            shape[axis] += b + a
        return tuple(shape)
