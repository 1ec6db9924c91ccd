"""Autopilot: rounds of advise -> apply the first recommendation -> train -> compare; it stops on
no recommendation or on two rounds without improvement, and emails the team at the end."""
import pytest
from django.utils import timezone

from tracking import autopilot
from tracking.config import validate_config
from tracking.models import Autopilot, Recommendation, Run

pytestmark = pytest.mark.django_db


def trained(team_users, val_loss, config=None, name="start"):
    return Run.objects.create(project=team_users["project"], owner=team_users["admin"], name=name,
                              config=validate_config(config or {"lr": 1.0}), status="succeeded",
                              best_val_loss=val_loss, analysed_at=timezone.now())


def recommend(run, *changes):
    for rank, (rule, change) in enumerate(changes):
        Recommendation.objects.create(run=run, rule=rule, diagnosis="x", change=change, rationale="r",
                                      confidence=0.8, rank=rank)


def finish_round(pilot, val_loss, *changes):
    """The round's run ends with this val_loss and these recommendations; the hook advances."""
    pilot.refresh_from_db()
    run = pilot.current_run
    Run.objects.filter(pk=run.pk).update(status="succeeded", best_val_loss=val_loss, analysed_at=timezone.now())
    recommend(run, *changes)
    autopilot.on_run_analysed(run.pk)
    pilot.refresh_from_db()
    return run


def test_a_round_applies_the_first_recommendation_to_the_best_run(team_users):
    start = trained(team_users, 2.0)
    recommend(start, ("diverging.lower_lr", {"lr": 0.1}), ("other", {"batch_size": 64}))
    pilot = autopilot.autopilot_start(run=start, owner=team_users["admin"])
    run = pilot.current_run
    assert run.parent == start and run.config["lr"] == 0.1 and run.config["batch_size"] == 32
    assert run.applied_recommendation.rule == "diverging.lower_lr"
    assert run.status == Run.Status.QUEUED
    assert Recommendation.objects.get(run=start, rule="diverging.lower_lr").state == "applied"


def test_it_waits_for_the_start_run_to_be_analysed(team_users):
    start = trained(team_users, None)
    Run.objects.filter(pk=start.pk).update(status="running", analysed_at=None)
    start.refresh_from_db()
    pilot = autopilot.autopilot_start(run=start, owner=team_users["admin"])
    assert pilot.current_run is None and pilot.rounds.count() == 0
    Run.objects.filter(pk=start.pk).update(status="succeeded", best_val_loss=1.5, analysed_at=timezone.now())
    recommend(start, ("a", {"lr": 0.5}))
    autopilot.on_run_analysed(start.pk)
    pilot.refresh_from_db()
    assert pilot.current_run.config["lr"] == 0.5 and pilot.best_val_loss == 1.5


def test_it_stops_when_there_is_no_recommendation(team_users, mailoutbox):
    start = trained(team_users, 2.0)
    recommend(start, ("a", {"lr": 0.1}))
    pilot = autopilot.autopilot_start(run=start, owner=team_users["admin"])
    finish_round(pilot, 1.0)  # improved, but its analysis recommends nothing
    assert pilot.state == Autopilot.State.DONE and "no recommendation" in pilot.stop_reason
    assert pilot.best_val_loss == 1.0 and pilot.rounds.get().improved is True
    assert Recommendation.objects.get(run=start, rule="a").helped is True


def test_it_stops_after_two_rounds_without_improvement_and_retries_from_the_best(team_users):
    start = trained(team_users, 1.0)
    recommend(start, ("a", {"lr": 0.5}), ("b", {"lr": 0.2}), ("c", {"lr": 0.05}))
    pilot = autopilot.autopilot_start(run=start, owner=team_users["admin"])
    first = finish_round(pilot, 1.2, ("x", {"batch_size": 8}))   # worse
    assert pilot.state == Autopilot.State.RUNNING
    # The next round starts again from the best run (the start), with its next recommendation.
    assert pilot.current_run.parent == start and pilot.current_run.config["lr"] == 0.2
    finish_round(pilot, 1.0, ("y", {"batch_size": 8}))  # equal: no improvement
    assert pilot.state == Autopilot.State.DONE and pilot.stop_reason == "no improvement in 2 rounds"
    assert pilot.best_run == start and pilot.rounds.count() == 2
    assert not Run.objects.filter(parent=first).exists()


