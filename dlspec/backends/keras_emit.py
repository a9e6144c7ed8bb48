"""Keras source generator: a functional ``keras.Model`` plus ``build_model`` and ``load_weights``.

The spec's layout is channels-first. Keras on TensorFlow computes convolutions and
normalisation channels-last, so each value carries a layout here: ``logical`` (as in the
spec) or ``channels_last``. Emitters say which they need and ``Permute`` layers are
inserted where it changes. Rank-1 samples look the same in both layouts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .. import ir
from ..errors import InternalError
from ..ir import Act, Graph, Param
from .classes import group_classes, instances
from .codegen import (
    READ_SAFETENSORS,
    Namespace,
    channels_first_perm,
    channels_last_perm,
    format_lines,
    frozen_prefixes,
    header,
    module_source,
    where,
)
from .context import EmitContext
from .registry import emitter, emitters
from .source import Atom, Call, Dict, Kw, List, Lit, Node, Stmt, Tuple, call, lit, mapped, method

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


@dataclass(frozen=True, eq=True)
class Arg(Node):
    """Placeholder in :attr:`KerasLayer.call`: ``0`` the input as fed (a list for several), ``k`` input ``k``."""

    index: int

    def parts(self) -> list:
        return [f"{{{self.index}}}"]


@dataclass
class KerasLayer:
    """A node in Keras: the layer expression, its weights, and the layouts it works in."""

    layer: Call | None
    weights: list = field(default_factory=list)  # how each Keras weight comes from canonical tensors (see _w)
    wants: str = ANY
    helpers: tuple[str, ...] = ()
    pre: list[tuple[str, Call]] = field(default_factory=list)  # (name suffix, layer expression without name)
    post: list[tuple[str, Call]] = field(default_factory=list)
    call: tuple = (Arg(0),)  # the arguments the layer is called with (Arg and Kw nodes)
    out: str | None = None  # the output's layout, where it differs from the layout the inputs were fed in
    alias: bool = False  # no layer: the output is the (converted) input itself, as a permute that the layout absorbs


@dataclass
class KerasContext(EmitContext):
    """Adds the layout of the node's input as it will be fed."""

    layout: str = LOGICAL

    def axis(self, logical_axis: int) -> int:
        """Physical axis (batch = 0) of a logical axis, given the input's layout."""
        return physical_axis(logical_axis, len(self.in_shape) + 1, self.layout)


T = ("transpose", (1, 0))


def _w(node, param: str, *steps: tuple) -> tuple:
    """One Keras weight taken from the node's canonical tensor ``param`` ("" for a `parameter` node, whose tensor
    is the node) by layout ``steps``: ("transpose", axes), ("reshape", shape), ("rows", (start, stop)) of axis 0,
    ("gates", order) reordering equal chunks of axis 0. Weights summed or stacked from several tensors are
    {"sum": [...]} or {"stack": [...]} of these. The generated ``keras_weight`` reads this data."""
    return (param, tuple(steps))


# One lowering per entry of the initialiser registry (dlspec/initializers.py): Keras' own initializer where it
# draws the same distribution, else None for an explicit RandomNormal/RandomUniform with dlspec's scale
# (Keras' normal-family initializers are truncated).
INITIALIZERS = {"zeros": "zeros", "ones": "ones", "glorot_uniform": "glorot_uniform", "he_uniform": "he_uniform",
                "lecun_uniform": "lecun_uniform", "glorot_normal": None, "he_normal": None, "lecun_normal": None,
                "normal": None}
def declare(fn, wants=ANY, keeps: bool = True):
    """Declare what the layer an emitter makes needs, so that the writer knows before it emits (and each emitter
    runs once per node): ``wants``, the layout its batched inputs must come in (a layout, or a function of the
    :class:`KerasContext` giving one), and ``keeps``, whether its output has the layout its input was fed in."""
    fn.wants, fn.keeps = wants, keeps
    return fn


