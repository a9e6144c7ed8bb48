"""Keras emitters for convolution, pooling, normalisation, resampling and merges (channels-last inside)."""

from __future__ import annotations

from .. import ir
from ..ir import Act
from ..ir.vision import conv_geometry, per_axis, pool_geometry, zero_pad_amounts
from .context import refuse
from .keras_emit import CHANNELS_LAST, HELPERS, KerasContext, KerasLayer, _init, _w, declare, fused
from .registry import emitter
from .source import call

HELPERS["TorchPool"] = '''
@keras.saving.register_keras_serializable(package="dlspec")
class TorchPool(keras.layers.Layer):
    """torch's max or average pooling on channels-last input: explicit padding (-inf for max),
    ceil_mode, and torch's divisor for windows that overlap the padding."""

    def __init__(
        self,
        kind,
        pool_size,
        strides,
        padding,
        ceil_mode,
        count_include_pad=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.kind, self.pool_size, self.strides, self.padding = (
            kind,
            tuple(pool_size),
            tuple(strides),
            tuple(padding),
        )
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def _axis(self, size, k, s, p):
        span = size + 2 * p - k
        out = (-(-span // s) if self.ceil_mode else span // s) + 1
        if self.ceil_mode and (out - 1) * s >= size + p:
            out -= 1
        extra = max((out - 1) * s + k - size - 2 * p, 0)
        low, high = (-p, size + p) if self.count_include_pad else (0, size)
        counts = [min(j * s - p + k, high) - max(j * s - p, low) for j in range(out)]
        return extra, counts

    def build(self, input_shape):
        sizes = zip(
            input_shape[1:-1],
            self.pool_size,
            self.strides,
            self.padding,
            strict=True,
        )
        axes = [self._axis(n, k, s, p) for n, k, s, p in sizes]
        pads = [(p, p + e) for p, (e, _) in zip(self.padding, axes, strict=True)]
        self.pads = [(0, 0), *pads, (0, 0)]
        scale = np.ones([len(c) for _, c in axes], dtype="float32")
        for i, (_, counts) in enumerate(axes):
            shape = [1] * len(axes)
            shape[i] = len(counts)
            scale = scale / np.asarray(counts, dtype="float32").reshape(shape)
        self.scale = (scale * np.prod(self.pool_size, dtype="float32"))[None, ..., None]

    def call(self, x):
        if self.kind == "max":
            x = keras.ops.pad(x, self.pads, constant_values=float("-inf"))
            return keras.ops.max_pool(x, self.pool_size, self.strides, padding="valid")
        x = keras.ops.pad(x, self.pads)
        pooled = keras.ops.average_pool(x, self.pool_size, self.strides)  # "valid"
        return pooled * self.scale

    def get_config(self):
        return {
            **super().get_config(),
            "kind": self.kind,
            "pool_size": self.pool_size,
            "strides": self.strides,
            "padding": self.padding,
            "ceil_mode": self.ceil_mode,
            "count_include_pad": self.count_include_pad,
        }
'''


def _one(values):
    return values[0] if len(values) == 1 else tuple(values)


