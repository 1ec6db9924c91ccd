"""Callbacks that tie a Training to its Run row (progress, heartbeat, stop requests, chart
series: written at most twice a second, off the loop's thread) and to the rules engine's
hooks (interim analysis, stop on a confident diagnosis)."""
from __future__ import annotations

import importlib
import importlib.util
import logging
import threading
import time

from django.utils import timezone

from workers.callbacks import Callback
from tracking.series import encode

log = logging.getLogger(__name__)


def latest_metrics(training):
    metrics = {**training.step_metrics, **training.epoch_metrics}
    return {k: encode(v) for k, v in metrics.items()}  # non-finite values as "nan", "inf"


class RunSync(Callback):
    """Keeps the Run row in step with the training, from a background thread so that the
    loop never waits on the database: every `interval` s it writes the progress (epoch, step,
    ETA, latest metrics, heartbeat) and reads the stop request; every `series_interval` s it
    appends the new points to the chart series. A stop request ends the run after the
    current step. The thread only reads the training (whose lists and dicts are appended to
    or replaced, never mutated in place); the loop's thread acts on what it found. The final
    progress and series are written at teardown, from the loop's thread."""

    order = 5

    def __init__(self, run_id, interval=0.5, series_interval=1.0):
        self.run_id, self.interval, self.series_interval = run_id, interval, series_interval
        self.stop_requested = False
        self._done = threading.Event()
        self._thread = None
        self._series_sent = {}

    def on_fit_start(self, training):
        self._sync(training, series=True)  # before the first step: progress, and a stop asked while queued
        self.on_step_end(training)
        self._thread = threading.Thread(target=self._loop, args=(training,), name=f"run-{self.run_id}-sync",
                                        daemon=True)
        self._thread.start()

    def on_step_end(self, training):
        if self.stop_requested and not training.should_stop:
            training.stop("stopped at a user's request", status="stopped")

    on_epoch_end = on_step_end

    def on_fit_end(self, training):
        self._done.set()  # the thread ends after its current write, if any

    def on_teardown(self, training):
        # The final write, from the loop's thread (its database connection is open: a thread's
        # first query opens one, ~1.5 ms), after every callback's on_fit_end has handed its last
        # work off, so it overlaps the MLflow writer's last batch, model and run end.
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._sync(training, series=True, check_stop=False)

    def _loop(self, training):
        from django.db import close_old_connections, connection

        next_series = time.monotonic() + self.series_interval
        try:
            while not self._done.wait(self.interval):
                series = time.monotonic() >= next_series
                if series:
                    next_series = time.monotonic() + self.series_interval
                try:
                    self._sync(training, series=series)
                except Exception:  # a missed progress write is retried at the next tick
                    log.exception("run %s: progress not written", self.run_id)
                    close_old_connections()
        finally:
            connection.close()

    def _sync(self, training, series=False, check_stop=True):
        from tracking.models import Run

        Run.objects.filter(pk=self.run_id).update(
            epoch=training.epoch, step=training.step, total_steps=training.total_steps,
            steps_per_epoch=training.steps_per_epoch, eta_seconds=training.eta_seconds(),
            latest_metrics=latest_metrics(training), heartbeat_at=timezone.now(),
        )
        if check_stop and Run.objects.filter(pk=self.run_id, stop_requested=True).exists():
            self.stop_requested = True
        if series:
            self._append_series(training)

    def _append_series(self, training):
        from tracking.series import series_append

        new = {}
        for key, points in list(training.history.items()):
            start, end = self._series_sent.get(key, 0), len(points)
            if end > start:
                new[key] = points[start:end]
                self._series_sent[key] = end
        if new:
            series_append(self.run_id, new)


def analysis_module():
    """tracking.analysis (the rules engine's adapter) when it exists, else None."""
    if importlib.util.find_spec("tracking.analysis") is None:
        return None
    return importlib.import_module("tracking.analysis")


def send_analysis(run_id, final):
    """Enqueue tracking.tasks.analyse_run on the short queue (an interim one only when none is
    pending for the run); never fails the run. A final one lost to a broker outage is caught up
    by Celery beat (tracking.tasks.catch_up_analyses)."""
    module = analysis_module()
    if module is None:
        return False
    return module.analysis_enqueue(run_id=run_id, final=final)


class Analysis(Callback):
    """Every `every` epochs (ANALYSIS_EVERY_EPOCHS, 5): asks the rules engine whether to stop
    (config stop_on_diagnosis), and enqueues an interim analysis at most every `min_seconds`
    (ANALYSIS_MIN_SECONDS, 15 s; the first one that long after the start)."""

    order = 20

    def __init__(self, run_id, stop_on_diagnosis=False, every=None, min_seconds=None):
        from django.conf import settings

        self.run_id, self.stop_on_diagnosis = run_id, stop_on_diagnosis
        self.every = settings.ANALYSIS_EVERY_EPOCHS if every is None else every
        self.min_seconds = settings.ANALYSIS_MIN_SECONDS if min_seconds is None else min_seconds
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
