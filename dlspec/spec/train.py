"""The `train:` section: loss, optimizer, schedule and loop settings, each with PyTorch's meaning."""

from __future__ import annotations

import typing
from typing import Annotated, Literal, Union

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from .base import Strict, invalid
from .types import Bool, PositiveFloat, PositiveInt, Rate

NonNegative = Annotated[float, Field(strict=True, ge=0)]
Beta = Annotated[float, Field(strict=True, ge=0, lt=1)]


class _Loss(Strict):
    pass


class CrossEntropy(_Loss):
    """Softmax cross-entropy on logits with integer labels (torch.nn.CrossEntropyLoss), mean over the batch."""

    type: Literal["cross_entropy"] = "cross_entropy"
    label_smoothing: Rate = 0.0
    """Mixes the target with the uniform distribution: (1 - s) * one_hot + s / classes."""


class BinaryCrossEntropy(_Loss):
    """Sigmoid cross-entropy on logits with 0/1 targets (torch.nn.BCEWithLogitsLoss), mean over elements."""

    type: Literal["binary_cross_entropy"] = "binary_cross_entropy"


class MSE(_Loss):
    """Mean squared error."""

    type: Literal["mse"] = "mse"


class L1(_Loss):
    """Mean absolute error."""

    type: Literal["l1"] = "l1"


class Huber(_Loss):
    """Huber loss (torch.nn.HuberLoss): 0.5 d^2 for |d| < delta, else delta (|d| - 0.5 delta); mean."""

    type: Literal["huber"] = "huber"
    delta: PositiveFloat = 1.0
    """Where the quadratic part ends."""


Loss = Annotated[Union[CrossEntropy, BinaryCrossEntropy, MSE, L1, Huber], Field(discriminator="type")]  # noqa: UP007


class SGD(Strict):
    """torch.optim.SGD: g += wd*p; buf = momentum*buf + (1-dampening)*g (buf = g at the first step);
    g = g + momentum*buf with nesterov, else buf; p -= lr*g."""

    type: Literal["sgd"] = "sgd"
    lr: PositiveFloat
    """Learning rate."""
    momentum: NonNegative = 0.0
    """Momentum factor."""
    dampening: NonNegative = 0.0
    """Dampening of momentum."""
    nesterov: Bool = False
    """Nesterov momentum."""
    weight_decay: NonNegative = 0.0
    """Coupled L2: wd * p added to the gradient."""

    @model_validator(mode="after")
    def _nesterov(self):
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            invalid("nesterov", "needs momentum > 0 and dampening 0 (as torch requires)")
        return self


class Adam(Strict):
    """torch.optim.Adam; weight_decay is coupled (L2 added to the gradient)."""

    type: Literal["adam"] = "adam"
    lr: PositiveFloat = 1e-3
    """Learning rate."""
    betas: Annotated[list[Beta], Field(min_length=2, max_length=2)] = [0.9, 0.999]
    """Decay rates of the first and second moment estimates."""
    eps: PositiveFloat = 1e-8
    """Added to sqrt(v_hat) (after bias correction, as torch does; Keras adds it before)."""
    weight_decay: NonNegative = 0.0
    """Coupled L2: wd * p added to the gradient."""


class AdamW(Adam):
    """torch.optim.AdamW; weight_decay is decoupled: p *= 1 - lr * wd before the Adam step."""

    type: Literal["adamw"] = "adamw"
    weight_decay: NonNegative = 0.01
    """Decoupled decay (torch's default 0.01)."""


class RMSprop(Strict):
    """torch.optim.RMSprop: v = alpha*v + (1-alpha)*g^2; p -= lr * g / (sqrt(v) + eps) (with momentum
    and centering as torch defines them)."""

    type: Literal["rmsprop"] = "rmsprop"
    lr: PositiveFloat = 1e-2
    """Learning rate (torch's default 0.01; Keras' 0.001)."""
    alpha: Beta = 0.99
    """Smoothing constant (Keras calls it rho, default 0.9)."""
    eps: PositiveFloat = 1e-8
    """Added to the root (torch 1e-8; Keras 1e-7)."""
    momentum: NonNegative = 0.0
    """Momentum factor."""
    centered: Bool = False
    """Normalise by the estimated variance of the gradient."""
    weight_decay: NonNegative = 0.0
    """Coupled L2."""


Optimizer = Annotated[Union[SGD, Adam, AdamW, RMSprop], Field(discriminator="type")]  # noqa: UP007
Interval = Literal["epoch", "step"]


class StepLR(Strict):
    """lr = base * gamma ** (t // step_size), t counting epochs or steps."""

    type: Literal["step"] = "step"
    step_size: PositiveInt
    """Period of decay."""
    gamma: PositiveFloat = 0.1
    """Multiplicative factor."""
    interval: Interval = "epoch"
    """What t counts (torch schedulers step when called, usually per epoch; Keras ones per batch)."""


class MultiStepLR(Strict):
    """lr = base * gamma ** (number of milestones <= t)."""

    type: Literal["multistep"] = "multistep"
    milestones: list[PositiveInt] = Field(min_length=1)
    """Increasing values of t at which the rate decays."""
    gamma: PositiveFloat = 0.1
    """Multiplicative factor."""
    interval: Interval = "epoch"
    """What t counts."""


