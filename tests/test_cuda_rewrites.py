"""The --fp16 --optimize rewrites for onnxruntime's CUDA provider compute the same function (run here on the CPU,
in float32, where a difference can only come from the rewrite)."""

import numpy as np
import onnx
import pytest
from conftest import SPECS

import dlspec
from dlspec.backends import onnx as onnx_backend
from dlspec.backends.cuda_rewrites import space_to_depth_stem
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
