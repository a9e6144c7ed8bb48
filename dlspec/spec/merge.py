"""Layers that combine several inputs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .layers import LayerBase, layer


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
