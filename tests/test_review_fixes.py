"""Defects found by trying dlspec as a new user would, each with the exact behaviour after its fix."""

import numpy as np
import pytest
from conftest import SPECS

import dlspec
from dlspec.train import prepare

TOKENS_SPEC = f"""\
dlspec: 1
base: {SPECS / "text_lstm.yaml"}
name: tokens_train
train:
  loss: cross_entropy
  optimizer: {{type: adam, lr: 0.01}}
  epochs: 1
"""

LABELS = np.zeros(4, np.int64)


@pytest.mark.parametrize("x, message", [
    (np.full((4, 64), 3, np.int64) + np.eye(4, 64, 5, dtype=np.int64) * 9997,
     "token 10000 (sample 0) is out of range: embedding 'embedding' has a vocabulary of 10000 (ids 0..9999)"),
    (np.full((4, 64), 3, np.int64) - np.eye(4, 64, 2, dtype=np.int64) * 4,
     "token -1 (sample 0) is out of range: embedding 'embedding' has a vocabulary of 10000 (ids 0..9999)"),
    (np.concatenate([np.ones((2, 64)), np.full((2, 64), 0.5)]),
     "input 'tokens' takes whole numbers (token ids); x_train has fractions or non-finite values (first at sample 2)"),
    (np.concatenate([np.ones((3, 64)), np.full((1, 64), np.nan)]),
     "input 'tokens' takes whole numbers (token ids); x_train has fractions or non-finite values (first at sample 3)"),
])
def test_token_ids_outside_the_vocabulary_are_named(tmp_path, x, message):
    (tmp_path / "spec.yaml").write_text(TOKENS_SPEC)
    np.savez(tmp_path / "data.npz", x_train=x, y_train=LABELS)
    with pytest.raises(dlspec.DataError) as info:
        prepare(dlspec.load(tmp_path / "spec.yaml"), str(tmp_path / "data.npz"))
    assert str(info.value) == f"{tmp_path / 'data.npz'}: {message}"


def test_whole_token_ids_in_a_float_array_are_accepted(tmp_path):
    (tmp_path / "spec.yaml").write_text(TOKENS_SPEC)
    x = np.arange(4 * 64).reshape(4, 64).astype(np.float64) * 39  # 0 .. 9945
    np.savez(tmp_path / "data.npz", x_train=x, y_train=LABELS)
    data = prepare(dlspec.load(tmp_path / "spec.yaml"), str(tmp_path / "data.npz"))
    assert data.x_train.dtype == np.int64
    assert data.x_train.max() == 9945


def _saved_module(path):
    import torch

    torch.save(torch.nn.Linear(2, 3), path)


def _saved_numpy(path):
    with open(path, "wb") as file:
        np.save(file, np.zeros(3, np.float32))


@pytest.mark.parametrize("write, why", [
    (_saved_module, "it holds a pickled torch.nn.modules.linear.Linear, not only tensors; save the model's "
                    "state_dict() with torch.save"),
    (_saved_numpy, "not a file written by torch.save, or one holding objects other than tensors"),
    (lambda path: path.write_bytes(b""), "EOFError: the file is empty or cut short"),
])
def test_unloadable_state_dicts_are_one_line(tmp_path, write, why):
    from dlspec.importers import import_torchvision

    write(tmp_path / "w.pth")
    with pytest.raises(dlspec.DataError) as info:
        import_torchvision(dlspec.load(SPECS / "mnist_mlp.yaml"), tmp_path / "w.pth")
    assert str(info.value) == f"{tmp_path / 'w.pth'}: not a loadable torch state dict ({why})"


MLP_WITH_METRICS = """\
dlspec: 1
name: m
inputs:
  x: {shape: [4]}
layers:
  - {type: dense, units: 3}
train:
  loss: cross_entropy
  optimizer: {type: adam}
  metrics: %s
"""


