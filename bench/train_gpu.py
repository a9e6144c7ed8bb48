"""ResNet-50 training on a GPU: `dlspec train` (bf16 autocast, channels_last) against the best
hand-written loop (the same: bf16 autocast plus channels_last), side by side on one card.

Synthetic ImageNet-sized data kept on the device; SGD with momentum; batch 256 by default.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import numpy as np
    import torch

    import dlspec
    from dlspec.train import fit
    from dlspec.train.data import Dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = True
    spec = (f"dlspec: 1\nbase: resnet50.yaml\nname: resnet50_train\ntrain:\n  loss: cross_entropy\n"
            f"  optimizer: {{type: sgd, lr: 0.1, momentum: 0.9, weight_decay: 1.0e-4}}\n  batch_size: {args.batch}\n"
            f"  shuffle: false\n")
    path = Path("/tmp/resnet50_train.yaml")
    path.write_text(spec)
    model = dlspec.load(path)
    n = args.batch * (args.steps + 5)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 3, 224, 224), dtype=np.float32)
    y = rng.integers(0, 1000, n).astype(np.int64)
    data = Dataset(x, y, x[:0], y[:0], "synthetic")
    weights = dlspec.init_weights(model, 0)

    def ours(steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fit(model, "torch", data, weights, device="cuda", progress=False, amp="bf16", channels_last=True, epochs=1,
            max_steps=steps)
        torch.cuda.synchronize()
        return time.perf_counter() - start

    # the hand-written loop: torchvision-structured model from the same generated source, bf16, NHWC
    net = dlspec.build(model, "torch", weights).cuda().to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, fused=True)
    xs = torch.from_numpy(x).cuda().contiguous(memory_format=torch.channels_last)
    ys = torch.from_numpy(y).cuda()

    def hand(steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(0, steps * args.batch, args.batch):
            xb, yb = xs[i:i + args.batch], ys[i:i + args.batch]
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = torch.nn.functional.cross_entropy(net(xb).float(), yb)
            loss.backward()
            opt.step()
        torch.cuda.synchronize()
        return time.perf_counter() - start

    hand(5)  # warm-up: cudnn autotuning
    ours(5)
    t_ours, t_hand = [], []
    for _ in range(2):  # fit's set-up (model build, data to the GPU) cancels in the difference
        t_ours.append(ours(args.steps + 5) - ours(5))
        t_hand.append(hand(args.steps))
    images = args.steps * args.batch
    a, b = images / statistics.median(t_ours), images / statistics.median(t_hand)
    print(f"ResNet-50 training, bf16 autocast + channels_last, batch {args.batch}, {torch.cuda.get_device_name()}, "
          f"torch {torch.__version__}")
    print(f"  dlspec train          {a:8.0f} img/s (steps 6..{args.steps + 5}: set-up cancels out)")
    print(f"  hand-written loop     {b:8.0f} img/s")
    print(f"  ratio: {a / b:.2f}x")


if __name__ == "__main__":
    main()
