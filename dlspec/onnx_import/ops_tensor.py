"""Converters for shape, arithmetic, reduction and normalisation ops (see :mod:`.ops` for the contract)."""

from __future__ import annotations

import numpy as np

from .layers import Layer, Refused
from .ops import _layer, _needs_const, _short, converter


@converter("Flatten")
def _flatten(node, ctx):
    if node.attrs.get("axis", 1) != 1:
        raise Refused(f"axis={node.attrs['axis']} (dlspec flattens everything after the batch)")
    return [_layer(node, "flatten", {})]


@converter("Reshape")
def _reshape(node, ctx):
    src, out = ctx.shape(node.inputs[0]), ctx.shape(node.outputs[0])
    if src is None or out is None:
        raise Refused("the target shape is not static")
    if out[0] != src[0]:
        raise Refused(f"the batch axis changes ({src[0]} -> {out[0]})")
    if len(out) == 2 and len(src) > 2:
        return [_layer(node, "flatten", {})]
    if tuple(out) == tuple(src):
        return []
    return [_layer(node, "reshape", {"shape": [int(d) for d in out[1:]]})]


@converter("Squeeze", "Unsqueeze")
def _squeeze(node, ctx):
    src, out = ctx.shape(node.inputs[0]), ctx.shape(node.outputs[0])
    if src is None or out is None or not src or not out or out[0] != src[0]:
        raise Refused("the shapes are not static, or the batch axis changes")
    if len(out) == 2 and len(src) > 2:
        return [_layer(node, "flatten", {})]
    return [_layer(node, "reshape", {"shape": [int(d) for d in out[1:]]})]


@converter("Transpose")
def _transpose(node, ctx):
    perm = list(node.attrs.get("perm", []))
    if not perm or perm[0] != 0:
        raise Refused(f"perm {perm} moves the batch axis")
    moved = [i for i, p in enumerate(perm) if p != i]
    if len(moved) == 2:  # a swap of two axes is torch.transpose
        return [_layer(node, "transpose", {"axes": moved})]
    return [_layer(node, "permute", {"dims": [int(p) for p in perm[1:]]})]


@converter("Concat")
def _concat(node, ctx):
    """A constant operand of shape (1, ...) at the output's rank (ViT's class token, whose Expand to the batch was
    folded at batch 1) becomes a `parameter`, which concat expands over the batch."""
    rank = len(ctx.shape(node.outputs[0]))
    axis = node.attrs["axis"] % rank
    if axis == 0:
        raise Refused("concatenation along the batch axis")
    layers, inputs = [], []
    for i, value in enumerate(node.inputs):
        c = ctx.const(value)
        if c is None:
            inputs.append(value)
            continue
        if c.ndim != rank or c.shape[0] != 1:
            raise Refused(f"a constant operand of shape {list(c.shape)} (dlspec expands a parameter of shape "
                          "[1, ...] over the batch)")
        name = f"{node.outputs[0]}/const{i}"
        layers.append(Layer("parameter", {"shape": [int(d) for d in c.shape]}, [], name,
                            {"": c.astype(np.float32)}, [f"{node.op} {node.name or node.outputs[0]}"],
                            value if value in ctx.graph.initializer_names else f"{node.name or node.outputs[0]}_const",
                            origin=ctx.origin(value)))
        inputs.append(name)
    if len(layers) == len(node.inputs):
        raise Refused("every operand is constant")
    return layers + [_layer(node, "concat", {"axis": axis}, inputs)]


def _reduce(node, ctx, type_):
    rank = len(ctx.shape(node.inputs[0]))
    if "axes" in node.attrs:
        axes = list(node.attrs["axes"])
    elif len(node.inputs) > 1 and node.inputs[1]:
        axes = [int(v) for v in _needs_const(node, ctx, 1, "the axes")]
    else:
        axes = list(range(rank))
    axes = sorted(a % rank for a in axes)
    if 0 in axes:
        raise Refused("a reduction over the batch axis")
    keep = bool(node.attrs.get("keepdims", 1))
    return [_layer(node, type_, {"axes": axes, "keepdims": keep})]


converter("ReduceMean")(lambda node, ctx: _reduce(node, ctx, "reduce_mean"))
converter("ReduceMax")(lambda node, ctx: _reduce(node, ctx, "reduce_max"))
converter("ReduceSum")(lambda node, ctx: _reduce(node, ctx, "reduce_sum"))


