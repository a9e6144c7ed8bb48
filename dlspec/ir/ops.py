"""IR operations: one class per op, with its shape rule, its parameters and its meaning.

The docstring of each op is its semantics, the same in every backend; docs/semantics.md
restates them. Shapes exclude the batch axis; the logical layout is channels-first.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import spec
from ..activations import ACTIVATIONS
from .graph import Param, Shape

OPS: dict[str, Op] = {}


class ShapeError(Exception):
    """A shape rule failed; ``attr`` names the attribute at fault, if one is."""

    def __init__(self, rule: str, received: object, attr: str | None = None):
        super().__init__(rule)
        self.rule, self.received, self.attr = rule, received, attr


def op(definition: type):
    """Register the decorated op class as the IR side of the spec class ``definition``.

    The op's name is the spec class's ``type`` literal, written once there; the op keeps its spec class
    in ``spec`` and the spec class finds its op in ``op``, so backends register against the definition."""

    def register(cls):
        name = definition.model_fields["type"].default
        if name in OPS:
            raise ValueError(f"two IR ops for layer type {name!r}")
        cls.name, cls.spec = name, definition
        OPS[name] = cls()
        definition.op = cls
        return cls

    return register


@dataclass(frozen=True)
class Act:
    """An activation of the registry (dlspec/activations.py) and its parameters (only those its kind takes
    matter; the others keep the registry's defaults)."""

    kind: str
    negative_slope: float = 0.01
    alpha: float = 1.0
    approximate: str = "none"
    axis: int = -1
    beta: float = 1.0
    threshold: float = 20.0

    @classmethod
    def of(cls, attrs: dict) -> Act | None:
        """From lowered attributes; None for 'linear'."""
        if attrs is None or attrs["activation"] == "linear":
            return None
        kind = attrs["activation"]
        return cls(kind, **{a: attrs[a] for a in ACTIVATIONS[kind].attrs})


class Op:
    """Base op: one input, shape-preserving, no parameters."""

    name = ""
    arity = 1
    takes_unbatched = False  # whether inputs may lack the batch axis (parameters); see infer_values

    def infer(self, attrs: dict, inputs: list[Shape]) -> Shape:
        """Output shape from input shapes, or :class:`ShapeError`."""
        return inputs[0]

    def infer_values(self, attrs: dict, inputs: list[Shape], batched: list[bool]) -> tuple[Shape, bool]:
        """Output shape and whether the output carries the batch axis. Shapes of unbatched inputs are
        their full shapes. Ops with ``takes_unbatched`` override this; the rest see batched inputs only."""
        return self.infer(attrs, inputs), True

    def params(self, attrs: dict, inputs: list[Shape]) -> tuple[Param, ...]:
        """Parameters and buffers, in canonical order."""
        return ()


def _features(inputs: list[Shape], what: str) -> int:
    if not inputs[0]:
        raise ShapeError(f"{what} needs at least one axis besides the batch", inputs[0])
    return inputs[0][-1]


@op(spec.layers.Dense)
class Dense(Op):
    """y = act(x @ weight.T + bias) over the last axis; weight is (units, in_features)."""

    def infer(self, attrs, inputs):
        _features(inputs, "dense")
        return inputs[0][:-1] + (attrs["units"],)

    def params(self, attrs, inputs):
        fan_in, units = _features(inputs, "dense"), attrs["units"]
        out = (Param("weight", (units, fan_in), attrs["kernel_initializer"], fan_in, units),)
        if attrs["use_bias"]:
            out += (Param("bias", (units,), attrs["bias_initializer"], fan_in, units),)
        return out


@op(spec.layers.Activation)
class Activation(Op):
    """Elementwise function, as torch defines it; each activation's exact meaning is its entry in the
    registry, dlspec/activations.py (relu max(x, 0); softplus log(1 + exp(beta*x))/beta, x above the
    threshold; softmax exp(x)/sum(exp(x)) along ``axis``, batch is axis 0; ...)."""

    def infer(self, attrs, inputs):
        if attrs["activation"] == "softmax":
            rank = len(inputs[0]) + 1
            if not -rank <= attrs["axis"] < rank or attrs["axis"] % rank == 0:
                raise ShapeError(f"axis must be a non-batch axis of a rank-{rank} tensor (batch included: "
                                 f"1..{rank - 1} or -{rank - 1}..-1)", attrs["axis"], "axis")
        return inputs[0]


@op(spec.layers.Dropout)
class Dropout(Op):
    """Training: zero each element with probability rate, scale the rest by 1/(1-rate). Inference: identity."""


@op(spec.layers.BatchNorm)
class BatchNorm(Op):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, per channel (axis 1).

    Training uses batch statistics and updates running = (1-momentum)*running + momentum*batch,
    with the unbiased batch variance for running_var. Inference uses the running statistics.
    """

    def infer(self, attrs, inputs):
        if not 1 <= len(inputs[0]) <= 4:
            raise ShapeError("batchnorm takes samples of rank 1 to 4 ([C], [C, L], [C, H, W], [C, D, H, W])",
                             inputs[0])
        return inputs[0]

    def params(self, attrs, inputs):
        c = inputs[0][0]
        return (Param("weight", (c,), "ones"), Param("bias", (c,), "zeros"),
                Param("running_mean", (c,), "zeros", trainable=False),
                Param("running_var", (c,), "ones", trainable=False))


@op(spec.layers.Flatten)
class Flatten(Op):
    """(N, d1, ..., dk) -> (N, d1*...*dk), in channels-first (row-major) element order."""

    def infer(self, attrs, inputs):
        return (_numel(inputs[0]),)


@op(spec.layers.Reshape)
class Reshape(Op):
    """(N, ...) -> (N, *shape), row-major in channels-first order; a -1 entry is inferred."""

    def infer(self, attrs, inputs):
        total, target = _numel(inputs[0]), list(attrs["shape"])
        known = _numel(d for d in target if d != -1)
        if -1 in target:
            if total % known:
                raise ShapeError(f"cannot reshape {total} elements {tuple(inputs[0])} into {tuple(target)}",
                                 target, "shape")
            target[target.index(-1)] = total // known
        if _numel(target) != total:
            raise ShapeError(f"cannot reshape {tuple(inputs[0])} ({total} elements) into {tuple(target)} "
                             f"({_numel(target)} elements)", target, "shape")
        return tuple(target)


def _numel(dims) -> int:
    out = 1
    for d in dims:
        out *= d
    return out