def test_it_uses_at_most_its_rounds_and_builds_a_lineage_tree(team_users, mailoutbox):
    start = trained(team_users, 2.0)
    recommend(start, ("a", {"lr": 0.5}))
    pilot = autopilot.autopilot_start(run=start, owner=team_users["admin"], max_rounds=3)
    finish_round(pilot, 1.5, ("b", {"lr": 0.2}), ("b2", {"lr": 0.3}))
    finish_round(pilot, 1.6, ("c", {"lr": 0.1}))          # worse: round 3 is b2 from round 1's run
    finish_round(pilot, 1.2, ("d", {"lr": 0.05}))
    assert pilot.state == Autopilot.State.DONE and pilot.stop_reason == "used its 3 rounds"
    assert pilot.best_val_loss == 1.2
    tree = autopilot.lineage(pilot)
    assert tree["run_id"] == start.pk and len(tree["children"]) == 1
    round1 = tree["children"][0]
    assert round1["rule"] == "a" and round1["best_val_loss"] == 1.5 and round1["improved"] is True
    assert [(c["round"], c["rule"]) for c in round1["children"]] == [(2, "b"), (3, "b2")]
    assert [c["best_val_loss"] for c in round1["children"]] == [1.6, 1.2]


def test_the_team_gets_one_email_when_it_ends(team_users, mailoutbox, django_capture_on_commit_callbacks):
    start = trained(team_users, 2.0)
    recommend(start, ("a", {"lr": 0.1}))
    pilot = autopilot.autopilot_start(run=start, owner=team_users["admin"])
    with django_capture_on_commit_callbacks(execute=True):
        best = finish_round(pilot, 1.0)
        autopilot.finish(pilot, "again")  # a second end does nothing
    assert sorted(m.to[0] for m in mailoutbox) == ["alice@example.com", "bob@example.com"]
    body = mailoutbox[0].body
    # The subject of every run email, for the best run: "[project] run name: diagnosis, change".
    assert mailoutbox[0].subject == f"[vision] {best.name}: succeeded, no change recommended"
    assert "ended: no recommendation" in body and "Round 1: a (lr=0.1)" in body and "1" in body
    assert "eve@example.com" not in [m.to[0] for m in mailoutbox]


def test_offline_loop_with_the_real_engine_improves_a_far_too_low_lr():
    """The same loop on plain functions: train with workers.engine.fit, advise with a tiny rule."""
    import torch

    from workers.engine import fit

    torch.set_num_threads(1)

    def train(config):
        r = fit(config)
        return {"best_val_loss": r.best_val_loss}

    def advise(config, result):
        return {"recommendations": [{"rule": "raise_lr", "change": {"lr": config["lr"] * 10}}]}

    start = validate_config({"dataset": "wine", "lr": 1e-5, "epochs": 3, "width": 16})
    out = autopilot.run_offline(start, train=train, advise=advise, max_rounds=3)
    assert out.trainings == 4 and len(out.rounds) == 3
    assert all(r.improved for r in out.rounds)
    assert out.best_config["lr"] == pytest.approx(1e-2)
    assert out.best_val_loss < out.rounds[0].val_loss


