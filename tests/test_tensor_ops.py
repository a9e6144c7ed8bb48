"""Tensor ops: located errors, split outputs by name, parameters (weight names, counts, layouts),
Keras permute cancellation, broadcasting along the right axis in Keras, ONNX with a dynamic batch."""

import numpy as np
import pytest

import dlspec
from dlspec.parity import parity, random_weights

HEAD = "dlspec: 1\nname: m\ninputs: {x: {shape: [3, 8, 8]}}\nlayers:\n"


def error_of(text):
    with pytest.raises(dlspec.SpecError) as info:
        dlspec.loads(HEAD + text, "bad.yaml")
    return str(info.value)


@pytest.mark.parametrize("body, message", [
    ("  - {type: permute, dims: [1, 2, 2]}\n",
     "bad.yaml:5:27: layers[0].dims: permute_1 (permute) on input shape (3, 8, 8): dims must be a permutation of "
     "1..3 (the sample axes; the batch stays first). Received: [1, 2, 2]"),
    ("  - {type: transpose, axes: [4, 1]}\n",
     "bad.yaml:5:29: layers[0].axes: transpose_1 (transpose) on input shape (3, 8, 8): axes must be a non-batch "
     "axis of a rank-4 tensor (batch included: 1..3 or -3..-1). Received: 4"),
    ("  - {type: slice, axis: 2, start: 5, stop: 2}\n",
     "bad.yaml:5:35: layers[0].start: slice_1 (slice) on input shape (3, 8, 8): the slice 5:2:1 of axis 2 (size 8) "
     "is empty. Received: [5, 2, 1]"),
    ("  - {type: slice, axis: 0, stop: 2}\n",
     "bad.yaml:5:25: layers[0].axis: must not be the batch axis 0. Received: 0"),
    ("  - {type: select, axis: 3, index: 8}\n",
     "bad.yaml:5:36: layers[0].index: select_1 (select) on input shape (3, 8, 8): index must lie in -8..7 (axis 3 "
     "has size 8). Received: 8"),
    ("  - {type: reduce_mean, axes: [0, 1]}\n",
     "bad.yaml:5:31: layers[0].axes: reduce_mean_1 (reduce_mean) on input shape (3, 8, 8): axes must be a non-batch "
     "axis of a rank-4 tensor (batch included: 1..3 or -3..-1). Received: 0"),
    ("  - {type: reduce_mean, axes: [2, -2]}\n",
     "bad.yaml:5:31: layers[0].axes: reduce_mean_1 (reduce_mean) on input shape (3, 8, 8): axes must not repeat an "
     "axis. Received: [2, -2]"),
    ("  - {type: reshape, shape: [24, 8]}\n  - {type: matmul, inputs: [x, reshape_1]}\n",
     "bad.yaml:6:28: layers[1].inputs: matmul_1 (matmul) on input shape (3, 8, 8), (24, 8): the last axis of the "
     "first input (8) must match the second-to-last of the second (24). Received: '(N, 3, 8, 8), (N, 24, 8)'"),
    ("  - {type: flatten, name: f}\n  - {type: subtract, inputs: [f, f, f]}\n",
     "bad.yaml:6:30: layers[1].inputs: subtract_1 (subtract) on input shape (192,), (192,), (192,): subtract takes "
     "exactly two inputs. Received: 3"),
])
def test_bad_axes_and_shapes_are_located(body, message):
    assert error_of(body) == message


