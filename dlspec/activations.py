"""The activation registry: one entry per activation, the single list the spec, the docs and every backend
are keyed by.

Each entry names the activation, its attributes with their defaults, and its exact meaning (as torch defines
it). The spec's ``ActivationName`` literal and the attributes of ``type: activation`` are derived from it;
each backend keeps one lowering per entry and a test requires that the keys match. This module imports nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ActivationDef:
    """One activation: its name, its attributes with their defaults, and its meaning."""

    name: str
    doc: str
    attrs: dict = field(default_factory=dict)


ACTIVATIONS: dict[str, ActivationDef] = {}

# Every attribute an activation may have, with its default and its description (one definition each).
ATTRIBUTES: dict[str, tuple[object, str]] = {
    "negative_slope": (0.01, "leaky_relu only: slope for x < 0 (torch default 0.01; Keras 0.2 or 0.3). "
                             "Negative slopes are allowed, as in torch."),
    "alpha": (1.0, "elu only: alpha * (exp(x) - 1) for x < 0."),
    "approximate": ("none", "gelu only: exact erf form ('none') or the tanh approximation "
                            "(keras.ops.gelu defaults to tanh)."),
    "axis": (-1, "softmax only: the axis, counting the batch as axis 0; negative counts from the end."),
    "beta": (1.0, "softplus only: log(1 + exp(beta * x)) / beta."),
    "threshold": (20.0, "softplus only: where beta * x > threshold the result is x (torch's rule)."),
}


def _define(name: str, doc: str, *attrs: str) -> None:
    ACTIVATIONS[name] = ActivationDef(name, doc, {a: ATTRIBUTES[a][0] for a in attrs})


_define("linear", "identity: y = x.")
_define("relu", "max(x, 0).")
_define("relu6", "min(max(x, 0), 6).")
_define("leaky_relu", "x if x >= 0 else negative_slope * x (any finite slope, negative ones included).",
        "negative_slope")
_define("elu", "x if x > 0 else alpha * (exp(x) - 1).", "alpha")
_define("gelu", "x * Phi(x), Phi the standard normal CDF (exact, erf), or with approximate 'tanh': "
                "0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))).", "approximate")
_define("silu", "x * sigmoid(x).")
_define("sigmoid", "1 / (1 + exp(-x)).")
_define("tanh", "tanh(x).")
_define("softmax", "exp(x) / sum(exp(x)) along `axis` (batch is axis 0; fused on a convolution it is the "
                   "logical last axis, W, never the channels).", "axis")
_define("hardswish", "x * relu6(x + 3) / 6 (torch's Hardswish; Keras' hard_swish).")
_define("hardsigmoid", "relu6(x + 3) / 6 (torch's Hardsigmoid; Keras 3's hard_sigmoid; Keras 2's was "
                       "0.2 * x + 0.5 clipped, which dlspec never emits).")
_define("mish", "x * tanh(softplus(x)).")
_define("softplus", "log(1 + exp(beta * x)) / beta, and x where beta * x > threshold (torch's formula).",
        "beta", "threshold")


def attribute_owners() -> dict[str, list[str]]:
    """For each attribute: the activations that take it."""
    out: dict[str, list[str]] = {a: [] for a in ATTRIBUTES}
    for act in ACTIVATIONS.values():
        for a in act.attrs:
            out[a].append(act.name)
    return out
