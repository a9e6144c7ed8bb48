"""Stage 4: lower a validated, expanded spec into the IR graph, keeping source locations."""

from __future__ import annotations

from pathlib import Path

from .errors import SpecError
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
            path=format_path(flat.path), context=flat.context, trainable=flat.trainable,
            regularizer=getattr(flat.layer, "regularizer", None),
            blocks=tuple((b.prefix, b.block, b.args, b.inputs, b.values, doc.loc(b.path)) for b in flat.blocks),
            attr_locs={a: doc.loc(flat.path + (a,)) for a in [*attrs, "inputs"] if flat.path + (a,) in doc.values}))
    _freeze(nodes, checked)
    return Graph(spec.name, spec.description, Path(doc.file).name, inputs, nodes, list(checked.outputs))


def _inside(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _freeze(nodes: list[Node], checked: Checked) -> None:
    """Apply `freeze:` (names or prefixes) and `freeze_up_to:` (graph order, inclusive)."""
    spec, doc = checked.spec, checked.doc
    for k, prefix in enumerate(spec.freeze):
        hits = [n for n in nodes if _inside(n.name, prefix)]
        if not hits:
            raise SpecError(doc.loc(("freeze", k)), f"freeze[{k}]", "names no node", prefix)
        for n in hits:
            n.trainable = False
    if spec.freeze_up_to is not None:
        hits = [i for i, n in enumerate(nodes) if _inside(n.name, spec.freeze_up_to)]
        if not hits:
            raise SpecError(doc.loc(("freeze_up_to",)), "freeze_up_to", "names no node", spec.freeze_up_to)
        for n in nodes[:hits[-1] + 1]:
            n.trainable = False
