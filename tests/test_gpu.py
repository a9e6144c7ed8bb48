"""GPU tests: skipped where there is no CUDA device (CI); run on the device machine (see docs/performance.md)."""

import importlib.util

import numpy as np
import pytest
from conftest import SPECS

import dlspec
from dlspec.train import fit
from dlspec.train.data import Dataset

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def test_training_on_cuda_matches_cpu():
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    model = dlspec.load(SPECS / "digits_cnn.yaml")
    cfg = model.spec.train.model_copy(update={"validation_split": 0.0})
    from dlspec.train.parity import without_dropout

    plain = without_dropout(model)
    rng = np.random.default_rng(0)
    data = Dataset(rng.standard_normal((256, 1, 8, 8)).astype(np.float32), rng.integers(0, 10, 256),
                   np.zeros((0, 1, 8, 8), np.float32), np.zeros(0, np.int64), "synthetic")
    weights = dlspec.init_weights(model, 0)
    runs = {d: fit(plain, "torch", data, weights, cfg=cfg, epochs=3, device=d, progress=False)[:2]
            for d in ("cpu", "cuda")}
    a, b = (np.asarray(runs[d][0].step_loss) for d in ("cpu", "cuda"))
    assert len(a) == 24
    assert np.max(np.abs(a - b) / np.abs(a)) <= 1e-4  # documented GPU-vs-CPU training tolerance
    assert max(float(np.max(np.abs(runs["cpu"][1][k] - runs["cuda"][1][k]))) for k in runs["cpu"][1]) <= 1e-4


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="no onnxruntime")
def test_onnxruntime_cuda_matches_cpu_reference():
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime without CUDA (install dlspec[gpu])")
    from dlspec.deploy import session
    from dlspec.parity import random_inputs, random_weights

    model = dlspec.load(SPECS / "resnet18.yaml")
    weights = random_weights(model, 0)
    x = random_inputs(model, 4, 0)
    proto = dlspec.build(model, "onnx", weights)
    cpu = session(proto, "cpu").run(None, {"image": x[0]})[0]
    gpu = session(proto, "cuda").run(None, {"image": x[0]})[0]
    half = session(dlspec.build(model, "onnx", weights, fp16=True, optimize=True), "cuda").run(None, {"image": x[0]})[0]
    assert np.max(np.abs(gpu - cpu)) <= 1e-4
    assert np.max(np.abs(half - cpu)) / np.max(np.abs(cpu)) <= 2e-3


NEW_ZOO = ["convnext_tiny", "vit_b_16", "mobilenet_v3_small", "mobilenet_v3_large", "shufflenet_v2_x1_0",
           "efficientnet_b0", "efficientnet_v2_s", "regnet_y_400mf", "bert_small", "swin_t"]
# fp16 bounds relative to the largest output. bert_small's pooler_output (a 128-wide dense and tanh after two
# layers) measured 3.8e-3 on the H200 (1.9e-3 on onnxruntime's CPU), and torch's own .half() model gives 4.2e-3
# against its float32 result on the same input: that is float16's precision, not the export's.
FP16_BOUND = {"bert_small": 5e-3}


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="no onnxruntime")
@pytest.mark.parametrize("name", NEW_ZOO)
def test_zoo_onnx_on_cuda_matches_the_cpu_reference(name):
    """fp32 on CUDA (TF32 off) within 1e-4 of onnxruntime's CPU run, relative to max(1, |ref|); fp16 within 2e-3
    relative to the largest output (see FP16_BOUND); both exports pass onnx's full check."""
    import onnx
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime without CUDA (install dlspec[gpu])")
    from dlspec.deploy import session
    from dlspec.parity import random_inputs, random_weights

    model = dlspec.load(SPECS / f"{name}.yaml")
    weights = random_weights(model, 0)
    feeds = dict(zip([i.name for i in model.graph.inputs], random_inputs(model, 2, 0)))
    proto, half = dlspec.build(model, "onnx", weights), dlspec.build(model, "onnx", weights, fp16=True, optimize=True)
    for m in (proto, half):
        onnx.checker.check_model(m, full_check=True)
    cpu = session(proto, "cpu").run(None, feeds)
    gpu = session(proto, "cuda").run(None, feeds)
    fp16 = session(half, "cuda").run(None, feeds)
    for ref, a, h in zip(cpu, gpu, fp16):
        assert np.max(np.abs(a - ref)) <= 1e-4 * max(1.0, float(np.max(np.abs(ref)))), name
        assert np.max(np.abs(h - ref)) / np.max(np.abs(ref)) <= FP16_BOUND.get(name, 2e-3), name


