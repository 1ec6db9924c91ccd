"""The rules engine in the product: analyse a run from MLflow, store what it says, learn outcomes.

- `run_analyse(run_id, final)` reads the run's curves from MLflow (tracking.mlflow_io), asks the
  engine (tracking.rules.advise), stores Run.analysis/analysed_at and replaces the run's NEW
  Recommendation rows (applied and dismissed ones are kept), ranked by a blend of the engine's
  confidence with the team's record for each rule. On a final analysis of a follow-up run it
  records whether the applied recommendation helped.
- `should_stop_early(run_id, history)` answers the worker's callback for config
  `stop_on_diagnosis`: a reason on a confident divergence or overfitting, else None.
"""
from __future__ import annotations

import logging
import math
from typing import Optional

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from .models import Recommendation, Run
from .rules import RunInputError, advise, analyse

log = logging.getLogger(__name__)

PRIOR_WEIGHT = 4.0  # the engine's confidence counts as this many past outcomes
STOP_SEVERITY = 0.8
STOP_ON = ("diverging", "overfitting")
FINAL_STATUS = {Run.Status.SUCCEEDED: "finished", Run.Status.STOPPED: "finished",
                Run.Status.FAILED: "failed", Run.Status.DIVERGED: "failed"}


def run_input_for(run: Run) -> dict:
    """The advise input of a run: curves from MLflow, config from our row (params as a fallback)."""
    from .mlflow_io import read_run

    data = read_run(run.mlflow_run_id, tracking_uri=settings.MLFLOW_TRACKING_URI)
    data["config"] = {**data["config"], **(run.config or {})}
    data["steps_per_epoch"] = data.get("steps_per_epoch") or run.steps_per_epoch or None
    data["status"] = FINAL_STATUS.get(run.status, "running")
    return data


def team_records(team_id: int, rules) -> dict[str, tuple[int, int]]:
    """rule -> (helped, tried): outcomes of this team's applied recommendations of each rule."""
    rows = (Recommendation.objects.filter(run__project__team_id=team_id, rule__in=list(rules), helped__isnull=False)
            .values("rule").annotate(tried=Count("id"), helped=Count("id", filter=Q(helped=True))))
    return {r["rule"]: (r["helped"], r["tried"]) for r in rows}


def blended_score(confidence: float, helped: int, tried: int) -> float:
    """A Beta-Bernoulli blend: the engine's confidence is the prior mean, worth PRIOR_WEIGHT outcomes."""
    return (confidence * PRIOR_WEIGHT + helped) / (PRIOR_WEIGHT + tried)


def rank(recommendations: list[dict], records: dict) -> list[dict]:
    scored = [(blended_score(r["confidence"], *records.get(r["rule"], (0, 0))), i, r)
              for i, r in enumerate(recommendations)]
    return [r for _, _, r in sorted(scored, key=lambda t: (-t[0], t[1]))]


def _store(run: Run, answer: dict) -> None:
    records = team_records(run.project.team_id, [r["rule"] for r in answer["recommendations"]])
    ranked = rank(answer["recommendations"], records)
    with transaction.atomic():
        Run.objects.filter(pk=run.pk).update(analysis=answer, analysed_at=timezone.now())
        # NEW rows are replaced; a rule recommended again keeps its row (and the pk an email links to)
        run.recommendations.filter(state=Recommendation.State.NEW).exclude(
            rule__in=[r["rule"] for r in ranked]).delete()
        existing = {r.rule: r for r in run.recommendations.select_for_update()}
        position = 0
        for rec in ranked:
            fields = dict(diagnosis=rec["diagnosis"], change=rec["change"], rationale=rec["rationale"],
                          confidence=rec["confidence"], rank=position)
            row = existing.get(rec["rule"])
            if row is None:
                Recommendation.objects.create(run=run, rule=rec["rule"], **fields)
            elif row.state == Recommendation.State.NEW:
                Recommendation.objects.filter(pk=row.pk).update(**fields)
            else:  # applied or dismissed: kept as it was
                continue
            position += 1


def _finite(x) -> Optional[float]:
    return x if isinstance(x, (int, float)) and math.isfinite(x) else None


def record_outcome(run: Run) -> Optional[bool]:
    """When a follow-up run that applied a recommendation ends: did its best val_loss beat its parent's?"""
    rec = run.applied_recommendation
    if rec is None or not run.is_final():
        return None
    parent_best, best = _finite(rec.run.best_val_loss), _finite(run.best_val_loss)
    helped = best is not None and (parent_best is None or best < parent_best)
    Recommendation.objects.filter(pk=rec.pk).update(helped=helped)
    return helped


def run_analyse(run_id: int, final: bool = False) -> Optional[dict]:
    """Analyse the run and store the answer; None when there is nothing to analyse yet."""
    run = Run.objects.select_related("project", "applied_recommendation__run").filter(pk=run_id).first()
    if run is None or not run.mlflow_run_id:
        return None
    from .mlflow_io import RunNotFound

    try:
        answer = advise(run_input_for(run))
    except (RunInputError, RunNotFound) as exc:
        log.info("run %s: nothing to analyse (%s)", run_id, exc)
        return None
    _store(run, answer)
    if final:
        record_outcome(run)
    return answer


def should_stop_early(run_id: int, history: dict) -> Optional[str]:
    """For config stop_on_diagnosis: the reason to stop now (a confident divergence or overfitting), or None.
    `history` is the trainer's {metric: [(step, value), ...]}; nothing is read from MLflow."""
    run = Run.objects.filter(pk=run_id).only("config", "steps_per_epoch").first()
    if run is None:
        return None
    metrics = {k: [[s, v] for s, v in points] for k, points in history.items() if points}
    try:
        features, diagnoses, _ = analyse({"config": run.config, "metrics": metrics, "status": "running",
                                          "steps_per_epoch": run.steps_per_epoch or None})
    except RunInputError:
        return None
    top = diagnoses[0]
    if top.id not in STOP_ON or top.severity < STOP_SEVERITY:
        return None
    planned = features.planned_epochs or 0
    if top.facts.get("collapsed") and features.n < max(5, 0.3 * planned):
        return None  # some runs sit at the untrained loss for a while before they take off: wait
    return f"{top.id}: {top.evidence}"
