"""The engine in the product: runs analysed from a real MLflow store, recommendations stored and
ranked with the team's record, outcomes of follow-up runs, the early-stop answer, the Celery task."""
import time

import pytest

from tracking.analysis import blended_score, run_analyse, should_stop_early
from tracking.models import Recommendation, Run

from . import curves as c
from .mlflow_helpers import log_run

CONFIG = {"dataset": "digits", "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "epochs": 40}


def logged_overfitting_run():
    train, val = c.overfitting(40)
    return log_run(params=CONFIG, tags={"steps_per_epoch": c.SPE},
                   metrics={"train_loss": c.steps_from_epochs(train), "train_loss_epoch": c.epochs(train),
                            "val_loss": c.epochs(val)})


def make_run(team_users, mlflow_run_id="", status=Run.Status.SUCCEEDED, **kw):
    from tracking.config import validate_config

    return Run.objects.create(project=team_users["project"], owner=team_users["member"], name="r",
                              config=validate_config(CONFIG), status=status, mlflow_run_id=mlflow_run_id,
                              steps_per_epoch=c.SPE, **kw)


def test_a_finished_run_is_analysed_and_its_recommendations_stored_in_rank_order(team_users):
    run = make_run(team_users, logged_overfitting_run())
    answer = run_analyse(run.pk, final=True)
    run.refresh_from_db()
    assert run.analysis == answer and run.analysed_at is not None
    assert run.analysis["diagnoses"][0]["id"] == "overfitting"
    recs = list(run.recommendations.all())
    assert [r.rule for r in recs] == [r["rule"] for r in answer["recommendations"]]
    assert [r.rank for r in recs] == list(range(len(recs)))
    assert recs[0].change == {"weight_decay": 0.001} and all(r.state == "new" for r in recs)


def test_a_new_analysis_replaces_new_recommendations_but_keeps_applied_and_dismissed(team_users):
    run = make_run(team_users, logged_overfitting_run())
    run_analyse(run.pk)
    first, second = run.recommendations.all()[:2]
    Recommendation.objects.filter(pk=first.pk).update(state="applied")
    Recommendation.objects.filter(pk=second.pk).update(state="dismissed")
    run_analyse(run.pk, final=True)
    run.refresh_from_db()
    states = dict(run.recommendations.values_list("rule", "state"))
    assert states[first.rule] == "applied" and states[second.rule] == "dismissed"
    assert Recommendation.objects.filter(pk__in=[first.pk, second.pk]).count() == 2
    assert sum(1 for s in states.values() if s == "new") == len(run.analysis["recommendations"]) - 2


def test_a_run_without_mlflow_run_or_metrics_is_not_analysed(team_users):
    assert run_analyse(make_run(team_users).pk) is None
    empty = make_run(team_users, log_run(params=CONFIG, metrics={}))
    assert run_analyse(empty.pk) is None
    empty.refresh_from_db()
    assert empty.analysed_at is None


def test_a_follow_up_run_records_whether_its_recommendation_helped(team_users):
    parent = make_run(team_users, logged_overfitting_run(), best_val_loss=0.30)
    run_analyse(parent.pk, final=True)
    rec = parent.recommendations.first()
    better = make_run(team_users, logged_overfitting_run(), best_val_loss=0.21, parent=parent,
                      applied_recommendation=rec)
    run_analyse(better.pk, final=True)
    rec.refresh_from_db()
    assert rec.helped is True
    worse = make_run(team_users, logged_overfitting_run(), best_val_loss=0.35, parent=parent,
                     applied_recommendation=rec)
    run_analyse(worse.pk, final=True)
    rec.refresh_from_db()
    assert rec.helped is False
    assert rec.team_record() == (0, 1)


def test_the_team_record_of_a_rule_reorders_the_recommendations(team_users):
    mlflow_id = logged_overfitting_run()
    first = make_run(team_users, mlflow_id)
    run_analyse(first.pk)
    top = first.recommendations.first()
    assert top.rule == "overfitting.raise_weight_decay"
    for i in range(6):  # in this team, raising weight decay never helped
        past = make_run(team_users, mlflow_id)
        Recommendation.objects.create(run=past, rule=top.rule, diagnosis="overfitting", change=top.change,
                                      rationale="", confidence=0.7, state="applied", helped=False)
    second = make_run(team_users, mlflow_id)
    run_analyse(second.pk)
    ranked = list(second.recommendations.values_list("rule", flat=True))
    assert ranked[0] != top.rule and top.rule in ranked
    assert second.recommendations.get(rule=top.rule).team_record() == (0, 6)
    # another team's record does not count
    assert blended_score(0.7, 0, 6) < blended_score(0.6, 0, 0) < blended_score(0.6, 6, 6)


def test_should_stop_early_on_a_confident_divergence_but_not_on_a_healthy_run(team_users):
    run = make_run(team_users, status=Run.Status.RUNNING)
    train, val = c.diverging(30)
    history = {"train_loss": [(i, float(v)) for i, v in c.steps_from_epochs(train)],
               "val_loss": [(e, float(v)) for e, v in c.epochs(val)]}
    reason = should_stop_early(run.pk, history)
    assert reason and reason.startswith("diverging")
    train, val = c.healthy(15)
    assert should_stop_early(run.pk, {"train_loss_epoch": c.epochs(train), "val_loss": c.epochs(val)}) is None


def test_should_stop_early_on_a_confident_overfitting(team_users):
    run = make_run(team_users, status=Run.Status.RUNNING)
    train, val = c.overfitting(40)
    reason = should_stop_early(run.pk, {"train_loss_epoch": c.epochs(train[:35]), "val_loss": c.epochs(val[:35])})
    assert reason and reason.startswith("overfitting") and "rose" in reason


def test_a_nan_history_from_the_trainer_is_read(team_users):
    run = make_run(team_users, status=Run.Status.RUNNING)
    history = {"train_loss": [(0, 2.3), (1, 40.0), (2, float("nan"))], "val_loss": []}
    assert should_stop_early(run.pk, history).startswith("diverging")


@pytest.mark.slow
def test_the_worker_runs_the_analyse_run_task_by_name(celery_worker_process, team_users):
    from webapp.celery import app

    run = make_run(team_users, logged_overfitting_run())
    app.send_task("tracking.tasks.analyse_run", args=[run.pk], kwargs={"final": True}, queue="default")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.analysed_at:
            break
        time.sleep(0.2)
    assert run.analysed_at is not None, celery_worker_process.log()[-2000:]
    assert run.analysis["diagnoses"][0]["id"] == "overfitting"
    assert run.recommendations.count() == len(run.analysis["recommendations"])


def test_a_repeated_analysis_keeps_the_rows_an_email_links_to(team_users):
    run = make_run(team_users, logged_overfitting_run())
    run_analyse(run.pk)
    before = dict(run.recommendations.values_list("rule", "pk"))
    run_analyse(run.pk, final=True)
    assert dict(run.recommendations.values_list("rule", "pk")) == before


def test_a_run_stuck_at_its_untrained_loss_early_on_is_given_time(team_users):
    from tracking.config import validate_config

    run = Run.objects.create(project=team_users["project"], owner=team_users["member"], name="stuck",
                             config=validate_config({**CONFIG, "lr": 2.0, "epochs": 40}),
                             status=Run.Status.RUNNING, steps_per_epoch=c.SPE)
    flat = [2.3] * 40
    assert should_stop_early(run.pk, {"train_loss_epoch": c.epochs(flat[:4]), "val_loss": c.epochs(flat[:4])}) is None
    reason = should_stop_early(run.pk, {"train_loss_epoch": c.epochs(flat[:15]), "val_loss": c.epochs(flat[:15])})
    assert reason and reason.startswith("diverging") and "never fell" in reason
