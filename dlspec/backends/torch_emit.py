"""What every torch emitter module builds on: the layer record an emitter returns (:class:`TorchLayer`),
constructor calls with torch's defaults left out, the activation and initialiser lowerings, and ``HELPERS`` (the
source of helper modules, written once into each generated file that uses them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..ir import Act, Param
from .source import Call, Node, call


@dataclass
class TorchLayer:
    """A node in torch: an optional submodule, its forward expression, its initialisers, and the names of
    the helper classes (keys of ``HELPERS``) its module needs in the generated file."""

    call: Node
    module: Node | None = None
    inits: list[Node] = field(default_factory=list)
    helpers: tuple[str, ...] = ()
    line: str = "own"  # its line of forward: "own" (with its comment), "shared" (no comment: its members have
    # theirs in the constructor), or "none" (a member of an nn.Sequential that the last member's line calls)


HELPERS: dict[str, str] = {}  # helper class name -> its source, written once into files that use it


# Keyword defaults of torch's constructors and functions that generated code leaves out. Defaults that differ
# between torch and Keras (BatchNorm's eps and momentum, layer and group norm's eps, leaky ReLU's slope, softmax's
# axis) are not listed: those values stay explicit.
_CONV = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "bias": True}
DEFAULTS = {
    "nn.Conv1d": _CONV, "nn.Conv2d": _CONV, "nn.Linear": {"bias": True},
    "nn.ConvTranspose2d": {"stride": 1, "padding": 0, "output_padding": 0, "bias": True},
    "nn.MaxPool1d": {"padding": 0, "ceil_mode": False}, "nn.MaxPool2d": {"padding": 0, "ceil_mode": False},
    "nn.AvgPool1d": {"padding": 0, "ceil_mode": False, "count_include_pad": True},
    "nn.AvgPool2d": {"padding": 0, "ceil_mode": False, "count_include_pad": True},
    "F.elu": {"alpha": 1.0}, "F.gelu": {"approximate": "none"}, "F.softplus": {"beta": 1.0, "threshold": 20.0},
    "nn.LSTM": {"bidirectional": False}, "nn.GRU": {"bidirectional": False}, "nn.PReLU": {"init": 0.25},
}


def construct(target: str, *args, **values) -> Call:
    """A constructor or function call with torch's defaults left out."""
    return call(target, *args, defaults=DEFAULTS.get(target, {}), **values)


def _fn(target: str, x: Node, **values) -> Call:
    """``target(x, ...)``: a functional call on ``x`` with torch's defaults left out."""
    return construct(target, x, **values)


# One forward expression per activation of the registry (dlspec/activations.py); a test checks the keys.
ACTIVATIONS = {
    "linear": lambda act, x: x,
    "relu": lambda act, x: call("F.relu", x),
    "relu6": lambda act, x: call("F.relu6", x),
    "leaky_relu": lambda act, x: call("F.leaky_relu", x, negative_slope=act.negative_slope),
    "elu": lambda act, x: _fn("F.elu", x, alpha=act.alpha),
    "gelu": lambda act, x: _fn("F.gelu", x, approximate=act.approximate),
    "silu": lambda act, x: call("F.silu", x),
    "sigmoid": lambda act, x: call("torch.sigmoid", x),
    "tanh": lambda act, x: call("torch.tanh", x),
    "softmax": lambda act, x: call("F.softmax", x, dim=act.axis),
    "hardswish": lambda act, x: call("F.hardswish", x),
    "hardsigmoid": lambda act, x: call("F.hardsigmoid", x),
    "mish": lambda act, x: call("F.mish", x),
    "softplus": lambda act, x: _fn("F.softplus", x, beta=act.beta, threshold=act.threshold),
}


def activation(act: Act | None, x: Node) -> Node:
    """Forward expression applying ``act`` to ``x``."""
    return x if act is None else ACTIVATIONS[act.kind](act, x)


# One lowering per entry of the initialiser registry (dlspec/initializers.py). torch computes fans itself for
# rank >= 2; a bias takes its layer's fans, so ranks below 2 get dlspec's limits explicitly (init_statement).
INITIALIZERS = {  # (function, keyword arguments after the tensor)
    "zeros": ("nn.init.zeros_", {}),
    "ones": ("nn.init.ones_", {}),
    "normal": ("nn.init.normal_", {}),
    "glorot_uniform": ("nn.init.xavier_uniform_", {}),
    "glorot_normal": ("nn.init.xavier_normal_", {}),
    "he_uniform": ("nn.init.kaiming_uniform_", {"nonlinearity": "relu"}),
    "he_normal": ("nn.init.kaiming_normal_", {"nonlinearity": "relu"}),
    "lecun_uniform": ("nn.init.kaiming_uniform_", {"nonlinearity": "linear"}),
    "lecun_normal": ("nn.init.kaiming_normal_", {"nonlinearity": "linear"}),
}


def init_statement(param: Param, target: Node) -> Call:
    """A native initialiser call for one parameter (torch computes fans for rank >= 2)."""
    kind, scale = param.scale()  # a bias takes the fans of its layer
    if param.init not in INITIALIZERS:  # a fixed value no spec names, such as PReLU's 0.25
        return call("nn.init.constant_", target, val=scale)
    if kind == "constant" or len(param.shape) >= 2:
        fn, values = INITIALIZERS[param.init]
        return call(fn, target, **values)
    if kind == "uniform":
        return call("nn.init.uniform_", target, a=-scale, b=scale)
    return call("nn.init.normal_", target, mean=0.0, std=scale)
