"""Reusable blocks: a parameterised sub-graph, defined once and instantiated by a `block` layer."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from .base import Strict, invalid
from .layers import LayerBase
from .types import Name, NodeName, PositiveInt


class Block(Strict):
    """A block definition. Its layers are validated per instance, after `$param` substitution."""

    params: list[Name] = []
    """Parameter names; a layer attribute written `$name` takes the instance's value."""
    defaults: dict[Name, Any] = {}
    """Default values of parameters; parameters without one are required."""
    inputs: list[Name] = Field(default=["x"], min_length=1)
    """Names the block's layers use for the instance's inputs."""
    layers: list[dict] = Field(min_length=1)
    """The block's layers, as in `layers:`; names are local to the instance."""
    outputs: list[NodeName] | None = Field(default=None, min_length=1)
    """Local names of the block's outputs. Default: its last layer."""

    @model_validator(mode="after")
    def _defaults_known(self):
        for key in self.defaults:
            if key not in self.params:
                invalid("defaults", f"default given for {key!r}, which is not in params")
        return self


class BlockLayer(LayerBase):
    """An instance of a block (or `repeat` instances in a chain, named `<name>.0`, `<name>.1`, ...)."""

    type: Literal["block"] = "block"
    block: Name
    """The block to instantiate (a key of `blocks:`)."""
    repeat: PositiveInt = 1
    """Number of chained instances: each reads the previous instance's output as its first input, and the
    layer's other `inputs` (such as an attention mask) unchanged."""
    args: dict[Name, Any] = {}
    """Parameter values for every instance."""
    first: Name | None = None
    """A different block for instance 0 (for example one that downsamples)."""
    first_args: dict[Name, Any] = {}
    """Parameter values for instance 0 only, over `args`."""

    def prefix(self) -> str:
        return self.block
