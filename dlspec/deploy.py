"""Running exported ONNX files with onnxruntime: provider choice, a one-line CPU fallback notice, no
telemetry, and a benchmark with IO binding."""

from __future__ import annotations

import os
import statistics
import sys
import time

from .errors import UsageError

PROVIDERS = {"cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}


TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64"}


def _ort():
    from .backends.onnx import import_onnxruntime

    return import_onnxruntime()


def cuda_defaults(half: bool) -> dict:
    """dlspec's CUDA provider options. float32 models: TF32 off, so float32 means float32 (onnxruntime
    enables TF32 by default). fp16 models: convolutions channels-last with the bias fused into cuDNN's
    kernel (1.4x the throughput of prefer_nhwc alone on an H100, docs/performance.md), and TF32 allowed, as
    onnxruntime's cuDNN-frontend convolutions read use_tf32=0 as "no tensor cores", fp16 included."""
    if half:
        return {"use_tf32": "1", "prefer_nhwc": "1", "fuse_conv_bias": "1"}
    return {"use_tf32": "0"}


def computes_in_half(model) -> bool:
    """Whether a ModelProto, bytes or path holds float16 weights (an export with --fp16)."""
    import onnx

    if not hasattr(model, "graph"):
        model = onnx.load_model_from_string(model) if isinstance(model, bytes) else \
            onnx.load(str(model), load_external_data=False)
    return any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)


def providers_for(provider: str, notice=sys.stderr, cuda_options: dict | None = None, model=None) -> list:
    """Execution providers for ``cuda``, ``cpu`` or ``auto``; says in one line when CUDA is missing.
    ``cuda_options`` add to (or override) ``cuda_defaults``, chosen by ``model``'s precision."""
    ort = _ort()
    if provider not in ("cuda", "cpu", "auto"):
        raise UsageError(f"--provider must be cuda, cpu or auto. Received: {provider!r}")
    available = ort.get_available_providers()
    if provider == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in available:
        half = model is not None and computes_in_half(model)  # read only when CUDA will run it
        return [("CUDAExecutionProvider", {**cuda_defaults(half), **(cuda_options or {})}), "CPUExecutionProvider"]
    if notice is not None:
        print(f"dlspec: CUDAExecutionProvider is not available in onnxruntime {ort.__version__} "
              f"(providers: {', '.join(available)}); running on CPU. Install dlspec[gpu] for onnxruntime-gpu.",
              file=notice or sys.stderr)
    return ["CPUExecutionProvider"]


def session(model, provider: str = "auto", notice=sys.stderr, cuda_options: dict | None = None, profile=None):
    """An InferenceSession for a ModelProto, bytes or path; CUDA when present (else CPU, with a notice).
    ``cuda_options``: extra CUDA provider options; ``profile``: a file prefix for onnxruntime's profile."""
    ort = _ort()
    options = ort.SessionOptions()
    options.log_severity_level = 4
    from . import threads

    if threads.current:  # set by --threads or its default (dlspec.threads)
        options.intra_op_num_threads = threads.current
    if profile:
        options.enable_profiling, options.profile_file_prefix = True, str(profile)
    source = model.SerializeToString() if hasattr(model, "SerializeToString") else str(model) \
        if isinstance(model, os.PathLike) else model
    providers = providers_for(provider, notice, cuda_options, model)
    sess = ort.InferenceSession(source, options, providers=providers)
    if len(providers) > 1 and sess.get_providers()[0] != "CUDAExecutionProvider" and notice is not None:
        print("dlspec: onnxruntime lists CUDAExecutionProvider but could not start it (CUDA or cuDNN libraries "
              "missing or mismatched); running on CPU.", file=notice)
    return sess


def run(model, inputs: dict, provider: str = "auto"):
    """Outputs for named numpy inputs."""
    sess = session(model, provider)
    return sess.run(None, inputs)


def bench(model, batch: int, provider: str = "auto", iterations: int = 50, warmup: int = 10, seed: int = 0,
          cuda_options: dict | None = None, profile=None) -> dict:
    """Throughput and latency percentiles with IO binding (inputs and outputs stay on the device)."""
    import numpy as np

    ort = _ort()
    sess = session(model, provider, cuda_options=cuda_options, profile=profile)
    on_cuda = sess.get_providers()[0] == "CUDAExecutionProvider"
    device = "cuda" if on_cuda else "cpu"
    rng = np.random.default_rng(seed)
    binding = sess.io_binding()
    for inp in sess.get_inputs():
        shape = [batch if not isinstance(d, int) else d for d in inp.shape]
        dtype = np.dtype(TYPES.get(inp.type, "float32"))
        data = rng.integers(0, 2, shape) if dtype == np.int64 else rng.standard_normal(shape)
        data = data.astype(dtype)
        binding.bind_ortvalue_input(inp.name, ort.OrtValue.ortvalue_from_numpy(data, device, 0))
    for out in sess.get_outputs():
        shape = [batch if isinstance(d, str) else d for d in out.shape]
        if all(isinstance(d, int) for d in shape) and out.type in TYPES:  # fixed addresses, as CUDA graphs need
            value = ort.OrtValue.ortvalue_from_shape_and_type(shape, np.dtype(TYPES[out.type]), device, 0)
            binding.bind_ortvalue_output(out.name, value)
        elif (cuda_options or {}).get("enable_cuda_graph") == "1" and on_cuda:
            raise UsageError(f"a CUDA graph replays fixed buffers, so every output's shape must follow from the "
                             f"batch. Received: output {out.name!r} of shape {out.shape}")
        else:
            binding.bind_output(out.name, device)
    for _ in range(warmup):
        sess.run_with_iobinding(binding)
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        sess.run_with_iobinding(binding)
        binding.synchronize_outputs()
        times.append(time.perf_counter() - start)
    times.sort()

    def pct(p):
        return times[min(len(times) - 1, int(round(p / 100 * (len(times) - 1))))] * 1e3

    median = statistics.median(times)
    result = {"provider": sess.get_providers()[0], "batch": batch, "iterations": iterations,
              "throughput": batch / median, "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99)}
    if profile:
        result["profile"] = sess.end_profiling()
    return result
