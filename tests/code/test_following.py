"""Following MLflow experiments: runs logged outside Runwise imported as external runs (read
only), deleted or renamed ones and an unreachable server shown clearly, "Apply…" on them."""
import pytest
from django.test import Client

from tracking.code.following import import_followed
from tracking.code.services import experiment_follow
from tracking.models import ExternalRun, FollowedExperiment, Recommendation, Run

pytestmark = pytest.mark.django_db


def client_for(user):
    client = Client()
    client.force_login(user)
    return client


def log_external_run(client, experiment, *, params=None, epochs=4, status="FINISHED", tags=None):
    """A run as someone's own script would log it (HF-style names), straight into MLflow."""
    from mlflow.entities import Metric, Param

    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp else client.create_experiment(experiment)
    run = client.create_run(exp_id, run_name="their-run", tags=tags or {})
    params = params or {"learning_rate": "0.001", "num_train_epochs": "4", "per_device_train_batch_size": "16"}
    metrics = []
    for step in range(epochs * 10):
        metrics.append(Metric("loss", 2.0 * 0.97 ** step, 1_700_000_000_000 + step, step))
        if (step + 1) % 10 == 0:
            metrics.append(Metric("eval_loss", 2.1 * 0.95 ** step, 1_700_000_000_000 + step, step))
            metrics.append(Metric("epoch", (step + 1) / 10, 1_700_000_000_000 + step, step))
    client.log_batch(run.info.run_id, metrics=metrics, params=[Param(k, v) for k, v in params.items()])
    if status != "RUNNING":
        client.set_terminated(run.info.run_id, status)
    return run.info.run_id


def snapshot(client, run_id):
    run = client.get_run(run_id)
    return (run.info.status, run.info.end_time, run.info.lifecycle_stage, dict(run.data.params),
            dict(run.data.tags), dict(run.data.metrics))


def test_a_followed_experiments_runs_are_imported_read_only_with_mapped_params(team_users, mlflow_client):
    mlflow_id = log_external_run(mlflow_client, "their-experiment")
    before = snapshot(mlflow_client, mlflow_id)
    followed = experiment_follow(project=team_users["project"], user=team_users["admin"],
                                 reference="their-experiment")
    assert import_followed() == 1
    run = Run.objects.get(mlflow_run_id=mlflow_id)
    assert run.kind == "external" and run.status == "succeeded" and run.owner == team_users["admin"]
    assert run.config == {"lr": 0.001, "epochs": 4, "batch_size": 16}
    assert run.epoch == 4 and run.best_val_loss == pytest.approx(2.1 * 0.95 ** 39)
    assert {s.key for s in run.series.all()} == {"train_loss", "val_loss"}
    assert [p[0] for p in run.series.get(key="val_loss").points] == [1, 2, 3, 4]  # on epochs, not global steps
    assert import_followed() == 0  # an ended run is not read again
    mlflow_client.set_tag(mlflow_id, "mlflow.runName", "renamed-run")  # renamed in MLflow's UI
    before = snapshot(mlflow_client, mlflow_id)
    assert import_followed() == 1 and Run.objects.get(pk=run.pk).name == "renamed-run"
    assert snapshot(mlflow_client, mlflow_id) == before  # nothing written back to MLflow
    followed.refresh_from_db()
    assert followed.state == "" and followed.experiment_name == "their-experiment" and followed.checked_at
    page = client_for(team_users["member"]).get(f"/runs/{run.pk}/").content.decode()
    assert "Imported from MLflow" in page and "learning_rate" in page


def test_runs_logged_by_runwise_are_not_imported_twice(team_users, mlflow_client):
    log_external_run(mlflow_client, "mixed", tags={"runwise.run_id": "7"})
    experiment_follow(project=team_users["project"], user=team_users["admin"], reference="mixed")
    assert import_followed() == 0 and not Run.objects.exists()


