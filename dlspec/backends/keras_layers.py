"""Keras emitters of the core ops (dlspec/spec/layers.py): dense, activation, dropout, batch norm, flatten,
reshape; with the BatchNorm layer that gives batch normalisation torch's semantics."""

from __future__ import annotations

from .. import ir
from ..ir import Act
from .keras_emit import (
    ANY,
    CHANNELS_LAST,
    HELPERS,
    LOGICAL,
    KerasContext,
    KerasLayer,
    T,
    _init,
    _w,
    activation_layer,
    declare,
    fused,
)
from .registry import emitter
from .source import call


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
