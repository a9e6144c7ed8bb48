"""attention's key padding mask (a second input, HF's attention_mask: 0 = padding): torch, Keras and onnxruntime
agree with each other and with a numpy reference of the documented meaning, including queries whose every key
is padding; dlspec's torch attention takes torch.nn.MultiheadAttention's packed weights as they are; separate
q/k/v projections (transformers' BERT) packed into in_proj give the same result.

The group rows of the parity table have one input, so the masked cases live here, through dlspec.parity."""

import os

import numpy as np
import pytest
from conftest import SPECS

import dlspec
from dlspec.importers import transformers_to_canonical
from dlspec.parity import parity, random_weights

LOWEST = np.finfo(np.float32).min

# (T, E, heads): odd and even sizes
SIZES = [(7, 12, 3), (4, 8, 2)]


def masks(t, dtype):
    """Rows: no padding, right padding (BERT), left padding, all padding, holes."""
    rows = [np.ones(t), np.r_[np.ones(t - 2), np.zeros(2)], np.r_[np.zeros(t - 1), np.ones(1)], np.zeros(t),
            np.arange(t) % 2]
    return np.array(rows, dtype=dtype)


def masked_model(t, e, heads, causal=False, dtype="int64", name="attn"):
    return dlspec.from_dict({
        "dlspec": 1, "name": "masked", "inputs": {"x": {"shape": [t, e]}, "mask": {"shape": [t], "dtype": dtype}},
        "layers": [{"type": "attention", "name": name, "heads": heads, "causal": causal, "inputs": ["x", "mask"]}]})


def reference(x, mask, w, heads, causal, node="attn"):
    """The documented meaning in float64 numpy: masked scores become the lowest float32."""
    n, t, e = x.shape
    d = e // heads
    qkv = x.astype(np.float64) @ w[f"{node}.in_proj_weight"].T + w[f"{node}.in_proj_bias"]
    q, k, v = (part.reshape(n, t, heads, d).transpose(0, 2, 1, 3) for part in np.split(qkv, 3, axis=-1))
    scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d)
    masked = (mask == 0)[:, None, None, :]
    if causal:
        masked = masked | np.triu(np.ones((t, t), dtype=bool), 1)
    scores = np.where(masked, LOWEST, scores)
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    mixed = (p @ v).transpose(0, 2, 1, 3).reshape(n, t, e)
    return mixed @ w[f"{node}.out_proj.weight"].T + w[f"{node}.out_proj.bias"]


@pytest.mark.parametrize("dtype", ["int64", "float32"])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("t, e, heads", SIZES)
def test_mask_parity_and_meaning(t, e, heads, causal, dtype):
    model = masked_model(t, e, heads, causal, dtype)
    mask = masks(t, dtype)
    x = np.random.default_rng(1).standard_normal((len(mask), t, e)).astype(np.float32)
    weights = random_weights(model, seed=2)
    report = parity(model, weights=weights, inputs=[x, mask])
    assert report.ok, report.table()
    want = reference(x, mask, weights, heads, causal)
    for backend, (y,) in report.outputs.items():
        assert np.abs(y - want).max() <= 1e-5 * max(1.0, np.abs(want).max()), backend
    y = report.outputs["torch"][0]
    assert np.isfinite(y).all()
    # an all-padding sample averages the values uniformly: every query gets the same output
    np.testing.assert_allclose(y[3], np.broadcast_to(y[3, :1], y[3].shape), atol=1e-6)
    # padding changes the result: the mask is really applied
    assert np.abs(y[1] - reference(x[1:2], np.ones((1, t)), weights, heads, causal)[0]).max() > 1e-2


