"""ResNet-50 (or ViT-B/16, --model) training on a GPU: `dlspec train` (bf16 autocast, channels_last) against
the best hand-written loop (the same: bf16 autocast plus channels_last), side by side on one card.

Synthetic ImageNet-sized data kept on the device; SGD with momentum; batch 256 by default. --compile: both sides
through torch.compile. --profile: one profiled stretch of steps per side (torch.profiler: GPU kernel time per step,
host synchronisations, and the kernels whose time differs most), to say where a gap goes.
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
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--steady", action="store_true", help="only the steady state (with --compile, fit would "
                        "compile the model again in each of its five calls)")
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = True
    spec = (f"dlspec: 1\nbase: {args.model}.yaml\nname: {args.model}_train\ntrain:\n  loss: cross_entropy\n"
            f"  optimizer: {{type: sgd, lr: 0.1, momentum: 0.9, weight_decay: 1.0e-4}}\n  batch_size: {args.batch}\n"
            f"  shuffle: false\n")
    path = Path(f"/tmp/{args.model}_train.yaml")
    path.write_text(spec)
    model = dlspec.load(path)
    n = args.batch * (args.steps + 5)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, *model.graph.inputs[0].shape), dtype=np.float32)
    y = rng.integers(0, 1000, n).astype(np.int64)
    data = Dataset(x, y, x[:0], y[:0], "synthetic")
    weights = dlspec.init_weights(model, 0)

    def ours(steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        fit(model, "torch", data, weights, device="cuda", progress=False, amp="bf16", channels_last=True, epochs=1,
            max_steps=steps, compile=args.compile)
        torch.cuda.synchronize()
        return time.perf_counter() - start

    # the hand-written loop: torchvision-structured model from the same generated source, bf16, NHWC
    net = dlspec.build(model, "torch", weights).cuda().to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, fused=True)
    forward = torch.compile(net) if args.compile else net
    xs = torch.from_numpy(x).cuda().contiguous(memory_format=torch.channels_last)
    ys = torch.from_numpy(y).cuda()

    def hand(steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(0, steps * args.batch, args.batch):
            xb, yb = xs[i:i + args.batch], ys[i:i + args.batch]
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                loss = torch.nn.functional.cross_entropy(forward(xb).float(), yb)
            loss.backward()
            opt.step()
        torch.cuda.synchronize()
        return time.perf_counter() - start

    if args.steady:
        print(f"{args.model} training, bf16 autocast + channels_last{', torch.compile' if args.compile else ''}, "
              f"batch {args.batch}, {torch.cuda.get_device_name()}, torch {torch.__version__}")
        return steady_steps(model, weights, data, hand, args)
    hand(5)  # warm-up: cudnn autotuning (and compilation)
    ours(5)
    t_ours, t_hand = [], []
    for _ in range(2):  # fit's set-up (model build, data to the GPU) cancels in the difference
        t_ours.append(ours(args.steps + 5) - ours(5))
        t_hand.append(hand(args.steps))
    images = args.steps * args.batch
    a, b = images / statistics.median(t_ours), images / statistics.median(t_hand)
    mode = ", torch.compile" if args.compile else ""
    print(f"{args.model} training, bf16 autocast + channels_last{mode}, batch {args.batch}, "
          f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    print(f"  dlspec train          {a:8.0f} img/s (steps 6..{args.steps + 5}: set-up cancels out; runs "
          f"{', '.join(f'{images / t:.0f}' for t in t_ours)})")
    print(f"  hand-written loop     {b:8.0f} img/s (runs {', '.join(f'{images / t:.0f}' for t in t_hand)})")
    print(f"  ratio: {a / b:.2f}x")
    steady_steps(model, weights, data, hand, args)


def steady_steps(model, weights, data, hand, args, steps: int = 6) -> None:
    """Steady state, without fit's set-up: dlspec's trainer step by step (as dlspec.train.loop drives it: batches
    gathered from the device copy, losses kept on the device) against the loop, in alternating rounds; --profile
    adds a profiled stretch of each."""
    import collections

    import torch
    from torch.profiler import ProfilerActivity, profile

    from dlspec.train.torch_loop import TorchTrainer

    cfg = model.spec.train
    trainer = TorchTrainer(model, weights, cfg, device="cuda", amp="bf16", channels_last=True, compile=args.compile)
    x, y = trainer.tensors(data.x_train, data.y_train)
    order = [list(range(i, i + args.batch)) for i in range(0, args.steps * args.batch, args.batch)]
    index = trainer.indices(order)

    def ours(k):
        losses = []
        for i in range(k):
            losses.append(trainer.step(trainer.take(x, index[i]), trainer.take(y, index[i]), 0.1)[0])
        return trainer.scalars(losses)

    for side, fn in (("dlspec", ours), ("hand", hand)):  # warm-up: cudnn autotuning (and compilation)
        start = time.perf_counter()
        fn(5)
        torch.cuda.synchronize()
        print(f"  {side} warm-up (5 steps{', compilation included' if args.compile else ''}): "
              f"{time.perf_counter() - start:.1f} s", flush=True)
    rounds = {"dlspec": [], "hand": []}
    for _ in range(3):
        for side, fn in (("dlspec", ours), ("hand", hand)):
            torch.cuda.synchronize()
            start = time.perf_counter()
            fn(args.steps)
            torch.cuda.synchronize()
            rounds[side].append(args.steps * args.batch / (time.perf_counter() - start))
    a, b = statistics.median(rounds["dlspec"]), statistics.median(rounds["hand"])
    print(f"  steady state, {args.steps} steps x 3 rounds: dlspec step {a:.0f} img/s "
          f"({', '.join(f'{v:.0f}' for v in rounds['dlspec'])}), hand-written {b:.0f} img/s "
          f"({', '.join(f'{v:.0f}' for v in rounds['hand'])}): {a / b:.3f}x")
    if not args.profile:
        return
    results = {}
    for side, fn in (("dlspec", ours), ("hand", hand)):
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            start = time.perf_counter()
            fn(steps)
            torch.cuda.synchronize()
            wall = (time.perf_counter() - start) / steps * 1e3
        kernels, syncs = collections.defaultdict(float), collections.Counter()
        for e in prof.events():
            if str(e.device_type).endswith("CUDA"):
                kernels[e.name] += e.device_time / steps / 1e3
            elif any(w in e.name for w in ("Synchronize", "cudaMemcpy", "item", "_local_scalar_dense")):
                syncs[e.name] += 1
        results[side] = (wall, kernels, syncs)
        print(f"  profiled {side:<7} {wall:7.2f} ms/step wall, {sum(kernels.values()):7.2f} ms/step in kernels, "
              f"{sum(len(k) for k in [kernels])} kernel names; host calls: {dict(syncs)}")
    a, b = results["dlspec"][1], results["hand"][1]
    diff = sorted(set(a) | set(b), key=lambda k: -abs(a.get(k, 0) - b.get(k, 0)))[:12]
    print("  kernels whose time differs most (ms per step, dlspec - hand):")
    for k in diff:
        print(f"    {a.get(k, 0):7.3f} {b.get(k, 0):7.3f} {a.get(k, 0) - b.get(k, 0):+7.3f}  {k[:100]}")


if __name__ == "__main__":
    main()
