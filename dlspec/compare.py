"""Side by side: dlspec's ONNX on onnxruntime against the torch model run eagerly and through torch.compile.

What a user who wants speed would pick instead of dlspec's deployment path, measured in one process with the
same weights and the same input. Every path is checked against the first one's output before it is timed, so a
fast wrong answer cannot win.

The onnxruntime paths run through :class:`dlspec.deploy.Predictor`: inputs and outputs bound once on the device
(IO binding). ``onnxruntime cuda-graph`` adds onnxruntime's ``enable_cuda_graph``: the warm-up runs let it
capture the run, and the timed runs replay it, as ``torch.compile reduce-overhead`` replays torch's. On
``--device cuda`` the default paths are onnxruntime, onnxruntime cuda-graph, torch, torch.compile and
torch.compile reduce-overhead; on the CPU the same without the CUDA graph. ``onnxruntime tensorrt`` (TensorRT
builds engines for minutes, and is rarely installed) runs on request; both need ``--device cuda``.
"""

from __future__ import annotations

import statistics
import sys
import time
from dataclasses import dataclass

from .errors import UsageError

PATHS = ("onnxruntime", "torch", "torch.compile", "torch.compile reduce-overhead", "onnxruntime tensorrt",
         "onnxruntime cuda-graph")
DEFAULT_PATHS = PATHS[:4]  # on the CPU; TensorRT on request: it builds engines for minutes, and is rarely installed
CUDA_PATHS = ("onnxruntime", "onnxruntime cuda-graph", "torch", "torch.compile", "torch.compile reduce-overhead")
CUDA_ONLY = ("onnxruntime tensorrt", "onnxruntime cuda-graph")


def default_paths(device: str) -> tuple:
    """The paths compared when none are named: on cuda with onnxruntime's CUDA graph, on the CPU without."""
    return CUDA_PATHS if device == "cuda" else DEFAULT_PATHS


@dataclass
class Timing:
    """One path's figures: throughput from the median step, latency percentiles in milliseconds."""

    path: str
    batch: int
    throughput: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_diff: float  # largest |output - first path's output|, relative to max(1, |reference|)
    note: str = ""


def _percentiles(times: list[float], batch: int) -> dict:
    times = sorted(times)

    def pct(p):
        return times[min(len(times) - 1, int(round(p / 100 * (len(times) - 1))))] * 1e3

    return {"throughput": batch / statistics.median(times), "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99)}


def time_steps(step, sync, iterations: int, warmup: int) -> list[float]:
    """Seconds of each of ``iterations`` runs of ``step`` (each ended by ``sync``), after ``warmup`` runs."""
    for _ in range(warmup):
        step()
    sync()
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - start)
    return times


def _inputs(model, batch: int, seed: int) -> list:
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for inp in model.graph.inputs:
        if inp.dtype == "int64":
            out.append(rng.integers(0, 2, (batch, *inp.shape)).astype(np.int64))
        else:
            out.append(rng.standard_normal((batch, *inp.shape)).astype(np.float32))
    return out


def _onnx_step(model, weights, inputs, device: str, fp16: bool, provider: str = "cuda", notice=None,
               cuda_graph: bool = False):
    """A function running dlspec's ONNX once through a :class:`dlspec.deploy.Predictor` (inputs and outputs bound
    on the device), the function that waits for it, and its outputs; ``provider="tensorrt"``: TensorRT when it can
    start, else CUDA after a one-line ``notice``; ``cuda_graph``: replayed as a CUDA graph after the first run."""
    import numpy as np

    from .api import build
    from .deploy import ON_DEVICE, Predictor, _ort

    cuda_missing = UsageError("onnxruntime could not start its CUDA provider (install dlspec[gpu]). Received: "
                              "--device cuda")
    if device == "cuda" and "CUDAExecutionProvider" not in _ort().get_available_providers():
        raise cuda_missing
    proto = build(model, "onnx", weights, fp16=fp16, optimize=True)
    predictor = Predictor(proto, len(inputs[0]), provider if device == "cuda" else "cpu", cuda_graph=cuda_graph,
                          notice=notice if provider == "tensorrt" else None)
    sess, binding = predictor.session, predictor.binding
    if device == "cuda" and sess.get_providers()[0] not in ON_DEVICE:
        raise cuda_missing
    predictor.load({inp.name: x for inp, x in zip(sess.get_inputs(), inputs)})

    def step():
        sess.run_with_iobinding(binding)

    predictor.run()
    results = [np.asarray(y, dtype=np.float32) for y in predictor.outputs()]
    return step, binding.synchronize_outputs, results