def test_fp16_onnx_keeps_all_padding_samples_finite():
    """The lowest-float32 mask value saturates at float16's -65504 instead of becoming -inf (which gives NaN)."""
    from dlspec.backends import onnx as onnx_backend

    t, e, heads = 7, 12, 3
    model = masked_model(t, e, heads)
    weights = random_weights(model, seed=2)
    mask = masks(t, "int64")
    x = np.random.default_rng(1).standard_normal((len(mask), t, e)).astype(np.float32)
    full = onnx_backend.run(dlspec.build(model, "onnx", weights), [x, mask])[0]
    half = onnx_backend.run(dlspec.build(model, "onnx", weights, fp16=True), [x, mask])[0]
    assert np.isfinite(half).all()
    assert 0 < np.abs(half - full).max() <= 2e-3 * np.abs(full).max()


def test_torch_multihead_attention_weights_and_key_padding_mask():
    """A real torch.nn.MultiheadAttention with key_padding_mask (True = ignore): its state dict is dlspec's
    canonical weights as is, and every backend reproduces it."""
    import torch

    t, e, heads = 7, 12, 3
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(e, heads, batch_first=True).eval()
    with torch.no_grad():
        mha.in_proj_bias.normal_(0.0, 0.2)
        mha.out_proj.bias.normal_(0.0, 0.2)
    mask = np.delete(masks(t, "int64"), 3, axis=0)  # torch gives NaN for an all-padding sample
    x = np.random.default_rng(0).standard_normal((len(mask), t, e)).astype(np.float32)
    with torch.no_grad():
        want = mha(*[torch.from_numpy(x)] * 3, key_padding_mask=torch.from_numpy(mask == 0),
                   need_weights=False)[0].numpy()
    weights = {f"attn.{k}": v.numpy() for k, v in mha.state_dict().items()}
    assert sorted(weights) == sorted(masked_model(t, e, heads).graph.weight_names())
    report = parity(masked_model(t, e, heads), weights=weights, inputs=[x, mask])
    assert report.ok, report.table()
    for backend, (y,) in report.outputs.items():
        assert np.abs(y - want).max() <= 1e-5, backend


