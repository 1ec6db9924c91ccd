""""Stop sweep": the sweep is marked stopped, its running trial runs are asked to stop, its queued
ones end at once, the study hears of each (PRUNED), and no trial is asked after; a second stop,
a GET, a POST without CSRF token and an outsider change nothing. Also: OPTUNA_STORAGE is the
storage the sweeps use. One slow test does it on a real Celery worker."""
import optuna
import pytest
from django.test import Client
from django.utils import timezone

from tracking import sweeps
from tracking.models import Run, Sweep, Trial

pytestmark = pytest.mark.django_db

BASE = {"dataset": "digits", "optimizer": "sgd", "epochs": 6, "momentum": 0.9}
SPACE = {"lr": {"low": 1e-3, "high": 1.0, "log": True}}
PRUNED, COMPLETE = optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.COMPLETE


@pytest.fixture
def sweep(team_users):
    """Four stage-1 trials: one ended and told, one training, two still queued."""
    sweep = sweeps.sweep_create(project=team_users["project"], owner=team_users["admin"], base_config=BASE,
                                space=SPACE, stage1_trials=4, stage2_trials=2, seed=3)
    first, second = sweep.trials.order_by("number")[:2]
    Run.objects.filter(pk=first.run_id).update(status=Run.Status.SUCCEEDED, best_val_loss=0.8,
                                               finished_at=timezone.now())
    assert sweeps.on_run_ended(first.run_id) is True
    Run.objects.filter(pk=second.run_id).update(status=Run.Status.RUNNING, started_at=timezone.now())
    return sweep


def trial_runs(sweep):
    return [t.run for t in sweep.trials.select_related("run").order_by("number")]


def study_states(sweep, stage=1):
    study = optuna.load_study(study_name=sweep.study_name(stage), storage=sweeps.storage_url())
    return {t.number: t.state for t in study.trials}


def test_stopping_a_running_sweep_stops_its_runs_and_asks_no_further_trial(client, team_users, sweep):
    client.force_login(team_users["member"])
    response = client.post(f"/sweeps/{sweep.pk}/stop/", follow=True)
    assert response.status_code == 200 and "Sweep stopped" in response.content.decode()
    sweep.refresh_from_db()
    assert sweep.state == Sweep.State.STOPPED and sweep.stop_reason == "stopped by bob"
    assert sweep.finished_at is not None
    done, training, *queued = trial_runs(sweep)
    assert sweep.best_run_id == done.pk  # the best trial so far
    assert done.status == Run.Status.SUCCEEDED and not done.stop_requested
    assert training.status == Run.Status.RUNNING and training.stop_requested  # the worker stops it
    assert all(r.status == Run.Status.STOPPED and r.finished_at for r in queued)  # no worker will train them
    trials = list(sweep.trials.order_by("number"))
    assert [t.state for t in trials] == ["complete", "running", "stopped", "stopped"]
    states = study_states(sweep)
    assert states[trials[0].number] == COMPLETE
    assert states[trials[2].number] == states[trials[3].number] == PRUNED
    # The page shows the stopped state and its reason, and no Stop button any more.
    html = response.content.decode()
    assert "status-stopped" in html and "stopped by bob" in html and "sweep-stop-form" not in html

    # The worker ends the training run: the study hears of it, and nothing new is asked (no stage 2).
    Run.objects.filter(pk=training.pk).update(status=Run.Status.STOPPED, finished_at=timezone.now(),
                                              best_val_loss=0.5)
    assert sweeps.on_run_ended(training.pk) is True
    assert sweeps.advance_pending() == 0 and sweeps.advance(sweep.pk) == Sweep.State.STOPPED
    sweep.refresh_from_db()
    assert sweep.stage == 1 and sweep.trials.count() == 4 and Run.objects.count() == 4
    assert Trial.objects.get(run=training).state == Trial.State.STOPPED
    assert list(study_states(sweep).values()).count(PRUNED) == 3
    assert sweep.study_name(2) not in [s.study_name for s in optuna.get_all_study_summaries(sweeps.storage_url())]

    # The team's run history lists those runs as stopped.
    history = client.get(f"/projects/{team_users['project'].pk}/", {"status": "stopped"})
    assert history.status_code == 200
    listed = history.content.decode()
    assert listed.count('class="status status-stopped"') == 3 and done.name not in listed
    assert all(r.name in listed for r in (training, *queued))


