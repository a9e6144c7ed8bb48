"""Rewrites of ONNX subgraphs that exporters write for one framework op, applied before conversion."""

from __future__ import annotations

import numpy as np

from .graph import OnnxGraph, OnnxNode


def _scalar(graph: OnnxGraph, name: str):
    value = graph.consts.get(name)
    return float(value.reshape(-1)[0]) if value is not None and value.size == 1 else None


def _other(node: OnnxNode, value: str) -> str | None:
    ins = list(node.inputs)
    if len(ins) != 2 or value not in ins:
        return None
    return ins[1] if ins[0] == value else ins[0]


def erf_gelu(graph: OnnxGraph) -> None:
    """x * 0.5 * (1 + erf(x / sqrt(2))), as torch.onnx writes exact GELU before opset 20, becomes one Gelu node."""
    readers: dict[str, list[OnnxNode]] = {}
    for node in graph.nodes:
        for i in node.inputs:
            readers.setdefault(i, []).append(node)
    producer = {o: n for n in graph.nodes for o in n.outputs}
    drop, replace = set(), {}
    for erf in [n for n in graph.nodes if n.op == "Erf"]:
        scale = producer.get(erf.inputs[0])
        if scale is None or scale.op not in ("Div", "Mul"):
            continue
        x = scale.inputs[0]
        c = _scalar(graph, scale.inputs[1])
        if c is None or not np.isclose(c if scale.op == "Div" else 1 / c, np.sqrt(2), rtol=1e-5):
            continue
        chain = readers.get(erf.outputs[0], [])
        if len(chain) != 1 or chain[0].op != "Add" or not np.isclose(_scalar(graph, _other(chain[0], erf.outputs[0])
                                                                             or "") or 0, 1.0):
            continue
        add = chain[0]
        nxt = readers.get(add.outputs[0], [])
        if len(nxt) != 1 or nxt[0].op != "Mul":
            continue
        mul = nxt[0]
        other = _other(mul, add.outputs[0])
        half = readers.get(mul.outputs[0], [])
        if other == x and len(half) == 1 and half[0].op == "Mul" and np.isclose(
                _scalar(graph, _other(half[0], mul.outputs[0]) or "") or 0, 0.5):
            last = half[0]  # (x * (1 + erf)) * 0.5
        elif other in producer and producer[other].op == "Mul" and x in producer[other].inputs and np.isclose(
                _scalar(graph, _other(producer[other], x) or "") or 0, 0.5):
            last = mul  # (x * 0.5) * (1 + erf)
            if len(readers.get(other, [])) != 1:
                continue
            drop.add(id(producer[other]))
        else:
            continue
        if len(readers.get(scale.outputs[0], [])) != 1:
            continue
        nodes = [scale, erf, add, mul, last]
        drop.update(id(n) for n in nodes)
        replace[id(last)] = OnnxNode("Gelu", erf.name, [x], [last.outputs[0]], {})
    graph.nodes = [replace.get(id(n), n) for n in graph.nodes if id(n) not in drop or id(n) in replace]


from .attention import multihead_attention  # noqa: E402

REWRITES = [erf_gelu, multihead_attention]
