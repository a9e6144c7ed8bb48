"""Layer spec classes, one per layer ``type``. Each registers itself with :func:`layer`.

Attribute docstrings become descriptions in ``dlspec schema``. Every attribute whose
default differs between PyTorch and Keras is stated here, with dlspec's default.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from ..activations import ACTIVATIONS, ATTRIBUTES, attribute_owners
from ..initializers import INITIALIZERS
from .base import Strict, invalid
from .types import Bool, NodeName, Number, PositiveFloat, PositiveInt, Rate, UnitInterval

LAYER_TYPES: dict[str, type] = {}

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
    """Register a layer class under its ``type`` literal."""
    LAYER_TYPES[cls.model_fields["type"].default] = cls
    return cls


class LayerBase(Strict):
    """Fields common to every layer."""

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


@layer
class Dense(WeightedLayer):
    """Fully connected layer over the last axis: y = x @ W.T + b, then the activation."""

    type: Literal["dense"] = "dense"
    units: PositiveInt
    """Number of output features."""


@layer
class Activation(LayerBase):
    """An elementwise activation (softmax: along one axis)."""

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


@layer
class Dropout(LayerBase):
    """Training: zeroes each element with probability `rate`, scales the rest by 1/(1-rate). Inference: identity."""

    type: Literal["dropout"] = "dropout"
    rate: Rate
    """Probability of dropping an element."""


@layer
class BatchNorm(LayerBase):
    """Batch normalisation over axis 1 (the channel axis in channels-first layout), with affine scale and shift."""

    type: Literal["batchnorm"] = "batchnorm"
    eps: PositiveFloat = 1e-5
    """Added to the variance (torch 1e-5, Keras 1e-3; dlspec's default 1e-5)."""
    momentum: UnitInterval = 0.1
    """torch convention: running = (1 - momentum) * running + momentum * batch (Keras' momentum is 1 - this)."""


@layer
class Flatten(LayerBase):
    """Flattens all axes after the batch, in channels-first (C, H, W) order."""

    type: Literal["flatten"] = "flatten"


@layer
class Reshape(LayerBase):
    """Reshapes each sample to `shape` (batch excluded), in channels-first element order."""

    type: Literal["reshape"] = "reshape"
    shape: list[Annotated[int, Field(strict=True)]] = Field(min_length=1)
    """Target shape without the batch axis; one entry may be -1 (inferred)."""

    @model_validator(mode="after")
    def _dims(self):
        if any(d == 0 or d < -1 for d in self.shape) or self.shape.count(-1) > 1:
            invalid("shape", "entries must be positive integers, with at most one -1")
        return self

