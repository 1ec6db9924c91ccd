"""The JSON API: token auth, list and create runs with the form's validation, status and metrics."""
import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.web.conftest import make_run
from tracking.models import Run


@pytest.fixture
def api(team_users):
    client = APIClient()
    token = Token.objects.create(user=team_users["member"])
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def test_without_a_token_the_api_answers_401_not_a_login_redirect(client, team_users):
    assert client.get("/api/runs/").status_code == 401
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Token not-a-token")
    assert bad.get("/api/runs/").status_code == 401


def test_it_lists_only_the_callers_teams_runs(api, team_users):
    mine = make_run(team_users["project"], team_users["admin"], name="mine", with_series=False)
    make_run(team_users["other_project"], team_users["outsider"], name="theirs", with_series=False)
    data = api.get("/api/runs/").json()
    assert [r["name"] for r in data["results"]] == ["mine"]
    assert data["results"][0]["config"]["lr"] == mine.config["lr"]
    assert [p["name"] for p in api.get("/api/projects/").json()["results"]] == ["vision"]


def test_it_creates_a_run_with_the_one_validator(api, team_users):
    response = api.post("/api/runs/", {"project": team_users["project"].pk, "name": "from-script",
                                       "config": {"optimizer": "adam", "lr": 0.002, "epochs": 3},
                                       "tags": ["api"]}, format="json")
    assert response.status_code == 201, response.content
    run = Run.objects.get(name="from-script")
    assert run.owner == team_users["member"] and run.config["lr"] == 0.002 and run.status == "queued"
    assert response.json()["id"] == run.pk and [t.name for t in run.tags.all()] == ["api"]


@pytest.mark.parametrize("config, field", [
    ({"lr": -1}, "lr"), ({"optimizer": "lion"}, "optimizer"), ({"learning_rate": 0.1}, "learning_rate"),
    ({"warmup_epochs": 30, "epochs": 10}, "warmup_epochs"),
])
def test_a_bad_config_field_answers_400_naming_it(api, team_users, config, field):
    response = api.post("/api/runs/", {"project": team_users["project"].pk, "config": config}, format="json")
    assert response.status_code == 400 and response.json()["field"] == field
    assert response.json()["detail"].startswith(f"{field}:")
    assert not Run.objects.exists()


def test_it_cannot_create_a_run_in_another_teams_project(api, team_users):
    response = api.post("/api/runs/", {"project": team_users["other_project"].pk, "config": {}}, format="json")
    assert response.status_code == 400 and response.json()["field"] == "project"
    assert not Run.objects.exists()


def test_it_reads_a_runs_status_and_metrics(api, team_users):
    run = make_run(team_users["project"], team_users["admin"], status=Run.Status.RUNNING, epochs=3)
    detail = api.get(f"/api/runs/{run.pk}/").json()
    assert detail["status"] == "running" and detail["progress"] == 1.0
    metrics = api.get(f"/api/runs/{run.pk}/metrics/").json()
    assert metrics["series"]["val_loss"]["points"] == [[e, 1.0 / e + 0.05 * e] for e in (1, 2, 3)]
    foreign = make_run(team_users["other_project"], team_users["outsider"], with_series=False)
    assert api.get(f"/api/runs/{foreign.pk}/").status_code == 404
    assert api.get(f"/api/runs/{foreign.pk}/metrics/").status_code == 404


def test_the_openapi_schema_and_docs_are_served(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert {"/api/runs/", "/api/runs/{id}/", "/api/runs/{id}/metrics/"} <= set(paths)
    assert "post" in paths["/api/runs/"]
    docs = api.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger-ui" in docs.content and b"cdn" not in docs.content.lower()


def test_the_token_page_creates_a_token(member_client, team_users):
    assert not Token.objects.filter(user=team_users["member"]).exists()
    member_client.post("/account/token/")
    token = Token.objects.get(user=team_users["member"])
    assert token.key in member_client.get("/account/token/").content.decode()
