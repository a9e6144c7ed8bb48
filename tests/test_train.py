"""Training with one meaning in every backend: torch and Keras step for step, and against hand-written torch."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import PYTHON, SPECS

import dlspec
from dlspec.train import fit, prepare
from dlspec.train.data import Dataset, batches
from dlspec.train.parity import train_parity
from dlspec.train.schedule import Schedule

NET = """\
dlspec: 1
name: net
inputs: {{x: {{shape: [12]}}}}
layers:
  - {{type: dense, units: 16, use_bias: false}}
  - {{type: batchnorm}}
  - {{type: activation, activation: relu}}
  - {{type: dropout, rate: 0.5}}
  - {{type: dense, units: 4}}
train:
  loss: {loss}
  optimizer: {optimizer}
  schedule: {schedule}
  batch_size: 16
  clip: {clip}
"""
OPTIMIZERS = {
    "sgd": "{type: sgd, lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 1.0e-3}",
    "adam": "{type: adam, lr: 1.0e-2, weight_decay: 1.0e-3}",
    "adamw": "{type: adamw, lr: 1.0e-2, weight_decay: 1.0e-2}",
    "rmsprop": "{type: rmsprop, lr: 1.0e-3, momentum: 0.5, centered: true, weight_decay: 1.0e-3}",
}
SCHEDULES = {
    "step": "{type: step, step_size: 2, gamma: 0.5}",
    "multistep": "{type: multistep, milestones: [30, 60], gamma: 0.3, interval: step}",
    "exponential": "{type: exponential, gamma: 0.8}",
    "cosine": "{type: cosine, t_max: 80, warmup: 10, eta_min: 1.0e-4, interval: step}",
    "plateau": "{type: reduce_on_plateau, monitor: loss, patience: 0, factor: 0.5}",
}


def net(optimizer="adam", schedule="step", loss="cross_entropy", clip="null"):
    return dlspec.loads(NET.format(optimizer=OPTIMIZERS[optimizer], schedule=SCHEDULES[schedule], loss=loss,
                                   clip=clip))


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
def test_training_parity_every_optimizer_and_schedule(optimizer, schedule):
    report = train_parity(net(optimizer, schedule), steps=100, plot=False)
    assert report.steps == 100
    assert report.torch_loss[0] != report.torch_loss[-1]
    assert report.max_rel_loss <= 1e-5, report.table()
    assert report.max_weight_diff <= 1e-5, report.table()


@pytest.mark.parametrize("loss, clip", [
    ("{type: cross_entropy, label_smoothing: 0.1}", "{norm: 0.5}"),
    ("binary_cross_entropy", "{value: 0.01}"),
    ("mse", "null"),
    ("l1", "null"),
    ("{type: huber, delta: 0.5}", "{norm: 1.0}"),
])
def test_training_parity_losses_and_clipping(loss, clip):
    report = train_parity(net("adam", "step", loss, clip), steps=60, plot=False)
    assert report.max_rel_loss <= 1e-5 and report.max_weight_diff <= 1e-5, report.table()


def test_parity_command_fails_above_tolerance_and_plots(tmp_path):
    result = subprocess.run([PYTHON, "-m", "dlspec", "parity", str(SPECS / "digits_cnn.yaml"), "--train",
                             "--steps", "30", "--plot", str(tmp_path / "curves.png")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.endswith("training parity: ok\n")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    strict = subprocess.run([PYTHON, "-m", "dlspec", "parity", str(SPECS / "digits_cnn.yaml"), "--train",
                             "--steps", "30", "--tol", "1e-12", "--noise-factor", "0", "--plot",
                             str(tmp_path / "c2.png")], capture_output=True, text=True)
    assert strict.returncode == 1 and "FAIL" in strict.stdout


ATTENTION = """\
dlspec: 1
name: attn
inputs: {tokens: {shape: [12], dtype: int64}}
layers:
  - {name: embedding, type: embedding, vocabulary: 50, units: 16}
  - {name: attn, type: attention, heads: 2}
  - {name: add, type: add, inputs: [attn, embedding]}
  - {name: norm, type: layernorm}
  - {name: pool, type: sequence_mean}
  - {name: logits, type: dense, units: 3}
