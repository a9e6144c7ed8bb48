"""GPU checks and benchmarks for the device machine (one H100): run with PYTHONPATH holding dlspec's
dependencies and onnxruntime-gpu. Prints a table per part; everything is measured side by side.

1. GPU parity on ResNet-50 (random weights, calibrated BatchNorm): onnxruntime CUDA fp32 and torch CUDA
   fp32 with TF32 off, each against the CPU reference; the fp16 export on CUDA against the fp32 reference.
2. ResNet-50 inference, batch 256: dlspec's fp16 ONNX on onnxruntime-gpu (IO binding), with dlspec's
   CUDA provider defaults and with the alternatives in CONFIGS, against torch fp16 channels_last eager on
   the same card (``inference --profile`` adds per-operator and per-kernel times).
3. Seed MLP training, batch 32: `dlspec train --device cuda`, eager and with --cuda-graph, against the
   seed's hand-written loop (timed before and after).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parity(torch, dlspec, np):
    from dlspec.deploy import session

    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    model = dlspec.load(ROOT / "specs" / "resnet50.yaml")
    from dlspec.parity import random_weights

    weights = random_weights(model, 0)
    x = np.random.default_rng(0).standard_normal((8, 3, 224, 224)).astype(np.float32)
    net = dlspec.build(model, "torch", weights).eval()
    with torch.no_grad():
        cpu_ref = net(torch.from_numpy(x)).numpy()
        gpu_torch = net.cuda()(torch.from_numpy(x).cuda()).cpu().numpy()
    proto = dlspec.build(model, "onnx", weights)
    ort_cuda = session(proto, "cuda")
    assert ort_cuda.get_providers()[0] == "CUDAExecutionProvider", ort_cuda.get_providers()
    gpu_ort = ort_cuda.run(None, {"image": x})[0]
    half = session(dlspec.build(model, "onnx", weights, fp16=True), "cuda").run(None, {"image": x})[0]
    scale = float(np.max(np.abs(cpu_ref)))
    rows = [("onnxruntime CUDA fp32 vs CPU reference", gpu_ort), ("torch CUDA fp32 vs CPU reference", gpu_torch),
            ("onnxruntime CUDA fp16 vs CPU reference", half)]
    print(f"GPU parity, resnet50, batch 8, max |reference| {scale:.3f}, TF32 off")
    for label, y in rows:
        d = float(np.max(np.abs(y - cpu_ref)))
        print(f"  {label:<60} max abs {d:.3e}  relative {d / scale:.3e}")
    d = float(np.max(np.abs(gpu_ort - gpu_torch)))
    print(f"  {'onnxruntime CUDA fp32 vs torch CUDA fp32':<42} max abs {d:.3e}  relative {d / scale:.3e}")


CONFIGS = {  # CUDA provider options tried side by side, each on top of dlspec's defaults for fp16 models
    "dlspec defaults (prefer_nhwc, fuse_conv_bias, TF32 allowed)": None,
    "NCHW": {"prefer_nhwc": "0", "fuse_conv_bias": "0"},
    "NCHW, use_tf32=0": {"prefer_nhwc": "0", "fuse_conv_bias": "0", "use_tf32": "0"},
    "prefer_nhwc alone": {"fuse_conv_bias": "0"},
    "prefer_nhwc, use_tf32=0": {"fuse_conv_bias": "0", "use_tf32": "0"},
    "defaults + HEURISTIC conv algos": {"cudnn_conv_algo_search": "HEURISTIC"},
    "defaults + CUDA graph": {"enable_cuda_graph": "1"},
}


def ort_profile(path, batch, options):
    """Per-operator GPU kernel time (ms per run) from onnxruntime's profiler."""
    import json

    from dlspec.deploy import bench

    result = bench(path, batch, "cuda", iterations=5, warmup=5, cuda_options=options, profile="/tmp/ort_profile")
    events = json.loads(Path(result["profile"]).read_text())
    runs = sum(1 for e in events if e.get("name") == "model_run")
    totals = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            op = e["args"].get("op_name", "?")
            totals[op] = totals.get(op, 0.0) + e["dur"] / 1e3 / runs
    return totals