def test_compare_on_cuda_agrees_across_paths():
    from dlspec.compare import compare

    model = dlspec.load(SPECS / "resnet18.yaml")
    timings = compare(model, batch=8, device="cuda", fp16=True, iterations=5, warmup=2,
                      paths=("onnxruntime", "torch", "torch.compile"), notice=None)
    assert [t.path for t in timings] == ["onnxruntime", "torch", "torch.compile"]
    assert all(t.max_diff <= 2e-2 for t in timings)  # fp16 paths against each other, random weights


OPTIMIZERS = ["{type: adam, lr: 1.0e-3, weight_decay: 1.0e-4}", "{type: adamw, lr: 1.0e-3, weight_decay: 0.01}",
              "{type: sgd, lr: 0.05, momentum: 0.9, dampening: 0.1}",
              "{type: rmsprop, lr: 1.0e-3, momentum: 0.5, centered: true}"]


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_cuda_graph_training_matches_eager(optimizer):
    """--cuda-graph replays the captured step: same losses, accuracy and weights as eager CUDA steps,
    dropout included; a schedule changes the rate and the short last batch runs eagerly."""
    text = (SPECS / "mnist_mlp.yaml").read_text() + (
        f"train:\n  loss: cross_entropy\n  optimizer: {optimizer}\n  metrics: [accuracy]\n  epochs: 3\n"
        "  batch_size: 32\n  validation_split: 0.1\n  clip: {norm: 1.0}\n"
        "  schedule: {type: step, step_size: 1, gamma: 0.5}\n")
    model = dlspec.loads(text, "mlp.yaml")
    rng = np.random.default_rng(0)
    n = 32 * 12 + 7
    data = Dataset(rng.random((n, 784), dtype=np.float32), rng.integers(0, 10, n), rng.random((40, 784), np.float32),
                   rng.integers(0, 10, 40), "synthetic")
    weights = dlspec.init_weights(model, 0)
    runs = {}
    for graph in (False, True):
        runs[graph] = fit(model, "torch", data, weights, device="cuda", progress=False, cuda_graph=graph)
    assert runs[True][2].graphed is not None and runs[False][2].graphed is None
    a, b = (np.asarray(runs[g][0].step_loss) for g in (False, True))
    assert len(a) == 3 * 13
    assert np.max(np.abs(a - b)) <= 1e-6 * np.max(np.abs(a))
    assert [e["accuracy"] for e in runs[False][0].epochs] == [e["accuracy"] for e in runs[True][0].epochs]
    lr = model.spec.train.optimizer.lr
    assert [e["lr"] for e in runs[True][0].epochs] == pytest.approx([lr, lr / 2, lr / 4], rel=1e-12)
    # capturable RMSprop keeps its step count on the device: 2.2e-6 on the H100 (the others: below 1e-6)
    assert max(float(np.max(np.abs(runs[False][1][k] - runs[True][1][k]))) for k in weights) <= 5e-6


def test_data_larger_than_the_device_share_trains_from_host_memory(monkeypatch):
    """Data that does not fit (here: a device share of 0) stays in pinned host memory, batch by batch: same run."""
    from dlspec.train import torch_loop

    text = (SPECS / "mnist_mlp.yaml").read_text() + (
        "train:\n  loss: cross_entropy\n  optimizer: {type: adam, lr: 1.0e-3}\n  metrics: [accuracy]\n  epochs: 2\n"
        "  batch_size: 32\n  validation_split: 0.2\n")
    model = dlspec.loads(text, "mlp.yaml")
    rng = np.random.default_rng(0)
    x, y = rng.random((250, 784), dtype=np.float32), rng.integers(0, 10, 250)
    data = Dataset(x[:200], y[:200], x[200:], y[200:], "synthetic")
    weights = dlspec.init_weights(model, 0)
    device = fit(model, "torch", data, weights, device="cuda", progress=False)
    monkeypatch.setattr(torch_loop, "DEVICE_SHARE", 0.0)
    host = fit(model, "torch", data, weights, device="cuda", progress=False)
    assert host[2].host_data and not device[2].host_data
    assert np.max(np.abs(np.subtract(device[0].step_loss, host[0].step_loss))) <= 1e-7
    assert [e["val_loss"] for e in device[0].epochs] == pytest.approx([e["val_loss"] for e in host[0].epochs], abs=1e-7)


ZOO_TRAIN = "train:\n  loss: cross_entropy\n  optimizer: {type: adam, lr: 1.0e-4}\n  epochs: 2\n  batch_size: 16\n"