def _torch_model(model, weights, device: str, fp16: bool):
    import torch

    from .api import build

    net = build(model, "torch", weights).eval().to(device)
    images = all(len(i.shape) == 3 for i in model.graph.inputs)
    if fp16:
        net = net.half()
    if images and device == "cuda":
        net = net.to(memory_format=torch.channels_last)
    return net, images


def _torch_inputs(inputs, device: str, fp16: bool, images: bool):
    import torch

    out = []
    for x in inputs:
        t = torch.from_numpy(x).to(device)
        if t.is_floating_point() and fp16:
            t = t.half()
        if images and device == "cuda" and t.dim() == 4:
            t = t.contiguous(memory_format=torch.channels_last)
        out.append(t)
    return out


def _torch_step(fn, args, device: str):
    import torch

    outputs = []

    def step():
        with torch.inference_mode():
            outputs[:] = [fn(*args)]

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    step()
    sync()
    first = outputs[0]
    results = [o.float().cpu().numpy() for o in (first if isinstance(first, tuple) else (first,))]
    return step, sync, results


def compare(model, weights=None, *, batch: int = 1, device: str = "cpu", fp16: bool = False,
            iterations: int = 50, warmup: int = 10, seed: int = 0, paths=None,
            notice=sys.stderr) -> list[Timing]:
    """Time each of ``paths`` (default: :func:`default_paths` for ``device``) on the same weights and input; the
    first path is the reference for ``max_diff``.

    ``fp16``: half precision in every path (onnxruntime: dlspec's --fp16 export; torch: ``model.half()``); on CUDA,
    image models run channels-last in torch, the layout torch users pick for speed.
    """
    import numpy as np

    from .weights import init_weights

    paths = default_paths(device) if paths is None else paths
    _check_paths(paths, device, fp16)
    weights = weights if weights is not None else init_weights(model, 0)
    inputs = _inputs(model, batch, seed)
    timings, reference = [], None
    for path in paths:
        if notice is not None:
            print(f"dlspec compare: {path} ...", file=notice, flush=True)
        if path.startswith("onnxruntime"):
            step, sync, outs = _onnx_step(model, weights, inputs, device, fp16,
                                          "tensorrt" if path.endswith("tensorrt") else "cuda", notice,
                                          cuda_graph=path.endswith("cuda-graph"))
        else:
            import torch

            net, images = _torch_model(model, weights, device, fp16)
            fn = net if path == "torch" else torch.compile(
                net, mode="reduce-overhead" if path.endswith("reduce-overhead") else None)
            step, sync, outs = _torch_step(fn, _torch_inputs(inputs, device, fp16, images), device)
        reference = outs if reference is None else reference
        diff = max(float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b))))) for a, b in zip(outs, reference))
        figures = _percentiles(time_steps(step, sync, iterations, warmup), batch)
        timings.append(Timing(path, batch, max_diff=diff, **figures))
    return timings


def _check_paths(paths, device: str, fp16: bool) -> None:
    """Refuse, before any path runs, an unknown path, device, fp16 off CUDA, and a CUDA-only path off CUDA."""
    unknown = [p for p in paths if p not in PATHS]
    if unknown:
        raise UsageError(f"unknown path {unknown[0]!r}; choose from {', '.join(PATHS)}")
    if device not in ("cpu", "cuda"):
        raise UsageError(f"--device must be cpu or cuda. Received: {device}")
    if fp16 and device != "cuda":
        raise UsageError("--fp16 needs --device cuda (half precision on the CPU is not what anyone deploys)")
    for path in paths:
        if path in CUDA_ONLY and device != "cuda":
            raise UsageError(f"the path {path} needs --device cuda. Received: --device {device}")


def table(timings: list[Timing], baseline: str = "torch") -> str:
    """The side-by-side table, with each path's throughput as a ratio of ``baseline``'s and of torch.compile's."""
    by = {t.path: t for t in timings}
    base = by.get(baseline, timings[0])
    compiled = by.get("torch.compile")
    head = f"{'path':<32} {'samples/s':>11} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'vs ' + base.path:>12}"
    head += f" {'vs compile':>11}" if compiled else ""
    lines = [head + f" {'max diff':>9}", "-" * (len(head) + 10)]
    for t in timings:
        row = (f"{t.path:<32} {t.throughput:>11.1f} {t.p50_ms:>8.3f} {t.p90_ms:>8.3f} {t.p99_ms:>8.3f} "
               f"{t.throughput / base.throughput:>11.2f}x")
        row += f" {t.throughput / compiled.throughput:>10.2f}x" if compiled else ""
        lines.append(row + f" {t.max_diff:>9.1e}")
    return "\n".join(lines)
