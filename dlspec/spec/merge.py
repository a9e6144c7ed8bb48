"""Layers that combine several inputs: numpy-broadcasting arithmetic and concatenation.

Batched values are (N, *shape); a value without the batch axis (a `parameter`) takes part
with its full shape. Broadcasting is numpy's, right-aligned over full shapes, with two limits
that keep the batch axis first: batched inputs share one rank, and a parameter has at most
as many axes as the batched full shape, with size 1 where it meets the batch axis.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from .layers import LayerBase, op
from .shapes import ShapeError


def _at_least_two(inputs, what):
    if len(inputs) < 2:
        raise ShapeError(f"{what} needs two or more inputs", len(inputs), "inputs")


def show_shapes(inputs, batched) -> str:
    """'(N, 3, 4), (1, 4)': full shapes, with N for the batch axis."""
    return ", ".join("(" + ", ".join(["N", *map(str, s)] if b else list(map(str, s)))
                     + ("," if not b and len(s) == 1 else "") + ")" for s, b in zip(inputs, batched))


def broadcast(inputs, batched, what) -> tuple[tuple[int, ...], bool]:
    """Output shape (sample shape if batched, else full) and whether it is batched; numpy's rule."""
    ranks = {len(s) for s, b in zip(inputs, batched) if b}
    if len(ranks) > 1:
        raise ShapeError("batched inputs must share one rank, so that their batch axes line up",
                         show_shapes(inputs, batched), "inputs")
    if not ranks:
        full = [tuple(s) for s in inputs]
        rank = max(len(s) for s in full)
    else:
        rank = ranks.pop() + 1
        full = []
        for s, b in zip(inputs, batched):
            if b:
                full.append((1,) + tuple(s))
            elif len(s) > rank or (len(s) == rank and s[0] != 1):
                raise ShapeError(f"a parameter broadcast against batched values of rank {rank} may have "
                                 f"at most {rank} axes, with size 1 on the batch axis",
                                 show_shapes(inputs, batched), "inputs")
            else:
                full.append(tuple(s))
    out = []
    for i in range(rank):
        sizes = {s[len(s) - rank + i] for s in full if len(s) - rank + i >= 0} - {1}
        if len(sizes) > 1:
            raise ShapeError(f"shapes do not broadcast (numpy rule, right-aligned): axis {i} has sizes "
                             f"{sorted(sizes)}", show_shapes(inputs, batched), "inputs")
        out.append(sizes.pop() if sizes else 1)
    if any(batched):
        return tuple(out[1:]), True
    return tuple(out), False


class _Broadcasting(LayerBase):
    """Base of the elementwise arithmetic ops."""

    arity: ClassVar[int | None] = None
    takes_unbatched: ClassVar[bool] = True
    exactly_two: ClassVar[bool] = False

    @classmethod
    def infer_values(cls, attrs, inputs, batched):
        _at_least_two(inputs, cls.op_name)
        if cls.exactly_two and len(inputs) != 2:
            raise ShapeError(f"{cls.op_name} takes exactly two inputs", len(inputs), "inputs")
        return broadcast(inputs, batched, cls.op_name)

    @classmethod
    def infer(cls, attrs, inputs):
        return cls.infer_values(attrs, inputs, [True] * len(inputs))[0]


@op
class Add(_Broadcasting):
    """Elementwise sum of two or more inputs, y = x0 + x1 + ..., with numpy broadcasting over full shapes
    (batched values are (N, *shape))."""

    type: Literal["add"] = "add"


@op
class Multiply(_Broadcasting):
    """Elementwise product of two or more inputs, y = x0 * x1 * ..., with numpy broadcasting over full shapes
    (batched values are (N, *shape))."""

    type: Literal["multiply"] = "multiply"


@op
class Concat(LayerBase):
    """Concatenation along `axis` (batch is axis 0; 1 is the channel axis in channels-first layout); the other
    axes must match. A parameter input of shape [1, ...] is expanded over the batch first (ViT's class token)."""

    type: Literal["concat"] = "concat"
    axis: int = Field(strict=True)
    """The axis; required, because torch.cat (0) and keras Concatenate (-1) default differently."""

    arity: ClassVar[int | None] = None
    takes_unbatched: ClassVar[bool] = True

    @classmethod
    def infer_values(cls, attrs, inputs, batched):
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
        return cls.infer(attrs, samples), True

    @classmethod
    def infer(cls, attrs, inputs):
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


@op
class Subtract(_Broadcasting):
    """Elementwise difference of two inputs, y = x0 - x1, with numpy broadcasting over full shapes (batched values
    are (N, *shape))."""

    type: Literal["subtract"] = "subtract"

    exactly_two: ClassVar[bool] = True


@op
class Divide(_Broadcasting):
    """Elementwise quotient of two inputs, y = x0 / x1 (IEEE division), with numpy broadcasting over full shapes
    (batched values are (N, *shape))."""

    type: Literal["divide"] = "divide"

    exactly_two: ClassVar[bool] = True
