"""The IR's view of the ops: the registry ``OPS`` (type name -> definition), the shape primitives, and the
ops of dlspec/spec/layers.py under their IR names.

An op is defined once, by its spec class (dlspec/spec/*.py, registered with ``@op``): typed attributes, shape
rule (``infer``), parameters (``params``) and the semantics docstring; docs/semantics.md restates them. The
modules of this package re-export each group's definitions and helpers, so ``ir.tensor.Roll`` is
``spec.tensor.Roll``: backends register their lowerings against that one class.
"""

from ..spec.layers import OPS, Activation, BatchNorm, Dense, Dropout, Flatten, Reshape, op
from ..spec.shapes import Act, Param, Shape, ShapeError

__all__ = ["OPS", "Act", "Activation", "BatchNorm", "Dense", "Dropout", "Flatten", "Param", "Reshape", "Shape",
           "ShapeError", "op"]
