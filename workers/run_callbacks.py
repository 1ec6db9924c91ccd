"""Callbacks that tie a Training to its Run row: progress, stop requests, chart series and the
rules engine's hooks. Each is throttled by time, so a fast loop writes a few times a second
at most."""
from __future__ import annotations

import importlib
import importlib.util
import logging
import time

from django.utils import timezone

from workers.callbacks import Callback
from workers.mlflow_logging import finite_or_text

log = logging.getLogger(__name__)


class Throttled(Callback):
    """Calls `tick(training)` at the end of a step or an epoch at most every `interval` s,
    and once at the start and the end of the fit."""

    interval = 0.25

    def __init__(self, interval=None):
        if interval is not None:
            self.interval = interval
        self._last = 0.0

    def _maybe(self, training):
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self.tick(training)

    def on_fit_start(self, training):
        self._last = time.monotonic()
        self.tick(training)

    def on_step_end(self, training):
        self._maybe(training)

    def on_epoch_end(self, training):
        self._maybe(training)

    def on_fit_end(self, training):
        self.tick(training)

    def tick(self, training): ...


def latest_metrics(training):
    metrics = {**training.step_metrics, **training.epoch_metrics}
    return {k: finite_or_text(float(v)) for k, v in metrics.items()}


class RunProgress(Throttled):
    """Writes epoch, step, ETA, latest metrics and the heartbeat to the Run row."""

    order = 80

    def __init__(self, run_id, interval=0.25):
        super().__init__(interval)
        self.run_id = run_id

    def tick(self, training):
        from tracking.models import Run

        eta = training.eta_seconds()
        Run.objects.filter(pk=self.run_id).update(
            epoch=training.epoch, step=training.step, total_steps=training.total_steps,
            steps_per_epoch=training.steps_per_epoch, eta_seconds=eta,
            latest_metrics=latest_metrics(training), heartbeat_at=timezone.now(),
        )


class StopRequests(Throttled):
    """Ends the run when the run page's stop button has set Run.stop_requested."""

    order = 5

    def __init__(self, run_id, interval=0.5):
        super().__init__(interval)
        self.run_id = run_id

    def tick(self, training):
        from tracking.models import Run

        if not training.should_stop and Run.objects.filter(pk=self.run_id, stop_requested=True).exists():
            training.stop("stopped at a user's request", status="stopped")

    def on_fit_end(self, training):
        pass


class SeriesUpdates(Throttled):
    """Appends the new points to the run's downsampled MetricSeries (for the live charts)."""

    order = 85

    def __init__(self, run_id, interval=1.0):
        super().__init__(interval)
        self.run_id = run_id
        self._sent = {}  # metric -> points of training.history already appended

    def tick(self, training):
        from tracking.series import series_append

        new = {}
        for key, points in training.history.items():
            start = self._sent.get(key, 0)
            if len(points) > start:
                new[key] = points[start:]
                self._sent[key] = len(points)
        if new:
            series_append(self.run_id, new)


def analysis_module():
    """tracking.analysis (the rules engine's adapter) when it exists, else None."""
    if importlib.util.find_spec("tracking.analysis") is None:
        return None
    return importlib.import_module("tracking.analysis")


def send_analysis(run_id, final):
    """Enqueue tracking.tasks.analyse_run on the short queue; never fails the run."""
    if analysis_module() is None:
        return False
    from kombu.exceptions import OperationalError

    from webapp.celery import app

    try:
        app.send_task("tracking.tasks.analyse_run", args=[run_id], kwargs={"final": final}, queue="default",
                      retry=True, retry_policy={"max_retries": 1, "interval_start": 0.2})
    except (OperationalError, ConnectionError, OSError) as exc:
        log.warning("run %s: analysis not enqueued (broker unreachable: %s)", run_id, exc)
        return False
    return True


class Analysis(Callback):
    """Every `every` epochs: asks the rules engine whether to stop (config stop_on_diagnosis),
    and enqueues an interim analysis at most every `min_seconds`."""

    order = 20

    def __init__(self, run_id, stop_on_diagnosis=False, every=5, min_seconds=15.0):
        self.run_id, self.stop_on_diagnosis = run_id, stop_on_diagnosis
        self.every, self.min_seconds = every, min_seconds
        self._last_sent = time.monotonic()
        self.module = analysis_module()

    def on_epoch_end(self, training):
        if self.module is None or training.epoch % self.every or training.should_stop:
            return
        should_stop_early = getattr(self.module, "should_stop_early", None)
        if self.stop_on_diagnosis and should_stop_early is not None:
            reason = should_stop_early(self.run_id, training.history)
            if reason:
                training.stop(f"stopped on diagnosis: {reason}", status="stopped")
                return
        if time.monotonic() - self._last_sent >= self.min_seconds:
            self._last_sent = time.monotonic()
            send_analysis(self.run_id, final=False)