train: {loss: cross_entropy, optimizer: {type: adam, lr: 1.0e-2}, batch_size: 16}
"""


def test_training_parity_tells_float32_noise_from_a_different_rule(monkeypatch):
    """An attention's key bias has a zero gradient in exact arithmetic (softmax drops a constant added to a
    query's scores); Adam turns its float32 rounding into steps of about lr, so it drifts apart between the
    frameworks as far as between torch and torch from weights one ulp apart, and passes as noise. Keras with
    beta2 0.99 instead of torch's 0.999 (a leaked default) fails, noise rule or not."""
    from dlspec.spec import train as spec
    from dlspec.train import keras_loop

    model = dlspec.loads(ATTENTION)
    report = train_parity(model, steps=40, plot=False)
    assert report.ok and report.max_rel_loss <= 1e-5, report.table()
    assert report.max_weight_diff > 1e-4 and report.worst_tensor == "attn.in_proj_bias", report.table()
    ours, noise = report.noisy["attn.in_proj_bias"]
    assert 0.1 < ours / noise < 10 and report.failed == ()
    assert "ok: float32 noise  (attn.in_proj_bias)" in report.table()
    strict = train_parity(model, steps=40, plot=False, noise_factor=0)
    assert not strict.ok and strict.noise is None and "FAIL  (attn.in_proj_bias)" in strict.table()

    adam = keras_loop.OPTIMIZERS.table[spec.Adam]

    def leaked(trainer, i, p, g, h):
        config = trainer.o
        trainer.o = config.model_copy(update={"betas": (0.9, 0.99)})
        try:
            adam.update(trainer, i, p, g, h)
        finally:
            trainer.o = config

    monkeypatch.setitem(keras_loop.OPTIMIZERS.table, spec.Adam, keras_loop.Rule(adam.state, leaked))
    wrong = train_parity(model, steps=40, plot=False)
    assert not wrong.ok and "logits.weight" in wrong.failed, wrong.table()
    assert wrong.table().endswith("training parity: FAILED")


@pytest.mark.parametrize("text, make", [
    ("{type: step, step_size: 3, gamma: 0.5}", lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.5)),
    ("{type: multistep, milestones: [2, 5], gamma: 0.3}",
     lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[2, 5], gamma=0.3)),
    ("{type: exponential, gamma: 0.7}", lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.7)),
    ("{type: cosine, t_max: 8, eta_min: 0.01}",
     lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=8, eta_min=0.01)),
])
def test_epoch_schedules_match_torch(text, make):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    scheduler = make(opt)
    model = dlspec.loads(NET.format(optimizer="{type: sgd, lr: 0.1}", schedule=text, loss="mse", clip="null"))
    ours = Schedule(model.spec.train.schedule, 0.1)
    for epoch in range(10):
        assert ours.lr(epoch, 0) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9, abs=1e-12), epoch
        opt.step()
        scheduler.step()


def test_reduce_on_plateau_matches_torch():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=1, threshold=1e-2, cooldown=1)
    model = dlspec.loads(NET.format(optimizer="{type: sgd, lr: 0.1}", loss="mse", clip="null", schedule=(
        "{type: reduce_on_plateau, monitor: val_loss, factor: 0.5, patience: 1, threshold: 1.0e-2, cooldown: 1}")))
    ours = Schedule(model.spec.train.schedule, 0.1)
    for value in [1.0, 0.9, 0.95, 0.91, 0.899, 0.9, 0.9, 0.8, 0.85, 0.86, 0.87, 0.88]:
        scheduler.step(value)
        ours.epoch_end({"val_loss": value})
        assert ours.lr(0, 0) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)


