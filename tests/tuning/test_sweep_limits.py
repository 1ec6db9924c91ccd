"""A sweep is bounded in trials (SWEEP_MAX_TRIALS, both stages together): one request can no
longer queue 199 runs, the form says the limit, and a refused sweep writes nothing."""
import pytest
from django.test import Client
from django.utils import timezone

from tracking import sweeps
from tracking.config import ConfigError, validate_config
from tracking.models import Run, Sweep

pytestmark = pytest.mark.django_db


@pytest.fixture
def source(team_users):
    return Run.objects.create(project=team_users["project"], owner=team_users["admin"], name="base run",
                              config=validate_config({"dataset": "digits", "momentum": 0.9, "epochs": 6}),
                              status="succeeded", best_val_loss=0.9, analysed_at=timezone.now())


@pytest.fixture
def client(team_users):
    c = Client()
    c.force_login(team_users["member"])
    return c


def form(**over):
    data = {"name": "lr", "lr_on": "on", "lr_low": "0.001", "lr_high": "1", "lr_log": "on",
            "stage1_trials": "4", "stage1_epochs": "1", "stage2_trials": "2"}
    data.update(over)
    return data


def test_one_sweep_request_cannot_queue_199_runs(client, source, settings):
    settings.SWEEP_MAX_TRIALS = 24
    response = client.post(f"/runs/{source.pk}/sweep/new/", form(stage1_trials="196", stage2_trials="3"))
    assert response.status_code == 400
    assert "stage1_trials" in response.content.decode() and "23" in response.content.decode()
    assert not Sweep.objects.exists() and Run.objects.count() == 1


def test_both_stages_together_are_bounded_by_the_setting(team_users, source, settings):
    settings.SWEEP_MAX_TRIALS = 10
    with pytest.raises(ConfigError) as exc:
        sweeps.sweep_create(project=source.project, owner=team_users["admin"], base_config=source.config,
                            stage1_trials=8, stage2_trials=3)
    assert exc.value.field == "stage2_trials" and "SWEEP_MAX_TRIALS" in exc.value.message
    assert not Sweep.objects.exists() and Run.objects.count() == 1
    sweep = sweeps.sweep_create(project=source.project, owner=team_users["admin"], base_config=source.config,
                                stage1_trials=7, stage2_trials=3)
    assert sweep.trials.count() == 7


def test_the_form_says_the_limit(client, source, settings):
    settings.SWEEP_MAX_TRIALS = 17
    body = client.get(f"/runs/{source.pk}/sweep/new/").content.decode()
    assert "At most 17 trials a sweep" in body


def test_a_sweep_whose_full_length_runs_would_pass_the_time_limit_is_refused(team_users, source, settings):
    settings.RUN_TIME_LIMIT = 60
    with pytest.raises(ConfigError) as exc:
        sweeps.sweep_create(project=source.project, owner=team_users["admin"],
                            base_config={**source.config, "width": 2048, "depth": 8, "epochs": 50},
                            stage1_trials=2, stage2_trials=1)
    assert exc.value.field == "epochs" and "RUN_TIME_LIMIT" in exc.value.message
    assert not Sweep.objects.exists()
