"""The training driver shared by every backend: batches, schedule, metrics, validation, early stopping,
checkpoints and history. Only the optimizer step runs in the framework."""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..api import Model
from ..errors import Loc, SpecError, TrainingDiverged, UsageError
from ..files import FileSet
from ..weights import weights_bytes
from . import data as data_mod
from .schedule import Schedule

PENDING_VALUES = 1 << 22  # training outputs kept on the device before one transfer for the metrics
OUTPUTS = ("weights.safetensors", "best.safetensors", "history.json", "model.pt", "model.keras")  # one run's set


@dataclass
class History:
    """Per-step losses and per-epoch logs, as written to history.json."""

    step_loss: list[float] = field(default_factory=list)
    epochs: list[dict] = field(default_factory=list)
    stopped_early: bool = False
    diverged: dict | None = None  # where a non-finite loss or weights stopped the run
    files: list[Path] = field(default_factory=list)  # what this run wrote (not part of history.json)

    def to_json(self) -> str:
        """The JSON text of history.json."""
        extra = {"diverged": self.diverged} if self.diverged else {}
        return json.dumps({"step_loss": self.step_loss, "epochs": self.epochs, "stopped_early": self.stopped_early,
                           "loss_includes_regularization": False, **extra}, indent=1) + "\n"


def _metric_values(metrics, out, y) -> dict:
    import numpy as np

    values = {}
    for metric in metrics:
        if metric == "accuracy":
            values["accuracy"] = float(np.mean(np.argmax(out, axis=-1) == y))
        else:
            top = np.argsort(-out, axis=-1, kind="stable")[:, :metric.k]
            values[f"top_{metric.k}"] = float(np.mean(np.any(top == y[:, None], axis=1)))
    return values


def classes_of(model: Model) -> int | None:
    """Number of classes of a classifier's output (its last axis), if the output is [classes]."""
    shape = model.graph.shape_of(model.graph.outputs[0])
    return shape[-1] if len(shape) == 1 else None


def check_trainable(model: Model, cfg=None) -> None:
    """Located errors for a model training cannot handle: several inputs (training feeds the first input only,
    and the forward pass would fail for want of the others), no parameter left to train (torch's optimizers
    refuse an empty parameter list), cross_entropy or metrics without one vector of logits per sample."""
    cfg = cfg or model.spec.train
    output = model.graph.outputs[0]
    shape = list(model.graph.shape_of(output))
    loss = cfg.loss_spec().type if cfg is not None else None
    if loss == "cross_entropy" and classes_of(model) is None:
        raise SpecError(Loc(model.path), "train.loss", f"cross_entropy needs one vector of logits per sample, and "
                        f"output {output!r} has samples of shape {shape}", has_received=False)
    if cfg is not None and cfg.metrics and loss != "cross_entropy":
        raise SpecError(Loc(model.path), "train.metrics", "accuracy and top_k need the cross_entropy loss (integer "
                        "labels, one vector of logits per sample)", loss)
    inputs = model.graph.inputs
    if len(inputs) > 1:
        names = ", ".join(inp.name for inp in inputs)
        raise SpecError(inputs[1].loc, f"inputs.{inputs[1].name}", f"training feeds one input, and this model has "
                        f"{len(inputs)} ({names}); this version cannot train it", inputs[1].name)
    trainable, frozen, _ = model.graph.counts()
    if not trainable:
        what = f"all {frozen:,} parameters are frozen" if frozen else "the model has no parameters"
        raise SpecError(Loc(model.path), "train", f"{what}, so there is nothing to train", has_received=False)


def prepare(model: Model, source: str):
    """Read, check and split the data for the spec's train section."""
    check_trainable(model)
    cfg = model.spec.train
    arrays = data_mod.read(source)
    x, y = data_mod.check(model, arrays, source, classes_of(model), cfg.loss_spec().type)
    return data_mod.split(x, y, cfg.validation_split, source)


def _progress_seconds(text: str) -> float:
    """The interval of the progress lines in a log, from DLSPEC_PROGRESS_SECONDS."""
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise UsageError(f"DLSPEC_PROGRESS_SECONDS must be a number of seconds, at least 0. Received: {text!r}")
    return seconds


