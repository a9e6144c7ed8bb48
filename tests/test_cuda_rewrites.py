"""The --fp16 --optimize rewrites for onnxruntime's CUDA provider compute the same function (run here on the CPU,
in float32, where a difference can only come from the rewrite)."""

import numpy as np
import onnx
import pytest
from conftest import SPECS

import dlspec
from dlspec.backends import onnx as onnx_backend
from dlspec.backends.cuda_rewrites import attention_bias, fuse_attention, fuse_skip_layernorm, space_to_depth_stem
from dlspec.parity import random_inputs, random_weights


def rewritten(layers, shape, rewrite, *args):
    """The float32 export of a one-input model, that export after ``rewrite``, the count it returned, and the
    outputs of both on the same random batch of 2."""
    model = dlspec.from_dict({"dlspec": 1, "name": "r", "inputs": {"x": {"shape": shape}}, "layers": layers})
    proto = dlspec.build(model, "onnx", random_weights(model, 0))
    changed = onnx.ModelProto()
    changed.CopyFrom(proto)
    count = rewrite(changed, *args)
    onnx.checker.check_model(changed, full_check=True)
    x = random_inputs(model, 2, 1)
    return changed, count, onnx_backend.run(proto, x)[0], onnx_backend.run(changed, x)[0]


@pytest.mark.parametrize("kernel,padding,blocks", [(7, 3, 4), (3, 1, 2), (4, 1, 3), (5, 0, 3), (1, 0, 1), (2, 0, 1),
                                                   (6, 2, 3)])
@pytest.mark.parametrize("shape", [[3, 16, 20], [1, 14, 14]])
def test_stem_as_pixel_blocks_is_the_convolution(kernel, padding, blocks, shape):
    """A stride-2 convolution on a few-channel input as a stride-1 one over 2x2 blocks: the same numbers for odd
    and even kernels, with and without padding, on 1 and 3 channels."""
    layers = [{"type": "conv2d", "filters": 5, "kernel": kernel, "stride": 2, "padding": padding}]
    proto, count, a, b = rewritten(layers, shape, space_to_depth_stem)
    assert count == 1
    conv = next(n for n in proto.graph.node if n.op_type == "Conv")
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in conv.attribute}
    assert (attrs["strides"], attrs["kernel_shape"]) == ([1, 1], [blocks, blocks])
    assert a.shape == b.shape
    assert np.max(np.abs(a - b)) <= 1e-5 * max(1.0, float(np.max(np.abs(a))))


def test_resnet_stem_becomes_a_4x4_convolution_on_12_channels():
    model = dlspec.load(SPECS / "resnet18.yaml")
    weights = random_weights(model, 0)
    full, half = dlspec.build(model, "onnx", weights), dlspec.build(model, "onnx", weights, fp16=True, optimize=True)
    stem = next(n for n in half.graph.node if n.op_type == "Conv")
    inits = {t.name: t for t in half.graph.initializer}
    assert list(inits[stem.input[1]].dims) == [64, 12, 4, 4]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in stem.attribute}
    assert (attrs["strides"], attrs["pads"]) == ([1, 1], [2, 2, 1, 1])
    ops = [n.op_type for n in half.graph.node]
    assert ops[:5] == ["Cast", "Reshape", "Transpose", "Reshape", "Transpose"]
    x = random_inputs(model, 2, 0)
    a, b = onnx_backend.run(full, x)[0], onnx_backend.run(half, x)[0]
    assert 0 < np.max(np.abs(a - b)) / np.max(np.abs(a)) <= 2e-3


@pytest.mark.parametrize("layers,shape", [
    ([{"type": "conv2d", "filters": 8, "kernel": 3, "stride": 2}], [3, 15, 16]),  # odd height
    ([{"type": "conv2d", "filters": 8, "kernel": 3, "stride": 2}], [8, 16, 16]),  # 8 channels: cuDNN's own kernels
    ([{"type": "conv2d", "filters": 8, "kernel": 3, "stride": 1}], [3, 16, 16]),  # stride 1
    ([{"type": "conv2d", "filters": 8, "kernel": 3, "stride": 2, "dilation": 2}], [3, 16, 16]),
    ([{"type": "conv2d", "filters": 3, "kernel": 1}, {"type": "conv2d", "filters": 4, "kernel": 3, "stride": 2}],
     [3, 16, 16]),  # not on a model input
])
def test_stem_rewrite_leaves_other_convolutions(layers, shape):
    _, count, a, b = rewritten(layers, shape, space_to_depth_stem)
    assert count == 0 and np.array_equal(a, b)


