"""Training parity: torch and Keras from the same weights on the same batches, step by step."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field

from ..api import Model
from ..weights import init_weights
from .data import Dataset
from .loop import classes_of, fit

NOISE_FACTOR = 10  # torch-Keras against torch-torch one ulp apart: 0.35x to 5.5x measured where noise dominates


@dataclass
class TrainReport:
    """Per-step losses of both backends and the final weight difference (``max_weight_diff``: the largest
    |w_torch - w_keras| / max(1, |w_torch|) over every element of every tensor, see :func:`weight_diff`).

    Where a figure exceeds ``tol``, ``noise`` holds the same figure between torch and torch trained from
    weights one ulp apart (float32's own noise on this model, see :func:`train_parity`): the loss and each
    tensor pass if they are within ``NOISE_FACTOR`` times their noise; ``noisy`` names the tensors that pass
    so, with (torch vs Keras, torch vs torch)."""

    model: str
    steps: int
    torch_loss: list
    keras_loss: list
    max_rel_loss: float
    max_weight_diff: float
    worst_tensor: str
    tol: float
    plot: str | None
    threads: int | None = None  # CPU threads of the frameworks, for the header (dlspec.threads)
    noise: dict | None = None  # {"loss": float, "weights": {tensor: float}} when a figure exceeds tol
    failed: tuple[str, ...] = ()  # tensors beyond tol and beyond NOISE_FACTOR times their noise
    noisy: dict = field(default_factory=dict)  # tensor -> (torch vs keras, torch vs torch one ulp apart)
    diffs: dict = field(default_factory=dict)  # tensor -> torch vs keras
    noise_factor: float = NOISE_FACTOR  # 0: every figure must be within tol

    @property
    def loss_ok(self) -> bool:
        """The per-step losses agree within tol, or within NOISE_FACTOR times float32's noise."""
        return self.max_rel_loss <= self.tol or (
            self.noise is not None and self.max_rel_loss <= self.noise_factor * self.noise["loss"])

    @property
    def ok(self) -> bool:
        """Losses and every tensor within tolerance, or within their float32 noise."""
        return self.loss_ok and not self.failed and (self.max_weight_diff <= self.tol or self.noise is not None)

    def table(self) -> str:
        """Printable summary."""
        threads = f", {self.threads} thread{'s' if self.threads != 1 else ''}" if self.threads else ""
        loss_status = "ok" if self.max_rel_loss <= self.tol else "ok: float32 noise" if self.loss_ok else "FAIL"
        weight_status = ("ok" if self.max_weight_diff <= self.tol else "FAIL" if self.failed or self.noise is None
                         else "ok: float32 noise")
        worst = self.failed[0] if self.failed else self.worst_tensor
        lines = [f"training parity: {self.model}, {self.steps} steps, float32 on CPU, dropout off, "
                 f"tolerance {self.tol:g}{threads}",
                 f"{'quantity':<36} {'torch vs keras':>14}  status",
                 f"{'per-step loss, max relative diff':<36} {self.max_rel_loss:>14.3e}  {loss_status}",
                 f"{'final weights, max diff / max(1,|w|)':<36} {self.max_weight_diff:>14.3e}  {weight_status}"
                 f"  ({worst})"]
        if self.noise is not None:
            lines.append(f"float32 noise, torch vs torch from weights 1 ulp apart: loss {self.noise['loss']:.3e}; "
                         f"a figure above {self.tol:g} passes within {self.noise_factor:g}x its noise")
            for name, (ours, theirs) in sorted(self.noisy.items(), key=lambda kv: -kv[1][0]):
                lines.append(f"  {name}: {ours:.3e} (noise {theirs:.3e}) ok: float32 noise")
            for name in self.failed:
                lines.append(f"  {name}: {self.diffs[name]:.3e} (noise {self.noise['weights'][name]:.3e}) FAIL")
        lines.append(f"first/last loss: torch {self.torch_loss[0]:.6f} -> {self.torch_loss[-1]:.6f}, "
                     f"keras {self.keras_loss[0]:.6f} -> {self.keras_loss[-1]:.6f}")
        if self.plot:
            lines.append(f"wrote {self.plot}")
        lines.append("training parity: " + ("ok" if self.ok else "FAILED"))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready data (``dlspec parity --train --json``)."""
        return {"model": self.model, "kind": "training", "steps": self.steps, "tolerance": self.tol,
                "threads": self.threads, "max_rel_loss": self.max_rel_loss, "max_weight_diff": self.max_weight_diff,
                "worst_tensor": self.worst_tensor, "noise": self.noise, "noise_factor": self.noise_factor,
                "failed_tensors": list(self.failed), "noisy_tensors": {k: list(v) for k, v in self.noisy.items()},
                "torch_loss": self.torch_loss, "keras_loss": self.keras_loss, "plot": self.plot, "ok": self.ok}


def without_dropout(model: Model) -> Model:
    """A copy whose dropout and stochastic_depth layers drop nothing (their masks cannot match across
    frameworks)."""
    model = copy.deepcopy(model)
    for node in model.graph.nodes:
        if node.op in ("dropout", "stochastic_depth"):
            node.attrs["rate"] = 0.0
    return model


def synthetic_data(model: Model, cfg, steps: int, seed: int) -> Dataset:
    """Random samples for the spec's input and loss: enough for a few epochs of ``steps``."""
    import numpy as np

    rng = np.random.default_rng([seed, 7])
    n = cfg.batch_size * max(1, min(steps, 25))
    inp = model.graph.inputs[0]
    if inp.dtype == "int64":
        vocab = min([nd.attrs["vocabulary"] for nd in model.graph.nodes if nd.op == "embedding"], default=2)
        x = rng.integers(0, vocab, size=(n, *inp.shape), dtype=np.int64)
    else:
        x = rng.standard_normal((n, *inp.shape)).astype(np.float32)
    out_shape = model.graph.shape_of(model.graph.outputs[0])
    loss = cfg.loss_spec().type
    if loss == "cross_entropy":
        y = rng.integers(0, classes_of(model) or 2, size=n).astype(np.int64)
    elif loss == "binary_cross_entropy":
        y = rng.integers(0, 2, size=(n, *out_shape)).astype(np.float32)
    else:
        y = rng.standard_normal((n, *out_shape)).astype(np.float32)
    return Dataset(x, y, x[:0], y[:0], "synthetic")


def train_parity(model: Model, *, weights: dict | None = None, steps: int = 100, seed: int = 0, tol: float = 1e-5,
                 plot: str | None = None, dataset: Dataset | None = None, cfg=None,
                 noise_factor: float = NOISE_FACTOR) -> TrainReport:
    """Train torch and Keras for ``steps`` steps from the same weights and batches; compare.

    Where the loss or a tensor differs by more than ``tol``, torch trains a third time from the weights moved
    one ulp (:func:`one_ulp_apart`): that run's distance from the first is float32's own noise on this model
    (Adam and RMSprop scale the rounding of a gradient that is zero in exact arithmetic, such as a bias before
    a batchnorm or an attention's key bias, into steps of about lr). A figure within ``noise_factor`` times
    its noise passes, and the table says so; 0 turns this off."""
    import numpy as np

    cfg = cfg or model.spec.train
    if cfg is None:
        raise ValueError("the spec has no train section")
    cfg = cfg.model_copy(update={"validation_split": 0.0, "early_stopping": None})
    plain = without_dropout(model)
    weights = weights if weights is not None else init_weights(model, seed)
    data = dataset or synthetic_data(model, cfg, steps, seed)
    steps_per_epoch = math.ceil(len(data.x_train) / cfg.batch_size)
    epochs = math.ceil(steps / steps_per_epoch)
    def run(backend: str, start: dict):
        return fit(plain, backend, data, start, cfg=cfg, epochs=epochs, progress=False, max_steps=steps)[:2]

    runs = {b: run(b, weights) for b in ("torch", "keras")}
    lt, lk = (np.asarray(runs[b][0].step_loss) for b in ("torch", "keras"))
    rel = _loss_diff(lt, lk)
    diffs = {k: weight_diff(runs["torch"][1][k], runs["keras"][1][k]) for k in runs["torch"][1]}
    worst = max(diffs, key=diffs.get)
    noise, failed, noisy = None, (), {}
    if noise_factor and (rel > tol or diffs[worst] > tol):  # noise, or a real difference? measure float32's own
        history, final = run("torch", one_ulp_apart(model, weights))
        noise = {"loss": _loss_diff(lt, np.asarray(history.step_loss)),
                 "weights": {k: weight_diff(runs["torch"][1][k], final[k]) for k in diffs}}
        beyond = [k for k in sorted(diffs, key=diffs.get, reverse=True) if diffs[k] > tol]
        failed = tuple(k for k in beyond if diffs[k] > noise_factor * noise["weights"][k])
        noisy = {k: (diffs[k], noise["weights"][k]) for k in beyond if k not in failed}
    path = None
    if plot is not False:
        path = _plot(lt, lk, plot or f"{model.name}_train_parity.png", model.name, tol)
    return TrainReport(model.name, len(lt), lt.tolist(), lk.tolist(), rel, diffs[worst], worst, tol, path,
                       noise=noise, failed=failed, noisy=noisy, diffs=diffs, noise_factor=noise_factor)


def _loss_diff(a, b) -> float:
    import numpy as np

    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-12)))


