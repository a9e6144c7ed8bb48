"""What every Keras emitter module builds on: the layer record an emitter returns (:class:`KerasLayer`), its
context, layouts and :func:`declare`, weight layout steps, initialisers, activations, and ``HELPERS`` (the source of
helper layers and functions, written once into each generated file that uses them).

The spec's layout is channels-first. Keras on TensorFlow computes convolutions and
normalisation channels-last, so each value carries a layout here: ``logical`` (as in the
spec) or ``channels_last``. Emitters say which they need and ``Permute`` layers are
inserted where it changes (keras_writer.py). Rank-1 samples look the same in both layouts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..ir import Act, Param
from .context import EmitContext
from .source import Atom, Call, Lit, Node, call

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
