"""The root of a spec file."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from .base import Strict, invalid
from .layers import Layer
from .types import Name, PositiveInt


class Input(Strict):
    """A model input. The batch axis is implicit and dynamic."""

    shape: list[PositiveInt] = Field(min_length=1)
    """Shape of one sample, without the batch axis (channels-first for images: [C, H, W])."""
    dtype: Literal["float32"] = "float32"
    """Element type."""


class Spec(Strict):
    """A dlspec model: inputs and a sequence of layers."""

    dlspec: Literal[1]
    """Spec language version."""
    name: Name
    """Model name: an identifier, used for file and class names."""
    description: str = Field(default="", strict=True)
    """Free text, kept as a docstring in generated code."""
    inputs: dict[Name, Input] = Field(min_length=1)
    """Named inputs. A `layers:` model has exactly one."""
    layers: list[Layer] = Field(min_length=1)
    """Layers applied in order, each to the previous one's output."""

    @model_validator(mode="after")
    def _one_input(self):
        if len(self.inputs) != 1:
            invalid("inputs", "a sequential `layers:` model takes exactly one input")
        return self
