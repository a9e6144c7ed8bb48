"""One converter per ONNX op: ``convert(node, ctx) -> list[Layer]``, registered with :func:`converter`.

A converter raises :class:`Refused` with the reason when the node's attributes have no exact dlspec meaning.
``ctx`` gives constants (``ctx.const(name)``, None when the value is computed) and static shapes with the batch
(``ctx.shape(name)``). Shapes exclude nothing here; dlspec's shapes exclude the batch, so axes are written as ONNX
counts them (batch = 0), which is also dlspec's convention for axes.
"""

from __future__ import annotations

import math

import numpy as np

from .layers import Layer, Refused

CONVERTERS: dict = {}


def converter(*ops: str):
    """Register the decorated function for ONNX op types ``ops``."""

    def register(fn):
        for op in ops:
            CONVERTERS[op] = fn
        return fn

    return register


def _one(values):
    """An int when every spatial axis has the same value (the spec's short form), else the list."""
    values = [int(v) for v in values]
    return values[0] if len(set(values)) == 1 else values


def _layer(node, type_, attrs, inputs=None, weights=None, hint="", output=None) -> Layer:
    return Layer(type_, attrs, list(inputs if inputs is not None else node.inputs[:1]), output or node.outputs[0],
                 weights or {}, [f"{node.op} {node.name or node.outputs[0]}"], hint or node.name or node.outputs[0])


def _needs_const(node, ctx, index: int, what: str):
    value = ctx.const(node.inputs[index]) if len(node.inputs) > index and node.inputs[index] else None
    if value is None:
        raise Refused(f"{what} is computed at run time, not a constant")
    return value


