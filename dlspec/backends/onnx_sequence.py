"""ONNX emitters for sequence layers. Recurrent weights are regrouped into ONNX's gate order in the
graph (Split and Concat of the canonical initializers), which onnxruntime folds when it loads."""

from __future__ import annotations

import math

from .. import ir
from .context import EmitContext
from .onnx_emit import OnnxGraph
from .registry import emitter


@emitter("onnx", ir.sequence.Embedding)
def _embedding(ctx: EmitContext, g: OnnxGraph) -> None:
    g.add("Gather", [g.param(ctx.node, "weight"), ctx.x], ctx.node.name, ctx.node.name, axis=0)


def _slice_rows(g: OnnxGraph, tensor: str, start: int, stop: int, name: str) -> str:
    starts, ends = g.const(f"{name}/starts", [start], "int64"), g.const(f"{name}/ends", [stop], "int64")
    axes = g.const(f"{name}/axes", [0], "int64")
    return g.add("Slice", [tensor, starts, ends, axes], name, name)


@emitter("onnx", ir.sequence.PositionalEmbedding)
def _positional(ctx: EmitContext, g: OnnxGraph) -> None:
    name = ctx.node.name
    rows = _slice_rows(g, g.param(ctx.node, "weight"), 0, ctx.in_shape[0], f"{name}/positions")
    g.add("Add", [ctx.x, rows], name, name)