def wanted(fn, ctx) -> tuple[str, bool, KerasLayer | None]:
    """The layout that emitter ``fn`` declares its inputs must come in, for the node of ``ctx``, and whether its
    output keeps the input's layout. An emitter that declares nothing (one wrapped by a test or a plug-in)
    emits for ``ctx`` to tell; that layer comes third (else None)."""
    if not hasattr(fn, "wants"):
        lay = fn(ctx)
        return lay.wants, lay.out is None, lay
    wants = fn.wants
    return (wants(ctx) if callable(wants) else wants), fn.keeps, None


def _init(param: Param, exact_fans: bool = True) -> Node:
    """A Keras initializer with the spec's distribution. Named ones compute fans from the Keras
    kernel shape; where that differs from torch's (depthwise, transposed), scales are explicit."""
    kind, scale = param.scale()  # a bias takes the fans of its layer
    if param.init not in INITIALIZERS:  # a fixed value no spec names, such as PReLU's 0.25
        return call("keras.initializers.Constant", value=scale)
    named = INITIALIZERS[param.init]
    if kind == "constant" or (named and exact_fans and len(param.shape) >= 2):
        return Lit(named)
    if kind == "uniform":
        return call("keras.initializers.RandomUniform", minval=-scale, maxval=scale)
    return call("keras.initializers.RandomNormal", mean=0.0, stddev=scale)


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
        smooth = keras.ops.softplus(scaled) / self.beta
        return keras.ops.where(scaled > self.threshold, x, smooth)

    def get_config(self):
        return {**super().get_config(), "beta": self.beta, "threshold": self.threshold}
