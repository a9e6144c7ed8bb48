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
