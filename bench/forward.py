"""Forward speed of dlspec's generated models against hand-written equivalents, side by side.

    python bench/forward.py                      # torch and keras, resnet50, CPU, batch 8
    python bench/forward.py --framework torch --device cuda --batch 64

torch: the generated torch model vs torchvision.models.<model> (same weights), target >= 0.98x for resnet50
(--model resnet50, mobilenet_v2, convnext_tiny or vit_b_16).
keras: the generated Keras resnet50 vs keras.applications.ResNet50 (ResNet v1: the stride sits on the
first 1x1 convolution and convolutions have biases, so the work differs slightly; dlspec's model also
takes NCHW input and permutes it once), or keras.applications.MobileNetV2 / ConvNeXtTiny; vit_b_16 has
no Keras baseline, so `all` runs only torch for it. Each framework runs in its own process (torchvision
and TensorFlow cannot share one here). Timings alternate between the two models in ABBA order; medians
are reported, with the spread (max - min) / median of dlspec's runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("resnet18", "resnet50", "mobilenet_v2", "convnext_tiny", "vit_b_16")
KERAS_APPS = {"resnet50": "ResNet50", "mobilenet_v2": "MobileNetV2", "convnext_tiny": "ConvNeXtTiny"}


def _timed(fn, sync) -> float:
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def _alternate(a, b, repeats: int, warmup: int, sync) -> tuple[list[float], list[float]]:
    for _ in range(warmup):
        a(), b()
    ta, tb = [], []
    for i in range(repeats):  # ABBA order: whichever runs second in a pair has no systematic advantage
        if i % 2:
            tb.append(_timed(b, sync))
            ta.append(_timed(a, sync))
        else:
            ta.append(_timed(a, sync))
            tb.append(_timed(b, sync))
    return ta, tb


def bench_torch(args) -> dict:
    import torch
    import torchvision

    import dlspec

    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    spec = dlspec.load(ROOT / "specs" / f"{args.model}.yaml")
    reference = getattr(torchvision.models, args.model)(weights=None).eval().to(device)
    weights = {k: v.detach().cpu().numpy() for k, v in reference.state_dict().items()
               if not k.endswith("num_batches_tracked")}
    ours = dlspec.build(spec, "torch", weights).eval().to(device)
    x = torch.randn(args.batch, 3, 224, 224, device=device)
    with torch.no_grad():
        diff = float((ours(x) - reference(x)).abs().max())

        def sync():
            if device.type == "cuda":
                torch.cuda.synchronize()

        ta, tb = _alternate(lambda: ours(x), lambda: reference(x), args.repeats, args.warmup, sync)
    name = torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or platform.machine()
    return {"framework": "torch", "versions": f"torch {torch.__version__}, torchvision {torchvision.__version__}",
            "device": f"{args.device} ({name})", "ours": ta, "baseline": tb, "baseline_name": "torchvision",
            "max_abs_diff": diff}


def bench_keras(args) -> dict:
    from dlspec.backends.keras import import_keras

    keras = import_keras()
    import numpy as np

    import dlspec

    spec = dlspec.load(ROOT / "specs" / f"{args.model}.yaml")
    ours = dlspec.build(spec, "keras", dlspec.init_weights(spec, 0))
    app = KERAS_APPS[args.model]
    baseline = getattr(keras.applications, app)(weights=None)
    x_nchw = np.random.default_rng(0).standard_normal((args.batch, 3, 224, 224)).astype(np.float32)
    x_nhwc = np.ascontiguousarray(x_nchw.transpose(0, 2, 3, 1))
    ta, tb = _alternate(lambda: ours(x_nchw, training=False).numpy(),
                        lambda: baseline(x_nhwc, training=False).numpy(), args.repeats, args.warmup, lambda: None)
    import tensorflow as tf

    return {"framework": "keras", "versions": f"keras {keras.__version__}, tensorflow {tf.__version__}",
            "device": "cpu", "ours": ta, "baseline": tb, "baseline_name": f"keras.applications.{app}",
            "max_abs_diff": None}


def report(result: dict, args) -> str:
    ours, base = statistics.median(result["ours"]), statistics.median(result["baseline"])
    spread = (max(result["ours"]) - min(result["ours"])) / ours
    lines = [f"{result['framework']}: {args.model}, batch {args.batch}, {result['device']}, {result['versions']}",
             f"  dlspec generated      {args.batch / ours:9.1f} img/s  (median {ours * 1e3:.1f} ms of "
             f"{len(result['ours'])}, spread {spread:.0%})",
             f"  {result['baseline_name']:<21} {args.batch / base:9.1f} img/s  (median {base * 1e3:.1f} ms)",
             f"  ratio dlspec / baseline: {base / ours:.3f}x"]
    if result["max_abs_diff"] is not None:
        lines.append(f"  max |output difference| with the same weights: {result['max_abs_diff']:.2e}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--framework", choices=("torch", "keras", "all"), default="all")
    parser.add_argument("--model", choices=MODELS, default="resnet50")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.framework == "keras" and args.model not in KERAS_APPS:
        parser.error(f"keras.applications has no {args.model}")
    if args.framework == "all":
        print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        for framework in ("torch", "keras") if args.model in KERAS_APPS else ("torch",):
            cmd = [sys.executable, __file__, "--framework", framework, "--model", args.model, "--device", args.device,
                   "--batch", str(args.batch), "--repeats", str(args.repeats), "--warmup", str(args.warmup)]
            subprocess.run(cmd, check=True)
        return
    result = bench_torch(args) if args.framework == "torch" else bench_keras(args)
    print(json.dumps(result) if args.json else report(result, args), flush=True)


if __name__ == "__main__":
    main()
