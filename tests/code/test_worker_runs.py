"""Registered code run on a real Celery worker: a real subprocess, the real MLflow store."""
import time

import pytest

from tests.code.conftest import wait_end
from tests.waiting import wait_for
from tracking.code.services import code_run_create
from tracking.models import CodeRun, MetricSeries, Run

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_code_run_trains_logs_into_its_mlflow_run_and_is_analysed(celery_worker_process, register, team_users,
                                                                     mlflow_client):
    code = register("pytorch-plain")
    run = code_run_create(code=code, owner=team_users["admin"], parameters={"epochs": 3, "lr": 0.05})
    run = wait_end(run, celery_worker_process)
    assert run.status == "succeeded", run.status_reason
    assert run.config == {"lr": 0.05, "batch_size": 64, "epochs": 3, "optimizer": "sgd", "momentum": 0.0,
                          "weight_decay": 0.0, "stop_on_diagnosis": False}
    mlflow_run = mlflow_client.get_run(run.mlflow_run_id)
    assert mlflow_run.info.status == "FINISHED"
    assert mlflow_run.data.params["lr"] == "0.05" and mlflow_run.data.tags["runwise.run_id"] == str(run.pk)
    spe = int(mlflow_run.data.tags["steps_per_epoch"])
    series = {s.key: s for s in MetricSeries.objects.filter(run=run)}
    assert series["train_loss"].count == 3 * spe and [p[0] for p in series["val_loss"].points] == [1, 2, 3]
    assert run.epoch == 3 and run.step == run.total_steps == 3 * spe
    assert run.best_val_loss == pytest.approx(min(p[1] for p in series["val_loss"].points))
    output = CodeRun.objects.get(run=run)
    assert output.exit_code == 0 and "epoch 3/3" in output.output
    analysed = wait_for(lambda: Run.objects.filter(pk=run.pk, analysed_at__isnull=False).first(), 30,
                        "final analysis", log=celery_worker_process.log)
    assert analysed.analysis["diagnoses"]


def test_stop_ends_the_process_group_within_5_seconds(celery_worker_process, register, team_users, mlflow_client):
    code = register("pytorch-plain")
    run = code_run_create(code=code, owner=team_users["admin"], parameters={"epochs": 200, "epoch_seconds": 0.5})
    wait_for(lambda: Run.objects.get(pk=run.pk).epoch >= 1, 90, "first epoch", log=celery_worker_process.log)
    Run.objects.filter(pk=run.pk).update(stop_requested=True)
    asked = time.monotonic()
    run = wait_end(run, celery_worker_process, timeout=5)
    assert time.monotonic() - asked < 5
    assert run.status == "stopped" and "request" in run.status_reason
    assert mlflow_client.get_run(run.mlflow_run_id).info.status == "KILLED"


def test_a_script_that_raises_fails_with_its_exit_code_and_traceback(celery_worker_process, register, team_users):
    code = register("pytorch-plain")
    run = code_run_create(code=code, owner=team_users["admin"], parameters={"epochs": 3, "raise_at_epoch": 2})
    run = wait_end(run, celery_worker_process)
    assert run.status == "failed"
    assert run.status_reason.startswith("exit code 1")
    assert "RuntimeError: raised on purpose in epoch 2" in run.status_reason
    assert "Traceback" in CodeRun.objects.get(run=run).output


def test_a_killed_worker_leaves_the_run_failed_as_worker_lost_and_the_script_ends(
        celery_worker_process, register, team_users, mlflow_client):
    import signal
    from datetime import timedelta

    from workers.recovery import recover_stalled_runs

    code = register("pytorch-plain")
    run = code_run_create(code=code, owner=team_users["admin"], parameters={"epochs": 200, "epoch_seconds": 0.5})
    wait_for(lambda: Run.objects.get(pk=run.pk).epoch >= 1, 90, "first epoch", log=celery_worker_process.log)
    celery_worker_process.kill(signal.SIGKILL)
    run.refresh_from_db()

    def logged():
        return len(mlflow_client.get_metric_history(run.mlflow_run_id, "val_loss"))
    time.sleep(1.5)
    before = logged()
    time.sleep(2)
    assert logged() == before  # the script died with its worker (it logs an epoch every 0.5 s)
    assert recover_stalled_runs(timeout=timedelta(minutes=2)) == ([], [])  # within the heartbeat timeout
    requeued, failed = recover_stalled_runs(timeout=timedelta(0))
    assert (requeued, failed) == ([], [run.pk])
    run.refresh_from_db()
    assert run.status == "failed" and run.status_reason.startswith("worker lost")
    assert "not resumed" in run.status_reason
    assert mlflow_client.get_run(run.mlflow_run_id).info.status == "FAILED"


def test_a_code_run_over_the_wall_clock_limit_fails_with_the_reason_and_the_script_ends(
        redis_server, transactional_db, register, team_users, mlflow_client, monkeypatch, tmp_path):
    from tests.conftest import WorkerProcess

    # 30 s: the run after it must start and finish within the limit too (a loaded CI machine took
    # more than 15 s for its 2 epochs, script start-up included)
    monkeypatch.setenv("RUN_TIME_LIMIT", "30")
    worker = WorkerProcess("cpu,gpu,default", tmp_path / "worker.log").start()
    try:
        code = register("pytorch-plain")
        run = code_run_create(code=code, owner=team_users["admin"], parameters={"epochs": 200, "epoch_seconds": 0.5})
        run = wait_end(run, worker, timeout=90)
        assert run.status == "failed", run.status_reason
        assert run.status_reason.startswith("wall-clock limit of 30s reached at epoch "), run.status_reason
        assert "RUN_TIME_LIMIT" in run.status_reason and 0 < run.epoch < 200
        assert mlflow_client.get_run(run.mlflow_run_id).info.status == "FAILED"
        logged = len(mlflow_client.get_metric_history(run.mlflow_run_id, "val_loss"))
        time.sleep(1.5)
        assert len(mlflow_client.get_metric_history(run.mlflow_run_id, "val_loss")) == logged  # the script ended
        after = code_run_create(code=code, owner=team_users["admin"], parameters={"epochs": 2})
        after = wait_end(after, worker)
        assert after.status == "succeeded", after.status_reason  # the worker goes on
        assert worker.proc.poll() is None
    finally:
        worker.stop()
