"""Layers that move, cut, reduce and multiply tensors, and the learned `parameter` value.

Axis numbers count the batch as axis 0 (sample axes are 1..r); negatives count from the end.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from .base import invalid
from .layers import Initializer, LayerBase, layer
from .types import Bool, PositiveInt

Axis = Annotated[int, Field(strict=True)]


@layer
class Permute(LayerBase):
    """Reorders the sample axes (Keras `Permute` convention): `dims: [2, 3, 1]` turns [C, H, W] into [H, W, C]."""

    type: Literal["permute"] = "permute"
    dims: list[Axis] = Field(min_length=1)
    """New order of the sample axes, numbered from 1 (the batch stays first)."""


@layer
class Transpose(LayerBase):
    """Swaps two non-batch axes (torch.transpose)."""

    type: Literal["transpose"] = "transpose"
    axes: list[Axis] = Field(min_length=2, max_length=2)
    """The two axes (batch is axis 0; negatives count from the end)."""


@layer
class Slice(LayerBase):
    """Python slicing `x[start:stop:step]` along one non-batch axis."""

    type: Literal["slice"] = "slice"
    axis: Axis
    """The axis (batch is axis 0; negatives count from the end)."""
    start: Axis | None = None
    """First index (negative: from the end). Default: 0."""
    stop: Axis | None = None
    """End index, excluded (negative: from the end). Default: the end."""
    step: PositiveInt = 1
    """Stride, 1 or more."""

    @model_validator(mode="after")
    def _not_batch(self):
        if self.axis == 0:
            invalid("axis", "must not be the batch axis 0")
        return self


@layer
class Split(LayerBase):
    """Cuts one non-batch axis into consecutive parts; output k is referenced as `<name>.k` (no value
    `<name>` exists). Give `sections` (equal parts) or `sizes`."""

    type: Literal["split"] = "split"
    axis: Axis
    """The axis (batch is axis 0; negatives count from the end)."""
    sections: Annotated[int, Field(strict=True, ge=2)] | None = None
    """Number of equal parts; the axis size must divide evenly."""
    sizes: list[PositiveInt] | None = Field(default=None, min_length=2)
    """Sizes of the parts, in order; they must add up to the axis size."""

    @model_validator(mode="after")
    def _one_rule(self):
        if (self.sections is None) == (self.sizes is None):
            invalid("sections", "give exactly one of `sections` and `sizes`")
        if self.axis == 0:
            invalid("axis", "must not be the batch axis 0")
        return self

    def count(self) -> int:
        """Number of outputs."""
        return self.sections if self.sections is not None else len(self.sizes)


@layer
class Select(LayerBase):
    """Takes one index of a non-batch axis and removes that axis (torch.select), e.g. ViT's class token."""

    type: Literal["select"] = "select"
    axis: Axis
    """The axis (batch is axis 0; negatives count from the end)."""
    index: Axis
    """The index (negative: from the end)."""


@layer
class Roll(LayerBase):
    """Shifts elements cyclically along non-batch axes (torch.roll): along axis a, element i moves to
    (i + shift) mod size. Swin's shifted windows roll H and W by minus half a window."""

    type: Literal["roll"] = "roll"
    shifts: list[Axis] = Field(min_length=1)
    """Shift per axis (negative: towards index 0)."""
    axes: list[Axis] = Field(min_length=1)
    """The axes, as many as shifts (batch is axis 0 and is rejected; negatives count from the end)."""

    @model_validator(mode="after")
    def _paired(self):
        if len(self.axes) != len(self.shifts):
            invalid("axes", f"must give one axis per shift ({len(self.shifts)})")
        return self


@layer
class Parameter(LayerBase):
    """A learned tensor without batch axis and without inputs, stored under the node's own name (so
    `class_token` or `encoder.pos_embedding` match torchvision's state-dict keys). It feeds add, subtract,
    multiply, divide (numpy broadcasting), concat (a leading axis of 1 is expanded over the batch) and matmul.
    A layer after it that names no `inputs` reads the value before the parameter, not the parameter."""

    type: Literal["parameter"] = "parameter"
    shape: list[PositiveInt] = Field(min_length=1)
    """Full shape of the tensor (there is no batch axis)."""
    initializer: Initializer = "zeros"
    """Initial distribution (torch's fans for the scaled ones)."""

    @model_validator(mode="after")
    def _no_inputs(self):
        if self.inputs is not None:
            invalid("inputs", "a parameter takes no inputs")
        return self


class _Reduce(LayerBase):
    axes: list[Axis] = Field(min_length=1)
    """Axes to reduce (batch is axis 0 and cannot be reduced; negatives count from the end)."""
    keepdims: Bool = False
    """Keep the reduced axes with size 1."""


@layer
class ReduceMean(_Reduce):
    """Mean over `axes`."""

    type: Literal["reduce_mean"] = "reduce_mean"


@layer
class ReduceMax(_Reduce):
    """Maximum over `axes`."""

    type: Literal["reduce_max"] = "reduce_max"


@layer
class ReduceSum(_Reduce):
    """Sum over `axes`."""

    type: Literal["reduce_sum"] = "reduce_sum"


@layer
class MatMul(LayerBase):
    """torch.matmul of two inputs (the batch axis broadcasts like the others): (N, ..., n, k) @ (N, ..., k, m)."""

    type: Literal["matmul"] = "matmul"