'''


def _leaky_relu(act: Act, axis: int) -> tuple[Call, tuple[str, ...]]:
    if act.negative_slope < 0:
        return call("TorchLeakyReLU", negative_slope=act.negative_slope), ("TorchLeakyReLU",)
    return call("keras.layers.LeakyReLU", negative_slope=act.negative_slope), ()


def _gelu(act: Act, axis: int) -> tuple[Call, tuple[str, ...]]:
    if act.approximate == "tanh":
        return call("keras.layers.Activation", Atom("gelu_tanh")), ("gelu_tanh",)
    return call("keras.layers.Activation", "gelu"), ()


# One standalone layer per activation of the registry (dlspec/activations.py), as (constructor call without
# its name, helpers); ``axis`` is the physical axis of the activation's logical axis. A test checks the keys.
ACTIVATIONS = {
    "linear": lambda act, axis: (call("keras.layers.Identity"), ()),
    "relu": lambda act, axis: (call("keras.layers.ReLU"), ()),
    "relu6": lambda act, axis: (call("keras.layers.ReLU", max_value=6.0), ()),
    "leaky_relu": _leaky_relu,
    "elu": lambda act, axis: (call("keras.layers.ELU", alpha=act.alpha), ()),
    "gelu": _gelu,
    "silu": lambda act, axis: (call("keras.layers.Activation", "silu"), ()),
    "sigmoid": lambda act, axis: (call("keras.layers.Activation", "sigmoid"), ()),
    "tanh": lambda act, axis: (call("keras.layers.Activation", "tanh"), ()),
    "softmax": lambda act, axis: (call("keras.layers.Softmax", axis=axis), ()),
    "hardswish": lambda act, axis: (call("keras.layers.Activation", "hard_swish"), ()),
    "hardsigmoid": lambda act, axis: (call("keras.layers.Activation", "hard_sigmoid"), ()),  # Keras 3: relu6(x+3)/6
    "mish": lambda act, axis: (call("keras.layers.Activation", "mish"), ()),
    "softplus": lambda act, axis: (call("TorchSoftplus", beta=act.beta, threshold=act.threshold), ("TorchSoftplus",)),
}

# Activations a Keras layer takes as ``activation=`` with exactly the meaning of the registry's defaults.
_FUSED = {"relu": "relu", "relu6": "relu6", "elu": "elu", "gelu": "gelu", "silu": "silu", "sigmoid": "sigmoid",
          "tanh": "tanh", "softmax": "softmax", "hardswish": "hard_swish", "hardsigmoid": "hard_sigmoid",
          "mish": "mish"}


def activation_layer(act: Act | None, name: str, ctx: KerasContext) -> KerasLayer:
    """A standalone Keras activation layer with exactly ``act``'s meaning (None: identity)."""
    act = act or Act("linear")
    expr, helpers = ACTIVATIONS[act.kind](act, ctx.axis(act.axis))
    return KerasLayer(expr.plus(name=name), helpers=helpers)


def fused(act: Act | None, rank: int = 2, layout: str = LOGICAL) -> tuple[Node, tuple[str, ...], list]:
    """The ``activation=`` argument for a fused activation, the helpers it needs, and the ``post`` layers that
    apply it instead where no ``activation=`` means exactly the same (softmax over the logical last axis of a
    channels-last output, softplus with torch's threshold). ``rank`` and ``layout`` describe the output."""
    if act is None:
        return Lit(None), (), []
    if act.kind == "leaky_relu":
        return Atom("leaky_relu"), ("leaky_relu",), []
    if act.kind in _FUSED and not (act.kind == "softmax" and physical_axis(-1, rank, layout) != rank - 1):
        return Lit(_FUSED[act.kind]), (), []
    expr, helpers = ACTIVATIONS[act.kind](act, physical_axis(act.axis, rank, layout))
    return Lit(None), helpers, [(act.kind, expr)]


@emitter("keras", ir.ops.Dense)
def _dense(ctx: KerasContext) -> KerasLayer:
    node, a = ctx.node, ctx.node.attrs
    fused_act, helpers, post = fused(Act.of(a["activation"]), len(node.shape) + 1, LOGICAL)
    params = {p.name: p for p in node.params}
    init = {"kernel_initializer": _init(params["weight"])}
    if a["use_bias"]:
        init["bias_initializer"] = _init(params["bias"])
    weights = [_w(node, "weight", T)] + ([_w(node, "bias")] if a["use_bias"] else [])
    layer = call("keras.layers.Dense", units=a["units"], activation=fused_act, use_bias=a["use_bias"], **init,
                 name=node.name, defaults={"activation": None, "use_bias": True})
    return KerasLayer(layer, weights, LOGICAL, helpers, post=post)


declare(_dense, LOGICAL)


@emitter("keras", ir.ops.Activation)
def _activation(ctx: KerasContext) -> KerasLayer:
    return activation_layer(Act.of(ctx.node.attrs), ctx.node.name, ctx)


declare(_activation, ANY)


@emitter("keras", ir.ops.Dropout)
def _dropout(ctx: KerasContext) -> KerasLayer:
    return KerasLayer(call("keras.layers.Dropout", rate=ctx.node.attrs["rate"], name=ctx.node.name))


declare(_dropout, ANY)


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
        self.moving_mean = self.add_weight(
            shape=(c,),
            initializer="zeros",
            trainable=False,
            name="moving_mean",
        )
        self.moving_variance = self.add_weight(
            shape=(c,),
            initializer="ones",
            trainable=False,
            name="moving_variance",
        )

    def call(self, x, training=False):
        if training and self.trainable:
            mean, variance, n = self.batch_moments(x)
            m = self.momentum
            self.moving_mean.assign((1 - m) * self.moving_mean + m * mean)
            update = m * variance * n / (n - 1)  # in torch's order, to the bit
            self.moving_variance.assign((1 - m) * self.moving_variance + update)
        else:
            mean, variance = self.moving_mean, self.moving_variance
        normed = (x - mean) * keras.ops.rsqrt(variance + self.epsilon)
        return normed * self.gamma + self.beta

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
        squares = keras.ops.sum(keras.ops.square(x - mean), axis=axes)
        variance = replicas.all_reduce("SUM", squares) / n
        return mean, variance, n

    def get_config(self):
        return {
            **super().get_config(),
            "momentum": self.momentum,
            "epsilon": self.epsilon,
        }


def _replica_context():
    """TensorFlow's replica context while training on several tf.distribute replicas, else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    return context if context is not None and context.num_replicas_in_sync > 1 else None
'''


