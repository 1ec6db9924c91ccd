"""Sweeps: stage 1 asks Optuna (RandomSampler, ask-and-tell) for short trials inside the ranges;
when they end, stage 2 narrows the ranges around the best and trains full length."""
import math

import optuna
import pytest

from tracking import sweeps
from tracking.config import ConfigError
from tracking.models import Run, Sweep, Trial

pytestmark = pytest.mark.django_db

BASE = {"dataset": "digits", "optimizer": "sgd", "epochs": 12, "momentum": 0.9}
SPACE = {
    "lr": {"low": 1e-4, "high": 1.0, "log": True},
    "weight_decay": {"low": 1e-6, "high": 1e-2, "log": True},
    "batch_size": {"choices": [16, 32, 64, 128, 256]},
    "momentum": {"low": 0.9, "high": 0.99},
    "dropout": {"low": 0.0, "high": 0.5},
}


def create(team_users, **kw):
    return sweeps.sweep_create(project=team_users["project"], owner=team_users["admin"], base_config=BASE,
                               space=SPACE, **{"stage1_trials": 8, "stage2_trials": 3, "seed": 1, **kw})


def end(trial, val_loss, status="succeeded"):
    Run.objects.filter(pk=trial.run_id).update(status=status, best_val_loss=val_loss)
    return sweeps.on_run_ended(trial.run_id)


def inside(spec, value):
    if "choices" in spec:
        return value in spec["choices"]
    return spec["low"] <= value <= spec["high"]


def test_stage_one_samples_short_runs_inside_the_ranges_with_optuna(team_users):
    sweep = create(team_users)
    trials = list(sweep.trials.all())
    assert len(trials) == 8 and {t.stage for t in trials} == {1}
    for t in trials:
        assert set(t.params) == set(SPACE)
        assert all(inside(SPACE[k], v) for k, v in t.params.items())
        assert t.run.config["epochs"] == 2 and t.run.status == Run.Status.QUEUED
        assert all(t.run.config[k] == v for k, v in t.params.items())
    assert len({t.params["lr"] for t in trials}) == 8  # random points, not a grid
    study = optuna.load_study(study_name=sweep.study_name(1), storage=sweeps.storage_url())
    assert isinstance(sweeps.study_for(sweep, 1).sampler, optuna.samplers.RandomSampler)
    assert sorted(t.number for t in study.trials) == sorted(t.number for t in trials)
    assert {t.number: t.params for t in study.trials} == {t.number: t.params for t in trials}


def test_ending_trials_tells_the_study_and_stage_two_narrows_around_the_best(team_users):
    sweep = create(team_users)
    trials = list(sweep.trials.order_by("number"))
    # The loss grows with the distance of log10(lr) from -1.5: the best trials sit near lr 0.03.
    for t in trials[:-1]:
        assert end(t, 0.1 + abs(math.log10(t.params["lr"]) + 1.5)) is True
    sweep.refresh_from_db()
    assert sweep.stage == 1 and sweep.trials.count() == 8  # waits for the last trial
    end(trials[-1], None, status="diverged")
    sweep.refresh_from_db()
    assert sweep.stage == 2 and sweep.state == Sweep.State.RUNNING
    study = optuna.load_study(study_name=sweep.study_name(1), storage=sweeps.storage_url())
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 7 and states.count(optuna.trial.TrialState.FAIL) == 1
    narrowed = sweep.narrowed_space
    full_lr, lr = SPACE["lr"], narrowed["lr"]
    assert full_lr["low"] <= lr["low"] < lr["high"] <= full_lr["high"]
    assert math.log(lr["high"] / lr["low"]) < math.log(full_lr["high"] / full_lr["low"])
    best = min((t for t in trials[:-1]), key=lambda t: abs(math.log10(t.params["lr"]) + 1.5))
    assert lr["low"] <= best.params["lr"] <= lr["high"]
    stage2 = list(sweep.trials.filter(stage=2))
    assert len(stage2) == 3
    for t in stage2:
        assert t.run.config["epochs"] == 12
        assert all(inside(narrowed[k], v) for k, v in t.params.items())
    # A second call for an ended trial does nothing twice.
    assert sweeps.on_run_ended(trials[0].run_id) is False
    assert sweep.trials.count() == 11


def test_the_sweep_ends_with_its_best_run_after_stage_two(team_users):
    sweep = create(team_users, stage1_trials=2, stage2_trials=2)
    for i, t in enumerate(sweep.trials.all()):
        end(t, 1.0 + i)
    stage2 = list(Sweep.objects.get(pk=sweep.pk).trials.filter(stage=2).order_by("number"))
    end(stage2[0], 0.7)
    end(stage2[1], 0.5)
    sweep.refresh_from_db()
    assert sweep.state == Sweep.State.DONE and sweep.best_run_id == stage2[1].run_id
    assert "0.5" in sweep.stop_reason


