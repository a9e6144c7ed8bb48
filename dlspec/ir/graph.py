"""The framework-free IR: a graph of named nodes with inferred shapes and parameters."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import Loc
from ..spec.shapes import Param, Shape, numel


@dataclass
class Node:
    """One operation. Its output value has the node's name."""

    name: str
    op: str
    inputs: tuple[str, ...]
    attrs: dict
    loc: Loc
    path: str
    attr_locs: dict[str, Loc] = field(default_factory=dict)
    shape: Shape | None = None
    params: tuple[Param, ...] = ()
    batched: bool = True  # false: the value has no batch axis (a learned `parameter`)
    context: str = ""  # " (in block instance layer1.0)" for nodes from blocks
    trainable: bool = True  # false: frozen in training (weights fixed, BatchNorm in inference mode)
    regularizer: object = None  # training penalty on the weight: an object with l1 and l2
    # the block instances it lies in, outermost first: (prefix, block, args, input names, input values, Loc) each
    blocks: tuple = ()

    def where(self, attr: str | None = None) -> tuple[Loc, str]:
        """Source location and spec path of the node, or of one of its attributes."""
        if attr and attr in self.attr_locs:
            return self.attr_locs[attr], f"{self.path}.{attr}"
        return self.loc, self.path


@dataclass(frozen=True)
class Input:
    """A graph input: name, per-sample shape, dtype."""

    name: str
    shape: Shape
    dtype: str
    loc: Loc


@dataclass
class Graph:
    """A model: inputs, nodes in topological order, and output value names."""

    name: str
    description: str
    source: str
    inputs: list[Input]
    nodes: list[Node]
    outputs: list[str]

    def node(self, name: str) -> Node:
        """The node named ``name``."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def shape_of(self, value: str) -> Shape:
        """Shape of a value (an input or a node output)."""
        for inp in self.inputs:
            if inp.name == value:
                return inp.shape
        return self.node(value).shape

    def is_batched(self, value: str) -> bool:
        """Whether a value carries the batch axis (inputs and most nodes do; parameters do not)."""
        if any(inp.name == value for inp in self.inputs):
            return True
        return self.node(value).batched

    def param_count(self) -> int:
        """Number of scalars in all parameters, trainable or frozen (buffers excluded, as torchvision,
        torchinfo and Keras' "params" count them)."""
        trainable, frozen, _ = self.counts()
        return trainable + frozen

    def counts(self) -> tuple[int, int, int]:
        """(trainable parameters, frozen parameters, buffers): scalars in each. Frozen parameters belong
        to nodes training leaves untouched; buffers are state such as BatchNorm's running statistics."""
        trainable = frozen = buffers = 0
        for n in self.nodes:
            for p in n.params:
                size = numel(p.shape)
                if not p.trainable:
                    buffers += size
                elif n.trainable:
                    trainable += size
                else:
                    frozen += size
        return trainable, frozen, buffers

    def weight_names(self) -> list[str]:
        """Canonical tensor names, in graph order."""
        return [weight_name(n.name, p.name) for n in self.nodes for p in n.params]


def weight_name(node: str, param: str) -> str:
    """Canonical name of a node's tensor: ``<node>.<param>``, or the node's own name for a
    ``parameter`` node, whose one tensor is named ""."""
    return f"{node}.{param}" if param else node

