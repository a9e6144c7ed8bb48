"""Keras source generator: a functional ``keras.Model`` plus ``build_model`` and ``load_weights``.

The spec's layout is channels-first. Keras on TensorFlow computes convolutions and
normalisation channels-last, so each value carries a layout here: ``logical`` (as in the
spec) or ``channels_last``. Emitters say which they need and ``Permute`` layers are
inserted where it changes. Rank-1 samples look the same in both layouts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..ir import Act, Graph, Param, weight_name
from .codegen import (
    READ_SAFETENSORS,
    Namespace,
    channels_first_perm,
    channels_last_perm,
    frozen_prefixes,
    header,
    kwargs,
    literal,
    where,
    wrap,
)
from .context import EmitContext
from .registry import emitter, emitters

LOGICAL, CHANNELS_LAST, ANY, FIRST = "logical", "channels_last", "any", "first"  # FIRST: as the first input

HELPERS = {
    "leaky_relu": '''
@keras.saving.register_keras_serializable(package="dlspec")
def leaky_relu(x):
    """Leaky ReLU with slope 0.01, as a dense layer's fused activation."""
    return keras.activations.leaky_relu(x, negative_slope=0.01)
''',
    "gelu_tanh": '''
@keras.saving.register_keras_serializable(package="dlspec")
def gelu_tanh(x):
    """GELU, tanh approximation."""
    return keras.activations.gelu(x, approximate=True)
''',
}


@dataclass
class KerasLayer:
    """A node in Keras: the layer expression, its weights, and the layouts it works in."""

    layer: str
    weights: list[str] = field(default_factory=list)
    wants: str = ANY
    helpers: tuple[str, ...] = ()
    pre: list[tuple[str, str]] = field(default_factory=list)  # (name suffix, layer expression without name)
    post: list[tuple[str, str]] = field(default_factory=list)
    call: str = "{}"  # how the layer is called; {0} is the input (a list for several), {1}, {2}, ... each input
    out: str | None = None  # the output's layout, where it differs from the layout the inputs were fed in
    alias: bool = False  # no layer: the output is the (converted) input itself, as a permute that the layout absorbs


@dataclass
class KerasContext(EmitContext):
    """Adds the layout of the node's input as it will be fed."""

    layout: str = LOGICAL

    def axis(self, logical_axis: int) -> int:
        """Physical axis (batch = 0) of a logical axis, given the input's layout."""
        return physical_axis(logical_axis, len(self.in_shape) + 1, self.layout)


def _w(node, param: str, transform: str = "") -> str:
    return f'weights[{literal(weight_name(node.name, param))}]{transform}'


def _init(param: Param, exact_fans: bool = True) -> str:
    """A Keras initializer with the spec's distribution. Named ones compute fans from the Keras
    kernel shape; where that differs from torch's (depthwise, transposed), scales are explicit."""
    if param.init in ("zeros", "ones") or (
            exact_fans and param.init in ("glorot_uniform", "he_uniform", "lecun_uniform") and len(param.shape) >= 2):
        return literal(param.init)
    kind, scale = param.scale()  # a bias takes the fans of its layer
    if param.init == "normal":
        return f"keras.initializers.RandomNormal({kwargs(mean=0.0, stddev=1.0)})"
    if kind == "uniform":
        return f"keras.initializers.RandomUniform({kwargs(minval=-scale, maxval=scale)})"
    return f"keras.initializers.RandomNormal({kwargs(mean=0.0, stddev=scale)})"


def physical_axis(logical_axis: int, rank: int, layout: str) -> int:
    """Physical axis (batch = 0) of a logical axis of a rank-``rank`` tensor (batch included) in ``layout``."""
    axis = logical_axis % rank
    if layout != CHANNELS_LAST or rank <= 2 or axis == 0:
        return axis
    return rank - 1 if axis == 1 else axis - 1


HELPERS["TorchLeakyReLU"] = '''
@keras.saving.register_keras_serializable(package="dlspec")
class TorchLeakyReLU(keras.layers.Layer):
    """x if x >= 0 else negative_slope * x, for any slope (keras.layers.LeakyReLU rejects negative ones)."""

    def __init__(self, negative_slope, **kwargs):
        super().__init__(**kwargs)
        self.negative_slope = negative_slope

    def call(self, x):
        return keras.ops.where(x >= 0, x, x * self.negative_slope)

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}
'''

HELPERS["TorchSoftplus"] = '''
@keras.saving.register_keras_serializable(package="dlspec")
class TorchSoftplus(keras.layers.Layer):
    """torch's softplus: log(1 + exp(beta * x)) / beta, and x where beta * x > threshold."""

    def __init__(self, beta=1.0, threshold=20.0, **kwargs):
        super().__init__(**kwargs)
        self.beta, self.threshold = beta, threshold

    def call(self, x):
        scaled = x * self.beta
        return keras.ops.where(scaled > self.threshold, x, keras.ops.softplus(scaled) / self.beta)

    def get_config(self):
        return {**super().get_config(), "beta": self.beta, "threshold": self.threshold}
