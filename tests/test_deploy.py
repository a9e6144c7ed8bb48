"""Deployment: fp16 export, dlspec run / bench, the CPU fallback notice, and no files in the user's home."""

import os
import subprocess

import numpy as np
import onnx
import pytest
from conftest import PYTHON, SPECS

import dlspec
from dlspec.backends import onnx as onnx_backend
from dlspec.parity import random_inputs, random_weights

FP16_BOUND = 2e-3  # max |fp16 - fp32| relative to max |fp32|, measured 3e-4 to 5e-4 on the zoo (CPU)


@pytest.mark.parametrize("name", ["mnist_cnn", "resnet18", "mobilenet_v2", "text_lstm", "text_transformer"])
def test_fp16_export_is_valid_half_size_and_close(name):
    model = dlspec.load(SPECS / f"{name}.yaml")
    weights = random_weights(model, 0)
    full = dlspec.build(model, "onnx", weights)
    half = dlspec.build(model, "onnx", weights, fp16=True)
    onnx.checker.check_model(half, full_check=True)
    assert 0.49 < len(half.SerializeToString()) / len(full.SerializeToString()) < 0.52
    float16 = {t.name for t in half.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16}
    assert any(name.endswith(".weight") for name in float16)
    for init in half.graph.initializer:  # normalisation statistics stay float32
        if init.name.endswith(("running_mean", "running_var")):
            assert init.data_type == onnx.TensorProto.FLOAT
    assert [i.type.tensor_type.elem_type for i in half.graph.output] == [onnx.TensorProto.FLOAT]
    x = random_inputs(model, 2, 0)
    a, b = onnx_backend.run(full, x)[0], onnx_backend.run(half, x)[0]
    assert np.max(np.abs(a - b)) / np.max(np.abs(a)) <= FP16_BOUND
    assert np.max(np.abs(a - b)) > 0  # really computed in half precision