@pytest.mark.parametrize("body, message", [
    ("  - {type: split, name: s, axis: 1, sections: 2}\n  - {type: add, inputs: [s.0, s.1]}\n",
     "bad.yaml:5:47: layers[0].sections: s.0 (slice) on input shape (3, 8, 8): axis 1 of size 3 does not split "
     "into 2 equal sections. Received: 2"),
    ("  - {type: split, name: s, axis: 2, sizes: [3, 4]}\n  - {type: add, inputs: [s.0, s.1]}\n",
     "bad.yaml:5:44: layers[0].sizes: s.0 (slice) on input shape (3, 8, 8): sizes must add up to the size of "
     "axis 2, 8. Received: [3, 4]"),
    ("  - {type: split, name: s, axis: 2, sections: 2}\n  - {type: flatten}\n",
     "bad.yaml:6:5: layers[1]: the previous layer is split 's' with 2 outputs; name one in `inputs` (s.0 .. s.1). "
     "Received: {'type': 'flatten'}"),
    ("  - {type: split, name: s, axis: 2, sections: 2}\n  - {type: flatten, inputs: [s]}\n",
     "bad.yaml:6:30: layers[1].inputs[0]: 's' is a split with 2 outputs; name one of them (s.0 .. s.1). "
     "Received: 's'"),
    ("  - {type: split, name: s, axis: 2, sections: 2, sizes: [4, 4]}\n",
     "bad.yaml:5:47: layers[0].sections: give exactly one of `sections` and `sizes`. Received: 2"),
])
def test_split_errors_are_located(body, message):
    assert error_of(body) == message


@pytest.mark.parametrize("body, message", [
    ("  - {type: parameter, name: p, shape: [8]}\n  - {type: dense, units: 2, inputs: [p]}\n",
     "bad.yaml:6:37: layers[1].inputs: dense_1 (dense) on input shape (8,): dense reads batched values only, and "
     "'p' is a parameter (no batch axis); parameters feed add, subtract, multiply, divide, concat and matmul. "
     "Received: 'p'"),
    ("  - {type: parameter, name: p, shape: [8], inputs: [x]}\n",
     "bad.yaml:5:52: layers[0].inputs: a parameter takes no inputs. Received: ['x']"),
    ("  - {type: parameter, name: p, shape: [2, 3, 8, 8]}\n  - {type: add, inputs: [x, p]}\n",
     "bad.yaml:6:25: layers[1].inputs: add_1 (add) on input shape (3, 8, 8), (2, 3, 8, 8): a parameter broadcast "
     "against batched values of rank 4 may have at most 4 axes, with size 1 on the batch axis. "
     "Received: '(N, 3, 8, 8), (2, 3, 8, 8)'"),
    ("  - {type: parameter, name: p, shape: [3, 1, 2]}\n  - {type: multiply, inputs: [x, p]}\n",
     "bad.yaml:6:30: layers[1].inputs: multiply_1 (multiply) on input shape (3, 8, 8), (3, 1, 2): shapes do not "
     "broadcast (numpy rule, right-aligned): axis 3 has sizes [2, 8]. Received: '(N, 3, 8, 8), (3, 1, 2)'"),
    ("  - {type: parameter, name: p, shape: [2, 3, 8, 8]}\n  - {type: concat, inputs: [p, x], axis: 1}\n",
     "bad.yaml:6:28: layers[1].inputs: concat_1 (concat) on input shape (2, 3, 8, 8), (3, 8, 8): concat takes a "
     "parameter whose leading axis has size 1 (it is expanded over the batch). Received: '(2, 3, 8, 8), "
     "(N, 3, 8, 8)'"),
])
def test_parameter_errors_are_located(body, message):
    assert error_of(body) == message


def test_a_parameter_cannot_be_a_model_output():
    text = HEAD.replace("layers:", "outputs: [p, f]\nlayers:") + ("  - {type: flatten, name: f}\n"
                                                                   "  - {type: parameter, name: p, shape: [8]}\n")
    with pytest.raises(dlspec.SpecError) as info:
        dlspec.loads(text, "bad.yaml")
    assert str(info.value) == ("bad.yaml:7:5: layers[1]: p is a parameter (no batch axis) and cannot be a model "
                               "output. Received: 'p'")


SPLIT_IN_BLOCK = """\
dlspec: 1
name: shuffle
inputs: {x: {shape: [4, 5, 6]}}
blocks:
  unit:
    layers:
      - {name: s, type: split, axis: 1, sizes: [1, 3]}
      - {name: act, type: activation, activation: relu, inputs: [s.1]}
      - {name: out, type: concat, inputs: [act, s.0], axis: 1}
layers:
  - {name: stage, type: block, block: unit, repeat: 2}
"""


