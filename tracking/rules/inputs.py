"""The run input of the advise contract (DESIGN.md), read into numpy arrays.

A run input is plain data: {"config", "metrics": {name: [[step, value], ...]},
"steps_per_epoch", "status"}. Values may be NaN or infinite (also written as the
strings "nan", "inf", "-inf"). The config is read, never validated: an external
run may hold any keys.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

STATUSES = ("running", "finished", "failed")


class RunInputError(ValueError):
    """A run input the engine cannot read: `field` names the part, `message` says why."""

    def __init__(self, field: str, message: str):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


@dataclass
class Series:
    steps: np.ndarray  # float64, sorted ascending
    values: np.ndarray  # float64, may hold nan/inf

    def __len__(self):
        return len(self.steps)


@dataclass
class RunInput:
    config: dict
    metrics: dict[str, Series] = field(default_factory=dict)
    steps_per_epoch: int | None = None
    status: str = "finished"


# Metrics the engine only summarises (percentiles, constant or not, the schedule's shape): a long
# series of these is read every k-th point, so a run of 3 x 200,000 step points stays fast.
SUMMARISED = ("lr", "grad_norm", "train_accuracy", "val_accuracy")
SUMMARY_POINTS = 20_000


def _series(name: str, points) -> Series:
    where = f"metrics.{name}"
    if not isinstance(points, (list, tuple)):
        raise RunInputError(where, "must be a list of [step, value] pairs")
    if not points:
        return Series(np.empty(0), np.empty(0))
    if len(points) > SUMMARY_POINTS and _canonical(name) in SUMMARISED:
        points = points[:: len(points) // SUMMARY_POINTS]
    try:
        if any(isinstance(p, (str, bytes, dict)) or len(p) != 2 or isinstance(p[0], bool) or isinstance(p[1], bool)
               for p in (points[0], points[-1])):
            raise TypeError
        flat = np.fromiter(itertools.chain.from_iterable(points), dtype=float, count=2 * len(points))
    except (TypeError, ValueError):
        raise RunInputError(where, "every point must be a [step, value] pair of numbers "
                                   "(values may be \"nan\" or \"inf\")") from None
    pairs = flat.reshape(-1, 2)
    steps, values = pairs[:, 0], pairs[:, 1]
    if not np.isfinite(steps).all():
        raise RunInputError(where, "steps must be finite numbers")
    if steps.size > 1 and (np.diff(steps) < 0).any():
        order = np.argsort(steps, kind="stable")
        steps, values = steps[order], values[order]
    return Series(np.ascontiguousarray(steps), np.ascontiguousarray(values))


def _canonical(name: str) -> str:
    from .features import ALIASES

    return ALIASES.get(name.lower(), name)


def read_run_input(data) -> RunInput:
    """Check the shape of a run input and read its metrics; raise RunInputError naming the field."""
    if not isinstance(data, dict):
        raise RunInputError("run input", "must be a JSON object")
    config = data.get("config") or {}
    if not isinstance(config, dict):
        raise RunInputError("config", "must be a JSON object")
    metrics = data.get("metrics")
    if not isinstance(metrics, dict):
        raise RunInputError("metrics", "must be an object mapping metric names to [[step, value], ...]")
    series = {}
    for name, points in metrics.items():
        if not isinstance(name, str):
            raise RunInputError("metrics", "metric names must be strings")
        series[name] = _series(name, points)
    if not any(len(s) for s in series.values()):
        raise RunInputError("metrics", "no metric point at all: nothing to analyse")
    losses = ("train_loss", "train_loss_epoch", "val_loss")
    if not any(len(s) and _canonical(name) in losses for name, s in series.items()):
        raise RunInputError("metrics", "no loss curve: give train_loss, val_loss (or an alias such as loss, "
                                       "eval_loss) as [[step, value], ...]")
    spe = data.get("steps_per_epoch")
    if spe is not None:
        if isinstance(spe, str) and spe.strip().isdigit():
            spe = int(spe)
        if isinstance(spe, bool) or not isinstance(spe, (int, float)) or not math.isfinite(spe) or spe < 1:
            raise RunInputError("steps_per_epoch", "must be a whole number >= 1, or null")
        spe = int(spe)
    status = data.get("status", "finished")
    if status is None:
        status = "finished"
    if status not in STATUSES:
        raise RunInputError("status", f"must be one of {', '.join(STATUSES)}")
    return RunInput(config=config, metrics=series, steps_per_epoch=spe, status=status)