'''


def _leaky_relu(act: Act, axis: int) -> tuple[str, tuple[str, ...]]:
    if act.negative_slope < 0:
        return f"TorchLeakyReLU({kwargs(negative_slope=act.negative_slope)})", ("TorchLeakyReLU",)
    return f"keras.layers.LeakyReLU({kwargs(negative_slope=act.negative_slope)})", ()


def _gelu(act: Act, axis: int) -> tuple[str, tuple[str, ...]]:
    if act.approximate == "tanh":
        return "keras.layers.Activation(gelu_tanh)", ("gelu_tanh",)
    return 'keras.layers.Activation("gelu")', ()


# One standalone layer per activation of the registry (dlspec/activations.py), as (constructor call without
# its name, helpers); ``axis`` is the physical axis of the activation's logical axis. A test checks the keys.
ACTIVATIONS = {
    "linear": lambda act, axis: ("keras.layers.Identity()", ()),
    "relu": lambda act, axis: ("keras.layers.ReLU()", ()),
    "relu6": lambda act, axis: ("keras.layers.ReLU(max_value=6.0)", ()),
    "leaky_relu": _leaky_relu,
    "elu": lambda act, axis: (f"keras.layers.ELU({kwargs(alpha=act.alpha)})", ()),
    "gelu": _gelu,
    "silu": lambda act, axis: ('keras.layers.Activation("silu")', ()),
    "sigmoid": lambda act, axis: ('keras.layers.Activation("sigmoid")', ()),
    "tanh": lambda act, axis: ('keras.layers.Activation("tanh")', ()),
    "softmax": lambda act, axis: (f"keras.layers.Softmax({kwargs(axis=axis)})", ()),
    "hardswish": lambda act, axis: ('keras.layers.Activation("hard_swish")', ()),
    "hardsigmoid": lambda act, axis: ('keras.layers.Activation("hard_sigmoid")', ()),  # Keras 3: relu6(x+3)/6
    "mish": lambda act, axis: ('keras.layers.Activation("mish")', ()),
    "softplus": lambda act, axis: (f"TorchSoftplus({kwargs(beta=act.beta, threshold=act.threshold)})",
                                   ("TorchSoftplus",)),
}

# Activations a Keras layer takes as ``activation=`` with exactly the meaning of the registry's defaults.
_FUSED = {"relu": "relu", "relu6": "relu6", "elu": "elu", "gelu": "gelu", "silu": "silu", "sigmoid": "sigmoid",
          "tanh": "tanh", "softmax": "softmax", "hardswish": "hard_swish", "hardsigmoid": "hard_sigmoid",
          "mish": "mish"}


def activation_layer(act: Act | None, name: str, ctx: KerasContext) -> KerasLayer:
    """A standalone Keras activation layer with exactly ``act``'s meaning (None: identity)."""
    act = act or Act("linear")
    expr, helpers = ACTIVATIONS[act.kind](act, ctx.axis(act.axis))
    return KerasLayer(_named(expr, name), helpers=helpers)


def fused(act: Act | None, rank: int = 2, layout: str = LOGICAL) -> tuple[str, tuple[str, ...], list]:
    """The ``activation=`` argument for a fused activation, the helpers it needs, and the ``post`` layers that
    apply it instead where no ``activation=`` means exactly the same (softmax over the logical last axis of a
    channels-last output, softplus with torch's threshold). ``rank`` and ``layout`` describe the output."""
    if act is None:
        return "None", (), []
    if act.kind == "leaky_relu":
        return "leaky_relu", ("leaky_relu",), []
    if act.kind in _FUSED and not (act.kind == "softmax" and physical_axis(-1, rank, layout) != rank - 1):
        return literal(_FUSED[act.kind]), (), []
    expr, helpers = ACTIVATIONS[act.kind](act, physical_axis(act.axis, rank, layout))
    return "None", helpers, [(act.kind, expr)]


@emitter("keras", "dense")
def _dense(ctx: KerasContext) -> KerasLayer:
    node, a = ctx.node, ctx.node.attrs
    fused_act, helpers, post = fused(Act.of(a["activation"]), len(node.shape) + 1, LOGICAL)
    params = {p.name: p for p in node.params}
    args = [f"units={a['units']}", f"activation={fused_act}", f"use_bias={a['use_bias']}",
            f"kernel_initializer={_init(params['weight'])}"]
    if a["use_bias"]:
        args.append(f"bias_initializer={_init(params['bias'])}")
    weights = [_w(node, "weight", ".T")] + ([_w(node, "bias")] if a["use_bias"] else [])
    return KerasLayer(f"keras.layers.Dense({', '.join(args)}, name={literal(node.name)})", weights, LOGICAL, helpers,
                      post=post)


@emitter("keras", "activation")
def _activation(ctx: KerasContext) -> KerasLayer:
    return activation_layer(Act.of(ctx.node.attrs), ctx.node.name, ctx)


@emitter("keras", "dropout")
def _dropout(ctx: KerasContext) -> KerasLayer:
    return KerasLayer(f"keras.layers.Dropout({kwargs(rate=ctx.node.attrs['rate'], name=ctx.node.name)})")


HELPERS["BatchNorm"] = '''
@keras.saving.register_keras_serializable(package="dlspec")
class BatchNorm(keras.layers.Layer):
    """Batch normalisation over the last axis with torch's semantics: in training, normalise with the
    biased batch variance and update running = (1 - momentum) * running + momentum * batch with the
    unbiased one (keras.layers.BatchNormalization uses the biased one). A frozen layer (trainable=False)
    always runs in inference mode."""

    def __init__(self, momentum=0.1, epsilon=1e-5, **kwargs):
        super().__init__(**kwargs)
        self.momentum, self.epsilon = momentum, epsilon

    def build(self, input_shape):
        c = input_shape[-1]
        self.gamma = self.add_weight(shape=(c,), initializer="ones", name="gamma")
        self.beta = self.add_weight(shape=(c,), initializer="zeros", name="beta")
        self.moving_mean = self.add_weight(shape=(c,), initializer="zeros", trainable=False, name="moving_mean")
        self.moving_variance = self.add_weight(shape=(c,), initializer="ones", trainable=False,
                                               name="moving_variance")

    def call(self, x, training=False):
        if training and self.trainable:
            mean, variance, n = self.batch_moments(x)
            m = self.momentum
            self.moving_mean.assign((1 - m) * self.moving_mean + m * mean)
            self.moving_variance.assign((1 - m) * self.moving_variance + m * variance * n / (n - 1))
        else:
            mean, variance = self.moving_mean, self.moving_variance
        return (x - mean) * keras.ops.rsqrt(variance + self.epsilon) * self.gamma + self.beta

    def batch_moments(self, x):
        """Mean, biased variance and sample count over all axes but the last. Under tf.distribute with
        several replicas, those of the whole batch, summed over the replicas (as one device sees them)."""
        axes = list(range(len(x.shape) - 1))
        n = keras.ops.cast(keras.ops.size(x) // x.shape[-1], x.dtype)
        replicas = _replica_context()
        if replicas is None:
            return keras.ops.mean(x, axis=axes), keras.ops.var(x, axis=axes), n
        n = replicas.all_reduce("SUM", n)
        mean = replicas.all_reduce("SUM", keras.ops.sum(x, axis=axes)) / n
        variance = replicas.all_reduce("SUM", keras.ops.sum(keras.ops.square(x - mean), axis=axes)) / n
        return mean, variance, n

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon}


