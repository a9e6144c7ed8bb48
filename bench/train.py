"""`dlspec train` (torch backend, CPU) against the seed's hand-written loop, side by side.

The seed loop is the primer's: nn.Sequential MLP 784-256-128-10, Adam, CrossEntropyLoss, batches from
DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True). dlspec's loop indexes a seeded
permutation of tensors that stay where they are. Both train the same model on the same synthetic
MNIST-sized data for one epoch; epochs alternate (ABBA) and medians are reported. Target: >= 1.2x.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    import numpy as np
    import torch

    import dlspec
    from dlspec.train import fit
    from dlspec.train.data import Dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=12800)
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    text = (ROOT / "specs" / "mnist_mlp.yaml").read_text() + (
        "train:\n  loss: cross_entropy\n  optimizer: {type: adam, lr: 1.0e-3}\n  epochs: 1\n  batch_size: 32\n")
    model = dlspec.loads(text, "mnist_mlp.yaml")
    rng = np.random.default_rng(0)
    x = rng.random((args.samples, 784), dtype=np.float32)
    y = rng.integers(0, 10, args.samples).astype(np.int64)
    data = Dataset(x, y, x[:0], y[:0], "synthetic")
    weights = dlspec.init_weights(model, 0)

    def ours():
        fit(model, "torch", data, weights, progress=False)

    def seed_loop():
        net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                                  torch.nn.Linear(256, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        criterion = torch.nn.CrossEntropyLoss()
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                                             batch_size=32, shuffle=True)
        net.train()
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = criterion(net(xb), yb)
            loss.backward()
            optimizer.step()
            loss.item()  # the seed prints running losses

    def timed(fn):
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start

    ours(), seed_loop()  # warm-up
    t_ours, t_seed = [], []
    for i in range(args.repeats):
        pair = [(t_ours, ours), (t_seed, seed_loop)]
        for times, fn in (pair if i % 2 == 0 else pair[::-1]):
            times.append(timed(fn))
    steps = -(-args.samples // 32)
    a, b = statistics.median(t_ours), statistics.median(t_seed)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}")
    print(f"seed MLP, batch 32, {args.samples} samples ({steps} steps) per epoch, median of {args.repeats}")
    print(f"  dlspec train (torch)        {steps / a:8.0f} steps/s  ({a:.2f} s per epoch)")
    print(f"  seed loop with DataLoader   {steps / b:8.0f} steps/s  ({b:.2f} s per epoch)")
    print(f"  ratio dlspec / seed loop: {b / a:.2f}x")


if __name__ == "__main__":
    main()
