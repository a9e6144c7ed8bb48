"""Layers that move, cut, reduce and multiply tensors, and the learned `parameter` value.

Axis numbers count the batch as axis 0 (sample axes are 1..r); negatives count from the end.
Shapes exclude the batch axis, except for values that have none (parameters).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from .base import invalid
from .layers import Initializer, LayerBase, layer, op
from .merge import broadcast, show_shapes
from .shapes import Param, ShapeError, fans, sample_axis
from .types import Bool, PositiveInt

Axis = Annotated[int, Field(strict=True)]


def slice_range(attrs: dict, shape) -> tuple[int, int, int, int]:
    """(sample axis, start, stop, step) with start and stop resolved to 0 <= start < stop <= size.

    A ``split`` output is a slice with ``sections`` or ``sizes`` and its ``index`` among the outputs.
    """
    axis = sample_axis(attrs["axis"], len(shape))
    size = shape[axis]
    if attrs.get("sections") is not None:
        n = attrs["sections"]
        if size % n:
            raise ShapeError(f"axis {attrs['axis']} of size {size} does not split into {n} equal sections", n,
                             "sections")
        part = size // n
        return axis, attrs["index"] * part, (attrs["index"] + 1) * part, 1
    if attrs.get("sizes") is not None:
        sizes = attrs["sizes"]
        if sum(sizes) != size:
            raise ShapeError(f"sizes must add up to the size of axis {attrs['axis']}, {size}", sizes, "sizes")
        start = sum(sizes[:attrs["index"]])
        return axis, start, start + sizes[attrs["index"]], 1
    start, stop, step = slice(attrs["start"], attrs["stop"], attrs["step"]).indices(size)
    if len(range(start, stop, step)) == 0:
        raise ShapeError(f"the slice {attrs['start']}:{attrs['stop']}:{attrs['step']} of axis {attrs['axis']} "
                         f"(size {size}) is empty", [attrs["start"], attrs["stop"], attrs["step"]], "start")
    stop = start + (len(range(start, stop, step)) - 1) * step + 1  # the smallest stop giving the same elements
    return axis, start, stop, step


def open_slice(attrs: dict, shape) -> tuple[int, int, int | None, int]:
    """:func:`slice_range` with ``stop`` None where the slice runs to the end and the spec cut nothing off there
    (``x[1::2]``, as one writes it): generated code that says so slices right at other sizes too."""
    axis, start, stop, step = slice_range(attrs, shape)
    written = attrs.get("stop")
    to_end = stop - 1 + step >= shape[axis] and (written is None or written >= shape[axis])
    return axis, start, None if to_end else stop, step


def permutation(attrs: dict, shape) -> tuple[int, ...]:
    """The new order of the sample axes, 0-based (``permute``'s dims, or ``transpose``'s swap)."""
    rank = len(shape)
    if "dims" in attrs:
        dims = list(attrs["dims"])
        if sorted(dims) != list(range(1, rank + 1)):
            raise ShapeError(f"dims must be a permutation of 1..{rank} (the sample axes; the batch stays first)",
                             dims, "dims")
        return tuple(d - 1 for d in dims)
    a, b = (sample_axis(x, rank, "axes") for x in attrs["axes"])
    if a == b:
        raise ShapeError("axes must name two different axes", attrs["axes"], "axes")
    order = list(range(rank))
    order[a], order[b] = b, a
    return tuple(order)


def roll_shifts(attrs: dict, shape) -> list[tuple[int, int, int]]:
    """(sample axis, shift in 0..size-1, shift as written) per rolled axis, in the spec's order; axes rolled
    by a multiple of their size are left out."""
    out = []
    for axis, shift in zip(attrs["axes"], attrs["shifts"], strict=True):
        a = sample_axis(axis, len(shape), "axes")
        if any(a == b for b, _, _ in out):
            raise ShapeError("axes must not repeat an axis", attrs["axes"], "axes")
        out.append((a, shift % shape[a], shift))
    return [r for r in out if r[1]]


def reduce_axes(attrs: dict, shape) -> tuple[int, ...]:
    """Sorted 0-based sample axes of a reduction."""
    axes = [sample_axis(a, len(shape), "axes") for a in attrs["axes"]]
    if len(set(axes)) != len(axes):
        raise ShapeError("axes must not repeat an axis", attrs["axes"], "axes")
    return tuple(sorted(axes))


@op
class Permute(LayerBase):
    """Reorders the sample axes (Keras `Permute` convention): output axis i (1-based, the batch stays axis 0) is
    input axis dims[i-1], so `dims: [2, 3, 1]` turns [C, H, W] into [H, W, C]."""

    type: Literal["permute"] = "permute"
    dims: list[Axis] = Field(min_length=1)
    """New order of the sample axes, numbered from 1 (the batch stays first)."""

    @classmethod
    def infer(cls, attrs, inputs):
        return tuple(inputs[0][d] for d in permutation(attrs, inputs[0]))


@op
class Transpose(LayerBase):
    """Swaps two non-batch axes (torch.transpose)."""

    type: Literal["transpose"] = "transpose"
    axes: list[Axis] = Field(min_length=2, max_length=2)
    """The two axes (batch is axis 0; negatives count from the end)."""

    @classmethod
    def infer(cls, attrs, inputs):
        return tuple(inputs[0][d] for d in permutation(attrs, inputs[0]))


@op
class Slice(LayerBase):
    """Python slicing `x[start:stop:step]` along one non-batch axis (step >= 1; a negative start or stop counts
    from the end; no stop is the end). A `split` becomes one slice per output."""

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

    @classmethod
    def infer(cls, attrs, inputs):
        axis, start, stop, step = slice_range(attrs, inputs[0])
        out = list(inputs[0])
        out[axis] = len(range(start, stop, step))
        return tuple(out)


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


@op
class Select(LayerBase):
    """Takes one index of a non-batch axis and removes that axis: x[..., index, ...] (torch.select; a negative
    index counts from the end), e.g. ViT's class token."""

    type: Literal["select"] = "select"
    axis: Axis
    """The axis (batch is axis 0; negatives count from the end)."""
    index: Axis
    """The index (negative: from the end)."""

    @classmethod
    def infer(cls, attrs, inputs):
        axis = sample_axis(attrs["axis"], len(inputs[0]))
        size = inputs[0][axis]
        if not -size <= attrs["index"] < size:
            raise ShapeError(f"index must lie in -{size}..{size - 1} (axis {attrs['axis']} has size {size})",
                             attrs["index"], "index")
        return inputs[0][:axis] + inputs[0][axis + 1:]


