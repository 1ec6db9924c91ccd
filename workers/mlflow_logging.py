"""MLflow logging for the training engine: params once, the DESIGN.md metrics with their
steps, the `steps_per_epoch` tag, a checkpoint artifact at each epoch end and the final model.

Per-step metrics are buffered and handed, a batch at a time, to a writer *process* that
sends them with `MlflowClient.log_batch` in chunks of 1,000 (as W&B's service process
does): with the embedded SQLite store MLflow spends ~50 us of Python per point, more than a
small model's step, and in a thread it would hold the GIL against the training loop. The
writer handles its messages in order, so a checkpoint is stored only after every metric
logged before it. Every MLflow call retries with back-off; when MLflow stays out of reach
the run fails with `MlflowUnavailable` naming the cause.

Nothing here imports Django: the worker's service passes the tracking URI and paths.
"""
from __future__ import annotations

import functools
import itertools
import logging
import math
import multiprocessing as mp
import queue
import shutil
import tempfile
import threading
import time
from pathlib import Path

from workers.callbacks import Callback
from workers.engine import EPOCH_METRICS, STEP_METRICS
from workers.errors import MlflowUnavailable, retrying

log = logging.getLogger(__name__)

BATCH_LIMIT = 1000          # MLflow's limit of metrics per log_batch call
FLUSH_POINTS = 3000         # hand the buffer to the writer at this many points...
FLUSH_SECONDS = 1.0         # ...or this often
CHECKPOINT_PATH = "checkpoints"
CHECKPOINT_FILE = "last.pt"
MODEL_PATH = "model"
RETRY = {"attempts": 5, "first_delay": 0.5, "max_delay": 8.0}
TERMINAL_STATUS = {"succeeded": "FINISHED", "stopped": "KILLED", "diverged": "FAILED", "failed": "FAILED"}


# ------------------------------------------------------------------ client and experiments

def make_client(tracking_uri):
    from mlflow import MlflowClient

    _sqlite_wal(tracking_uri)
    return MlflowClient(tracking_uri=tracking_uri)


@functools.lru_cache(maxsize=None)
def _sqlite_wal(tracking_uri):
    """A SQLite store is written by the worker, its writer process and read by the web app:
    WAL mode lets readers and the writer go on together (a setting kept in the file)."""
    if not tracking_uri.startswith("sqlite:///"):
        return
    import sqlite3

    path = tracking_uri[len("sqlite:///"):]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path, timeout=20) as db:
        db.execute("PRAGMA journal_mode=WAL")


def call(what, fn):
    """One MLflow call from the training process, retried with back-off."""
    return retrying(fn, what=f"MLflow {what}", **RETRY)


def experiment_id(client, name, artifact_root):
    """The id of the experiment `name`, created with an explicit artifact location."""
    from mlflow.exceptions import MlflowException

    def get_or_create():
        found = client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return client.create_experiment(name, artifact_location=f"{artifact_root.rstrip('/')}/{name}")
        except MlflowException:  # created meanwhile by another worker
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    return call(f"experiment {name!r}", get_or_create)


def config_params(config):
    return {k: ("" if v is None else str(v))[:6000] for k, v in sorted(config.items())}


def logged_steps(client, run_id, keys):
    """The last step already logged for each metric of a run (to resume without doubles)."""
    out = {}
    for key in keys:
        history = call(f"get_metric_history {key}", lambda key=key: client.get_metric_history(run_id, key))
        if history:
            out[key] = max(m.step for m in history)
    return out


def download_checkpoint(client, run_id, dst_dir):
    """The path of the run's last checkpoint, or None when it has none yet."""
    def fetch():
        names = {a.path for a in client.list_artifacts(run_id, CHECKPOINT_PATH)}
        if f"{CHECKPOINT_PATH}/{CHECKPOINT_FILE}" not in names:
            return None
        return client.download_artifacts(run_id, f"{CHECKPOINT_PATH}/{CHECKPOINT_FILE}", dst_dir)

    return call("download checkpoint", fetch)


# ------------------------------------------------------------------ the writer process

