"""The labelled suite: real runs of the project's trainer (bench/make_advise_suite.py made them,
keeping a label only when its fix, retrained with the same seed, improved best val_loss)."""
import json
from collections import Counter
from pathlib import Path

import pytest

from tracking.config import apply_change
from tracking.rules import advise

SUITE_DIR = Path(__file__).resolve().parent.parent / "data" / "advise_suite"
SUITE = sorted(SUITE_DIR.glob("*.json"))
HELDOUT = sorted((SUITE_DIR / "heldout").glob("*.json"))  # made after the engine was written
LABELS = ("diverging", "unstable", "overfitting", "underfitting", "not_converged", "healthy")


def load(path):
    return json.loads(path.read_text())


def test_the_engine_agrees_with_at_least_90_percent_of_the_labels():
    assert len(KNOWN_DISAGREEMENTS) + len(NOT_IN_THE_CURVES) <= 0.10 * len(SUITE + HELDOUT)


def test_the_suite_has_six_or_more_cases_of_each_label_over_several_data_sets_and_optimizers():
    cases = [load(p) for p in SUITE]
    counts = Counter(c["label"] for c in cases)
    assert len(cases) >= 36
    for label in LABELS:
        assert counts[label] >= 6, counts
    assert len({c["meta"]["dataset"] for c in cases}) >= 5
    assert {c["meta"]["model"] for c in cases} == {"mlp", "cnn"}
    assert len({c["meta"]["optimizer"] for c in cases}) >= 4


# Runs where the engine reads two problems and ranks the label lower. Each is listed with why; the
# test still requires the label among the diagnoses. (The two held-out ones were found when the
# second held-out batch was measured, and left as they are rather than tuned away.)
KNOWN_DISAGREEMENTS = {
    "unstable__classif_mlp_adam_lr003": "val_loss rose 48% from epoch 5 while train_loss oscillated at Adam "
                                        "lr 0.03: overfitting and instability both; overfitting ranks first",
    "unstable__h_classif_mlp_adamw_lr004": "val_loss rose 81% from epoch 6 while train_loss fell smoothly: the "
                                           "curves are overfitting-shaped; the high LR is only the cause",
}


# Runs labelled from their config whose curves show no problem (issue 11: config priors rank changes,
# they never make a diagnosis the curves do not show). The engine abstains: healthy, no confident
# change; the label's fix is still among its low-confidence suggestions.
NOT_IN_THE_CURVES = {
    "underfitting__digits_cnn_wd": "weight decay 0.08 on a CNN: val_loss 0.558 at epoch 10 (7% above its best), "
                                   "train_loss 0.44 and still falling, no sign of a fit held back in the curves",
}


# Runs whose label the engine names first but whose cure it is not sure of: the curve's evidence is
# one that, on the development runs from elsewhere (bench/devset), made the cure a coin flip. The
# label's cure is still among the recommendations, under 0.5.
NOT_SURE = {
    "not_converged__h_spirals_mlp_sgd_slow": "val_loss fell by 13% of its level over the run's later epochs "
                                             "(0.999 -> 0.952 in the last three, after a plateau): 'train "
                                             "longer' at such a late gain helped 67 of 128 dev logger runs. "
                                             "Here 10x more epochs reach 0.015 and the first change, "
                                             "batch norm, 0.432 (+55%)",
}


@pytest.mark.parametrize("path", SUITE + HELDOUT, ids=[p.stem for p in SUITE + HELDOUT])
def test_the_first_diagnosis_is_the_label(path):
    case = load(path)
    answer = advise({k: case[k] for k in ("config", "metrics", "steps_per_epoch", "status")})
    if path.stem in NOT_IN_THE_CURVES:
        print(f"not in the curves: {path.stem}: {NOT_IN_THE_CURVES[path.stem]}")
        assert answer["diagnoses"][0]["id"] == "healthy"
        assert all(r["confidence"] < 0.5 for r in answer["recommendations"])
        assert any("weight_decay" in r["change"] for r in answer["recommendations"])
        return
    if path.stem in KNOWN_DISAGREEMENTS:
        print(f"known disagreement on {path.stem}: {KNOWN_DISAGREEMENTS[path.stem]}")
        assert case["label"] in [d["id"] for d in answer["diagnoses"][1:]], answer["diagnoses"]
    else:
        assert answer["diagnoses"][0]["id"] == case["label"], answer["diagnoses"]
    if case["label"] == "healthy":
        assert all(r["confidence"] < 0.5 for r in answer["recommendations"]), answer["recommendations"]
    elif path.stem in NOT_SURE:
        print(f"named, not sure of the cure: {path.stem}: {NOT_SURE[path.stem]}")
        assert all(r["confidence"] < 0.5 for r in answer["recommendations"]), answer["recommendations"]
        assert any(r["rule"] == "not_converged.train_longer" for r in answer["recommendations"])
    else:
        assert answer["recommendations"], "an unhealthy run gets a recommendation"
        assert answer["recommendations"][0]["confidence"] >= 0.5
    for rec in answer["recommendations"]:
        apply_change(case["config"], rec["change"])  # raises ConfigError if the change is invalid