@converter("LayerNormalization")
def _layernorm(node, ctx):
    rank = len(ctx.shape(node.inputs[0]))
    axis = node.attrs.get("axis", -1) % rank
    if axis == 0:
        raise Refused("normalisation over the batch axis")
    scale = _needs_const(node, ctx, 1, "the scale")
    norm_shape = ctx.shape(node.inputs[0])[axis:]
    bias = ctx.const(node.inputs[2]) if len(node.inputs) > 2 and node.inputs[2] else np.zeros(norm_shape, np.float32)
    attrs = {"axes": list(range(axis, rank)) if axis != rank - 1 else [-1]}
    eps = node.attrs.get("epsilon", 1e-5)
    if abs(np.float32(eps) - np.float32(1e-5)) > 0:
        attrs["eps"] = _short(eps)
    weights = {"weight": np.broadcast_to(scale, norm_shape).astype(np.float32),
               "bias": np.broadcast_to(bias, norm_shape).astype(np.float32)}
    return [_layer(node, "layernorm", attrs, weights=weights, hint=node.inputs[1])]


ARITHMETIC = {"Add": "add", "Sum": "add", "Mul": "multiply", "Sub": "subtract", "Div": "divide"}


@converter(*ARITHMETIC)
def _arithmetic(node, ctx):
    """Elementwise arithmetic. A constant operand becomes a `parameter` node (later folded into a batchnorm or a
    dense before it where that is exact)."""
    layers, inputs = [], []
    for i, value in enumerate(node.inputs):
        c = ctx.const(value)
        if c is None:
            inputs.append(value)
            continue
        batched = len(ctx.shape(node.outputs[0]))
        c = c.astype(np.float32)
        while c.ndim > batched - 1 and c.shape[0] == 1 and c.ndim > 1:  # no batch axis in a parameter
            c = c[0]
        if c.ndim >= batched:
            raise Refused(f"a constant of shape {list(c.shape)} that varies over the batch axis")
        name = f"{node.outputs[0]}/const{i}"
        layers.append(Layer("parameter", {"shape": [int(d) for d in c.shape] or [1]}, [], name,
                            {"": c.reshape(c.shape or (1,))}, [f"{node.op} {node.name or node.outputs[0]}"],
                            value if value in ctx.graph.initializer_names else f"{node.name or node.outputs[0]}_const",
                            origin=ctx.origin(value)))
        inputs.append(name)
    if not any(ctx.const(v) is None for v in node.inputs):
        raise Refused("every operand is constant")
    if len(inputs) == 1:  # Sum of one input
        return []
    return layers + [_layer(node, ARITHMETIC[node.op], {}, inputs)]


@converter("Slice")
def _slice(node, ctx):
    rank = len(ctx.shape(node.inputs[0]))
    if ctx.opset < 10:
        starts, ends = list(node.attrs["starts"]), list(node.attrs["ends"])
        axes, steps = list(node.attrs.get("axes", range(len(starts)))), [1] * len(starts)
    else:
        starts = [int(v) for v in _needs_const(node, ctx, 1, "starts")]
        ends = [int(v) for v in _needs_const(node, ctx, 2, "ends")]
        axes = [int(v) for v in _needs_const(node, ctx, 3, "axes")] if len(node.inputs) > 3 and node.inputs[3] \
            else list(range(len(starts)))
        steps = [int(v) for v in _needs_const(node, ctx, 4, "steps")] if len(node.inputs) > 4 and node.inputs[4] \
            else [1] * len(starts)
    layers, x, big = [], node.inputs[0], 2 ** 62
    cuts = [(a % rank, s, e, st) for a, s, e, st in zip(axes, starts, ends, steps)]
    if any(a == 0 for a, *_ in cuts) or any(st < 1 for *_, st in cuts):
        raise Refused("a slice of the batch axis, or a negative step")
    for i, (axis, start, end, step) in enumerate(cuts):
        attrs = {"axis": axis}
        if start:
            attrs["start"] = start
        if end < big and not (end >= ctx.shape(node.inputs[0])[axis] and end > 0):
            attrs["stop"] = end
        if step != 1:
            attrs["step"] = step
        out = node.outputs[0] if i == len(cuts) - 1 else f"{node.outputs[0]}/axis{axis}"
        layers.append(_layer(node, "slice", attrs, [x], output=out))
        x = out
    return layers


