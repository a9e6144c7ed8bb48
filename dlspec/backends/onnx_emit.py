"""Direct ONNX lowering with ``onnx.helper``: no torch or TensorFlow involved.

Each spec node becomes an ONNX node of the same name whose output value has that name;
ops that need several ONNX nodes name the helpers ``<node>/<step>``. The batch axis is
the symbolic dimension ``batch``. Parameters are initializers named ``<node>.<param>``.
"""

from __future__ import annotations

import math

from .. import ir
from ..ir import Act, Graph, weight_name
from .context import EmitContext
from .registry import emitter, emitters

DEFAULT_OPSET = 17
IR_VERSION = 8  # the IR version of opset 17, readable by every onnxruntime since 1.12


class OnnxGraph:
    """Accumulates nodes and initializers for one model."""

    def __init__(self, weights: dict, opset: int):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers, self.weights, self.opset = [], [], weights, opset

    def add(self, op: str, inputs: list[str], output: str, name: str, **attrs) -> str:
        """Append a node; returns its output value name."""
        self.nodes.append(self.helper.make_node(op, inputs, [output], name=name, **attrs))
        return output

    def param(self, node, param: str) -> str:
        """Initializer for a canonical weight, under its canonical name and layout; returns the name."""
        name = weight_name(node.name, param)
        self.initializers.append(self.numpy_helper.from_array(self.weights[name], name))
        return name

    def shaped(self, node, param: str, shape) -> str:
        """A canonical weight viewed with another shape (a Reshape node; the initializer stays canonical)."""
        name = f"{node.name}.{param}"
        target = self.const(f"{name}/shape", list(shape), "int64")
        return self.add("Reshape", [self.param(node, param), target], f"{name}/reshaped", f"{name}/reshaped")

    def const(self, name: str, value, dtype="float32") -> str:
        """A constant initializer (not a parameter)."""
        import numpy as np

        self.initializers.append(self.numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name


def _softplus(g: OnnxGraph, act: Act, x: str, out: str, name: str) -> str:
    """torch's softplus: where(beta*x > threshold, x, Softplus(beta*x) / beta)."""
    scaled = x if act.beta == 1.0 else g.add("Mul", [x, g.const(f"{name}/beta", act.beta)], f"{name}/scaled",
                                             f"{name}/scaled")
    soft = g.add("Softplus", [scaled], f"{name}/softplus", f"{name}/softplus")
    if act.beta != 1.0:
        soft = g.add("Div", [soft, f"{name}/beta"], f"{name}/soft", f"{name}/soft")
    above = g.add("Greater", [scaled, g.const(f"{name}/threshold", act.threshold)], f"{name}/above",
                  f"{name}/above")
    return g.add("Where", [above, x, soft], out, name)


def _mish(g: OnnxGraph, act: Act, x: str, out: str, name: str) -> str:
    if g.opset >= 18:
        return g.add("Mish", [x], out, name)
    soft = g.add("Softplus", [x], f"{name}/softplus", f"{name}/softplus")
    return g.add("Mul", [x, g.add("Tanh", [soft], f"{name}/tanh", f"{name}/tanh")], out, name)


def _silu(g: OnnxGraph, act: Act, x: str, out: str, name: str) -> str:
    s = g.add("Sigmoid", [x], f"{name}/sigmoid", f"{name}/sigmoid")
    return g.add("Mul", [x, s], out, name)


# One lowering per activation of the registry (dlspec/activations.py); a test checks the keys.
ACTIVATIONS = {
    "linear": lambda g, act, x, out, name: g.add("Identity", [x], out, name),
    "relu": lambda g, act, x, out, name: g.add("Relu", [x], out, name),
    "relu6": lambda g, act, x, out, name: g.add(
        "Clip", [x, g.const(f"{name}/min", 0.0), g.const(f"{name}/max", 6.0)], out, name),
    "leaky_relu": lambda g, act, x, out, name: g.add("LeakyRelu", [x], out, name, alpha=act.negative_slope),
    "elu": lambda g, act, x, out, name: g.add("Elu", [x], out, name, alpha=act.alpha),
    "gelu": lambda g, act, x, out, name: _gelu(g, act.approximate, x, out, name),
    "silu": _silu,
    "sigmoid": lambda g, act, x, out, name: g.add("Sigmoid", [x], out, name),
    "tanh": lambda g, act, x, out, name: g.add("Tanh", [x], out, name),
    "softmax": lambda g, act, x, out, name: g.add("Softmax", [x], out, name, axis=act.axis),
    "hardswish": lambda g, act, x, out, name: g.add("HardSwish", [x], out, name),
    "hardsigmoid": lambda g, act, x, out, name: g.add("HardSigmoid", [x], out, name, alpha=1.0 / 6.0, beta=0.5),
    "mish": _mish,
    "softplus": _softplus,
}


def activation(g: OnnxGraph, act: Act | None, x: str, out: str, name: str) -> str:
    """Nodes computing ``act(x)`` into value ``out``."""
    act = act or Act("linear")
    return ACTIVATIONS[act.kind](g, act, x, out, name)


def _gelu(g: OnnxGraph, approximate: str, x: str, out: str, name: str) -> str:
    if g.opset >= 20:
        return g.add("Gelu", [x], out, name, approximate=approximate)
    if approximate == "none":  # 0.5 * x * (1 + erf(x / sqrt(2)))
        inner = g.add("Div", [x, g.const(f"{name}/sqrt2", math.sqrt(2.0))], f"{name}/scaled", f"{name}/scaled")
        inner = g.add("Erf", [inner], f"{name}/erf", f"{name}/erf")
    else:  # 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))
        cube = g.add("Mul", [x, x], f"{name}/square", f"{name}/square")
        cube = g.add("Mul", [cube, x], f"{name}/cube", f"{name}/cube")
        cube = g.add("Mul", [cube, g.const(f"{name}/c", 0.044715)], f"{name}/cubic", f"{name}/cubic")
        inner = g.add("Add", [x, cube], f"{name}/poly", f"{name}/poly")
        inner = g.add("Mul", [inner, g.const(f"{name}/k", math.sqrt(2.0 / math.pi))], f"{name}/arg", f"{name}/arg")
        inner = g.add("Tanh", [inner], f"{name}/tanh", f"{name}/tanh")
    inner = g.add("Add", [inner, g.const(f"{name}/one", 1.0)], f"{name}/onep", f"{name}/onep")
    half = g.add("Mul", [x, g.const(f"{name}/half", 0.5)], f"{name}/half_x", f"{name}/half_x")
    return g.add("Mul", [half, inner], out, name)


@emitter("onnx", ir.ops.Dense)
def _dense(ctx: EmitContext, g: OnnxGraph) -> None:
    node, a = ctx.node, ctx.node.attrs
    act, name = Act.of(a["activation"]), ctx.node.name
    steps = []  # (op, extra inputs, attributes); the last one is named after the node
    if len(ctx.in_shape) == 1:
        steps.append(("Gemm", [g.param(node, "weight")] + ([g.param(node, "bias")] if a["use_bias"] else []),
                      {"transB": 1}))
    else:  # MatMul broadcasts over leading axes; Gemm takes matrices only
        weight_t = g.add("Transpose", [g.param(node, "weight")], f"{name}/weight_t", f"{name}/weight_t")
        steps.append(("MatMul", [weight_t], {}))
        if a["use_bias"]:
            steps.append(("Add", [g.param(node, "bias")], {}))
    x = ctx.x
    for i, (op, extra, attrs) in enumerate(steps):
        last = i == len(steps) - 1 and act is None
        x = g.add(op, [x] + extra, name if last else f"{name}/{op.lower()}", name if last else f"{name}/{op.lower()}",
                  **attrs)
    if act is not None:
        activation(g, act, x, name, name)


@emitter("onnx", ir.ops.Activation)
def _activation(ctx: EmitContext, g: OnnxGraph) -> None:
    activation(g, Act.of(ctx.node.attrs), ctx.x, ctx.node.name, ctx.node.name)


@emitter("onnx", ir.ops.Dropout)
def _dropout(ctx: EmitContext, g: OnnxGraph) -> None:
    g.add("Identity", [ctx.x], ctx.node.name, ctx.node.name)  # dropout is the identity at inference


@emitter("onnx", ir.ops.BatchNorm)
def _batchnorm(ctx: EmitContext, g: OnnxGraph) -> None:
    node = ctx.node
    params = [g.param(node, p) for p in ("weight", "bias", "running_mean", "running_var")]
    g.add("BatchNormalization", [ctx.x] + params, node.name, node.name, epsilon=node.attrs["eps"],
          momentum=1.0 - node.attrs["momentum"])


@emitter("onnx", ir.ops.Flatten)
def _flatten(ctx: EmitContext, g: OnnxGraph) -> None:
    g.add("Flatten", [ctx.x], ctx.node.name, ctx.node.name, axis=1)


@emitter("onnx", ir.ops.Reshape)
def _reshape(ctx: EmitContext, g: OnnxGraph) -> None:
    shape = g.const(f"{ctx.node.name}/shape", (-1,) + tuple(ctx.node.shape), "int64")
    g.add("Reshape", [ctx.x, shape], ctx.node.name, ctx.node.name)


def lower_onnx(graph: Graph, weights: dict, opset: int | None = None):
    """An ``onnx.ModelProto`` for ``graph`` with ``weights`` as initializers."""
    from onnx import TensorProto, helper

    from .. import __version__

    opset = check_opset(opset)
    g, table = OnnxGraph(weights, opset), emitters("onnx")
    for node in graph.nodes:
        ctx = EmitContext(graph, node, list(node.inputs), [graph.shape_of(v) for v in node.inputs])
        table[node.op](ctx, g)

    def value(name, shape, dtype="float32"):
        kind = TensorProto.INT64 if dtype == "int64" else TensorProto.FLOAT
        return helper.make_tensor_value_info(name, kind, ["batch", *shape])

    body = helper.make_graph(g.nodes, graph.name, [value(i.name, i.shape, i.dtype) for i in graph.inputs],
                             [value(o, graph.shape_of(o)) for o in graph.outputs], g.initializers)
    body.doc_string = f"generated by dlspec from {graph.source}"
    model = helper.make_model(body, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="dlspec", producer_version=__version__,
                              ir_version=max(IR_VERSION, _ir_version_for(opset)))
    return annotate(fold_constants(model, opset), graph)


def check_opset(opset: int | None) -> int:
    """The opset to use; raises :class:`UsageError` for one the lowering cannot target."""
    from onnx.defs import onnx_opset_version

    from ..errors import UsageError

    if opset is None:
        return DEFAULT_OPSET
    newest = onnx_opset_version()
    if not DEFAULT_OPSET <= opset <= newest:
        raise UsageError(f"--opset must be between {DEFAULT_OPSET} (LayerNormalization needs it) and {newest} "
                         f"(the newest this onnx package knows). Received: {opset}")
    return opset


def _ir_version_for(opset: int) -> int:
    from onnx import helper

    for entry in helper.VERSION_TABLE:  # (release, ir_version, ai.onnx opset, ...)
        if entry[2] >= opset:
            return entry[1]
    return helper.VERSION_TABLE[-1][1]


# operators never folded: their outputs are not functions of their inputs alone
_UNFOLDABLE = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli",
               "Dropout"}
