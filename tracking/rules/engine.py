"""`advise(run_input) -> answer`: the one function behind the command, the page and the email.

    from tracking.rules import advise
    answer = advise({"config": {...}, "metrics": {"train_loss": [[0, 2.3], ...]},
                     "steps_per_epoch": 23, "status": "finished"})
    answer["diagnoses"][0]["id"], answer["recommendations"][0]["change"]

Raises RunInputError (field, message) on input it cannot read.
"""
from __future__ import annotations

from .diagnoses import diagnose
from .features import compute_features
from .inputs import read_run_input
from .rules import explorations, recommend


def analyse(run_input: dict):
    """Features, diagnoses and recommendations as objects (for callers that want the facts)."""
    run = read_run_input(run_input)
    features = compute_features(run)
    diagnoses = diagnose(features)
    if diagnoses[0].id == "healthy":
        # no confident change: the fixes of the weak notes and knowledge-based explorations, each
        # with a confidence under 0.5 (abstaining: "no confident change" on the page)
        return features, diagnoses, _low_confidence(recommend(features, diagnoses, run.config)
                                                    + explorations(features, run.config))
    return features, diagnoses, recommend(features, diagnoses, run.config)


def _low_confidence(found: list, cap: float = 0.45) -> list:
    seen, out = set(), []
    for rec in sorted(found, key=lambda r: -r.confidence):
        key = repr(sorted(rec.change.items()))
        if key not in seen:
            seen.add(key)
            rec.confidence = min(rec.confidence, cap)
            out.append(rec)
    return out[:5]


def advise(run_input: dict) -> dict:
    """The advise contract's answer (DESIGN.md): diagnoses and recommendations, best first."""
    _, diagnoses, recommendations = analyse(run_input)
    return {"diagnoses": [d.as_dict() for d in diagnoses],
            "recommendations": [r.as_dict() for r in recommendations]}


def explore(run_input: dict) -> list[dict]:
    """Everything worth trying next on a run, best first, for a caller with trainings to spend (the
    autopilot): the engine's recommendations, the fixes of its weak notes (low confidence, which
    `advise` leaves out on a healthy run), then knowledge-based explorations (EXPLORATIONS: momentum
    for plain SGD, an annealed LR, SGD+momentum after Adam, more epochs when the best epoch is the
    last). Ordered by confidence; one entry per change. Not part of the advise answer."""
    run = read_run_input(run_input)
    features = compute_features(run)
    diagnoses = diagnose(features)
    found = recommend(features, diagnoses, run.config) + explorations(features, run.config)
    seen, out = set(), []
    for rec in sorted(found, key=lambda r: -r.confidence):
        key = repr(sorted(rec.change.items()))
        if key not in seen:
            seen.add(key)
            out.append(rec.as_dict())
    return out