@emitter("keras", ir.ops.BatchNorm)
def _batchnorm(ctx: KerasContext) -> KerasLayer:
    a, node = ctx.node.attrs, ctx.node
    layer = call("BatchNorm", momentum=a["momentum"], epsilon=a["eps"], name=node.name)
    weights = [_w(node, p) for p in ("weight", "bias", "running_mean", "running_var")]
    return KerasLayer(layer, weights, CHANNELS_LAST, helpers=("BatchNorm",))


declare(_batchnorm, CHANNELS_LAST)


@emitter("keras", ir.ops.Flatten)
def _flatten(ctx: KerasContext) -> KerasLayer:
    return KerasLayer(call("keras.layers.Flatten", name=ctx.node.name), wants=LOGICAL)


declare(_flatten, LOGICAL)


@emitter("keras", ir.ops.Reshape)
def _reshape(ctx: KerasContext) -> KerasLayer:
    return KerasLayer(call("keras.layers.Reshape", target_shape=tuple(ctx.node.shape), name=ctx.node.name),
                      wants=LOGICAL)


declare(_reshape, LOGICAL)


class _Writer:
    """Emits the body of ``build_model``, tracking each variable's layout."""

    def __init__(self, graph: Graph, mark: str = "", stems: dict | None = None):
        """``mark``: the prefix of node names in a block function's graph, left out of variable names; ``stems``:
        variable names to start from for some values (a block instance's output is named after the instance)."""
        self.graph, self.lines, self.layouts, self.mark = graph, [], {}, mark
        self.ns = Namespace([], reserved=HELPERS)
        for value in [i.name for i in graph.inputs] + [n.name for n in graph.nodes]:
            stem = (stems or {}).get(value, value)
            stem = stem.removeprefix(mark + ".").replace(".", "_")
            self.ns.vars[value] = self.ns.fresh("x" + stem if stem[:1].isdigit() else stem)  # 0 -> x0
        self.helpers, self.converted = [], {}
        self.weights: list[tuple[str, str, tuple]] = []  # (layer name, Keras layer class, weight entries)
        # every block instance, nested ones included, by its full name: (its instance, draft, the full name of the
        # instance it lies in ("" for none), the name it has there)
        self.blocks: dict[str, tuple] = {}
        self.key = ""  # the full name of the instance this writer drafts ("" for the model)
        self.functions: list[list[str]] = []

    def convert(self, var: str, rank: int, want: str) -> tuple[str, str]:
        have = self.layouts[var]
        if rank <= 1 or want in (ANY, have):
            return var, have
        if (var, want) in self.converted:  # one Permute per value and layout, shared by its readers
            return self.converted[var, want], want
        perm = channels_last_perm(rank) if want == CHANNELS_LAST else channels_first_perm(rank)
        new = self.ns.fresh(f"{var}_{'nhwc' if want == CHANNELS_LAST else 'nchw'}")
        name = f"{self.mark}.{new}" if self.mark else new  # in a block function, under the instance's name
        permute = call("keras.layers.Permute", dims=perm, name=name)
        self.lines.append(Stmt("    ", f"{new} = ", call(permute, Atom(var))))
        self.layouts[new] = want
        self.converted[var, want] = new
        return new, want

    def block(self, node, inst, table):
        """A call of the block function that computes instance ``inst``; its draft (unwrapped source, with the
        call's arguments left to fill in) depends on the layouts its inputs come in."""
        args = [self.ns[v] for v in node.inputs]
        var = self.ns[node.name]
        key = f"{self.key}.{inst.prefix}" if self.key else inst.prefix
        draft, out = _block_draft(inst, [self.layouts[a] for a in args], table, self, key)
        self.blocks[key] = (replace(inst, prefix=key), draft, self.key, inst.prefix)
        self.layouts[var] = out if len(node.shape) > 1 else LOGICAL
        comment = where(self.graph, replace(node, loc=inst.loc))
        self.lines.append(Stmt("    ", f"{var} = ", call(BlockCall(key), *map(Atom, args)), comment))

    def node(self, node, table):
        shapes = [self.graph.shape_of(v) for v in node.inputs]
        batched = [self.graph.is_batched(v) for v in node.inputs]
        firsts = [self.layouts[self.ns[v]] for v, b in zip(node.inputs, batched) if b]
        # the emitter's declared layout, for the layout the first batched input has now, says how to feed it;
        # then it emits once, seeing the layout it is fed (emitters that read axes depend on it)
        have, emit = firsts[0] if firsts else LOGICAL, table[node.op]
        want, _, probed = wanted(emit, KerasContext(self.graph, node, list(node.inputs), shapes, layout=have))
        args, layout = [], LOGICAL
        for var, shape, b in zip([self.ns[v] for v in node.inputs], shapes, batched):
            if not b:  # parameters stay as they are; emitters bring them to the batched inputs' layout
                args.append(var)
                continue
            new, layout = self.convert(var, len(shape), have if want == FIRST else want)
            args.append(new)
        if probed is not None and layout == have:  # an emitter that declares nothing, already run for this layout
            lay = probed
        else:
            lay = emit(KerasContext(self.graph, node, args, shapes, layout=layout))
        if lay.wants != want:
            raise InternalError(f"the Keras emitter of {node.op} declares layout {want}; its layer wants {lay.wants}")
        if not node.inputs:  # a parameter enters the functional graph through the first model input
            args = [self.ns[self.graph.inputs[0].name]]
        fed: Node = Atom(args[0]) if len(args) == 1 else List(tuple(map(Atom, args)))
        var = self.ns[node.name]
        self.layouts[var] = (lay.out or layout) if len(node.shape) > 1 else LOGICAL
        self.helpers += [h for h in lay.helpers if h not in self.helpers]
        if lay.alias:
            self.lines.append(Stmt("    ", f"{var} = ", fed, where(self.graph, node)))
            return
        for suffix, expr in lay.pre:
            step = self.ns.fresh(f"{var}_{suffix}")
            self.lines.append(Stmt("    ", f"{step} = ", call(expr.plus(name=f"{node.name}.{suffix}"), fed)))
            fed = Atom(step)
        main = self.ns.fresh(f"{var}_raw") if lay.post else var
        comment = "" if lay.post else where(self.graph, node)
        inputs = [fed, *map(Atom, args)]
        called = mapped(lay.call, lambda n: inputs[n.index] if isinstance(n, Arg) else None)
        self.lines.append(Stmt("    ", f"{main} = ", Call(lay.layer, tuple(a for a in called if not isinstance(a, Kw)),
                                                         tuple(a for a in called if isinstance(a, Kw))), comment))
        for i, (suffix, expr) in enumerate(lay.post):
            step = var if i == len(lay.post) - 1 else self.ns.fresh(f"{var}_{suffix}")
            comment = where(self.graph, node) if step == var else ""
            self.lines.append(Stmt("    ", f"{step} = ", call(expr.plus(name=f"{node.name}.{suffix}"), Atom(main)),
                                   comment))
            main = step
        if lay.weights:
            self.weights.append((node.name, str(lay.layer.func).removeprefix("keras.layers."), tuple(lay.weights)))


