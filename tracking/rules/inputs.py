"""The run input of the advise contract (DESIGN.md), read into numpy arrays.

A run input is plain data: {"config", "metrics": {name: [[step, value], ...]},
"steps_per_epoch", "status"}. Values may be NaN or infinite (also written as the
strings "nan", "inf", "-inf"; a numeric string is read as its number). Every point the
engine reads is checked: a point that is not a pair of numbers (a bool, null, a string
other than a number or nan/inf, three numbers) is refused, naming the metric and the
point's index. That is every point of every series, except in a long series that the
engine only summarises (SUMMARISED: lr, grad_norm, accuracies), of which it reads every
k-th point (about SUMMARY_POINTS, the last one among them), so the rest can have no effect on the
answer. The
config is read, never validated: an external run may hold any keys.

Metric names of other loggers (Lightning, Hugging Face, Keras, plain scripts) are read
under DESIGN.md's names, the steps per epoch inferred when no tag says it, and epoch-level
series put on a 1-based epoch axis (tracking.rules.loggers).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import chain
from operator import itemgetter

import numpy as np

from . import loggers

STATUSES = ("running", "finished", "failed")
NONFINITE = {"nan": math.nan, "+nan": math.nan, "-nan": math.nan, "inf": math.inf, "+inf": math.inf,
             "infinity": math.inf, "+infinity": math.inf, "-inf": -math.inf, "-infinity": -math.inf}
NUMBER_TYPES = {int, float}


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
    metrics: dict[str, Series] = field(default_factory=dict)  # DESIGN names; epoch-level ones on epochs
    steps_per_epoch: int | None = None
    status: str = "finished"
    sources: dict[str, str] = field(default_factory=dict)  # DESIGN name -> the name it was logged under


# Metrics the engine only summarises (percentiles, constant or not, the schedule's shape in 100 bins):
# of a long series of these only every k-th point is read (and checked), the last one among them.
# 2,000 points put 20 in each of lr_response's bins and 20 above grad_norm's 99th percentile. Reading
# a point far from the last one read costs cache misses: every 10th point of a 200,000-point series
# took a third of the time of reading all of them.
SUMMARISED = ("lr", "grad_norm", "train_accuracy", "val_accuracy", "epoch")
SUMMARY_POINTS = 2_000
_step_of, _value_of = itemgetter(0), itemgetter(1)


def _bad_point(where: str, points, stride: int = 1, offset: int = 0) -> RunInputError:
    """The first malformed point of a series (the slow path, taken only when one exists); `points`
    may be every `stride`-th point of the series from `offset` on, whose indices are then named."""
    for i, p in enumerate(points):
        i = offset + i * stride
        if not isinstance(p, (list, tuple)) or len(p) != 2:
            why = "is not a [step, value] pair"
        elif type(p[0]) not in NUMBER_TYPES or not math.isfinite(p[0]):
            why = f"has step {p[0]!r}: steps must be finite numbers"
        elif type(p[1]) not in NUMBER_TYPES and not (isinstance(p[1], str) and p[1].strip().lower() in NONFINITE):
            why = f"has value {p[1]!r}: values must be numbers (or \"nan\", \"inf\", \"-inf\")"
        else:
            continue
        return RunInputError(f"{where}[{i}]", f"point {i} {why}")
    return RunInputError(where, "every point must be a [step, value] pair of numbers")


def _column(where: str, points, column: list, stride: int = 1, offset: int = 0) -> np.ndarray:
    """One column (steps or values) as float64; every entry checked, strings nan/inf read."""
    types = set(map(type, column))
    if not types <= NUMBER_TYPES:
        if types - NUMBER_TYPES != {str} or not all(
                type(v) in NUMBER_TYPES or v.strip().lower() in NONFINITE for v in column):
            raise _bad_point(where, points, stride, offset)
        column = [NONFINITE[v.strip().lower()] if type(v) is str else v for v in column]
    return np.fromiter(column, dtype=float, count=len(column))


def _fast(points, n: int):
    """Steps and values of a well-formed series in one C-level pass; None when a point needs a look.
    np.fromiter reads True as 1, None as nan and "nan"/"inf" strings as their values, so the points
    that came out 0, 1 or non-finite (few in a loss curve) are looked at one by one."""
    try:
        if set(map(len, points)) != {2}:
            return None
        flat = np.fromiter(chain.from_iterable(points), dtype=float, count=2 * n)
    except (TypeError, ValueError):
        return None
    with np.errstate(invalid="ignore"):
        suspects = np.flatnonzero((flat == 0.0) | (flat == 1.0) | ~np.isfinite(flat))
    for i in suspects.tolist():
        v = points[i >> 1][i & 1]
        if type(v) is bool or v is None or (type(v) is str and (i & 1 == 0 or v.strip().lower() not in NONFINITE)):
            return None
    if not isinstance(points[0], (list, tuple)) or not isinstance(points[-1], (list, tuple)):
        return None
    pairs = flat.reshape(-1, 2)
    return pairs[:, 0], pairs[:, 1]


def _series(name: str, points) -> Series:
    where = f"metrics.{name}"
    if not isinstance(points, (list, tuple)):
        raise RunInputError(where, "must be a list of [step, value] pairs")
    if not points:
        return Series(np.empty(0), np.empty(0))
    stride, offset = 1, 0
    if len(points) > SUMMARY_POINTS and loggers.canonical_name(name) in SUMMARISED:
        stride = len(points) // SUMMARY_POINTS
        offset = (len(points) - 1) % stride  # so that the last point is read
        points = points[offset::stride]  # only these are read
    found = _fast(points, len(points))
    if found is None:  # something is off somewhere: read it column by column, naming the first bad point
        if not set(map(type, points)) <= {list, tuple} or set(map(len, points)) != {2}:
            raise _bad_point(where, points, stride, offset)
        steps = _column(where, points, list(map(_step_of, points)), stride, offset)
        values = _column(where, points, list(map(_value_of, points)), stride, offset)
    else:
        steps, values = found
    if not np.isfinite(steps).all():
        raise _bad_point(where, points, stride, offset)
    if steps.size > 1 and not (steps[1:] >= steps[:-1]).all():
        order = np.argsort(steps, kind="stable")
        steps, values = steps[order], values[order]
    return Series(steps, values)  # views of the one array read (strided: no copy needed)


def _on_design_axes(series: dict[str, Series], spe):
    """Pick one series per DESIGN name, infer the steps per epoch, put epoch-level series on epochs."""
    sources = loggers.choose_sources({name: len(s) for name, s in series.items()})
    metrics = {target: series[name] for target, name in sources.items() if len(series[name])}
    if spe is None:
        spe = loggers.infer_steps_per_epoch(metrics)
    per_step = metrics.get("train_loss")
    per_step_end = float(per_step.steps[-1]) if per_step is not None and len(per_step) else None
    for name in loggers.EPOCH_METRICS:
        s = metrics.get(name)
        if s is not None:
            labels = loggers.epoch_labels(s, metrics, spe, per_step_end)
            metrics[name] = Series(np.ascontiguousarray(labels, dtype=float), s.values)
    metrics.pop("epoch", None)
    return metrics, spe, sources


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
    design, spe, sources = _on_design_axes(series, spe)
    if not any(name in design for name in ("train_loss", "train_loss_epoch", "val_loss")):
        raise RunInputError("metrics", "no loss curve: give train_loss, val_loss (or an alias such as loss, "
                                       "eval_loss, train_loss_step) as [[step, value], ...]")
    return RunInput(config=config, metrics=design, steps_per_epoch=spe, status=status, sources=sources)
