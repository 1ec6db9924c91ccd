"""A bad run never takes a worker down: each run trains in a child process with a memory limit
(RUN_MEMORY_LIMIT_MB) and a wall-clock limit (RUN_TIME_LIMIT). Real redis-server, real Celery
worker processes, the real MLflow store."""
import os
import signal
from pathlib import Path

import pytest

from tests.conftest import WorkerProcess
from tests.waiting import wait_for
from tracking.models import Run
from workers.dispatch import enqueue_run

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def ended(run):
    return Run.objects.values_list("status", flat=True).get(pk=run.pk) in Run.FINAL


@pytest.fixture
def worker_with(redis_server, transactional_db, tmp_path, monkeypatch):
    workers = []

    def start(**env):
        for key, value in env.items():
            monkeypatch.setenv(key, str(value))
        worker = WorkerProcess("cpu,gpu,default", tmp_path / f"worker{len(workers)}.log").start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.stop()


def descendants(pid):
    """Every process below pid (from /proc), as {pid: (ppid, cmdline)}."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                table[int(entry.name)] = (ppid, (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
            except (OSError, IndexError, ValueError):
                pass
    found, todo = {}, [pid]
    while todo:
        parent = todo.pop()
        for child, (ppid, cmd) in table.items():
            if ppid == parent and child not in found:
                found[child] = (ppid, cmd)
                todo.append(child)
    return found


def test_a_run_that_exhausts_its_memory_limit_fails_while_the_worker_trains_the_next(
        worker_with, run_factory, mlflow_client):
    worker = worker_with(RUN_MEMORY_LIMIT_MB=450)
    # 19 million parameters: the model fits in 450 MB, Adam's two moments at the first step do not
    hungry = run_factory({"dataset": "digits", "width": 2500, "depth": 4, "optimizer": "adam", "epochs": 2})
    modest = run_factory({"dataset": "wine", "epochs": 3})
    enqueue_run(hungry.pk)
    enqueue_run(modest.pk)  # waiting behind it on the same queue
    wait_for(lambda: ended(hungry), 120, "the hungry run's end", log=worker.log)
    hungry.refresh_from_db()
    assert hungry.status == "failed", hungry.status_reason
    assert hungry.status_reason.startswith("out of memory at epoch 1 step 0"), hungry.status_reason
    assert "RUN_MEMORY_LIMIT_MB" in hungry.status_reason
    assert mlflow_client.get_run(hungry.mlflow_run_id).info.status == "FAILED"
    wait_for(lambda: ended(modest), 120, "the next run's end", log=worker.log)
    modest.refresh_from_db()
    assert modest.status == "succeeded", modest.status_reason
    assert worker.proc.poll() is None and modest.worker == hungry.worker  # the same worker went on
    assert modest.started_at >= hungry.finished_at  # it trained the next run once the hungry one failed


def test_a_run_over_the_wall_clock_limit_ends_failed_with_the_reason(worker_with, run_factory, mlflow_client):
    worker = worker_with(RUN_TIME_LIMIT=4)
    run = run_factory({"dataset": "digits", "epochs": 2000})
    enqueue_run(run.pk)
    wait_for(lambda: ended(run), 90, "the run's end", log=worker.log)
    run.refresh_from_db()
    assert run.status == "failed" and run.status_reason.startswith("wall-clock limit of 4s reached at epoch ")
    assert "RUN_TIME_LIMIT" in run.status_reason and 0 < run.epoch < 2000
    assert mlflow_client.get_run(run.mlflow_run_id).info.status == "FAILED"
    assert worker.proc.poll() is None


def test_a_training_process_killed_mid_run_fails_only_its_run(worker_with, run_factory):
    worker = worker_with()
    run = run_factory({"dataset": "digits", "epochs": 2000})
    enqueue_run(run.pk)
    wait_for(lambda: Run.objects.get(pk=run.pk).epoch >= 2, 90, "epoch 2", log=worker.log)
    below = descendants(worker.proc.pid)
    forkservers = [pid for pid, (_, cmd) in below.items() if "forkserver" in cmd]
    trainers = [pid for pid, (ppid, _) in below.items() if ppid in forkservers]
    assert len(trainers) == 1, below
    os.kill(trainers[0], signal.SIGKILL)  # as the kernel's OOM killer would
    wait_for(lambda: ended(run), 30, "the run's end", log=worker.log)
    run.refresh_from_db()
    assert run.status == "failed" and "killed (signal 9" in run.status_reason and "at epoch" in run.status_reason
    after = run_factory({"dataset": "wine", "epochs": 2})
    enqueue_run(after.pk)
    wait_for(lambda: ended(after), 90, "the next run's end", log=worker.log)
    assert Run.objects.get(pk=after.pk).status == "succeeded" and worker.proc.poll() is None