def bert_self_attention(x, mask, state, heads, prefix):
    """transformers' eager BertSelfAttention + BertSelfOutput.dense, in float32 numpy: separate q, k, v
    projections and the additive mask (1 - mask) * finfo(float32).min."""
    n, t, e = x.shape
    d = e // heads

    def linear(name, h):
        return h @ state[f"{prefix}.{name}.weight"].T + state[f"{prefix}.{name}.bias"]

    q, k, v = (linear(f"self.{p}", x).reshape(n, t, heads, d).transpose(0, 2, 1, 3) for p in ("query", "key", "value"))
    scores = q @ k.transpose(0, 1, 3, 2) / np.float32(np.sqrt(d))
    scores = scores + ((1.0 - mask.astype(np.float32)) * LOWEST)[:, None, None, :]
    p = np.exp(scores - scores.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return linear("output.dense", (p @ v).transpose(0, 2, 1, 3).reshape(n, t, e))


def test_separate_qkv_packed_into_in_proj_give_the_same_result():
    t, e, heads = 7, 12, 3
    rng = np.random.default_rng(5)
    prefix = "encoder.layer.0.attention"
    state = {}
    for name in ("self.query", "self.key", "self.value", "output.dense"):
        state[f"{prefix}.{name}.weight"] = rng.normal(0.0, 0.3, (e, e)).astype(np.float32)
        state[f"{prefix}.{name}.bias"] = rng.normal(0.0, 0.2, (e,)).astype(np.float32)
    model = masked_model(t, e, heads, name=f"{prefix}.self_attn")
    weights = transformers_to_canonical(model, state)
    assert sorted(weights) == sorted(model.graph.weight_names())
    packed_w, packed_b = weights[f"{prefix}.self_attn.in_proj_weight"], weights[f"{prefix}.self_attn.in_proj_bias"]
    np.testing.assert_array_equal(packed_w[e:2 * e], state[f"{prefix}.self.key.weight"])
    np.testing.assert_array_equal(packed_b[2 * e:], state[f"{prefix}.self.value.bias"])
    mask = masks(t, "int64")
    x = rng.standard_normal((len(mask), t, e)).astype(np.float32)
    want = bert_self_attention(x, mask, state, heads, prefix)
    report = parity(model, weights=weights, inputs=[x, mask])
    assert report.ok, report.table()
    for backend, (y,) in report.outputs.items():
        assert np.abs(y - want).max() <= 1e-5 * max(1.0, np.abs(want).max()), backend


def test_transformers_rule_names_a_missing_projection():
    model = masked_model(4, 8, 2, name="layer.attention.self_attn")
    with pytest.raises(dlspec.DataError, match="^bert.pth: missing tensor 'layer.attention.self.query.weight', "
                                               "which the attention rule needs$"):
        transformers_to_canonical(model, {}, "bert.pth")


def test_repeated_block_passes_the_mask_to_every_instance():
    model = dlspec.from_dict({
        "dlspec": 1, "name": "m", "inputs": {"x": {"shape": [4, 8]}, "mask": {"shape": [4], "dtype": "int64"}},
        "blocks": {"enc": {"inputs": ["h", "m"], "layers": [
            {"type": "attention", "name": "attn", "heads": 2, "inputs": ["h", "m"]},
            {"type": "add", "name": "res", "inputs": ["attn", "h"]}]}},
        "layers": [{"type": "block", "name": "layer", "block": "enc", "repeat": 3, "inputs": ["x", "mask"]}]})
    inputs = {n.name: n.inputs for n in model.graph.nodes if n.op == "attention"}
    assert inputs == {"layer.0.attn": ("x", "mask"), "layer.1.attn": ("layer.0.res", "mask"),
                      "layer.2.attn": ("layer.1.res", "mask")}


HEAD = "dlspec: 1\nname: m\ninputs:\n  x: {shape: [5, 8]}\n  mask: {shape: [%s], dtype: %s}\nlayers:\n"


@pytest.mark.parametrize("mask, layer, message", [
    ("4", "{type: attention, heads: 2, inputs: [x, mask]}",
     "bad.yaml:7:41: layers[0].inputs: attention_1 (attention) on input shape (5, 8), (4,): the key padding mask "
     "must have shape [5] (one entry per key). Received: (4,)"),
    ("5", "{type: attention, heads: 2, inputs: [x, mask, mask]}",
     "bad.yaml:7:41: layers[0].inputs: attention_1 (attention) on input shape (5, 8), (5,), (5,): attention takes "
     "the sequence and an optional key padding mask. Received: 3"),
    ("5", "{type: attention, heads: 2, inputs: [mask, x]}",
     "bad.yaml:7:41: layers[0].inputs: attention_1 (attention) needs float32 input, but 'mask' is int64. "
     "Received: 'mask'"),
])
def test_mask_errors(spec_file, mask, layer, message):
    path = spec_file(HEAD % (mask, "int64") + f"  - {layer}\n", "bad.yaml")
    with pytest.raises(dlspec.SpecError) as info:
        dlspec.load(path)
    assert str(info.value).replace(str(path.parent) + os.sep, "") == message


def test_masked_attention_runs_in_half_precision_torch():
    """The key padding mask takes the dtype of x, so the generated model still runs after .bfloat16()."""
    import torch

    from dlspec.parity import random_inputs, random_weights

    model = dlspec.load(SPECS / "bert_small.yaml")
    net = dlspec.build(model, "torch", random_weights(model, 0)).eval()
    args = [torch.from_numpy(a) for a in random_inputs(model, 2, 0)]
    with torch.no_grad():
        ref = net(*args)
        half = net.to(torch.bfloat16)(*args)
    for a, b in zip(half, ref):
        assert a.dtype == torch.bfloat16
        assert float((a.float() - b).abs().max()) <= 0.1  # bf16 keeps 8 bits of mantissa
