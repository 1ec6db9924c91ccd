"""Email volume: the runs of a sweep (or an autopilot) send no email of their own; the sweep sends
one, with its best run and that run's recommendation, over real SMTP, under the subject every run
email has. A user who asks for every run of sweeps and autopilots still gets each."""
import pytest
from django.utils import timezone

from tests.email.conftest import ANALYSIS
from tracking import sweeps
from tracking.config import validate_config
from tracking.models import NotificationSetting, Recommendation, Run, Trial
from tracking.notifications import notify_run_ended

pytestmark = pytest.mark.django_db


def end_stage(sweep, stage, losses, capture):
    """The stage's runs end, analysed (the best with the overfitting analysis), and are told."""
    trials = list(sweep.trials.filter(stage=stage).order_by("number"))
    for trial, loss in zip(trials, losses):
        Run.objects.filter(pk=trial.run_id).update(status="succeeded", best_val_loss=loss, finished_at=timezone.now(),
                                                   analysis=ANALYSIS, analysed_at=timezone.now())
        for rank, rec in enumerate(ANALYSIS["recommendations"]):
            Recommendation.objects.create(run_id=trial.run_id, rank=rank, **rec)
        with capture(execute=True):
            notify_run_ended(trial.run_id)
            sweeps.on_run_ended(trial.run_id)
    return trials


def test_a_sweep_sends_one_email_with_its_best_run_and_its_recommendation(
        team_users, smtp_server, eager_tasks, django_capture_on_commit_callbacks):
    alice = team_users["admin"]
    with django_capture_on_commit_callbacks(execute=True):
        sweep = sweeps.sweep_create(project=team_users["project"], owner=alice,
                                    base_config=validate_config({"dataset": "digits", "epochs": 3}),
                                    space={"lr": {"low": 1e-3, "high": 1, "log": True}}, stage1_trials=4)
    end_stage(sweep, 1, [0.9, 0.7, 0.8, 0.95], django_capture_on_commit_callbacks)
    sweep.refresh_from_db()
    assert sweep.stage == 2
    trials = end_stage(sweep, 2, [0.5, 0.6, 0.65], django_capture_on_commit_callbacks)
    sweep.refresh_from_db()
    assert sweep.state == "done"

    mails = smtp_server.inbox.wait_for(2, timeout=10)
    assert sorted(m["to"][0] for m in mails) == ["alice@example.com", "bob@example.com"]  # one each, no more
    best = Run.objects.get(pk=trials[0].run_id)
    msg = mails[0]["msg"]
    assert msg["Subject"].strip() == f"[vision] {best.name}: overfitting, raise weight_decay to 5e-4"
    body = msg.get_content()
    assert f"Sweep {sweep.name} ended: best val_loss 0.5" in body
    assert "7 trials in 2 stage(s)" in body and f"Best run: {best.name}, best val_loss 0.5" in body
    assert "Recommendation: raise weight_decay to 5e-4 (confidence 70%)" in body
    assert f"/recommendations/{best.recommendations.first().pk}/apply/" in body


def test_a_user_who_asks_for_every_run_of_sweeps_gets_each(
        team_users, smtp_server, eager_tasks, django_capture_on_commit_callbacks):
    alice, bob = team_users["admin"], team_users["member"]
    NotificationSetting.objects.create(user=bob, project=team_users["project"], mode=NotificationSetting.EVERY_RUN,
                                       include_tuning_runs=True)
    with django_capture_on_commit_callbacks(execute=True):
        sweep = sweeps.sweep_create(project=team_users["project"], owner=alice,
                                    base_config=validate_config({"dataset": "digits", "epochs": 3}),
                                    space={"lr": {"low": 1e-3, "high": 1, "log": True}}, stage1_trials=2)
    end_stage(sweep, 1, [0.9, 0.7], django_capture_on_commit_callbacks)
    mails = smtp_server.inbox.wait_for(2, timeout=10)
    assert [m["to"] for m in mails] == [["bob@example.com"], ["bob@example.com"]]  # alice (the owner): none
    assert Trial.objects.filter(sweep=sweep, stage=2).exists()  # stage 2 started: the sweep goes on, no summary yet
