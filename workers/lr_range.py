"""The learning-rate range test: a run of kind "lr_find".

`range_test(config)` is pure (torch only): it builds the config's data set, model and optimizer
with the engine's builders, raises the LR exponentially from `lr_min` to `lr_max` over
`lr_find_steps` steps (1e-7 to 10 over 100 by default), smooths the loss (debiased EMA, beta
0.98) and stops once it passes 4x its minimum. `run_lr_find(run_id)` runs it for a queued Run:
claims it, logs `lr`, `train_loss` and `smooth_loss` per step to MLflow (batched) and to
MetricSeries, and ends the run with the three suggestions in its status reason and MLflow tags.
"""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass, field

from tracking import lr_finder

log = logging.getLogger(__name__)
SERIES_KEYS = ("lr", "train_loss", "smooth_loss")


@dataclass
class RangeTestResult:
    lrs: list = field(default_factory=list)
    losses: list = field(default_factory=list)      # raw train loss per step
    smoothed: list = field(default_factory=list)    # debiased EMA per step
    stop_reason: str = ""
    steps_planned: int = 0
    suggestions: dict = field(default_factory=dict)
    seconds: float = 0.0

    def history(self) -> dict:
        """Metric histories in the DESIGN.md shape: name -> [(step, value), ...]."""
        return {"lr": list(enumerate(self.lrs)), "train_loss": list(enumerate(self.losses)),
                "smooth_loss": list(enumerate(self.smoothed))}


def range_test(config: dict, device=None, on_step=None) -> RangeTestResult:
    """Sweep the LR on the config's model and data; `on_step(step, lr, loss, smooth)` may return
    True to stop (a stop request)."""
    import torch

    from workers.engine import Training

    started = time.monotonic()
    steps = config.get("lr_find_steps") or lr_finder.STEPS
    lr_min, lr_max = config.get("lr_min") or lr_finder.LR_MIN, config.get("lr_max") or lr_finder.LR_MAX
    training = Training({**config, "epochs": max(1, config["epochs"])}, device=device)
    model, optimizer, data = training.model, training.optimizer, training.data
    tracker = lr_finder.SmoothedLoss()
    result = RangeTestResult(steps_planned=steps)
    model.train()
    order, position, bs = None, 0, training.batch_size
    for step in range(steps):
        if order is None or position + bs > data.n_train:
            order, position = torch.randperm(data.n_train, generator=training.generator).to(data.x_train.device), 0
        idx = order[position:position + bs]
        position += bs
        lr = lr_finder.lr_at(step, lr_min, lr_max, steps)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        xb = data.augment(idx, training.generator) if data.augment else data.x_train[idx]
        loss = training.loss_fn(model(xb), data.y_train[idx])
        value = loss.item()
        if math.isfinite(value):
            training.zero_grad()
            loss.backward()
            optimizer.step()
        smooth = tracker.update(value)
        result.lrs.append(lr)
        result.losses.append(value)
        result.smoothed.append(smooth)
        if tracker.should_stop:
            result.stop_reason = f"stopped at step {step}: {tracker.stop_reason}"
            break
        if on_step and on_step(step, lr, value, smooth):
            result.stop_reason = f"stopped at step {step} on request"
            break
    else:
        result.stop_reason = f"reached lr_max after {steps} steps"
    result.suggestions = suggestions_of(result.lrs, result.smoothed, steps)
    result.seconds = time.monotonic() - started
    return result


def suggestions_of(lrs, smoothed, steps) -> dict:
    try:
        return lr_finder.suggest(lrs, smoothed, steps=steps)
    except lr_finder.NotEnoughPoints:
        return {}


# ---------------------------------------------------------------- the Run of kind "lr_find"

def lr_find_create(*, source, owner, lr_min=None, lr_max=None, lr_find_steps=None):
    """A queued Run of kind "lr_find" on the model and data of `source` (a Run), enqueued after
    commit. Raises ConfigError naming the field (nothing written) on a bad value."""
    from django.db import transaction

    from tracking.config import validate_config
    from tracking.models import Run
    from workers.dispatch import enqueue_run

    keys = {k: v for k, v in (("lr_min", lr_min), ("lr_max", lr_max), ("lr_find_steps", lr_find_steps))
            if v is not None}
    config = validate_config({**source.config, **keys})
    with transaction.atomic():
        run = Run.objects.create(
            project=source.project, owner=owner, kind=Run.Kind.LR_FIND, config=config, queue=config["queue"],
            parent=source, name=f"LR range test of {source.name}"[:200],
            note=f"LR from {config['lr_min']:g} to {config['lr_max']:g} over {config['lr_find_steps']} steps")
        transaction.on_commit(lambda: enqueue_run(run.pk))
    return run


