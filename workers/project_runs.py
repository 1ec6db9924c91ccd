"""Running registered code (an MLflow project) on a worker.

`run_code(run_id, worker=...)` claims a queued Run of kind "code", checks its code out (a
directory under CODE_ROOT, or a git commit cloned once into the cache), creates its MLflow
run (tags, and the entry point's parameters as params, as `mlflow run` logs them), and starts
the entry point's command, computed by MLflow from the MLproject, in a subprocess:

- in its own process group (a new session), with MLFLOW_RUN_ID / MLFLOW_TRACKING_URI /
  MLFLOW_EXPERIMENT_ID set (MLflow's own project variables), so everything the script logs
  lands in that run, and the worker's CUDA_VISIBLE_DEVICES;
- its stdout and stderr read line by line: the last 200 lines are on the run page;
- a stop ends the whole group within CODE_STOP_GRACE + 1 s: SIGTERM, then SIGKILL;
- a run still going after RUN_TIME_LIMIT seconds (its wall-clock limit, as for built-in runs)
  is ended the same way and fails with the reason;
- if the worker process dies, the kernel kills the script (PR_SET_PDEATHSIG), and the beat
  task fails the run as "worker lost" once its heartbeat is older than the timeout.

While it runs, the metrics it logs are polled from MLflow (through tracking.mlflow_io's
reader, so aliases map to DESIGN.md's names) into the same downsampled chart series as
built-in runs; the progress bar and ETA use an `epoch` metric or the epoch-level points and
the `epochs` parameter; the rules engine analyses it as it goes (and stops it on a confident
diagnosis with stop_on_diagnosis) and when it ends.

MLflow's `mlflow.projects.run(..., synchronous=False)` is not used to start the process: it
starts `mlflow run` in a subprocess whose output goes to the worker's own stdout (no capture),
and its SubmittedRun.cancel() sends SIGTERM and waits without end. `ScriptProcess` is the same
`LocalSubmittedRun` (wait, get_status, cancel) over a process started with MLflow's pieces
(the MLproject loader's command, its run environment variables), with output captured and a
cancel that escalates to SIGKILL.
"""
from __future__ import annotations

import collections
import ctypes
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from mlflow.projects.submitted_run import LocalSubmittedRun

log = logging.getLogger(__name__)

OUTPUT_LINES = 200
STDERR_LINES = 20
STOP_POLL = 0.2  # s between reads of the stop request
PROGRESS_POLL = 1.0  # s between polls of MLflow (more when a poll takes long)
MAX_POLL = 10.0  # s at most between polls of MLflow
HEARTBEAT_EVERY = 2.0  # s (RUN_HEARTBEAT_TIMEOUT is well above)

try:
    _libc = ctypes.CDLL("libc.so.6", use_errno=True)
except OSError:  # not Linux: the script outlives a killed worker; the run still fails as "worker lost"
    _libc = None


