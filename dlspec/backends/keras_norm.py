"""Keras emitters for layernorm and rmsnorm over any axes, prelu, adaptive pooling and stochastic depth."""

from __future__ import annotations

from .. import ir
from ..ir.norm import adaptive_output, norm_axes
from .keras_emit import ANY, CHANNELS_LAST, HELPERS, LOGICAL, KerasContext, KerasLayer, _w, declare
from .registry import emitter
from .source import call

HELPERS["RMSNorm"] = '''
@keras.saving.register_keras_serializable(package="dlspec")
class RMSNorm(keras.layers.Layer):
    """x / sqrt(mean(x^2 over axis) + epsilon) * gamma, as torch's nn.RMSNorm (axis: sorted physical axes)."""

    def __init__(self, axis, epsilon=1e-6, **kwargs):
        super().__init__(**kwargs)
        self.axis, self.epsilon = list(axis), epsilon

    def build(self, input_shape):
        self.gamma = self.add_weight(
            shape=tuple(input_shape[a] for a in self.axis),
            initializer="ones",
            name="gamma",
        )
        axes = range(1, len(input_shape))
        self.broadcast = [input_shape[a] if a in self.axis else 1 for a in axes]

    def call(self, x):
        mean_square = keras.ops.mean(keras.ops.square(x), axis=self.axis, keepdims=True)
        gamma = keras.ops.reshape(self.gamma, self.broadcast)
        return x * keras.ops.rsqrt(mean_square + self.epsilon) * gamma

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "epsilon": self.epsilon}
'''

HELPERS["LayerNorm"] = '''
@keras.saving.register_keras_serializable(package="dlspec")
class LayerNorm(keras.layers.LayerNormalization):
    """LayerNormalization computed as torch's nn.LayerNorm: (x - mean) * rsqrt(var + epsilon) * gamma + beta.
    Keras' own x * inv - mean * inv rounds the two products apart, which loses the digits they share when
    |mean| is large against the spread (near-constant input, or one to two values)."""

    def call(self, x):
        mean, variance = keras.ops.moments(x, axes=self.axis, keepdims=True)
        shape = [1] * len(x.shape)
        for a in self.axis:
            shape[a] = x.shape[a]
        normed = (x - mean) * keras.ops.rsqrt(variance + self.epsilon)
        gamma = keras.ops.reshape(self.gamma, shape)
        return normed * gamma + keras.ops.reshape(self.beta, shape)
'''

HELPERS["GroupNorm"] = '''
@keras.saving.register_keras_serializable(package="dlspec")
class GroupNorm(keras.layers.GroupNormalization):
    """GroupNormalization on channels-last data computed as torch's nn.GroupNorm: per sample and group of
    channels, (x - mean) * rsqrt(var + epsilon), then * gamma + beta per channel (Keras' own x * inv - mean * inv
    loses the digits the two products share when |mean| is large against the spread)."""

    def call(self, x):
        shape = keras.ops.shape(x)
        per_group = (self.groups, x.shape[-1] // self.groups)
        grouped = keras.ops.reshape(x, (shape[0], -1, *per_group))
        mean, variance = keras.ops.moments(grouped, axes=[1, 3], keepdims=True)
        gamma = keras.ops.reshape(self.gamma, per_group)
        scale = keras.ops.rsqrt(variance + self.epsilon) * gamma
        beta = keras.ops.reshape(self.beta, per_group)
        return keras.ops.reshape((grouped - mean) * scale + beta, shape)
'''

HELPERS["AdaptivePool"] = '''
@keras.saving.register_keras_serializable(package="dlspec")
class AdaptivePool(keras.layers.Layer):
    """torch's adaptive average or max pooling on channels-last input: each spatial axis is cut into the bins
    [floor(i * n / out), ceil((i + 1) * n / out)) and reduced bin by bin, one axis after the other (a box's
    mean or max is that of its rows' means or maxima)."""

    def __init__(self, kind, output_size, **kwargs):
        super().__init__(**kwargs)
        self.kind, self.output_size = kind, tuple(output_size)

    def call(self, x):
        reduce = keras.ops.mean if self.kind == "avg" else keras.ops.max
        for axis, out in enumerate(self.output_size, start=1):
            n, parts = x.shape[axis], []
            for i in range(out):
                index = [slice(None)] * len(x.shape)
                index[axis] = slice(i * n // out, -(-(i + 1) * n // out))
                parts.append(reduce(x[tuple(index)], axis=axis, keepdims=True))
            x = keras.ops.concatenate(parts, axis=axis)
        return x

    def get_config(self):
        return {
            **super().get_config(),
            "kind": self.kind,
            "output_size": self.output_size,
        }
'''

HELPERS["StochasticDepth"] = '''
@keras.saving.register_keras_serializable(package="dlspec")
class StochasticDepth(keras.layers.Layer):
    """torchvision's StochasticDepth: in training, each sample (mode "row") or the whole batch (mode "batch") is
    zeroed with probability rate and the rest scaled by 1 / (1 - rate); identity at inference."""

    def __init__(self, rate, mode="row", seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.mode, self.seed = rate, mode, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=False):
        if not training or self.rate == 0:
            return x
        keep = 1.0 - self.rate
        ones = (1,) * (len(x.shape) - 1)
        shape = (keras.ops.shape(x)[0], *ones) if self.mode == "row" else (1, *ones)
        draw = keras.random.uniform(shape, seed=self.seed_generator)
        return x * keras.ops.cast(draw < keep, x.dtype) / keep

    def get_config(self):
        return {
            **super().get_config(),
            "rate": self.rate,
            "mode": self.mode,
            "seed": self.seed,
        }
'''


