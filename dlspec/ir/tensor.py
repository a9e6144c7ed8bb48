"""IR ops that move, cut, reduce and multiply tensors, and the learned ``parameter`` value.

Axis numbers count the batch as axis 0, so sample axes are 1..r; negative numbers count from
the end. Shapes exclude the batch axis, except for values that have none (parameters).
"""

from __future__ import annotations

from .. import spec
from .graph import Param
from .merge import broadcast, show_shapes
from .ops import Op, ShapeError, op


def sample_axis(axis: int, rank: int, attr: str = "axis") -> int:
    """0-based index into a sample shape of ``rank`` axes, of a spec axis (batch = 0, negatives allowed)."""
    full = rank + 1
    if not -full <= axis < full or axis % full == 0:
        raise ShapeError(f"{attr} must be a non-batch axis of a rank-{full} tensor (batch included: 1..{full - 1} "
                         f"or -{full - 1}..-1)", axis, attr)
    return axis % full - 1


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


@op(spec.tensor.Permute)
class Permute(Op):
    """Reorders the sample axes: output axis i (1-based, batch stays axis 0) is input axis dims[i-1]."""

    def infer(self, attrs, inputs):
        return tuple(inputs[0][d] for d in permutation(attrs, inputs[0]))


@op(spec.tensor.Transpose)
class Transpose(Op):
    """Swaps two non-batch axes (torch.transpose)."""

    def infer(self, attrs, inputs):
        return tuple(inputs[0][d] for d in permutation(attrs, inputs[0]))


@op(spec.tensor.Slice)
class Slice(Op):
    """Python slicing x[start:stop:step] along one non-batch axis (step >= 1; negative start/stop count from
    the end; stop None is the end). A ``split`` becomes one slice per output."""

    def infer(self, attrs, inputs):
        axis, start, stop, step = slice_range(attrs, inputs[0])
        out = list(inputs[0])
        out[axis] = len(range(start, stop, step))
        return tuple(out)


@op(spec.tensor.Select)
class Select(Op):
    """x[..., index, ...] on one non-batch axis, which is removed (torch.select); negative index from the end."""

    def infer(self, attrs, inputs):
        axis = sample_axis(attrs["axis"], len(inputs[0]))
        size = inputs[0][axis]
        if not -size <= attrs["index"] < size:
            raise ShapeError(f"index must lie in -{size}..{size - 1} (axis {attrs['axis']} has size {size})",
                             attrs["index"], "index")
        return inputs[0][:axis] + inputs[0][axis + 1:]


def _fans(shape) -> tuple[int, int]:
    """torch's fans of a tensor: (shape[1], shape[0]) times the product of the rest; a vector uses its size."""
    if len(shape) < 2:
        n = shape[0] if shape else 1
        return n, n
    rest = 1
    for d in shape[2:]:
        rest *= d
    return shape[1] * rest, shape[0] * rest


@op(spec.tensor.Roll)
class Roll(Op):
    """torch.roll: along each listed non-batch axis a, out[..., (i + shift) mod size, ...] = x[..., i, ...]."""

    def infer(self, attrs, inputs):
        roll_shifts(attrs, inputs[0])
        return inputs[0]


@op(spec.tensor.Parameter)
class Parameter(Op):
    """A learned tensor of the given shape, without a batch axis and without inputs. Its one weight is
    named after the node itself (``class_token``, ``encoder.pos_embedding``). It takes part in the
    broadcasting ops, concat and matmul with its full shape."""

    arity = 0

    def infer_values(self, attrs, inputs, batched):
        return tuple(attrs["shape"]), False

    def infer(self, attrs, inputs):
        return tuple(attrs["shape"])

    def params(self, attrs, inputs):
        fan_in, fan_out = _fans(attrs["shape"])
        return (Param("", tuple(attrs["shape"]), attrs["initializer"], fan_in, fan_out),)


def reduce_axes(attrs: dict, shape) -> tuple[int, ...]:
    """Sorted 0-based sample axes of a reduction."""
    axes = [sample_axis(a, len(shape), "axes") for a in attrs["axes"]]
    if len(set(axes)) != len(axes):
        raise ShapeError("axes must not repeat an axis", attrs["axes"], "axes")
    return tuple(sorted(axes))


class Reduce(Op):
    """Base of the reductions."""

    def infer(self, attrs, inputs):
        axes = reduce_axes(attrs, inputs[0])
        if attrs["keepdims"]:
            return tuple(1 if i in axes else d for i, d in enumerate(inputs[0]))
        return tuple(d for i, d in enumerate(inputs[0]) if i not in axes)


@op(spec.tensor.ReduceMean)
class ReduceMean(Reduce):
    """Mean over ``axes`` (non-batch); ``keepdims`` keeps them with size 1."""


@op(spec.tensor.ReduceMax)
class ReduceMax(Reduce):
    """Maximum over ``axes`` (non-batch); ``keepdims`` keeps them with size 1."""


@op(spec.tensor.ReduceSum)
class ReduceSum(Reduce):
    """Sum over ``axes`` (non-batch); ``keepdims`` keeps them with size 1."""


@op(spec.tensor.MatMul)
class MatMul(Op):
    """torch.matmul of two values of rank >= 2 (batch included: (N, ..., n, k) @ (N, ..., k, m) -> (N, ..., n, m));
    leading axes broadcast as numpy does, batched values share one rank, a parameter broadcasts over the batch."""

    arity = 2
    takes_unbatched = True

    def infer_values(self, attrs, inputs, batched):
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

    def infer(self, attrs, inputs):
        return self.infer_values(attrs, inputs, [True, True])[0]