MARK = "BLOCK__"  # stands for the instance's name in a block function's draft


@dataclass(frozen=True, eq=True)
class BlockCall(Node):
    """Placeholder for the function that builds block instance ``key`` (filled in by :func:`_functions`)."""

    key: str

    def parts(self) -> list:
        return [f"\x00{self.key}\x00"]


@dataclass(frozen=True, eq=True)
class Under(Node):
    """``f"{name}.<local>"``: a layer name under the ``name`` a block function is called with."""

    local: str

    def parts(self) -> list:
        return ["f" + str(Lit("{name}." + self.local))]


def _unmarked(node: Node) -> Node | None:
    """A layer name under the instance's name (``"BLOCK__.conv"``) as ``f"{name}.conv"``."""
    if isinstance(node, Lit) and isinstance(node.value, str) and node.value.startswith(f"{MARK}."):
        return Under(node.value[len(MARK) + 1:])
    return None


def _block_draft(inst, layouts: list[str], table, top: _Writer, key: str) -> tuple[list, str]:
    """The source of a function building instance ``inst`` (full name ``key``) whose inputs come in ``layouts``,
    unwrapped, with its layers named f"{name}.<local name>" and the instances nested in it left as calls to fill
    in; and the layout of what it returns. Its weights, helpers and nested instances join ``top``'s."""
    graph = inst.graph
    ins = {i.name for i in graph.inputs}
    inner = {i.output: i for i in instances(graph, containers=True) if i.graph is not None}
    members = {n.name for i in inner.values() for n in i.nodes}

    def mark(v: str) -> str:
        return v if v in ins else f"{MARK}.{v}"

    marked = replace(graph, nodes=[replace(n, name=f"{MARK}.{n.name}", inputs=tuple(map(mark, n.inputs)))
                                   for n in graph.nodes if n.name not in members or n.name in inner],
                     outputs=[f"{MARK}.{o}" for o in graph.outputs])
    w = _Writer(marked, MARK, stems={f"{MARK}.{o}": f"{MARK}.{i.prefix}" for o, i in inner.items()})
    w.ns.used.add("name")
    w.key, w.blocks = key, top.blocks
    for inp, layout in zip(graph.inputs, layouts):
        w.layouts[w.ns[inp.name]] = layout
    for node in marked.nodes:
        local = node.name[len(MARK) + 1:]
        if local in inner:
            w.block(replace(node, inputs=tuple(map(mark, inner[local].values))), inner[local], table)
        else:
            w.node(node, table)
    result = w.ns[marked.outputs[0]]
    head = f"def {MARK}({', '.join(w.ns[i.name] for i in graph.inputs)}, name):"
    lines = [head, *(mapped(line, _unmarked) for line in w.lines), Stmt("    ", "return ", Atom(result))]
    top.helpers += [h for h in w.helpers if h not in top.helpers]
    top.weights += [(name.replace(MARK, key, 1), cls, entries) for name, cls, entries in w.weights]
    return lines, w.layouts[result]


