"""What the engine offers a caller with trainings to spend (the autopilot): `explore` lists the
recommendations, the fixes of weak notes and knowledge-based explorations; the size of an LR or
weight-decay change follows the evidence and the usual ranges."""
import pytest

from tracking.rules import advise, explore

from . import curves as c


def rules(recs):
    return [r["rule"] for r in recs]


def test_a_healthy_plain_sgd_run_gets_no_confident_recommendation_but_explorations():
    run = c.run(*c.healthy(), config={"optimizer": "sgd", "lr": 0.01, "momentum": 0.0, "epochs": 30})
    recs = advise(run)["recommendations"]
    assert recs and all(r["confidence"] < 0.5 for r in recs)  # no confident change, only guesses
    found = explore(run)
    assert found and all(r["confidence"] < 0.5 for r in found)
    by_rule = {r["rule"]: r["change"] for r in found}
    assert by_rule["explore.sgd_momentum"] == {"momentum": 0.9}
    # one cycle peaking at 3x the stable LR (Smith: the base is 1/3 to 1/4 of the max)
    assert by_rule["explore.anneal_lr"] == {"scheduler": "onecycle", "lr": 0.03}
    assert "explore.adam_to_sgd" not in by_rule
    assert rules(found).index("explore.sgd_momentum") < rules(found).index("explore.anneal_lr")


def test_an_adam_run_is_explored_with_cosine_and_sgd_momentum_and_no_lr_peak_past_the_usual_range():
    run = c.run(*c.healthy(), config={"optimizer": "adam", "lr": 0.001, "epochs": 30})
    by_rule = {r["rule"]: r["change"] for r in explore(run)}
    assert by_rule["explore.anneal_lr"] == {"scheduler": "cosine"}
    assert by_rule["explore.adam_to_sgd"]["optimizer"] == "sgd" and by_rule["explore.adam_to_sgd"]["momentum"] == 0.9
    assert "explore.sgd_momentum" not in by_rule
    fast = c.run(*c.healthy(), config={"optimizer": "sgd", "lr": 0.2, "momentum": 0.9, "epochs": 30})
    assert {r["rule"]: r["change"] for r in explore(fast)}["explore.anneal_lr"] == {"scheduler": "onecycle"}


def test_an_unhealthy_run_lists_the_engines_recommendations_first_then_explorations():
    run = c.run(*c.overfitting(), config={"optimizer": "adam", "lr": 0.001, "epochs": 40})
    recs = [r for r in advise(run)["recommendations"] if r["confidence"] >= 0.5]
    found = explore(run)
    assert recs and rules(found)[:len(recs)] == rules(recs)
    assert any(r.startswith("explore.") for r in rules(found)[len(recs):])
    assert [r["confidence"] for r in found] == sorted((r["confidence"] for r in found), reverse=True)
    assert len({repr(sorted(r["change"].items())) for r in found}) == len(found), "one entry per change"


def test_the_lr_raise_follows_the_evidence():
    train, val = c.not_converged()  # a straight line: far from converging
    far_low = advise(c.run(train, val, config={"optimizer": "sgd", "lr": 1e-4, "momentum": 0.0, "epochs": 20}))
    change = {r["rule"]: r["change"] for r in far_low["recommendations"]}["not_converged.raise_lr"]
    assert change == {"lr": 0.1}, "far below the usual range and still straight: the middle of the range"
    usual = advise(c.run(train, val, config={"optimizer": "sgd", "lr": 0.003, "momentum": 0.9, "epochs": 20}))
    change = {r["rule"]: r["change"] for r in usual["recommendations"]}["not_converged.raise_lr"]
    assert change == {"lr": pytest.approx(0.03)}, "a straight descent: an order of magnitude"


@pytest.mark.parametrize("wd, expected", [(1.0, 0.01), (0.05, 0.005), (0.003, 0.0003)])
def test_weight_decay_far_above_the_usual_range_is_lowered_into_it_at_once(wd, expected):
    train, val = c.underfitting()
    answer = advise(c.run(train, val, config={"optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
                                              "weight_decay": wd, "epochs": 30}))
    change = {r["rule"]: r["change"] for r in answer["recommendations"]}["underfitting.lower_weight_decay"]
    assert change == {"weight_decay": pytest.approx(expected)}