FOLD_GROWTH = 1 << 16  # a folded value may exceed its inputs by this many scalars (no Expand/Tile blow-ups)


def fold_constants(model, opset: int):
    """Replace every node whose inputs are all initializers by an initializer holding its output, computed with
    onnx's reference evaluator (numpy; no framework), then drop the initializers nothing reads any more. The
    weight re-layouts of the lowering (LSTM gate order, transposed dense weights, reshaped scales) thus ship
    pre-computed, as onnxslim or onnxruntime's offline optimiser would leave them. Folded initializers are named
    after the value they replace."""
    from onnx import numpy_helper
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    known = {t.name: t for t in graph.initializer}
    arrays: dict = {}

    def array(name):
        if name not in arrays:
            arrays[name] = numpy_helper.to_array(known[name])
        return arrays[name]

    kept, folded = [], []
    for node in graph.node:
        inputs = [i for i in node.input if i]
        if node.op_type in _UNFOLDABLE or node.domain not in ("", "ai.onnx") or not inputs \
                or not all(i in known for i in inputs):
            kept.append(node)
            continue
        values = ReferenceEvaluator(node, opsets={"": opset}).run(None, {i: array(i) for i in inputs})
        if sum(v.size for v in values) > sum(array(i).size for i in inputs) + FOLD_GROWTH:
            kept.append(node)
            continue
        for name, value in zip(node.output, values):
            arrays[name] = value
            known[name] = numpy_helper.from_array(value, name)
            folded.append(name)
    used = {i for n in kept for i in n.input} | {o.name for o in graph.output}
    inits = [t for t in graph.initializer if t.name in used] + [known[n] for n in folded if n in used]
    del graph.node[:]
    graph.node.extend(kept)
    del graph.initializer[:]
    graph.initializer.extend(inits)
    return model