def test_a_stop_while_the_study_store_fails_still_stops_and_the_catch_up_tells_the_study(
        client, team_users, sweep, monkeypatch):
    real_tell = optuna.Study.tell

    def failing_tell(self, *args, **kwargs):
        raise optuna.exceptions.StorageInternalError("store unreachable")

    monkeypatch.setattr(optuna.Study, "tell", failing_tell)
    client.force_login(team_users["member"])
    response = client.post(f"/sweeps/{sweep.pk}/stop/", follow=True)
    assert response.status_code == 200 and "Sweep stopped" in response.content.decode()
    done, training, *queued = trial_runs(sweep)
    assert all(r.status == Run.Status.STOPPED for r in queued) and training.stop_requested
    trials = list(sweep.trials.order_by("number"))
    assert [t.state for t in trials] == ["complete", "running", "running", "running"]  # not told yet
    monkeypatch.setattr(optuna.Study, "tell", real_tell)
    assert sweeps.advance_pending() == 2
    assert [t.state for t in sweep.trials.order_by("number")] == ["complete", "running", "stopped", "stopped"]
    states = study_states(sweep)
    assert states[trials[2].number] == states[trials[3].number] == PRUNED


def test_the_running_sweep_page_offers_a_stop_button_posting_with_csrf(client, team_users, sweep):
    client.force_login(team_users["admin"])
    html = client.get(f"/sweeps/{sweep.pk}/").content.decode()
    assert 'id="sweep-stop-form"' in html and f'action="/sweeps/{sweep.pk}/stop/"' in html
    assert "csrfmiddlewaretoken" in html and "Stop sweep" in html


def test_a_second_stop_says_the_sweep_has_ended_and_changes_nothing(client, team_users, sweep):
    client.force_login(team_users["admin"])
    client.post(f"/sweeps/{sweep.pk}/stop/")
    before = Sweep.objects.filter(pk=sweep.pk).values().get(), list(Run.objects.order_by("pk").values())
    response = client.post(f"/sweeps/{sweep.pk}/stop/", follow=True)
    assert response.status_code == 200
    assert "already ended (stopped); nothing was changed" in response.content.decode()
    assert (Sweep.objects.filter(pk=sweep.pk).values().get(), list(Run.objects.order_by("pk").values())) == before
    assert Sweep.objects.get(pk=sweep.pk).stop_reason == "stopped by alice"


def test_stopping_a_finished_sweep_changes_nothing(team_users):
    sweep = sweeps.sweep_create(project=team_users["project"], owner=team_users["admin"], base_config=BASE,
                                space=SPACE, stage1_trials=2, stage2_trials=1)
    for t in sweep.trials.all():
        Run.objects.filter(pk=t.run_id).update(status=Run.Status.FAILED)
        sweeps.on_run_ended(t.run_id)
    sweep.refresh_from_db()
    assert sweep.state == Sweep.State.FAILED
    assert sweeps.sweep_stop(sweep=sweep, user=team_users["member"]) is False
    sweep.refresh_from_db()
    assert sweep.state == Sweep.State.FAILED and sweep.stop_reason == "every stage-1 trial failed"


def test_an_outsider_gets_404_and_changes_nothing(client, team_users, sweep):
    client.force_login(team_users["outsider"])
    assert client.post(f"/sweeps/{sweep.pk}/stop/").status_code == 404
    assert client.post("/sweeps/999999/stop/").status_code == 404
    assert Sweep.objects.get(pk=sweep.pk).state == Sweep.State.RUNNING
    assert not Run.objects.filter(stop_requested=True).exists()


