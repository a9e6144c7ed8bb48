"""Converters for pooling, padding and transposed convolution (see :mod:`.ops` for the contract)."""

from __future__ import annotations

from .layers import Refused
from .ops import _layer, _needs_const, _one, _pads, _spatial_rank, converter


def _pool(node, ctx, kind: str):
    nd = _spatial_rank(node, ctx)
    if nd not in (1, 2):
        raise Refused(f"{nd}-D pooling (dlspec pools 1-D and 2-D)")
    a = node.attrs
    kernel = list(a["kernel_shape"])
    stride = list(a.get("strides", [1] * nd))
    if any(d != 1 for d in a.get("dilations", [1] * nd)):
        raise Refused("dilated pooling")
    if a.get("storage_order", 0):
        raise Refused("storage_order=1")
    pads = _pads(node, ctx, nd, kernel, stride)
    ceil = bool(a.get("ceil_mode", 0))
    cip = bool(a.get("count_include_pad", 0)) if kind == "avg" else True
    spatial = ctx.shape(node.inputs[0])[2:]
    want = ctx.shape(node.outputs[0])[2:]
    base = {"kernel": _one(kernel)} if stride == kernel else {"kernel": _one(kernel), "stride": _one(stride)}
    if kind == "avg" and (any(b or e for b, e in pads) or ceil):
        base["count_include_pad"] = cip
    typ = f"{kind}pool{nd}d"
    if all(b == e for b, e in pads) and all(2 * b <= k for (b, _), k in zip(pads, kernel)):
        if any(b for b, _ in pads):
            base["padding"] = _one([b for b, _ in pads])
        if ceil:
            base["ceil_mode"] = True
        return [_layer(node, typ, base)]
    if kind == "avg" and cip:  # padded zeros count: pad explicitly, then pool without padding
        if ceil:
            raise Refused("ceil_mode with asymmetric padding that counts in the average")
        padded = f"{node.outputs[0]}/pad"
        return [_layer(node, "zero_pad", {"padding": [list(p) for p in pads]}, output=padded,
                       hint=f"{node.name or node.outputs[0]}_pad"),
                _layer(node, typ, base, [padded])]
    begins = [b for b, _ in pads]
    if not all(e >= b for b, e in pads) or any(2 * b > k for b, k in zip(begins, kernel)):
        raise Refused(f"padding {pads} larger at the beginning than at the end")
    # the padding never counts (max: -inf; average: excluded): torch's ceil_mode gives the same windows when it
    # gives the same output size
    torch_out = []
    for n, k, s, b in zip(spatial, kernel, stride, begins):
        o = -(-(n + 2 * b - k) // s) + 1
        if (o - 1) * s >= n + b:
            o -= 1
        torch_out.append(o)
    if tuple(torch_out) == tuple(want):
        if any(begins):
            base["padding"] = _one(begins)
        base["ceil_mode"] = True
        return [_layer(node, typ, base)]
    # the end padding on both sides, then the outputs of the extra beginning dropped (when whole strides)
    ends = [e for _, e in pads]
    if all((e - b) % s == 0 for (b, e), s in zip(pads, stride)) and all(2 * e <= k for e, k in zip(ends, kernel)) \
            and not ceil:
        out, layers, x = node.outputs[0], [], node.inputs[0]
        base["padding"] = _one(ends)
        pooled = f"{out}/pool"
        layers.append(_layer(node, typ, base, [x], output=pooled))
        cuts = [(axis + 2, (e - b) // s) for axis, ((b, e), s) in enumerate(zip(pads, stride)) if e > b]
        for i, (axis, cut) in enumerate(cuts):
            last = i == len(cuts) - 1
            target = out if last else f"{out}/crop{axis}"
            layers.append(_layer(node, "slice", {"axis": axis, "start": cut}, [layers[-1].output], output=target,
                                 hint=f"{node.name or out}_crop"))
        return layers
    raise Refused(f"asymmetric padding {pads} that dlspec's pooling cannot express exactly")


@converter("MaxPool")
def _maxpool(node, ctx):
    if len(node.outputs) > 1 and node.outputs[1] and ctx.used(node.outputs[1]):
        raise Refused("the indices output is used")
    return _pool(node, ctx, "max")


@converter("AveragePool")
def _avgpool(node, ctx):
    return _pool(node, ctx, "avg")


@converter("GlobalAveragePool")
def _gap(node, ctx):
    return [_layer(node, "adaptive_avgpool", {})]


@converter("GlobalMaxPool")
def _gmp(node, ctx):
    return [_layer(node, "adaptive_maxpool", {})]


@converter("Pad")
def _pad(node, ctx):
    mode = node.attrs.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    pads = list(node.attrs["pads"]) if ctx.opset < 11 else [int(p) for p in _needs_const(node, ctx, 1, "pads")]
    value = node.attrs.get("value", 0.0) if ctx.opset < 11 else (
        float(ctx.const(node.inputs[2])) if len(node.inputs) > 2 and node.inputs[2] else 0.0)
    n = len(pads) // 2
    axes = list(range(n))
    if len(node.inputs) > 3 and node.inputs[3]:
        rank = len(ctx.shape(node.inputs[0]))
        axes = [int(a) % rank for a in _needs_const(node, ctx, 3, "axes")]
    if mode != "constant":
        raise Refused(f"mode {mode!r} (dlspec pads with a constant)")
    if any(p < 0 for p in pads):
        raise Refused(f"negative pads {pads} (a crop)")
    widths = {a: (pads[i], pads[i + n]) for i, a in enumerate(axes) if pads[i] or pads[i + n]}
    if 0 in widths:
        raise Refused("padding of the batch axis")
    if value == 0.0 and axes == list(range(n)) and n in (3, 4) and 1 not in widths:  # spatial zeros, as a CNN pads
        return [_layer(node, "zero_pad", {"padding": [[pads[i], pads[i + n]] for i in range(2, n)]})]
    padded = sorted(widths) or [1]  # no padding at all: an identity
    attrs = {"axes": padded, "before": [widths.get(a, (0, 0))[0] for a in padded],
             "after": [widths.get(a, (0, 0))[1] for a in padded]}
    if value != 0.0:
        attrs["value"] = value
    return [_layer(node, "pad", attrs)]


@converter("ConvTranspose")
def _conv_transpose(node, ctx):
    w = _needs_const(node, ctx, 1, "the weight")
    a = node.attrs
    if w.ndim != 4 or a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1, 1])):
        raise Refused("only 2-D transposed convolutions without groups or dilation")
    if "output_shape" in a or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise Refused("output_shape or auto_pad (dlspec takes explicit padding)")
    pads = list(a.get("pads", [0, 0, 0, 0]))
    if pads[:2] != pads[2:]:
        raise Refused(f"asymmetric pads {pads}")
    attrs = {"filters": int(w.shape[1]), "kernel": _one(a.get("kernel_shape", w.shape[2:]))}
    stride = list(a.get("strides", [1, 1]))
    if any(s != 1 for s in stride):
        attrs["stride"] = _one(stride)
    if any(pads):
        attrs["padding"] = _one(pads[:2])
    out_pad = list(a.get("output_padding", [0, 0]))
    if any(o > p or o >= s for o, p, s in zip(out_pad, pads[:2], stride)):
        raise Refused(f"output_padding {out_pad} larger than the padding or the stride allows (dlspec's "
                      "conv_transpose2d: at most padding and less than stride)")
    if any(out_pad):
        attrs["output_padding"] = _one(a["output_padding"])
    weights = {"weight": w}
    if len(node.inputs) > 2 and node.inputs[2]:
        weights["bias"] = _needs_const(node, ctx, 2, "the bias")
    else:
        attrs["use_bias"] = False
    return [_layer(node, "conv_transpose2d", attrs, weights=weights, hint=node.inputs[1])]