def spec_hash(graph: Graph) -> str:
    """SHA-256 of the validated spec's meaning: inputs, every node (name, op, inputs, attributes, shape,
    parameters, trainable) and outputs in canonical JSON. Comments, formatting and file names do not change it."""
    import hashlib
    import json

    data = {"name": graph.name, "inputs": [[i.name, list(i.shape), i.dtype] for i in graph.inputs],
            "nodes": [[n.name, n.op, list(n.inputs), n.attrs, list(n.shape or ()), n.batched, n.trainable,
                       [[p.name, list(p.shape), p.init, p.trainable] for p in n.params]] for n in graph.nodes],
            "outputs": list(graph.outputs)}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def annotate(model, graph: Graph):
    """Netron-ready: ``value_info`` with every intermediate value's shape (onnx shape inference, batch axis
    named "batch") and ``metadata_props`` naming dlspec's version, the spec, its source file and its hash."""
    import onnx

    from .. import __version__

    infer_value_info(model)
    onnx.helper.set_model_props(model, {"dlspec.version": __version__, "dlspec.spec": graph.name,
                                        "dlspec.source": str(graph.source), "dlspec.spec_sha256": spec_hash(graph)})
    return model


def infer_value_info(model):
    """Replace ``value_info`` by onnx shape inference's: the type and shape of every intermediate value (run
    again after a pass that changes types or removes values, as --fp16 and --optimize do)."""
    import onnx

    del model.graph.value_info[:]
    inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    outputs = {o.name for o in model.graph.output}
    model.graph.value_info.extend(v for v in inferred.graph.value_info if v.name not in outputs)
    return model
