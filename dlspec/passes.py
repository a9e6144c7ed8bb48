"""Stage 5: passes over the IR. Shapes and parameters are inferred here, once."""

from __future__ import annotations

from .errors import SpecError
from .ir import OPS, Graph, ShapeError


def infer_shapes(graph: Graph) -> Graph:
    """Fill in every node's output shape and parameters; errors name the node."""
    shapes = {inp.name: inp.shape for inp in graph.inputs}
    for node in graph.nodes:
        opdef = OPS[node.op]
        ins = [shapes[v] for v in node.inputs]
        try:
            if opdef.arity == 1 and len(ins) != 1:
                raise ShapeError(f"{node.op} takes one input", list(node.inputs), "inputs")
            node.shape = opdef.infer(node.attrs, ins)
            node.params = opdef.params(node.attrs, ins)
        except ShapeError as err:
            loc, path = node.where(err.attr)
            shown = ", ".join(str(s) for s in ins)
            raise SpecError(loc, path, f"{node.name} ({node.op}) on input shape {shown}: {err.rule}{node.context}",
                            err.received) from None
        shapes[node.name] = node.shape
    return graph


PASSES = (infer_shapes,)


def run_passes(graph: Graph) -> Graph:
    """Apply every pass in order."""
    for p in PASSES:
        graph = p(graph)
    return graph