class MlflowWriter:
    """A child process that performs MLflow writes in the order they were handed to it."""

    def __init__(self, tracking_uri, retry=None):
        ctx = mp.get_context("spawn")
        self.tracking_uri = tracking_uri
        self.inbox, self.outbox = ctx.Queue(), ctx.Queue()
        self.proc = ctx.Process(target=_writer_main, name="mlflow-writer", daemon=True,
                                args=(tracking_uri, dict(RETRY, **(retry or {})), self.inbox, self.outbox))
        self.proc.start()
        self._tokens = itertools.count()
        self.errors = {}  # run_id -> first error

    def is_alive(self):
        return self.proc.is_alive()

    def log_metrics(self, run_id, points):
        """points: [(key, value, timestamp_ms, step), ...]"""
        if points:
            self.inbox.put(("metrics", run_id, points))

    def log_artifact(self, run_id, local_path, artifact_path, remove_after=True):
        self.inbox.put(("artifact", run_id, str(local_path), artifact_path, remove_after))

    def terminate_run(self, run_id, status):
        self.inbox.put(("terminate", run_id, status, int(time.time() * 1000)))

    def poll_errors(self):
        while True:
            try:
                kind, run_id, message = self.outbox.get_nowait()[:3]
            except queue.Empty:
                return
            if kind == "error":
                self.errors.setdefault(run_id, message)

    def error_for(self, run_id):
        self.poll_errors()
        return self.errors.get(run_id)

    def flush(self, timeout=600.0):
        """Wait until everything handed over so far is written; raise MlflowUnavailable on an error."""
        token = next(self._tokens)
        self.inbox.put(("flush", token))
        deadline = time.monotonic() + timeout
        while True:
            try:
                message = self.outbox.get(timeout=0.2)
            except queue.Empty:
                if not self.proc.is_alive():
                    raise MlflowUnavailable("the MLflow writer process died") from None
                if time.monotonic() > deadline:
                    raise MlflowUnavailable(f"MLflow writes did not finish within {timeout:.0f}s") from None
                continue
            if message[0] == "error":
                self.errors.setdefault(message[1], message[2])
            elif message[0] == "flushed" and message[1] == token:
                return

    def close(self):
        if self.proc.is_alive():
            self.inbox.put(("stop",))
            self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()


_writers = {}
_writers_lock = threading.Lock()


def shared_writer(tracking_uri) -> MlflowWriter:
    """This process's writer for a tracking URI (started on first use, restarted if it died)."""
    with _writers_lock:
        writer = _writers.get(tracking_uri)
        if writer is None or not writer.is_alive():
            writer = _writers[tracking_uri] = MlflowWriter(tracking_uri)
        return writer


def _die_with_parent():
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _writer_main(tracking_uri, retry, inbox, outbox):
    _die_with_parent()
    from mlflow.entities import Metric

    client = make_client(tracking_uri)
    parent = mp.parent_process()
    failed = {}  # run_id -> error: later writes of that run are dropped

    def attempt(run_id, what, fn):
        if run_id in failed:
            return
        try:
            retrying(fn, what=f"MLflow {what}", **retry)
        except MlflowUnavailable as exc:
            failed[run_id] = str(exc)
            outbox.put(("error", run_id, str(exc)))

    pending = []
    while True:
        if not pending:
            try:
                pending.append(inbox.get(timeout=1.0))
            except queue.Empty:
                if parent is not None and not parent.is_alive():
                    return
                continue
        message = pending.pop(0)
        kind = message[0]
        if kind == "stop":
            return
        if kind == "flush":
            outbox.put(("flushed", message[1]))
        elif kind == "metrics":
            run_id, points = message[1], list(message[2])
            # Coalesce the metric batches of the same run waiting behind this one.
            while len(points) < 20 * BATCH_LIMIT:
                try:
                    nxt = inbox.get_nowait()
                except queue.Empty:
                    break
                if nxt[0] == "metrics" and nxt[1] == run_id:
                    points.extend(nxt[2])
                else:
                    pending.append(nxt)
                    break
            for start in range(0, len(points), BATCH_LIMIT):
                chunk = [Metric(k, v, ts, s) for k, v, ts, s in points[start:start + BATCH_LIMIT]]
                attempt(run_id, "log_batch", lambda chunk=chunk: client.log_batch(run_id, metrics=chunk, synchronous=True))
        elif kind == "artifact":
            _, run_id, local_path, artifact_path, remove_after = message
            attempt(run_id, "log_artifact", lambda: client.log_artifact(run_id, local_path, artifact_path))
            if remove_after:
                Path(local_path).unlink(missing_ok=True)
        elif kind == "terminate":
            _, run_id, status, end_time = message
            attempt(run_id, "set_terminated", lambda: client.set_terminated(run_id, status, end_time))


# ------------------------------------------------------------------ the callback

