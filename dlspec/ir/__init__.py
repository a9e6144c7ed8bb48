"""Stage 3: the framework-free intermediate representation."""

from . import merge, sequence, vision  # noqa: F401  (each registers its ops)
from .graph import Graph, Input, Node, Param, Shape
from .ops import OPS, Act, ShapeError

__all__ = ["OPS", "Act", "Graph", "Input", "Node", "Param", "Shape", "ShapeError"]