def _replica_context():
    """TensorFlow's replica context while training on several tf.distribute replicas, else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    return context if context is not None and context.num_replicas_in_sync > 1 else None
'''


@emitter("keras", "batchnorm")
def _batchnorm(ctx: KerasContext) -> KerasLayer:
    a, node = ctx.node.attrs, ctx.node
    args = kwargs(momentum=a["momentum"], epsilon=a["eps"], name=node.name)
    weights = [_w(node, p) for p in ("weight", "bias", "running_mean", "running_var")]
    return KerasLayer(f"BatchNorm({args})", weights, CHANNELS_LAST, helpers=("BatchNorm",))


@emitter("keras", "flatten")
def _flatten(ctx: KerasContext) -> KerasLayer:
    return KerasLayer(f"keras.layers.Flatten({kwargs(name=ctx.node.name)})", wants=LOGICAL)


@emitter("keras", "reshape")
def _reshape(ctx: KerasContext) -> KerasLayer:
    args = kwargs(target_shape=tuple(ctx.node.shape), name=ctx.node.name)
    return KerasLayer(f"keras.layers.Reshape({args})", wants=LOGICAL)


def _named(expr: str, name: str) -> str:
    """Add ``name=...`` to a layer constructor call."""
    return expr[:-1] + (", " if not expr[:-1].endswith("(") else "") + f"name={literal(name)})"


class _Writer:
    """Emits the body of ``build_model``, tracking each variable's layout."""

    def __init__(self, graph: Graph):
        self.graph, self.lines, self.layouts = graph, [], {}
        self.ns = Namespace([i.name for i in graph.inputs] + [n.name for n in graph.nodes])
        self.weights, self.helpers, self.converted, self.plan = [], [], {}, {}

    def convert(self, var: str, rank: int, want: str) -> tuple[str, str]:
        have = self.layouts[var]
        if rank <= 1 or want in (ANY, have):
            return var, have
        if (var, want) in self.converted:  # one Permute per value and layout, shared by its readers
            return self.converted[var, want], want
        perm = channels_last_perm(rank) if want == CHANNELS_LAST else channels_first_perm(rank)
        new = self.ns.fresh(f"{var}_{'nhwc' if want == CHANNELS_LAST else 'nchw'}")
        self.lines.append(wrap(f"{new} = keras.layers.Permute({kwargs(dims=perm, name=new)})({var})", "    "))
        self.layouts[new] = want
        self.converted[var, want] = new
        return new, want

    def node(self, node, table):
        shapes = [self.graph.shape_of(v) for v in node.inputs]
        batched = [self.graph.is_batched(v) for v in node.inputs]
        firsts = [self.layouts[self.ns[v]] for v, b in zip(node.inputs, batched) if b]
        # the probe sees the layout the first batched input has now, so an emitter can ask for another one
        probe = KerasContext(self.graph, node, list(node.inputs), shapes, layout=firsts[0] if firsts else LOGICAL)
        lay = table[node.op](probe)
        args, layout = [], LOGICAL
        for var, shape, b in zip([self.ns[v] for v in node.inputs], shapes, batched):
            if not b:  # parameters stay as they are; emitters bring them to the batched inputs' layout
                args.append(var)
                continue
            new, layout = self.convert(var, len(shape), firsts[0] if lay.wants == FIRST else lay.wants)
            args.append(new)
        if layout != probe.layout:  # emitters that read axes see the layout they will be fed
            lay = table[node.op](KerasContext(self.graph, node, args, shapes, layout=layout))
        if not node.inputs:  # a parameter enters the functional graph through the first model input
            args = [self.ns[self.graph.inputs[0].name]]
        call = args[0] if len(args) == 1 else "[" + ", ".join(args) + "]"
        var = self.ns[node.name]
        self.layouts[var] = (lay.out or layout) if len(node.shape) > 1 else LOGICAL
        self.helpers += [h for h in lay.helpers if h not in self.helpers]
        if lay.alias:
            self.lines.append(wrap(f"{var} = {call}  {where(self.graph, node)}", "    "))
            return
        for suffix, expr in lay.pre:
            step = self.ns.fresh(f"{var}_{suffix}")
            self.lines.append(wrap(f"{step} = {_named(expr, node.name + '.' + suffix)}({call})", "    "))
            call = step
        main = self.ns.fresh(f"{var}_raw") if lay.post else var
        comment = "" if lay.post else f"  {where(self.graph, node)}"
        self.lines.append(wrap(f"{main} = {lay.layer}({lay.call.format(call, *args)}){comment}", "    "))
        for i, (suffix, expr) in enumerate(lay.post):
            step = var if i == len(lay.post) - 1 else self.ns.fresh(f"{var}_{suffix}")
            comment = f"  {where(self.graph, node)}" if step == var else ""
            self.lines.append(wrap(f"{step} = {_named(expr, node.name + '.' + suffix)}({main}){comment}", "    "))
            main = step
        if lay.weights:
            self.plan[node.name] = list(lay.weights)
            self.weights.append(wrap(f'model.get_layer({literal(node.name)}).set_weights([{", ".join(lay.weights)}])',
                                     "    "))


