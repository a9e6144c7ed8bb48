"""Swin-T equals torchvision's swin_t in torch, Keras and onnxruntime, weight for weight (its window attention
with the relative position index imported as a buffer), and is counted as torchvision counts it; the
window_attention op refuses what it cannot mean with located errors, and its integer buffer survives training."""

import importlib.util
import subprocess

import numpy as np
import pytest
from conftest import PYTHON, SPECS
from test_zoo import TRAIN_STEP, check_against_torchvision

import dlspec


def test_swin_t_equals_torchvision(tmp_path):
    diffs = check_against_torchvision("swin_t", tmp_path)
    assert set(diffs) == {"torch", "keras", "onnx"}


@pytest.mark.parametrize("size", ["64, 64", "72, 104"])
def test_swin_t_training_gradients_equal_torchvision_at_other_sizes(size):
    """At 64x64 (a 4x4 map in stage 3, padded to one 7x7 window) the generated module applies torchvision's shift
    rule itself, and stochastic depth draws as torchvision's: one training step's gradients are equal. At 72x104
    the maps are 18x26, 9x13 and 5x7: patch merging pads odd sizes to even ones at run time, as torchvision's.
    Tensors are compared by name (PatchMerging registers reduction before norm) and the int64 index enters as
    float32."""
    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torchvision is not installed")
    step = TRAIN_STEP.replace("v.numpy()", "v.float().numpy()").replace(
        "for a, b in zip(ours.parameters(), reference.parameters()))",
        "for a, b in ((p, reference.get_parameter(n)) for n, p in ours.named_parameters()))").replace("64, 64", size)
    assert step.count("named_parameters") == 1 and "float()" in step and f"randn(4, 3, {size})" in step
    result = subprocess.run([PYTHON, "-c", step, "swin_t", str(SPECS / "swin_t.yaml")], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout) <= 1e-4


def test_swin_t_counts_parameters_and_buffers_as_torchvision():
    """28,288,354 parameters; the buffers are the 12 blocks' relative_position_index, 49 * 49 each."""
    model = dlspec.load(SPECS / "swin_t.yaml")
    sizes = [(int(np.prod(p.shape)), p.trainable) for n in model.graph.nodes for p in n.params]
    assert sum(s for s, trainable in sizes if trainable) == 28_288_354
    assert sum(s for s, trainable in sizes if not trainable) == 12 * 49 * 49 == 28_812


def test_relative_position_index_is_torchvision_s():
    """(yi - yj + wh - 1)(2 ww - 1) + (xi - xj + ww - 1) over (query, key) pairs, tokens row-major: for a 2x3
    window, token 0 = (0, 0) against token 5 = (1, 2) is (0 - 1 + 1) * 5 + (0 - 2 + 2) = 0."""
    model = dlspec.loads("dlspec: 1\nname: m\ninputs:\n  x: {shape: [4, 6, 2]}\nlayers:\n"
                         "  - {name: attn, type: window_attention, heads: 1, window: [2, 3]}\n")
    from dlspec.ir.swin import relative_position_index

    index = np.array(relative_position_index((2, 3))).reshape(6, 6)
    assert index[0, 5] == 0 and index[5, 0] == 14 and index.max() == 14 and set(np.diag(index)) == {7}
    assert np.array_equal(dlspec.init_weights(model)["attn.relative_position_index"], index.flatten())


def test_window_attention_is_refused_with_located_errors(spec_file):
    head = "dlspec: 1\nname: m\ninputs:\n  x: {shape: [4, 6, 6]}\nlayers:\n"
    cases = {
        "  - {type: window_attention, heads: 2, window: 3, shift: 3}\n":
            "bad.yaml:6:58: layers[0].shift: must be smaller than the window [3, 3] on each axis. Received: 3",
        "  - {type: window_attention, heads: 2, window: [4, 3], shift: [1, 3]}\n":
            "bad.yaml:6:63: layers[0].shift: must be smaller than the window [4, 3] on each axis. Received: [1, 3]",
        "  - {type: window_attention, heads: 4, window: 3}\n":
            "bad.yaml:6:37: layers[0].heads: window_attention_1 (window_attention) on input shape (4, 6, 6): heads "
            "must divide the channels (6). Received: 4",
        "  - {type: flatten}\n  - {type: window_attention, heads: 2, window: 3}\n":
            "bad.yaml:7:5: layers[1]: window_attention_1 (window_attention) on input shape (144,): window_attention "
            "needs [H, W, C] samples (channels last). Received: (144,)",
    }
    for body, message in cases.items():
        with pytest.raises(dlspec.SpecError) as info:
            dlspec.load(spec_file(head + body, "bad.yaml"))
        assert str(info.value).replace(str(info.value.loc.file).rsplit("/", 1)[0] + "/", "") == message


TRAINED = """\
dlspec: 1
name: windows
inputs: {image: {shape: [1, 8, 8]}}
layers:
  - {name: conv1, type: conv2d, filters: 8, kernel: 3, padding: same}
  - {type: permute, dims: [2, 3, 1]}
  - {name: attn, type: window_attention, heads: 2, window: 4, shift: 2}
  - {type: permute, dims: [3, 1, 2]}
  - {type: global_avgpool}
  - {type: dense, units: 10}
train: {loss: cross_entropy, optimizer: {type: sgd, lr: 0.1}, epochs: 1, batch_size: 64, seed: 0}
"""


def test_torch_training_writes_the_integer_index_buffer_as_float32(tmp_path):
    """torch holds relative_position_index as int64 (as torchvision); the weights file holds float32."""
    (tmp_path / "windows.yaml").write_text(TRAINED)
    result = subprocess.run([PYTHON, "-m", "dlspec", "train", str(tmp_path / "windows.yaml"), "--backend", "torch",
                             "--data", "digits", "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    model = dlspec.load(tmp_path / "windows.yaml")
    after = dlspec.load_weights(tmp_path / "out" / "weights.safetensors", model)
    before = dlspec.init_weights(model)
    assert np.array_equal(after["attn.relative_position_index"], before["attn.relative_position_index"])
    assert not np.array_equal(after["attn.qkv.weight"], before["attn.qkv.weight"])