def test_split_outputs_are_referenced_by_name_inside_a_block():
    model = dlspec.loads(SPLIT_IN_BLOCK)
    assert [n.name for n in model.graph.nodes] == ["stage.0.s.0", "stage.0.s.1", "stage.0.act", "stage.0.out",
                                                   "stage.1.s.0", "stage.1.s.1", "stage.1.act", "stage.1.out"]
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(size=(2, 4, 5, 6)).astype(np.float32)
    want = x
    for _ in range(2):
        want = np.concatenate([np.maximum(want[:, 1:], 0), want[:, :1]], axis=1)
    got = dlspec.build(model, "torch")(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(got, want)
    source = dlspec.generate(model, "torch")
    assert "class Unit(nn.Module):\n" in source and "        self.stage = nn.Sequential(Unit(), Unit())" in source
    assert "        s_1 = x[:, 1:]  # <string>:7\n" in source
    assert "        out = torch.cat([out, s_0], dim=1)  # <string>:9\n" in source


PARAMS = """\
dlspec: 1
name: params
inputs: {x: {shape: [3, 4, 4]}}
blocks:
  scaled:
    layers:
      - {name: conv, type: conv2d, filters: 3, kernel: 3, padding: same}
      - {name: layer_scale, type: parameter, shape: [3, 1, 1], initializer: ones}
      - {name: scaled, type: multiply, inputs: [conv, layer_scale]}
layers:
  - {name: features.0, type: conv2d, filters: 3, kernel: 1}
  - {name: features.1, type: block, block: scaled, repeat: 1, first: scaled}
  - {name: class_token, type: parameter, shape: [1, 1, 16]}
  - {name: encoder.pos_embedding, type: parameter, shape: [1, 4, 16], initializer: normal}
  - {name: seq, type: reshape, shape: [3, 16]}
  - {name: tokens, type: concat, inputs: [class_token, seq], axis: 1}
  - {name: encoder.add, type: add, inputs: [tokens, encoder.pos_embedding]}
  - {name: head, type: select, axis: 1, index: 0}
"""


def test_parameter_weights_are_named_after_the_node_as_torchvision_does():
    model = dlspec.loads(PARAMS)
    names = model.graph.weight_names()
    assert names == ["features.0.weight", "features.0.bias", "features.1.0.conv.weight", "features.1.0.conv.bias",
                     "features.1.0.layer_scale", "class_token", "encoder.pos_embedding"]
    assert [n.batched for n in model.graph.nodes if n.op == "parameter"] == [False, False, False]
    net = dlspec.build(model, "torch")
    assert sorted(net.state_dict()) == sorted(names)  # torch lists a module's own parameters first
    assert net.state_dict()["features.1.0.layer_scale"].shape == (3, 1, 1)
    assert model.graph.param_count() == 12 + 84 + 3 + 16 + 64
    from dlspec.summary import summary

    assert "Total params: 179" in summary(model)
    from dlspec.summary import rows

    row = next(r for r in rows(model) if r["name"] == "class_token")
    assert (row["type"], row["output_shape"], row["params"]) == ("parameter", [1, 1, 16], 16)  # no batch axis
    assert "self.class_token = nn.Parameter(torch.zeros(1, 1, 16))" in dlspec.generate(model, "torch")


def test_parameter_weights_round_trip_through_keras():
    from dlspec.backends.keras import export_weights

    model = dlspec.loads(PARAMS)
    weights = random_weights(model, 1)
    keras_model = dlspec.build(model, "keras", weights)
    back = export_weights(keras_model, model.graph)
    assert sorted(back) == sorted(weights)
    for name in weights:
        np.testing.assert_array_equal(back[name], weights[name])
    assert parity(model, batch=2, seed=0).ok


CONVNEXT = """\
dlspec: 1
name: cnblock
inputs: {x: {shape: [4, 7, 6]}}
layers:
  - {name: dwconv, type: conv2d, filters: 4, kernel: 7, padding: 3, groups: 4}
  - {type: permute, dims: [2, 3, 1]}
  - {type: layernorm, eps: 1.0e-6}
  - {type: dense, units: 8, activation: gelu}
  - {type: dense, units: 4}
  - {type: permute, dims: [3, 1, 2]}
  - {name: layer_scale, type: parameter, shape: [4, 1, 1], initializer: ones}
  - {name: scaled, type: multiply, inputs: [permute_2, layer_scale]}
  - {type: add, inputs: [scaled, x]}
  - {type: conv2d, filters: 4, kernel: 1}
"""


def test_keras_cancels_the_permutes_around_a_channels_last_section():
    model = dlspec.loads(CONVNEXT)
    source = dlspec.generate(model, "keras")
    # only the model's own boundary: NCHW -> NHWC at the input, NHWC -> NCHW at the output
    assert source.count("keras.layers.Permute(") == 2
    assert "    permute_1 = dwconv  # <string>:6\n" in source
    assert "    permute_2 = dense_2  # <string>:10\n" in source
    assert parity(model, batch=3, seed=1).ok


def test_keras_keeps_a_permute_the_layout_does_not_absorb():
    model = dlspec.loads(CONVNEXT.replace("dims: [2, 3, 1]", "dims: [3, 2, 1]").replace("dims: [3, 1, 2]",
                                                                                        "dims: [3, 2, 1]"))
    source = dlspec.generate(model, "keras")
    # the input's, the two user permutes (the second straight to channels-last for the add and conv), the output's
    assert source.count("keras.layers.Permute(") == 4
    assert parity(model, batch=2, seed=1).ok


def test_keras_broadcasts_a_channel_parameter_along_channels_of_a_channels_last_value():
    """[C, 1, 1] times a conv output that Keras holds as (N, H, W, C): y[n, c] = x[n, c] * p[c]."""
    model = dlspec.loads("dlspec: 1\nname: ls\ninputs: {x: {shape: [3, 4, 5]}}\nlayers:\n"
                         "  - {name: conv, type: conv2d, filters: 3, kernel: 1}\n"
                         "  - {name: p, type: parameter, shape: [3, 1, 1]}\n"
                         "  - {type: multiply, inputs: [conv, p]}\n")
    p = np.array([2.0, -3.0, 0.5], np.float32).reshape(3, 1, 1)
    weights = {"conv.weight": np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1),
               "conv.bias": np.zeros(3, np.float32), "p": p}
    x = np.random.default_rng(0).normal(size=(2, 3, 4, 5)).astype(np.float32)
    keras_model = dlspec.build(model, "keras", weights)
    got = np.asarray(keras_model(x, training=False))
    np.testing.assert_allclose(got, x * p, rtol=1e-6)