def _write(graph: Graph) -> _Writer:
    w, table = _Writer(graph), emitters("keras")
    for inp in graph.inputs:
        dtype = "" if inp.dtype == "float32" else f", dtype={literal(inp.dtype)}"
        w.lines.append(f"    {w.ns[inp.name]} = keras.Input({kwargs(shape=tuple(inp.shape))}{dtype}, "
                       f"{kwargs(name=inp.name)})")
        w.layouts[w.ns[inp.name]] = LOGICAL
    for node in graph.nodes:
        w.node(node, table)
    return w


FREEZE = '''
    for layer in model.layers:
        if any(layer.name == name or layer.name.startswith(name + ".") for name in FROZEN):
            layer.trainable = False
'''


def weight_plan(graph: Graph) -> dict[str, list[str]]:
    """For each node with weights: the expressions (over ``weights[...]``) giving its Keras weights."""
    return _write(graph).plan


def generate(graph: Graph, weights_file: str | None = None) -> str:
    """Keras source for ``graph``. With ``weights_file``, ``build_model`` loads it by default."""
    w = _write(graph)
    outputs = [w.convert(w.ns[o], len(graph.shape_of(o)), LOGICAL)[0] for o in graph.outputs]
    ins = w.ns[graph.inputs[0].name] if len(graph.inputs) == 1 else \
        "[" + ", ".join(w.ns[i.name] for i in graph.inputs) + "]"
    outs = outputs[0] if len(outputs) == 1 else "[" + ", ".join(outputs) + "]"
    lines = [header(graph, "Keras"), "", "import json"] + (["from pathlib import Path"] if weights_file else [])
    lines += ["", "import keras", "import numpy as np", ""]
    if weights_file:
        lines += ["", f"WEIGHTS = Path(__file__).with_name({literal(weights_file)})", ""]
    frozen = frozen_prefixes({n.name: not n.trainable for n in graph.nodes if n.params})
    if frozen:
        lines += ["", wrap(f"FROZEN = {literal(tuple(frozen))}  # fixed weights, BatchNorm in inference mode", ""), ""]
    for h in w.helpers:
        lines += ["", *HELPERS[h].strip("\n").splitlines(), ""]
    default = "WEIGHTS" if weights_file else "None"
    lines += ["", f"def build_model(weights={default}):",
              '    """Build the model; ``weights`` is a safetensors path or a dict of numpy arrays."""',
              *w.lines, wrap(f"model = keras.Model(inputs={ins}, outputs={outs}, name={literal(graph.name)})", "    "),
              *(FREEZE.strip("\n").splitlines() if frozen else []),
              "    if weights is not None:", "        load_weights(model, weights)", "    return model", "", "",
              "def load_weights(model, weights):",
              '    """Load dlspec\'s canonical weights (a safetensors path or a dict of arrays) into ``model``."""',
              "    if not isinstance(weights, dict):", "        weights = read_safetensors(weights)", *w.weights,
              "", *READ_SAFETENSORS.splitlines()]
    return "\n".join(lines).rstrip("\n") + "\n"