def torch_profile(torch, net, x):
    """GPU kernel time (ms per forward) by kernel family from torch's profiler."""
    from torch.profiler import ProfilerActivity, profile

    with torch.no_grad(), profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            net(x)
        torch.cuda.synchronize()
    totals = {}
    for e in prof.key_averages():
        if e.device_type == torch.autograd.DeviceType.CUDA:  # kernels only: operators would count them twice
            totals[e.key[:70]] = totals.get(e.key[:70], 0.0) + e.device_time_total / 1e3 / 5
    return totals


def inference(torch, dlspec, np, batch=256, iterations=30):
    from dlspec.deploy import bench

    model = dlspec.load(ROOT / "specs" / "resnet50.yaml")
    weights = dlspec.init_weights(model, 0)
    path = Path("/tmp/resnet50_fp16.onnx")
    path.write_bytes(dlspec.build(model, "onnx", weights, fp16=True, optimize=True).SerializeToString())
    net = dlspec.build(model, "torch", weights).eval().cuda().half().to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, 224, 224, device="cuda").half().to(memory_format=torch.channels_last)

    def torch_rate():
        times = []
        with torch.no_grad():
            for i in range(10 + iterations):
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                net(x)
                end.record()
                torch.cuda.synchronize()
                if i >= 10:
                    times.append(start.elapsed_time(end) / 1e3)
        return batch / statistics.median(times)

    print(f"ResNet-50 inference, batch {batch}, {torch.cuda.get_device_name()}; dlspec ONNX = --fp16 --optimize, "
          "onnxruntime-gpu with IO binding")
    base = torch_rate()
    print(f"  torch fp16 channels_last eager{'':<34}{base:9.0f} img/s")
    import onnxruntime

    onnxruntime.set_default_logger_severity(4)  # cuDNN-frontend fallbacks log one error line per convolution
    rates = {}
    for label, options in CONFIGS.items():
        try:
            r = bench(path, batch, "cuda", iterations=iterations, warmup=10, cuda_options=options)
        except Exception as e:  # an option this onnxruntime build lacks: say so, go on
            print(f"  ORT {label:<60} failed: {str(e).splitlines()[0][:100]}")
            continue
        rates[label] = r["throughput"]
        print(f"  ORT {label:<60} {r['throughput']:9.0f} img/s  p50 {r['p50_ms']:.1f} ms  "
              f"({r['throughput'] / base:.2f}x)")
    again = torch_rate()
    print(f"  torch again (drift check){'':<38}{again:9.0f} img/s")
    default = rates.get(next(iter(CONFIGS)), 0.0)
    print(f"  dlspec defaults / faster torch run: {default / max(base, again):.2f}x; best configuration: "
          f"{max(rates.values(), default=0.0) / max(base, again):.2f}x")
    if "--profile" in sys.argv:
        ort_ops = ort_profile(path, batch, None)
        print("  onnxruntime with dlspec's defaults, ms per run by operator (host-side times): " +
              ", ".join(f"{k} {v:.2f}" for k, v in sorted(ort_ops.items(), key=lambda kv: -kv[1])))
        print(f"    total {sum(ort_ops.values()):.2f} ms")
        ops = torch_profile(torch, net, x)
        print("  torch, ms per forward by kernel:")
        for k, v in sorted(ops.items(), key=lambda kv: -kv[1])[:14]:
            print(f"    {v:7.2f}  {k}")
        print(f"    total {sum(ops.values()):.2f} ms")