def test_onnx_lowering_of_tensor_ops_checks_and_runs_at_any_batch():
    import onnx
    import onnxruntime as ort

    model = dlspec.loads(PARAMS)
    weights = random_weights(model, 2)
    proto = dlspec.build(model, "onnx", weights)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    net = dlspec.build(model, "torch", weights)
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    torch = pytest.importorskip("torch")
    for batch in (1, 4):
        x = np.random.default_rng(batch).normal(size=(batch, 3, 4, 4)).astype(np.float32)
        (got,) = session.run(None, {"x": x})
        with torch.no_grad():
            want = net(torch.from_numpy(x)).numpy()
        assert got.shape == (batch, 16)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


TRAINED = """\
dlspec: 1
name: tokens
inputs: {image: {shape: [1, 8, 8]}}
freeze: [pos]
layers:
  - {name: conv1, type: conv2d, filters: 8, kernel: 3, padding: same}
  - {name: ls, type: parameter, shape: [8, 1, 1], initializer: ones}
  - {name: scaled, type: multiply, inputs: [conv1, ls]}
  - {type: permute, dims: [2, 3, 1]}
  - {type: reshape, shape: [64, 8]}
  - {name: cls, type: parameter, shape: [1, 1, 8], initializer: normal}
  - {name: pos, type: parameter, shape: [1, 65, 8], initializer: normal}
  - {name: tokens, type: concat, inputs: [cls, reshape_1], axis: 1}
  - {name: embedded, type: add, inputs: [tokens, pos]}
  - {type: split, name: s, axis: 1, sizes: [1, 64]}
  - {type: reduce_mean, axes: [1], inputs: [s.1]}
  - {type: dense, units: 10}
train: {loss: cross_entropy, optimizer: {type: adam, lr: 1.0e-2}, epochs: 1, batch_size: 64, seed: 0}
"""