@op
class Roll(LayerBase):
    """Shifts elements cyclically along non-batch axes (torch.roll): along each listed axis, element i moves to
    (i + shift) mod size, out[..., (i + shift) mod size, ...] = x[..., i, ...]. Swin's shifted windows roll H and
    W by minus half a window."""

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

    @classmethod
    def infer(cls, attrs, inputs):
        roll_shifts(attrs, inputs[0])
        return inputs[0]


@op
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

    arity: ClassVar[int | None] = 0

    @classmethod
    def infer_values(cls, attrs, inputs, batched):
        return tuple(attrs["shape"]), False

    @classmethod
    def infer(cls, attrs, inputs):
        return tuple(attrs["shape"])

    @classmethod
    def params(cls, attrs, inputs):
        fan_in, fan_out = fans(attrs["shape"])
        return (Param("", tuple(attrs["shape"]), attrs["initializer"], fan_in, fan_out),)


class _Reduce(LayerBase):
    axes: list[Axis] = Field(min_length=1)
    """Axes to reduce (batch is axis 0 and cannot be reduced; negatives count from the end)."""
    keepdims: Bool = False
    """Keep the reduced axes with size 1."""

    @classmethod
    def infer(cls, attrs, inputs):
        axes = reduce_axes(attrs, inputs[0])
        if attrs["keepdims"]:
            return tuple(1 if i in axes else d for i, d in enumerate(inputs[0]))
        return tuple(d for i, d in enumerate(inputs[0]) if i not in axes)


@op
class ReduceMean(_Reduce):
    """Mean over `axes` (non-batch); `keepdims` keeps them with size 1."""

    type: Literal["reduce_mean"] = "reduce_mean"


@op
class ReduceMax(_Reduce):
    """Maximum over `axes` (non-batch); `keepdims` keeps them with size 1."""

    type: Literal["reduce_max"] = "reduce_max"


@op
class ReduceSum(_Reduce):
    """Sum over `axes` (non-batch); `keepdims` keeps them with size 1."""

    type: Literal["reduce_sum"] = "reduce_sum"


@op
class MatMul(LayerBase):
    """torch.matmul of two inputs of rank >= 2 (batch included: (N, ..., n, k) @ (N, ..., k, m) -> (N, ..., n, m));
    leading axes broadcast as numpy does, batched inputs share one rank, a parameter broadcasts over the batch."""

    type: Literal["matmul"] = "matmul"

    arity: ClassVar[int | None] = 2
    takes_unbatched: ClassVar[bool] = True

    @classmethod
    def infer_values(cls, attrs, inputs, batched):
        if len(inputs) != 2:
            raise ShapeError("matmul takes exactly two inputs", len(inputs), "inputs")
        if not any(batched):
            raise ShapeError("matmul needs at least one batched input", show_shapes(inputs, batched), "inputs")
        for s in inputs:
            if len(s) < 2:
                raise ShapeError("matmul needs inputs with two axes or more besides the batch (parameters: two "
                                 "or more)", show_shapes(inputs, batched), "inputs")
        (a, b) = inputs
        if a[-1] != b[-2]:
            raise ShapeError(f"the last axis of the first input ({a[-1]}) must match the second-to-last "
                             f"of the second ({b[-2]})", show_shapes(inputs, batched), "inputs")
        lead, _ = broadcast([a[:-2], b[:-2]], batched, "matmul")
        return tuple(lead) + (a[-2], b[-1]), True

    @classmethod
    def infer(cls, attrs, inputs):
        return cls.infer_values(attrs, inputs, [True, True])[0]
