"""Layers that combine several inputs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .layers import LayerBase, layer
from .shapes import ShapeError


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


@layer
class Add(LayerBase):
    """Elementwise sum of two or more inputs, with numpy broadcasting (batched values are (N, *shape))."""

    type: Literal["add"] = "add"


@layer
class Multiply(LayerBase):
    """Elementwise product of two or more inputs, with numpy broadcasting (batched values are (N, *shape))."""

    type: Literal["multiply"] = "multiply"


@layer
class Concat(LayerBase):
    """Concatenation along `axis` (batch is axis 0; 1 is the channel axis in channels-first layout).
    A parameter input of shape [1, ...] is expanded over the batch first (ViT's class token)."""

    type: Literal["concat"] = "concat"
    axis: int = Field(strict=True)
    """The axis; required, because torch.cat (0) and keras Concatenate (-1) default differently."""


@layer
class Subtract(LayerBase):
    """Elementwise difference of two inputs, with numpy broadcasting (batched values are (N, *shape))."""

    type: Literal["subtract"] = "subtract"


@layer
class Divide(LayerBase):
    """Elementwise quotient of two inputs, with numpy broadcasting (batched values are (N, *shape))."""

    type: Literal["divide"] = "divide"
