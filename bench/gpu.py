"""GPU checks and benchmarks for the device machine (one H100): run with PYTHONPATH holding dlspec's
dependencies and onnxruntime-gpu. Prints a table per part; everything is measured side by side.

1. GPU parity on ResNet-50 (random weights, calibrated BatchNorm): onnxruntime CUDA fp32 and torch CUDA
   fp32 with TF32 off, each against the CPU reference; the fp16 export on CUDA against the fp32 reference.
2. ResNet-50 inference, batch 256: dlspec's fp16 ONNX on onnxruntime-gpu (IO binding) against torch fp16
   channels_last eager on the same card.
3. Seed MLP training, batch 32: `dlspec train --device cuda` against the seed's hand-written loop.
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
        print(f"  {label:<42} max abs {d:.3e}  relative {d / scale:.3e}")
    d = float(np.max(np.abs(gpu_ort - gpu_torch)))
    print(f"  {'onnxruntime CUDA fp32 vs torch CUDA fp32':<42} max abs {d:.3e}  relative {d / scale:.3e}")


def inference(torch, dlspec, np, batch=256, iterations=30):
    from dlspec.deploy import bench

    model = dlspec.load(ROOT / "specs" / "resnet50.yaml")
    weights = dlspec.init_weights(model, 0)
    path = Path("/tmp/resnet50_fp16.onnx")
    path.write_bytes(dlspec.build(model, "onnx", weights, fp16=True, optimize=True).SerializeToString())
    ort = bench(path, batch, "cuda", iterations=iterations, warmup=10)
    ort_nhwc = bench(path, batch, "cuda", iterations=iterations, warmup=10, nhwc=True)
    net = dlspec.build(model, "torch", weights).eval().cuda().half().to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, 224, 224, device="cuda").half().to(memory_format=torch.channels_last)
    times = []
    with torch.no_grad():
        for i in range(10 + iterations):
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            net(x)
            end.record()
            torch.cuda.synchronize()
            if i >= 10:
                times.append(start.elapsed_time(end) / 1e3)
    torch_rate = batch / statistics.median(times)
    print(f"ResNet-50 inference, batch {batch}, {torch.cuda.get_device_name()}")
    print(f"  dlspec ONNX fp16 (optimized) on ORT   {ort['throughput']:9.0f} img/s  (p50 {ort['p50_ms']:.1f} ms)")
    print(f"  torch fp16 channels_last eager        {torch_rate:9.0f} img/s")
    print(f"  same, CUDA provider prefer_nhwc        {ort_nhwc['throughput']:9.0f} img/s  "
          f"(p50 {ort_nhwc['p50_ms']:.1f} ms)")
    print(f"  ratio (best ORT / torch): {max(ort['throughput'], ort_nhwc['throughput']) / torch_rate:.2f}x")


def training(torch, dlspec, np):
    from dlspec.train import fit
    from dlspec.train.data import Dataset

    text = (ROOT / "specs" / "mnist_mlp.yaml").read_text() + (
        "train:\n  loss: cross_entropy\n  optimizer: {type: adam, lr: 1.0e-3}\n  epochs: 1\n  batch_size: 32\n")
    model = dlspec.loads(text, "mnist_mlp.yaml")
    rng = np.random.default_rng(0)
    n = 32000
    x = rng.random((n, 784), dtype=np.float32)
    y = rng.integers(0, 10, n).astype(np.int64)
    data = Dataset(x, y, x[:0], y[:0], "synthetic")
    weights = dlspec.init_weights(model, 0)
    fit(model, "torch", data, weights, device="cuda", progress=False, max_steps=50)
    torch.cuda.synchronize()
    start = time.perf_counter()
    fit(model, "torch", data, weights, device="cuda", progress=False)
    torch.cuda.synchronize()
    ours = (n // 32) / (time.perf_counter() - start)

    net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                              torch.nn.Linear(256, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)).cuda()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                                         batch_size=32, shuffle=True)
    start = time.perf_counter()
    for xb, yb in loader:
        xb, yb = xb.cuda(), yb.cuda()
        opt.zero_grad()
        loss = loss_fn(net(xb), yb)
        loss.backward()
        opt.step()
        loss.item()
    torch.cuda.synchronize()
    seed = (n // 32) / (time.perf_counter() - start)
    print("Seed MLP training, batch 32, one epoch of 32,000 samples")
    print(f"  dlspec train --device cuda    {ours:8.0f} steps/s")
    print(f"  seed hand-written loop        {seed:8.0f} steps/s")
    print(f"  ratio: {ours / seed:.2f}x")


def main():
    import numpy as np
    import torch

    import dlspec

    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    parts = {"parity": parity, "inference": inference, "training": training}
    for name in sys.argv[1:] or parts:
        parts[name](torch, dlspec, np)


if __name__ == "__main__":
    main()
