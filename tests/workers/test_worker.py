"""A real redis-server, real Celery worker processes and the real MLflow SQLite store."""
import os
import time
from datetime import timedelta

import pytest
from celery import Celery

from tests.waiting import wait_for
from tracking.models import Run
from workers import dispatch
from workers.dispatch import enqueue_run
from workers.recovery import enqueue_waiting_runs, recover_stalled_runs

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]



def status_of(run):
    return Run.objects.values_list("status", flat=True).get(pk=run.pk)


def ended(run):
    return status_of(run) in Run.FINAL


def steps(client, run_id, key):
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def test_a_queued_run_trains_to_succeeded_with_its_metrics_in_mlflow(celery_worker_process, run_factory, mlflow_client):
    run = run_factory({"dataset": "digits", "epochs": 3, "optimizer": "adam", "lr": 0.005})
    assert enqueue_run(run.pk)
    wait_for(lambda: ended(run), 60, "end of run", log=celery_worker_process.log)
    run.refresh_from_db()
    assert run.status == "succeeded", run.status_reason
    assert run.device == "cpu" and run.worker and run.attempts == 1
    assert run.best_val_loss < 1.0 and run.best_val_accuracy > 0.7
    mlflow_run = mlflow_client.get_run(run.mlflow_run_id)
    spe = int(mlflow_run.data.tags["steps_per_epoch"])
    assert mlflow_run.info.status == "FINISHED" and mlflow_run.data.params["optimizer"] == "adam"
    for key in ("train_loss", "lr", "grad_norm"):
        assert steps(mlflow_client, run.mlflow_run_id, key) == list(range(3 * spe))
    for key in ("train_loss_epoch", "train_accuracy", "val_loss", "val_accuracy"):
        assert steps(mlflow_client, run.mlflow_run_id, key) == [1, 2, 3]
    assert [a.path for a in mlflow_client.list_artifacts(run.mlflow_run_id, "model")] == ["model/model.pt"]
    experiment = mlflow_client.get_experiment(mlflow_run.info.experiment_id)
    assert experiment.name == f"workers / workers #{run.project_id}"  # named after the team and project
    assert run.series.get(key="train_loss").count == 3 * spe


def test_a_run_with_a_huge_learning_rate_ends_as_diverged(celery_worker_process, run_factory, mlflow_client):
    run = run_factory({"dataset": "digits", "epochs": 5, "lr": 100})
    enqueue_run(run.pk)
    wait_for(lambda: ended(run), 60, "end of run", log=celery_worker_process.log)
    run.refresh_from_db()
    assert run.status == "diverged" and run.diverged_step is not None
    assert "non-finite" in run.status_reason
    history = mlflow_client.get_metric_history(run.mlflow_run_id, "train_loss")
    assert max(m.step for m in history) == run.diverged_step


def test_stop_ends_a_run_within_5_seconds_with_a_checkpoint(celery_worker_process, run_factory, mlflow_client):
    run = run_factory({"dataset": "digits", "epochs": 5000})
    enqueue_run(run.pk)
    wait_for(lambda: Run.objects.get(pk=run.pk).epoch >= 2, 60, "epoch 2", log=celery_worker_process.log)
    Run.objects.filter(pk=run.pk).update(stop_requested=True)
    asked = time.monotonic()
    wait_for(lambda: ended(run), 5, "stopped within 5 s", log=celery_worker_process.log)
    assert time.monotonic() - asked < 5
    run.refresh_from_db()
    assert run.status == "stopped" and "request" in run.status_reason and run.epoch < 5000
    assert mlflow_client.get_run(run.mlflow_run_id).info.status == "KILLED"
    assert [a.path for a in mlflow_client.list_artifacts(run.mlflow_run_id, "checkpoints")] == ["checkpoints/last.pt"]


def test_a_run_queued_while_redis_is_down_stays_queued_and_is_sent_later(
        celery_worker_process, run_factory, monkeypatch):
    run = run_factory({"dataset": "wine", "epochs": 2})
    # nothing listens there; not made the current app, which shared tasks elsewhere would then use
    down = Celery("down", broker="redis://127.0.0.1:9/0", set_as_current=False)
    with monkeypatch.context() as m:
        m.setattr(dispatch, "app", down)
        assert enqueue_run(run.pk) is False
    run.refresh_from_db()
    assert run.status == "queued" and run.enqueued_at is None

    assert enqueue_waiting_runs(min_age=timedelta(0)) == 1
    wait_for(lambda: ended(run), 60, "end of run", log=celery_worker_process.log)
    assert status_of(run) == "succeeded"


def test_a_run_that_keeps_losing_its_worker_fails_with_a_reason(run_factory):
    run = run_factory(status="running", worker="gone@host", attempts=3)
    Run.objects.filter(pk=run.pk).update(heartbeat_at=None, started_at="2020-01-01T00:00:00Z")
    assert recover_stalled_runs(timeout=timedelta(minutes=2), max_attempts=3) == ([], [run.pk])
    run.refresh_from_db()
    assert run.status == "failed" and "gone@host" in run.status_reason and "3 attempts" in run.status_reason


def test_a_live_run_is_left_alone(run_factory):
    from django.utils import timezone

    run = run_factory(status="running", worker="alive@host", attempts=1, heartbeat_at=timezone.now())
    assert recover_stalled_runs(timeout=timedelta(minutes=2)) == ([], [])
    assert status_of(run) == "running"


def test_the_beat_schedule_runs_the_repairs():
    from webapp.celery import app

    tasks = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert {"workers.tasks.enqueue_waiting_runs", "workers.tasks.recover_stalled_runs"} <= tasks


def test_the_train_command_exits_2_from_the_shell(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "bad.json"
    path.write_text('{"batch_size": 0}')
    proc = subprocess.run([sys.executable, "manage.py", "train", str(path)], capture_output=True, text=True,
                          cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))), timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "batch_size" in proc.stderr
