"""Differential numerics: each backend against the exact (float64) answer, for the cases of issue 11 item 13.

    python bench/numerics.py norm      # layernorm / groupnorm over 1-2 elements and near-constant input
    python bench/numerics.py rmsprop   # RMSprop training parity: float32 vs float64, threads
    python bench/numerics.py adam      # the seed's Adam loop vs dlspec's torch and Keras loops (final weights)

Prints one line per case: the largest |backend - exact| over the outputs, scaled by max(1, |exact|).
"""

from __future__ import annotations

import sys

import numpy as np

import dlspec
from dlspec.parity import random_weights, run_all


def spec(shape, layer):
    return dlspec.from_dict({"dlspec": 1, "name": "n", "inputs": {"x": {"shape": shape}}, "layers": [layer]})


def exact_norm(x, layer, w):
    """float64 layernorm / groupnorm, two-pass."""
    x = x.astype(np.float64)
    if layer["type"] == "layernorm":
        axes = tuple(a % x.ndim for a in layer.get("axes", [-1]))
        mean = x.mean(axis=axes, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
        shape = [x.shape[a] if a in axes else 1 for a in range(x.ndim)]
        y = (x - mean) / np.sqrt(var + layer.get("eps", 1e-5))
        return y * w["norm.weight"].astype(np.float64).reshape(shape) + w["norm.bias"].astype(np.float64).reshape(shape)
    n, c, g = x.shape[0], x.shape[1], layer["groups"]
    grouped = x.reshape(n, g, -1)
    mean = grouped.mean(axis=2, keepdims=True)
    var = ((grouped - mean) ** 2).mean(axis=2, keepdims=True)
    y = ((grouped - mean) / np.sqrt(var + layer.get("eps", 1e-5))).reshape(x.shape)
    shape = [1, c] + [1] * (x.ndim - 2)
    return y * w["norm.weight"].astype(np.float64).reshape(shape) + w["norm.bias"].astype(np.float64).reshape(shape)


NORM_CASES = [
    ("layernorm_1", [1], {"type": "layernorm"}),
    ("layernorm_2", [2], {"type": "layernorm"}),
    ("layernorm_seq_2", [5, 2], {"type": "layernorm"}),
    ("layernorm_16", [16], {"type": "layernorm"}),
    ("layernorm_axes1_2ch", [2, 3, 3], {"type": "layernorm", "axes": [1]}),
    ("groupnorm_2_per_group", [4, 1], {"type": "groupnorm", "groups": 2}),
    ("groupnorm_2_spatial", [4, 2], {"type": "groupnorm", "groups": 4}),
    ("groupnorm_image", [8, 3, 3], {"type": "groupnorm", "groups": 2}),
]


def norm_inputs(shape, kind, rng, batch=64):
    """normal: N(0, 1); offset: 3 + N(0, 1); constant: c + 1e-4 N(0, 1), c ~ N(0, 3) per sample."""
    x = rng.standard_normal((batch, *shape))
    if kind == "offset":
        x = x + 3.0
    elif kind == "constant":
        x = rng.normal(0.0, 3.0, (batch,) + (1,) * len(shape)) + 1e-4 * x
    return x.astype(np.float32)


U = 2.0 ** -24  # float32's unit roundoff


def condition(x, layer, w):
    """Per output element: |weight| * max |x| of its group / sqrt(var + eps), the factor by which one rounding of
    the float32 mean (relative error up to u, so up to u * max |x|) moves the output."""
    x = x.astype(np.float64)
    gamma = np.abs(w["norm.weight"].astype(np.float64))
    if layer["type"] == "layernorm":
        axes = tuple(a % x.ndim for a in layer.get("axes", [-1]))
        shape = [x.shape[a] if a in axes else 1 for a in range(x.ndim)]
        gamma = gamma.reshape(shape)
        big = np.abs(x).max(axis=axes, keepdims=True)
        var = x.var(axis=axes, keepdims=True)
    else:
        n, c, g = x.shape[0], x.shape[1], layer["groups"]
        grouped = x.reshape(n, g, -1)
        big = np.broadcast_to(np.abs(grouped).max(axis=2, keepdims=True), grouped.shape).reshape(x.shape)
        var = np.broadcast_to(grouped.var(axis=2, keepdims=True), grouped.shape).reshape(x.shape)
        gamma = gamma.reshape([1, c] + [1] * (x.ndim - 2))
    return gamma * big / np.sqrt(var + layer.get("eps", 1e-5))


def norm_errors(backends=("torch", "keras", "onnx"), kinds=("normal", "offset", "constant"), seed=0):
    """{(case, kind): {backend: (max |y - exact| / max(1, |exact|), max |y - exact| / (u * (condition + |exact|)))}}."""
    rng = np.random.default_rng(seed)
    table = {}
    for name, shape, layer in NORM_CASES:
        layer = {**layer, "name": "norm"}
        model = spec(shape, layer)
        w = random_weights(model, seed)
        for kind in kinds:
            x = norm_inputs(shape, kind, rng)
            exact = exact_norm(x, layer, w)
            outs = run_all(model, w, [x], backends)
            scale = max(1.0, float(np.abs(exact).max()))
            units = U * (condition(x, layer, w) + np.abs(exact))
            table[name, kind] = {b: (float(np.abs(outs[b][0] - exact).max()) / scale,
                                     float((np.abs(outs[b][0] - exact) / units).max())) for b in backends}
    return table


def main_norm():
    table = norm_errors()
    backends = next(iter(table.values())).keys()
    print("max |y - exact| / max(1, |exact|), and in units of u * (|weight| max|x| / sqrt(var + eps) + |exact|)")
    print(f"{'case':<24} {'input':<9}" + "".join(f"{b:>19}" for b in backends))
    for (name, kind), row in table.items():
        print(f"{name:<24} {kind:<9}" + "".join(f"{row[b][0]:>11.2e} {row[b][1]:>6.2f}u" for b in backends))




# ---------------------------------------------------------------- training: Adam (the seed's loop) and RMSprop

SEED_TRAIN = ("train:\n  loss: cross_entropy\n  optimizer: {type: adam, lr: 1.0e-3, weight_decay: 1.0e-5}\n"
              "  schedule: {type: step, step_size: 2, gamma: 0.1}\n  epochs: 4\n  batch_size: 32\n  seed: 0\n")


def seed_problem(seed=0):
    """tests/test_train.py::test_seed_loop_equals_dlspec_in_torch_and_keras: mnist_mlp without dropout, Adam with
    weight decay 1e-5, StepLR every 2 epochs, 4 epochs of 10 batches of uniform [0, 1) pixels."""
    from pathlib import Path

    from dlspec.train.data import Dataset

    text = (Path(__file__).parent.parent / "specs" / "mnist_mlp.yaml").read_text() + SEED_TRAIN
    model = dlspec.loads(text.replace("rate: 0.2", "rate: 0.0"), "mnist_mlp.yaml")
    rng = np.random.default_rng(seed)
    x = rng.random((320, 784), dtype=np.float32)
    y = rng.integers(0, 10, 320)
    return model, Dataset(x, y.astype(np.int64), x[:0], y[:0], "synthetic"), dlspec.init_weights(model, seed)


def seed_loop(data, weights, dtype="float32", threads=None, foreach=None):
    """The seed's hand-written torch loop: torch.optim.Adam (for-loop implementation), StepLR per epoch."""
    import torch

    from dlspec.train.data import batches

    if threads:
        torch.set_num_threads(threads)
    dt = getattr(torch, dtype)
    net = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128),
                              torch.nn.ReLU(), torch.nn.Linear(128, 10)).to(dt)
    names = {"0": "dense_1", "2": "dense_2", "4": "logits"}
    net.load_state_dict({f"{i}.{p}": torch.from_numpy(weights[f"{n}.{p}"]).to(dt) for i, n in names.items()
                         for p in ("weight", "bias")})
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-5, foreach=foreach)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
    loss_fn, losses = torch.nn.CrossEntropyLoss(), []
    x, y = torch.from_numpy(data.x_train).to(dt), torch.from_numpy(data.y_train)
    for epoch in range(4):
        for idx in batches(320, 32, epoch, seed=0, shuffle=True):
            opt.zero_grad()
            loss = loss_fn(net(x[idx]), y[idx])
            loss.backward()
            opt.step()
            losses.append(loss.item())
        sched.step()
    state = {k: v.detach().double().numpy() for k, v in net.state_dict().items()}
    return np.asarray(losses), {f"{n}.{p}": state[f"{i}.{p}"] for i, n in names.items() for p in ("weight", "bias")}


