"""The run form generated from an entry point's parameters, the API that takes the same, the
parameter mapping, and 404 for outsiders on every new URL."""
import pytest
from django.test import Client

from tracking.code.mapping import change_to_parameters, key_map
from tracking.code.services import applicability, code_run_create
from tracking.models import CodeRun, Recommendation, Run

pytestmark = pytest.mark.django_db


def client_for(user):
    client = Client()
    client.force_login(user)
    return client


def test_the_form_has_one_field_per_parameter_with_its_type_and_default(team_users, register):
    code = register("pytorch-plain")
    page = client_for(team_users["member"]).get(f"/code/{code.pk}/runs/new/?entry_point=main").content.decode()
    for name in code.entry_points["main"]["parameters"]:
        assert f'name="param_{name}"' in page
    assert 'value="0.02"' in page and "float, default 0.02" in page and "int, default 64" in page


def test_a_member_starts_a_run_from_the_form_with_the_mapped_config(team_users, register, django_capture_on_commit_callbacks):
    code = register("pytorch-plain")
    member = client_for(team_users["member"])
    with django_capture_on_commit_callbacks() as callbacks:
        response = member.post(f"/code/{code.pk}/runs/new/?entry_point=main",
                               {"param_lr": "0.1", "param_epochs": "3", "param_optimizer": "adam", "queue": "cpu"})
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/runs/{run.pk}/"
    assert len(callbacks) == 1  # enqueued once the transaction commits
    assert run.kind == "code" and run.owner == team_users["member"]
    assert run.config == {"lr": 0.1, "batch_size": 64, "epochs": 3, "optimizer": "adam", "momentum": 0.0,
                          "weight_decay": 0.0, "stop_on_diagnosis": False}
    assert CodeRun.objects.get(run=run).parameters["hidden"] == 32 and run.code_run.commit == code.commit


@pytest.mark.parametrize("data, message", [
    ({"param_lr": "fast"}, "lr: expected a number, got &#x27;fast&#x27; (float)"),
    ({"param_epochs": "2.5"}, "epochs: expected an integer, got &#x27;2.5&#x27; (int)"),
    ({"param_lr": "nan"}, "lr: expected a finite number"),
])
def test_a_bad_value_names_the_parameter_and_queues_nothing(team_users, register, data, message):
    code = register("pytorch-plain")
    response = client_for(team_users["admin"]).post(f"/code/{code.pk}/runs/new/", {"queue": "cpu", **data})
    assert response.status_code == 400 and message in response.content.decode()
    assert not Run.objects.exists()


def test_the_api_takes_the_same_parameters_and_refuses_unknown_ones(team_users, register):
    code = register("pytorch-plain")
    api = client_for(team_users["member"])
    url = f"/api/code/{code.pk}/runs/"
    bad = api.post(url, {"parameters": {"lr": 0.1, "learning_rate": 0.1}}, content_type="application/json")
    assert bad.status_code == 400 and bad.json()["field"] == "learning_rate"
    assert "unknown parameter" in bad.json()["detail"]
    wrong = api.post(url, {"parameters": {"batch_size": "many"}}, content_type="application/json")
    assert wrong.status_code == 400 and wrong.json()["field"] == "batch_size"
    assert not Run.objects.exists()
    ok = api.post(url, {"parameters": {"lr": 0.3, "epochs": 2}, "name": "api"}, content_type="application/json")
    assert ok.status_code == 201 and ok.json()["config"]["lr"] == 0.3 and ok.json()["name"] == "api"
    listed = api.get("/api/code/").json()
    assert [c["name"] for c in listed["results"]] == ["pytorch-plain"]
    assert api.get(f"/api/code/{code.pk}/").json()["entry_points"]["main"]["parameters"]["lr"]["type"] == "float"


def test_parameters_map_to_design_keys_by_name_and_alias():
    assert key_map(["learning_rate", "max_epochs", "per_device_train_batch_size", "hidden", "wd"]) == {
        "lr": "learning_rate", "epochs": "max_epochs", "batch_size": "per_device_train_batch_size",
        "weight_decay": "wd"}
    assert key_map(["learning_rate", "lr"]) == {"lr": "lr"}  # the DESIGN name wins over an alias
    assert change_to_parameters({"lr": 0.01, "weight_decay": 5e-4}, {"lr": "learning_rate"}) == (
        {"learning_rate": 0.01}, ["weight_decay"])