def _conv_weights(ctx: KerasContext, depthwise: bool) -> list[str]:
    nd = len(ctx.in_shape) - 1
    if depthwise:  # (in*m, 1, *k) -> (*k, in, m); in = -1 keeps one layout for every width
        c = ctx.in_shape[0]
        perm = (2, 3, 0, 1) if nd == 2 else (2, 0, 1)
        shape = (-1, ctx.node.attrs["filters"] // c, *per_axis(ctx.node.attrs["kernel"], nd, "kernel"))
        weight = _w(ctx.node, "weight", ("reshape", shape), ("transpose", perm))
    else:  # (out, in/g, *k) -> (*k, in/g, out)
        weight = _w(ctx.node, "weight", ("transpose", (2, 3, 1, 0) if nd == 2 else (2, 1, 0)))
    return [weight] + ([_w(ctx.node, "bias")] if ctx.node.attrs["use_bias"] else [])


def _conv(ctx: KerasContext) -> KerasLayer:
    node, a, nd = ctx.node, ctx.node.attrs, len(ctx.in_shape) - 1
    geo = conv_geometry(a, ctx.in_shape[1:])
    depthwise = a["groups"] == ctx.in_shape[0] and a["groups"] > 1
    if max(geo.stride) > 1 and max(geo.dilation) > 1:
        raise refuse(node, "dilation", "the keras backend cannot combine stride > 1 with dilation > 1 (TensorFlow's "
                     f"convolutions reject it; stride {list(geo.stride)})", a["dilation"])
    act, helpers, post = fused(Act.of(a["activation"]), nd + 2, CHANNELS_LAST)
    pre = []
    if a["padding"] == "same" and (set(geo.stride) == {1} or set(geo.dilation) == {1}):
        padding = "same"  # Keras' same is TF's rule, as the spec defines it
    else:
        padding = "valid"
        if any(b or e for b, e in geo.pads):
            pads = _one([(b, e) if b != e else b for b, e in geo.pads])
            pre.append(("pad", call(f"keras.layers.ZeroPadding{nd}D", padding=pads)))
    params = {p.name: p for p in node.params}
    one = _one((1,) * nd)
    common = {"kernel_size": _one(geo.kernel), "strides": _one(geo.stride), "padding": padding,
              "dilation_rate": _one(geo.dilation)}
    if depthwise:
        target = f"keras.layers.DepthwiseConv{nd}D"
        values = {**common, "depth_multiplier": a["filters"] // a["groups"]}
        init = {"depthwise_initializer": _init(params["weight"], exact_fans=False)}
    else:
        target = f"keras.layers.Conv{nd}D"
        values = {"filters": a["filters"], **common, "groups": a["groups"]}
        init = {"kernel_initializer": _init(params["weight"])}
    if a["use_bias"]:
        init["bias_initializer"] = _init(params["bias"])
    # Keras' defaults are left out; initialisers stay explicit (torch's defaults differ)
    defaults = {"strides": one, "padding": "valid", "dilation_rate": one, "groups": 1, "depth_multiplier": 1,
                "activation": None, "use_bias": True}
    layer = call(target, **values, activation=act, use_bias=a["use_bias"], **init, name=node.name, defaults=defaults)
    return KerasLayer(layer, _conv_weights(ctx, depthwise), CHANNELS_LAST, helpers, pre=pre, post=post)


emitter("keras", ir.vision.Conv1d)(_conv)
emitter("keras", ir.vision.Conv2d)(_conv)


@emitter("keras", ir.vision.ConvTranspose2d)
def _conv_transpose(ctx: KerasContext) -> KerasLayer:
    a, node = ctx.node.attrs, ctx.node
    k, s = per_axis(a["kernel"], 2, "kernel"), per_axis(a["stride"], 2, "stride")
    p, op_ = per_axis(a["padding"], 2, "padding"), per_axis(a["output_padding"], 2, "output_padding")
    params = {q.name: q for q in node.params}
    init = {"kernel_initializer": _init(params["weight"], exact_fans=False)}
    if a["use_bias"]:
        init["bias_initializer"] = _init(params["bias"])
    post = []
    # torch's padding crops the full output and output_padding gives rows back at the end; Keras' valid
    # output is in*s + max(k - s, 0), which is s - k longer than torch's full output when k < s
    crop = tuple((pi, pi - oi + max(si - ki, 0)) for pi, oi, si, ki in zip(p, op_, s, k))
    if any(b or e for b, e in crop):
        post.append(("crop", call("keras.layers.Cropping2D", cropping=crop)))
    weights = [_w(node, "weight", ("transpose", (2, 3, 1, 0)))] + ([_w(node, "bias")] if a["use_bias"] else [])
    layer = call("keras.layers.Conv2DTranspose", filters=a["filters"], kernel_size=_one(k), strides=_one(s),
                 padding="valid", use_bias=a["use_bias"], **init, name=node.name)
    return KerasLayer(layer, weights, CHANNELS_LAST, post=post)


def _pool(ctx: KerasContext) -> KerasLayer:
    a, node, nd = ctx.node.attrs, ctx.node, len(ctx.in_shape) - 1
    kind = "max" if node.op.startswith("max") else "avg"
    geo = pool_geometry(a, ctx.in_shape[1:], a.get("count_include_pad", True))
    if not any(geo.pads) and not any(geo.extra):
        cls = f"{'Max' if kind == 'max' else 'Average'}Pooling{nd}D"
        layer = call(f"keras.layers.{cls}", pool_size=_one(geo.kernel), strides=_one(geo.stride), padding="valid",
                     name=node.name)
        return KerasLayer(layer, wants=CHANNELS_LAST)
    extra = {"count_include_pad": a["count_include_pad"]} if kind == "avg" else {}
    layer = call("TorchPool", kind=kind, pool_size=geo.kernel, strides=geo.stride, padding=geo.pads,
                 ceil_mode=a["ceil_mode"], **extra, name=node.name)
    return KerasLayer(layer, wants=CHANNELS_LAST, helpers=("TorchPool",))


for _op in (ir.vision.MaxPool1d, ir.vision.MaxPool2d, ir.vision.AvgPool1d, ir.vision.AvgPool2d):
    emitter("keras", _op)(_pool)


def _global(kind: str, keepdims: bool = False):
    def emit(ctx: KerasContext) -> KerasLayer:
        nd = len(ctx.in_shape) - 1
        keep = {"keepdims": True} if keepdims else {}
        return KerasLayer(call(f"keras.layers.Global{kind}Pooling{nd}D", **keep, name=ctx.node.name),
                          wants=CHANNELS_LAST)

    return declare(emit, CHANNELS_LAST)


emitter("keras", ir.vision.GlobalAvgPool)(_global("Average"))
emitter("keras", ir.vision.GlobalMaxPool)(_global("Max"))


@emitter("keras", ir.vision.GroupNorm)
def _groupnorm(ctx: KerasContext) -> KerasLayer:
    a, node = ctx.node.attrs, ctx.node
    layer = call("GroupNorm", groups=a["groups"], axis=-1, epsilon=a["eps"], name=node.name)
    return KerasLayer(layer, [_w(node, "weight"), _w(node, "bias")], CHANNELS_LAST,
                      helpers=("GroupNorm",))  # the helper is defined in keras_norm.py


@emitter("keras", ir.vision.ZeroPad)
def _zero_pad(ctx: KerasContext) -> KerasLayer:
    nd = len(ctx.in_shape) - 1
    pads = zero_pad_amounts(ctx.node.attrs, nd)
    layer = call(f"keras.layers.ZeroPadding{nd}D", padding=_one([tuple(p) for p in pads]), name=ctx.node.name)
    return KerasLayer(layer, wants=CHANNELS_LAST)


@emitter("keras", ir.vision.Upsample)
def _upsample(ctx: KerasContext) -> KerasLayer:
    a, nd = ctx.node.attrs, len(ctx.in_shape) - 1
    if a["mode"] == "bilinear" and a["align_corners"]:
        raise refuse(ctx.node, "align_corners", "the keras backend has no bilinear upsampling with "
                     "align_corners=true (Keras resizes with half-pixel centres only)", True)
    scale = per_axis(a["scale"], nd, "scale")
    if nd == 1:
        return KerasLayer(call("keras.layers.UpSampling1D", size=scale[0], name=ctx.node.name), wants=CHANNELS_LAST)
    layer = call("keras.layers.UpSampling2D", size=scale, interpolation=a["mode"], name=ctx.node.name)
    return KerasLayer(layer, wants=CHANNELS_LAST)


# What each emitter's layer needs of its inputs' layout (see keras_emit.declare)
declare(_conv, CHANNELS_LAST)
declare(_conv_transpose, CHANNELS_LAST)
declare(_pool, CHANNELS_LAST)
declare(_groupnorm, CHANNELS_LAST)
declare(_zero_pad, CHANNELS_LAST)
declare(_upsample, CHANNELS_LAST)