class ExponentialLR(Strict):
    """lr = base * gamma ** t."""

    type: Literal["exponential"] = "exponential"
    gamma: PositiveFloat
    """Multiplicative factor per t."""
    interval: Interval = "epoch"
    """What t counts."""


class CosineLR(Strict):
    """Linear warm-up (base * (t + 1) / warmup for t < warmup), then torch's CosineAnnealingLR closed form
    eta_min + (base - eta_min) * (1 + cos(pi * t' / t_max)) / 2 with t' = t - warmup (periodic past t_max)."""

    type: Literal["cosine"] = "cosine"
    t_max: PositiveInt
    """Length of the cosine part."""
    eta_min: NonNegative = 0.0
    """Final rate."""
    warmup: Annotated[int, Field(strict=True, ge=0)] = 0
    """Warm-up length (0: none)."""
    interval: Interval = "epoch"
    """What t counts."""


class ReduceOnPlateau(Strict):
    """torch.optim.lr_scheduler.ReduceLROnPlateau in 'min' mode with a relative threshold, checked after
    each epoch."""

    type: Literal["reduce_on_plateau"] = "reduce_on_plateau"
    monitor: Literal["loss", "val_loss"] = "val_loss"
    """The quantity watched."""
    factor: Annotated[float, Field(strict=True, gt=0, lt=1)] = 0.1
    """lr *= factor on a plateau."""
    patience: Annotated[int, Field(strict=True, ge=0)] = 10
    """Epochs without improvement before reducing."""
    threshold: NonNegative = 1e-4
    """Improvement means value < best * (1 - threshold)."""
    cooldown: Annotated[int, Field(strict=True, ge=0)] = 0
    """Epochs to wait after a reduction."""
    min_lr: NonNegative = 0.0
    """Lower bound on the rate."""


Schedule = Annotated[Union[StepLR, MultiStepLR, ExponentialLR, CosineLR, ReduceOnPlateau],  # noqa: UP007
                     Field(discriminator="type")]


class TopK(Strict):
    """Fraction of samples whose label is among the k largest logits."""

    type: Literal["top_k"] = "top_k"
    k: PositiveInt = 5
    """How many of the largest logits count."""


# A mapping is a TopK, anything else the name `accuracy`: one error per bad entry, not one per union member.
# The tags are labels that the error locator drops ("str", "dict").
Metric = Annotated[Union[Annotated[Literal["accuracy"], Tag("str")], Annotated[TopK, Tag("dict")]],  # noqa: UP007
                   Discriminator(lambda value: "dict" if isinstance(value, (dict, TopK)) else "str")]


class Clip(Strict):
    """Gradient clipping before the optimizer step (exactly one of the two)."""

    norm: PositiveFloat | None = None
    """Scale all gradients so that their global L2 norm is at most this."""
    value: PositiveFloat | None = None
    """Clamp each gradient element to [-value, value]."""

    @model_validator(mode="after")
    def _one(self):
        if (self.norm is None) == (self.value is None):
            invalid("norm", "give exactly one of norm and value")
        return self


class EarlyStopping(Strict):
    """Stop when the monitored quantity has not improved by min_delta for `patience` epochs."""

    monitor: Literal["loss", "val_loss"] = "val_loss"
    """The quantity watched (lower is better)."""
    patience: PositiveInt = 5
    """Epochs without improvement before stopping."""
    min_delta: NonNegative = 0.0
    """Smallest decrease that counts as improvement."""


def _or_bare_name(schema: dict, union) -> None:
    """JSON schema: a mapping of the union, or the bare name of one of its types (``loss: mse``)."""
    names = [cls.model_fields["type"].default for cls in typing.get_args(typing.get_args(union)[0])]
    mapping = {key: schema.pop(key) for key in ("discriminator", "oneOf") if key in schema}
    schema["anyOf"] = [mapping, {"enum": names}]


class Train(Strict):
    """How to train: one meaning in every backend (PyTorch's formulas)."""

    loss: Loss = Field(json_schema_extra=lambda schema: _or_bare_name(schema, Loss))
    """The loss, on the model's (first) output. The reported loss excludes regularisation and weight decay."""
    optimizer: Optimizer
    """The optimizer."""
    schedule: Schedule | None = None
    """Learning-rate schedule (default: constant)."""
    epochs: PositiveInt = 10
    """Passes over the training data."""
    batch_size: PositiveInt = 32
    """Samples per step; the last batch of an epoch may be smaller."""
    validation_split: Rate = 0.0
    """Fraction of the data, taken from the end before shuffling (as Keras does), kept for validation."""
    shuffle: Bool = True
    """Shuffle the training samples each epoch with dlspec's seeded permutation (false: file order)."""
    seed: Annotated[int, Field(strict=True, ge=0)] = 0
    """Seed of the initial weights, the batch order and dropout."""
    metrics: list[Metric] = []
    """Metrics reported per epoch, on training batches and on validation data."""
    clip: Clip | None = None
    """Gradient clipping."""
    early_stopping: EarlyStopping | None = None
    """Early stopping."""

    @field_validator("loss", mode="before")
    @classmethod
    def _bare_loss_name(cls, value):
        return {"type": value} if isinstance(value, str) else value  # `loss: mse` is `loss: {type: mse}`

    def loss_spec(self):
        """The loss as a model, even when written as a bare name."""
        return self.loss

