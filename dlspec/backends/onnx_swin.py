"""ONNX emitter for Swin's shifted-window attention, lowered directly: Pad, Slice/Concat rolls, Reshape/Transpose
window partitions, MatMul attention with the bias table gathered by the stored index, a constant mask."""

from __future__ import annotations

from .. import ir
from ..ir.swin import window_mask, windows
from .context import EmitContext
from .onnx_emit import OnnxGraph
from .registry import emitter


def _roll(g: OnnxGraph, x: str, shape, shifts, stem: str) -> str:
    """torch.roll of x (batch first) by ``shifts`` along sample axes 0 and 1: the last elements, then the rest."""
    for axis, shift in enumerate(shifts):
        size, shift = shape[axis], shifts[axis] % shape[axis]
        if not shift:
            continue
        parts = []
        for part, (start, stop) in (("tail", (size - shift, size)), ("head", (0, size - shift))):
            bounds = [g.const(f"{stem}{axis}/{part}_{key}", [v], "int64")
                      for key, v in (("starts", start), ("ends", stop), ("axes", axis + 1))]
            parts.append(g.add("Slice", [x, *bounds], f"{stem}{axis}/{part}", f"{stem}{axis}/{part}"))
        x = g.add("Concat", parts, f"{stem}{axis}", f"{stem}{axis}", axis=axis + 1)
    return x


def _linear(g: OnnxGraph, x: str, node, layer: str, name: str) -> str:
    weight_t = g.add("Transpose", [g.param(node, f"{layer}.weight")], f"{name}/weight_t", f"{name}/weight_t")
    y = g.add("MatMul", [x, weight_t], f"{name}/matmul", f"{name}/matmul")
    return g.add("Add", [y, g.param(node, f"{layer}.bias")], name, name)


@emitter("onnx", ir.swin.WindowAttention)
def _window_attention(ctx: EmitContext, g: OnnxGraph) -> None:
    node, name = ctx.node, ctx.node.name
    w = windows(node.attrs, ctx.in_shape)
    (wh, ww), (ph, pw), c, heads = w.window, w.padded, w.c, w.heads
    tokens, d = wh * ww, c // heads

    def shape(key, dims):
        return g.const(f"{name}/{key}_shape", dims, "int64")

    x = ctx.x
    if (ph, pw) != (w.h, w.w):
        pads = g.const(f"{name}/pads", [0, 0, 0, 0, 0, ph - w.h, pw - w.w, 0], "int64")
        x = g.add("Pad", [x, pads], f"{name}/padded", f"{name}/padded", mode="constant")
    x = _roll(g, x, (ph, pw), [-s for s in w.shift], f"{name}/roll")
    # windows: [N, H/wh, wh, W/ww, ww, C] -> [N, windows, tokens, C]
    x = g.add("Reshape", [x, shape("grid", [0, ph // wh, wh, pw // ww, ww, c])], f"{name}/grid", f"{name}/grid")
    x = g.add("Transpose", [x], f"{name}/grid_t", f"{name}/grid_t", perm=[0, 1, 3, 2, 4, 5])
    x = g.add("Reshape", [x, shape("windows", [0, w.count, tokens, c])], f"{name}/windows", f"{name}/windows")
    qkv = _linear(g, x, node, "qkv", f"{name}/qkv")
    qkv = g.add("Reshape", [qkv, shape("qkv", [0, w.count, tokens, 3, heads, d])], f"{name}/qkv_heads",
                f"{name}/qkv_heads")
    qkv = g.add("Transpose", [qkv], f"{name}/qkv_t", f"{name}/qkv_t", perm=[3, 0, 1, 4, 2, 5])
    q, k, v = (g.add("Gather", [qkv, g.const(f"{name}/{part}_index", i, "int64")], f"{name}/{part}", f"{name}/{part}",
                     axis=0) for i, part in enumerate("qkv"))  # each [N, windows, heads, tokens, d]
    q = g.add("Mul", [q, g.const(f"{name}/scale", d ** -0.5)], f"{name}/q_scaled", f"{name}/q_scaled")
    k = g.add("Transpose", [k], f"{name}/k_t", f"{name}/k_t", perm=[0, 1, 2, 4, 3])
    scores = g.add("MatMul", [q, k], f"{name}/scores", f"{name}/scores")
    # relative position bias [heads, tokens, tokens]: the table gathered by the stored index (folded when built)
    index = g.add("Cast", [g.param(node, "relative_position_index")], f"{name}/index", f"{name}/index", to=7)
    bias = g.add("Gather", [g.param(node, "relative_position_bias_table"), index], f"{name}/bias_rows",
                 f"{name}/bias_rows", axis=0)
    bias = g.add("Reshape", [bias, shape("bias", [tokens, tokens, heads])], f"{name}/bias_grid", f"{name}/bias_grid")
    bias = g.add("Transpose", [bias], f"{name}/bias", f"{name}/bias", perm=[2, 0, 1])
    scores = g.add("Add", [scores, bias], f"{name}/biased", f"{name}/biased")
    mask = window_mask(w)
    if mask is not None:  # [windows, 1, tokens, tokens]
        mask = g.const(f"{name}/mask", [[m] for m in mask])
        scores = g.add("Add", [scores, mask], f"{name}/masked", f"{name}/masked")
    weights = g.add("Softmax", [scores], f"{name}/softmax", f"{name}/softmax", axis=-1)
    out = g.add("MatMul", [weights, v], f"{name}/mixed", f"{name}/mixed")
    out = g.add("Transpose", [out], f"{name}/mixed_t", f"{name}/mixed_t", perm=[0, 1, 3, 2, 4])
    out = g.add("Reshape", [out, shape("merged", [0, w.count, tokens, c])], f"{name}/merged", f"{name}/merged")
    out = _linear(g, out, node, "proj", f"{name}/proj")
    out = g.add("Reshape", [out, shape("ungrid", [0, ph // wh, pw // ww, wh, ww, c])], f"{name}/ungrid",
                f"{name}/ungrid")
    out = g.add("Transpose", [out], f"{name}/ungrid_t", f"{name}/ungrid_t", perm=[0, 1, 3, 2, 4, 5])
    out = g.add("Reshape", [out, shape("unwindowed", [0, ph, pw, c])], f"{name}/unwindowed", f"{name}/unwindowed")
    out = _roll(g, out, (ph, pw), list(w.shift), f"{name}/unroll")
    if (ph, pw) == (w.h, w.w):
        g.add("Identity", [out], name, name)
        return
    bounds = [g.const(f"{name}/crop_{key}", v, "int64") for key, v in (("starts", [0, 0]), ("ends", [w.h, w.w]),
                                                                           ("axes", [1, 2]))]
    g.add("Slice", [out, *bounds], name, name)