def test_seed_loop_equals_dlspec_in_torch_and_keras():
    """The seed's hand-written loop: Adam(lr, weight_decay), CrossEntropyLoss, StepLR once per epoch."""
    text = (SPECS / "mnist_mlp.yaml").read_text() + (
        "train:\n  loss: cross_entropy\n  optimizer: {type: adam, lr: 1.0e-3, weight_decay: 1.0e-5}\n"
        "  schedule: {type: step, step_size: 2, gamma: 0.1}\n  epochs: 4\n  batch_size: 32\n  seed: 0\n")
    model = dlspec.loads(text.replace("rate: 0.2", "rate: 0.0"), "mnist_mlp.yaml")  # no dropout
    rng = np.random.default_rng(0)
    x = rng.random((320, 784), dtype=np.float32)
    y = rng.integers(0, 10, 320)
    weights = dlspec.init_weights(model, 0)

    seed = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128),
                               torch.nn.ReLU(), torch.nn.Linear(128, 10))
    names = {"0": "dense_1", "2": "dense_2", "4": "logits"}
    seed.load_state_dict({f"{i}.{p}": torch.from_numpy(weights[f"{n}.{p}"]) for i, n in names.items()
                          for p in ("weight", "bias")})
    optimizer = torch.optim.Adam(seed.parameters(), lr=1e-3, weight_decay=1e-5)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.1)
    criterion = torch.nn.CrossEntropyLoss()
    expected = []
    for epoch in range(4):
        for idx in batches(320, 32, epoch, seed=0, shuffle=True):
            optimizer.zero_grad()
            loss = criterion(seed(torch.from_numpy(x[idx])), torch.from_numpy(y[idx]))
            loss.backward()
            optimizer.step()
            expected.append(loss.item())
        scheduler.step()
    data = Dataset(x, y.astype(np.int64), x[:0], y[:0], "synthetic")
    for backend in ("torch", "keras"):
        history, _, _ = fit(model, backend, data, weights, progress=False)
        got = np.asarray(history.step_loss)
        assert len(got) == 40
        assert np.max(np.abs(got - expected) / np.abs(expected)) <= 1e-5, backend
    assert expected[-1] < expected[0] - 0.1


def test_dropout_parity_is_statistical():
    """With dropout on, final validation accuracy on the embedded digits agrees within 1.5 points (3 seeds)."""
    model = dlspec.load(SPECS / "digits_cnn.yaml")
    data = prepare(model, "digits")
    accuracy = {"torch": [], "keras": []}
    for seed in range(3):
        cfg = model.spec.train.model_copy(update={"seed": seed})
        for backend in accuracy:
            history, _, _ = fit(model, backend, data, dlspec.init_weights(model, seed), cfg=cfg, progress=False)
            accuracy[backend].append(history.epochs[-1]["val_accuracy"])
    means = {b: float(np.mean(v)) for b, v in accuracy.items()}
    assert min(means.values()) > 0.85, means
    assert abs(means["torch"] - means["keras"]) <= 0.015, accuracy


def test_batches_and_validation_split():
    assert [list(b) for b in batches(5, 2, 0, 0, shuffle=False)] == [[0, 1], [2, 3], [4]]
    first, again = batches(10, 4, 3, 7, True), batches(10, 4, 3, 7, True)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert sorted(np.concatenate(first)) == list(range(10))
    model = dlspec.load(SPECS / "digits_cnn.yaml")
    data = prepare(model, "digits")
    from dlspec.data import load_dataset

    raw = load_dataset("digits")
    assert len(data.x_val) == int(1797 * 0.2) and np.array_equal(data.x_val, raw["x_train"][-359:])


