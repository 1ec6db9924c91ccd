"""The autopilot spends its rounds: once the best run has no recommendation left, it goes on with
the engine's explorations of that run's curves (weak notes' fixes, knowledge-based changes), and
stops for want of a change only when those are used up or the curves cannot be read."""
import pytest
from django.utils import timezone

from tests.rules import curves as c
from tests.rules.mlflow_helpers import log_run
from tracking import autopilot
from tracking.config import validate_config
from tracking.models import Autopilot, Recommendation, Run


def test_offline_loop_explores_once_the_recommendations_are_used_up():
    losses = {0.1: 1.0, 0.05: 0.8}  # momentum 0.9 (at lr 0.05): 0.9, worse; one cycle: 0.7

    def train(config):
        if config["scheduler"] == "onecycle":
            return {"best_val_loss": 0.7}
        return {"best_val_loss": losses.get(config["lr"], 0.9 if config["momentum"] else 1.2)}

    def advise(config, trained):  # only the start has a recommendation
        return {"recommendations": [{"rule": "a", "change": {"lr": 0.05}}] if config["lr"] == 0.1 else []}

    def explore(config, trained):
        return [{"rule": "explore.sgd_momentum", "change": {"momentum": 0.9}},
                {"rule": "explore.anneal_lr", "change": {"scheduler": "onecycle"}}]

    start = validate_config({"lr": 0.1})
    without = autopilot.run_offline(start, train=train, advise=advise, max_rounds=3)
    assert [r.rule for r in without.rounds] == ["a"] and without.stop_reason == "no recommendation left to try"
    out = autopilot.run_offline(start, train=train, advise=advise, explore=explore, max_rounds=3)
    assert [r.rule for r in out.rounds] == ["a", "explore.sgd_momentum", "explore.anneal_lr"]
    # the worse momentum round is not built on: the anneal is tried from the best run (round 1's)
    assert [r.parent for r in out.rounds] == [0, 1, 1] and out.rounds[1].improved is False
    assert out.best_val_loss == 0.7 and out.stop_reason == "used its 3 rounds" and out.trainings == 4


@pytest.mark.django_db
def test_a_healthy_run_is_tuned_with_an_exploration_stored_as_an_applied_recommendation(team_users):
    train, val = c.healthy(30)
    config = {"dataset": "digits", "optimizer": "sgd", "lr": 0.01, "momentum": 0.0, "epochs": 30}
    mlflow_id = log_run(params=config, tags={"steps_per_epoch": c.SPE},
                        metrics={"train_loss": c.steps_from_epochs(train), "train_loss_epoch": c.epochs(train),
                                 "val_loss": c.epochs(val)})
    start = Run.objects.create(project=team_users["project"], owner=team_users["admin"], name="healthy",
                               config=validate_config(config), status="succeeded", best_val_loss=0.12,
                               analysed_at=timezone.now(), mlflow_run_id=mlflow_id, steps_per_epoch=c.SPE)
    pilot = autopilot.autopilot_start(run=start, owner=team_users["admin"], max_rounds=2)
    assert pilot.state == Autopilot.State.RUNNING, pilot.stop_reason
    run = pilot.current_run
    rec = Recommendation.objects.get(pk=run.applied_recommendation_id)
    assert rec is not None and rec.run == start and rec.rule.startswith("explore.")
    assert rec.state == Recommendation.State.APPLIED and rec.confidence < 0.5
    assert all(run.config[k] == v for k, v in rec.change.items())
    assert pilot.rounds.get().rule == rec.rule
    # The round's run improved, so it is the best, but it has no curves to read: nothing to explore
    # there. The start's next exploration still fits (it changes settings round 1 left alone): it is
    # carried over to round 1's config, stored as a recommendation of round 1.
    Run.objects.filter(pk=run.pk).update(status="succeeded", best_val_loss=0.1, analysed_at=timezone.now())
    autopilot.on_run_analysed(run.pk)
    pilot.refresh_from_db()
    assert pilot.state == Autopilot.State.RUNNING, pilot.stop_reason
    second = pilot.current_run
    carried = Recommendation.objects.get(pk=second.applied_recommendation_id)
    assert carried.run_id == run.pk and carried.rule.startswith("explore.") and carried.rule != rec.rule
    assert not set(carried.change) & set(rec.change)  # not a setting round 1 changed
    assert second.parent_id == run.pk and all(second.config[k] == v for k, v in carried.change.items())
    assert all(second.config[k] == v for k, v in rec.change.items())  # round 1's change kept
    Run.objects.filter(pk=second.pk).update(status="succeeded", best_val_loss=0.11, analysed_at=timezone.now())
    autopilot.on_run_analysed(second.pk)
    pilot.refresh_from_db()
    assert pilot.state == Autopilot.State.DONE and pilot.stop_reason == "used its 2 rounds"


def test_with_nothing_left_on_the_best_run_it_carries_over_what_its_ancestors_still_had_to_try():
    """The start had two fixes; the first helped and left the best run with none. The second is
    applied to the best config, unless it changes a setting the first already changed."""
    def train(config):
        return {"best_val_loss": 1.0 - 0.2 * (config["weight_decay"] > 0) - 0.1 * (config["dropout"] > 0)
                - 0.05 * (config["lr"] != 0.1)}

    def advise(config, trained):
        if config["weight_decay"] == 0:
            return {"recommendations": [{"rule": "wd", "change": {"weight_decay": 1e-3}},
                                        {"rule": "lr", "change": {"lr": 0.05, "weight_decay": 1e-4}},
                                        {"rule": "dropout", "change": {"dropout": 0.3}}]}
        return {"recommendations": []}

    out = autopilot.run_offline(validate_config({"lr": 0.1}), train=train, advise=advise, max_rounds=3)
    # round 2: the start's "lr" touches weight decay, which round 1 set: skipped; "dropout" carried over
    assert [r.rule for r in out.rounds] == ["wd", "dropout"] and [r.parent for r in out.rounds] == [0, 1]
    assert out.best_config["weight_decay"] == 1e-3 and out.best_config["dropout"] == 0.3
    assert out.best_val_loss == pytest.approx(0.7) and out.stop_reason == "no recommendation left to try"
