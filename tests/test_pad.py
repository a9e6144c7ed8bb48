"""`pad`: located errors for what it refuses, the widths each backend writes, and torch's run-time widths with
`multiple` (the generated module pads right at sizes other than the spec's, as torchvision's swin does)."""

import numpy as np
import pytest

import dlspec
from dlspec.parity import parity

HEAD = "dlspec: 1\nname: m\ninputs: {x: {shape: [4, 5, 6]}}\nlayers:\n"


@pytest.mark.parametrize("layer, message", [
    ("{type: pad, axes: [1, 2], before: [1]}",
     "5:39: layers[0].before: must give one width per axis (2). Received: [1]"),
    ("{type: pad, axes: [0]}", "5:23: layers[0].axes: pad_1 (pad) on input shape (4, 5, 6): axes must be a non-batch "
                               "axis of a rank-4 tensor (batch included: 1..3 or -3..-1). Received: 0"),
    ("{type: pad, axes: [1, -3]}", "5:23: layers[0].axes: pad_1 (pad) on input shape (4, 5, 6): axes must not repeat "
                                   "an axis. Received: [1, -3]"),
    ("{type: pad, axes: [1], after: [-1]}", "5:36: layers[0].after[0]: must be at least 0. Received: -1"),
    ("{type: pad, axes: [1], multiple: 0}", "5:38: layers[0].multiple: must be a positive integer. Received: 0"),
    ("{type: pad, axes: [1, 2], after: [100000, 100000]}",
     "5:5: layers[0]: pad_1 (pad) on input shape (4, 5, 6): the output has more than 2,147,483,647 elements. "
     "Received: [100004, 100005, 6]"),
])
def test_pad_refuses_with_located_errors(spec_file, layer, message):
    with pytest.raises(dlspec.SpecError) as info:
        dlspec.load(spec_file(HEAD + f"  - {layer}\n", "bad.yaml"))
    assert str(info.value).split("bad.yaml:", 1)[1] == message


def test_output_shapes():
    model = dlspec.loads(HEAD + "  - {name: a, type: pad, axes: [1, -1], before: [1, 0], after: [2, 3]}\n"
                                "  - {name: b, type: pad, axes: [2, 3], multiple: 4}\n"
                                "  - {name: c, type: pad, axes: [2], before: [1], after: [1], multiple: 3}\n")
    assert [model.graph.shape_of(n) for n in ("a", "b", "c")] == [(7, 5, 9), (7, 8, 12), (7, 12, 12)]


def test_torch_pads_at_run_time_with_multiple():
    """Built for [4, 5, 6] and run on [4, 7, 3]: the end padding follows the size the module sees."""
    torch = pytest.importorskip("torch")
    model = dlspec.loads(HEAD + "  - {type: pad, axes: [2, 3], before: [0, 1], multiple: 2, value: 2.5}\n")
    net = dlspec.build(model, "torch")
    assert "F.pad(x, pad=(1, -(x.shape[3] + 1) % 2, 0, -x.shape[2] % 2), value=2.5)" in dlspec.generate(model, "torch")
    x = torch.randn(2, 4, 7, 3)
    y = net(x)
    assert tuple(y.shape) == (2, 4, 8, 4)
    assert torch.equal(y[:, :, :7, 1:], x) and float(y[:, :, 7].min()) == float(y[:, :, :, 0].max()) == 2.5


def test_onnx_and_keras_pad_the_physical_axes():
    """ONNX pads every axis (opset 17 has no axes input); Keras pads the channels-last value it holds after a
    convolution without a Permute: a channel pad lands on its last axis."""
    pytest.importorskip("tensorflow")
    import onnx

    model = dlspec.loads("dlspec: 1\nname: m\ninputs: {x: {shape: [3, 5, 5]}}\nlayers:\n"
                         "  - {type: conv2d, filters: 4, kernel: 3}\n"
                         "  - {name: p, type: pad, axes: [1, 3], before: [2, 0], after: [0, 1]}\n")
    proto = dlspec.build(model, "onnx")
    onnx.checker.check_model(proto, full_check=True)
    graph = proto.graph
    pads = {i.name: onnx.numpy_helper.to_array(i) for i in graph.initializer}["p/pads"]
    assert pads.tolist() == [0, 2, 0, 0, 0, 0, 0, 1]
    source = dlspec.generate(model, "keras")
    assert "p = Pad(pad_width=((0, 0), (0, 0), (0, 1), (2, 0)), name=\"p\")(conv2d_1)" in source
    outs = parity(model, batch=2, seed=0).outputs
    assert outs["torch"][0].shape == (2, 6, 3, 4)
    assert np.abs(outs["torch"][0] - outs["keras"][0]).max() <= 1e-5
    assert np.abs(outs["torch"][0] - outs["onnx"][0]).max() <= 1e-5