def one_ulp_apart(model: Model, weights: dict) -> dict:
    """``weights`` with every trainable parameter moved to the next float32 up (buffers, such as running
    statistics or an index, stay): where training amplifies rounding, runs from here end as far from the
    unmoved run as two frameworks' different rounding ends apart."""
    import numpy as np

    from ..weights import weight_name

    moved = dict(weights)
    for node in model.graph.nodes:
        for p in node.params:
            if p.trainable:
                name = weight_name(node.name, p.name)
                w = np.asarray(weights[name], dtype=np.float32)
                moved[name] = np.nextafter(w, np.float32(np.inf))
    return moved


def weight_diff(reference, other) -> float:
    """max |reference - other| / max(1, |reference|) over the elements (0 for an empty tensor): absolute for
    weights up to 1 in magnitude, relative beyond, so that a BatchNorm running variance of 3.4 is held to the
    same number of float32 digits as a weight of 0.3 (float32 resolves 6e-8 relative, not 6e-8 absolute)."""
    import numpy as np

    reference = np.asarray(reference, dtype=np.float64)
    other = np.asarray(other, dtype=np.float64)
    if reference.size == 0:
        return 0.0
    return float(np.max(np.abs(reference - other) / np.maximum(1.0, np.abs(reference))))


def _plot(lt, lk, path: str, name: str, tol: float = 1e-5) -> str | None:
    try:
        fig = figure(lt, lk, name, tol)
    except ImportError:
        return None
    import io

    import matplotlib.pyplot as plt

    from ..files import write_atomic

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    write_atomic(path, buffer.getvalue())
    return path


