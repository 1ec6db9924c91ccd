"""bench/devset's counterfactual scoring on hand-built runs (no surrogate model, no training)."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from devset import lcbench, scoring  # noqa: E402
from devset.scoring import Case  # noqa: E402


def case(name, base, candidates, rec=None, rec_best=None, part="dev"):
    return Case(source="hand", part=part, name=name, regime="x", base=base, candidates=candidates, rec=rec,
                rec_best=rec_best)


def rec(conf):
    return {"rule": "r", "change": {"lr": 0.1}, "confidence": conf}


# base 1.0; "a" helps (0.9 = 10%), "b" does not (0.99 = 1%), "c" hurts
PROBLEM = {"a": 0.9, "b": 0.99, "c": 1.5}
TUNED = {"a": 0.995, "b": 1.01, "c": None}


def test_a_run_has_a_problem_only_when_a_candidate_improves_it_by_2_percent():
    assert case("p", 1.0, PROBLEM).problem
    assert not case("t", 1.0, TUNED).problem
    assert not case("edge", 1.0, {"a": 0.981}).problem and case("edge", 1.0, {"a": 0.98}).problem


def test_the_top_change_helped_no_help_not_applicable_or_none():
    assert case("h", 1.0, PROBLEM, rec(0.8), 0.95).status == "helped"
    assert case("n", 1.0, PROBLEM, rec(0.8), 0.99).status == "no help"
    assert case("na", 1.0, PROBLEM, rec(0.8), None).status == "n/a"
    assert case("none", 1.0, PROBLEM).status == "none"
    assert case("nan", 1.0, PROBLEM, rec(0.8), float("nan")).gain(float("nan")) == -1.0


def test_the_figures_of_a_hand_built_part():
    cases = [
        case("p1", 1.0, PROBLEM, rec(0.9), 0.9),  # hit, confident
        case("p2", 1.0, PROBLEM, rec(0.6), 1.2),  # miss, confident
        case("p3", 1.0, PROBLEM, rec(0.3), None),  # n/a: a miss, not confident
        case("p4", 1.0, PROBLEM),  # no recommendation: a miss
        case("t1", 1.0, TUNED, rec(0.7), 1.05),  # false alarm
        case("t2", 1.0, TUNED, rec(0.4), 1.05),  # not confident: no alarm
        case("t3", 1.0, TUNED, rec(0.8), None),  # confident n/a on a tuned run: an alarm (it did not help)
        case("t4", 1.0, TUNED),  # quiet
    ]
    s = scoring.summarise(cases)
    assert (s["problems"], s["tuned"]) == (4, 4)
    assert (s["hits"], s["hit_rate"]) == (1, 0.25)
    assert (s["no_rec_on_problems"], s["na_on_problems"], s["na_all"]) == (1, 1, 2)
    assert (s["false_alarms"], s["false_alarm_rate"]) == (2, 0.5)
    assert (s["confident"], s["confident_helped"]) == (4, 1)
    rows = {r["bin"]: (r["count"], r["helped"]) for r in s["reliability"]}
    assert rows == {(0.0, 0.25): (0, 0), (0.25, 0.5): (2, 0), (0.5, 0.75): (2, 0), (0.75, 1.0): (2, 1)}
    # the engine's gain on problems: +10%, -20%, 0 (n/a applies nothing), 0 (nothing recommended)
    assert s["engine_mean_gain"] == pytest.approx((0.1 - 0.2) / 4)
    assert s["oracle_mean_gain"] == pytest.approx(0.1)
    # every problem run: "a" helps, so the best fixed change is "a" with 100%; random: 1 of 3 helps
    assert s["best_fixed"]["name"] == "a" and s["best_fixed"]["hit_rate"] == 1.0
    assert 0.0 < s["random"]["hit_rate"] < 1.0
    lines = scoring.report("hand dev", cases)
    assert lines[0].startswith("== hand dev: 8 runs, 4 with a problem, 4 tuned/healthy")


def test_the_random_baseline_draws_only_expressible_changes_and_repeats():
    only_one = [case("p", 1.0, {"good": 0.5, "na": None})]
    assert scoring.random_baseline(only_one)["hit_rate"] == 1.0
    cases = [case(f"p{i}", 1.0, PROBLEM) for i in range(20)]
    assert scoring.random_baseline(cases) == scoring.random_baseline(cases)
    assert 0.2 < scoring.random_baseline(cases)["hit_rate"] < 0.5  # expected 1/3


BOUNDS = {"batch_size": (16, 512), "learning_rate": (1e-4, 0.1), "momentum": (0.1, 0.99),
          "weight_decay": (1e-5, 0.1), "num_layers": (1, 5), "max_units": (64, 1024), "max_dropout": (0.0, 1.0)}
CFG = {"batch_size": 64, "learning_rate": 0.01, "momentum": 0.9, "weight_decay": 0.01, "num_layers": 3,
       "max_units": 256, "max_dropout": 0.2}


def test_lcbench_maps_engine_keys_to_surrogate_inputs():
    new, patience, why = lcbench.apply_change(BOUNDS, CFG, {"lr": 0.003, "dropout": 0.4, "batch_size": 128})
    assert new == {**CFG, "learning_rate": 0.003, "max_dropout": 0.4, "batch_size": 128} and not why
    assert lcbench.apply_change(BOUNDS, CFG, {"weight_decay": 0.0})[0]["weight_decay"] == lcbench.WD_OFF
    assert lcbench.apply_change(BOUNDS, CFG, {"early_stopping_patience": 5})[:2] == (CFG, 5)
    assert lcbench.apply_change(BOUNDS, CFG, {"scheduler": "cosine", "optimizer": "sgd"})[0] == CFG


@pytest.mark.parametrize("change", [{"optimizer": "adam", "lr": 0.001}, {"epochs": 100}, {"scheduler": "onecycle"},
                                    {"lr": 0.3}, {"momentum": 0.0}, {"batch_norm": True}, {"warmup_epochs": 5.0}])
def test_lcbench_changes_it_cannot_express_are_not_applicable(change):
    new, _, why = lcbench.apply_change(BOUNDS, CFG, change)
    assert new is None and why


def test_early_stopping_keeps_the_best_val_loss_before_the_stop():
    ce = np.array([1.0, 0.8, 0.85, 0.9, 0.95, 0.7])
    assert lcbench.early_stopped_best(ce, 3) == 0.8
    assert lcbench.early_stopped_best(ce, 5) == 0.7


def test_the_advisor_sees_what_an_lcbench_run_logs():
    ce, acc = np.linspace(1.0, 0.5, 50), np.linspace(0.5, 0.9, 50)
    run = lcbench.run_input(CFG, ce, acc)
    assert run["config"]["scheduler"] == "cosine" and run["config"]["epochs"] == 50
    assert run["metrics"]["val_loss"][0] == [1, 1.0] and len(run["metrics"]["val_accuracy"]) == 50
    assert run["metrics"]["lr"][0] == [0, 0.01] and run["metrics"]["lr"][-1][1] < 0.0001
    assert "lr" not in lcbench.run_input(CFG, ce, acc, with_lr=False)["metrics"]


def test_the_held_out_tasks_are_a_fixed_third_of_the_development_tasks():
    assert len(lcbench.DEV_TASKS) == 24 and len(lcbench.HELD_OUT) == 8
    assert set(lcbench.HELD_OUT) <= set(lcbench.DEV_TASKS)
