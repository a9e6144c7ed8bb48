"""The ops that combine several inputs (broadcasting arithmetic, concat) and the broadcasting rule, re-exported
from their definitions in dlspec/spec/merge.py."""

from ..spec.merge import Add, Concat, Divide, Multiply, Subtract, broadcast, show_shapes

__all__ = ["Add", "Concat", "Divide", "Multiply", "Subtract", "broadcast", "show_shapes"]
