"""Worker loss with the default settings, a real Celery beat and real workers: a run whose worker
was killed (kill -9) shows "worker lost, retrying" within 30 s and resumes from its checkpoint on
the next free worker; a queued run whose message was lost from Redis is sent again within a minute."""
import os
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.conftest import ROOT, WorkerProcess
from tests.waiting import wait_for
from tracking.models import Run
from workers.dispatch import enqueue_run

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def beat_and_short_worker(redis_server, transactional_db, tmp_path, monkeypatch):
    """Celery beat (the project's schedule) and a worker on the short `default` queue."""
    monkeypatch.setenv("RUN_CHECKPOINT_SECONDS", "0.3")
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{os.environ['VAR_DIR']}/test-db.sqlite3", PYTHONUNBUFFERED="1")
    log = open(tmp_path / "beat.log", "ab")
    beat = subprocess.Popen([sys.executable, "-m", "celery", "-A", "webapp", "beat", "-l", "INFO",
                             "-s", str(tmp_path / "beat-schedule"), "--pidfile="],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    short = WorkerProcess("default", tmp_path / "short.log").start()
    # The schedule is running once the short worker has run one of beat's recovery passes: the timings
    # below are the running system's, not its start-up's (over a minute on a loaded CI machine).
    wait_for(lambda: re.search(r"workers\.tasks\.enqueue_waiting_runs\[.*\] succeeded in ", short.log()),
             180, "a first recovery pass", log=lambda: (tmp_path / "beat.log").read_text() + short.log())
    yield {"beat": beat, "short": short, "tmp": tmp_path}
    short.stop()
    beat.terminate()
    beat.wait(30)


@pytest.mark.timeout(900)
def test_a_killed_worker_s_run_shows_worker_lost_within_30_s_and_resumes_from_its_checkpoint(
        beat_and_short_worker, run_factory, mlflow_client):
    tmp = beat_and_short_worker["tmp"]
    trainer = WorkerProcess("cpu", tmp / "trainer.log").start()
    epochs = 80  # killed at its first checkpoint (~epoch 2; each takes ~0.1 s): the replacement resumes well before the end
    run = run_factory({"dataset": "digits", "epochs": epochs, "width": 128, "lr": 0.02})
    enqueue_run(run.pk)
    wait_for(lambda: Run.objects.get(pk=run.pk).mlflow_run_id, 90, "an MLflow run", log=trainer.log)
    run.refresh_from_db()
    wait_for(lambda: mlflow_client.list_artifacts(run.mlflow_run_id, "checkpoints")
             and Run.objects.get(pk=run.pk).epoch >= 1, 90, "a checkpoint", log=trainer.log)
    trainer.kill(signal.SIGKILL)
    killed = time.monotonic()
    assert 0 < Run.objects.get(pk=run.pk).epoch < epochs
    wait_for(lambda: "worker lost, retrying" in Run.objects.get(pk=run.pk).status_reason, 40,
             "worker lost", log=beat_and_short_worker["short"].log)
    print(f"worker lost shown {time.monotonic() - killed:.1f} s after the kill")
    assert time.monotonic() - killed <= 30
    assert Run.objects.get(pk=run.pk).status == "queued"

    replacement = WorkerProcess("cpu", tmp / "replacement.log").start()
    try:
        wait_for(lambda: Run.objects.get(pk=run.pk).status in Run.FINAL, 180, "the resumed run's end",
                 log=replacement.log)
    finally:
        replacement.stop()
    run.refresh_from_db()
    assert run.status == "succeeded", run.status_reason
    assert run.attempts == 2
    resumed_from = int(mlflow_client.get_run(run.mlflow_run_id).data.tags["resumed_from_epoch"])
    assert resumed_from >= 1  # from its checkpoint, not from epoch 0
    assert f"resumes from its checkpoint at epoch {resumed_from}" in replacement.log()
    # nothing lost or logged twice: every epoch's and every step's point once
    def steps(key):
        return sorted(m.step for m in mlflow_client.get_metric_history(run.mlflow_run_id, key))

    for key in ("val_loss", "val_accuracy", "train_loss_epoch"):
        assert steps(key) == list(range(1, epochs + 1)), key
    spe = int(mlflow_client.get_run(run.mlflow_run_id).data.tags["steps_per_epoch"])
    assert steps("train_loss") == list(range(epochs * spe))


@pytest.mark.timeout(600)
def test_a_train_message_lost_from_redis_is_sent_again_within_a_minute(beat_and_short_worker, run_factory):
    trainer = WorkerProcess("cpu", beat_and_short_worker["tmp"] / "trainer.log").start()
    try:
        run = run_factory({"dataset": "wine", "epochs": 2})
        # sent (enqueued_at set) 25 s ago, but the message never reached a worker: it is not in Redis.
        # (25 s ago rather than now: the test waits 5-10 s, not 30-35 s, for the default RUN_RESEND_AFTER.)
        marked = timezone.now() - timedelta(seconds=25)
        Run.objects.filter(pk=run.pk).update(enqueued_at=marked)
        wait_for(lambda: Run.objects.get(pk=run.pk).status in Run.FINAL, 120, "the run's end", log=trainer.log)
        run.refresh_from_db()
        print(f"lost message: the run was claimed {(run.started_at - marked).total_seconds():.1f} s after it was sent")
        assert (run.started_at - marked).total_seconds() <= 60  # re-sent (and claimed) within a minute
        assert (run.started_at - marked).total_seconds() >= 30  # ...but not before RUN_RESEND_AFTER (30 s)
        assert run.status == "succeeded"
        assert "message was lost" in beat_and_short_worker["short"].log()
        # Only the training worker warmed up (a forkserver with torch, the MLflow writer); the short
        # tasks' worker (-Q default) started no child process.
        assert "training worker warmed up" in trainer.log()
        short = beat_and_short_worker["short"]
        assert "training worker warmed up" not in short.log() and "short-task worker warmed up" in short.log()
        assert subprocess.run(["pgrep", "-P", str(short.proc.pid)], capture_output=True, text=True).stdout == ""
    finally:
        trainer.stop()


def test_an_imported_run_is_never_taken_for_a_lost_worker_s(run_factory):
    from workers.recovery import recover_stalled_runs

    external = run_factory(status="running", kind="external")
    Run.objects.filter(pk=external.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert recover_stalled_runs() == ([], [])
    assert Run.objects.get(pk=external.pk).status == "running"