def one_ulp(weights, seed=1):
    """Every weight moved by one float32 ulp, up or down at random: a forward difference of ~6e-8 relative."""
    rng = np.random.default_rng(seed)
    out = {}
    for k, w in weights.items():
        toward = np.where(rng.random(w.shape) < 0.5, np.float32(np.inf), np.float32(-np.inf))
        out[k] = np.nextafter(w, toward).astype(np.float32)
    return out


def compare(a, b):
    """(max |a - b| / max(1, |a|) over all weights, worst tensor)."""
    from dlspec.train.parity import weight_diff

    diffs = {k: weight_diff(a[k], b[k]) for k in a}
    worst = max(diffs, key=diffs.get)
    return diffs[worst], worst


def main_adam(seed=0):
    from dlspec.train import fit

    model, data, w = seed_problem(seed)
    runs = {"seed loop, float64": seed_loop(data, w, "float64"),
            "seed loop, foreach": seed_loop(data, w, foreach=True),
            "seed loop, 1 ulp off": seed_loop(data, one_ulp(w), threads=None),
            "seed loop, 1 thread": seed_loop(data, w, threads=1)}
    ref = seed_loop(data, w, threads=2)  # the reference: the test's loop
    for backend in ("torch", "keras"):
        history, final, _ = fit(model, backend, data, w, progress=False)
        runs[f"dlspec {backend}"] = (np.asarray(history.step_loss), {k: final[k] for k in ref[1]})
    exact = runs["seed loop, float64"]
    print(f"Adam, seed's problem (data seed {seed}), {len(ref[0])} steps; reference: the seed's loop, float32")
    print(f"{'run':<24} {'loss max rel':>12} {'weights vs reference':>21} {'vs float64':>11}  worst")
    for name, (losses, final) in runs.items():
        rel = float(np.max(np.abs(losses - ref[0]) / np.abs(ref[0])))
        d, worst = compare(ref[1], final)
        print(f"{name:<24} {rel:>12.2e} {d:>21.2e} {compare(exact[1], final)[0]:>11.2e}  {worst}")
    return runs, ref


