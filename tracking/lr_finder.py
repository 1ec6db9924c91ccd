"""The learning-rate range test, the pure part: the LR schedule, the smoothed loss, the stop
rule and the three suggestions, as fastai's `lr_find` computes them.

- The LR grows exponentially from `lr_min` (1e-7) to `lr_max` (10) over `steps` (100) steps.
- The loss is smoothed with a debiased exponential moving average (beta 0.98).
- The test stops once the smoothed loss passes 4x its minimum (or is not finite).
- Suggestions are read on the trimmed curve (the first 10% and the last 5 points dropped):
  `valley` (about halfway through the middle third of the longest decreasing stretch; the
  default), `steep` (the most negative d loss / d log lr) and `minimum` (the LR at the minimum
  of the smoothed loss, divided by 10).

No Django, torch or MLflow here: plain lists in, plain data out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

LR_MIN, LR_MAX, STEPS = 1e-7, 10.0, 100
BETA = 0.98
STOP_FACTOR = 4.0
SKIP_END = 5
SUGGESTIONS = ("valley", "steep", "minimum")


def lr_at(step: int, lr_min: float = LR_MIN, lr_max: float = LR_MAX, steps: int = STEPS) -> float:
    """The LR of step `step` (0-based) of an exponential sweep from lr_min to lr_max."""
    if steps <= 1:
        return lr_min
    return lr_min * (lr_max / lr_min) ** (step / (steps - 1))


def lr_schedule(lr_min: float = LR_MIN, lr_max: float = LR_MAX, steps: int = STEPS) -> list[float]:
    return [lr_at(i, lr_min, lr_max, steps) for i in range(steps)]


@dataclass
class SmoothedLoss:
    """A debiased EMA of the loss that knows when to stop (fastai's LRFinder callback)."""

    beta: float = BETA
    stop_factor: float = STOP_FACTOR
    average: float = 0.0
    count: int = 0
    best: float = math.inf
    values: list = field(default_factory=list)
    stop_reason: str = ""

    def update(self, loss: float) -> float:
        """Add one raw loss; returns the smoothed value (nan once the loss is not finite)."""
        self.count += 1
        if not math.isfinite(loss):
            smooth = math.nan
        else:
            self.average = self.beta * self.average + (1 - self.beta) * loss
            smooth = self.average / (1 - self.beta ** self.count)
        self.values.append(smooth)
        if not math.isfinite(smooth):
            self.stop_reason = "the loss is not finite"
        elif smooth > self.stop_factor * self.best:
            self.stop_reason = f"the smoothed loss passed {self.stop_factor:g}x its minimum"
        else:
            self.best = min(self.best, smooth)
        return smooth

    @property
    def should_stop(self) -> bool:
        return bool(self.stop_reason)


def smooth_losses(losses, beta: float = BETA) -> list[float]:
    """The debiased EMA of a whole loss list (nan from the first non-finite value on)."""
    tracker = SmoothedLoss(beta=beta, stop_factor=math.inf)
    out = []
    for loss in losses:
        out.append(tracker.update(float(loss)))
        if not math.isfinite(out[-1]):
            out.extend([math.nan] * (len(losses) - len(out)))
            break
    return out


def valley(lrs, losses) -> int:
    """Index of the valley LR: about halfway through the middle third of the longest
    decreasing stretch (a longest decreasing subsequence, as fastai computes it)."""
    n = len(losses)
    lds = [1] * n
    max_start = max_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
        if lds[max_end] < lds[i]:
            max_end = i
            max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    return min(n - 1, max_start + int(sections) + int(sections / 2))


def steep(lrs, losses) -> int:
    """Index of the steepest descent of the loss against log(lr)."""
    best, best_i = math.inf, 0
    for i in range(len(losses) - 1):
        dx = math.log(lrs[i + 1]) - math.log(lrs[i])
        if dx <= 0:
            continue
        grad = (losses[i + 1] - losses[i]) / dx
        if grad < best:
            best, best_i = grad, i
    return best_i


def minimum(lrs, losses) -> int:
    return min(range(len(losses)), key=losses.__getitem__)


class NotEnoughPoints(ValueError):
    """Too few finite points to suggest an LR."""


def suggest(lrs, losses, steps: int | None = None, smoothed: bool = True) -> dict:
    """The three suggestions for a recorded range test.

    `losses` are the smoothed losses (as recorded; pass smoothed=False to smooth raw losses
    here). Returns {"valley": {"lr", "loss", "index"}, "steep": ..., "minimum": ...}, the
    indexes pointing into the given lists; `minimum`'s lr is the LR at the minimum / 10.
    """
    if len(lrs) != len(losses):
        raise ValueError("lrs and losses must have the same length")
    smooth = list(map(float, losses)) if smoothed else smooth_losses(losses)
    indexed = list(range(len(smooth)))
    n = len(smooth)
    planned = steps or n
    start = planned // 10
    end = n - SKIP_END if n - SKIP_END > start + 2 else n
    keep = [i for i in indexed[start:end] if lrs[i] > 0 and math.isfinite(smooth[i])]
    if len(keep) < 3:
        raise NotEnoughPoints(f"the range test has {len(keep)} usable points; at least 3 are needed")
    t_lrs = [float(lrs[i]) for i in keep]
    t_losses = [smooth[i] for i in keep]
    out = {}
    for name, pick in (("valley", valley), ("steep", steep), ("minimum", minimum)):
        j = pick(t_lrs, t_losses)
        lr = t_lrs[j] / 10 if name == "minimum" else t_lrs[j]
        out[name] = {"lr": lr, "loss": t_losses[j], "index": keep[j], "at_lr": t_lrs[j]}
    return out


def run_config_with_lr(config: dict, lr: float, mode: str = "constant") -> dict:
    """A training config that uses a range-test LR: as the constant LR, or as one-cycle's max_lr."""
    if mode not in ("constant", "onecycle"):
        raise ValueError("mode must be 'constant' or 'onecycle'")
    drop = ("lr_min", "lr_max", "lr_find_steps")
    base = {k: v for k, v in config.items() if k not in drop}
    return {**base, "lr": float(lr), "scheduler": mode}
