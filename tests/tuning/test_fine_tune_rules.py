"""The rules know a fine-tuning run: a lower LR when it overfits, unfreezing when frozen layers
hold the fit back; a plain run does not get these."""
import math

from tracking.config import apply_change, validate_config
from tracking.rules import REGISTRY, advise


def overfitting_curves(epochs=30, spe=10):
    train = [[s, 2.0 * math.exp(-s / 40) + 0.01] for s in range(epochs * spe)]
    val = [[e, 0.5 + 0.6 * (e - 10) ** 2 / 100 if e > 10 else 2.0 - 0.15 * e] for e in range(1, epochs + 1)]
    return {"train_loss": train, "val_loss": val}


def flat_high_curves(epochs=20, spe=10):
    """Both losses stuck near the untrained loss: the model cannot fit the data."""
    train = [[s, 2.25 + 0.03 * math.sin(s)] for s in range(epochs * spe)]
    val = [[e, 2.27 + 0.01 * math.sin(e)] for e in range(1, epochs + 1)]
    return {"train_loss": train, "val_loss": val}


def rules_for(config, metrics):
    answer = advise({"config": config, "metrics": metrics, "steps_per_epoch": 10, "status": "finished"})
    return {r["rule"]: r for r in answer["recommendations"]}, [d["id"] for d in answer["diagnoses"]]


def test_the_fine_tuning_rules_are_registered_as_named_units():
    assert {"overfitting.fine_tune_lower_lr", "unstable.fine_tune_lower_lr", "underfitting.unfreeze",
            "plateau.unfreeze"} <= set(REGISTRY)


def test_an_overfitting_fine_tuned_run_gets_a_lower_lr():
    config = validate_config({"lr": 0.03, "init_from_run": 7, "freeze_layers": 1, "epochs": 30})
    recs, diagnoses = rules_for(config, overfitting_curves())
    assert "overfitting" in diagnoses
    rec = recs["overfitting.fine_tune_lower_lr"]
    assert rec["change"] == {"lr": 0.009}
    assert apply_change(config, rec["change"])["init_from_run"] == 7
    plain, _ = rules_for(validate_config({"lr": 0.03, "epochs": 30}), overfitting_curves())
    assert "overfitting.fine_tune_lower_lr" not in plain


def test_frozen_layers_that_hold_the_fit_back_get_unfrozen():
    config = validate_config({"lr": 0.01, "init_from_run": 3, "freeze_layers": 2, "epochs": 20})
    recs, diagnoses = rules_for(config, flat_high_curves())
    unfreeze = [r for rule, r in recs.items() if rule.endswith(".unfreeze")]
    assert unfreeze, (diagnoses, list(recs))
    assert unfreeze[0]["change"] == {"freeze_layers": 0} and list(recs)[0] == "underfitting.unfreeze"
    assert apply_change(config, unfreeze[0]["change"])["freeze_layers"] == 0
    nothing_frozen, _ = rules_for(validate_config({"lr": 0.01, "epochs": 20}), flat_high_curves())
    assert not any(rule.endswith(".unfreeze") for rule in nothing_frozen)
