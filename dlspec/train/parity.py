"""Training parity: torch and Keras from the same weights on the same batches, step by step."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

from ..api import Model
from ..weights import init_weights
from .data import Dataset
from .loop import classes_of, fit


@dataclass
class TrainReport:
    """Per-step losses of both backends and the final weight difference (``max_weight_diff``: the largest
    |w_torch - w_keras| / max(1, |w_torch|) over every element of every tensor, see :func:`weight_diff`)."""

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

    @property
    def ok(self) -> bool:
        """Both differences within tolerance."""
        return self.max_rel_loss <= self.tol and self.max_weight_diff <= self.tol

    def table(self) -> str:
        """Printable summary."""
        threads = f", {self.threads} thread{'s' if self.threads != 1 else ''}" if self.threads else ""
        lines = [f"training parity: {self.model}, {self.steps} steps, float32 on CPU, dropout off, "
                 f"tolerance {self.tol:g}{threads}",
                 f"{'quantity':<36} {'torch vs keras':>14}  status",
                 f"{'per-step loss, max relative diff':<36} {self.max_rel_loss:>14.3e}  "
                 f"{'ok' if self.max_rel_loss <= self.tol else 'FAIL'}",
                 f"{'final weights, max diff / max(1,|w|)':<36} {self.max_weight_diff:>14.3e}  "
                 f"{'ok' if self.max_weight_diff <= self.tol else 'FAIL'}  ({self.worst_tensor})",
                 f"first/last loss: torch {self.torch_loss[0]:.6f} -> {self.torch_loss[-1]:.6f}, "
                 f"keras {self.keras_loss[0]:.6f} -> {self.keras_loss[-1]:.6f}"]
        if self.plot:
            lines.append(f"wrote {self.plot}")
        lines.append("training parity: " + ("ok" if self.ok else "FAILED"))
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """JSON-ready data (``dlspec parity --train --json``)."""
        return {"model": self.model, "kind": "training", "steps": self.steps, "tolerance": self.tol,
                "threads": self.threads, "max_rel_loss": self.max_rel_loss, "max_weight_diff": self.max_weight_diff,
                "worst_tensor": self.worst_tensor, "torch_loss": self.torch_loss, "keras_loss": self.keras_loss,
                "plot": self.plot, "ok": self.ok}


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
                 plot: str | None = None, dataset: Dataset | None = None, cfg=None) -> TrainReport:
    """Train torch and Keras for ``steps`` steps from the same weights and batches; compare."""
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
    runs = {b: fit(plain, b, data, weights, cfg=cfg, epochs=epochs, progress=False, max_steps=steps)[:2]
            for b in ("torch", "keras")}
    lt, lk = (np.asarray(runs[b][0].step_loss) for b in ("torch", "keras"))
    rel = float(np.max(np.abs(lt - lk) / np.maximum(np.abs(lt), 1e-12)))
    diffs = {k: weight_diff(runs["torch"][1][k], runs["keras"][1][k]) for k in runs["torch"][1]}
    worst = max(diffs, key=diffs.get)
    path = None
    if plot is not False:
        path = _plot(lt, lk, plot or f"{model.name}_train_parity.png", model.name, tol)
    return TrainReport(model.name, len(lt), lt.tolist(), lk.tolist(), rel, diffs[worst], worst, tol, path)


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