def test_a_deleted_run_a_renamed_experiment_and_an_unreachable_server_leave_a_clear_state(
        team_users, mlflow_client, settings):
    mlflow_id = log_external_run(mlflow_client, "to-rename", status="RUNNING")
    by_name = experiment_follow(project=team_users["project"], user=team_users["admin"], reference="to-rename")
    import_followed()
    run = Run.objects.get(mlflow_run_id=mlflow_id)
    assert run.status == "running"
    exp_id = mlflow_client.get_experiment_by_name("to-rename").experiment_id
    by_id = experiment_follow(project=team_users["project"], user=team_users["admin"], reference=exp_id)

    mlflow_client.delete_run(mlflow_id)
    mlflow_client.rename_experiment(exp_id, "renamed")
    import_followed()
    by_name.refresh_from_db()
    by_id.refresh_from_db()
    assert "no experiment with the name 'to-rename'" in by_name.state and "renamed or deleted" in by_name.state
    assert by_id.state == "" and by_id.experiment_name == "renamed"
    ext = ExternalRun.objects.get(run=run)
    assert ext.state.startswith("deleted in MLflow")
    run.refresh_from_db()
    assert run.status == "failed" and "deleted in MLflow" in run.status_reason
    member = client_for(team_users["member"])
    assert "deleted in MLflow" in member.get(f"/runs/{run.pk}/").content.decode()

    settings.MLFLOW_TRACKING_URI = "http://127.0.0.1:9"  # nothing listens there
    assert import_followed() == 0
    assert all("unreachable" in f.state for f in FollowedExperiment.objects.all())
    page = member.get(f"/projects/{team_users['project'].pk}/code/")
    assert page.status_code == 200 and "is unreachable" in page.content.decode()
    assert member.get(f"/runs/{run.pk}/").status_code == 200


def test_apply_on_an_external_run_of_unregistered_code_shows_arguments_to_copy(team_users, mlflow_client):
    mlflow_id = log_external_run(mlflow_client, "args")
    experiment_follow(project=team_users["project"], user=team_users["admin"], reference="args")
    import_followed()
    run = Run.objects.get(mlflow_run_id=mlflow_id)
    rec = Recommendation.objects.create(run=run, rule="lr.lower", diagnosis="unstable", change={"lr": 0.0003},
                                        rationale="smaller steps", confidence=0.6)
    member = client_for(team_users["member"])
    page = member.get(f"/recommendations/{rec.pk}/apply/").content.decode()
    assert "--learning_rate 0.0003" in page
    assert member.post(f"/recommendations/{rec.pk}/apply/").status_code == 400
    assert Run.objects.count() == 1


def test_apply_on_an_external_run_of_registered_code_makes_a_runwise_run(team_users, mlflow_client, register):
    code = register("pytorch-plain")
    mlflow_id = log_external_run(
        mlflow_client, "ours", params={"lr": "0.05", "epochs": "4", "batch_size": "32", "hidden": "16"},
        tags={"mlflow.source.name": f"{code.path}/train.py"})
    followed = experiment_follow(project=team_users["project"], user=team_users["admin"], reference="ours")
    import_followed()
    followed.refresh_from_db()
    assert followed.state == ""
    run = Run.objects.get(mlflow_run_id=mlflow_id)
    assert run.external_run.code == code and run.external_run.entry_point == "main"
    rec = Recommendation.objects.create(run=run, rule="lr.raise", diagnosis="underfitting", change={"lr": 0.1},
                                        rationale="bigger steps", confidence=0.6)
    response = client_for(team_users["member"]).post(f"/recommendations/{rec.pk}/apply/")
    child = Run.objects.exclude(pk=run.pk).get()
    assert response.status_code == 302 and response["Location"] == f"/runs/{child.pk}/"
    assert child.kind == "code" and child.parent == run and child.code_run.code == code
    defaults = {k: v["default"] for k, v in code.entry_points["main"]["parameters"].items()}
    assert child.code_run.parameters == {**defaults, "lr": 0.1, "epochs": 4, "batch_size": 32, "hidden": 16}
