"""Layer definitions, one class per layer ``type``: each registers itself with :func:`op` (or :func:`layer`).

A class is the op's whole definition: its typed attributes and their checks, its shape rule (``infer``),
its canonical parameters with their initialisers (``params``) and, in its docstring, its exact semantics.
Attribute and class docstrings become descriptions in ``dlspec schema``. Every attribute whose
default differs between PyTorch and Keras is stated here, with dlspec's default.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from ..activations import ACTIVATIONS, ATTRIBUTES, attribute_owners
from ..initializers import INITIALIZERS
from .base import Strict, invalid
from .shapes import Param, Shape, ShapeError, numel
from .types import Bool, NodeName, Number, PositiveFloat, PositiveInt, Rate, UnitInterval

LAYER_TYPES: dict[str, type] = {}
OPS: dict[str, type] = {}  # the layer types that are IR ops (all but those the graph expands, such as split)

ActivationName = Literal[tuple(ACTIVATIONS)]  # the activation registry, dlspec/activations.py
Initializer = Literal[tuple(INITIALIZERS)]  # the initialiser registry, dlspec/initializers.py


class Regularizer(Strict):
    """A penalty on a layer's weight, added to the objective that training minimises (not to the reported
    loss): l1 * sum(|w|) + l2 * sum(w^2). Keras' L1L2 regularizer has the same formula."""

    l1: Annotated[float, Field(strict=True, ge=0)] = 0.0
    """Coefficient of the L1 term."""
    l2: Annotated[float, Field(strict=True, ge=0)] = 0.0
    """Coefficient of the L2 term (the gradient is 2 * l2 * w)."""


def layer(cls):
    """Register a layer class under its ``type`` literal (a layer type that is not itself an op, such as
    split, which the graph expands into ops; op definitions use :func:`op`)."""
    name = cls.model_fields["type"].default
    if any(base in LAYER_TYPES.values() for base in cls.__mro__[1:]):
        raise ValueError(f"layer type {name!r} derives from another layer type; derive both from a common base")
    LAYER_TYPES[name] = cls
    return cls


def op(cls):
    """Register a layer class as an op: the definition that the IR's graph nodes, the passes and every
    backend's lowering (``@emitter(backend, cls)``) look up. The op's name is the ``type`` literal, written
    once; ``op_name`` (a class variable) holds it for the emitter registry and error texts."""
    name = cls.model_fields["type"].default
    if name in OPS:
        raise ValueError(f"two ops for layer type {name!r}")
    layer(cls)
    OPS[name] = cls
    cls.op_name = name
    return cls


class LayerBase(Strict):
    """Fields common to every layer."""

    op_name: ClassVar[str] = ""  # the `type` literal of a registered op (see `op`), for registries and messages

    name: NodeName | None = None
    """Node name, used for weights, generated code and errors. Default: `<type>_<n>`.
    A dotted path such as `classifier.1` places the node in a module hierarchy."""
    inputs: list[NodeName] | None = Field(default=None, min_length=1)
    """Names of the values this node reads. Default: the previous node's output."""
    trainable: Bool = True
    """false freezes the layer in training: its weights stay as they are and BatchNorm runs in inference mode."""

    def prefix(self) -> str:
        """Stem of the automatic name."""
        return self.type

    def lower_attrs(self) -> dict:
        """Attributes as the IR op reads them."""
        return self.model_dump(exclude={"type", "name", "inputs", "trainable", "regularizer"})

    # The op's rules, read by the passes through OPS. They take the lowered attributes (``lower_attrs``)
    # and the input shapes (batch excluded); the default is one input, shape-preserving, no parameters.
    arity: ClassVar[int | None] = 1
    """Number of inputs (None: any)."""
    takes_unbatched: ClassVar[bool] = False
    """Whether inputs may lack the batch axis (parameters); such ops override ``infer_values``."""

    @classmethod
    def infer(cls, attrs: dict, inputs: list[Shape]) -> Shape:
        """Output shape from input shapes, or :class:`ShapeError`."""
        return inputs[0]

    @classmethod
    def infer_values(cls, attrs: dict, inputs: list[Shape], batched: list[bool]) -> tuple[Shape, bool]:
        """Output shape and whether the output carries the batch axis. Shapes of unbatched inputs are
        their full shapes. Ops with ``takes_unbatched`` override this; the rest see batched inputs only."""
        return cls.infer(attrs, inputs), True

    @classmethod
    def params(cls, attrs: dict, inputs: list[Shape]) -> tuple[Param, ...]:
        """Parameters and buffers, in canonical order."""
        return ()


