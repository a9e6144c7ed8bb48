"""Read an ONNX file into a small, framework-free view: nodes in order, constants as numpy arrays, and the
static shape of every value. Constant subgraphs are folded first.

Folding runs to a fixed point: a node whose inputs are all known constants is evaluated (``Constant`` and
``ConstantOfShape`` directly, anything else with onnx's reference evaluator), and ``Shape`` of a value whose shape
shape inference knows statically becomes a constant. So ``Shape -> Gather -> Concat -> Reshape`` chains of
exporters reduce to a constant target shape, given the file's static input shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class OnnxNode:
    """One ONNX node: op type, name, input and output value names, attributes as Python values."""

    op: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict
    domain: str = ""


@dataclass
class OnnxGraph:
    """Nodes left after folding, constants, shapes (batch included), the model's inputs and outputs."""

    nodes: list[OnnxNode]
    consts: dict[str, np.ndarray]
    shapes: dict[str, tuple[int, ...]]
    inputs: list[str]
    outputs: list[str]
    opset: int
    initializer_names: set[str] = field(default_factory=set)
    producer: str = ""
    input_types: dict[str, int] = field(default_factory=dict)  # ONNX element type of each input
    origins: dict[str, str] = field(default_factory=dict)  # folded value -> the initializer it reshapes or expands


RESHAPING = {"Expand", "Identity", "Reshape", "Squeeze", "Unsqueeze", "Cast"}  # a folded value keeps its initializer


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _constant_value(attrs: dict):
    from onnx import numpy_helper

    if "value" in attrs:
        return numpy_helper.to_array(attrs["value"])
    for key, kind in (("value_float", np.float32), ("value_int", np.int64)):
        if key in attrs:
            return np.array(attrs[key], dtype=kind)
    for key, kind in (("value_floats", np.float32), ("value_ints", np.int64)):
        if key in attrs:
            return np.array(attrs[key], dtype=kind)
    return None


def _evaluate(node, values: list, opset: int):
    """The outputs of one node on constant inputs (None where it cannot be evaluated)."""
    attrs = _attrs(node)
    op = node.op_type
    if op == "Constant":
        return [_constant_value(attrs)]
    if op == "ConstantOfShape":
        from onnx import numpy_helper

        fill = numpy_helper.to_array(attrs["value"]).reshape(-1) if "value" in attrs else np.zeros(1, np.float32)
        return [np.full(tuple(int(d) for d in values[0]), fill[0], dtype=fill.dtype)]
    if op == "Identity":
        return [values[0]]
    try:
        from onnx import TensorProto, helper
        from onnx.reference import ReferenceEvaluator

        names = [f"i{k}" if v is not None else "" for k, v in enumerate(values)]
        one = helper.make_node(op, names, [f"o{k}" for k in range(len(node.output))], domain=node.domain, **attrs)
        graph = helper.make_graph([one], "fold", [helper.make_tensor_value_info(n, TensorProto.UNDEFINED, None)
                                                  for n in names if n],
                                  [helper.make_tensor_value_info(f"o{k}", TensorProto.UNDEFINED, None)
                                   for k in range(len(node.output))])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid(node.domain or "", opset)])
        feeds = {n: v for n, v in zip(names, values) if n}
        return list(ReferenceEvaluator(model).run(None, feeds))
    except Exception:  # an op the evaluator lacks stays a node; the converter then names it
        return None


def _static_shapes(model) -> dict[str, tuple[int, ...]]:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    out = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        t = vi.type.tensor_type
        if t.HasField("shape") and all(d.HasField("dim_value") for d in t.shape.dim):
            out[vi.name] = tuple(d.dim_value for d in t.shape.dim)
    return out


def read(path) -> OnnxGraph:
    """Load ``path`` (with external data beside it), fold constants, infer static shapes."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 1)
    if opset < 7:  # earlier opsets have per-node broadcast flags and other meanings
        model = onnx.version_converter.convert_version(model, 9)
        opset = 9
    g = model.graph
    consts = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    initializer_names = set(consts)
    inputs = [i.name for i in g.input if i.name not in consts]
    for vi in g.input:  # a dynamic batch axis is taken as 1 for shape inference (the spec's batch is dynamic)
        dims = vi.type.tensor_type.shape.dim
        if vi.name not in consts and len(dims) and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
    nodes = list(g.node)
    shapes: dict = {}
    origins: dict = {}
    changed, rounds = True, 0
    while changed and rounds < 50:
        changed, rounds, kept = False, rounds + 1, []
        for node in nodes:
            ins = list(node.input)
            known = all(i == "" or i in consts for i in ins)
            values = None
            if node.op_type == "Shape" and ins[0] in shapes:
                a = _attrs(node)
                shape = np.array(shapes[ins[0]], dtype=np.int64)
                values = [shape[a.get("start", 0):a.get("end", len(shape))]]
            elif known and node.op_type not in ("RandomNormal", "RandomUniform", "RandomNormalLike",
                                                  "RandomUniformLike", "Multinomial"):
                values = _evaluate(node, [consts.get(i) if i else None for i in ins], opset)
            if values is None:
                kept.append(node)
                continue
            for name, value in zip(node.output, values):
                consts[name] = np.asarray(value)
            if node.op_type == "Identity" and not node.output[0].startswith(("/", "onnx::")):
                origins[node.output[0]] = node.output[0]  # torch's exporter shares equal tensors and names each copy
            elif node.op_type in RESHAPING and ins and (ins[0] in initializer_names or ins[0] in origins):
                origins[node.output[0]] = origins.get(ins[0], ins[0])
            changed = True
        nodes = kept
        if changed or rounds == 1:
            folded = helper.make_graph(nodes, g.name, list(g.input), list(g.output),
                                       [numpy_helper.from_array(v, k) for k, v in consts.items()
                                        if v.size <= 64 or k not in initializer_names and v.dtype != np.float32])
            shell = helper.make_model(folded, opset_imports=list(model.opset_import),
                                      ir_version=max(model.ir_version, 4))
            for vi in g.value_info:  # IR 4: initializers need not be graph inputs
                shell.graph.value_info.append(vi)
            for k, v in consts.items():  # large float constants enter shape inference as typed inputs only
                if not (v.size <= 64 or k not in initializer_names and v.dtype != np.float32):
                    shell.graph.input.append(helper.make_tensor_value_info(
                        k, helper.np_dtype_to_tensor_dtype(v.dtype), list(v.shape)))
            shapes = _static_shapes(shell)
            shapes.update({k: tuple(v.shape) for k, v in consts.items()})
    out = [OnnxNode(n.op_type, n.name, list(n.input), list(n.output), _attrs(n), n.domain) for n in nodes]
    types = {i.name: i.type.tensor_type.elem_type for i in g.input if i.name in inputs}
    return OnnxGraph(out, consts, shapes, inputs, [o.name for o in g.output], opset, initializer_names,
                     model.producer_name, types, origins)
