"""--provider tensorrt: TensorRT with fp16 and an engine cache when it can start; otherwise one line saying why,
then CUDA (or the CPU). These run without a GPU; tests/test_gpu.py checks the real refusal on the GPU machine."""

import io
import os
import subprocess
import types

import numpy as np
import onnxruntime
import pytest
from conftest import PYTHON, SPECS

import dlspec
from dlspec import deploy

ALL = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


def test_cli_tensorrt_without_the_provider_says_so_once_and_runs(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}
    env.pop("DLSPEC_TRT_CACHE", None)
    subprocess.run([PYTHON, "-m", "dlspec", "build", str(SPECS / "mnist_cnn.yaml"), "--backend", "onnx", "--fp16",
                    "-o", str(tmp_path)], check=True, capture_output=True, env=env)
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32))
    result = subprocess.run([PYTHON, "-m", "dlspec", "run", str(tmp_path / "mnist_cnn.onnx"), "--input",
                             str(tmp_path / "x.npy"), "--provider", "tensorrt"], capture_output=True, text=True,
                            env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "logits: shape [3, 10], dtype float32\n"
    providers = ", ".join(onnxruntime.get_available_providers())
    version = onnxruntime.__version__
    assert result.stderr == (f"dlspec: --provider tensorrt: TensorRT cannot start, onnxruntime {version} "
                             f"has no TensorrtExecutionProvider (providers: {providers}); running on CPU instead.\n")
    bench = subprocess.run([PYTHON, "-m", "dlspec", "bench", str(tmp_path / "mnist_cnn.onnx"), "--provider",
                            "tensorrt", "--batch", "2", "--iterations", "3"], capture_output=True, text=True, env=env)
    assert bench.returncode == 0, bench.stderr
    assert bench.stderr.count("\n") == 1 and bench.stderr.startswith("dlspec: --provider tensorrt: TensorRT cannot")
    assert "CPUExecutionProvider, batch 2, 3 runs with IO binding" in bench.stdout
    assert list(home.rglob("*")) == []  # no engine folder when TensorRT did not start


def fake_ort(tmp_path, library: bytes | None):
    """An onnxruntime stand-in listing TensorRT, whose provider library is ``library`` (None: no file)."""
    package = tmp_path / "onnxruntime"
    (package / "capi").mkdir(parents=True)
    if library is not None:
        (package / "capi" / "libonnxruntime_providers_tensorrt.so").write_bytes(library)
    return types.SimpleNamespace(__version__="9.9.9", __file__=str(package / "__init__.py"),
                                 get_available_providers=lambda: ALL)


def test_why_tensorrt_cannot_start(tmp_path):
    assert deploy.trt_unavailable(fake_ort(tmp_path / "a", None)) is None  # listed, library not found: try it
    reason = deploy.trt_unavailable(fake_ort(tmp_path / "b", b"not a shared library"))
    assert reason.startswith("its provider library cannot load: ") and "libonnxruntime_providers" not in reason
    without = types.SimpleNamespace(__version__="9.9.9", __file__=str(tmp_path),
                                    get_available_providers=lambda: ALL[1:])
    assert deploy.trt_unavailable(without) == ("onnxruntime 9.9.9 has no TensorrtExecutionProvider (providers: "
                                               "CUDAExecutionProvider, CPUExecutionProvider)")


def test_tensorrt_providers_fp16_with_an_engine_cache(tmp_path, monkeypatch):
    model = dlspec.load(SPECS / "mnist_cnn.yaml")
    half = dlspec.build(model, "onnx", dlspec.init_weights(model, 0), fp16=True)
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ALL)
    monkeypatch.setattr(deploy, "trt_unavailable", lambda ort: None)
    monkeypatch.setenv("DLSPEC_TRT_CACHE", str(tmp_path / "engines"))
    cache = str(tmp_path / "engines")
    trt = {"trt_fp16_enable": "True", "trt_engine_cache_enable": "True", "trt_engine_cache_path": cache,
           "trt_timing_cache_enable": "True", "trt_timing_cache_path": cache}
    assert deploy.providers_for("tensorrt", None, None, half) == [
        ("TensorrtExecutionProvider", trt), ("CUDAExecutionProvider", deploy.cuda_defaults(True)),
        "CPUExecutionProvider"]
    graphed = deploy.providers_for("tensorrt", None, {"enable_cuda_graph": "1"}, half, str(tmp_path / "other"))
    assert graphed[0][1]["trt_engine_cache_path"] == str(tmp_path / "other")
    assert graphed[0][1]["trt_cuda_graph_enable"] == "True"
    monkeypatch.delenv("DLSPEC_TRT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert deploy.trt_cache_dir() == str(tmp_path / "xdg" / "dlspec" / "tensorrt")
    with pytest.raises(dlspec.UsageError, match="--provider must be auto, cuda, tensorrt or cpu. Received: 'trt'"):
        deploy.providers_for("trt", None)


def test_a_tensorrt_session_that_falls_back_says_why_in_one_line(tmp_path, monkeypatch):
    """onnxruntime prints a block of EP Error lines and retries without TensorRT; dlspec keeps one line and starts
    CUDA again with its own options."""
    model = dlspec.load(SPECS / "mnist_cnn.yaml")
    half = dlspec.build(model, "onnx", dlspec.init_weights(model, 0), fp16=True)
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ALL)
    monkeypatch.setattr(deploy, "trt_unavailable", lambda ort: None)
    monkeypatch.setenv("DLSPEC_TRT_CACHE", str(tmp_path / "engines"))
    made = []

    class Session:
        def __init__(self, source, options, providers):
            made.append(providers)
            if providers[0][0] == "TensorrtExecutionProvider":
                print("*************** EP Error ***************")
                print("EP Error [ONNXRuntimeError] : 1 : FAIL : TensorRT EP failed to create engine from network "
                      "for fused node: TensorrtExecutionProvider_TRTKernel_0 when using ['TensorrtExecutionProvider']")
                print("Falling back to ['CUDAExecutionProvider', 'CPUExecutionProvider'] and retrying.")
            self.providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]

        def get_providers(self):
            return self.providers

    monkeypatch.setattr(onnxruntime, "InferenceSession", Session)
    notice = io.StringIO()
    sess = deploy.session(half, "tensorrt", notice=notice)
    assert sess.get_providers()[0] == "CUDAExecutionProvider"
    assert notice.getvalue() == ("dlspec: --provider tensorrt: TensorRT cannot start, TensorRT EP failed to create "
                                 "engine from network for fused node: TensorrtExecutionProvider_TRTKernel_0; running "
                                 "on CUDA instead.\n")
    assert made[1] == [("CUDAExecutionProvider", deploy.cuda_defaults(True)), "CPUExecutionProvider"]
    assert (tmp_path / "engines").is_dir()
