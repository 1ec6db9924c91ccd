"""Training a Run: claim it, train it with MLflow logging, write its final state.

Used by the Celery task (workers.tasks.train_run) and by `manage.py train`. The Run row
follows the state machine queued -> running -> succeeded | failed | stopped | diverged;
every transition is a conditional UPDATE on the status it expects, so a duplicate or
redelivered task message is harmless. A run that already has an MLflow run (an earlier
attempt died) resumes from its last checkpoint, and logs no step or epoch twice.
"""
from __future__ import annotations

import logging
import socket
import tempfile
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from tracking.config import ConfigError, validate_config
from workers.datasets import DatasetError
from workers.engine import default_device, fit
from workers.errors import PermanentError, TransientError
from workers.mlflow_logging import (CHECKPOINT_SECONDS, MlflowLogger, call, download_checkpoint, experiment_id, load_checkpoint_file,
                                    make_client, shared_writer)
from workers.run_callbacks import Analysis, RunSync, send_analysis
from workers.weights import UnsafeFileError

log = logging.getLogger(__name__)


def heartbeat_timeout() -> timedelta:
    return timedelta(seconds=getattr(settings, "RUN_HEARTBEAT_TIMEOUT", 120))


def claim_run(run_id, *, worker, device):
    """queued -> running (or take over a running run whose worker's heartbeat is stale).
    True when this worker now owns the run."""
    from tracking.models import Run

    now = timezone.now()
    stale = Q(status=Run.Status.RUNNING) & (Q(heartbeat_at__lt=now - heartbeat_timeout()) | Q(heartbeat_at__isnull=True))
    claimed = Run.objects.filter(Q(pk=run_id) & (Q(status=Run.Status.QUEUED) | stale)).update(
        status=Run.Status.RUNNING, worker=worker, device=device, attempts=F("attempts") + 1,
        heartbeat_at=now, started_at=Coalesce(F("started_at"), Value(now)), status_reason="",
    )
    return claimed == 1


def finish_run(run_id, *, worker, status, reason, result=None):
    """running -> a final state, only while this worker owns the run."""
    from tracking.models import Run

    now = timezone.now()
    fields = dict(status=status, status_reason=reason[:2000], finished_at=now, heartbeat_at=now, eta_seconds=None)
    if result is not None:
        fields.update(best_val_loss=result.best_val_loss, best_val_accuracy=result.best_val_accuracy,
                      diverged_step=result.diverged_step, epoch=result.epochs_run, step=result.steps_run)
    return Run.objects.filter(pk=run_id, status=Run.Status.RUNNING, worker=worker).update(**fields) == 1


def open_mlflow_run(client, run):
    """(mlflow_run_id, resumed, artifact_uri): the run's MLflow run, created on its first attempt."""
    from mlflow.exceptions import MlflowException

    from tracking.models import Run

    def existing():
        try:
            return client.get_run(run.mlflow_run_id)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise

    found = call("get_run", existing) if run.mlflow_run_id else None
    if found is not None:
        call("update_run", lambda: client.update_run(run.mlflow_run_id, status="RUNNING"))
        return run.mlflow_run_id, True, found.info.artifact_uri
    exp = experiment_id(client, f"project-{run.project_id}", settings.MLFLOW_ARTIFACT_ROOT)
    tags = {"runwise.run_id": str(run.pk), "runwise.project_id": str(run.project_id), "runwise.queue": run.queue}
    created = call("create_run", lambda: client.create_run(exp, run_name=run.name or f"run-{run.pk}", tags=tags))
    Run.objects.filter(pk=run.pk).update(mlflow_run_id=created.info.run_id)
    return created.info.run_id, False, created.info.artifact_uri


def train_run(run_id, *, worker=None, device=None):
    """Train one run to a final state; returns the FitResult, or None if not claimed here."""
    from tracking.models import Run

    worker = worker or socket.gethostname()
    device = device or default_device()
    if not claim_run(run_id, worker=worker, device=device):
        log.info("run %s not claimed by %s: not queued, or another live worker has it", run_id, worker)
        return None
    run = Run.objects.get(pk=run_id)
    try:
        result = _train(run, device)
    except (ConfigError, DatasetError, PermanentError, TransientError) as exc:
        reason = f"bad config: {exc}" if isinstance(exc, ConfigError) else str(exc)
        finish_run(run_id, worker=worker, status=Run.Status.FAILED, reason=reason)
        log.warning("run %s failed: %s", run_id, reason)
        send_analysis(run_id, final=True)
        return None
    except Exception as exc:
        finish_run(run_id, worker=worker, status=Run.Status.FAILED, reason=f"{type(exc).__name__}: {exc}")
        send_analysis(run_id, final=True)
        raise
    finish_run(run_id, worker=worker, status=result.status, reason=result.reason, result=result)
    log.info("run %s %s: %s (best val_loss %s)", run_id, result.status, result.reason, result.best_val_loss)
    send_analysis(run_id, final=True)
    return result


def _train(run, device):
    config = validate_config(run.config)
    client = make_client(settings.MLFLOW_TRACKING_URI)
    mlflow_run_id, resumed, artifact_uri = open_mlflow_run(client, run)
    checkpoint = None
    if resumed:
        with tempfile.TemporaryDirectory(prefix="runwise-resume-") as tmp:
            path = download_checkpoint(client, mlflow_run_id, tmp)
            if path:
                try:
                    checkpoint = load_checkpoint_file(path, device, what=f"the last checkpoint of MLflow run {mlflow_run_id}")
                except UnsafeFileError:
                    raise
                except Exception as exc:
                    raise PermanentError(f"the last checkpoint of MLflow run {mlflow_run_id} is unreadable: {exc}") from exc
        if checkpoint:
            log.info("run %s resumes from its checkpoint at epoch %s", run.pk, checkpoint["epoch"])
            call("set_tag", lambda: client.set_tag(mlflow_run_id, "resumed_from_epoch", str(checkpoint["epoch"])))
    callbacks = [
        RunSync(run.pk),
        Analysis(run.pk, stop_on_diagnosis=config.get("stop_on_diagnosis", False)),
        MlflowLogger(client, mlflow_run_id, shared_writer(settings.MLFLOW_TRACKING_URI), resume=resumed,
                     checkpoint_seconds=getattr(settings, "RUN_CHECKPOINT_SECONDS", CHECKPOINT_SECONDS),
                     artifact_uri=artifact_uri),
    ]
    return fit(config, callbacks, device=device, checkpoint=checkpoint)