@pytest.mark.parametrize("metrics, error", [
    ("[acc]", "10:13: train.metrics[0]: must be one of 'accuracy'. Received: 'acc'"),
    ("[accuracy, 5]", "10:23: train.metrics[1]: must be one of 'accuracy'. Received: 5"),
    ("[{type: top_k, k: 0}]", "10:30: train.metrics[0].k: must be a positive integer. Received: 0"),
    ("[{type: top_k, kk: 3}]", "10:27: train.metrics[0].kk: unknown key, did you mean 'k'? Received: 'kk'"),
])
def test_a_bad_metric_is_one_located_line(tmp_path, metrics, error):
    (tmp_path / "m.yaml").write_text(MLP_WITH_METRICS % metrics)
    with pytest.raises(dlspec.SpecError) as info:
        dlspec.load(tmp_path / "m.yaml")
    assert str(info.value) == f"{tmp_path / 'm.yaml'}:{error}"


def test_good_metrics_still_validate(tmp_path):
    from dlspec.spec.train import TopK

    (tmp_path / "m.yaml").write_text(MLP_WITH_METRICS % "[accuracy, {type: top_k, k: 2}]")
    assert dlspec.load(tmp_path / "m.yaml").spec.train.metrics == ["accuracy", TopK(k=2)]


@pytest.mark.parametrize("flag", [["--fp16"], ["--optimize"], ["--opset", "18"]])
def test_onnx_only_build_options_are_refused_for_source_backends(tmp_path, flag):
    import subprocess

    from conftest import PYTHON

    result = subprocess.run([PYTHON, "-m", "dlspec", "build", str(SPECS / "mnist_mlp.yaml"), "--backend", "keras",
                             *flag, "-o", str(tmp_path / "out")], capture_output=True, text=True)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"error: {flag[0]} applies to the onnx backend only. Received: --backend keras\n"
    assert not (tmp_path / "out").exists()


TWO_INPUTS = """\
dlspec: 1
name: mi
inputs:
  a: {shape: [4]}
  b: {shape: [4]}
layers:
  - {name: s, type: add, inputs: [a, b]}
  - {name: logits, type: dense, units: 3}
train:
  loss: cross_entropy
  optimizer: {type: sgd, lr: 0.1}
  epochs: 1
"""


@pytest.mark.parametrize("command", [["train", "--backend", "torch", "--data", "DATA", "-o", "OUT"],
                                     ["parity", "--train", "--steps", "2"]])
def test_a_model_with_several_inputs_is_refused_for_training(tmp_path, command):
    import subprocess

    from conftest import PYTHON

    (tmp_path / "mi.yaml").write_text(TWO_INPUTS)
    np.savez(tmp_path / "d.npz", x_train=np.zeros((8, 4), np.float32), y_train=np.zeros(8, np.int64))
    args = [str(tmp_path / "d.npz") if a == "DATA" else str(tmp_path / "out") if a == "OUT" else a for a in command]
    result = subprocess.run([PYTHON, "-m", "dlspec", args[0], str(tmp_path / "mi.yaml"), *args[1:]],
                            capture_output=True, text=True, cwd=tmp_path)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (f"error: {tmp_path / 'mi.yaml'}:5:3: inputs.b: training feeds one input, and this model "
                             f"has 2 (a, b); this version cannot train it. Received: 'b'\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz", "mi.yaml"]


TWO_OUTPUTS = """\
dlspec: 1
name: mo
inputs:
  x: {shape: [4]}
layers:
  - {name: h, type: dense, units: 8, activation: relu}
  - {name: logits, type: dense, units: 3}
  - {name: aux, type: dense, units: 2, inputs: [h]}
outputs: [logits, aux]
train:
  loss: cross_entropy
  optimizer: {type: adam, lr: 0.01, weight_decay: 0.01}
  clip: {norm: 0.5}
  batch_size: 8
  epochs: 2
"""


def test_keras_trains_a_model_whose_second_output_has_no_gradient():
    from dlspec.train import fit
    from dlspec.train.data import Dataset

    model = dlspec.loads(TWO_OUTPUTS)
    rng = np.random.default_rng(0)
    x, y = rng.random((16, 4)).astype(np.float32), rng.integers(0, 3, 16)
    data = Dataset(x, y, x[:0], y[:0], "test")
    start = dlspec.init_weights(model, 0)
    runs = {b: fit(model, b, data, start, progress=False)[:2] for b in ("torch", "keras")}
    (_, torch_weights), (history, keras_weights) = runs["torch"], runs["keras"]
    assert len(history.step_loss) == 4
    for name in ("aux.weight", "aux.bias"):  # no gradient: no step and no weight decay, as in torch
        assert np.array_equal(keras_weights[name], start[name])
        assert np.array_equal(torch_weights[name], start[name])
    assert not np.array_equal(keras_weights["h.weight"], start["h.weight"])
    assert max(float(np.abs(torch_weights[k] - keras_weights[k]).max()) for k in start) < 1e-6