def _physical(ctx: KerasContext) -> tuple[list[int], list[int]]:
    """Sorted physical normalised axes, and the permutation taking the canonical weight to their order."""
    phys = [ctx.axis(a) for a in norm_axes(ctx.node.attrs, ctx.in_shape)]
    order = sorted(range(len(phys)), key=phys.__getitem__)
    return [phys[i] for i in order], order


def _weights(ctx: KerasContext, names: tuple[str, ...], order: list[int]) -> list[str]:
    moved = () if order == sorted(order) else (("transpose", tuple(order)),)
    return [_w(ctx.node, n, *moved) for n in names]


@emitter("keras", ir.norm.LayerNorm)
def _layernorm(ctx: KerasContext) -> KerasLayer:
    axes, order = _physical(ctx)
    axis = -1 if axes == [len(ctx.in_shape)] else axes
    layer = call("LayerNorm", axis=axis, epsilon=ctx.node.attrs["eps"], name=ctx.node.name)
    return KerasLayer(layer, _weights(ctx, ("weight", "bias"), order), _norm_layout(ctx),
                      helpers=("LayerNorm",))


@emitter("keras", ir.norm.RMSNorm)
def _rmsnorm(ctx: KerasContext) -> KerasLayer:
    axes, order = _physical(ctx)
    layer = call("RMSNorm", axis=axes, epsilon=ctx.node.attrs["eps"], name=ctx.node.name)
    return KerasLayer(layer, _weights(ctx, ("weight",), order), _norm_layout(ctx), helpers=("RMSNorm",))


def _norm_layout(ctx: KerasContext) -> str:
    """Normalise in the layout the input has when it is the logical or the channels-last one; after a user
    permute the layout may be another order, and the logical one lets a following dense run without a Permute."""
    return ANY if ctx.layout in (LOGICAL, CHANNELS_LAST) else LOGICAL


@emitter("keras", ir.norm.PReLU)
def _prelu(ctx: KerasContext) -> KerasLayer:
    rank = len(ctx.in_shape)  # channels-last: the channels are the last sample axis
    shared = list(range(1, rank + 1)) if ctx.node.attrs["shared"] else list(range(1, rank))
    shape = (1,) * rank if ctx.node.attrs["shared"] else (1,) * (rank - 1) + (ctx.in_shape[0],)
    axes = {"shared_axes": shared} if shared else {}
    weight = _w(ctx.node, "weight", *((("reshape", shape),) if rank > 1 else ()))
    layer = call("keras.layers.PReLU", alpha_initializer=call("keras.initializers.Constant", 0.25), **axes,
                 name=ctx.node.name)
    return KerasLayer(layer, [weight], CHANNELS_LAST)


def _adaptive(kind: str):
    def emit(ctx: KerasContext) -> KerasLayer:
        nd, name = len(ctx.in_shape) - 1, ctx.node.name
        out = adaptive_output(ctx.node.attrs, ctx.in_shape)
        if set(out) == {1}:  # the global mean or max, keeping the axes
            cls = "Average" if kind == "avg" else "Max"
            return KerasLayer(call(f"keras.layers.Global{cls}Pooling{nd}D", keepdims=True, name=name),
                              wants=CHANNELS_LAST)
        if all(n % o == 0 for n, o in zip(ctx.in_shape[1:], out)):  # equal bins: plain pooling
            k = tuple(n // o for n, o in zip(ctx.in_shape[1:], out))
            k = k[0] if len(k) == 1 else k
            cls = "AveragePooling" if kind == "avg" else "MaxPooling"
            return KerasLayer(call(f"keras.layers.{cls}{nd}D", pool_size=k, strides=k, padding="valid", name=name),
                              wants=CHANNELS_LAST)
        return KerasLayer(call("AdaptivePool", kind=kind, output_size=out, name=name), wants=CHANNELS_LAST,
                          helpers=("AdaptivePool",))

    return declare(emit, CHANNELS_LAST)


emitter("keras", ir.norm.AdaptiveAvgPool)(_adaptive("avg"))
emitter("keras", ir.norm.AdaptiveMaxPool)(_adaptive("max"))


@emitter("keras", ir.norm.StochasticDepth)
def _stochastic_depth(ctx: KerasContext) -> KerasLayer:
    a = ctx.node.attrs
    return KerasLayer(call("StochasticDepth", rate=a["rate"], mode=a["mode"], name=ctx.node.name),
                      helpers=("StochasticDepth",))


# What each emitter's layer needs of its inputs' layout (see keras_emit.declare)
declare(_layernorm, _norm_layout)
declare(_rmsnorm, _norm_layout)
declare(_prelu, CHANNELS_LAST)
declare(_stochastic_depth, ANY)