def test_parameters_train_and_a_frozen_parameter_stays(tmp_path):
    import subprocess

    from conftest import PYTHON

    (tmp_path / "tokens.yaml").write_text(TRAINED)
    result = subprocess.run([PYTHON, "-m", "dlspec", "train", str(tmp_path / "tokens.yaml"), "--backend", "torch",
                             "--data", "digits", "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    model = dlspec.load(tmp_path / "tokens.yaml")
    before = dlspec.init_weights(model, 0)
    after = dlspec.load_weights(tmp_path / "out" / "weights.safetensors", model)
    assert np.array_equal(after["pos"], before["pos"])
    assert not np.array_equal(after["ls"], before["ls"])


def test_roll_is_refused_with_located_errors(spec_file):
    """roll pairs one axis with each shift, never the batch axis, never one axis twice."""
    head = "dlspec: 1\nname: m\ninputs:\n  x: {shape: [3, 4]}\nlayers:\n"
    cases = {
        "  - {type: roll, shifts: [1, 2], axes: [1]}\n":
            "bad.yaml:6:40: layers[0].axes: must give one axis per shift (2). Received: [1]",
        "  - {type: roll, shifts: [1], axes: [0]}\n":
            "bad.yaml:6:37: layers[0].axes: roll_1 (roll) on input shape (3, 4): axes must be a non-batch axis of "
            "a rank-3 tensor (batch included: 1..2 or -2..-1). Received: 0",
        "  - {type: roll, shifts: [1, 1], axes: [1, -2]}\n":
            "bad.yaml:6:40: layers[0].axes: roll_1 (roll) on input shape (3, 4): axes must not repeat an axis. "
            "Received: [1, -2]",
    }
    for body, message in cases.items():
        with pytest.raises(dlspec.SpecError) as info:
            dlspec.load(spec_file(head + body, "bad.yaml"))
        assert str(info.value).replace(str(info.value.loc.file).rsplit("/", 1)[0] + "/", "") == message


def test_torch_slices_say_where_they_end():
    """A slice that runs to the end at the spec's size is written to the end (`x[:, 1::2]`, as one writes
    it), so the module slices right at other sizes (swin's patch merging); a stop the spec gives that cuts
    elements stays, as do the parts of a split."""
    torch = pytest.importorskip("torch")
    model = dlspec.loads("dlspec: 1\nname: m\ninputs: {x: {shape: [7, 6]}}\nlayers:\n"
                         "  - {name: odd, type: slice, axis: 1, start: 1, step: 2}\n"
                         "  - {name: cut, type: slice, axis: 2, stop: 4, step: 2, inputs: [x]}\n"
                         "  - {name: past, type: slice, axis: 2, stop: 60, inputs: [x]}\n"
                         "  - {name: parts, type: split, axis: 2, sections: 3, inputs: [x]}\n"
                         "  - {name: cat, type: concat, axis: 2, inputs: [parts.0, parts.2]}\n"
                         "outputs: [odd, cut, past, cat]\n")
    source = dlspec.generate(model, "torch")
    for line in ("= x[:, 1::2]  #", "= x[:, :, :3:2]  #", "= x[:, :, :]  #", "= x[:, :, :2]  #", "= x[:, :, 4:]  #"):
        assert line in source, line
    x = torch.randn(2, 9, 10)  # another size than the spec's
    odd, cut, past, _ = dlspec.build(model, "torch")(x)
    assert torch.equal(odd, x[:, 1::2]) and torch.equal(cut, x[:, :, :3:2]) and torch.equal(past, x)