@pytest.mark.parametrize("text, rule", [
    (f"dlspec: 1\nbase: {SPECS / 'digits_cnn.yaml'}\nname: fz\nfreeze_up_to: logits\n",
     "all 9,978 parameters are frozen, so there is nothing to train."),
    ("dlspec: 1\nname: npm\ninputs: {x: {shape: [10]}}\nlayers: [{type: activation, activation: tanh}]\n"
     "train: {loss: cross_entropy, optimizer: {type: sgd, lr: 0.1}}\n",
     "the model has no parameters, so there is nothing to train."),
])
def test_a_model_with_nothing_to_train_is_refused(tmp_path, text, rule):
    from dlspec.train import prepare

    (tmp_path / "s.yaml").write_text(text)
    with pytest.raises(dlspec.SpecError) as info:
        prepare(dlspec.load(tmp_path / "s.yaml"), "digits")
    assert str(info.value) == f"{tmp_path / 's.yaml'}:1:1: train: {rule}"


@pytest.mark.parametrize("layers, train, rule", [
    ("[{type: dense, units: 3}]", "loss: cross_entropy",
     "train.loss: cross_entropy needs one vector of logits per sample, and output 'dense_1' has samples of shape "
     "[6, 3]."),
    ("[{type: flatten}, {type: dense, units: 3}]", "loss: mse\n  metrics: [accuracy]",
     "train.metrics: accuracy and top_k need the cross_entropy loss (integer labels, one vector of logits per "
     "sample). Received: 'mse'"),
])
def test_losses_and_metrics_that_need_a_classifier_are_checked_first(tmp_path, layers, train, rule):
    from dlspec.train import prepare

    (tmp_path / "s.yaml").write_text(f"dlspec: 1\nname: s\ninputs: {{x: {{shape: [6, 4]}}}}\nlayers: {layers}\n"
                                     f"train:\n  {train}\n  optimizer: {{type: sgd, lr: 0.1}}\n")
    np.savez(tmp_path / "d.npz", x_train=np.zeros((8, 6, 4), np.float32), y_train=np.zeros(8))
    with pytest.raises(dlspec.SpecError) as info:
        prepare(dlspec.load(tmp_path / "s.yaml"), str(tmp_path / "d.npz"))
    assert str(info.value) == f"{tmp_path / 's.yaml'}:1:1: {rule}"


def test_a_list_one_entry_too_short_says_entry(tmp_path):
    (tmp_path / "s.yaml").write_text(
        "dlspec: 1\nname: m\ninputs: {x: {shape: [4]}}\nlayers: [{type: dense, units: 3}]\n"
        "train:\n  loss: cross_entropy\n  optimizer: {type: adam}\n  schedule: {type: multistep, milestones: []}\n")
    with pytest.raises(dlspec.SpecError) as info:
        dlspec.load(tmp_path / "s.yaml")
    assert str(info.value) == (f"{tmp_path / 's.yaml'}:8:43: train.schedule.milestones: must have at least 1 entry. "
                               "Received: []")


def test_compare_sets_and_prints_the_thread_count():
    import subprocess

    from conftest import PYTHON

    result = subprocess.run([PYTHON, "-m", "dlspec", "compare", str(SPECS / "mnist_mlp.yaml"), "--paths",
                             "onnxruntime,torch", "--iterations", "2", "--threads", "1"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == ("mnist_mlp: batch 1, fp32, cpu, 1 thread (--threads), 2 timed runs per "
                                             "path after 10 warm-up runs, the same weights and input in every path")


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "inf"])
def test_a_bad_progress_interval_is_a_usage_error(monkeypatch, value):
    from dlspec.train.loop import Progress

    monkeypatch.setenv("DLSPEC_PROGRESS_SECONDS", value)
    with pytest.raises(dlspec.UsageError) as info:
        Progress(1, 10)
    assert str(info.value) == f"DLSPEC_PROGRESS_SECONDS must be a number of seconds, at least 0. Received: {value!r}"
    monkeypatch.setenv("DLSPEC_PROGRESS_SECONDS", "2.5")
    assert Progress(1, 10).interval == 2.5
