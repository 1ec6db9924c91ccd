"""Each run trains in its own child process, so that a bad run never takes its worker down.

The Celery task (workers.tasks.train_run) forks a child from a forkserver that imported Django,
torch, MLflow and the trainer once (workers.preload: nothing initialised there, no thread, no
connection; NOTES.md: torch must not be initialised in a parent before a fork). The child:

- limits its address space to its size at start plus RUN_MEMORY_LIMIT_MB (`RLIMIT_AS`; not on a
  GPU worker, where CUDA reserves address space), so an allocation past it raises in the child,
  which fails the run "out of memory at epoch N step M" (workers.training) and exits;
- trains with the usual callbacks (progress, stop requests, checkpoints, MLflow through the
  worker's own writer process, live analysis) and a wall-clock limit (RUN_TIME_LIMIT);
- exits when its worker dies (it watches a pipe only the worker holds), so a killed worker's run
  is left to recovery (workers/recovery.py) instead of training on unseen.

The worker meanwhile writes the run's heartbeat (covering the child's set-up), kills a child
that outlives the time limit by a grace period, fails a run whose child died without ending it
(a crash, the kernel's OOM killer), and sends its team's next waiting run.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import resource
import signal
import threading
import time

from django.conf import settings
from django.utils import timezone

log = logging.getLogger(__name__)
PRELOAD = ["workers.preload"]
HEARTBEAT_SECONDS = 2.0
KILL_GRACE_SECONDS = 60.0

_context = None


def context():
    """The forkserver context (started once per worker, with the modules a run needs preloaded)."""
    global _context
    if _context is None:
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        _context = ctx
    return _context


def warm_up():
    """Start the forkserver now (it imports torch and the trainer once), not at the first run."""
    from multiprocessing import forkserver

    context()
    forkserver.ensure_running()


def memory_limit_mb() -> int:
    return int(getattr(settings, "RUN_MEMORY_LIMIT_MB", 2048))


def time_limit() -> int:
    return int(getattr(settings, "RUN_TIME_LIMIT", 3 * 3600))


# ---------------------------------------------------------------- the worker's side

def train_in_child(run_id: int, *, worker: str, lr_find: bool = False) -> int:
    """Train the run in a child process and wait for it; returns the child's exit code."""
    from tracking.models import Run
    from workers.dispatch import dispatch_waiting
    from workers.mlflow_logging import shared_writer, writer_handle

    ctx = context()
    alive_r, alive_w = ctx.Pipe(duplex=False)
    handle = writer_handle(shared_writer(settings.MLFLOW_TRACKING_URI))
    limits = {"memory_mb": memory_limit_mb(), "time_limit": time_limit()}
    child = ctx.Process(target=_child_main, name=f"run-{run_id}",
                        args=(run_id, worker, lr_find, limits, handle, alive_r))
    child.start()
    alive_r.close()
    deadline = time.monotonic() + limits["time_limit"] + KILL_GRACE_SECONDS
    killed_for_time = False
    try:
        while True:
            child.join(HEARTBEAT_SECONDS)
            if child.exitcode is not None:
                break
            Run.objects.filter(pk=run_id, status=Run.Status.RUNNING, worker=worker).update(heartbeat_at=timezone.now())
            if time.monotonic() > deadline and not killed_for_time:
                log.warning("run %s: its training process outlived the time limit; killed", run_id)
                child.kill()
                killed_for_time = True
    finally:
        alive_w.close()
    if child.exitcode != 0:
        _fail_abandoned(run_id, worker, child.exitcode, killed_for_time, limits)
    team_id = Run.objects.filter(pk=run_id).values_list("project__team_id", flat=True).first()
    dispatch_waiting(team_id=team_id)
    return child.exitcode


def _fail_abandoned(run_id, worker, exitcode, killed_for_time, limits):
    """The child ended without writing the run's end: fail it with what is known."""
    from tracking.models import Run
    from workers.run_callbacks import send_analysis
    from workers.training import finish_run

    row = Run.objects.filter(pk=run_id).values("status", "worker", "epoch", "step").first()
    if not row or row["status"] != Run.Status.RUNNING or row["worker"] != worker:
        return
    at = f"at epoch {row['epoch'] + 1} step {row['step']}"
    if killed_for_time:
        reason = f"wall-clock limit of {limits['time_limit']}s reached {at} (RUN_TIME_LIMIT); the run was killed"
    elif exitcode == -signal.SIGKILL:
        reason = (f"out of memory {at}? the training process was killed (signal 9, e.g. by the kernel's OOM "
                  f"killer; the run's memory limit is {limits['memory_mb']} MB, RUN_MEMORY_LIMIT_MB)")
    elif exitcode is not None and exitcode < 0:
        reason = f"the training process died {at} (signal {-exitcode})"
    else:
        reason = f"the training process exited {at} with code {exitcode}"
    if finish_run(run_id, worker=worker, status=Run.Status.FAILED, reason=reason):
        log.warning("run %s failed: %s", run_id, reason)
        send_analysis(run_id, final=True)


# ---------------------------------------------------------------- the child's side

_alive = None  # in a run's child: the pipe that only its worker holds open


def worker_alive(grace: float = 0.0) -> bool:
    """False in a run's child once its worker has died (its end of the pipe is closed); True elsewhere.
    A child whose worker was killed must not fail the run on the errors that the death causes (the
    writer's pipe breaking): the run is recovery's to requeue and resume. `grace`: seconds to wait
    for the end of file, since a killed worker's writer can die before the kernel has closed the
    worker's files (the writer gets its parent-death signal from the thread that started it)."""
    if _alive is None:
        return True
    try:
        return not _alive.poll(grace)  # the worker never writes: readable means end of file
    except (OSError, EOFError, ValueError):
        return False


def _exit_with_parent(alive):
    """End this process when the worker dies (EOF on a pipe whose other end only the worker holds)."""
    def watch():
        try:
            alive.recv_bytes()
        except (EOFError, OSError):
            pass
        os._exit(70)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _limit_memory(megabytes: int) -> None:
    """Address space: what the process maps now (interpreter, torch) plus `megabytes`."""
    with open("/proc/self/statm") as f:
        size = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = size + megabytes * 2**20
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _child_main(run_id, worker, lr_find, limits, handle, alive):
    global _alive
    _alive = alive
    _exit_with_parent(alive)
    import django

    django.setup()  # a no-op when the forkserver preloaded it
    import torch
    from django.db import connections

    from workers.engine import use_threads_from_env
    from workers.mlflow_logging import attach_writer

    use_threads_from_env()
    if not torch.cuda.is_available():
        _limit_memory(limits["memory_mb"])
    writer = attach_writer(handle)
    try:
        if lr_find:
            from workers.lr_range import run_lr_find

            run_lr_find(run_id, worker=worker)
        else:
            from workers.training import train_run

            train_run(run_id, worker=worker, memory_mb=limits["memory_mb"], time_limit=limits["time_limit"])
    finally:
        writer.close()
        connections.close_all()