def figure(lt, lk, name: str, tol: float):
    """The loss curves (top) and the per-step relative difference (bottom, log scale) with the tolerance as a
    line. Steps where the two losses are exactly equal have no place on a log scale: they are drawn as
    markers on the bottom edge and counted in the legend, not hidden behind an arbitrary floor."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    lt, lk = np.asarray(lt, dtype=np.float64), np.asarray(lk, dtype=np.float64)
    rel = np.abs(lt - lk) / np.maximum(np.abs(lt), np.finfo(np.float64).tiny)
    steps = np.arange(len(rel))
    zero = rel == 0
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    top.plot(lt, label="torch", linewidth=2)
    top.plot(lk, "--", label="keras", linewidth=1.5)
    top.set_ylabel("training loss")
    top.set_title(f"{name}: training parity")
    top.legend()
    bottom.set_yscale("log")
    if (~zero).any():
        bottom.plot(steps[~zero], rel[~zero], ".-", linewidth=1, markersize=3, label="|torch - keras| / |torch|")
    bottom.axhline(tol, color="tab:red", linestyle="--", linewidth=1, label=f"tolerance {tol:g}")
    low = min(tol, rel[~zero].min() if (~zero).any() else tol) / 10
    bottom.set_ylim(low, max(tol, rel.max()) * 10)
    if zero.any():
        bottom.plot(steps[zero], np.full(zero.sum(), low), "v", color="tab:green", markersize=4, clip_on=False,
                    label=f"exactly 0 ({int(zero.sum())} of {len(rel)} steps), drawn on the bottom edge")
    bottom.set_ylabel("relative difference")
    bottom.set_xlabel("step")
    bottom.legend(fontsize=8)
    fig.tight_layout()
    return fig