class Progress:
    """Training progress. On a terminal: a tqdm bar per epoch with the live loss, the rate and the epoch's ETA,
    replaced by the epoch's line when it ends. Elsewhere (a log file, a pipe): one line every ``interval``
    seconds (default 30, or the DLSPEC_PROGRESS_SECONDS environment variable) with the step, the loss, the
    rate and the ETA of the epoch and of the run, and one line per epoch."""

    def __init__(self, epochs: int, steps: int, stream=None, enabled=True, interval: float | None = None,
                 clock=time.monotonic, tty: bool | None = None):
        import os

        self.epochs, self.steps, self.stream, self.enabled = epochs, steps, stream or sys.stderr, enabled
        self.tty = enabled and (self.stream.isatty() if tty is None else tty)
        self.interval = _progress_seconds(os.environ.get("DLSPEC_PROGRESS_SECONDS", "30")) if interval is None \
            else interval
        self.clock, self.bar, self.shown = clock, None, 0
        self.run_start = self.epoch_start = self.last = clock()

    def start_epoch(self, epoch: int):
        self.epoch_start = self.last = self.clock()
        self.shown = 0
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=self.steps, desc=f"epoch {epoch + 1}/{self.epochs}", unit="step",
                            file=self.stream, leave=False, dynamic_ncols=True, mininterval=0.2)

    def step(self, epoch: int, i: int, loss):
        """Step ``i`` (0-based) of ``epoch`` is done; ``loss`` (a device scalar) is read only when shown."""
        if not self.enabled:
            return
        if self.bar is not None:
            now = self.clock()
            if now - self.last >= self.bar.mininterval or i == self.steps - 1:
                self.bar.set_postfix_str(f"loss {float(loss):.4f}", refresh=False)
                self.bar.update(i + 1 - self.bar.n)
                if i == self.steps - 1:
                    self.bar.refresh()  # the last step shows even inside tqdm's minimum interval
                self.last = now
            return
        now = self.clock()
        if now - self.last < self.interval or i == self.steps - 1:
            return
        self.last = now
        done = epoch * self.steps + i + 1
        rate = (i + 1) / max(now - self.epoch_start, 1e-9)
        left_epoch = (self.steps - i - 1) / rate
        left_run = (self.epochs * self.steps - done) / max(done / max(now - self.run_start, 1e-9), 1e-9)
        self.stream.write(f"epoch {epoch + 1}/{self.epochs} step {i + 1}/{self.steps} ({100 * (i + 1) // self.steps}%) "
                          f"loss {float(loss):.4f}, {rate:.3g} steps/s, ETA {_clock(left_epoch)} (epoch), "
                          f"{_clock(left_run)} (run)\n")
        self.stream.flush()

    def epoch(self, logs: dict, seconds: float):
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        parts = " ".join(f"{k} {v:.4f}" for k, v in logs.items() if k not in ("epoch", "lr"))
        self.stream.write(f"epoch {logs['epoch']}/{self.epochs} {parts} lr {logs['lr']:.3g} ({seconds:.1f} s)\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    """``0:27``, ``12:05``, ``1:02:03``."""
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def check_options(backend: str, device: str, replicas: int = 1, **torch_options) -> None:
    """Reject options the backend does not have, before any data is read. ``torch_options``: amp,
    channels_last, compile, cuda_graph (torch backend); ``replicas``: Keras' MirroredStrategy."""
    if backend != "torch" and any(torch_options.values()):
        raise UsageError(f"--amp, --channels-last, --compile and --cuda-graph apply to the torch backend. Received: "
                         f"--backend {backend}")
    if backend == "keras" and device != "cpu":
        raise UsageError(f"--device {device}: the keras backend trains on the CPU (dlspec's GPU machines have "
                         "no TensorFlow, so Keras on GPUs is untested). Received: --backend keras")
    if backend != "keras" and replicas != 1:
        raise UsageError(f"--replicas applies to the keras backend (torch runs several processes with torchrun "
                         f"--nproc-per-node N). Received: --backend {backend} --replicas {replicas}")
    if torch_options.get("cuda_graph"):
        _check_cuda_graph(device, **torch_options)
    if backend == "torch":
        _check_torch_device(device)


def _check_torch_device(device: str) -> None:
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise UsageError(f"--device must be cpu, cuda or cuda:N. Received: {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: torch {torch.__version__} finds no CUDA device (no GPU or driver, or "
                         "a CPU-only build); train with --device cpu. Received: --device " + device)
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise UsageError(f"--device {device}: there are {torch.cuda.device_count()} CUDA devices (cuda:0 to "
                         f"cuda:{torch.cuda.device_count() - 1}). Received: --device {device}")
    if dev.type not in ("cpu", "cuda"):
        raise UsageError(f"--device must be cpu, cuda or cuda:N. Received: {device!r}")


def _check_cuda_graph(device: str, amp=None, compile=False, **_) -> None:
    import os

    for bad, why in ((int(os.environ.get("WORLD_SIZE", "1")) > 1, "runs in one process, not under torchrun"),
                     (amp == "fp16", "cannot capture fp16 loss scaling (it checks for overflow on the host); use "
                                     "--amp bf16"),
                     (compile, "and --compile both capture the step; choose one"),
                     (not device.startswith("cuda"), "needs --device cuda")):
        if bad:
            raise UsageError(f"--cuda-graph {why}. Received: --cuda-graph --device {device}" +
                             (f" --amp {amp}" if amp else "") + (" --compile" if compile else ""))


def make_trainer(model: Model, backend: str, weights: dict, cfg, device: str, frozen, replicas: int = 1,
                 **torch_options):
    """The backend's step engine (``torch_options``: the torch backend's amp, channels_last, compile and
    cuda_graph; ``replicas``: Keras replicas under MirroredStrategy)."""
    check_options(backend, device, replicas, **torch_options)
    if backend == "torch":
        from .torch_loop import TorchTrainer

        return TorchTrainer(model, weights, cfg, device, frozen, **torch_options)
    if backend == "keras":
        from .keras_loop import KerasTrainer

        return KerasTrainer(model, weights, cfg, frozen, replicas=replicas)
    raise ValueError(f"training needs the torch or keras backend, not {backend!r}")


def fit(model: Model, backend: str, dataset, weights: dict, *, cfg=None, epochs: int | None = None,
        device: str = "cpu", out: Path | None = None, progress: bool = True, max_steps: int | None = None,
        **engine):
    """Train; returns (history, final canonical weights, trainer). Writes checkpoints into ``out`` if given.
    ``engine``: amp, channels_last, compile, cuda_graph (torch) or replicas (keras); see check_options."""
    import numpy as np

    check_trainable(model, cfg)
    cfg = cfg or model.spec.train
    epochs = epochs or cfg.epochs
    outputs = FileSet(out, OUTPUTS) if out is not None else None  # targets checked before any work
    trainer = make_trainer(model, backend, weights, cfg, device, model.frozen(), **engine)
    if not trainer.is_main:  # other torchrun processes compute, rank 0 reports and writes
        out, outputs, progress = None, None, False
    x, y = trainer.tensors(dataset.x_train, dataset.y_train)
    has_val = len(dataset.x_val) > 0
    xv, yv = trainer.tensors(dataset.x_val, dataset.y_val) if has_val else (None, None)
    n = len(dataset.x_train)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    schedule = Schedule(cfg.schedule, cfg.optimizer.lr)
    bar = Progress(epochs, steps_per_epoch, enabled=progress)
    history, step, best, waited, best_stop = History(), 0, math.inf, 0, math.inf
    last_good = None  # (epoch, weights) of the last epoch that ended with a finite loss and weights

    def diverged(reason: str):
        history.diverged = {"epoch": epoch + 1, "reason": reason}
        if last_good is None:
            kept = "no epoch ended with finite weights, so nothing was written" if outputs else \
                "no epoch ended with finite weights"
        elif outputs:
            outputs.write("weights.safetensors", weights_bytes(last_good[1]))
            outputs.write("history.json", history.to_json())
            kept = f"kept the weights after epoch {last_good[0]} in {outputs.directory / 'weights.safetensors'}"
        else:
            kept = f"the last finite weights are those after epoch {last_good[0]}"
        history.files = list(outputs.written) if outputs else []
        trainer.close()
        return TrainingDiverged(f"training diverged: {reason}; {kept}. A lower learning rate, gradient clipping "
                                f"or inputs of a smaller scale may help", last_good and last_good[1], history)
    for epoch in range(epochs):
        start, outs, pending, labels, losses, sizes = time.perf_counter(), [], [], [], [], []
        lr = schedule.lr(epoch, step)
        order = data_mod.batches(n, cfg.batch_size, epoch, cfg.seed, cfg.shuffle)
        bar.start_epoch(epoch)
        # losses stay on the device until the epoch ends: no host synchronisation per step
        for i, (idx, device_idx) in enumerate(zip(order, trainer.indices(order))):
            lr = schedule.lr(epoch, step)
            loss, output = trainer.step(trainer.take(x, device_idx), trainer.take(y, device_idx), lr)
            losses.append(loss)
            sizes.append(len(idx))
            if cfg.metrics:  # outputs stay on the device for a while: one transfer per few MB, not per step
                pending.append(output)
                labels.append(dataset.y_train[idx])
                if len(pending) * math.prod(output.shape) >= PENDING_VALUES:
                    outs.append(trainer.fetch(pending))
                    pending = []
            bar.step(epoch, i, loss)
            step += 1
            if max_steps is not None and step >= max_steps:
                break
        if pending:
            outs.append(trainer.fetch(pending))
        values = trainer.scalars(losses)
        bad = next((i for i, v in enumerate(values) if not math.isfinite(v)), None)
        if bad is not None:
            raise diverged(f"the loss is {values[bad]} at step {step - len(values) + bad + 1} (epoch {epoch + 1})")
        history.step_loss.extend(values)
        logs = {"epoch": epoch + 1, "loss": sum(v * k for v, k in zip(values, sizes)) / sum(sizes)}
        if cfg.metrics:
            logs.update(_metric_values(cfg.metrics, np.concatenate(outs), np.concatenate(labels)))
        if has_val:
            val_loss, val_out = trainer.evaluate(xv, yv, cfg.batch_size)
            if not math.isfinite(val_loss):
                raise diverged(f"the validation loss is {val_loss} after epoch {epoch + 1}")
            logs["val_loss"] = val_loss
            if cfg.metrics:
                logs.update({f"val_{k}": v for k, v in
                             _metric_values(cfg.metrics, trainer.numpy(val_out), dataset.y_val).items()})
        logs["lr"] = lr
        current = trainer.weights()
        if not all(np.isfinite(w).all() for w in current.values()):
            raise diverged(f"the weights hold NaN or infinite values after epoch {epoch + 1}")
        last_good = (epoch + 1, current)
        history.epochs.append(logs)
        bar.epoch(logs, time.perf_counter() - start)
        schedule.epoch_end(logs)
        monitor = "val_loss" if has_val else "loss"
        if outputs is not None:
            if logs[monitor] < best:
                outputs.write("best.safetensors", weights_bytes(current))
            outputs.write("history.json", history.to_json())
        best = min(best, logs[monitor])
        if max_steps is not None and step >= max_steps:
            break
        stop = cfg.early_stopping
        if stop is not None:
            value = logs.get(stop.monitor, logs["loss"])
            waited = 0 if value < best_stop - stop.min_delta else waited + 1
            best_stop = min(best_stop, value)
            if waited >= stop.patience:
                history.stopped_early = True
                break
    final = trainer.weights()
    if outputs is not None:
        outputs.write("weights.safetensors", weights_bytes(final))
        with outputs.path(trainer.native_file) as temporary:
            trainer.save_native(temporary)
        outputs.write("history.json", history.to_json())
        history.files = list(outputs.written)
    trainer.close()
    return history, final, trainer


def describe_run(model: Model, backend: str, dataset, device: str) -> str:
    """One line saying what is about to be trained on what."""
    cfg = model.spec.train
    return (f"training {model.name} with {backend} on {device}: {len(dataset.x_train)} training and "
            f"{len(dataset.x_val)} validation samples from {dataset.source}, {cfg.optimizer.type} "
            f"lr {cfg.optimizer.lr:g}, batch {cfg.batch_size}")


def summary_line(history: History, out: Path) -> str:
    """The closing summary: final and best figures, and where things were written."""
    last = history.epochs[-1]
    monitor = "val_loss" if "val_loss" in last else "loss"
    best = min(history.epochs, key=lambda e: e[monitor])
    figures = ", ".join(f"{k} {v:.4f}" for k, v in last.items() if k not in ("epoch", "lr"))
    stop = " (stopped early)" if history.stopped_early else ""
    written = [out / name for name in OUTPUTS if out / name in history.files]  # this run's files only
    canonical = ", ".join(str(p) for p in written if not p.name.startswith("model."))
    native = ", ".join(p.name for p in written if p.name.startswith("model."))
    return (f"done after {last['epoch']} epochs and {len(history.step_loss)} steps{stop}: {figures}\n"
            f"best {monitor} {best[monitor]:.4f} at epoch {best['epoch']}\n"
            f"wrote {canonical} and the framework's own file ({native})")
