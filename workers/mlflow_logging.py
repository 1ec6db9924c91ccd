"""MLflow logging for the training engine: params once, the DESIGN.md metrics with their
steps, the `steps_per_epoch` tag, a checkpoint artifact at the end of each epoch (at most
every CHECKPOINT_SECONDS, and where a run is stopped) and the final model.

Per-step metrics are buffered and handed, a batch at a time, to a writer *process* (as W&B's
service process does), so MLflow's work never holds the training loop's GIL. With a SQL
store (the embedded SQLite one, or PostgreSQL) the writer inserts a batch's rows in one
executemany INSERT (`SqlStoreWriter`, ~9 us a point instead of `log_batch`'s ~60) and ends
the run with one UPDATE; other stores get `MlflowClient.log_batch` in chunks of 1,000 and
`set_terminated`. Artifacts of a local artifact store are saved straight into it (atomically);
others go through the artifact repository's `log_artifact`. The writer handles its messages in
order, so a checkpoint is stored only after every metric logged before it. Every MLflow call
retries with back-off; when MLflow stays out of reach the run fails with `MlflowUnavailable`
naming the cause.

Nothing here imports Django: the worker's service passes the tracking URI and paths.
"""
from __future__ import annotations

import collections
import contextlib
import functools
import itertools
import logging
import math
import multiprocessing as mp
import operator
import os
import pickle
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from workers.callbacks import EPOCH_METRICS, STEP_METRICS, Callback
from workers.errors import MlflowUnavailable, retrying


def detached_copy(*args, **kwargs):
    """workers.engine.detached_copy, imported on first use: the worker's own process (which starts
    the writer) never imports torch; only its runs' child processes do."""
    from workers.engine import detached_copy as copy

    return copy(*args, **kwargs)

log = logging.getLogger(__name__)

BATCH_LIMIT = 1000          # MLflow's limit of metrics per log_batch call
FLUSH_POINTS = 300          # hand the buffer to the writer at this many points...
FLUSH_SECONDS = 0.0125      # ...or this often (tuned with bench_training: the writer overlaps the loop)
CHECKPOINT_SECONDS = 2.0    # a checkpoint at an epoch end at most this often (every epoch once
                            # epochs are longer): tiny epochs would spend more on it than on training
CHECKPOINT_PATH = "checkpoints"
CHECKPOINT_FILE = "last.pt"
MODEL_PATH = "model"
RETRY = {"attempts": 5, "first_delay": 0.5, "max_delay": 8.0}
TERMINAL_STATUS = {"succeeded": "FINISHED", "stopped": "KILLED", "diverged": "FAILED", "failed": "FAILED"}


# ------------------------------------------------------------------ client and experiments

