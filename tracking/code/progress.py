"""Curves and progress of a run whose script logs to MLflow on its own (a code run, an imported
run), pure Python: the run input read by tracking.mlflow_io is put on DESIGN.md's names and axes
by the rules engine's reader (Lightning's `*_step`, Hugging Face's `eval_*`, epoch-level values
logged at global steps moved onto epochs, steps per epoch inferred).

Epochs done: the last epoch of the epoch-level curves (val_loss, train_loss_epoch, ...); the
total: the config's `epochs` (a mapped `epochs`/`max_epochs`/... parameter). With the steps per
epoch known the bar counts steps, else epochs."""
from __future__ import annotations

import math

EPOCH_KEYS = ("val_loss", "train_loss_epoch", "val_accuracy", "train_accuracy")


def finite(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def design_metrics(run_input: dict) -> tuple[dict, int | None]:
    """({DESIGN name: [(step or epoch, value)]}, steps per epoch) of a run input; ({}, ...) while
    there is no loss curve yet."""
    from tracking.rules import RunInputError, read_run_input

    try:
        read = read_run_input(run_input)
    except RunInputError:
        return {}, run_input.get("steps_per_epoch")
    return ({k: list(zip(s.steps.tolist(), s.values.tolist())) for k, s in read.metrics.items()},
            read.steps_per_epoch)


def epochs_done(metrics: dict, epoch_metric=None) -> int:
    """From the epoch-level curves, or an `epoch` metric (epochs done, or Lightning's 0-based
    current epoch) when it says more."""
    last = [finite(points[-1][0]) for k in EPOCH_KEYS if (points := metrics.get(k))]
    epoch = finite(epoch_metric)
    return max([int(v + 1e-6) for v in last if v is not None] + ([int(epoch + 1e-6)] if epoch else []), default=0)


def last_value(run_input: dict, name: str):
    points = (run_input.get("metrics") or {}).get(name) or []
    return points[-1][1] if points else None


def progress_fields(metrics: dict, *, total_epochs, steps_per_epoch, elapsed, epoch_metric=None) -> dict:
    """Run fields: epoch, step, total_steps, steps_per_epoch, eta_seconds, latest_metrics
    (`metrics` on DESIGN names and axes, as from design_metrics; `epoch_metric` the last value of
    a logged `epoch` metric, if any)."""
    done = epochs_done(metrics, epoch_metric)
    fields = dict(epoch=done, latest_metrics={k: encode(p[-1][1]) for k, p in metrics.items() if p})
    total = total_epochs if isinstance(total_epochs, int) and not isinstance(total_epochs, bool) \
        and total_epochs >= 1 else None
    if total:
        train = metrics.get("train_loss") or []
        if steps_per_epoch and train:
            fields.update(steps_per_epoch=steps_per_epoch, total_steps=total * steps_per_epoch,
                          step=max(0, min(total * steps_per_epoch, int(train[-1][0]) + 1)))
        else:
            fields.update(total_steps=total, step=min(total, done))
        share = fields["step"] / fields["total_steps"]
        fields["eta_seconds"] = elapsed * (1 - share) / share if share > 0 and elapsed is not None else None
    return fields


def best(metrics: dict) -> dict:
    val = [v for v in (finite(v) for _, v in metrics.get("val_loss") or []) if v is not None]
    acc = [v for v in (finite(v) for _, v in metrics.get("val_accuracy") or []) if v is not None]
    return dict(best_val_loss=min(val) if val else None, best_val_accuracy=max(acc) if acc else None)


def as_history(metrics: dict) -> dict:
    """{key: [(int step, float value)]}."""
    return {k: [(int(round(s)), float(v)) for s, v in points] for k, points in metrics.items()}


def encode(value):
    value = float(value)
    if math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