def test_cli_train_writes_weights_and_history(tmp_path):
    result = subprocess.run([PYTHON, "-m", "dlspec", "train", str(SPECS / "digits_cnn.yaml"), "--backend", "torch",
                             "--epochs", "2", "-o", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "done after 2 epochs and 90 steps" in result.stdout
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history["step_loss"]) == 90
    assert history["loss_includes_regularization"] is False
    assert [sorted(e) for e in history["epochs"]] == [
        ["accuracy", "epoch", "loss", "lr", "val_accuracy", "val_loss"]] * 2
    weights = dlspec.load_weights(tmp_path / "weights.safetensors", dlspec.load(SPECS / "digits_cnn.yaml"))
    assert np.isfinite(weights["logits.weight"]).all()


@pytest.mark.parametrize("arrays, message", [
    ({"x_train": np.zeros((4, 3, 3)), "y_train": np.zeros(4)},
     "data.npz: x_train has samples of shape [3, 3], but input 'image' takes [1, 8, 8]"),
    ({"x_train": np.zeros((4, 64)), "y_train": np.array([0, 1, 2, 10])},
     "data.npz: label 10 is out of range: the model has 10 classes (labels 0..9)"),
    ({"x_train": np.full((4, 64), np.nan), "y_train": np.zeros(4)},
     "data.npz: x_train holds NaN or infinite values (first at sample 0)"),
    ({"x_train": np.zeros((4, 64))}, "data.npz: an .npz data file needs arrays x_train and y_train; it has x_train"),
])
def test_bad_data_is_a_clear_error(tmp_path, arrays, message):
    np.savez(tmp_path / "data.npz", **arrays)
    result = subprocess.run([PYTHON, "-m", "dlspec", "train", str(SPECS / "digits_cnn.yaml"), "--backend", "torch",
                             "--data", str(tmp_path / "data.npz"), "-o", str(tmp_path / "out")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == f"error: {tmp_path / message}\n"
    assert not (tmp_path / "out").exists()


def test_fine_tuning_keeps_frozen_tensors_bit_identical(tmp_path):
    """resnet18 from torchvision weights, new stem and head, layer1-3 frozen: train both backends."""
    import importlib.util

    from test_zoo import torchvision_reference

    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torchvision is not installed")
    torchvision_reference("resnet18", tmp_path)
    subprocess.run([PYTHON, "-m", "dlspec", "import-weights", "--from", "torchvision", str(SPECS / "resnet18.yaml"),
                    str(tmp_path / "resnet18.pth"), "-o", str(tmp_path / "r18.safetensors")], check=True,
                   capture_output=True)
    model = dlspec.load(SPECS / "resnet18_digits.yaml")
    frozen = model.frozen()
    assert {n.split(".")[0] for n in frozen} == {"layer1", "layer2", "layer3"}
    pretrained = dlspec.load_weights(tmp_path / "r18.safetensors")
    for backend in ("torch", "keras"):
        out = tmp_path / backend
        result = subprocess.run([PYTHON, "-m", "dlspec", "train", str(SPECS / "resnet18_digits.yaml"), "--backend",
                                 backend, "--init", str(tmp_path / "r18.safetensors"), "--epochs", "1", "-o",
                                 str(out)], capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "drawn fresh (new or reshaped layers): conv1.weight, fc.weight, fc.bias" in result.stdout
        after = dlspec.load_weights(out / "weights.safetensors", model)
        for name, value in after.items():
            node = name.rsplit(".", 1)[0]
            if node in frozen:  # weights and BatchNorm statistics untouched
                assert np.array_equal(value, pretrained[name]), (backend, name)
            elif name.startswith("layer4") and name in pretrained:
                assert not np.array_equal(value, pretrained[name]), (backend, name)
        assert json.loads((out / "history.json").read_text())["epochs"][0]["val_accuracy"] > 0.2


def test_trained_models_reload_exactly(tmp_path):
    """After training: the .keras file, the torch state dict and the ONNX export give the same outputs."""
    from dlspec.backends.keras import import_keras

    keras = import_keras()
    model = dlspec.load(SPECS / "digits_cnn.yaml")
    x = prepare(model, "digits").x_val[:16]
    outputs = {}
    for backend in ("torch", "keras"):
        result = subprocess.run([PYTHON, "-m", "dlspec", "train", str(SPECS / "digits_cnn.yaml"), "--backend",
                                 backend, "--epochs", "1", "-o", str(tmp_path / backend)], capture_output=True,
                                text=True)
        assert result.returncode == 0, result.stderr[-2000:]
        weights = dlspec.load_weights(tmp_path / backend / "weights.safetensors", model)
        rebuilt = dlspec.build(model, backend, weights)
        if backend == "torch":
            native = dlspec.build(model, "torch")
            native.load_state_dict(torch.load(tmp_path / "torch" / "model.pt", weights_only=True))
            with torch.no_grad():
                a, b = native.eval()(torch.from_numpy(x)).numpy(), rebuilt(torch.from_numpy(x)).numpy()
        else:
            native = keras.saving.load_model(tmp_path / "keras" / "model.keras")
            a, b = native(x, training=False).numpy(), rebuilt(x, training=False).numpy()
        assert np.array_equal(a, b), backend
        from dlspec.backends import onnx as onnx_backend

        exported = onnx_backend.run(dlspec.build(model, "onnx", weights), [x])[0]
        assert np.max(np.abs(exported - a)) <= 1e-5
        outputs[backend] = a
    assert not np.array_equal(outputs["torch"], outputs["keras"])  # dropout made the two runs differ


def test_regularizers_and_early_stopping():
    text = NET.format(optimizer=OPTIMIZERS["adam"], schedule=SCHEDULES["step"], loss="cross_entropy", clip="null")
    text = text.replace("{type: dense, units: 4}", "{type: dense, units: 4, regularizer: {l1: 1.0e-3, l2: 1.0e-2}}")
    model = dlspec.loads(text)
    assert model.regularizers() == {"dense_2.weight": (1e-3, 1e-2)}
    report = train_parity(model, steps=60, plot=False)
    assert report.max_rel_loss <= 1e-5 and report.max_weight_diff <= 1e-5, report.table()
    plain = train_parity(net("adam", "step"), steps=60, plot=False)
    assert plain.torch_loss[0] == pytest.approx(report.torch_loss[0], rel=1e-6)  # reported loss: no penalty
    assert abs(plain.torch_loss[-1] - report.torch_loss[-1]) > 1e-4  # but training changed

    stop = dlspec.loads(text + "  early_stopping: {monitor: loss, patience: 1, min_delta: 10.0}\n  epochs: 9\n")
    rng = np.random.default_rng(0)
    data = Dataset(rng.standard_normal((64, 12)).astype(np.float32), rng.integers(0, 4, 64), np.zeros((0, 12)),
                   np.zeros(0), "synthetic")
    history, _, _ = fit(stop, "torch", data, dlspec.init_weights(stop, 0), progress=False)
    assert history.stopped_early and len(history.epochs) == 2  # no epoch improves by 10


def test_metrics():
    from dlspec.spec.train import TopK
    from dlspec.train.loop import _metric_values

    out = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    y = np.array([1, 1, 0, 2])
    assert _metric_values(["accuracy", TopK(k=2)], out, y) == {"accuracy": 0.25, "top_2": 0.5}


DDP_LAYERS = {
    "mlp": "  - {type: flatten}\n  - {type: dense, units: 32, activation: relu}\n  - {type: dense, units: 10}\n",
    # BatchNorm statistics of the global batch, summed over the processes (GlobalBatchNorm on the CPU)
    "batchnorm": "  - {type: conv2d, filters: 8, kernel: 3, padding: same, use_bias: false}\n  - {type: batchnorm}\n"
                 "  - {type: activation, activation: relu}\n  - {type: flatten}\n  - {type: dense, units: 10}\n",
}


@pytest.mark.parametrize("layers", DDP_LAYERS)
def test_ddp_with_two_processes_equals_one(tmp_path, layers):
    """torchrun --nproc-per-node 2 (gloo on the CPU) gives the single process's weights for the same global batch."""
    import shutil

    spec = tmp_path / "ddp.yaml"
    spec.write_text("dlspec: 1\nname: ddp_net\ninputs: {x: {shape: [1, 8, 8]}}\nlayers:\n" + DDP_LAYERS[layers] +
                    "train:\n  loss: cross_entropy\n  optimizer: {type: adam, lr: 1.0e-2, weight_decay: 1.0e-4}\n"
                    "  schedule: {type: step, step_size: 1, gamma: 0.5}\n  epochs: 2\n  batch_size: 50\n"
                    "  validation_split: 0.1\n  metrics: [accuracy]\n")
    torchrun = shutil.which("torchrun", path=str(Path(PYTHON).parent))
    one = subprocess.run([PYTHON, "-m", "dlspec", "train", str(spec), "--backend", "torch", "-o",
                          str(tmp_path / "one")], capture_output=True, text=True)
    two = subprocess.run([torchrun, "--nproc-per-node", "2", "-m", "dlspec", "train", str(spec), "--backend", "torch",
                          "-o", str(tmp_path / "two")], capture_output=True, text=True, cwd=tmp_path)
    assert one.returncode == 0 and two.returncode == 0, two.stdout[-2000:] + two.stderr[-2000:]
    assert "2 processes (DDP)" in two.stdout and two.stdout.count("done after 2 epochs") == 1  # rank 0 speaks
    a = dlspec.load_weights(tmp_path / "one" / "weights.safetensors")
    b = dlspec.load_weights(tmp_path / "two" / "weights.safetensors")
    assert max(float(np.max(np.abs(a[k] - b[k]))) for k in a) <= 1e-5
    h1, h2 = (json.loads((tmp_path / d / "history.json").read_text()) for d in ("one", "two"))
    assert np.allclose(h1["step_loss"], h2["step_loss"], rtol=1e-5)
    assert h1["epochs"][-1]["accuracy"] == h2["epochs"][-1]["accuracy"]


@pytest.mark.parametrize("layers", DDP_LAYERS)
def test_two_nodes_with_c10d_rendezvous_equal_one_process(tmp_path, layers):
    """torchrun's multi-node form: two launchers (--nnodes 2, node ranks 0 and 1) meet through c10d on localhost,
    one gloo process each; the result is the single process's."""
    import shutil
    import socket

    spec = tmp_path / "ddp.yaml"
    spec.write_text("dlspec: 1\nname: ddp_net\ninputs: {x: {shape: [1, 8, 8]}}\nlayers:\n" + DDP_LAYERS[layers] +
                    "train:\n  loss: cross_entropy\n  optimizer: {type: adam, lr: 1.0e-2, weight_decay: 1.0e-4}\n"
                    "  schedule: {type: step, step_size: 1, gamma: 0.5}\n  epochs: 2\n  batch_size: 50\n"
                    "  validation_split: 0.1\n  metrics: [accuracy]\n")
    torchrun = shutil.which("torchrun", path=str(Path(PYTHON).parent))
    with socket.socket() as probe:  # a free port for the rendezvous
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    launch = [torchrun, "--nnodes", "2", "--nproc-per-node", "1", "--rdzv-backend", "c10d",
              "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", f"dlspec-{layers}", "--max-restarts", "0"]
    train = ["-m", "dlspec", "train", str(spec), "--backend", "torch", "-o", str(tmp_path / "two")]
    nodes = [subprocess.Popen([*launch, "--node-rank", str(rank), *train], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=tmp_path) for rank in (0, 1)]
    one = subprocess.run([PYTHON, "-m", "dlspec", "train", str(spec), "--backend", "torch", "-o",
                          str(tmp_path / "one")], capture_output=True, text=True)
    outs = [node.communicate(timeout=300) for node in nodes]
    assert one.returncode == 0 and all(n.returncode == 0 for n in nodes), [o[1][-2000:] for o in outs]
    spoken = "".join(out for out, _ in outs)
    assert "2 processes (DDP)" in spoken and spoken.count("done after 2 epochs") == 1  # global rank 0 speaks
    a = dlspec.load_weights(tmp_path / "one" / "weights.safetensors")
    b = dlspec.load_weights(tmp_path / "two" / "weights.safetensors")
    assert max(float(np.max(np.abs(a[k] - b[k]))) for k in a) <= 1e-5
    h1, h2 = (json.loads((tmp_path / d / "history.json").read_text()) for d in ("one", "two"))
    assert np.allclose(h1["step_loss"], h2["step_loss"], rtol=1e-5)


def test_keras_trains_embeddings_with_torch_rules():
    model = dlspec.load(SPECS / "text_transformer.yaml")
    # SGD: under Adam the key bias, whose gradient is zero in exact arithmetic, turns rounding noise into steps
    cfg = dlspec.loads("dlspec: 1\nname: t\ninputs: {x: {shape: [2]}}\nlayers: [{type: dense, units: 2}]\ntrain:\n"
                       "  loss: cross_entropy\n  optimizer: {type: sgd, lr: 0.05, momentum: 0.9}\n"
                       "  batch_size: 8\n").spec.train
    report = train_parity(model, cfg=cfg, steps=20, plot=False)
    assert report.max_rel_loss <= 1e-5 and report.max_weight_diff <= 1e-5, report.table()


def test_train_section_errors_are_located(spec_file):
    head = "dlspec: 1\nname: m\ninputs: {x: {shape: [4]}}\nlayers: [{type: dense, units: 2}]\ntrain:\n  loss: mse\n"
    cases = {
        "  optimizer: {type: sgd, lr: 0.1, nesterov: true}\n":
            "7:45: train.optimizer.nesterov: needs momentum > 0 and dampening 0 (as torch requires). Received: True",
        "  optimizer: {type: sgd, lr: -1}\n": "7:30: train.optimizer.lr: must be a positive number. Received: -1",
        "  optimizer: {type: adam}\n  schedule: {type: step}\n":
            "8:13: train.schedule: missing required key 'step_size'. Received: {'type': 'step'}",
    }
    for body, message in cases.items():
        path = spec_file(head + body)
        with pytest.raises(dlspec.SpecError) as info:
            dlspec.load(path)
        assert str(info.value) == f"{path}:{message}"


@pytest.mark.parametrize("options, tolerance", [({"channels_last": True}, 1e-5), ({"amp": "bf16"}, 3e-2)])
def test_gpu_training_options_run_on_cpu_too(options, tolerance):
    """channels_last changes only the memory layout; bf16 autocast stays within bf16's precision."""
    model = dlspec.load(SPECS / "digits_cnn.yaml")
    from dlspec.train.parity import synthetic_data, without_dropout

    plain = without_dropout(model)
    cfg = model.spec.train.model_copy(update={"validation_split": 0.0})
    data = synthetic_data(model, cfg, 20, 0)
    weights = dlspec.init_weights(model, 0)
    base, _, _ = fit(plain, "torch", data, weights, cfg=cfg, epochs=1, progress=False, max_steps=20)
    other, _, _ = fit(plain, "torch", data, weights, cfg=cfg, epochs=1, progress=False, max_steps=20, **options)
    diff = np.max(np.abs(np.asarray(base.step_loss) - other.step_loss) / np.asarray(base.step_loss))
    assert diff <= tolerance
    assert len(other.step_loss) == 20


def test_backend_options_are_checked_first(tmp_path):
    result = subprocess.run([PYTHON, "-m", "dlspec", "train", str(SPECS / "digits_cnn.yaml"), "--backend", "keras",
                             "--device", "cuda", "-o", str(tmp_path / "o")], capture_output=True, text=True)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == ("error: --device cuda: the keras backend trains on the CPU (dlspec's GPU machines have no "
                             "TensorFlow, so Keras on GPUs is untested). Received: --backend keras\n")


@pytest.mark.parametrize("backend, device, options, message", [
    ("keras", "cpu", {"cuda_graph": True}, "--amp, --channels-last, --compile and --cuda-graph apply to the torch "
                                           "backend. Received: --backend keras"),
    ("torch", "cpu", {"cuda_graph": True}, "--cuda-graph needs --device cuda. Received: --cuda-graph --device cpu"),
    ("torch", "cuda", {"cuda_graph": True, "amp": "fp16"}, "--cuda-graph cannot capture fp16 loss scaling (it checks "
     "for overflow on the host); use --amp bf16. Received: --cuda-graph --device cuda --amp fp16"),
    ("torch", "cuda", {"cuda_graph": True, "compile": True}, "--cuda-graph and --compile both capture the step; "
     "choose one. Received: --cuda-graph --device cuda --compile"),
    ("torch", "cpu", {"replicas": 2}, "--replicas applies to the keras backend (torch runs several processes with "
                                      "torchrun --nproc-per-node N). Received: --backend torch --replicas 2"),
])
def test_engine_options_are_checked(backend, device, options, message):
    from dlspec.errors import UsageError
    from dlspec.train.loop import check_options

    with pytest.raises(UsageError) as err:
        check_options(backend, device, **options)
    assert str(err.value) == message


def test_torch_device_is_checked_before_training(tmp_path):
    import torch

    from dlspec.errors import UsageError
    from dlspec.train.loop import check_options

    for device in ("tpu", "mps"):
        with pytest.raises(UsageError) as err:
            check_options("torch", device)
        assert str(err.value) == f"--device must be cpu, cuda or cuda:N. Received: '{device}'"
    if not torch.cuda.is_available():
        result = subprocess.run([PYTHON, "-m", "dlspec", "train", str(SPECS / "digits_cnn.yaml"), "--backend", "torch",
                                 "--device", "cuda", "-o", str(tmp_path / "o")], capture_output=True, text=True)
        assert result.returncode == 2 and not (tmp_path / "o").exists()
        assert result.stderr == (f"error: --device cuda: torch {torch.__version__} finds no CUDA device (no GPU or "
                                 "driver, or a CPU-only build); train with --device cpu. Received: --device cuda\n")
