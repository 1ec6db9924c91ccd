"""Memory and time are estimated when a run is created (parameters x batch, epochs x steps per
epoch) against limits that are settings; a run over a limit is refused naming the field, and
nothing is written. Through the form and the API too."""
import pytest
from django.test import Client

from tracking.config import ConfigError, validate_config
from tracking.limits import BUILTIN_SHAPES, DataShape, run_estimate
from tracking.models import Run
from tracking.services import run_create

pytestmark = pytest.mark.django_db


def create(team_users, **config):
    return run_create(project=team_users["project"], owner=team_users["member"], config=config)


def test_the_parameter_count_is_the_models_own():
    import torch  # noqa: F401  (the test compares with the real model)

    from workers.nets import build_model, count_parameters

    for config in ({"model": "mlp", "width": 100, "depth": 3, "batch_norm": True},
                   {"model": "cnn", "width": 16, "depth": 3}, {"model": "cnn", "width": 8, "depth": 1}):
        config = validate_config({"dataset": "digits", **config})
        model = build_model(config, 64, 10, (1, 8, 8) if config["model"] == "cnn" else None)
        assert run_estimate(config, DataShape(*BUILTIN_SHAPES["digits"])).parameters == count_parameters(model)


def test_a_cnn_4096_wide_and_16_deep_is_refused_naming_width_and_depth(team_users):
    with pytest.raises(ConfigError) as exc:
        create(team_users, dataset="digits", model="cnn", width=4096, depth=16)
    assert exc.value.field == "width"
    assert "width/depth" in exc.value.message and "2.27 billion parameters" in exc.value.message
    assert "RUN_MEMORY_LIMIT_MB" in exc.value.message
    assert not Run.objects.exists()


def test_a_huge_batch_of_a_wide_model_is_refused_naming_batch_size(team_users, settings):
    settings.RUN_MEMORY_LIMIT_MB = 400
    with pytest.raises(ConfigError) as exc:
        create(team_users, dataset="classification", width=2048, depth=4, batch_size=2048)
    assert exc.value.field == "batch_size" and "RUN_MEMORY_LIMIT_MB" in exc.value.message


def test_10000_epochs_are_refused_by_the_step_limit(team_users):
    with pytest.raises(ConfigError) as exc:
        create(team_users, dataset="digits", epochs=10000)
    assert exc.value.field == "epochs" and "450,000 optimizer steps" in exc.value.message
    assert "RUN_MAX_STEPS" in exc.value.message


def test_a_run_estimated_longer_than_the_time_limit_is_refused(team_users, settings):
    settings.RUN_TIME_LIMIT = 600
    with pytest.raises(ConfigError) as exc:
        create(team_users, dataset="digits", width=2048, depth=8, epochs=100)
    assert exc.value.field == "epochs" and "RUN_TIME_LIMIT" in exc.value.message and "10 min" in exc.value.message
    assert create(team_users, dataset="digits", epochs=20).status == "queued"


def test_the_form_and_the_api_refuse_it_with_the_field(team_users):
    from tests.web.test_run_setup import form_data

    client = Client()
    client.force_login(team_users["member"])
    url = f"/projects/{team_users['project'].pk}/runs/new/"
    response = client.post(url, form_data(model="cnn", width=4096, depth=16))
    assert response.status_code == 400 and "width/depth" in str(response.context["form"].errors["width"])
    api = client.post("/api/runs/", {"project": team_users["project"].pk,
                                      "config": {"model": "cnn", "width": 4096, "depth": 16}},
                      content_type="application/json")
    assert api.status_code == 400 and api.json()["field"] == "width"
    assert not Run.objects.exists()
