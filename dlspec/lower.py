"""Stage 4: lower a validated spec into the IR graph, keeping source locations."""

from __future__ import annotations

from pathlib import Path

from .ir import Graph, Input, Node
from .spec.validate import Checked


def lower(checked: Checked) -> Graph:
    """Build the IR graph of a validated spec (shapes are filled in by the passes)."""
    spec, doc = checked.spec, checked.doc
    inputs = [Input(name, tuple(inp.shape), inp.dtype, doc.loc(("inputs", name), key=True))
              for name, inp in spec.inputs.items()]
    nodes, previous = [], inputs[0].name
    for i, (layer, name) in enumerate(zip(spec.layers, checked.names)):
        attrs = layer.lower_attrs()
        path = ("layers", i)
        nodes.append(Node(
            name=name, op=layer.type, inputs=(previous,), attrs=attrs, loc=doc.loc(path),
            path=f"layers[{i}]", attr_locs={a: doc.loc(path + (a,)) for a in attrs if path + (a,) in doc.values}))
        previous = name
    return Graph(spec.name, spec.description, Path(doc.file).name, inputs, nodes, [previous])
