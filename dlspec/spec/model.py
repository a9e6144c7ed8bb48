"""The root of a spec file, and the union of every layer type."""

from __future__ import annotations

import math
from typing import Annotated, Literal, Union

from pydantic import Field, TypeAdapter, model_validator

from ..errors import MAX_ELEMENTS, MAX_RANK
from . import layers, lrn, merge, norm, pad, sequence, swin, tensor, vision  # noqa: F401  (each registers its layer types)
from .base import Strict, invalid
from .blocks import Block, BlockLayer
from .layers import LAYER_TYPES
from .train import Train
from .types import Name, NodeName, PositiveInt

Layer = Annotated[Union[(*LAYER_TYPES.values(), BlockLayer)], Field(discriminator="type")]  # noqa: UP007
LAYER_ADAPTER = TypeAdapter(Layer)


class Input(Strict):
    """A model input. The batch axis is implicit and dynamic."""

    shape: list[PositiveInt] = Field(min_length=1)
    """Shape of one sample, without the batch axis (channels-first for images: [C, H, W])."""
    dtype: Literal["float32", "int64"] = "float32"
    """Element type: float32, or int64 for token indices."""

    @model_validator(mode="after")
    def _size(self):
        if len(self.shape) > MAX_RANK:
            invalid("shape", f"a sample has at most {MAX_RANK} axes")
        if math.prod(self.shape) > MAX_ELEMENTS:
            invalid("shape", f"a sample has at most {MAX_ELEMENTS:,} elements (the product of its shape)")
        return self


class Spec(Strict):
    """A dlspec model: inputs, layers (a chain, or a graph through `inputs:`), outputs."""

    dlspec: Literal[1]
    """Spec language version."""
    base: str | None = Field(default=None, strict=True)
    """Another spec (a path relative to this file, or a zoo name) this one starts from; its keys are replaced
    by this spec's, and this spec's `layers` are appended to the base's."""
    replace: dict[NodeName, dict] = {}
    """With `base`: top-level layers of the base to replace, by name (the name is kept)."""
    name: Name
    """Model name: an identifier, used for file and class names."""
    description: str = Field(default="", strict=True)
    """Free text, kept as a docstring in generated code."""
    inputs: dict[Name, Input] = Field(min_length=1)
    """Named inputs."""
    blocks: dict[Name, Block] = {}
    """Reusable blocks, instantiated by layers of type `block`."""
    layers: list[Layer] = Field(min_length=1)
    """Layers. Each reads the previous one's output unless it names its `inputs`."""
    outputs: list[NodeName] | None = Field(default=None, min_length=1)
    """Names of the model's outputs. Default: the last layer."""
    train: Train | None = None
    """How `dlspec train` trains the model."""
    freeze: list[NodeName] = []
    """Nodes to freeze in training, by name or name prefix (`layer1` freezes everything inside it)."""
    freeze_up_to: NodeName | None = None
    """Freeze every node up to and including this one, in graph order (the usual fine-tuning cut)."""
