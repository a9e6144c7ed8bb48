"""Stage 3: the framework-free intermediate representation."""

from .graph import Graph, Input, Node, Param, Shape
from .ops import OPS, Act, ShapeError

__all__ = ["OPS", "Act", "Graph", "Input", "Node", "Param", "Shape", "ShapeError"]
