"""Stage 5: passes over the IR. Shapes and parameters are inferred here, once."""

from __future__ import annotations

from .errors import SpecError
from .ir import OPS, Graph, ShapeError


def infer_shapes(graph: Graph) -> Graph:
    """Fill in every node's output shape and parameters; errors name the node."""
    shapes = {inp.name: inp.shape for inp in graph.inputs}
    batched = {inp.name: True for inp in graph.inputs}
    for node in graph.nodes:
        opdef = OPS[node.op]
        ins = [shapes[v] for v in node.inputs]
        try:
            if opdef.arity == 1 and len(ins) != 1:
                raise ShapeError(f"{node.op} takes one input", list(node.inputs), "inputs")
            unbatched = [v for v in node.inputs if not batched[v]]
            if unbatched and not opdef.takes_unbatched:
                raise ShapeError(f"{node.op} reads batched values only, and {unbatched[0]!r} is a parameter (no "
                                 "batch axis); parameters feed add, subtract, multiply, divide, concat and matmul",
                                 unbatched[0], "inputs")
            node.shape, node.batched = opdef.infer_values(node.attrs, ins, [batched[v] for v in node.inputs])
            node.params = opdef.params(node.attrs, ins)
        except ShapeError as err:
            loc, path = node.where(err.attr)
            shown = ", ".join(str(s) for s in ins)
            on = f" on input shape {shown}" if ins else ""
            raise SpecError(loc, path, f"{node.name} ({node.op}){on}: {err.rule}{node.context}",
                            err.received) from None
        shapes[node.name], batched[node.name] = node.shape, node.batched
    for value in graph.outputs:
        if not batched[value]:
            node = graph.node(value)
            raise SpecError(node.loc, node.path, f"{value} is a parameter (no batch axis) and cannot be a model "
                            f"output{node.context}", value)
    return graph


def _wanted_dtypes(op: str, k: int) -> tuple[str, ...]:
    if op == "embedding":
        return ("int64",)
    if op == "attention" and k >= 1:  # the key padding mask: 0/1 as int64 (HF's attention_mask) or float32
        return ("int64", "float32")
    return ("float32",)


def check_dtypes(graph: Graph) -> Graph:
    """int64 values (tokens) feed only embeddings and attention masks; embeddings read only int64 values."""
    dtypes = {inp.name: inp.dtype for inp in graph.inputs}
    for node in graph.nodes:
        for k, value in enumerate(node.inputs):
            want = _wanted_dtypes(node.op, k)
            if dtypes[value] not in want:
                loc, path = node.where("inputs")
                raise SpecError(loc, path, f"{node.name} ({node.op}) needs {' or '.join(want)} input, but {value!r} "
                                f"is {dtypes[value]}{node.context}", value)
        dtypes[node.name] = "float32"
    return graph


def check_reachable(graph: Graph) -> Graph:
    """Every node feeds some model output (backends drop unreachable layers, which would lose weights)."""
    needed, stack = set(), list(graph.outputs)
    producers = {n.name: n for n in graph.nodes}
    while stack:
        value = stack.pop()
        if value in needed or value not in producers:
            continue
        needed.add(value)
        stack.extend(producers[value].inputs)
    # an output of a split that nothing reads is dropped (it has no weights); any other such node is an error
    graph.nodes = [n for n in graph.nodes if n.name in needed or n.attrs.get("index") is None or n.op != "slice"]
    for node in graph.nodes:
        if node.name not in needed:
            raise SpecError(node.loc, node.path, f"{node.name} feeds no model output; list it in `outputs` or "
                            f"remove it{node.context}", node.name)
    return graph


PASSES = (check_dtypes, check_reachable, infer_shapes)


def run_passes(graph: Graph) -> Graph:
    """Apply every pass in order."""
    for p in PASSES:
        graph = p(graph)
    return graph
