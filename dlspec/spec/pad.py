"""The `pad` layer: constant padding of non-batch axes, by fixed amounts or up to a multiple."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, NonNegativeInt, model_validator

from .base import invalid
from .layers import LayerBase, layer
from .types import Number, PositiveInt

Axis = Annotated[int, Field(strict=True)]
Width = Annotated[NonNegativeInt, Field(strict=True)]


@layer
class Pad(LayerBase):
    """Pads non-batch axes with a constant (torch.nn.functional.pad, mode "constant"): `before` elements at
    the start of each listed axis and `after` at its end, then, with `multiple`, as many more at the end as
    make the axis a multiple of it. Swin's patch merging pads H and W to even sizes with
    `{type: pad, axes: [1, 2], multiple: 2}`; the amounts follow from the shape, so one block serves every
    size."""

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
