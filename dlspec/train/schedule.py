"""Learning-rate schedules, computed by dlspec and handed to every backend's optimizer, so the rate
at each step is the same number everywhere (torch's formulas, see docs/semantics.md)."""

from __future__ import annotations

import math

from ..spec import train as defs
from . import registry
from .registry import Registry


class Schedule:
    """The learning rate for each step; ``epoch_end`` feeds ReduceOnPlateau its monitored value."""

    def __init__(self, spec, base_lr: float):
        self.spec, self.base = spec, base_lr
        self.plateau_lr, self.best, self.bad_epochs, self.cooldown = base_lr, math.inf, 0, 0

    def lr(self, epoch: int, step: int) -> float:
        """Rate for global step ``step`` (0-based) in epoch ``epoch`` (0-based)."""
        s = self.spec
        if s is None:
            return self.base
        return SCHEDULES[s](self, s, epoch if getattr(s, "interval", "epoch") == "epoch" else step)

    def epoch_end(self, logs: dict) -> None:
        """torch's ReduceLROnPlateau step ('min' mode, relative threshold)."""
        s = self.spec
        if not isinstance(s, defs.ReduceOnPlateau):
            return
        value = logs[s.monitor] if s.monitor in logs else logs["loss"]  # no validation data: training loss
        if value < self.best * (1 - s.threshold):
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
        if self.cooldown > 0:
            self.cooldown -= 1
            self.bad_epochs = 0
        if self.bad_epochs > s.patience:
            new = max(self.plateau_lr * s.factor, s.min_lr)
            if self.plateau_lr - new > 1e-8:
                self.plateau_lr = new
            self.cooldown, self.bad_epochs = s.cooldown, 0


# Each schedule's rate at t (epochs or steps, per its interval), from the Schedule's base rate: torch's closed
# forms, and ReduceOnPlateau's current rate, which Schedule.epoch_end lowers from the monitored values.
SCHEDULES = Registry("schedule", "dlspec", registry.SCHEDULES)


@SCHEDULES.register(defs.StepLR)
def _step(sched: Schedule, s, t: int) -> float:
    return sched.base * s.gamma ** (t // s.step_size)


@SCHEDULES.register(defs.MultiStepLR)
def _multistep(sched: Schedule, s, t: int) -> float:
    return sched.base * s.gamma ** sum(1 for m in s.milestones if m <= t)


@SCHEDULES.register(defs.ExponentialLR)
def _exponential(sched: Schedule, s, t: int) -> float:
    return sched.base * s.gamma ** t


@SCHEDULES.register(defs.CosineLR)
def _cosine(sched: Schedule, s, t: int) -> float:
    if t < s.warmup:
        return sched.base * (t + 1) / s.warmup
    t = t - s.warmup  # torch's closed form, which keeps going past t_max (rising again)
    return s.eta_min + (sched.base - s.eta_min) * (1 + math.cos(math.pi * t / s.t_max)) / 2


@SCHEDULES.register(defs.ReduceOnPlateau)
def _plateau(sched: Schedule, s, t: int) -> float:
    return sched.plateau_lr
