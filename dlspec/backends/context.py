"""What an emitter sees of the graph around the node it emits."""

from __future__ import annotations

from dataclasses import dataclass

from ..ir import Graph, Node, Shape


@dataclass
class EmitContext:
    """The node's inputs: variable (or value) names and per-sample shapes."""

    graph: Graph
    node: Node
    args: list[str]
    in_shapes: list[Shape]
    module: str = ""  # torch: the expression that reaches the node's submodule, e.g. self.layer1[0].conv1
    inplace: bool = False  # torch: the first input may be overwritten (see torch_emit.inplace_values)

    @property
    def x(self) -> str:
        """The first input."""
        return self.args[0]

    @property
    def in_shape(self) -> Shape:
        """Shape of the first input."""
        return self.in_shapes[0]