class MlflowLogger(Callback):
    """Logs a Training to one MLflow run (created by the caller: never an implicit run).

    `resume=True` when the MLflow run already has data from an earlier attempt: points with a
    step already in MLflow are not logged again, so each step and epoch appears once.
    """

    order = 90  # after the callbacks that may stop the run at an epoch end

    def __init__(self, client, run_id, writer, *, resume=False, log_checkpoints=True, log_model=True,
                 flush_points=FLUSH_POINTS, flush_seconds=FLUSH_SECONDS):
        self.client, self.run_id, self.writer = client, run_id, writer
        self.resume = resume
        self.log_checkpoints, self.log_model = log_checkpoints, log_model
        self.flush_points, self.flush_seconds = flush_points, flush_seconds
        self.buffer = []
        self.logged_through = {}  # metric -> last step already in MLflow (resume only)
        self.tmp = Path(tempfile.mkdtemp(prefix="runwise-ckpt-"))
        self._last_flush = time.monotonic()
        self._flushed_a_step = False
        self._checkpoints = itertools.count()

    # -- hooks
    def on_fit_start(self, training):
        run_id = self.run_id
        params = config_params(training.config)
        call("log params", lambda: self._log_params(params, training.steps_per_epoch))
        if self.resume:
            self.logged_through = logged_steps(self.client, run_id, STEP_METRICS + EPOCH_METRICS)
            # What an earlier attempt computed but never stored (from the checkpoint's history).
            for key, points in training.history.items():
                for step, value in points:
                    self._add(key, value, step)
        self._last_flush = time.monotonic()

    def on_step_end(self, training):
        ts = int(time.time() * 1000)
        step = training.step - 1
        metrics = training.step_metrics
        if self.logged_through:
            for key, value in metrics.items():
                self._add(key, value, step, ts)
        else:
            self.buffer.extend((key, value, ts, step) for key, value in metrics.items())
        if (len(self.buffer) >= self.flush_points or time.monotonic() - self._last_flush >= self.flush_seconds
                or not self._flushed_a_step):
            self._flushed_a_step = True  # the first step goes out at once: the run page shows it
            self.flush()

    def on_epoch_end(self, training):
        ts = int(time.time() * 1000)
        for key, value in training.epoch_metrics.items():
            self._add(key, value, training.epoch, ts)
        self.flush()
        if self.log_checkpoints and training.status != "diverged":
            self.save_checkpoint(training)
        self._raise_writer_error()

    def on_fit_end(self, training):
        self.flush()
        if self.log_checkpoints and training.status == "stopped":
            self.save_checkpoint(training)  # where it stopped, mid-epoch
        if self.log_model and training.status in ("succeeded", "stopped"):
            self._save(MODEL_PATH, "model.pt", {"state_dict": training.model.state_dict(),
                                               "config": training.config,
                                               "n_features": training.data.n_features,
                                               "n_classes": training.data.n_classes,
                                               "image_shape": training.data.image_shape})
        self.writer.terminate_run(self.run_id, TERMINAL_STATUS.get(training.status, "FAILED"))
        try:
            self.writer.flush()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
        self._raise_writer_error()

    # -- helpers
    def _log_params(self, params, steps_per_epoch):
        from mlflow.entities import Param, RunTag

        items = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start:start + 100])
        self.client.log_batch(self.run_id, tags=[RunTag("steps_per_epoch", str(steps_per_epoch))])

    def _add(self, key, value, step, ts=None):
        if step <= self.logged_through.get(key, -1):
            return
        self.buffer.append((key, float(value), ts or int(time.time() * 1000), step))

    def flush(self):
        if self.buffer:
            self.writer.log_metrics(self.run_id, self.buffer)
            self.buffer = []
        self._last_flush = time.monotonic()

    def save_checkpoint(self, training):
        ckpt = training.checkpoint(step_history=False)
        self._save(CHECKPOINT_PATH, CHECKPOINT_FILE, ckpt)

    def _save(self, artifact_path, name, obj):
        import torch

        folder = self.tmp / str(next(self._checkpoints))
        folder.mkdir()
        torch.save(obj, folder / name)
        self.writer.log_artifact(self.run_id, folder / name, artifact_path)

    def _raise_writer_error(self):
        error = self.writer.error_for(self.run_id)
        if error:
            raise MlflowUnavailable(error)


def load_checkpoint_file(path, device):
    import torch

    return torch.load(path, map_location=device, weights_only=False)


def finite_or_text(value):
    """A metric value for JSON: non-finite floats as the strings "nan", "inf", "-inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value

