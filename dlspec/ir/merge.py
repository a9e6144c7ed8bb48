"""IR ops that combine several inputs: numpy-broadcasting arithmetic and concatenation.

Batched values are (N, *shape); a value without the batch axis (a ``parameter``) takes part
with its full shape. Broadcasting is numpy's, right-aligned over full shapes, with two limits
that keep the batch axis first: batched inputs share one rank, and a parameter has at most
as many axes as the batched full shape, with size 1 where it meets the batch axis.
"""

from __future__ import annotations

from .. import spec
from ..spec.merge import broadcast, show_shapes
from .ops import Op, ShapeError, op


def _at_least_two(inputs, what):
    if len(inputs) < 2:
        raise ShapeError(f"{what} needs two or more inputs", len(inputs), "inputs")


class Broadcasting(Op):
    """Base of the elementwise arithmetic ops."""

    arity = None
    takes_unbatched = True
    exactly_two = False

    def infer_values(self, attrs, inputs, batched):
        _at_least_two(inputs, self.name)
        if self.exactly_two and len(inputs) != 2:
            raise ShapeError(f"{self.name} takes exactly two inputs", len(inputs), "inputs")
        return broadcast(inputs, batched, self.name)

    def infer(self, attrs, inputs):
        return self.infer_values(attrs, inputs, [True] * len(inputs))[0]


@op(spec.merge.Add)
class Add(Broadcasting):
    """y = x0 + x1 + ..., with numpy broadcasting over full shapes (batched values as (N, *shape))."""


@op(spec.merge.Subtract)
class Subtract(Broadcasting):
    """y = x0 - x1, with numpy broadcasting over full shapes (batched values as (N, *shape))."""

    exactly_two = True


@op(spec.merge.Multiply)
class Multiply(Broadcasting):
    """y = x0 * x1 * ..., with numpy broadcasting over full shapes (batched values as (N, *shape))."""


@op(spec.merge.Divide)
class Divide(Broadcasting):
    """y = x0 / x1 (IEEE division), with numpy broadcasting over full shapes (batched values as (N, *shape))."""

    exactly_two = True


@op(spec.merge.Concat)
class Concat(Op):
    """Concatenation along ``axis`` (batch = 0); other axes must match.

    A parameter input of shape (1, *shape) is first expanded to (N, *shape), as ViT's class token.
    """

    arity = None
    takes_unbatched = True

    def infer_values(self, attrs, inputs, batched):
        if not any(batched):
            raise ShapeError("concat needs at least one batched input", show_shapes(inputs, batched), "inputs")
        samples = []
        for s, b in zip(inputs, batched):
            if not b:
                if not s or s[0] != 1:
                    raise ShapeError("concat takes a parameter whose leading axis has size 1 (it is expanded "
                                     "over the batch)", show_shapes(inputs, batched), "inputs")
                s = s[1:]
            samples.append(tuple(s))
        return self.infer(attrs, samples), True

    def infer(self, attrs, inputs):
        _at_least_two(inputs, "concat")
        rank = len(inputs[0]) + 1
        if not -rank <= attrs["axis"] < rank or attrs["axis"] % rank == 0:
            raise ShapeError(f"axis must be a non-batch axis of rank-{rank} tensors", attrs["axis"], "axis")
        axis = attrs["axis"] % rank - 1
        for s in inputs[1:]:
            if len(s) != len(inputs[0]) or any(a != b for i, (a, b) in enumerate(zip(s, inputs[0])) if i != axis):
                raise ShapeError(f"inputs must match except on axis {attrs['axis']}", [tuple(s) for s in inputs],
                                 "inputs")
        out = list(inputs[0])
        out[axis] = sum(s[axis] for s in inputs)
        return tuple(out)
