"""What an emitter sees of the graph around the node it emits."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError, one_line, show
from ..ir import Graph, Node, Shape


@dataclass
class EmitContext:
    """The node's inputs: how to read them and their per-sample shapes. ``args`` are source nodes for torch
    (placeholders that become variables, ``self.<path>`` for a parameter: see backends/source.py), variable names
    for Keras, value names for ONNX."""

    graph: Graph
    node: Node
    args: list
    in_shapes: list[Shape]
    module: object = None  # torch: the node reaching the node's submodule (self.layer1[0].conv1), a Ref placeholder
    inplace: bool = False  # torch: the first input may be overwritten (see torch_class.inplace_values)

    @property
    def x(self) -> str:
        """The first input."""
        return self.args[0]

    @property
    def in_shape(self) -> Shape:
        """Shape of the first input."""
        return self.in_shapes[0]


def refuse(node: Node, attr: str, rule: str, received) -> UsageError:
    """A backend's refusal of what its framework cannot express, located like a spec error:
    ``file:line:col: layers[3].dilation: the keras backend cannot ... Received: [2, 2]``."""
    loc, path = node.where(attr)
    return UsageError(one_line(f"{loc}: {path}: {rule}. Received: {show(received)}"))