def random_rmsprop_model(rng, k):
    """A small random network with a random RMSprop setting (the kind of model the fuzzer drew)."""
    image = rng.random() < 0.5
    layers = []
    if image:
        shape = [3, 6, 6]
        layers.append({"type": "conv2d", "filters": int(rng.integers(2, 6)), "kernel": 3,
                       "use_bias": bool(rng.random() < 0.5)})
        if rng.random() < 0.6:
            layers.append({"type": "batchnorm"})
        layers.append({"type": "activation", "activation": str(rng.choice(["relu", "tanh", "gelu"]))})
        layers.append({"type": "flatten"})
    else:
        shape = [int(rng.integers(4, 13))]
    for _ in range(int(rng.integers(1, 3))):
        layers.append({"type": "dense", "units": int(rng.integers(4, 17)), "use_bias": bool(rng.random() < 0.5)})
        norm = rng.choice(["batchnorm", "layernorm", "none"])
        if norm != "none":
            layers.append({"type": str(norm)})
        layers.append({"type": "activation", "activation": str(rng.choice(["relu", "tanh", "gelu"]))})
    layers.append({"type": "dense", "units": int(rng.integers(2, 6))})
    opt = {"type": "rmsprop", "lr": float(rng.choice([1e-2, 1e-3])), "momentum": float(rng.choice([0.0, 0.9])),
           "centered": bool(rng.random() < 0.5)}
    return dlspec.from_dict({"dlspec": 1, "name": f"rms{k}", "inputs": {"x": {"shape": shape}}, "layers": layers,
                             "train": {"loss": "cross_entropy", "optimizer": opt, "batch_size": 16}})


def rmsprop_row(model, steps=30, seed=0, threads=None):
    """(torch vs keras: loss rel, weights, worst), (torch vs torch with every initial weight 1 ulp off: the same),
    and with ``threads``: (torch vs torch on that many threads: weights, worst)."""
    from dlspec.train import fit
    from dlspec.train.parity import synthetic_data, train_parity

    report = train_parity(model, steps=steps, seed=seed, plot=False)
    w = dlspec.init_weights(model, seed)
    cfg = model.spec.train.model_copy(update={"validation_split": 0.0, "early_stopping": None})
    data = synthetic_data(model, cfg, steps, seed)
    runs = [fit(model, "torch", data, ww, cfg=cfg, epochs=2, progress=False, max_steps=steps)[:2]
            for ww in (w, one_ulp(w))]
    la, lb = (np.asarray(r[0].step_loss) for r in runs)
    rows = ((report.max_rel_loss, report.max_weight_diff, report.worst_tensor),
            (float(np.max(np.abs(la - lb) / np.abs(la))),) + compare(runs[0][1], runs[1][1]))
    if not threads:
        return rows
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        other = fit(model, "torch", data, w, cfg=cfg, epochs=2, progress=False, max_steps=steps)[1]
    finally:
        torch.set_num_threads(before)
    return rows + (compare(runs[0][1], other),)


def main_rmsprop(count=12, seed=0):
    rng = np.random.default_rng(seed)
    print(f"RMSprop, {count} random models, 30 steps; weights: max |a - b| / max(1, |a|)")
    print(f"{'model':<8} {'optimizer':<34} {'torch-keras loss':>16} {'weights':>9}  {'torch-torch(1 ulp) loss':>23} "
          f"{'weights':>9}  {'1 vs 2 threads':>14}  worst")
    for k in range(count):
        model = random_rmsprop_model(rng, k)
        (lk, wk, worst), (lt, wt, worst_t), (w1, _) = rmsprop_row(model, threads=1)
        o = model.spec.train.optimizer
        desc = f"lr {o.lr:g} mom {o.momentum:g} centered {o.centered}"
        print(f"{model.name:<8} {desc:<34} {lk:>16.2e} {wk:>9.2e}  {lt:>23.2e} {wt:>9.2e}  {w1:>14.2e}  "
              f"{worst} / {worst_t}")
        if wk > 1e-5:
            print("         layers:", " -> ".join(f"{n.name}" + ("" if n.op != "dense" and n.op != "conv2d" else
                                                     f"(bias {n.attrs.get('use_bias')})") for n in model.graph.nodes))



if __name__ == "__main__":
    mains = {"norm": main_norm, "adam": main_adam, "rmsprop": main_rmsprop}
    mains[sys.argv[1] if len(sys.argv) > 1 else "norm"](*map(int, sys.argv[2:]))