def run_lr_find(run_id: int, worker: str = "") -> str:
    """Execute a queued lr_find Run (idempotent: only a queued run is claimed). Returns its status."""
    import socket

    import torch
    from django.conf import settings
    from django.db.models import F
    from django.utils import timezone

    from tracking.models import Run
    from workers.mlflow_logging import make_client, project_experiment_id

    torch.set_num_threads(1)
    now = timezone.now()
    claimed = Run.objects.filter(pk=run_id, status=Run.Status.QUEUED, kind=Run.Kind.LR_FIND).update(
        status=Run.Status.RUNNING, started_at=now, heartbeat_at=now, attempts=F("attempts") + 1,
        total_steps=0, step=0, worker=(worker or socket.gethostname())[:200])
    if not claimed:
        return "skipped"
    run = Run.objects.select_related("project").get(pk=run_id)
    config = run.config
    client = make_client(settings.MLFLOW_TRACKING_URI)
    experiment = project_experiment_id(client, run.project, settings.MLFLOW_ARTIFACT_ROOT)
    ml_run = client.create_run(experiment, run_name=run.name,
                               tags={"runwise.run_id": str(run.pk), "runwise.project_id": str(run.project_id),
                                     "runwise.kind": "lr_find"})
    Run.objects.filter(pk=run_id).update(mlflow_run_id=ml_run.info.run_id,
                                         total_steps=config["lr_find_steps"], device="cpu")
    client.log_batch(ml_run.info.run_id, params=_params(config))
    last_beat = [time.monotonic()]

    def on_step(step, lr, loss, smooth):
        if time.monotonic() - last_beat[0] < 0.5:
            return False
        last_beat[0] = time.monotonic()
        Run.objects.filter(pk=run_id).update(step=step + 1, heartbeat_at=timezone.now(),
                                             latest_metrics={"lr": lr, "train_loss": loss})
        return Run.objects.filter(pk=run_id, stop_requested=True).exists()

    try:
        result = range_test(config, on_step=on_step)
    except Exception as exc:  # noqa: BLE001 - any error ends the run as failed, with its reason
        log.exception("lr_find run %s failed", run_id)
        client.set_terminated(ml_run.info.run_id, "FAILED")
        Run.objects.filter(pk=run_id).update(status=Run.Status.FAILED, finished_at=timezone.now(),
                                             status_reason=f"{type(exc).__name__}: {exc}")
        return Run.Status.FAILED
    _log_result(client, ml_run.info.run_id, result)
    store_series(run, result)
    stopped = "on request" in result.stop_reason
    status = Run.Status.STOPPED if stopped else Run.Status.SUCCEEDED
    client.set_terminated(ml_run.info.run_id, "KILLED" if stopped else "FINISHED")
    Run.objects.filter(pk=run_id).update(
        status=status, finished_at=timezone.now(), step=len(result.lrs), steps_per_epoch=0,
        status_reason=f"{result.stop_reason}. {summary(result.suggestions)}",
        latest_metrics={"lr": result.lrs[-1], "train_loss": result.losses[-1]} if result.lrs else {})
    return status


def summary(suggestions: dict) -> str:
    if not suggestions:
        return "Too few points for a suggestion."
    return "Suggested LR: " + ", ".join(f"{name} {s['lr']:.3g}" for name, s in suggestions.items())


def _params(config):
    from mlflow.entities import Param

    return [Param(k, str(v)[:500]) for k, v in sorted(config.items())]


def _log_result(client, mlflow_run_id, result):
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    metrics = [Metric(name, float(value), now, step)
               for name, points in result.history().items() for step, value in points]
    for start in range(0, len(metrics), 100):
        client.log_batch(mlflow_run_id, metrics=metrics[start:start + 100])
    tags = [RunTag("lr_find.stop_reason", result.stop_reason[:500])]
    tags += [RunTag(f"lr_find.{name}", f"{s['lr']:.6g}") for name, s in result.suggestions.items()]
    client.log_batch(mlflow_run_id, tags=tags)
    client.log_text(mlflow_run_id, json.dumps({"suggestions": result.suggestions,
                                               "stop_reason": result.stop_reason}, indent=1), "lr_find.json")


def store_series(run, result):
    from tracking.models import MetricSeries

    for key, points in result.history().items():
        clean = [[s, v if math.isfinite(v) else None] for s, v in points]
        MetricSeries.objects.update_or_create(run=run, key=key, defaults={
            "points": clean, "count": len(clean), "last_step": len(clean) - 1})