class WeightedLayer(LayerBase):
    """Fields of layers with a weight and a bias (dense, convolutions): activation, bias, initialisers."""

    activation: ActivationName = "linear"
    """Activation applied to the output, with the defaults of the `activation` layer."""
    use_bias: Bool = True
    """Whether to add a bias."""
    kernel_initializer: Initializer = "glorot_uniform"
    """Initial distribution of the weight (torch and Keras differ; dlspec's default is glorot_uniform)."""
    bias_initializer: Initializer = "zeros"
    """Initial distribution of the bias (dlspec's default: zeros)."""
    regularizer: Regularizer | None = None
    """Penalty on the weight during training (l1 * sum|w| + l2 * sum w^2)."""

    def lower_attrs(self) -> dict:
        attrs = super().lower_attrs()
        attrs["activation"] = Activation(activation=self.activation).lower_attrs()
        return attrs


def _features(inputs: list[Shape], what: str) -> int:
    if not inputs[0]:
        raise ShapeError(f"{what} needs at least one axis besides the batch", inputs[0])
    return inputs[0][-1]


@op
class Dense(WeightedLayer):
    """Fully connected layer over the last axis: y = act(x @ weight.T + bias), with weight (units, in_features)
    and bias (units,)."""

    type: Literal["dense"] = "dense"
    units: PositiveInt
    """Number of output features."""

    @classmethod
    def infer(cls, attrs, inputs):
        _features(inputs, "dense")
        return inputs[0][:-1] + (attrs["units"],)

    @classmethod
    def params(cls, attrs, inputs):
        fan_in, units = _features(inputs, "dense"), attrs["units"]
        out = (Param("weight", (units, fan_in), attrs["kernel_initializer"], fan_in, units),)
        if attrs["use_bias"]:
            out += (Param("bias", (units,), attrs["bias_initializer"], fan_in, units),)
        return out


@op
class Activation(LayerBase):
    """An elementwise activation (softmax: along one axis), as torch defines it; each activation's exact meaning
    is its entry in the registry, dlspec/activations.py (relu max(x, 0); softplus log(1 + exp(beta*x))/beta, x
    above the threshold; softmax exp(x)/sum(exp(x)) along `axis`, batch is axis 0; ...)."""

    type: Literal["activation"] = "activation"
    activation: ActivationName
    """The function (one of the activation registry, dlspec/activations.py)."""
    negative_slope: Number = Field(default=ATTRIBUTES["negative_slope"][0], description=ATTRIBUTES["negative_slope"][1])
    alpha: Number = Field(default=ATTRIBUTES["alpha"][0], description=ATTRIBUTES["alpha"][1])
    approximate: Literal["none", "tanh"] = Field(default=ATTRIBUTES["approximate"][0],
                                                 description=ATTRIBUTES["approximate"][1])
    axis: int = Field(default=ATTRIBUTES["axis"][0], strict=True, description=ATTRIBUTES["axis"][1])
    beta: PositiveFloat = Field(default=ATTRIBUTES["beta"][0], description=ATTRIBUTES["beta"][1])
    threshold: Number = Field(default=ATTRIBUTES["threshold"][0], description=ATTRIBUTES["threshold"][1])

    _applies: ClassVar[dict[str, list[str]]] = attribute_owners()

    @model_validator(mode="after")
    def _only_relevant(self):
        for field, owners in self._applies.items():
            if self.given(field) and self.activation not in owners:
                invalid(field, f"applies only to activation {' or '.join(map(repr, owners))}, "
                               f"not {self.activation!r}")
        if self.given("axis") and self.axis == 0:
            invalid("axis", "must not be the batch axis 0")
        return self

    def prefix(self) -> str:
        return self.activation

    @classmethod
    def infer(cls, attrs, inputs):
        if attrs["activation"] == "softmax":
            rank = len(inputs[0]) + 1
            if not -rank <= attrs["axis"] < rank or attrs["axis"] % rank == 0:
                raise ShapeError(f"axis must be a non-batch axis of a rank-{rank} tensor (batch included: "
                                 f"1..{rank - 1} or -{rank - 1}..-1)", attrs["axis"], "axis")
        return inputs[0]


