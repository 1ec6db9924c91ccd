"""Progress of a run whose script logs to MLflow on its own (a code run, an imported run), from
the metrics read through tracking.mlflow_io (DESIGN.md names), pure Python.

Epochs done: the epoch-level points (val_loss, train_loss_epoch, ...) or an `epoch` metric,
whichever says more; the total: the config's `epochs` (a mapped `epochs`/`max_epochs`/...
parameter). With `steps_per_epoch` known (tag or param) the bar counts steps, else epochs."""
from __future__ import annotations

import math

EPOCH_KEYS = ("val_loss", "train_loss_epoch", "val_accuracy", "train_accuracy")


def finite(value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def epochs_done(metrics: dict, epoch_metric=None) -> int:
    points = max((len(metrics.get(k) or []) for k in EPOCH_KEYS), default=0)
    epoch = finite(epoch_metric)
    return max(points, int(epoch) if epoch is not None else 0)


def progress_fields(metrics: dict, *, epoch_metric, total_epochs, steps_per_epoch, elapsed) -> dict:
    """Run fields: epoch, step, total_steps, steps_per_epoch, eta_seconds, latest_metrics."""
    done = epochs_done(metrics, epoch_metric)
    fields = dict(epoch=done, latest_metrics={k: p[-1][1] for k, p in metrics.items() if p})
    total = total_epochs if isinstance(total_epochs, int) and not isinstance(total_epochs, bool) \
        and total_epochs >= 1 else None
    if total:
        train = metrics.get("train_loss") or []
        if steps_per_epoch and train:
            fields.update(steps_per_epoch=steps_per_epoch, total_steps=total * steps_per_epoch,
                          step=min(total * steps_per_epoch, int(train[-1][0]) + 1))
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
    """{key: [(step, float)]} (non-finite values, stored as strings, back to floats)."""
    return {k: [(int(s), float(v)) for s, v in points] for k, points in metrics.items()}