def _pads(node, ctx, nd: int, kernel, stride, dilation=None):
    """(begin, end) padding per spatial axis, auto_pad resolved."""
    auto = node.attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("NOTSET", ""):
        pads = list(node.attrs.get("pads", [0] * 2 * nd))
        return [(pads[i], pads[i + nd]) for i in range(nd)]
    if auto == "VALID":
        return [(0, 0)] * nd
    spatial = ctx.shape(node.inputs[0])[2:]
    dilation = dilation or [1] * nd
    out = []
    for i in range(nd):
        o = math.ceil(spatial[i] / stride[i])
        total = max((o - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1 - spatial[i], 0)
        small, big = total // 2, total - total // 2
        out.append((small, big) if auto == "SAME_UPPER" else (big, small))
    return out


def _same(spatial, kernel, stride, dilation):
    """(begin, end) padding of TF's `same` at this input size."""
    out = []
    for n, k, s, d in zip(spatial, kernel, stride, dilation):
        total = max((math.ceil(n / s) - 1) * s + d * (k - 1) + 1 - n, 0)
        out.append((total // 2, total - total // 2))
    return out


def _spatial_rank(node, ctx) -> int:
    shape = ctx.shape(node.inputs[0])
    if shape is None:
        raise Refused("the input's shape is not static")
    return len(shape) - 2


@converter("Conv")
def _conv(node, ctx):
    w = _needs_const(node, ctx, 1, "the weight")
    nd = w.ndim - 2
    if nd not in (1, 2):
        raise Refused(f"{nd}-D convolution (dlspec has conv1d and conv2d)")
    a = node.attrs
    kernel = list(a.get("kernel_shape", w.shape[2:]))
    stride = list(a.get("strides", [1] * nd))
    dilation = list(a.get("dilations", [1] * nd))
    pads = _pads(node, ctx, nd, kernel, stride, dilation)
    layers, x = [], node.inputs[0]
    attrs = {"filters": int(w.shape[0]), "kernel": _one(kernel)}
    if any(s != 1 for s in stride):
        attrs["stride"] = _one(stride)
    if any(d != 1 for d in dilation):
        attrs["dilation"] = _one(dilation)
    if a.get("group", 1) != 1:
        attrs["groups"] = int(a["group"])
    if all(b == e for b, e in pads):
        if any(b for b, _ in pads):
            attrs["padding"] = _one([b for b, _ in pads])
    elif _same(ctx.shape(node.inputs[0])[2:], kernel, stride, dilation) == pads:
        attrs["padding"] = "same"  # TF's rule (dlspec's `same`): the odd pixel at the end
    else:  # asymmetric: an explicit zero_pad first
        padded = f"{node.outputs[0]}/pad"
        layers.append(_layer(node, "zero_pad", {"padding": [list(p) for p in pads]}, output=padded,
                             hint=f"{node.name or node.outputs[0]}_pad"))
        x = padded
    weights = {"weight": w}
    bias = ctx.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else None
    if len(node.inputs) > 2 and node.inputs[2] and bias is None:
        raise Refused("the bias is computed at run time, not a constant")
    if bias is None:
        attrs["use_bias"] = False
    else:
        weights["bias"] = bias
    layers.append(_layer(node, f"conv{nd}d", attrs, [x], weights, hint=node.inputs[1]))
    return layers


@converter("BatchNormalization")
def _batchnorm(node, ctx):
    if any(o for o in node.outputs[1:]) and any(ctx.used(o) for o in node.outputs[1:]):
        raise Refused("training-mode outputs (running statistics) are used")
    if node.attrs.get("training_mode", 0):
        raise Refused("training_mode=1")
    names = ("weight", "bias", "running_mean", "running_var")
    weights = {n: _needs_const(node, ctx, i + 1, f"the {n}") for i, n in enumerate(names)}
    attrs = {}
    eps = float(np.float32(node.attrs.get("epsilon", 1e-5)))
    if abs(eps - 1e-5) > 1e-12:
        attrs["eps"] = _short(eps)
    momentum = node.attrs.get("momentum", 0.9)
    if abs((1 - momentum) - 0.1) > 1e-6:
        attrs["momentum"] = _short(1 - momentum)
    return [_layer(node, "batchnorm", attrs, weights=weights, hint=node.inputs[1])]


def _short(value: float) -> float:
    """A float32 attribute as the shortest decimal that rounds to it (1e-05, not 9.999999747378752e-06)."""
    f = np.float32(value)
    for digits in range(1, 10):
        text = f"{float(f):.{digits}g}"
        if np.float32(float(text)) == f:
            return float(text)
    return float(f)


def _dense(node, ctx, x, w_out_in, bias, hint):
    weights = {"weight": np.ascontiguousarray(w_out_in, dtype=np.float32)}
    attrs = {"units": int(w_out_in.shape[0])}
    if bias is None:
        attrs["use_bias"] = False
    else:
        weights["bias"] = np.ascontiguousarray(bias, dtype=np.float32)
    return _layer(node, "dense", attrs, [x], weights, hint=hint)


@converter("Gemm")
def _gemm(node, ctx):
    a = node.attrs
    if a.get("transA", 0):
        raise Refused("transA=1 (the input transposed)")
    b = _needs_const(node, ctx, 1, "B")
    w = (b if a.get("transB", 0) else b.T) * np.float32(a.get("alpha", 1.0))
    bias = None
    if len(node.inputs) > 2 and node.inputs[2]:
        c = _needs_const(node, ctx, 2, "C")
        if c.size not in (1, w.shape[0]) or (c.ndim == 2 and c.shape[0] != 1):
            raise Refused(f"C of shape {list(c.shape)} is not a bias per output")
        bias = np.broadcast_to(c.reshape(-1), (w.shape[0],)) * np.float32(a.get("beta", 1.0))
    return [_dense(node, ctx, node.inputs[0], w, bias, node.inputs[1])]


@converter("MatMul")
def _matmul(node, ctx):
    b = ctx.const(node.inputs[1])
    if b is not None and ctx.const(node.inputs[0]) is None:
        if b.ndim != 2:
            raise Refused(f"a constant right operand of rank {b.ndim} (dense needs a matrix)")
        return [_dense(node, ctx, node.inputs[0], b.T, None, node.inputs[1])]
    if b is None and ctx.const(node.inputs[0]) is None:
        return [_layer(node, "matmul", {}, node.inputs[:2])]
    raise Refused("a constant left operand")


ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "HardSwish": "hardswish", "Mish": "mish",
               "Softplus": "softplus"}


@converter(*ACTIVATIONS)
def _activation(node, ctx):
    return [_layer(node, "activation", {"activation": ACTIVATIONS[node.op]})]


@converter("LeakyRelu")
def _leaky(node, ctx):
    return [_layer(node, "activation", {"activation": "leaky_relu",
                                        "negative_slope": _short(node.attrs.get("alpha", 0.01))})]


@converter("Elu")
def _elu(node, ctx):
    alpha = node.attrs.get("alpha", 1.0)
    return [_layer(node, "activation", {"activation": "elu", **({} if alpha == 1.0 else {"alpha": _short(alpha)})})]


@converter("Gelu")
def _gelu(node, ctx):
    approx = node.attrs.get("approximate", b"none")
    approx = approx.decode() if isinstance(approx, bytes) else approx
    return [_layer(node, "activation", {"activation": "gelu", **({} if approx == "none" else {"approximate": approx})})]


@converter("HardSigmoid")
def _hardsigmoid(node, ctx):
    alpha, beta = node.attrs.get("alpha", 0.2), node.attrs.get("beta", 0.5)
    if abs(alpha - 1 / 6) > 1e-6 or abs(beta - 0.5) > 1e-6:
        raise Refused(f"alpha={alpha:g}, beta={beta:g} (dlspec's hardsigmoid is alpha=1/6, beta=0.5)")
    return [_layer(node, "activation", {"activation": "hardsigmoid"})]


@converter("Clip")
def _clip(node, ctx):
    if ctx.opset < 11:
        lo, hi = node.attrs.get("min", -np.inf), node.attrs.get("max", np.inf)
    else:
        lo = float(_needs_const(node, ctx, 1, "min")) if len(node.inputs) > 1 and node.inputs[1] else -np.inf
        hi = float(_needs_const(node, ctx, 2, "max")) if len(node.inputs) > 2 and node.inputs[2] else np.inf
    if lo == 0 and hi == 6:
        return [_layer(node, "activation", {"activation": "relu6"})]
    if lo == 0 and hi == np.inf:
        return [_layer(node, "activation", {"activation": "relu"})]
    raise Refused(f"Clip to [{lo:g}, {hi:g}] (dlspec has relu [0, inf) and relu6 [0, 6])")


@converter("Softmax")
def _softmax(node, ctx):
    shape = ctx.shape(node.inputs[0])
    rank = len(shape)
    axis = node.attrs.get("axis", 1 if ctx.opset < 13 else -1) % rank
    if ctx.opset < 13 and any(d != 1 for d in shape[axis + 1:]):
        raise Refused("opset < 13 softmax over several flattened axes")
    if axis == 0:
        raise Refused("softmax over the batch axis")
    return [_layer(node, "activation", {"activation": "softmax", "axis": axis if axis != rank - 1 else -1})]


@converter("PRelu")
def _prelu(node, ctx):
    slope = _needs_const(node, ctx, 1, "the slope")
    shape = ctx.shape(node.inputs[0])
    if slope.size == 1:
        return [_layer(node, "prelu", {"shared": True}, weights={"weight": slope.reshape(1)}, hint=node.inputs[1])]
    c = shape[1]
    if slope.size != c or slope.reshape(-1).shape[0] != c or (slope.ndim >= 2 and slope.shape[0] != c
                                                                 and slope.ndim >= len(shape)):
        raise Refused(f"a slope of shape {list(slope.shape)} (dlspec's prelu has one per channel or one shared)")
    return [_layer(node, "prelu", {}, weights={"weight": slope.reshape(c)}, hint=node.inputs[1])]


@converter("Dropout")
def _dropout(node, ctx):
    if len(node.outputs) > 1 and node.outputs[1] and ctx.used(node.outputs[1]):
        raise Refused("the mask output is used")
    ratio = node.attrs.get("ratio", 0.5)
    if len(node.inputs) > 1 and node.inputs[1]:
        ratio = float(_needs_const(node, ctx, 1, "the ratio"))
    return [_layer(node, "dropout", {"rate": _short(ratio)})]


@converter("Identity")
def _identity(node, ctx):
    return []  # an alias: readers of the output read the input


@converter("LRN")
def _lrn(node, ctx):
    a = node.attrs
    size = int(a["size"])
    if size % 2 == 0:
        raise Refused(f"an even size {size} (ONNX's window is one channel later than torch's, dlspec's lrn)")
    return [_layer(node, "lrn", {"size": size, "alpha": _short(a.get("alpha", 1e-4)),
                                 "beta": _short(a.get("beta", 0.75)), "k": _short(a.get("bias", 1.0))})]