def latency(torch, dlspec, np, iterations=200):
    """ResNet-50 fp16 latency at small and large batches: onnxruntime with and without CUDA graph replay
    (``dlspec bench --cuda-graph``), and torch fp16 channels_last eager, side by side."""
    from dlspec.deploy import bench

    model = dlspec.load(ROOT / "specs" / "resnet50.yaml")
    weights = dlspec.init_weights(model, 0)
    path = Path("/tmp/resnet50_fp16.onnx")
    path.write_bytes(dlspec.build(model, "onnx", weights, fp16=True, optimize=True).SerializeToString())
    net = dlspec.build(model, "torch", weights).eval().cuda().half().to(memory_format=torch.channels_last)
    print(f"ResNet-50 fp16 latency (p50, ms), {torch.cuda.get_device_name()}, {iterations} runs after warm-up")
    print(f"  {'batch':>5}  {'ORT':>8}  {'ORT + CUDA graph':>16}  {'torch eager':>11}")
    for batch in (1, 8, 64, 256):
        plain = bench(path, batch, "cuda", iterations=iterations, warmup=20)
        graph = bench(path, batch, "cuda", iterations=iterations, warmup=20, cuda_options={"enable_cuda_graph": "1"})
        x = torch.randn(batch, 3, 224, 224, device="cuda").half().to(memory_format=torch.channels_last)
        times = []
        with torch.no_grad():
            for i in range(20 + iterations):
                torch.cuda.synchronize()
                start = time.perf_counter()
                net(x)
                torch.cuda.synchronize()
                if i >= 20:
                    times.append(time.perf_counter() - start)
        print(f"  {batch:>5}  {plain['p50_ms']:8.2f}  {graph['p50_ms']:16.2f}  {statistics.median(times) * 1e3:11.2f}")


def training(torch, dlspec, np):
    from dlspec.train import fit
    from dlspec.train.data import Dataset

    text = (ROOT / "specs" / "mnist_mlp.yaml").read_text() + (
        "train:\n  loss: cross_entropy\n  optimizer: {type: adam, lr: 1.0e-3}\n  metrics: [accuracy]\n"
        "  epochs: 1\n  batch_size: 32\n")
    model = dlspec.loads(text, "mnist_mlp.yaml")
    rng = np.random.default_rng(0)
    n = 32000
    x = rng.random((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n).astype(np.int64)
    data = Dataset(x, y, x[:0], y[:0], "synthetic")
    weights = dlspec.init_weights(model, 0)

    def ours(**options):
        fit(model, "torch", data, weights, device="cuda", progress=False, max_steps=50, **options)
        torch.cuda.synchronize()
        start = time.perf_counter()
        fit(model, "torch", data, weights, device="cuda", progress=False, **options)
        torch.cuda.synchronize()
        return (n // 32) / (time.perf_counter() - start)

    net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                              torch.nn.Linear(256, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)).cuda()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                                         batch_size=32, shuffle=True)

    def seed():
        start = time.perf_counter()
        for xb, yb in loader:
            xb, yb = xb.cuda(), yb.cuda()
            opt.zero_grad()
            loss = loss_fn(net(xb), yb)
            loss.backward()
            opt.step()
            loss.item()
        torch.cuda.synchronize()
        return (n // 32) / (time.perf_counter() - start)

    rates = {"seed hand-written loop": seed(), "dlspec train --device cuda": ours(),
             "dlspec train --device cuda --cuda-graph": ours(cuda_graph=True), "seed loop again": seed()}
    print("Seed MLP training (Adam, dropout, accuracy), batch 32, one epoch of 32,000 samples")
    for label, rate in rates.items():
        print(f"  {label:<60} {rate:8.0f} steps/s")
    base = max(rates["seed hand-written loop"], rates["seed loop again"])
    print(f"  ratio (--cuda-graph / faster seed run): {rates['dlspec train --device cuda --cuda-graph'] / base:.2f}x;"
          f" eager {rates['dlspec train --device cuda'] / base:.2f}x")


def main():
    import numpy as np
    import torch

    import dlspec

    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    parts = {"parity": parity, "inference": inference, "latency": latency, "training": training}
    for name in [a for a in sys.argv[1:] if not a.startswith("--")] or parts:
        parts[name](torch, dlspec, np)


if __name__ == "__main__":
    main()
