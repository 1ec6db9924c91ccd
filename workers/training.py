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
import threading
from datetime import timedelta

from django.conf import settings
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from tracking.config import ConfigError, validate_config
from workers.datasets import DatasetError
from workers.callbacks import Callback
from workers.engine import default_device, fit
from workers.errors import PermanentError, TransientError, _short
from workers.mlflow_logging import (CHECKPOINT_SECONDS, MlflowLogger, call, download_checkpoint, load_checkpoint_file,
                                    make_client, project_experiment_id, shared_writer)
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
    # only a built-in run: a task that raced a code run's creation (kind read as missing) takes nothing
    claimed = Run.objects.filter(Q(pk=run_id, kind=Run.Kind.TRAIN) & (Q(status=Run.Status.QUEUED) | stale)).update(
        status=Run.Status.RUNNING, worker=worker, device=device, attempts=F("attempts") + 1,
        heartbeat_at=now, started_at=Coalesce(F("started_at"), Value(now)), status_reason="",
    )
    return claimed == 1


def finish_run(run_id, *, worker, status, reason, result=None):
    """running -> a final state, only while this worker owns the run."""
    from tracking.models import Run
    from workers.isolation import worker_alive

    if status == Run.Status.FAILED and not worker_alive(grace=2.0):
        log.warning("run %s: its worker died; left to recovery, not failed (%s)", run_id, reason)
        return False
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
    exp = project_experiment_id(client, run.project, settings.MLFLOW_ARTIFACT_ROOT)
    tags = {"runwise.run_id": str(run.pk), "runwise.project_id": str(run.project_id), "runwise.queue": run.queue}
    created = call("create_run", lambda: client.create_run(exp, run_name=run.name or f"run-{run.pk}", tags=tags))
    Run.objects.filter(pk=run.pk).update(mlflow_run_id=created.info.run_id)
    return created.info.run_id, False, created.info.artifact_uri


class RunLimits(Callback):
    """The run's wall-clock limit (a timer thread asks the loop to end the run as failed; the
    time of earlier attempts counts), and where the run is, for an out-of-memory message."""

    order = 0

    def __init__(self, time_limit=None, memory_mb=None):
        self.time_limit, self.memory_mb = time_limit, memory_mb
        self.training = None
        self._timer = None

    def on_fit_start(self, training):
        self.training = training
        if self.time_limit:
            self._timer = threading.Timer(max(0.0, self.time_limit - training.elapsed), self._expire)
            self._timer.daemon = True
            self._timer.start()

    def _expire(self):
        t = self.training
        t.stop(f"wall-clock limit of {self.time_limit}s reached at epoch {t.epoch + 1} step {t.step} "
               f"(RUN_TIME_LIMIT)", status="failed")

    def on_fit_end(self, training):
        if self._timer is not None:
            self._timer.cancel()

    def out_of_memory(self, exc) -> str:
        where = ("while setting up the run (data, model)" if self.training is None
                 else f"at epoch {self.training.epoch + 1} step {self.training.step}")
        limit = f" (the run's memory limit is {self.memory_mb} MB, RUN_MEMORY_LIMIT_MB)" if self.memory_mb else ""
        return f"out of memory {where}{limit}: {_short(exc)}"


def is_out_of_memory(exc) -> bool:
    """MemoryError, torch's OutOfMemoryError (CUDA) and the CPU allocator's failure."""
    import torch

    if isinstance(exc, (MemoryError, getattr(torch, "OutOfMemoryError", MemoryError))):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "out of memory" in text
                                              or "cannot allocate memory" in text)


def train_run(run_id, *, worker=None, device=None, memory_mb=None, time_limit=None):
    """Train one run to a final state; returns the FitResult, or None if not claimed here.
    Out of memory (MemoryError, the allocator's error) fails the run saying where it was."""
    from tracking.models import Run

    worker = worker or socket.gethostname()
    device = device or default_device()
    if not claim_run(run_id, worker=worker, device=device):
        log.info("run %s not claimed by %s: not queued, or another live worker has it", run_id, worker)
        return None
    run = Run.objects.get(pk=run_id)
    limits = RunLimits(time_limit=time_limit, memory_mb=memory_mb)
    try:
        result = _train(run, device, limits)
    except (ConfigError, DatasetError, PermanentError, TransientError) as exc:
        reason = f"bad config: {exc}" if isinstance(exc, ConfigError) else str(exc)
        finish_run(run_id, worker=worker, status=Run.Status.FAILED, reason=reason)
        log.warning("run %s failed: %s", run_id, reason)
        send_analysis(run_id, final=True)
        return None
    except Exception as exc:
        if not is_out_of_memory(exc):
            finish_run(run_id, worker=worker, status=Run.Status.FAILED, reason=f"{type(exc).__name__}: {exc}")
            send_analysis(run_id, final=True)
            raise
        reason = limits.out_of_memory(exc)
        del exc  # let the frames holding the failed step's tensors go
        finish_run(run_id, worker=worker, status=Run.Status.FAILED, reason=reason)
        log.warning("run %s failed: %s", run_id, reason)
        send_analysis(run_id, final=True)
        return None
    finish_run(run_id, worker=worker, status=result.status, reason=result.reason, result=result)
    log.info("run %s %s: %s (best val_loss %s)", run_id, result.status, result.reason, result.best_val_loss)
    send_analysis(run_id, final=True)
    return result


def _train(run, device, limits=None):
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
        limits or RunLimits(),
        RunSync(run.pk),
        Analysis(run.pk, stop_on_diagnosis=config.get("stop_on_diagnosis", False)),
        MlflowLogger(client, mlflow_run_id, shared_writer(settings.MLFLOW_TRACKING_URI), resume=resumed,
                     checkpoint_seconds=getattr(settings, "RUN_CHECKPOINT_SECONDS", CHECKPOINT_SECONDS),
                     artifact_uri=artifact_uri),
    ]
    return fit(config, callbacks, device=device, checkpoint=checkpoint)