@pytest.mark.parametrize("name", ["mnist_cnn", "digits_cnn", "resnet18_digits", "text_lstm", "text_transformer"])
def test_cuda_graph_captures_the_zoo(name, monkeypatch, capsys):
    """Convolutions, BatchNorm, frozen stages, recurrences, attention and embeddings all replay as one graph
    and train as the eager steps do (deterministic cuDNN, so that only the graph can make a difference)."""
    from dlspec.parity import random_inputs

    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    text = (SPECS / f"{name}.yaml").read_text().split("\ntrain:")[0] + "\n" + ZOO_TRAIN
    model = dlspec.loads(text, str(SPECS / f"{name}.yaml"))
    cfg = model.spec.train.model_copy(update={"validation_split": 0.0})
    n = 16 * 6 + 5
    (x,) = random_inputs(model, n, 0)
    classes = model.graph.shape_of(model.graph.outputs[0])[-1]
    data = Dataset(x, np.random.default_rng(1).integers(0, classes, n), x[:0], np.zeros(0, np.int64), "synthetic")
    weights = dlspec.init_weights(model, 0)
    eager, graphed = (fit(model, "torch", data, weights, cfg=cfg, device="cuda", progress=False, cuda_graph=g)
                      for g in (False, True))
    assert graphed[2].graphed is not None, capsys.readouterr().err
    a, b = np.asarray(eager[0].step_loss), np.asarray(graphed[0].step_loss)
    assert len(a) == 14 and np.max(np.abs(a - b) / np.abs(a)) <= 1e-5
    assert max(float(np.max(np.abs(eager[1][k] - graphed[1][k]))) for k in weights) <= 1e-5


def test_a_step_that_cannot_be_captured_trains_eagerly(monkeypatch, capsys):
    """If capture fails, the run says so in one line and goes on eagerly from where it was: eager results."""
    from dlspec.train import cuda_graph

    class Refuses(cuda_graph.GraphedStep):
        def __init__(self, torch, compute, state, x, y, keep_outputs):
            super().__init__(torch, compute, state, x, y, keep_outputs)
            raise RuntimeError("operation not permitted when stream is capturing")

    text = (SPECS / "mnist_mlp.yaml").read_text() + ZOO_TRAIN
    model = dlspec.loads(text, "mlp.yaml")
    rng = np.random.default_rng(0)
    data = Dataset(rng.random((100, 784), dtype=np.float32), rng.integers(0, 10, 100), np.zeros((0, 784), np.float32),
                   np.zeros(0, np.int64), "synthetic")
    weights = dlspec.init_weights(model, 0)
    eager = fit(model, "torch", data, weights, device="cuda", progress=False)
    monkeypatch.setattr(cuda_graph, "GraphedStep", Refuses)
    fallback = fit(model, "torch", data, weights, device="cuda", progress=False, cuda_graph=True)
    assert fallback[2].graphed is None
    notice = ("dlspec: --cuda-graph: this model's training step cannot be captured as a CUDA graph (operation not "
              "permitted when stream is capturing); training on with eager steps")
    assert capsys.readouterr().err.splitlines().count(notice) == 1
    a, b = np.asarray(eager[0].step_loss), np.asarray(fallback[0].step_loss)
    assert len(a) == 14 and np.max(np.abs(a - b)) <= 1e-6 * np.max(np.abs(a))


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="no onnxruntime")
def test_tensorrt_refusal_names_the_reason_and_runs_on_cuda(tmp_path, monkeypatch):
    """Where onnxruntime lists TensorRT but TensorRT's libraries are missing (pip installs of onnxruntime-gpu):
    one line naming the missing library, then the CUDA provider with dlspec's options, same outputs as CUDA."""
    import io

    import onnxruntime

    from dlspec.deploy import session, trt_unavailable
    from dlspec.parity import random_inputs, random_weights

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        pytest.skip("onnxruntime without CUDA (install dlspec[gpu])")
    reason = trt_unavailable(onnxruntime)
    if reason is None:
        pytest.skip("TensorRT can start here: nothing to refuse")
    monkeypatch.setenv("DLSPEC_TRT_CACHE", str(tmp_path / "engines"))
    model = dlspec.load(SPECS / "resnet18.yaml")
    half = dlspec.build(model, "onnx", random_weights(model, 0), fp16=True, optimize=True)
    feeds = {"image": random_inputs(model, 2, 0)[0]}
    notice = io.StringIO()
    trt = session(half, "tensorrt", notice=notice)
    assert trt.get_providers()[0] == "CUDAExecutionProvider"
    lines = notice.getvalue().splitlines()
    assert len(lines) == 1 and lines[0] == f"dlspec: --provider tensorrt: TensorRT cannot start, {reason}; running " \
        "on CUDA instead.", lines
    if "TensorrtExecutionProvider" in onnxruntime.get_available_providers():
        assert "libnvinfer" in reason, reason
    print(lines[0])
    cuda = session(half, "cuda", notice=None)
    a, b = trt.run(None, feeds)[0], cuda.run(None, feeds)[0]
    assert np.max(np.abs(a - b)) <= 1e-3 * np.max(np.abs(b))  # cuDNN may pick other algorithms per session
