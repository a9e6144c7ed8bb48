"""The IR's view of the ops: the registry ``OPS`` (type name -> definition) and the op classes of
dlspec/spec/layers.py, re-exported under their IR names.

An op is defined once, by its spec class (dlspec/spec/*.py): attributes, shape rule (``infer``),
parameters (``params``) and the semantics docstring; docs/semantics.md restates them. Shapes exclude
the batch axis; the logical layout is channels-first.
"""

from __future__ import annotations

from ..spec.layers import OPS, Activation, BatchNorm, Dense, Dropout, Flatten, Reshape
from ..spec.shapes import Act, Shape, ShapeError, numel

_numel = numel


class Op:
    """Base op: one input, shape-preserving, no parameters."""

    name = ""
    arity = 1
    takes_unbatched = False  # whether inputs may lack the batch axis (parameters); see infer_values

    def infer(self, attrs: dict, inputs: list[Shape]) -> Shape:
        """Output shape from input shapes, or :class:`ShapeError`."""
        return inputs[0]

    def infer_values(self, attrs: dict, inputs: list[Shape], batched: list[bool]) -> tuple[Shape, bool]:
        """Output shape and whether the output carries the batch axis."""
        return self.infer(attrs, inputs), True

    def params(self, attrs: dict, inputs: list[Shape]) -> tuple:
        """Parameters and buffers, in canonical order."""
        return ()


def op(definition: type):
    """Transitional: register an IR op class as the rules of the spec class ``definition``."""

    def register(cls):
        name = definition.model_fields["type"].default
        if name in OPS:
            raise ValueError(f"two IR ops for layer type {name!r}")
        cls.name, cls.spec = name, definition
        OPS[name] = cls()
        definition.op = cls
        return cls

    return register


__all__ = ["OPS", "Act", "Activation", "BatchNorm", "Dense", "Dropout", "Flatten", "Op", "Reshape", "ShapeError",
           "op"]
