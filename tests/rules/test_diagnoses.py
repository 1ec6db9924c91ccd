"""The engine on hand-built curves: each textbook shape gets its diagnosis, with evidence."""
import numpy as np
import pytest

from tracking.rules import advise

from . import curves as c


def first(answer):
    return answer["diagnoses"][0]


def rules(answer):
    return [r["rule"] for r in answer["recommendations"]]


def test_it_calls_a_converged_run_healthy_and_recommends_nothing_confident():
    answer = advise(c.run(*c.healthy()))
    assert first(answer)["id"] == "healthy"
    assert all(r["confidence"] < 0.5 for r in answer["recommendations"])


def test_it_marks_overfitting_with_the_val_minimum_and_numbers():
    train, val = c.overfitting()
    answer = advise(c.run(train, val, config={"optimizer": "adam", "lr": 0.001, "epochs": 40}))
    d = first(answer)
    assert d["id"] == "overfitting"
    assert d["epochs"][0] == int(np.argmin(val)) + 1 and d["epochs"][1] == 40
    assert f"rose from its minimum {val.min():.3g} at epoch {int(np.argmin(val)) + 1} to {val[-1]:.3g}" in d["evidence"]
    assert "train_loss fell from" in d["evidence"]
    top = answer["recommendations"][0]
    assert top["diagnosis"] == "overfitting"
    assert top["change"] == {"weight_decay": 0.001}
    assert {"overfitting.add_dropout", "overfitting.augment", "overfitting.early_stop"} <= set(rules(answer))


def test_it_marks_overfitting_from_val_loss_alone():
    _, val = c.overfitting()
    answer = advise({"config": {}, "metrics": {"val_loss": c.epochs(val)}, "status": "finished"})
    assert first(answer)["id"] == "overfitting"


def test_it_marks_a_run_still_improving_as_not_converged_and_says_train_longer():
    train, val = c.not_converged()
    answer = advise(c.run(train, val, config={"optimizer": "adam", "lr": 0.001, "epochs": 20}))
    assert first(answer)["id"] == "not_converged"
    longer = [r for r in answer["recommendations"] if r["rule"] == "not_converged.train_longer"]
    assert longer and longer[0]["change"]["epochs"] == 200  # a straight line: no curvature seen, the 10x cap


def test_plain_sgd_that_has_not_converged_gets_momentum_first():
    train, val = c.not_converged()
    answer = advise(c.run(train, val, config={"optimizer": "sgd", "lr": 0.01, "momentum": 0.0, "epochs": 20}))
    assert answer["recommendations"][0]["change"] == {"momentum": 0.9}


def test_only_val_loss_still_falling_is_not_converged():
    _, val = c.not_converged()
    answer = advise({"config": {}, "metrics": {"val_loss": c.epochs(val)}})
    assert first(answer)["id"] == "not_converged"


def test_it_marks_oscillating_losses_as_unstable_and_lowers_the_lr():
    train, val = c.unstable()
    answer = advise(c.run(train, val, config={"optimizer": "sgd", "lr": 0.5, "momentum": 0.0, "epochs": 30}))
    assert first(answer)["id"] == "unstable"
    assert answer["recommendations"][0]["change"] == {"lr": 0.15}
    # far above SGD's usual range (an effective step of 5): lower it 10x (a run that needs 10x the
    # epochs to get as far at that LR ranks it below "train longer": tests/rules/test_runs_from_elsewhere.py)
    answer = advise(c.run(train, val, config={"optimizer": "sgd", "lr": 0.5, "momentum": 0.9, "epochs": 30}))
    assert [r["change"] for r in answer["recommendations"] if r["rule"] == "unstable.lower_lr"] == [{"lr": 0.05}]


def test_a_tiny_noisy_batch_gets_a_bigger_batch_among_the_fixes():
    train, val = c.unstable()
    answer = advise(c.run(train, val, config={"optimizer": "sgd", "lr": 0.5, "batch_size": 4, "epochs": 30}))
    grow = [r for r in answer["recommendations"] if r["rule"] == "unstable.grow_batch"]
    assert grow and grow[0]["change"] == {"batch_size": 16}


