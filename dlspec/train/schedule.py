"""Learning-rate schedules, computed by dlspec and handed to every backend's optimizer, so the rate
at each step is the same number everywhere (torch's formulas, see docs/semantics.md)."""

from __future__ import annotations

import math


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
        if s.type == "reduce_on_plateau":
            return self.plateau_lr
        t = epoch if s.interval == "epoch" else step
        if s.type == "step":
            return self.base * s.gamma ** (t // s.step_size)
        if s.type == "multistep":
            return self.base * s.gamma ** sum(1 for m in s.milestones if m <= t)
        if s.type == "exponential":
            return self.base * s.gamma ** t
        if s.type == "cosine":
            if t < s.warmup:
                return self.base * (t + 1) / s.warmup
            t = t - s.warmup  # torch's closed form, which keeps going past t_max (rising again)
            return s.eta_min + (self.base - s.eta_min) * (1 + math.cos(math.pi * t / s.t_max)) / 2
        raise ValueError(s.type)

    def epoch_end(self, logs: dict) -> None:
        """torch's ReduceLROnPlateau step ('min' mode, relative threshold)."""
        s = self.spec
        if s is None or s.type != "reduce_on_plateau":
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