def test_run_and_bench_commands_with_cpu_fallback_notice(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}
    env.pop("ORT_DISABLE_TELEMETRY", None)
    subprocess.run([PYTHON, "-m", "dlspec", "build", str(SPECS / "mnist_cnn.yaml"), "--backend", "onnx", "--fp16",
                    "-o", str(tmp_path)], check=True, capture_output=True, env=env)
    x = np.random.default_rng(0).random((3, 1, 28, 28), dtype=np.float32)
    np.save(tmp_path / "x.npy", x)
    result = subprocess.run([PYTHON, "-m", "dlspec", "run", str(tmp_path / "mnist_cnn.onnx"), "--input",
                             str(tmp_path / "x.npy"), "--provider", "cuda", "-o", str(tmp_path / "y.npy")],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("logits: shape [3, 10], dtype float32\n")
    notices = [line for line in result.stderr.splitlines() if "running on CPU" in line]
    assert len(notices) == 1 and notices[0].startswith("dlspec: CUDAExecutionProvider is not available")
    assert np.load(tmp_path / "y.npy").shape == (3, 10)
    bench = subprocess.run([PYTHON, "-m", "dlspec", "bench", str(tmp_path / "mnist_cnn.onnx"), "--provider", "cpu",
                            "--batch", "4", "--iterations", "5"], capture_output=True, text=True, env=env)
    assert bench.returncode == 0, bench.stderr
    assert "CPUExecutionProvider, batch 4, 5 runs with IO binding" in bench.stdout and "p99" in bench.stdout
    assert "running on CPU" not in bench.stderr  # asked for the CPU: nothing to say
    graph = subprocess.run([PYTHON, "-m", "dlspec", "bench", str(tmp_path / "mnist_cnn.onnx"), "--provider", "cpu",
                            "--cuda-graph"], capture_output=True, text=True)
    assert (graph.returncode, graph.stdout) == (2, "")
    assert graph.stderr == "error: --cuda-graph needs --provider cuda. Received: --provider cpu\n"
    assert list(home.rglob("*")) == []  # no telemetry database, no caches


def test_fp16_only_for_onnx(tmp_path):
    result = subprocess.run([PYTHON, "-m", "dlspec", "build", str(SPECS / "mnist_mlp.yaml"), "--backend", "torch",
                             "--fp16", "-o", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr == "error: --fp16 applies to the onnx backend only. Received: --backend torch\n"


@pytest.mark.parametrize("name", ["mnist_cnn", "resnet18", "mobilenet_v2"])
def test_optimized_export_folds_batchnorm(name):
    model = dlspec.load(SPECS / f"{name}.yaml")
    weights = random_weights(model, 0)
    plain = dlspec.build(model, "onnx", weights)
    folded = dlspec.build(model, "onnx", weights, optimize=True)
    onnx.checker.check_model(folded, full_check=True)
    assert not any(n.op_type == "BatchNormalization" for n in folded.graph.node)
    assert len(folded.graph.node) < len(plain.graph.node)
    x = random_inputs(model, 2, 0)
    a, b = onnx_backend.run(plain, x)[0], onnx_backend.run(folded, x)[0]
    assert np.max(np.abs(a - b)) <= 1e-5 * max(1.0, float(np.max(np.abs(a))))
    half = dlspec.build(model, "onnx", weights, optimize=True, fp16=True)
    assert np.max(np.abs(onnx_backend.run(half, x)[0] - a)) / np.max(np.abs(a)) <= FP16_BOUND


def test_fp16_islands_compute_in_float32():
    model = dlspec.from_dict({"dlspec": 1, "name": "g", "inputs": {"x": {"shape": [4, 5, 5]}}, "layers": [
        {"type": "groupnorm", "groups": 2}, {"type": "global_avgpool"},
        {"type": "dense", "units": 3, "activation": "softmax"}]})
    half = dlspec.build(model, "onnx", random_weights(model, 0), fp16=True)
    onnx.checker.check_model(half, full_check=True)
    producers = {out: node for node in half.graph.node for out in node.output}
    for node in half.graph.node:
        if node.op_type in ("InstanceNormalization", "GlobalAveragePool"):
            cast = producers[node.input[0]]
            assert cast.op_type == "Cast" and cast.attribute[0].i == onnx.TensorProto.FLOAT, node.name
        if node.op_type == "Softmax":  # onnxruntime's Softmax accumulates in float32 inside (dlspec.backends.fp16)
            assert producers[node.input[0]].op_type != "Cast", node.name
    x = random_inputs(model, 3, 0)
    full = dlspec.build(model, "onnx", random_weights(model, 0))
    a, b = onnx_backend.run(full, x)[0], onnx_backend.run(half, x)[0]
    assert np.max(np.abs(a - b)) <= FP16_BOUND


def test_cuda_options_keep_float32_exact_and_fp16_on_tensor_cores(tmp_path, monkeypatch):
    """float32 exports run with TF32 off; fp16 exports keep it on (onnxruntime's cuDNN-frontend convolutions
    take use_tf32=0 as "no tensor cores", fp16 included), whether given as a proto, bytes or a path."""
    from dlspec.deploy import computes_in_half, cuda_defaults

    model = dlspec.load(SPECS / "mnist_cnn.yaml")
    weights = dlspec.init_weights(model, 0)
    full, half = dlspec.build(model, "onnx", weights), dlspec.build(model, "onnx", weights, fp16=True)
    (tmp_path / "half.onnx").write_bytes(half.SerializeToString())
    assert [computes_in_half(m) for m in (full, half, half.SerializeToString(), tmp_path / "half.onnx",
                                          str(tmp_path / "half.onnx"))] == [False, True, True, True, True]
    assert cuda_defaults(False) == {"use_tf32": "0"}
    assert cuda_defaults(True) == {"use_tf32": "1", "prefer_nhwc": "1", "fuse_conv_bias": "1"}
    import onnxruntime

    from dlspec.deploy import providers_for

    both = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: both)
    for proto, defaults in ((full, cuda_defaults(False)), (half, cuda_defaults(True))):
        assert providers_for("cuda", None, {"enable_cuda_graph": "1"}, proto) == [
            ("CUDAExecutionProvider", {**defaults, "enable_cuda_graph": "1"}), "CPUExecutionProvider"]


@pytest.mark.parametrize("name", ["vit_b_16", "convnext_tiny", "text_transformer"])
def test_deployment_export_rewrites_for_onnxruntime_cuda(name):
    """--fp16 --optimize: fused attention (unmasked) with the q/k/v biases taken in, residual sums with their
    LayerNorm fused, patch embeddings as matrix products, Sum as Add; the same
    function within the fp16 bound (onnxruntime's CPU runs the com.microsoft operators too)."""
    model = dlspec.load(SPECS / f"{name}.yaml")
    weights = random_weights(model, 0)
    full, half = dlspec.build(model, "onnx", weights), dlspec.build(model, "onnx", weights, fp16=True, optimize=True)
    ops = [n.op_type for n in half.graph.node]
    counts = {"vit_b_16": (12, 0, 24), "convnext_tiny": (0, 21, 0), "text_transformer": (2, 0, 4)}[name]
    assert (ops.count("MultiHeadAttention"), ops.count("Conv"), ops.count("SkipLayerNormalization")) == counts
    biased = [n for n in half.graph.node if n.op_type == "MultiHeadAttention" and len(n.input) == 4]
    assert len(biased) == counts[0] and "Split" not in ops  # each attention takes its projections' biases
    assert "Sum" not in ops and "Softmax" not in ops
    x = random_inputs(model, 2, 0)
    a, b = onnx_backend.run(full, x)[0], onnx_backend.run(half, x)[0]
    assert np.max(np.abs(a - b)) / np.max(np.abs(a)) <= FP16_BOUND
    plain_half = dlspec.build(model, "onnx", weights, fp16=True)  # without --optimize: standard operators only
    assert all(n.domain == "" for n in plain_half.graph.node)


def test_patchify_is_the_convolution():
    """A kernel-equals-stride convolution on a few-channel input, as Reshape/Transpose/MatMul: the same numbers;
    odd patch grids, no bias, and convolutions that do not qualify (padding, channels) are left alone."""
    from dlspec.backends.cuda_rewrites import patchify

    for layers, rewritten in (([{"type": "conv2d", "filters": 6, "kernel": 3, "stride": 3}], 1),
                              ([{"type": "conv2d", "filters": 6, "kernel": 3, "stride": 3, "use_bias": False}],
                               1),
                              ([{"type": "conv2d", "filters": 6, "kernel": 3, "stride": 3, "padding": 1}],
                               0),
                              ([{"type": "conv2d", "filters": 6, "kernel": 3, "stride": 2}], 0)):
        model = dlspec.from_dict({"dlspec": 1, "name": "p", "inputs": {"x": {"shape": [3, 9, 15]}},
                                  "layers": layers})
        proto = dlspec.build(model, "onnx", random_weights(model, 0))
        rewritten_proto = onnx.ModelProto()
        rewritten_proto.CopyFrom(proto)
        assert patchify(rewritten_proto) == rewritten
        onnx.checker.check_model(rewritten_proto, full_check=True)
        x = random_inputs(model, 2, 0)
        a, b = onnx_backend.run(proto, x)[0], onnx_backend.run(rewritten_proto, x)[0]
        assert a.shape == b.shape and np.max(np.abs(a - b)) <= 1e-5 * max(1.0, float(np.max(np.abs(a))))