def test_a_get_or_a_post_without_csrf_token_changes_nothing(client, team_users, sweep):
    client.force_login(team_users["member"])
    assert client.get(f"/sweeps/{sweep.pk}/stop/").status_code == 405
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(team_users["member"])
    assert strict.post(f"/sweeps/{sweep.pk}/stop/").status_code == 403
    anonymous = Client()
    assert anonymous.post(f"/sweeps/{sweep.pk}/stop/").status_code == 302  # to the login page
    assert Sweep.objects.get(pk=sweep.pk).state == Sweep.State.RUNNING
    assert not Run.objects.filter(stop_requested=True).exists()
    assert Run.objects.filter(status=Run.Status.QUEUED).count() == 2


def test_optuna_storage_setting_is_the_storage_sweeps_use(settings, tmp_path, team_users):
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    settings.OPTUNA_STORAGE = url
    assert sweeps.storage_url() == url
    sweep = sweeps.sweep_create(project=team_users["project"], owner=team_users["admin"], base_config=BASE,
                                space=SPACE, stage1_trials=2)
    study = optuna.load_study(study_name=sweep.study_name(1), storage=url)
    assert sorted(t.number for t in study.trials) == sorted(sweep.trials.values_list("number", flat=True))
    settings.OPTUNA_STORAGE = ""  # empty: the SQLite file under VAR_DIR
    assert sweeps.storage_url() == f"sqlite:///{settings.VAR_DIR / 'optuna.db'}"


@pytest.mark.slow
def test_stop_on_a_real_worker_stops_the_training_trial_and_the_queued_one(celery_worker_process, client, team_users):
    """Real Celery worker (solo: one trial trains, the next waits): stage 1 is two 1-epoch trials,
    stage 2 two long ones; the stop comes while the first stage-2 trial trains."""
    from tests.waiting import wait_for
    from tracking.tuning_tasks import advance_tuning

    sweep = sweeps.sweep_create(project=team_users["project"], owner=team_users["admin"],
                                base_config={"dataset": "digits", "optimizer": "sgd", "momentum": 0.9, "epochs": 5000},
                                space={"lr": {"low": 1e-3, "high": 0.1, "log": True}},
                                stage1_trials=2, stage1_epochs=1, stage2_trials=2, seed=7)

    def training_in_stage_2():
        advance_tuning()
        return Run.objects.filter(trial__sweep=sweep, trial__stage=2, status=Run.Status.RUNNING, epoch__gte=1).first()

    training = wait_for(training_in_stage_2, 120, "a stage-2 trial training", log=celery_worker_process.log)
    client.force_login(team_users["admin"])
    assert client.post(f"/sweeps/{sweep.pk}/stop/").status_code == 302
    stage2 = Run.objects.filter(trial__sweep=sweep, trial__stage=2)

    def all_told():
        advance_tuning()  # the periodic catch-up, as beat runs it
        return not stage2.exclude(status__in=Run.FINAL).exists() and not sweep.trials.filter(
            state=Trial.State.RUNNING).exists()

    wait_for(all_told, 30, "the stage-2 runs ended and told", log=celery_worker_process.log)
    sweep.refresh_from_db()
    assert sweep.state == Sweep.State.STOPPED and sweep.stop_reason == "stopped by alice"
    assert [r.status for r in stage2.order_by("pk")] == ["stopped", "stopped"]
    training.refresh_from_db()
    assert training.epoch < 5000 and "request" in training.status_reason
    assert sorted(sweep.trials.values_list("stage", "state")) == [(1, "complete"), (1, "complete"),
                                                                   (2, "stopped"), (2, "stopped")]
    assert list(study_states(sweep, 2).values()) == [PRUNED, PRUNED]
    advance_tuning()
    assert sweep.trials.count() == 4 and Run.objects.filter(trial__sweep=sweep).count() == 4