def test_it_marks_a_blown_up_loss_as_diverging_with_the_step_it_left_its_minimum():
    train, val = c.diverging()
    answer = advise(c.run(train, val, config={"optimizer": "sgd", "lr": 0.2, "momentum": 0.9, "epochs": 30}))
    d = first(answer)
    assert d["id"] == "diverging"
    assert d["epochs"][0] == 12 or d["epochs"][0] == 13
    assert answer["recommendations"][0]["rule"] == "diverging.lower_lr"
    assert answer["recommendations"][0]["change"]["lr"] < 0.2


def test_a_first_epoch_failure_with_nan_gets_a_lower_lr_and_warmup():
    run_input = {"config": {"optimizer": "sgd", "lr": 1.0, "epochs": 10},
                 "metrics": {"train_loss": [[0, 2.31], [1, 4.8], [2, 97.0], [3, "nan"], [4, "inf"]]},
                 "steps_per_epoch": 50, "status": "failed"}
    answer = advise(run_input)
    d = first(answer)
    assert d["id"] == "diverging" and d["epochs"] == [1, 1]
    assert "non-finite" in d["evidence"]
    assert answer["recommendations"][0]["change"] == {"lr": 0.1}
    assert "diverging.add_warmup" in rules(answer)


def test_a_first_epoch_failure_without_config_changes_the_project_default_lr():
    from tracking.config import DEFAULTS

    answer = advise({"config": {}, "metrics": {"train_loss": [[0, 2.3], [1, "nan"]]}, "status": "failed"})
    assert answer["recommendations"][0]["change"] == {"lr": round(DEFAULTS["lr"] * 0.1, 12)}


def test_it_marks_strong_regularisation_that_holds_the_loss_high_as_underfitting():
    train, val = c.underfitting()
    answer = advise(c.run(train, val, config={"optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
                                               "weight_decay": 0.1, "epochs": 30}))
    assert first(answer)["id"] == "underfitting"
    assert answer["recommendations"][0]["change"] == {"weight_decay": 0.01}


def test_a_noisy_plateau_at_constant_lr_gets_a_schedule():
    train, _ = c.plateau()
    answer = advise(c.run(train, None, config={"optimizer": "sgd", "lr": 0.05, "momentum": 0.9,
                                                "scheduler": "constant", "epochs": 40}))
    ids = [d["id"] for d in answer["diagnoses"]]
    assert "plateau" in ids
    changes = [r["change"] for r in answer["recommendations"] if r["diagnosis"] == "plateau"]
    assert {"scheduler": "cosine"} in changes and {"scheduler": "onecycle"} in changes


def test_a_run_in_progress_still_improving_is_not_a_finding():
    train, val = c.healthy(30)
    answer = advise(c.run(train[:10], val[:10], config={"optimizer": "adam", "lr": 0.001, "epochs": 30},
                          status="running"))
    assert first(answer)["id"] == "healthy"
    assert all(r["confidence"] < 0.5 for r in answer["recommendations"])


def test_a_run_in_progress_that_overfits_is_flagged_live():
    train, val = c.overfitting(40)
    answer = advise(c.run(train[:30], val[:30], config={"optimizer": "adam", "lr": 0.001, "epochs": 60},
                          status="running"))
    assert first(answer)["id"] == "overfitting"


def test_external_run_with_aliased_per_epoch_loss_and_no_steps_per_epoch():
    train, val = c.overfitting()
    answer = advise({"config": {"optimizer": "Adam", "lr": "0.001", "framework": "keras"},
                     "metrics": {"loss": c.epochs(train), "val_loss": c.epochs(val), "val_acc": c.epochs(1 - val / 3)}})
    assert first(answer)["id"] == "overfitting"


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_the_diagnosis_does_not_depend_on_the_loss_scale(scale):
    for shape, expected in ((c.overfitting, "overfitting"), (c.unstable, "unstable"),
                            (c.diverging, "diverging"), (c.not_converged, "not_converged"), (c.healthy, "healthy")):
        train, val = shape()
        answer = advise(c.run(train * scale, val * scale))
        assert first(answer)["id"] == expected, (shape.__name__, scale, answer["diagnoses"])


def test_ordering_reflects_confidence_best_first():
    train, val = c.overfitting()
    recs = advise(c.run(train, val))["recommendations"]
    confidences = [r["confidence"] for r in recs]
    assert confidences == sorted(confidences, reverse=True)