@op
class Dropout(LayerBase):
    """Training: zeroes each element with probability `rate`, scales the rest by 1/(1-rate). Inference: identity."""

    type: Literal["dropout"] = "dropout"
    rate: Rate
    """Probability of dropping an element."""


@op
class BatchNorm(LayerBase):
    """Batch normalisation over axis 1 (the channel axis in channels-first layout), with affine scale and shift:
    y = (x - mean) / sqrt(var + eps) * weight + bias, per channel.

    Training uses batch statistics and updates running = (1-momentum)*running + momentum*batch,
    with the unbiased batch variance for running_var. Inference uses the running statistics.
    Parameters weight and bias (C,); buffers running_mean and running_var (C,).
    """

    type: Literal["batchnorm"] = "batchnorm"
    eps: PositiveFloat = 1e-5
    """Added to the variance (torch 1e-5, Keras 1e-3; dlspec's default 1e-5)."""
    momentum: UnitInterval = 0.1
    """torch convention: running = (1 - momentum) * running + momentum * batch (Keras' momentum is 1 - this)."""

    @classmethod
    def infer(cls, attrs, inputs):
        if not 1 <= len(inputs[0]) <= 4:
            raise ShapeError("batchnorm takes samples of rank 1 to 4 ([C], [C, L], [C, H, W], [C, D, H, W])",
                             inputs[0])
        return inputs[0]

    @classmethod
    def params(cls, attrs, inputs):
        c = inputs[0][0]
        return (Param("weight", (c,), "ones"), Param("bias", (c,), "zeros"),
                Param("running_mean", (c,), "zeros", trainable=False),
                Param("running_var", (c,), "ones", trainable=False))


@op
class Flatten(LayerBase):
    """Flattens all axes after the batch, in channels-first (C, H, W) order: (N, d1, ..., dk) -> (N, d1*...*dk),
    row-major."""

    type: Literal["flatten"] = "flatten"

    @classmethod
    def infer(cls, attrs, inputs):
        return (numel(inputs[0]),)


@op
class Reshape(LayerBase):
    """Reshapes each sample to `shape` (batch excluded), in channels-first element order: (N, ...) -> (N, *shape),
    row-major; a -1 entry is inferred."""

    type: Literal["reshape"] = "reshape"
    shape: list[Annotated[int, Field(strict=True)]] = Field(min_length=1)
    """Target shape without the batch axis; one entry may be -1 (inferred)."""

    @model_validator(mode="after")
    def _dims(self):
        if any(d == 0 or d < -1 for d in self.shape) or self.shape.count(-1) > 1:
            invalid("shape", "entries must be positive integers, with at most one -1")
        return self

    @classmethod
    def infer(cls, attrs, inputs):
        total, target = numel(inputs[0]), list(attrs["shape"])
        known = numel(d for d in target if d != -1)
        if -1 in target:
            if total % known:
                raise ShapeError(f"cannot reshape {total} elements {tuple(inputs[0])} into {tuple(target)}",
                                 target, "shape")
            target[target.index(-1)] = total // known
        if numel(target) != total:
            raise ShapeError(f"cannot reshape {tuple(inputs[0])} ({total} elements) into {tuple(target)} "
                             f"({numel(target)} elements)", target, "shape")
        return tuple(target)

