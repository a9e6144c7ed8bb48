"""The `pad` op: constant padding of non-batch axes, by fixed amounts or up to a multiple."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, NonNegativeInt, model_validator

from .base import invalid
from .layers import LayerBase, op
from .shapes import ShapeError, sample_axis
from .types import Number, PositiveInt

Axis = Annotated[int, Field(strict=True)]
Width = Annotated[NonNegativeInt, Field(strict=True)]


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


@op
class Pad(LayerBase):
    """Pads non-batch axes with a constant (torch.nn.functional.pad, mode "constant"): `before` elements at
    the start of each listed axis and `after` at its end, then, with `multiple`, as many more at the end as
    make the axis a multiple of it. Swin's patch merging pads H and W to even sizes with
    `{type: pad, axes: [1, 2], multiple: 2}`; the amounts follow from the shape, so one block serves every
    size. Exactly: out[..., i + before, ...] = x[..., i, ...] along each listed axis and every other element
    is `value`; an axis of size n becomes before + n + after + ((-(before + n + after)) mod multiple)."""

    type: Literal["pad"] = "pad"
    axes: list[Axis] = Field(min_length=1)
    """The axes (batch is axis 0 and is rejected; negatives count from the end)."""
    before: list[Width] | None = None
    """Elements added at the start of each axis, one per axis. Default: none."""
    after: list[Width] | None = None
    """Elements added at the end of each axis, one per axis. Default: none."""
    multiple: PositiveInt = 1
    """Then pad the end of each axis up to a multiple of this (1: no more)."""
    value: Number = 0.0
    """The constant written into the padding."""

    @model_validator(mode="after")
    def _paired(self):
        for field in ("before", "after"):
            widths = getattr(self, field)
            if widths is not None and len(widths) != len(self.axes):
                invalid(field, f"must give one width per axis ({len(self.axes)})")
        return self

    @classmethod
    def infer(cls, attrs, inputs):
        shape = list(inputs[0])
        for axis, b, a in pad_widths(attrs, inputs[0]):
            shape[axis] += b + a
        return tuple(shape)