# torch gate order -> ONNX gate order: LSTM (i, f, g, o) -> (i, o, f, c); GRU (r, z, n) -> (z, r, h)
_ORDER = {"lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}


def _regroup(g: OnnxGraph, node, param: str, kind: str) -> str:
    n = len(_ORDER[kind])
    base = f"{node.name}.{param}"
    parts = [f"{base}/gate{i}" for i in range(n)]
    g.nodes.append(g.helper.make_node("Split", [g.param(node, param)], parts, name=f"{base}/split", axis=0,
                                      num_outputs=n) if g.opset >= 18 else
                   g.helper.make_node("Split", [g.param(node, param)], parts, name=f"{base}/split", axis=0))
    return g.add("Concat", [parts[i] for i in _ORDER[kind]], f"{base}/onnx", f"{base}/onnx", axis=0)


def _stack(g: OnnxGraph, tensors: list[str], name: str) -> str:
    axes = g.const(f"{name}/axes", [0], "int64")
    lifted = [g.add("Unsqueeze", [t, axes], f"{t}/lifted", f"{t}/lifted") for t in tensors]
    return lifted[0] if len(lifted) == 1 else g.add("Concat", lifted, name, name, axis=0)


def _recurrent(kind: str):
    def emit(ctx: EmitContext, g: OnnxGraph) -> None:
        node, a, name = ctx.node, ctx.node.attrs, ctx.node.name
        suffixes = ("_l0", "_l0_reverse") if a["bidirectional"] else ("_l0",)
        w = _stack(g, [_regroup(g, node, f"weight_ih{s}", kind) for s in suffixes], f"{name}/W")
        r = _stack(g, [_regroup(g, node, f"weight_hh{s}", kind) for s in suffixes], f"{name}/R")
        biases = []
        for s in suffixes:
            pair = [_regroup(g, node, f"bias_{x}{s}", kind) for x in ("ih", "hh")]
            biases.append(g.add("Concat", pair, f"{name}/B{s}", f"{name}/B{s}", axis=0))
        b = _stack(g, biases, f"{name}/B")
        attrs = {"hidden_size": a["units"], "direction": "bidirectional" if a["bidirectional"] else "forward"}
        if kind == "gru":
            attrs["linear_before_reset"] = 1  # torch's GRU
        op = "LSTM" if kind == "lstm" else "GRU"
        outs = [f"{name}/Y", f"{name}/Y_h"]
        # onnxruntime implements only the time-major layout: (T, N, features)
        x = g.add("Transpose", [ctx.x], f"{name}/time_major", f"{name}/time_major", perm=[1, 0, 2])
        g.nodes.append(g.helper.make_node(op, [x, w, r, b], outs, name=f"{name}/{op.lower()}", **attrs))
        width = a["units"] * len(suffixes)
        if a["return_sequences"]:  # Y is (T, directions, N, units)
            y = g.add("Transpose", [outs[0]], f"{name}/Y_t", f"{name}/Y_t", perm=[2, 0, 1, 3])
            g.add("Reshape", [y, g.const(f"{name}/shape", [0, 0, width], "int64")], name, name)
        else:  # Y_h is (directions, N, units)
            y = g.add("Transpose", [outs[1]], f"{name}/Y_h_t", f"{name}/Y_h_t", perm=[1, 0, 2])
            g.add("Reshape", [y, g.const(f"{name}/shape", [0, width], "int64")], name, name)

    return emit


emitter("onnx", ir.sequence.LSTM)(_recurrent("lstm"))
emitter("onnx", ir.sequence.GRU)(_recurrent("gru"))


def _linear(g: OnnxGraph, x: str, weight: str, bias: str, name: str) -> str:
    weight_t = g.add("Transpose", [weight], f"{name}/weight_t", f"{name}/weight_t")
    y = g.add("MatMul", [x, weight_t], f"{name}/matmul", f"{name}/matmul")
    return g.add("Add", [y, bias], name, name)


@emitter("onnx", ir.sequence.Attention)
def _attention(ctx: EmitContext, g: OnnxGraph) -> None:
    node, name, (t, e) = ctx.node, ctx.node.name, ctx.in_shape
    heads = node.attrs["heads"]
    d = e // heads
    w_in, b_in = g.param(node, "in_proj_weight"), g.param(node, "in_proj_bias")
    split_heads = g.const(f"{name}/heads_shape", [0, t, heads, d], "int64")
    projected = []
    for i, part in enumerate(("q", "k", "v")):
        w = _slice_rows(g, w_in, i * e, (i + 1) * e, f"{name}/{part}_weight")
        b = _slice_rows(g, b_in, i * e, (i + 1) * e, f"{name}/{part}_bias")
        y = _linear(g, ctx.x, w, b, f"{name}/{part}")
        y = g.add("Reshape", [y, split_heads], f"{name}/{part}_heads", f"{name}/{part}_heads")
        perm = [0, 2, 3, 1] if part == "k" else [0, 2, 1, 3]  # k^T: (N, heads, d, T)
        projected.append(g.add("Transpose", [y], f"{name}/{part}_t", f"{name}/{part}_t", perm=perm))
    q, k, v = projected
    scores = g.add("MatMul", [q, k], f"{name}/scores", f"{name}/scores")
    scores = g.add("Mul", [scores, g.const(f"{name}/scale", 1.0 / math.sqrt(d))], f"{name}/scaled", f"{name}/scaled")
    if len(ctx.args) == 2:
        scores = _key_padding(ctx, g, scores)
    elif node.attrs["causal"]:
        mask = [[0.0 if j <= i else float("-inf") for j in range(t)] for i in range(t)]
        scores = g.add("Add", [scores, g.const(f"{name}/causal_mask", mask)], f"{name}/masked", f"{name}/masked")
    weights = g.add("Softmax", [scores], f"{name}/softmax", f"{name}/softmax", axis=-1)
    mixed = g.add("MatMul", [weights, v], f"{name}/mixed", f"{name}/mixed")
    mixed = g.add("Transpose", [mixed], f"{name}/mixed_t", f"{name}/mixed_t", perm=[0, 2, 1, 3])
    merged = g.add("Reshape", [mixed, g.const(f"{name}/merged_shape", [0, t, e], "int64")], f"{name}/merged",
                   f"{name}/merged")
    _linear(g, merged, g.param(node, "out_proj.weight"), g.param(node, "out_proj.bias"), name)


def _key_padding(ctx: EmitContext, g: OnnxGraph, scores: str) -> str:
    """Scores (N, heads, T, T) with every masked key's score replaced by the lowest float32."""
    import numpy as np

    name, t = ctx.node.name, ctx.in_shape[0]
    dtype = {i.name: i.dtype for i in ctx.graph.inputs}.get(ctx.node.inputs[1], "float32")
    padding = g.add("Equal", [ctx.args[1], g.const(f"{name}/zero", 0, dtype)], f"{name}/padding", f"{name}/padding")
    masked = g.add("Unsqueeze", [padding, g.const(f"{name}/mask_axes", [1, 2], "int64")], f"{name}/key_masked",
                   f"{name}/key_masked")  # (N, 1, 1, T)
    if ctx.node.attrs["causal"]:
        future = g.const(f"{name}/future", np.triu(np.ones((t, t), dtype=bool), 1), "bool")
        masked = g.add("Or", [masked, future], f"{name}/any_masked", f"{name}/any_masked")
    lowest = g.const(f"{name}/lowest", np.finfo(np.float32).min)
    return g.add("Where", [masked, lowest, scores], f"{name}/masked", f"{name}/masked")


@emitter("onnx", ir.sequence.SequenceMean)
def _sequence_mean(ctx: EmitContext, g: OnnxGraph) -> None:
    name = ctx.node.name
    if g.opset >= 18:
        g.add("ReduceMean", [ctx.x, g.const(f"{name}/axes", [1], "int64")], name, name, keepdims=0)
    else:
        g.add("ReduceMean", [ctx.x], name, name, axes=[1], keepdims=0)