def test_the_periodic_task_advances_a_round_whose_hook_was_missed_and_only_once(team_users):
    from tracking.tuning_tasks import advance_tuning

    start = trained(team_users, 2.0)
    recommend(start, ("a", {"lr": 0.1}), ("b", {"lr": 0.3}))
    pilot = autopilot.autopilot_start(run=start, owner=team_users["admin"])
    round1 = pilot.current_run
    assert advance_tuning() == {"trials": 0, "autopilots": 0}  # still training
    Run.objects.filter(pk=round1.pk).update(status="succeeded", best_val_loss=2.5, analysed_at=timezone.now())
    assert advance_tuning()["autopilots"] == 1
    pilot.refresh_from_db()
    assert pilot.rounds.count() == 2 and pilot.current_run.config["lr"] == 0.3
    assert advance_tuning()["autopilots"] == 0 and pilot.rounds.count() == 2


def test_a_config_already_trained_in_the_lineage_is_reused_not_retrained(team_users):
    """The first recommendation was applied by hand already (same config, same seed): the round
    takes that run's result and the next round starts from it, without training it again."""
    from tracking.config import apply_change

    start = trained(team_users, 2.0)
    recommend(start, ("a", {"lr": 0.1}), ("b", {"batch_size": 64}))
    by_hand = Run.objects.create(project=start.project, owner=team_users["member"], name="lr 0.1 by hand",
                                 config=apply_change(start.config, {"lr": 0.1}), parent=start, status="succeeded",
                                 best_val_loss=1.2, analysed_at=timezone.now(), finished_at=timezone.now())
    recommend(by_hand, ("c", {"weight_decay": 1e-4}))
    before = Run.objects.count()

    pilot = autopilot.autopilot_start(run=start, owner=team_users["admin"])

    round1, round2 = pilot.rounds.all()
    assert round1.run == by_hand and round1.improved is True and round1.rule == "a"
    assert pilot.best_run == by_hand and pilot.best_val_loss == 1.2
    assert round2.parent_run == by_hand and round2.rule == "c"  # goes on from the reused run
    assert Run.objects.count() == before + 1  # only round 2's run is new
    new = pilot.current_run
    assert new == round2.run and new.status == Run.Status.QUEUED and new.config["weight_decay"] == 1e-4
    assert new.config["lr"] == 0.1


def test_a_twin_with_another_seed_is_trained(team_users):
    from tracking.config import apply_change

    start = trained(team_users, 2.0)
    recommend(start, ("a", {"lr": 0.1}))
    Run.objects.create(project=start.project, owner=team_users["member"], name="other seed",
                       config=apply_change(start.config, {"lr": 0.1, "seed": 7}), parent=start, status="succeeded",
                       best_val_loss=1.2, analysed_at=timezone.now())
    pilot = autopilot.autopilot_start(run=start, owner=team_users["admin"])
    assert pilot.current_run.status == Run.Status.QUEUED and pilot.current_run.config["seed"] == start.config["seed"]


def test_a_recommendation_applied_with_the_apply_button_is_not_trained_again(team_users):
    """Issue 14's case: Apply clicked by hand (the service behind the button), trained; then Tune
    this run: round 1 is that run, not a retraining of the same config and seed."""
    from tracking.services import recommendation_apply

    start = trained(team_users, 2.0, {"dataset": "digits", "optimizer": "sgd", "lr": 0.001, "epochs": 5})
    recommend(start, ("not_converged.raise_lr", {"lr": 0.01}), ("b", {"batch_size": 64}))
    by_hand = recommendation_apply(rec=start.recommendations.get(rank=0), user=team_users["member"])
    Run.objects.filter(pk=by_hand.pk).update(status="succeeded", best_val_loss=1.1, analysed_at=timezone.now(),
                                             finished_at=timezone.now())
    before = Run.objects.count()

    pilot = autopilot.autopilot_start(run=start, owner=team_users["admin"], max_rounds=1)

    pilot.refresh_from_db()
    [round1] = pilot.rounds.all()
    assert round1.run_id == by_hand.pk and round1.rule == "not_converged.raise_lr" and round1.improved is True
    assert Run.objects.count() == before  # nothing trained again
    assert pilot.state == Autopilot.State.DONE and pilot.best_run_id == by_hand.pk