def _write(graph: Graph) -> _Writer:
    """The body of ``build_model``: block instances become calls of one function per block (see _functions)."""
    table = emitters("keras")  # first: emitter modules register the helper names the namespace avoids
    insts = {i.output: i for i in instances(graph, containers=True) if i.graph is not None}
    members = {n.name for i in insts.values() for n in i.nodes}
    w = _Writer(replace(graph, nodes=[n for n in graph.nodes if n.name not in members or n.name in insts]),
                stems={out: inst.prefix for out, inst in insts.items()})
    for inp in graph.inputs:
        dtype = {} if inp.dtype == "float32" else {"dtype": inp.dtype}
        w.lines.append(Stmt("    ", f"{w.ns[inp.name]} = ", call("keras.Input", shape=tuple(inp.shape), **dtype,
                                                                     name=inp.name)))
        w.layouts[w.ns[inp.name]] = LOGICAL
    for node in graph.nodes:
        if node.name in insts:
            inst = insts[node.name]
            w.block(replace(node, inputs=inst.values), inst, table)
        elif node.name not in members:
            w.node(node, table)
    w.functions = _functions(w)
    return w


def _functions(w: _Writer) -> list[list[str]]:
    """One function per block (per group of instances that one function can make), innermost first: a block used
    inside a block is a function of its own, which the outer one calls. Fills the calls into the drafts and
    into ``w.lines``."""
    if not w.blocks:
        return []
    taken = set(w.ns.used) | set(HELPERS) | {"build_model", "load_weights", "keras_weight", "moved",
                                               "read_safetensors", "keras", "np", "json", "Path"}
    insts = [inst for inst, *_ in w.blocks.values()]
    names = {}
    for block in dict.fromkeys(i.block for i in insts):
        names[block] = block if block not in taken else f"{block}_block"
    drafts = {key: draft for key, (_, draft, *_) in w.blocks.items()}

    def filled(node: Node) -> Node | None:
        if not isinstance(node, Call) or not isinstance(node.func, BlockCall):
            return None
        _, _, parent, local = w.blocks[node.func.key]
        name = Under(local) if parent else Lit(node.func.key)
        return made[node.func.key].call(node.func.key, *node.args, name=name)  # function(inputs, params, name=...)

    def fill(line):
        return mapped(line, filled)

    height: dict[str, int] = {}  # how deep blocks nest inside an instance (the same for all of one block)
    for key, (_, _, parent, _) in w.blocks.items():  # an instance is recorded after those inside it
        height.setdefault(key, 0)
        if parent:
            height[parent] = max(height.get(parent, 0), height[key] + 1)
    made = {}
    for level_height in sorted(set(height.values())):  # all instances of a block together, innermost first
        level = [i for i in insts if max(height[j.prefix] for j in insts if j.block == i.block) == level_height]
        for inst in level:
            draft = [fill(line) for line in drafts[inst.prefix]]
            drafts[inst.prefix] = [draft[0].replace(f"def {MARK}(", f"def {names[inst.block]}("), *draft[1:]]
        for block in dict.fromkeys(i.block for i in level):  # instances whose inputs came in other layouts
            group = [i for i in level if i.block == block]   # have other drafts
            name = names[block]
            inputs = ", ".join(x.name for x in group[0].graph.inputs)
            head = (f"def {name}({inputs}, name):", f"def {name}({inputs}{{params}}, name):")
            found = group_classes(group, drafts, {block: name}, taken | set(names.values()), head, singles=True)
            taken |= {c.name for c in found.values()}
            made.update(found)
    w.lines = [fill(line) for line in w.lines]
    return list({id(c): c.lines for c in made.values()}.values())


