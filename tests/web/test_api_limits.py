"""Limits and shapes of the API: tags bounded as in the form, every 400 as {"field", "detail"},
`null` for optional keys (a run as the API returns it can be posted back), and the validator's
bounds those the worker can train with."""
import json
import time

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tracking.config import ConfigError, validate_config
from tracking.models import Run, Tag


@pytest.fixture
def api(team_users):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=team_users['member']).key}")
    return client


def post(api, body):
    return api.post("/api/runs/", body, format="json")


def assert_400(response, field):
    assert response.status_code == 400, response.content
    body = response.json()
    assert set(body) == {"field", "detail"}, body
    assert body["field"] == field and body["detail"].startswith(f"{field}: "), body
    return body["detail"]


def test_30000_tags_are_refused_quickly_and_nothing_is_written(api, team_users, settings):
    started = time.perf_counter()
    response = post(api, {"project": team_users["project"].pk, "tags": [f"t{i}" for i in range(30000)]})
    elapsed = time.perf_counter() - started
    assert assert_400(response, "tags") == f"tags: at most {settings.RUN_MAX_TAGS} tags, not 30000"
    assert elapsed < 5, elapsed  # it held SQLite's write lock for 87 s
    assert not Run.objects.exists() and not Tag.objects.exists()


def test_tags_have_the_forms_limits_in_the_api(api, team_users, settings, member_client):
    project = team_users["project"]
    ok = post(api, {"project": project.pk, "tags": [f"t{i}" for i in range(settings.RUN_MAX_TAGS)] + ["t0", " "]})
    assert ok.status_code == 201 and len(ok.json()["tags"]) == settings.RUN_MAX_TAGS
    assert_400(post(api, {"project": project.pk, "tags": [f"t{i}" for i in range(settings.RUN_MAX_TAGS + 1)]}),
               "tags")
    assert "at most 50 characters" in assert_400(post(api, {"project": project.pk, "tags": ["x" * 51]}), "tags")
    assert_400(post(api, {"project": project.pk, "tags": "a,b"}), "tags")
    # the form: the same limits, a message naming the field, nothing created
    page = member_client.post(f"/projects/{project.pk}/runs/new/",
                              {"tags": ",".join(f"t{i}" for i in range(settings.RUN_MAX_TAGS + 1)), "queue": "cpu"})
    assert page.status_code == 400 and f"tags: at most {settings.RUN_MAX_TAGS} tags" in page.content.decode()
    run = Run.objects.get()
    answer = member_client.post(f"/runs/{run.pk}/annotate/", {"note": "n", "tags": "y" * 51})
    assert answer.status_code == 302 and run.tags.count() == settings.RUN_MAX_TAGS


@pytest.mark.parametrize("body, field", [
    ({"config": {}}, "project"),                                   # missing
    ({"project": "abc"}, "project"),
    ({"project": 10**20}, "project"),
    ({"project": 1, "parent": 10**20}, "parent"),
    ({"project": 1, "config": [1, 2]}, "config"),
    ({"project": 1, "name": "x" * 201}, "name"),
    ({"project": 1, "tags": [1, {"a": 2}]}, "tags"),
])
def test_every_400_has_the_field_and_detail_shape(api, team_users, body, field):
    body = {**body, "project": team_users["project"].pk} if body.get("project") == 1 else body
    assert_400(post(api, body), field)
    assert not Run.objects.exists()


def test_a_project_or_parent_of_another_team_is_a_400_naming_that_field(api, team_users):
    theirs = Run.objects.create(project=team_users["other_project"], owner=team_users["outsider"], name="x", config={})
    assert assert_400(post(api, {"project": team_users["other_project"].pk}), "project") == "project: no such project"
    assert assert_400(post(api, {"project": team_users["project"].pk, "parent": theirs.pk}), "parent") == \
        "parent: no such run"
    assert Run.objects.filter(project=team_users["project"]).count() == 0


def test_a_body_that_is_not_json_is_a_400_of_the_same_shape(api, team_users):
    response = api.post("/api/runs/", "{not json", content_type="application/json")
    assert_400(response, "body")
    assert_400(api.get("/api/runs/", {"project": "²"}), "project")


def test_a_body_over_djangos_upload_limit_is_a_400_of_the_same_shape_and_is_not_read(api, team_users, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100_000
    body = json.dumps({"project": team_users["project"].pk, "note": "x" * 200_000})
    response = api.post("/api/runs/", body, content_type="application/json")
    assert assert_400(response, "body") == "body: larger than 100,000 bytes"
    fields = "&".join(f"f{i}=1" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    response = api.post("/api/runs/", fields, content_type="application/x-www-form-urlencoded")
    assert "DATA_UPLOAD_MAX_NUMBER_FIELDS" in assert_400(response, "body")
    assert not Run.objects.exists()


def test_a_run_returned_by_the_api_can_be_posted_back(api, team_users):
    created = post(api, {"project": team_users["project"].pk, "name": "a", "tags": ["x"],
                         "config": {"optimizer": "adam", "grad_clip": None, "early_stopping_patience": None}})
    assert created.status_code == 201, created.content
    run = api.get(f"/api/runs/{created.json()['id']}/").json()
    assert run["config"]["grad_clip"] is None and run["parent"] is None
    again = post(api, {key: run[key] for key in ("project", "name", "config", "tags", "note", "parent")})
    assert again.status_code == 201, again.content
    assert Run.objects.get(pk=again.json()["id"]).config == Run.objects.get(pk=run["id"]).config
    nulls = post(api, {"project": team_users["project"].pk, "name": None, "note": None, "tags": None,
                       "config": None, "parent": None})
    assert nulls.status_code == 201, nulls.content


@pytest.mark.parametrize("config, field, message", [
    ({"lr": True}, "lr", "must be a number, not true or false"),
    ({"epochs": False}, "epochs", "must be a number, not true or false"),
    ({"lr": "NaN"}, "lr", "must be a finite number"),
    ({"lr": "inf"}, "lr", "must be a finite number"),
    ({"weight_decay": float("nan")}, "weight_decay", "must be a finite number"),
    ({"epochs": "NaN"}, "epochs", "must be a finite number"),
    ({"seed": 2**32}, "seed", "Input should be less than or equal to 4294967295"),
    ({"val_fraction": 0.9999}, "val_fraction", "Input should be less than or equal to 0.5"),
])
def test_the_validator_refuses_what_the_worker_cannot_use(config, field, message):
    with pytest.raises(ConfigError) as exc:
        validate_config(config)
    assert (exc.value.field, exc.value.message) == (field, message)


def test_the_api_refuses_a_boolean_lr_and_a_nan_string_naming_the_field(api, team_users):
    for config, detail in (({"lr": True}, "lr: must be a number, not true or false"),
                           ({"lr": "NaN"}, "lr: must be a finite number")):
        response = api.post("/api/runs/", json.dumps({"project": team_users["project"].pk, "config": config}),
                            content_type="application/json")
        assert assert_400(response, "lr") == detail
    assert not Run.objects.exists()


@pytest.mark.parametrize("dataset", ["digits", "breast_cancer", "wine", "moons", "spirals", "classification"])
def test_the_worker_trains_at_the_validators_bounds(dataset):
    from workers.engine import fit

    for extremes in ({"seed": 2**32 - 1, "val_fraction": 0.5}, {"seed": 0, "val_fraction": 1e-9}):
        config = validate_config({"dataset": dataset, "epochs": 1, "width": 8, "batch_size": 256, **extremes})
        assert fit(config).status == "succeeded", (dataset, extremes)