@converter("dlspec:attention")
def _attention(node, ctx):
    """The region :mod:`.attention` recognised: one `attention` layer."""
    names = ("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias")
    weights = {n: ctx.const(v) for n, v in zip(names, node.inputs[1:])}
    return [Layer("attention", {"heads": int(node.attrs["heads"])}, [node.inputs[0]], node.outputs[0], weights,
                  list(node.attrs["sources"]), node.name)]


def _data_axis(node, ctx, default=0):
    shape = ctx.shape(node.inputs[0])
    if shape is None:
        raise Refused("the input's shape is not static")
    axis = node.attrs.get("axis", default) % len(shape)
    if axis == 0:
        raise Refused("the batch axis")
    return shape, axis


@converter("Gather")
def _gather(node, ctx):
    """A constant scalar index is `select`; a constant list of indices in steps of one or more is `slice`."""
    if ctx.const(node.inputs[0]) is not None:
        raise Refused("a constant table indexed by computed indices (an embedding lookup)")
    index = _needs_const(node, ctx, 1, "the index")
    shape, axis = _data_axis(node, ctx)
    idx = [int(i) % shape[axis] for i in index.reshape(-1)]
    if index.ndim == 0:
        return [_layer(node, "select", {"axis": axis, "index": idx[0]})]
    step = idx[1] - idx[0] if len(idx) > 1 else 1
    if index.ndim != 1 or step < 1 or any(b - a != step for a, b in zip(idx, idx[1:])):
        raise Refused(f"indices {index.tolist()} (dlspec takes one index, or a run with a positive step)")
    attrs = {"axis": axis}
    if idx[0]:
        attrs["start"] = idx[0]
    if idx[-1] + 1 < shape[axis]:
        attrs["stop"] = idx[-1] + 1
    if step != 1:
        attrs["step"] = step
    return [_layer(node, "slice", attrs)]


@converter("Split")
def _split(node, ctx):
    """One `slice` per used output."""
    shape, axis = _data_axis(node, ctx)
    if "split" in node.attrs:
        sizes = [int(s) for s in node.attrs["split"]]
    elif len(node.inputs) > 1 and node.inputs[1]:
        sizes = [int(s) for s in _needs_const(node, ctx, 1, "split")]
    else:  # equal parts (opset 18's num_outputs: the last one smaller when it does not divide)
        n = len(node.outputs)
        part = -(-shape[axis] // n)
        sizes = [min(part, shape[axis] - k * part) for k in range(n)]
    if sum(sizes) != shape[axis] or len(sizes) != len(node.outputs) or min(sizes) < 1:
        raise Refused(f"sizes {sizes} do not cut axis {axis} of size {shape[axis]} into {len(node.outputs)} parts")
    layers, start = [], 0
    for size, out in zip(sizes, node.outputs):
        if out and ctx.used(out):
            attrs = {"axis": axis, **({"start": start} if start else {}),
                     **({"stop": start + size} if start + size < shape[axis] else {})}
            layers.append(_layer(node, "slice", attrs, output=out, hint=out if len(node.outputs) > 1 else ""))
        start += size
    if not layers:
        raise Refused("no output is used")
    return layers





@converter("Expand")
def _expand(node, ctx):
    """Nothing, when every reader is elementwise arithmetic that broadcasts the unexpanded value to the same
    result (at the same rank: dlspec's batched operands share one rank)."""
    _needs_const(node, ctx, 1, "the shape")
    src, out = ctx.shape(node.inputs[0]), ctx.shape(node.outputs[0])
    if src is None or out is None:
        raise Refused("the shapes are not static")
    if tuple(src) == tuple(out):
        return []
    if len(src) != len(out) or src[0] != out[0]:
        raise Refused(f"an expansion from {list(src)} to {list(out)} that changes the rank or the batch axis")
    readers = ctx.reader_nodes.get(node.outputs[0], [])
    for r in readers:
        if r.op not in ARITHMETIC or node.outputs[0] in ctx.graph.outputs:
            raise Refused(f"the expanded value is read by {r.op}, which does not broadcast")
        others = [ctx.shape(i) for i in r.inputs if i != node.outputs[0]]
        if any(s is None for s in others) or \
                tuple(np.broadcast_shapes(tuple(src), *others)) != tuple(ctx.shape(r.outputs[0])):
            raise Refused(f"{r.op} {r.name or r.outputs[0]} does not broadcast to the expanded shape without it")
    if not readers or node.outputs[0] in ctx.graph.outputs:
        raise Refused("the expanded value is a model output")
    return []