LOAD_WEIGHTS = '''
    for layer in model.layers:
        layout = OVERRIDES.get(layer.name, LAYOUTS.get(type(layer).__name__))
        if layout and layer.weights:  # no bias: fewer weights than its class
            entries = layout[: len(layer.weights)]
            layer.set_weights([keras_weight(weights, layer.name, e) for e in entries])


def keras_weight(weights, layer, entry):
    """One Keras weight of ``layer`` from canonical tensors: ``(tensor, steps)`` takes ``<layer>.<tensor>`` (the
    tensor named ``layer`` where ``tensor`` is empty) through the layout steps; ``{"sum": [...]}`` and
    ``{"stack": [...]}`` combine several."""
    if isinstance(entry, dict):
        how, parts = next(iter(entry.items()))
        arrays = [keras_weight(weights, layer, part) for part in parts]
        return arrays[0] + arrays[1] if how == "sum" else np.stack(arrays)
    tensor, steps = entry
    return moved(weights[f"{layer}.{tensor}" if tensor else layer], steps)


def moved(array, steps):
    """A canonical array in Keras' layout: transpose axes, reshape, take rows (of axis 0), or reorder gates
    (equal chunks of axis 0)."""
    for step, arg in steps:
        if step == "transpose":
            array = array.transpose(arg)
        elif step == "reshape":
            array = array.reshape(arg)
        elif step == "rows":
            array = array[arg[0] : arg[1]]
        else:
            array = np.concatenate([np.split(array, len(arg))[i] for i in arg])
    return array
'''


FREEZE = '''
    for layer in model.layers:
        if any(f"{layer.name}.".startswith(f"{name}.") for name in FROZEN):
            layer.trainable = False
'''


