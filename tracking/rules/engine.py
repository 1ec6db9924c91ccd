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
from .rules import recommend


def analyse(run_input: dict):
    """Features, diagnoses and recommendations as objects (for callers that want the facts)."""
    run = read_run_input(run_input)
    features = compute_features(run)
    diagnoses = diagnose(features)
    if diagnoses[0].id == "healthy":  # weak notes are listed, but a healthy run gets no recommendation
        return features, diagnoses, []
    return features, diagnoses, recommend(features, diagnoses, run.config)


def advise(run_input: dict) -> dict:
    """The advise contract's answer (DESIGN.md): diagnoses and recommendations, best first."""
    _, diagnoses, recommendations = analyse(run_input)
    return {"diagnoses": [d.as_dict() for d in diagnoses],
            "recommendations": [r.as_dict() for r in recommendations]}
