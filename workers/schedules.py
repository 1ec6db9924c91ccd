"""Learning-rate (and one-cycle momentum) schedules, per global optimizer step.

A linear warm-up from lr/100 over `warmup_epochs` comes first; the chosen schedule then
runs over the remaining steps:

- constant: the base lr;
- step: multiplied by `gamma` every `step_size` epochs;
- cosine: cosine annealing to 0 at the last step;
- cosine_restarts: cosine annealing restarted every `restart_period` epochs, each cycle
  `cycle_mult` times longer than the one before (SGDR);
- onecycle: from lr/25 up to lr over `pct_start` of the steps, then down to lr/250000
  (cosine both ways, PyTorch's OneCycleLR defaults), with the momentum (SGD/RMSprop
  momentum, Adam's beta1) cycled the other way: high -> low at the peak lr -> high.
"""
from __future__ import annotations

import math

WARMUP_START = 0.01       # warm-up starts at lr/100
ONECYCLE_DIV = 25.0       # one-cycle starts at lr/25 ...
ONECYCLE_FINAL_DIV = 1e4  # ... and ends at lr/25/1e4
ONECYCLE_MOMENTUM_RATIO = 0.85 / 0.95   # low momentum / high momentum (PyTorch's defaults)
ADAM_BETA1 = 0.95                       # one-cycle's high beta1 for Adam/AdamW


def _anneal(start, end, pct):
    return end + (start - end) / 2.0 * (1.0 + math.cos(math.pi * pct))


class Schedule:
    def __init__(self, config, steps_per_epoch):
        self.kind = config["scheduler"]
        self.base_lr = config["lr"]
        self.spe = steps_per_epoch
        self.total = config["epochs"] * steps_per_epoch
        self.warmup = int(round(config["warmup_epochs"] * steps_per_epoch))
        self.main = max(1, self.total - self.warmup)
        self.step_size = config["step_size"] * steps_per_epoch
        self.gamma = config["gamma"]
        self.period = config["restart_period"] * steps_per_epoch
        self.cycle_mult = config["cycle_mult"]
        self.up = max(1.0, config["pct_start"] * self.main)
        self.momentum_key, high = _momentum_of(config)
        self.momentum_range = None
        if self.kind == "onecycle" and self.momentum_key:
            self.momentum_range = (high, high * ONECYCLE_MOMENTUM_RATIO)

    # -- the factor of the base lr at a step
    def factor(self, step: int) -> float:
        if step < self.warmup:
            return WARMUP_START + (1.0 - WARMUP_START) * step / self.warmup
        s = step - self.warmup
        if self.kind == "constant":
            return 1.0
        if self.kind == "step":
            return self.gamma ** (s // self.step_size)
        if self.kind == "cosine":
            return _anneal(1.0, 0.0, min(s, self.main) / self.main)
        if self.kind == "cosine_restarts":
            t, length = self._in_cycle(s)
            return _anneal(1.0, 0.0, t / length)
        if self.kind == "onecycle":
            if s <= self.up:
                return _anneal(1.0 / ONECYCLE_DIV, 1.0, s / self.up)
            pct = min(1.0, (s - self.up) / max(1.0, self.main - self.up))
            return _anneal(1.0, 1.0 / (ONECYCLE_DIV * ONECYCLE_FINAL_DIV), pct)
        raise ValueError(f"unknown scheduler {self.kind!r}")

    def _in_cycle(self, s):
        if self.cycle_mult == 1:
            return s % self.period, self.period
        length = self.period
        while s >= length:
            s -= length
            length *= self.cycle_mult
        return s, length

    def momentum(self, step: int):
        """The one-cycle momentum at a step, or None when the schedule does not set it."""
        if self.momentum_range is None:
            return None
        high, low = self.momentum_range
        s = step - self.warmup
        if s < 0:
            return high
        if s <= self.up:
            return _anneal(high, low, s / self.up)
        return _anneal(low, high, min(1.0, (s - self.up) / max(1.0, self.main - self.up)))

    def lr(self, step: int) -> float:
        return self.base_lr * self.factor(step)

    def apply(self, optimizer, step: int) -> float:
        """Set the lr (and momentum) of every param group for `step`; returns the lr."""
        lr = self.lr(step)
        momentum = self.momentum(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
            if momentum is not None:
                if self.momentum_key == "betas":
                    group["betas"] = (momentum, group["betas"][1])
                else:
                    group["momentum"] = momentum
        return lr

    def state_dict(self):
        return {"kind": self.kind, "warmup": self.warmup, "total": self.total}


def _momentum_of(config):
    """Which optimizer setting one-cycle cycles, and its high value."""
    opt = config["optimizer"]
    if opt in ("adam", "adamw"):
        return "betas", ADAM_BETA1
    if opt in ("sgd", "rmsprop") and config["momentum"] > 0:
        return "momentum", config["momentum"]
    return None, None