def _die_with_parent():
    if _libc is not None:
        _libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class ScriptProcess(LocalSubmittedRun):
    """An entry point's command in its own process group, its output captured line by line."""

    def __init__(self, run_id, command, *, cwd, env, grace=3.0):
        proc = subprocess.Popen(["bash", "-c", command], cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                                preexec_fn=_die_with_parent, close_fds=True)
        super().__init__(run_id, proc)
        self.grace = grace
        self.lines = collections.deque(maxlen=OUTPUT_LINES)
        self.stderr = collections.deque(maxlen=STDERR_LINES)
        self.version = 0  # bumped at every line
        self._lock = threading.Lock()
        self._readers = [threading.Thread(target=self._read, args=(proc.stdout, False), daemon=True),
                         threading.Thread(target=self._read, args=(proc.stderr, True), daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, is_stderr):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")[:2000]
            with self._lock:
                self.lines.append(line)
                if is_stderr:
                    self.stderr.append(line)
                self.version += 1
        stream.close()

    def output(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def stderr_tail(self) -> str:
        with self._lock:
            return "\n".join(self.stderr)

    def poll(self):
        return self.command_proc.poll()

    def finish_reading(self, timeout=2.0):
        for reader in self._readers:
            reader.join(timeout)

    def cancel(self):
        """SIGTERM to the process group, SIGKILL to it after `grace` seconds."""
        pgid = self.command_proc.pid
        for sig, wait in ((signal.SIGTERM, self.grace), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                pass
            try:
                self.command_proc.wait(wait)
                # the group may outlive its leader (a child that ignores SIGTERM): end it too
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                continue
            return


# ---- claim and finish (conditional UPDATEs) -------------------------------------------------------

def claim(run_id, *, worker, device) -> bool:
    """queued -> running. A code run is never taken over from another worker: a lost one fails."""
    from tracking.models import Run

    now = timezone.now()
    return Run.objects.filter(pk=run_id, kind=Run.Kind.CODE, status=Run.Status.QUEUED).update(
        status=Run.Status.RUNNING, worker=worker, device=device, attempts=F("attempts") + 1,
        heartbeat_at=now, started_at=now, status_reason="") == 1


def finish(run_id, *, worker, status, reason, **fields) -> bool:
    from tracking.models import Run

    now = timezone.now()
    return Run.objects.filter(pk=run_id, status=Run.Status.RUNNING, worker=worker).update(
        status=status, status_reason=reason[:4000], finished_at=now, heartbeat_at=now, eta_seconds=None,
        **fields) == 1


# ---- the code, the MLflow run, the environment ------------------------------------------------------

class CodeUnavailable(Exception):
    pass


def code_directory(code_run) -> Path:
    """Where the run's code is: its directory (still under CODE_ROOT), or its commit's checkout."""
    from tracking.code import sources
    from tracking.code.mlproject import MLprojectError

    code = code_run.code
    try:
        if code.source == code.Source.DIRECTORY:
            return sources.directory_check(code.path)
        return sources.checkout(code.git_url, code_run.commit or code.commit)
    except MLprojectError as exc:
        raise CodeUnavailable(f"code {code.name}: {exc}") from None


def create_mlflow_run(client, run, code_run, directory):
    """(mlflow run id, experiment id): a new MLflow run in the project's experiment, tagged as
    `mlflow run` tags a project run, with the entry point's parameters as params."""
    from mlflow.entities import Param
    from mlflow.utils.mlflow_tags import (MLFLOW_GIT_COMMIT, MLFLOW_PROJECT_ENTRY_POINT, MLFLOW_SOURCE_NAME,
                                          MLFLOW_SOURCE_TYPE)

    from tracking.code.mlproject import as_argument
    from tracking.models import Run
    from workers.mlflow_logging import project_experiment_id

    code = code_run.code
    exp = project_experiment_id(client, run.project, settings.MLFLOW_ARTIFACT_ROOT)
    tags = {"runwise.run_id": str(run.pk), "runwise.project_id": str(run.project_id), "runwise.queue": run.queue,
            "runwise.code": code.name, MLFLOW_SOURCE_NAME: code.git_url or str(directory),
            MLFLOW_SOURCE_TYPE: "PROJECT", MLFLOW_PROJECT_ENTRY_POINT: code_run.entry_point}
    if code_run.commit:
        tags[MLFLOW_GIT_COMMIT] = code_run.commit
    created = client.create_run(exp, run_name=run.name or f"run-{run.pk}", tags=tags)
    mlflow_run_id = created.info.run_id
    Run.objects.filter(pk=run.pk).update(mlflow_run_id=mlflow_run_id)
    params = [Param(k, as_argument(v)) for k, v in code_run.parameters.items()]
    if params:
        client.log_batch(mlflow_run_id, params=params)
    return mlflow_run_id, exp


def script_env(mlflow_run_id, experiment, tracking_uri):
    """The worker's environment plus MLflow's project variables; the worker's Python first on PATH
    (the entry point's `python` is the worker's), output unbuffered."""
    from mlflow.projects.utils import get_run_env_vars

    env = dict(os.environ)
    env.update(get_run_env_vars(mlflow_run_id, experiment))
    env["MLFLOW_TRACKING_URI"] = tracking_uri
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    for name in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "SECRET_KEY", "EMAIL_HOST_PASSWORD"):
        env.pop(name, None)  # the script gets no key to Runwise's own database or mail
    return env


def device_for(env) -> str:
    visible = env.get("CUDA_VISIBLE_DEVICES")
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:
        has_gpu = False
    if has_gpu and visible != "":
        return "cuda" + (f" (CUDA_VISIBLE_DEVICES={visible})" if visible else "")
    return "cpu"


# ---- following the process and its MLflow run ---------------------------------------------------------

class Follower:
    """Polls the script's MLflow run into the Run row and its chart series."""

    def __init__(self, run, client, mlflow_run_id, started):
        self.run, self.client, self.mlflow_run_id, self.started = run, client, mlflow_run_id, started
        self.metrics = {}
        self.epochs_done = 0
        self.analysed_at_epoch = 0
        self.last_analysis = time.monotonic()
        self.every = settings.ANALYSIS_EVERY_EPOCHS  # epochs
        self.min_seconds = settings.ANALYSIS_MIN_SECONDS

    def poll(self, final=False):
        from tracking.code.progress import as_history, design_metrics, last_value, progress_fields
        from tracking.code.series import series_replace
        from tracking.mlflow_io import read_run
        from tracking.models import Run
        from tracking.series import series_append

        data = read_run(self.mlflow_run_id, client=self.client)
        self.metrics, spe = design_metrics(data)
        (series_replace if final else series_append)(self.run.pk, as_history(self.metrics))
        fields = progress_fields(self.metrics, total_epochs=self.run.config.get("epochs"), steps_per_epoch=spe,
                                 elapsed=time.monotonic() - self.started, epoch_metric=last_value(data, "epoch"))
        self.epochs_done = fields["epoch"]
        Run.objects.filter(pk=self.run.pk).update(heartbeat_at=timezone.now(), **fields)

    def should_stop(self):
        """A reason to stop (stop_on_diagnosis), enqueueing an interim analysis on the way."""
        from tracking.code.progress import as_history
        from workers.run_callbacks import analysis_module, send_analysis

        if self.epochs_done < self.analysed_at_epoch + self.every:
            return None
        self.analysed_at_epoch = self.epochs_done
        module = analysis_module()
        if self.run.config.get("stop_on_diagnosis") and module is not None:
            reason = module.should_stop_early(self.run.pk, as_history(self.metrics))
            if reason:
                return f"stopped on diagnosis: {reason}"
        if time.monotonic() - self.last_analysis >= self.min_seconds:
            self.last_analysis = time.monotonic()
            send_analysis(self.run.pk, final=False)
        return None

    def best(self):
        from tracking.code.progress import best

        return best(self.metrics)


def _stop_requested(run_id) -> bool:
    from tracking.models import Run

    return Run.objects.filter(pk=run_id, stop_requested=True).exists()


def _heartbeat(run_id):
    from tracking.models import Run

    Run.objects.filter(pk=run_id).update(heartbeat_at=timezone.now())


def _save_output(run_id, process, exit_code=None):
    from tracking.models import CodeRun

    fields = dict(output=process.output(), output_updated_at=timezone.now())
    if exit_code is not None:
        fields["exit_code"] = exit_code
    CodeRun.objects.filter(run_id=run_id).update(**fields)


def over_time_limit(follower) -> str | None:
    """The failure reason once the run has passed its wall-clock limit (RUN_TIME_LIMIT s)."""
    limit = settings.RUN_TIME_LIMIT
    if time.monotonic() - follower.started < limit:
        return None
    return (f"wall-clock limit of {limit}s reached at epoch {follower.epochs_done + 1} (RUN_TIME_LIMIT); "
            "the script was stopped")


def watch(run, process, follower) -> tuple[str | None, str | None]:
    """Until the process ends: stop requests, the time limit, output, progress. (The reason it
    was stopped, if it was; the reason it failed, if it passed its time limit.)"""
    from mlflow.exceptions import MlflowException

    from tracking.mlflow_io import RunNotFound

    next_poll = time.monotonic() + 0.5
    poll_cost = 0.0
    seen_output = -1
    stop_reason = None
    beat = time.monotonic()
    while process.poll() is None:
        time.sleep(STOP_POLL)
        if time.monotonic() - beat >= HEARTBEAT_EVERY:  # alive, however slow MLflow answers
            beat = time.monotonic()
            try:
                _heartbeat(run.pk)
            except Exception:
                log.exception("run %s: heartbeat not written", run.pk)
        try:
            if _stop_requested(run.pk):
                stop_reason = "stopped at a user's request"
        except Exception:  # the database busy: asked again at the next tick
            log.exception("run %s: stop request not read", run.pk)
        if stop_reason:
            process.cancel()
            break
        timed_out = over_time_limit(follower)
        if timed_out:
            process.cancel()
            return None, timed_out
        if time.monotonic() < next_poll:
            continue
        if process.version != seen_output:
            seen_output = process.version
            _save_output(run.pk, process)
        began = time.monotonic()
        try:
            follower.poll()
            stop_reason = follower.should_stop()
        except (MlflowException, RunNotFound, OSError) as exc:
            log.warning("run %s: MLflow not read this time: %s", run.pk, exc)
            _heartbeat(run.pk)
        poll_cost = time.monotonic() - began
        next_poll = time.monotonic() + min(MAX_POLL, max(PROGRESS_POLL, 5 * poll_cost))
        if stop_reason:
            process.cancel()
            break
    return stop_reason, None


def run_code(run_id, *, worker=None):
    """Run one code run to a final state; False if it was not claimed here."""
    from mlflow.exceptions import MlflowException

    from tracking.models import CodeRun, Run
    from workers.mlflow_logging import make_client
    from workers.run_callbacks import send_analysis

    worker = worker or socket.gethostname()
    env = dict(os.environ)
    if not claim(run_id, worker=worker, device=device_for(env)):
        log.info("code run %s not claimed by %s: not queued", run_id, worker)
        return False
    run = Run.objects.select_related("code_run__code").get(pk=run_id)
    code_run = run.code_run
    client = make_client(settings.MLFLOW_TRACKING_URI)
    try:
        directory = code_directory(code_run)
        mlflow_run_id, experiment = create_mlflow_run(client, run, code_run, directory)
        from tracking.code.mlproject import entry_point_command

        storage = Path(settings.CODE_CACHE_DIR) / "storage" / str(run.pk)
        command = entry_point_command(directory, code_run.entry_point, code_run.parameters, storage)
        started = time.monotonic()
        process = ScriptProcess(mlflow_run_id, command, cwd=str(directory),
                                env=script_env(mlflow_run_id, experiment, settings.MLFLOW_TRACKING_URI),
                                grace=getattr(settings, "CODE_STOP_GRACE", 3.0))
    except (CodeUnavailable, MlflowException, OSError, ValueError) as exc:
        finish(run_id, worker=worker, status=Run.Status.FAILED, reason=f"could not start: {exc}")
        send_analysis(run_id, final=True)
        return True
    _heartbeat(run_id)  # a checkout may have taken a while
    log.info("code run %s: started %r in %s (MLflow run %s)", run_id, command, directory, mlflow_run_id)
    follower = Follower(run, client, mlflow_run_id, started)
    try:
        stop_reason, timed_out = watch(run, process, follower)
    except BaseException:
        process.cancel()
        raise
    exit_code = process.command_proc.wait()
    process.finish_reading()
    _save_output(run_id, process, exit_code=exit_code)
    try:
        follower.poll(final=True)
    except (MlflowException, OSError) as exc:
        log.warning("run %s: final MLflow read failed: %s", run_id, exc)
    if timed_out:
        status, reason, mlflow_status = Run.Status.FAILED, timed_out, "FAILED"
    elif stop_reason:
        status, reason, mlflow_status = Run.Status.STOPPED, stop_reason, "KILLED"
    elif exit_code == 0:
        status, reason, mlflow_status = Run.Status.SUCCEEDED, "", "FINISHED"
        if not follower.metrics:
            reason = "the script logged no metric into its MLflow run (MLFLOW_RUN_ID)"
    else:
        status, mlflow_status = Run.Status.FAILED, "FAILED"
        how = f"killed by signal {-exit_code}" if exit_code < 0 else f"exit code {exit_code}"
        tail = process.stderr_tail()
        reason = how + (f"; the end of stderr:\n{tail}" if tail else "")
    _terminate_mlflow_run(client, mlflow_run_id, mlflow_status)
    fields = follower.best()
    if status == Run.Status.SUCCEEDED and run.config.get("epochs"):
        fields.update(step=F("total_steps"))
    finish(run_id, worker=worker, status=status, reason=reason, **fields)
    log.info("code run %s %s (exit code %s)", run_id, status, exit_code)
    send_analysis(run_id, final=True)
    return True


def _terminate_mlflow_run(client, mlflow_run_id, status):
    """End the MLflow run as `mlflow run` does, unless the script already ended it."""
    from mlflow.entities import RunStatus
    from mlflow.exceptions import MlflowException

    try:
        if not RunStatus.is_terminated(RunStatus.from_string(client.get_run(mlflow_run_id).info.status)):
            client.set_terminated(mlflow_run_id, status)
    except MlflowException as exc:
        log.warning("MLflow run %s not ended: %s", mlflow_run_id, exc)


def fail_lost_code_runs(*, timeout) -> list[int]:
    """Running code runs whose worker sent no heartbeat for `timeout` fail as "worker lost": a
    script cannot resume from where it was, and starting it again would log twice into its run."""
    from tracking.models import Run

    now = timezone.now()
    stale = Run.objects.filter(kind=Run.Kind.CODE, status=Run.Status.RUNNING).filter(
        Q(heartbeat_at__lt=now - timeout) | Q(heartbeat_at__isnull=True, started_at__lt=now - timeout))
    failed = []
    for run in stale.only("pk", "worker", "heartbeat_at"):
        reason = (f"worker lost: {run.worker or '?'} sent no heartbeat for over {timeout.total_seconds():.0f}s; "
                  "the run is not resumed (start it again)")
        if Run.objects.filter(pk=run.pk, status=Run.Status.RUNNING, heartbeat_at=run.heartbeat_at).update(
                status=Run.Status.FAILED, finished_at=now, eta_seconds=None, status_reason=reason):
            failed.append(run.pk)
    for run in Run.objects.filter(pk__in=failed).exclude(mlflow_run_id=""):
        from workers.mlflow_logging import make_client

        _terminate_mlflow_run(make_client(settings.MLFLOW_TRACKING_URI), run.mlflow_run_id, "FAILED")
    return failed