RESIDUAL = [{"name": "proj", "type": "dense", "units": 8}, {"name": "drop", "type": "dropout", "rate": 0.1},
            {"name": "res", "type": "add", "inputs": ["drop", "x"]}, {"name": "norm", "type": "layernorm"},
            {"name": "ff", "type": "dense", "units": 8}, {"name": "res2", "type": "add", "inputs": ["ff", "res"]},
            {"name": "out", "type": "layernorm"}]


def test_skip_layernorm_is_the_residual_sum_and_norm():
    """Residual sum + LayerNorm as SkipLayerNormalization, the projection's bias taken in; where the sum is read
    again (pre-norm), the operator's fourth output carries it: the same numbers in float32."""
    proto, count, a, b = rewritten(RESIDUAL, [5, 8], fuse_skip_layernorm)
    fused = [n for n in proto.graph.node if n.op_type == "SkipLayerNormalization"]
    assert count == 2 and [n.name for n in fused] == ["norm", "out"]
    assert [len(n.input) for n in fused] == [5, 5] and fused[0].input[4] == "proj.bias"
    assert list(fused[0].output) == ["norm", "", "", "res"] and list(fused[1].output) == ["out"]
    assert {n.op_type for n in proto.graph.node} == {"MatMul", "SkipLayerNormalization"}
    assert np.max(np.abs(a - b)) <= 1e-5 * max(1.0, float(np.max(np.abs(a))))


def test_skip_layernorm_leaves_rank_4_sums():
    """SkipLayerNormalization takes 2-D or 3-D values only: a residual over (N, 4, 5, 8) keeps its operators."""
    _, count, a, b = rewritten(RESIDUAL, [4, 5, 8], fuse_skip_layernorm)
    assert count == 0 and np.array_equal(a, b)


@pytest.mark.parametrize("name", ["text_transformer", "bert_small"])
def test_skip_layernorm_in_post_norm_encoders(name):
    """Post-norm: nothing else reads the sums, so the four fused operators have no sum output."""
    model = dlspec.load(SPECS / f"{name}.yaml")
    proto = dlspec.build(model, "onnx", random_weights(model, 0))
    changed = onnx.ModelProto()
    changed.CopyFrom(proto)
    assert fuse_skip_layernorm(changed) == 4
    skips = [n for n in changed.graph.node if n.op_type == "SkipLayerNormalization"]
    assert [len(n.output) for n in skips] == [1, 1, 1, 1]
    x = random_inputs(model, 2, 0)
    a, b = onnx_backend.run(proto, x)[0], onnx_backend.run(changed, x)[0]
    assert np.max(np.abs(a - b)) <= 1e-5 * max(1.0, float(np.max(np.abs(a))))


def test_attention_projection_biases_go_to_multiheadattention():
    """The q, k and v projections' bias Adds of each fused attention become MultiHeadAttention's bias input."""
    model = dlspec.load(SPECS / "text_transformer.yaml")
    proto = dlspec.build(model, "onnx", random_weights(model, 0))
    changed = onnx.ModelProto()
    changed.CopyFrom(proto)
    assert fuse_attention(changed) == 2
    adds = [n.op_type for n in changed.graph.node].count("Add")
    assert attention_bias(changed) == 2
    onnx.checker.check_model(changed, full_check=True)
    mha = [n for n in changed.graph.node if n.op_type == "MultiHeadAttention"]
    inits = {t.name: t for t in changed.graph.initializer}
    assert [list(inits[n.input[3]].dims) for n in mha] == [[192], [192]]
    by_output = {o: n for n in changed.graph.node for o in n.output}
    assert [[by_output[i].op_type for i in n.input[:3]] for n in mha] == [["MatMul"] * 3] * 2
    # three bias Adds fewer per layer; the MatMuls (q, k, v, out and two feed-forward per layer) stay
    assert [n.op_type for n in changed.graph.node].count("Add") == adds - 2 * 3
    assert [[n.op_type for n in p.graph.node].count("MatMul") for p in (proto, changed)] == [2 * 8, 2 * 6]
    x = random_inputs(model, 2, 0)
    a, b = onnx_backend.run(proto, x)[0], onnx_backend.run(changed, x)[0]
    assert np.max(np.abs(a - b)) <= 1e-5 * max(1.0, float(np.max(np.abs(a))))