def _lr_and_loss(lr_of_step, loss_of_step, n):
    return {"lr": [[i, float(lr_of_step(i))] for i in range(n)],
            "train_loss": [[i, float(loss_of_step(i))] for i in range(n)]}


def test_a_loss_that_jumps_during_warm_up_is_blamed_on_the_peak_lr():
    n = 400  # 20 epochs of 20 steps; warm-up over the first 2 epochs to lr 1.0, where the loss blows up
    metrics = _lr_and_loss(lambda i: min(1.0, 0.01 + i / 40), lambda i: 2.3 * np.exp(-i / 20) + (0 if i < 30 else 0.5 * 1.08 ** min(i - 30, 60)), n)
    answer = advise({"config": {"optimizer": "sgd", "lr": 1.0, "warmup_epochs": 2, "epochs": 20},
                     "metrics": metrics, "steps_per_epoch": 20, "status": "finished"})
    d = first(answer)
    assert d["id"] == "diverging"
    assert "while the LR rose to 1" in d["evidence"]
    assert answer["recommendations"][0]["rule"] == "diverging.lower_lr"
    assert "diverging.add_warmup" not in rules(answer)


def test_the_evidence_says_when_the_loss_responded_to_an_lr_decay():
    n = 600  # step decay x0.1 at step 300 after a plateau; the loss drops 40% right after it
    metrics = _lr_and_loss(lambda i: 0.1 if i < 300 else 0.01,
                           lambda i: (0.5 + 1.8 * np.exp(-i / 30)) * (1 if i < 300 else 0.6), n)
    metrics["val_loss"] = [[e, float(np.mean([v for s, v in metrics["train_loss"] if (e - 1) * 20 <= s < e * 20]) * 1.05)]
                           for e in range(1, 31)]
    answer = advise({"config": {"optimizer": "sgd", "lr": 0.1, "scheduler": "step", "step_size": 15, "epochs": 30},
                     "metrics": metrics, "steps_per_epoch": 20, "status": "finished"})
    assert any("right after the LR decayed at step 30" in d["evidence"] or "when the LR decayed at step 30" in d["evidence"]
               for d in answer["diagnoses"]), answer["diagnoses"]


@pytest.mark.parametrize("rise", [0.3, 1.0, 2.5])
def test_a_val_loss_alone_that_climbs_back_gradually_is_overfitting_not_divergence(rise):
    """Another trainer's run with only val_loss: a U-shape whose rise stays below the first value
    (however far above its minimum) is overfitting first, and not underfitting."""
    e = np.arange(1, 41)
    val = 0.3 + 1.5 * np.exp(-e / 3) + rise * 0.3 * np.clip(e - 8, 0, None) ** 1.6 / 32 ** 1.6
    assert val[-1] < val[0]
    answer = advise({"config": {}, "metrics": {"val_loss": c.epochs(val)}, "status": "finished"})
    ids = [d["id"] for d in answer["diagnoses"] if d["severity"] >= 0.5]
    assert ids[0] == "overfitting"
    assert "underfitting" not in ids and "diverging" not in ids
    assert answer["recommendations"][0]["diagnosis"] == "overfitting"


def test_a_val_loss_alone_that_ends_above_where_it_started_is_still_diverging():
    e = np.arange(1, 31)
    val = 0.3 + 1.0 * np.exp(-e / 4) + 0.02 * np.clip(e - 10, 0, None) ** 1.5
    assert val[-1] > val[0]
    answer = advise({"config": {}, "metrics": {"val_loss": c.epochs(val)}, "status": "finished"})
    assert first(answer)["id"] == "diverging"


def test_a_loss_that_went_non_finite_counts_the_finite_steps_before_it_not_after():
    loss = [[s, 2.0 - s / 1000] for s in range(1000)]
    for s in range(600, 610):
        loss[s][1] = float("nan")  # NaN for 10 steps, then finite again
    answer = advise({"config": {}, "metrics": {"train_loss": loss}, "steps_per_epoch": 100})
    d = first(answer)
    assert d["id"] == "diverging"
    assert "became non-finite (NaN/inf) at epoch 7 after 600 finite steps" in d["evidence"]