def test_a_tell_that_fails_leaves_the_trial_running_and_the_catch_up_tells_it(team_users, monkeypatch):
    """The trial's claim and the study's tell commit together: a store error in the tell leaves the
    trial running (not "complete" in Runwise and running in the study), and the periodic catch-up
    tells it once the store answers again."""
    sweep = create(team_users, stage1_trials=2, stage2_trials=2)
    first = sweep.trials.order_by("number").first()
    real_tell = optuna.Study.tell

    def failing_tell(self, *args, **kwargs):
        raise optuna.exceptions.StorageInternalError("store unreachable")

    monkeypatch.setattr(optuna.Study, "tell", failing_tell)
    with pytest.raises(optuna.exceptions.StorageInternalError):
        end(first, 0.8)
    first.refresh_from_db()
    assert first.state == Trial.State.RUNNING and first.value is None
    assert sweeps.advance_pending() == 0  # the store still fails: logged, nothing lost, nothing raised
    first.refresh_from_db()
    assert first.state == Trial.State.RUNNING
    monkeypatch.setattr(optuna.Study, "tell", real_tell)
    assert sweeps.advance_pending() == 1
    first.refresh_from_db()
    assert first.state == Trial.State.COMPLETE and first.value == 0.8
    study = optuna.load_study(study_name=sweep.study_name(1), storage=sweeps.storage_url())
    assert {t.number: t.state for t in study.trials}[first.number] == optuna.trial.TrialState.COMPLETE


def test_a_best_value_on_the_border_of_its_range_is_flagged(team_users):
    sweep = create(team_users, stage1_trials=3)
    trials = list(sweep.trials.all())
    Trial.objects.filter(pk=trials[0].pk).update(params={**trials[0].params, "lr": 0.98, "dropout": 0.25,
                                                         "batch_size": 16})
    for i, t in enumerate(trials):
        end(t, 0.2 if i == 0 else 1.0 + i)
    data = sweeps.sweep_chart_data(Sweep.objects.get(pk=sweep.pk))
    assert data["params"]["lr"]["border"] == "high" and data["params"]["lr"]["log"] is True
    assert data["params"]["dropout"]["border"] == "" and data["params"]["dropout"]["log"] is False
    assert data["params"]["batch_size"]["border"] == "low"
    assert data["best"]["run_id"] == trials[0].run_id
    assert len(data["params"]["lr"]["points"]) == 3


@pytest.mark.parametrize("space, field", [
    ({"lr": {"low": 0, "high": 1, "log": True}}, "lr"),
    ({"lr": {"low": 1, "high": 0.1}}, "lr"),
    ({"optimizer": {"choices": [1]}}, "optimizer"),
    ({"batch_size": {"choices": [0, 8]}}, "batch_size"),
    ({"dropout": {"low": 0.0, "high": 1.0}}, "dropout"),
    ({}, "space"),
])
def test_a_bad_space_names_the_field_and_writes_nothing(team_users, space, field):
    with pytest.raises(ConfigError) as exc:
        sweeps.sweep_create(project=team_users["project"], owner=team_users["admin"], base_config=BASE, space=space)
    assert exc.value.field == field
    assert not Sweep.objects.exists() and not Run.objects.exists()


@pytest.mark.slow
def test_a_sweep_runs_both_stages_on_a_real_worker(celery_worker_process, team_users):
    """Real Celery worker, real training, real Optuna storage; the run-end hook is the periodic task."""
    import time

    from tracking.tuning_tasks import advance_tuning

    base = {"dataset": "wine", "optimizer": "sgd", "momentum": 0.9, "epochs": 4, "width": 16}
    sweep = sweeps.sweep_create(project=team_users["project"], owner=team_users["admin"], base_config=base,
                                space={"lr": {"low": 1e-3, "high": 0.3, "log": True}},
                                stage1_trials=2, stage1_epochs=1, stage2_trials=1, seed=5)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        advance_tuning()
        sweep.refresh_from_db()
        if sweep.state != Sweep.State.RUNNING:
            break
        time.sleep(0.3)
    assert sweep.state == Sweep.State.DONE, (sweep.stop_reason, celery_worker_process.log()[-2000:])
    trials = list(sweep.trials.select_related("run"))
    assert [t.stage for t in trials] == [1, 1, 2]
    assert all(t.state == Trial.State.COMPLETE and t.run.status == "succeeded" for t in trials)
    assert all(t.run.config["epochs"] == (1 if t.stage == 1 else 4) for t in trials)
    assert all(t.value == pytest.approx(t.run.best_val_loss) for t in trials)
    best = min(trials, key=lambda t: t.value)
    assert sweep.best_run_id == best.run_id
    study = optuna.load_study(study_name=sweep.study_name(2), storage=sweeps.storage_url())
    assert study.best_value == pytest.approx(min(t.value for t in trials if t.stage == 2))