def _table(name: str, table: dict) -> list[Stmt]:
    """``name = {...}`` with one entry per line (a trailing comma keeps it so), laid out by codegen.render."""
    return [Stmt("", f"{name} = ", Dict(tuple((Lit(k), _layout(v)) for k, v in table.items()), trailing=bool(table)))]


def _layout(value) -> Node:
    """A layout as source: its entries and each entry's steps as lists (a list split over lines keeps its
    trailing comma under ruff format, where a one-element tuple would join again)."""
    if isinstance(value, dict):
        return Dict(tuple((Lit(k), List(tuple(map(_layout, v)))) for k, v in value.items()))
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):  # (tensor, steps)
        return Tuple((Lit(value[0]), List(tuple(lit(step) for step in value[1]))))
    return List(tuple(map(_layout, value)))


def layouts(weights: list[tuple[str, str, tuple]]) -> tuple[dict, dict]:
    """The weight layout of each Keras layer class (a layer without a bias takes the first entries), and the
    layers whose layout is not their class's."""
    by_class: dict[str, list] = {}
    for _, cls, entries in weights:
        by_class.setdefault(cls, []).append(entries)
    classes, overrides = {}, {}
    for cls, found in by_class.items():
        distinct = [e for i, e in enumerate(found) if e not in found[:i]]
        common = max(distinct, key=found.count)
        longer = [e for e in found if len(e) > len(common) and e[:len(common)] == common]
        classes[cls] = max(longer, key=found.count) if longer else common
    for name, cls, entries in weights:
        if classes[cls][:len(entries)] != entries:
            overrides[name] = entries
    return classes, overrides


def generate(graph: Graph, weights_file: str | None = None) -> str:
    """Keras source for ``graph``. With ``weights_file``, ``build_model`` loads it by default."""
    w = _write(graph)
    outputs = [w.convert(w.ns[o], len(graph.shape_of(o)), LOGICAL)[0] for o in graph.outputs]
    ins = [Atom(w.ns[i.name]) for i in graph.inputs]
    outs = [Atom(o) for o in outputs]
    weights = method(call("Path", Atom("__file__")), "with_name", weights_file)
    consts: list = [Stmt("", "WEIGHTS = ", weights)] if weights_file else []
    frozen = frozen_prefixes({n.name: not n.trainable for n in graph.nodes if n.params})
    if frozen:
        consts.append(Stmt("", "FROZEN = ", lit(tuple(frozen)), "# fixed weights, BatchNorm in inference mode"))
    by_class, overrides = layouts(w.weights)
    consts += ["# Each Keras layer class's weights, in order, from the layer's canonical tensors (see keras_weight)",
               *_table("LAYOUTS", by_class), "# Layers whose weights are laid out otherwise than their class's",
               *_table("OVERRIDES", overrides)]
    sections = [HELPERS[h].strip("\n").splitlines() for h in w.helpers] + [format_lines(f) for f in w.functions]
    default = "WEIGHTS" if weights_file else "None"
    sections += [format_lines([f"def build_model(weights={default}):",
                  '    """Build the model; ``weights`` is a safetensors path or a dict of numpy arrays."""',
                  *w.lines,
                  Stmt("    ", "model = ", call("keras.Model", inputs=ins[0] if len(ins) == 1 else List(tuple(ins)),
                                                   outputs=outs[0] if len(outs) == 1 else List(tuple(outs)),
                                                   name=graph.name)),
                  *(FREEZE.strip("\n").splitlines() if frozen else []),
                  "    if weights is not None:", "        load_weights(model, weights)", "    return model"]),
                 ["def load_weights(model, weights):",
                  '    """Load dlspec\'s canonical weights (a safetensors path or a dict of arrays) into ``model``."""',
                  "    if not isinstance(weights, dict):", "        weights = read_safetensors(weights)",
                  *LOAD_WEIGHTS.strip("\n").splitlines()], READ_SAFETENSORS.strip("\n").splitlines()]
    return module_source(header(graph, "Keras"), ["json", "pathlib"] if weights_file else ["json"],
                         ["import keras", "import numpy as np"], format_lines(consts), sections)

