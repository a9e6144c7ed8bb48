"""Stage 4: lower a validated, expanded spec into the IR graph, keeping source locations."""

from __future__ import annotations

from pathlib import Path

from .ir import Graph, Input, Node
from .loader import format_path
from .spec.validate import Checked


def lower(checked: Checked) -> Graph:
    """Build the IR graph of a validated spec (shapes are filled in by the passes)."""
    spec, doc = checked.spec, checked.doc
    inputs = [Input(name, tuple(inp.shape), inp.dtype, doc.loc(("inputs", name), key=True))
              for name, inp in spec.inputs.items()]
    nodes = []
    for flat in checked.nodes:
        attrs = flat.layer.lower_attrs()
        nodes.append(Node(
            name=flat.name, op=flat.layer.type, inputs=flat.inputs, attrs=attrs, loc=doc.loc(flat.path),
            path=format_path(flat.path), context=flat.context,
            attr_locs={a: doc.loc(flat.path + (a,)) for a in [*attrs, "inputs"] if flat.path + (a,) in doc.values}))
    return Graph(spec.name, spec.description, Path(doc.file).name, inputs, nodes, list(checked.outputs))