def make_client(tracking_uri):
    from mlflow import MlflowClient

    _sqlite_wal(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    if tracking_uri.startswith("sqlite:"):
        _sqlite_sync_normal(client)
    return client


def _sqlite_sync_normal(client):
    """This process's connections to a SQLite store commit without an fsync (synchronous=NORMAL,
    SQLite's advice for WAL mode): a crashed worker loses nothing, only a power cut can undo
    the last commits, and a commit no longer waits ~5 ms for the disk (a batch of per-step
    metrics took 7.5 ms with it, 2.4 ms without)."""
    import sqlalchemy as sa

    try:
        engine = client._tracking_client.store.engine
    except AttributeError:
        return
    if not sa.event.contains(engine, "connect", _sync_normal):
        sa.event.listen(engine, "connect", _sync_normal)
        engine.dispose()  # connections opened before the listener get it too


def _sync_normal(dbapi_connection, connection_record):
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


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


def experiment_name(project):
    """A project's MLflow experiment, named after its team and project (the id keeps it unique)."""
    return f"{project.team.name} / {project.name} #{project.pk}"


def project_experiment_id(client, project, artifact_root):
    """The id of the project's experiment. One made before experiments were named after the team
    and project ("project-<id>") is renamed, so a project keeps one experiment."""
    name = experiment_name(project)

    def rename_legacy():
        if client.get_experiment_by_name(name) is None:
            legacy = client.get_experiment_by_name(f"project-{project.pk}")
            if legacy is not None:
                client.rename_experiment(legacy.experiment_id, name)

    call(f"experiment {name!r}", rename_legacy)
    return experiment_id(client, name, artifact_root, folder=f"project-{project.pk}")


def experiment_id(client, name, artifact_root, folder=None):
    """The id of the experiment `name`, created with an explicit artifact location
    (`artifact_root/folder`, the folder defaulting to the name)."""
    from mlflow.exceptions import MlflowException

    def get_or_create():
        found = client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return client.create_experiment(name, artifact_location=f"{artifact_root.rstrip('/')}/{folder or name}")
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
    from tracking.mlflow_io import metric_history

    out = {}
    for key in keys:
        # only the last step counts: a sample of two keeps the first and the last point
        history = call(f"get_metric_history {key}", lambda key=key: metric_history(client, run_id, key, limit=2))
        if history:
            out[key] = max(step for step, _, _ in history)
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
    """A child process that performs MLflow writes in the order they were handed to it.

    Messages go through a pipe, pickled in the caller's thread (a multiprocessing.Queue's
    feeder thread would fight the training loop for the GIL) by the plain C pickler (the
    multiprocessing one looks each object's type up in a Python ChainMap: 70 us a batch of
    points instead of 12); a full pipe (the writer far behind) makes the caller wait:
    back-pressure rather than unbounded memory.
    """

    def __init__(self, tracking_uri, retry=None):
        ctx = mp.get_context("spawn")
        self.tracking_uri = tracking_uri
        child_in, self._to_child = ctx.Pipe(duplex=False)
        self._from_child, child_out = ctx.Pipe(duplex=False)
        _grow_pipe(self._to_child)
        self.proc = ctx.Process(target=_writer_main, name="mlflow-writer", daemon=True,
                                args=(tracking_uri, dict(RETRY, **(retry or {})), child_in, child_out))
        with _main_module_hidden():
            self.proc.start()
        child_in.close()
        child_out.close()
        self._init_state()

    def _init_state(self):
        """This process's side of the writer (also of an AttachedWriter in another process)."""
        self._tokens = itertools.count()
        self.errors = {}  # run_id -> first error
        self._send_lock = threading.Lock()
        # Artifacts wait here for the stager thread (serialising is not the loop's work), and so
        # do the messages that must follow them (a run's end, a flush).
        self._jobs = collections.deque()
        self._jobs_ready = threading.Condition()
        self._staging = False
        self._stager = None

    def is_alive(self):
        return self.proc.is_alive()

    def _send(self, message):
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            with self._send_lock:  # the loop's thread and the stager's share the pipe
                self._to_child.send_bytes(data)
        except (OSError, EOFError) as exc:
            raise MlflowUnavailable(f"the MLflow writer process is gone ({exc})") from None

    def log_metrics(self, run_id, points):
        """points: [(key, value, timestamp_ms, step), ...]"""
        if points:
            self._send(("metrics", run_id, points))

    def log_artifact_object(self, run_id, artifact_path, filename, obj, artifact_uri=None, on_staged=None):
        """torch.save(obj) as an artifact, off the caller's thread: this process's stager thread
        serialises it to a staging file and hands the file to the writer process, which stores
        it after everything handed over before it. So the caller only pays for a copy of its
        state: `obj` is kept as it is until serialised, so its tensors must not change
        afterwards (pass `workers.engine.detached_copy(...)` of live state). An object for the
        same artifact that arrives while an older one still waits replaces it (the older one
        would be overwritten anyway). With the run's `artifact_uri` the artifact goes straight
        there (MLflow would look the run up first, ~4 ms, once a run). `on_staged()` is called
        once `obj` is serialised (nothing reads it any more: its buffers may be reused)."""
        job = ("artifact", run_id, artifact_path, filename, obj, artifact_uri, on_staged)
        with self._jobs_ready:
            for i, waiting in enumerate(self._jobs):
                if waiting[:4] == job[:4]:
                    self._jobs[i] = job
                    break
            else:
                self._jobs.append(job)
            if self._stager is None:
                self._stager = threading.Thread(target=self._stage_loop, name="mlflow-stager", daemon=True)
                self._stager.start()
            self._jobs_ready.notify_all()

    def terminate_run(self, run_id, status):
        self._send_after_artifacts(("terminate", run_id, status, int(time.time() * 1000)))

    def _send_after_artifacts(self, message):
        """Send `message` behind every artifact handed over before it (at once when none waits)."""
        with self._jobs_ready:
            if self._jobs or self._staging:
                self._jobs.append(("send", message))
                self._jobs_ready.notify_all()
                return
            self._send(message)

    def _stage_loop(self):
        while True:
            with self._jobs_ready:
                while not self._jobs:
                    self._jobs_ready.wait()
                job = self._jobs.popleft()
                self._staging = True
            try:
                if job[0] == "stop":
                    return
                if job[0] == "send":
                    self._send(job[1])
                else:
                    self._stage(*job[1:])
            except Exception as exc:  # a full disk, an object that cannot be saved: the run's error
                log.exception("artifact or message not handed to the MLflow writer")
                run_id = job[1][1] if job[0] == "send" else job[1]
                self.errors.setdefault(run_id, f"{type(exc).__name__}: {exc}")
            finally:
                with self._jobs_ready:
                    self._staging = False
                    self._jobs_ready.notify_all()

    def _stage(self, run_id, artifact_path, filename, obj, artifact_uri, on_staged):
        """Serialise obj to a file and hand the file to the writer process: in a local artifact
        store, in the run's staging folder beside its artifacts (the writer renames it into place:
        atomic, no copy; never listed as an artifact while half written), else in a folder of its
        own named as the artifact (the writer uploads it, then removes it)."""
        import torch

        folder = local_artifact_dir(artifact_uri, self.tracking_uri)
        if folder is not None:
            folder = staging_dir(folder)
            folder.mkdir(parents=True, exist_ok=True)
            fd, staged = tempfile.mkstemp(dir=folder, prefix=f".{filename}.", suffix=".tmp")
            os.close(fd)
        else:
            staged = os.path.join(tempfile.mkdtemp(prefix="runwise-artifact-"), filename)
        try:
            try:
                torch.save(obj, staged)
            finally:
                if on_staged is not None:
                    on_staged()
            self._send(("artifact_file", run_id, artifact_path, filename, staged, artifact_uri))
        except BaseException:
            _remove_staged(staged, local=folder is not None)
            raise

    def wait_staged(self):
        """Block until every artifact handed over so far has gone to the writer process."""
        with self._jobs_ready:
            while self._jobs or self._staging:
                self._jobs_ready.wait()

    def _take(self, message):
        if message[0] == "error":
            self.errors.setdefault(message[1], message[2])

    def error_for(self, run_id):
        try:
            while self._from_child.poll():
                self._take(self._from_child.recv())
        except (OSError, EOFError):
            pass
        return self.errors.get(run_id)

    def flush(self, timeout=600.0):
        """Wait until everything handed over so far is written (errors are kept per run)."""
        token = next(self._tokens)
        self._send_after_artifacts(("flush", token))
        deadline = time.monotonic() + timeout
        while True:
            try:
                ready = self._from_child.poll(0.2)
                message = self._from_child.recv() if ready else None
            except (OSError, EOFError):
                raise MlflowUnavailable("the MLflow writer process died") from None
            if message is None:
                if not self.proc.is_alive():
                    raise MlflowUnavailable("the MLflow writer process died") from None
                if time.monotonic() > deadline:
                    raise MlflowUnavailable(f"MLflow writes did not finish within {timeout:.0f}s") from None
            elif message[0] == "flushed" and message[1] == token:
                return
            else:
                self._take(message)

    def _stop_stager(self):
        """Let the stager thread finish the checkpoints it holds, then end it."""
        if self._stager is not None:
            with self._jobs_ready:
                self._jobs.append(("stop",))
                self._jobs_ready.notify_all()
            self._stager.join(60)
            self._stager = None

    def close(self):
        self._stop_stager()
        if self.proc.is_alive():
            try:
                self._send(("stop",))
            except MlflowUnavailable:
                pass
            self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()


def local_artifact_dir(artifact_uri, tracking_uri=None):
    """The folder of a local artifact store (a path or file:// URI), else None."""
    if not artifact_uri:
        return None
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    repo = _artifact_repo(artifact_uri, tracking_uri)
    return repo.artifact_dir if isinstance(repo, LocalArtifactRepository) else None


@functools.lru_cache(maxsize=64)
def _artifact_repo(artifact_uri, tracking_uri):
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    return get_artifact_repository(artifact_uri, tracking_uri=tracking_uri)


def staging_dir(artifact_dir):
    """Where a run's local artifacts are staged: a sibling of its artifact folder (same file
    system, so a rename moves them in; outside what list_artifacts shows)."""
    artifact_dir = Path(artifact_dir)
    return artifact_dir.parent / f".{artifact_dir.name}-staging"


def _remove_staged(staged, local):
    with contextlib.suppress(OSError):
        if local:
            os.unlink(staged)
        else:
            shutil.rmtree(os.path.dirname(staged))


def _grow_pipe(conn, size=1 << 20):
    try:
        import fcntl

        fcntl.fcntl(conn.fileno(), 1031, size)  # F_SETPIPE_SZ (Linux): room for a few checkpoints
    except (ImportError, OSError):
        pass


class _OtherProcess:
    """The writer process as seen from a process that did not start it (its pid only)."""

    def __init__(self, pid):
        self.pid = pid

    def is_alive(self):
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        return True


class AttachedWriter(MlflowWriter):
    """Another process's writer, used through its pipes: a run's training process (workers/isolation.py)
    writes through its worker's writer, which outlives it. It stages its own artifacts (its own
    stager thread); closing it hands those over and leaves the writer process running."""

    def __init__(self, handle):
        self.tracking_uri, self._to_child, self._from_child, pid = handle
        self.proc = _OtherProcess(pid)
        self._init_state()
        self._tokens = itertools.count(int.from_bytes(os.urandom(6), "big"))  # not an earlier user's flush token

    def close(self):
        """Hand over what this process's stager still holds; the writer process goes on."""
        self._stop_stager()


def writer_handle(writer: MlflowWriter):
    """What another process needs to write through `writer` (picklable to a child process)."""
    return (writer.tracking_uri, writer._to_child, writer._from_child, writer.proc.pid)


def attach_writer(handle) -> MlflowWriter:
    """Make `handle`'s writer this process's shared writer for its tracking URI."""
    writer = AttachedWriter(handle)
    with _writers_lock:
        _writers[writer.tracking_uri] = writer
    return writer


_writers = {}
_writers_lock = threading.Lock()


def shared_writer(tracking_uri) -> MlflowWriter:
    """This process's writer for a tracking URI (started on first use, restarted if it died)."""
    with _writers_lock:
        writer = _writers.get(tracking_uri)
        if writer is None or not writer.is_alive():
            writer = _writers[tracking_uri] = MlflowWriter(tracking_uri)
        return writer


@contextlib.contextmanager
def _main_module_hidden():
    """The writer needs nothing from __main__: hide it from `spawn`, which would otherwise run
    a caller's unguarded script again in the child."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__dict__.update(saved)


def _die_with_parent():
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _writer_main(tracking_uri, retry, inbox, outbox):
    _die_with_parent()
    os.nice(5)  # on a busy core the training goes first (the writer still keeps up: checkpoints matter)
    from mlflow.entities import Metric

    client = make_client(tracking_uri)
    sql = SqlStoreWriter.for_client(client)
    parent = mp.parent_process()
    failed = {}  # run_id -> error: later writes of that run are dropped

    def attempt(run_id, what, fn):
        if run_id in failed:
            return
        try:
            retrying(fn, what=f"MLflow {what}", **retry)
        except MlflowUnavailable as exc:
            failed[run_id] = str(exc)
            outbox.send(("error", run_id, str(exc)))

    def receive(timeout):
        try:
            return pickle.loads(inbox.recv_bytes()) if inbox.poll(timeout) else None
        except EOFError:  # the training process is gone
            return ("stop",)

    pending = []
    try:
        while True:
            message = pending.pop(0) if pending else receive(1.0)
            if message is None:
                if parent is not None and not parent.is_alive():
                    return
                continue
            kind = message[0]
            if kind == "stop":
                return
            if kind == "flush":
                outbox.send(("flushed", message[1]))
            elif kind == "metrics":
                run_id, points = message[1], list(message[2])
                while len(points) < 20 * BATCH_LIMIT:  # coalesce this run's batches waiting behind
                    nxt = receive(0)
                    if nxt is None:
                        break
                    if nxt[0] == "metrics" and nxt[1] == run_id:
                        points.extend(nxt[2])
                    else:
                        pending.append(nxt)
                        break
                if sql is not None:
                    attempt(run_id, "metrics insert", lambda: sql.write(run_id, points))
                else:
                    for start in range(0, len(points), BATCH_LIMIT):
                        chunk = [Metric(k, v, ts, s) for k, v, ts, s in points[start:start + BATCH_LIMIT]]
                        attempt(run_id, "log_batch", lambda chunk=chunk: client.log_batch(run_id, metrics=chunk))
            elif kind == "artifact_file":
                _, run_id, artifact_path, filename, staged, artifact_uri = message
                local = local_artifact_dir(artifact_uri, tracking_uri) is not None
                if run_id in failed:
                    _remove_staged(staged, local)
                elif local:  # staged beside the run's artifacts: renamed into place, atomically
                    folder = Path(local_artifact_dir(artifact_uri, tracking_uri), artifact_path or "")
                    folder.mkdir(parents=True, exist_ok=True)
                    attempt(run_id, f"save {artifact_path}/{filename}",
                            functools.partial(os.replace, staged, folder / filename))
                    if run_id in failed:
                        _remove_staged(staged, local)
                else:
                    if artifact_uri:
                        store = functools.partial(_artifact_repo(artifact_uri, tracking_uri).log_artifact,
                                                  staged, artifact_path)
                    else:
                        store = functools.partial(client.log_artifact, run_id, staged, artifact_path)
                    attempt(run_id, f"log_artifact {artifact_path}/{filename}", store)
                    _remove_staged(staged, local)
            elif kind == "terminate":
                _, run_id, status, end_time = message
                if sql is not None:
                    attempt(run_id, "end the run", lambda: sql.terminate(run_id, status, end_time))
                else:
                    attempt(run_id, "set_terminated", lambda: client.set_terminated(run_id, status, end_time))
    finally:
        inbox.close()


# ------------------------------------------------------------------ direct SQL writes

class SqlStoreWriter:
    """Per-step points written to a SQL tracking store (SQLite, PostgreSQL, MySQL: MLflow's
    `SqlAlchemyStore`) as the rows `log_batch` would write, with one executemany INSERT per
    batch through the store's own engine and table definitions.

    Why: `log_batch` builds an ORM object per point and flushes them one by one, ~60 us of
    CPU a point, as long as a small model's training step (bench/bench_training.py); a
    executemany INSERT costs ~9 us. What it keeps of MLflow's contract: the run must exist
    and be active; NaN is stored as 0 with is_nan, +/-inf as +/-max float (MLflow's own
    sanitising); `latest_metrics` holds, per key, the point with the highest (step,
    timestamp, value); all in one transaction. A batch that hits a duplicate key (a retried
    batch whose first commit did land) goes through `log_batch`, which skips the rows already
    there. Other stores (an `http://` tracking server) use `log_batch` only, and so does any
    store whose tables lack the columns this writes (checked once, at start).

    `terminate` ends a run as `set_terminated` does (status and end time) with one UPDATE:
    MLflow's `update_run_info` also loads the run's params, tags and latest metrics to return
    them, 2-3 ms at the very end of every run. A run that is not active goes through
    `set_terminated`, which raises MLflow's own error.
    """

    FIELDS = ("run_uuid", "key", "value", "timestamp", "step", "is_nan")
    ROW = ("key", "value", "timestamp", "step", "is_nan", "run_uuid")  # the rows as built here

    def __init__(self, client, store):
        from mlflow.store.tracking.dbmodels.models import SqlLatestMetric, SqlMetric, SqlRun

        import sqlalchemy as sa

        self.client, self.store = client, store
        self.metrics, self.latest, self.runs = SqlMetric.__table__, SqlLatestMetric.__table__, SqlRun.__table__
        # Statements built once (SQLAlchemy then also compiles them once): ~1 ms a batch less.
        runs, latest = self.runs, self.latest
        self._stage = sa.select(runs.c.lifecycle_stage).where(runs.c.run_uuid == sa.bindparam("run"))
        # The per-step rows go to the driver's executemany as they are (SQLAlchemy's processing
        # of bound parameters, ~5 us a row, is skipped), in the dialect's own SQL and param style.
        compiled = sa.insert(self.metrics).values({c: sa.bindparam(c) for c in self.FIELDS}).compile(
            dialect=store.engine.dialect)
        self._insert_sql = str(compiled)
        # where the driver takes positional parameters: the index in ROW of each, in order
        self._positions = [self.ROW.index(c) for c in compiled.positiontup] if compiled.positional else None
        self._latest = sa.select(latest.c.key, latest.c.step, latest.c.timestamp, latest.c.value).where(
            latest.c.run_uuid == sa.bindparam("run"))
        self._insert_latest = sa.insert(latest)
        self._terminate = sa.update(runs).where(
            runs.c.run_uuid == sa.bindparam("b_run"), runs.c.lifecycle_stage == "active").values(
            status=sa.bindparam("b_status"), end_time=sa.bindparam("b_end_time"))
        self._update_latest_row = sa.update(latest).where(
            latest.c.run_uuid == sa.bindparam("b_run"), latest.c.key == sa.bindparam("b_key")).values(
            value=sa.bindparam("b_value"), timestamp=sa.bindparam("b_timestamp"), step=sa.bindparam("b_step"),
            is_nan=sa.bindparam("b_is_nan"))

    @classmethod
    def for_client(cls, client):
        """A SqlStoreWriter for the client's store, or None where log_batch must be used."""
        try:
            from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

            store = client._tracking_client.store
            if not isinstance(store, SqlAlchemyStore):
                return None
            writer = cls(client, store)
            for table in (writer.metrics, writer.latest):  # both tables have exactly these columns
                if {c.name for c in table.columns} != set(cls.FIELDS):
                    log.warning("MLflow's %s table has unexpected columns: per-step metrics go through log_batch",
                                table.name)
                    return None
            return writer
        except Exception:  # an MLflow without these internals: the public API serves
            log.warning("no bulk metric writes for this MLflow store; using log_batch", exc_info=True)
            return None

    def write(self, run_id, points):
        """points: [(key, value, timestamp_ms, step), ...] of one run."""
        import sqlalchemy as sa
        from mlflow.entities import Metric
        from mlflow.entities.lifecycle_stage import LifecycleStage
        from mlflow.exceptions import MlflowException

        rows, newest = self._rows(run_id, points)
        if not rows:
            return
        try:
            with self.store.engine.begin() as conn:
                stage = conn.execute(self._stage, {"run": run_id}).scalar()
                if stage is None:
                    raise MlflowException(f"Run with id={run_id} not found")
                if stage != LifecycleStage.ACTIVE:
                    raise MlflowException(f"The run {run_id} must be in the 'active' state. "
                                          f"Current state is {stage}.")
                conn.exec_driver_sql(self._insert_sql, self._driver_params(rows))
                self._update_latest(conn, run_id, newest)
        except sa.exc.IntegrityError:
            metrics = [Metric(key, float("nan") if is_nan else value, timestamp, step)
                       for key, value, timestamp, step, is_nan, _ in rows]
            for start in range(0, len(metrics), BATCH_LIMIT):
                self.client.log_batch(run_id, metrics=metrics[start:start + BATCH_LIMIT])

    def _rows(self, run_id, points):
        """(rows in ROW order, newest point per key as ((step, timestamp, value), is_nan))."""
        isfinite, sanitize = math.isfinite, self.store.sanitize_metric_value
        rows, newest, seen = [], {}, set()
        for key, value, timestamp, step in points:
            value = float(value)
            is_nan = False
            if not isfinite(value):
                is_nan, value = sanitize(value)
            row = (key, value, int(timestamp), int(step), is_nan, run_id)
            if row in seen:  # log_batch keeps one of identical points
                continue
            seen.add(row)
            rows.append(row)
            order = (row[3], row[2], value)
            if key not in newest or order > newest[key][0]:
                newest[key] = (order, is_nan)
        return rows, newest

    def terminate(self, run_id, status, end_time):
        """The run's status (a RunStatus name: FINISHED, FAILED, KILLED) and end time (ms)."""
        from mlflow.entities import RunStatus

        RunStatus.from_string(status)  # MLflow's check of the name
        with self.store.engine.begin() as conn:
            done = conn.execute(self._terminate, {"b_run": run_id, "b_status": status,
                                                  "b_end_time": int(end_time)}).rowcount
        if not done:  # missing or deleted: MLflow says which
            self.client.set_terminated(run_id, status, end_time)

    def _driver_params(self, rows):
        """rows in ROW order -> the driver's parameters for _insert_sql (SQLite's are ROW order)."""
        if self._positions is None:  # a named param style (psycopg's %(name)s)
            return [dict(zip(self.ROW, r)) for r in rows]
        if self._positions == list(range(len(self.ROW))):
            return rows
        get = operator.itemgetter(*self._positions)
        return [get(r) for r in rows]

    def _update_latest(self, conn, run_id, newest):
        """MLflow's rule: a key's latest point is the one with the highest (step, timestamp, value)."""
        current = {r.key: (r.step, r.timestamp if r.timestamp is not None else 0, r.value)
                   for r in conn.execute(self._latest, {"run": run_id})}
        inserts, updates = [], []
        for key, ((step, timestamp, value), is_nan) in newest.items():
            if key not in current:
                inserts.append({"run_uuid": run_id, "key": key, "value": value, "timestamp": timestamp,
                                "step": step, "is_nan": is_nan})
            elif (step, timestamp, value) > current[key]:
                updates.append({"b_run": run_id, "b_key": key, "b_value": value, "b_timestamp": timestamp,
                                "b_step": step, "b_is_nan": is_nan})
        if inserts:
            conn.execute(self._insert_latest, inserts)
        if updates:
            conn.execute(self._update_latest_row, updates)


# ------------------------------------------------------------------ the callback

class PointBatch:
    """New points of a run as the training loop has them: per metric its (step, value) pairs,
    the end time of each step since `times_from` and of each epoch. Cheap for the loop to make
    and to pickle; the writer process expands it into (key, value, timestamp_ms, step) rows.
    A point without a recorded time (one from a checkpoint's history) gets the batch's time."""

    __slots__ = ("series", "times_from", "step_times", "epoch_times", "now")

    def __init__(self, series, times_from, step_times, epoch_times, now):
        self.series, self.times_from, self.step_times = series, times_from, step_times
        self.epoch_times, self.now = epoch_times, now

    def __len__(self):
        return sum(len(pairs) for _, _, pairs in self.series)

    def __iter__(self):
        now, first, times, n = self.now, self.times_from, self.step_times, len(self.step_times)
        for key, per_epoch, pairs in self.series:
            for step, value in pairs:
                if per_epoch:
                    t = self.epoch_times.get(step, now)
                else:
                    t = times[step - first] if 0 <= step - first < n else now
                yield key, float(value), int(t * 1000), step


class MlflowLogger(Callback):
    """Logs a Training to one MLflow run (created by the caller: never an implicit run).

    The points come from the training's own history: a step costs the loop one timestamp,
    and the new points are handed to the writer every `flush_seconds` (or `flush_points`),
    before each checkpoint and at the end: the writer's work comes in big batches (MLflow
    spends half as much a point on batches of 1,000 as on batches of 100) and a fast loop
    does not share its core with it all the time. `resume=True` when the
    MLflow run already has data from an earlier attempt: a point whose step is already in
    MLflow is not logged again, so each step and epoch appears once.
    """

    order = 90  # after the callbacks that may stop the run at an epoch end

    def __init__(self, client, run_id, writer, *, resume=False, log_checkpoints=True, log_model=True,
                 flush_points=FLUSH_POINTS, flush_seconds=FLUSH_SECONDS, checkpoint_seconds=CHECKPOINT_SECONDS,
                 artifact_uri=None):
        self.client, self.run_id, self.writer = client, run_id, writer
        self.artifact_uri = artifact_uri  # the run's (known to its creator): artifacts go straight there
        self.resume = resume
        self.log_checkpoints, self.log_model = log_checkpoints, log_model
        self.checkpoint_seconds = checkpoint_seconds
        self._last_checkpoint = 0.0
        self.flush_steps = max(1, flush_points // len(STEP_METRICS))
        self.flush_seconds = flush_seconds
        self.logged_through = {}  # metric -> last step already in MLflow (resume only)
        self._sent = {}           # metric -> how many of training.history[metric] were handed over
        self._step_times = []     # time.time() at the end of each step since the last flush...
        self._times_from = 0      # ...from this global step on
        self._epoch_times = {}    # epoch -> time.time() at its end
        self._next_check = 0.0
        self._spare = (None, threading.Event())  # the last checkpoint's copy, and "serialised"
        self._copier = None       # the thread that copies a checkpoint's tensors beside the loop
        self._copying = None      # its current copy (a Future)
        self.copy_waits = []      # seconds the loop waited for a copy, one entry a checkpoint

    # -- hooks
    def on_fit_start(self, training):
        params = config_params(training.config)
        call("log params", lambda: self._log_params(params, training.steps_per_epoch))
        if self.resume:
            self.logged_through = logged_steps(self.client, self.run_id, STEP_METRICS + EPOCH_METRICS)
        # Points already in the history (a checkpoint's) that MLflow lacks go out with the first flush.
        self._sent = {key: 0 for key in training.history}
        self._next_check = time.monotonic() + self.flush_seconds
        self._last_checkpoint = time.monotonic()
        self._first_step = True
        self._times_from = training.step

    def on_step_end(self, training):
        times = self._step_times
        times.append(time.time())
        pending = len(times)
        if self._first_step or pending >= self.flush_steps or (
                pending & 15 == 0 and time.monotonic() >= self._next_check):
            self._first_step = False  # the first step goes out at once: the run page shows it
            self.flush(training)

    def on_epoch_end(self, training):
        now = time.monotonic()
        self._epoch_times[training.epoch] = time.time()
        if (self.log_checkpoints and training.status != "diverged"
                and now - self._last_checkpoint >= self.checkpoint_seconds):
            self._last_checkpoint = now
            self.checkpoint(training)
        elif now >= self._next_check:
            self.flush(training)
        self._raise_writer_error()

    def on_fit_end(self, training):
        self.flush(training)
        self.wait_copied()
        if self.log_checkpoints and training.status == "stopped":
            self.checkpoint(training, flush=False)
            self.wait_copied()
        if self.log_model and training.status in ("succeeded", "stopped"):
            self._save(MODEL_PATH, "model.pt", {"state_dict": detached_copy(training.model.state_dict()),
                                               "config": training.config,
                                               "n_features": training.data.n_features,
                                               "n_classes": training.data.n_classes,
                                               "image_shape": training.data.image_shape})
        self.writer.terminate_run(self.run_id, TERMINAL_STATUS.get(training.status, "FAILED"))

    def on_teardown(self, training):
        self._end_copier()
        self.writer.flush()  # every point and artifact handed over is stored
        self._raise_writer_error()

    # -- helpers
    def _log_params(self, params, steps_per_epoch):
        from mlflow.entities import Param, RunTag

        items = [Param(k, v) for k, v in params.items()]
        for start in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[start:start + 100])
        self.client.log_batch(self.run_id, tags=[RunTag("steps_per_epoch", str(steps_per_epoch))])

    def flush(self, training):
        """Hand the history's new points to the writer."""
        training.record_steps()  # the steps whose values still wait on the device
        series = []
        for key, history in training.history.items():
            start, end = self._sent.get(key, 0), len(history)
            if start == end:
                continue
            new = history[start:end]
            done = self.logged_through.get(key, -1)
            if done >= 0:  # a resumed run: what MLflow has already is not sent again
                new = [p for p in new if p[0] > done]
            series.append((key, key in EPOCH_METRICS, new))
            self._sent[key] = end
        if series:
            self.writer.log_metrics(self.run_id, PointBatch(series, self._times_from, self._step_times,
                                                            self._epoch_times, time.time()))
        self._times_from = training.step
        self._step_times, self._epoch_times = [], {}
        self._next_check = time.monotonic() + self.flush_seconds

    def checkpoint(self, training, flush=True):
        """Hand a checkpoint to the writer. Parameters and optimizer state change only in the
        optimizer's step, so the copy of them (`detached_copy`, into the last copy's buffers once
        that is serialised) runs on this logger's copier thread while the loop goes on with the
        next step's forward and backward; the loop waits for it before that step's optimizer step
        (`Training.before_update`). Model buffers (batch norm's running statistics) change in the
        forward pass: they are copied here, as is everything that is not a tensor. Serialising and
        storing are the stager thread's and the writer process's work."""
        if flush:
            self.flush(training)  # the writer keeps order: these points are stored before the checkpoint
        self.wait_copied()
        state = training.checkpoint(step_history=False)
        model_state = state["model"]
        for name, _ in training.model.named_buffers():
            if name in model_state:
                model_state[name] = model_state[name].clone()
        spare, staged = self._spare
        into = spare if staged.is_set() else None
        staged = threading.Event()

        def copy_and_hand_over():
            copy = detached_copy(state, into=into)
            self._spare = (copy, staged)  # the next checkpoint reuses its buffers once it is serialised
            self.writer.log_artifact_object(self.run_id, CHECKPOINT_PATH, CHECKPOINT_FILE, copy, self.artifact_uri,
                                            on_staged=staged.set)

        if self._copier is None:
            self._copier = ThreadPoolExecutor(max_workers=1, thread_name_prefix="checkpoint-copy")
        self._copying = self._copier.submit(copy_and_hand_over)
        training.before_update.append(self.wait_copied)

    def wait_copied(self, training=None):
        """Wait until the last checkpoint's copy is taken and handed to the writer (re-raising
        its error); the time waited is added to `copy_waits`."""
        if self._copying is None:
            return
        t0 = time.perf_counter()
        try:
            self._copying.result()
        finally:
            self._copying = None
            self.copy_waits.append(time.perf_counter() - t0)

    def _end_copier(self):
        try:
            self.wait_copied()
        finally:
            if self._copier is not None:
                self._copier.shutdown(wait=True)
                self._copier = None

    def _save(self, artifact_path, name, obj):
        self.writer.log_artifact_object(self.run_id, artifact_path, name, obj, self.artifact_uri)

    def _raise_writer_error(self):
        error = self.writer.error_for(self.run_id)
        if error:
            raise MlflowUnavailable(error)


def load_checkpoint_file(path, device, what="the checkpoint"):
    """A checkpoint as data only (workers/weights.py: `weights_only=True`, a planted pickle cannot
    run and fails the run naming the file). Checkpoints written before numpy's RNG state was kept
    as a tensor hold a numpy array: numpy's array reconstruction (data, no code) is allowed for those."""
    import numpy as np

    from workers.weights import load_weights

    legacy = [np._core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]
    return load_weights(path, what=what, map_location=device, allowed=legacy)