def test_a_recommendation_for_a_key_without_a_parameter_is_shown_but_not_applicable(team_users, register):
    code = register("lightning")  # no weight_decay parameter
    run = code_run_create(code=code, owner=team_users["admin"], parameters={})
    Run.objects.filter(pk=run.pk).update(status="succeeded", analysis={"diagnoses": [
        {"id": "overfitting", "severity": 0.8, "evidence": "val_loss rose", "epochs": [2, 6]}]})
    wd = Recommendation.objects.create(run=run, rule="overfitting.raise_weight_decay", diagnosis="overfitting",
                                       change={"weight_decay": 5e-4}, rationale="L2", confidence=0.7, rank=0)
    Recommendation.objects.create(run=run, rule="overfitting.add_dropout", diagnosis="overfitting",
                                  change={"dropout": 0.3}, rationale="Dropout", confidence=0.6, rank=1)
    assert "no parameter for weight_decay" in applicability(run, wd.change)
    admin = client_for(team_users["admin"])
    page = admin.get(f"/runs/{run.pk}/").content.decode()
    assert "has no parameter for weight_decay, so this change cannot be applied" in page
    assert f"/recommendations/{wd.pk}/apply/" not in page
    refused = admin.post(f"/recommendations/{wd.pk}/apply/")
    assert refused.status_code == 400 and Run.objects.count() == 1


def test_outsiders_get_404_on_every_new_url(team_users, register):
    code = register("pytorch-plain")
    run = code_run_create(code=code, owner=team_users["admin"], parameters={})
    from tracking.code.services import experiment_follow

    followed = experiment_follow(project=team_users["project"], user=team_users["admin"], reference="lightning")
    eve = client_for(team_users["outsider"])
    project = team_users["project"].pk
    for method, url in [
        ("get", f"/projects/{project}/code/"), ("post", f"/projects/{project}/code/register/"),
        ("post", f"/projects/{project}/follow/"), ("post", f"/followed/{followed.pk}/unfollow/"),
        ("get", f"/code/{code.pk}/"), ("get", f"/code/{code.pk}/runs/new/"), ("post", f"/code/{code.pk}/runs/new/"),
        ("get", f"/runs/{run.pk}/code-clone/"), ("get", f"/runs/{run.pk}/output.json"),
        ("get", f"/api/code/{code.pk}/"), ("post", f"/api/code/{code.pk}/runs/"),
    ]:
        assert getattr(eve, method)(url).status_code == 404, url
    assert eve.get("/api/code/").json()["results"] == []


def test_the_autopilot_tunes_a_code_run_with_the_changes_its_parameters_can_take(team_users, register):
    from django.utils import timezone

    from tracking.autopilot import autopilot_start

    code = register("lightning")  # no weight_decay parameter
    run = code_run_create(code=code, owner=team_users["admin"], parameters={"lr": 0.05})
    Run.objects.filter(pk=run.pk).update(status="succeeded", analysed_at=timezone.now(), best_val_loss=1.0)
    Recommendation.objects.create(run=run, rule="overfitting.raise_weight_decay", diagnosis="overfitting",
                                  change={"weight_decay": 5e-4}, rationale="L2", confidence=0.7, rank=0)
    Recommendation.objects.create(run=run, rule="not_converged.raise_lr", diagnosis="not_converged",
                                  change={"lr": 0.15}, rationale="faster", confidence=0.6, rank=1)
    run.refresh_from_db()
    pilot = autopilot_start(run=run, owner=team_users["admin"], max_rounds=2)
    first = pilot.rounds.get().run
    assert first.kind == "code" and first.parent == run and first.code_run.code == code
    assert first.code_run.parameters["lr"] == 0.15 and first.code_run.parameters["max_epochs"] == 6
    assert pilot.rounds.get().rule == "not_converged.raise_lr"


def test_progress_counts_epochs_from_the_curves_or_an_epoch_metric():
    from tracking.code.progress import progress_fields

    curves = {"train_loss": [(s, 1.0) for s in range(30)], "val_loss": [(1, 1.0), (2, 0.9), (3, 0.8)]}
    done = progress_fields(curves, total_epochs=6, steps_per_epoch=10, elapsed=30.0)
    assert (done["epoch"], done["step"], done["total_steps"]) == (3, 30, 60) and done["eta_seconds"] == 30.0
    only_epoch = progress_fields({"train_loss": [(0, 1.0)]}, total_epochs=4, steps_per_epoch=None, elapsed=10.0,
                                 epoch_metric=2.5)  # a fractional `epoch` (epochs done), no epoch-level curve
    assert (only_epoch["epoch"], only_epoch["step"], only_epoch["total_steps"]) == (2, 2, 4)
    assert "total_steps" not in progress_fields(curves, total_epochs=None, steps_per_epoch=None, elapsed=1.0)


def test_the_script_gets_the_workers_gpu_and_mlflow_run_but_no_database_or_secret(monkeypatch):
    from workers.project_runs import script_env

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    monkeypatch.setenv("DATABASE_URL", "postgres://runwise:secret@db/runwise")
    env = script_env("abc123", "7", "sqlite:////tmp/x.db")
    assert env["CUDA_VISIBLE_DEVICES"] == "1"
    assert (env["MLFLOW_RUN_ID"], env["MLFLOW_EXPERIMENT_ID"], env["MLFLOW_TRACKING_URI"]) == (
        "abc123", "7", "sqlite:////tmp/x.db")
    assert "DATABASE_URL" not in env and "SECRET_KEY" not in env and "DJANGO_SETTINGS_MODULE" not in env
