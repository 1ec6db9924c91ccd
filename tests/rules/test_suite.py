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


def test_the_engine_agrees_with_at_least_95_percent_of_the_labels():
    assert len(KNOWN_DISAGREEMENTS) <= 0.05 * len(SUITE)


def test_the_suite_has_six_or_more_cases_of_each_label_over_several_data_sets_and_optimizers():
    cases = [load(p) for p in SUITE]
    counts = Counter(c["label"] for c in cases)
    assert len(cases) >= 36
    for label in LABELS:
        assert counts[label] >= 6, counts
    assert len({c["meta"]["dataset"] for c in cases}) >= 5
    assert {c["meta"]["model"] for c in cases} == {"mlp", "cnn"}
    assert len({c["meta"]["optimizer"] for c in cases}) >= 4


# Runs where the engine reads two problems and ranks the label second. Each is listed with why;
# the test still requires the label to be a finding (severity >= 0.5) right behind the first.
KNOWN_DISAGREEMENTS = {
    "unstable__classif_mlp_adam_lr003": "val_loss rose 48% from epoch 5 while train_loss oscillated at Adam "
                                        "lr 0.03: overfitting and instability both; overfitting ranks first",
}


@pytest.mark.parametrize("path", SUITE + HELDOUT, ids=[p.stem for p in SUITE + HELDOUT])
def test_the_first_diagnosis_is_the_label(path):
    case = load(path)
    answer = advise({k: case[k] for k in ("config", "metrics", "steps_per_epoch", "status")})
    if path.stem in KNOWN_DISAGREEMENTS:
        print(f"known disagreement on {path.stem}: {KNOWN_DISAGREEMENTS[path.stem]}")
        second = answer["diagnoses"][1]
        assert second["id"] == case["label"] and second["severity"] >= 0.5, answer["diagnoses"]
    else:
        assert answer["diagnoses"][0]["id"] == case["label"], answer["diagnoses"]
    if case["label"] == "healthy":
        assert all(r["confidence"] < 0.5 for r in answer["recommendations"]), answer["recommendations"]
    else:
        assert answer["recommendations"], "an unhealthy run gets a recommendation"
        assert answer["recommendations"][0]["confidence"] >= 0.5
    for rec in answer["recommendations"]:
        apply_change(case["config"], rec["change"])  # raises ConfigError if the change is invalid
