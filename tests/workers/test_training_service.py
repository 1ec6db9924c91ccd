"""The training service in this process: claiming, final states, MLflow out of reach,
and `manage.py train`."""
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from tracking.models import Run
from workers import mlflow_logging
from workers.training import claim_run, finish_run, train_run

pytestmark = pytest.mark.django_db(transaction=True)  # the run's sync thread has its own connection


def test_a_run_is_claimed_once(run_factory):
    run = run_factory()
    assert claim_run(run.pk, worker="w1", device="cpu")
    assert not claim_run(run.pk, worker="w2", device="cpu")
    run.refresh_from_db()
    assert (run.status, run.worker, run.attempts) == ("running", "w1", 1)
    assert run.started_at and run.heartbeat_at


def test_a_running_run_with_a_stale_heartbeat_can_be_taken_over(run_factory):
    run = run_factory(status="running", worker="dead", attempts=1,
                      heartbeat_at=timezone.now() - timedelta(hours=1))
    assert claim_run(run.pk, worker="w2", device="cpu")
    run.refresh_from_db()
    assert (run.worker, run.attempts) == ("w2", 2)


def test_only_the_owning_worker_writes_the_final_state(run_factory):
    run = run_factory()
    claim_run(run.pk, worker="w1", device="cpu")
    assert not finish_run(run.pk, worker="w2", status="succeeded", reason="")
    assert finish_run(run.pk, worker="w1", status="succeeded", reason="done")


def test_a_finished_run_is_not_trained_again(run_factory):
    run = run_factory(status="succeeded")
    assert train_run(run.pk, worker="w1") is None
    assert Run.objects.get(pk=run.pk).status == "succeeded"


def test_a_run_trains_to_succeeded_with_its_summary(run_factory, mlflow_client):
    run = run_factory({"dataset": "wine", "epochs": 3, "optimizer": "adam", "lr": 0.01})
    result = train_run(run.pk, worker="w1")
    run.refresh_from_db()
    assert run.status == "succeeded" and run.finished_at and run.device == "cpu"
    assert run.best_val_loss == pytest.approx(result.best_val_loss)
    assert (run.epoch, run.step, run.total_steps) == (3, result.steps_run, result.steps_run)
    assert set(run.latest_metrics) >= {"train_loss", "lr", "grad_norm", "val_loss", "val_accuracy"}
    assert mlflow_client.get_run(run.mlflow_run_id).info.status == "FINISHED"
    assert run.series.get(key="val_loss").points == [[e, pytest.approx(v)] for e, v in result.history["val_loss"]]


def test_a_bad_stored_config_fails_the_run_with_the_field(run_factory):
    run = run_factory()
    Run.objects.filter(pk=run.pk).update(config={"lr": -1})
    train_run(run.pk, worker="w1")
    run.refresh_from_db()
    assert run.status == "failed" and "lr" in run.status_reason


def test_mlflow_out_of_reach_fails_the_run_after_retries(run_factory, settings, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    monkeypatch.setattr(mlflow_logging, "RETRY", {"attempts": 3, "first_delay": 0.01, "max_delay": 0.02})
    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:9"  # nothing listens there
    run = run_factory()
    train_run(run.pk, worker="w1")
    run.refresh_from_db()
    assert run.status == "failed"
    assert "MLflow" in run.status_reason and "failed after 3 tries" in run.status_reason


def test_the_train_command_prints_the_run_mlflow_run_and_best_val_loss(tmp_path, capsys):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"dataset": "wine", "epochs": 2}))
    call_command("train", str(path))
    out = capsys.readouterr().out
    run = Run.objects.latest("pk")
    assert run.status == "succeeded" and run.project.name == "cli"
    assert f"run {run.pk}" in out and run.mlflow_run_id in out and f"best val_loss: {run.best_val_loss}" in out


@pytest.mark.parametrize("config, field", [({"lr": -1}, "lr"), ({"optimizer": "lion"}, "optimizer"),
                                           ({"colour": 1}, "colour")])
def test_the_train_command_exits_2_naming_the_bad_field(tmp_path, config, field):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    with pytest.raises(CommandError) as info:
        call_command("train", str(path))
    assert info.value.returncode == 2
    assert field in str(info.value) and "\n" not in str(info.value)
    assert not Run.objects.exists()


def test_the_train_command_exits_2_on_an_unreadable_file(tmp_path):
    with pytest.raises(CommandError) as info:
        call_command("train", str(tmp_path / "missing.json"))
    assert info.value.returncode == 2
