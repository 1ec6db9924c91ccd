"""The rules engine in the product: analyse a run from what is stored, store what it says, learn outcomes.

- `run_analyse(run_id, final)` reads the run's curves from its chart series (MetricSeries: at most
  ~2,000 points a metric, min/max-preserving downsampling that keeps every spike and non-finite
  point; never the full MLflow history, except once to rebuild the series of an ended run that
  has none), asks the engine (tracking.rules.advise), stores Run.analysis/analysed_at and replaces the run's NEW
  Recommendation rows (applied and dismissed ones are kept), ranked by a blend of the engine's
  confidence with the team's record for each rule. On a final analysis of a follow-up run it
  records whether the applied recommendation helped.
- `should_stop_early(run_id, history)` answers the worker's callback for config
  `stop_on_diagnosis`: a reason on a confident divergence or overfitting, else None.
- `analysis_enqueue(run_id=, final=)` sends the `tracking.tasks.analyse_run` task. An interim
  analysis is sent only when the run has none pending (Run.analysis_pending_at claimed by a
  conditional UPDATE; the task frees it when it starts), so a long run never queues more than
  one; `runs_missing_final_analysis()` lists the ended runs whose final analysis never ran (the
  broker was down when they ended, the task failed) for the beat task that catches them up.
"""
from __future__ import annotations

import logging
import math
from datetime import timedelta
from typing import Optional

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from .models import MetricSeries, Recommendation, Run
from .rules import RunInputError, advise, analyse

log = logging.getLogger(__name__)

CATCH_UP_BATCH = 100  # runs caught up per beat tick


def pending_stale() -> timedelta:
    """A pending analysis claimed this long ago lost its message: another may be claimed."""
    return timedelta(seconds=getattr(settings, "ANALYSIS_PENDING_STALE", 600))


def catch_up_after() -> timedelta:
    """An ended run without its final analysis this long after its end gets it sent again."""
    return timedelta(seconds=getattr(settings, "ANALYSIS_CATCH_UP_AFTER", 60))

PRIOR_WEIGHT = 4.0  # the engine's confidence counts as this many past outcomes
STOP_SEVERITY = 0.8
STOP_ON = ("diverging", "overfitting")
FINAL_STATUS = {Run.Status.SUCCEEDED: "finished", Run.Status.STOPPED: "finished",
                Run.Status.FAILED: "failed", Run.Status.DIVERGED: "failed"}


def run_input_for(run: Run) -> Optional[dict]:
    """The advise input of one of our runs, from what the database keeps: the curves from the
    run's chart series, config and steps per epoch from its row. None when it has no series yet.
    An ended run without any series (logged before series were kept, or series deleted) gets
    them rebuilt from MLflow once; MLflow is never read otherwise."""
    from .mlflow_io import metric_sources

    series = dict(MetricSeries.objects.filter(run=run).values_list("key", "points"))
    if not series and run.is_final() and run.mlflow_run_id:
        series = _rebuilt_series(run)
    if not series:
        return None
    return {"config": dict(run.config or {}),
            "metrics": {name: series[key] for name, key in metric_sources(series).items()},
            "steps_per_epoch": run.steps_per_epoch or None,
            "status": FINAL_STATUS.get(run.status, "running")}


def _rebuilt_series(run: Run) -> dict:
    from mlflow.exceptions import MlflowException

    from .series import series_rebuild

    try:
        series_rebuild(run)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise  # busy or out of reach: the task retries
        log.info("run %s: its MLflow run %s is gone", run.pk, run.mlflow_run_id)
        return {}
    return dict(MetricSeries.objects.filter(run=run).values_list("key", "points"))


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
    run_input = run_input_for(run)
    if run_input is None:
        log.info("run %s: nothing to analyse yet (no series)", run_id)
        return None
    try:
        answer = advise(run_input)
    except RunInputError as exc:
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


# ------------------------------------------------------------------ enqueueing, at most one pending

def analysis_claim(*, run_id: int, final: bool) -> bool:
    """Mark an analysis of the run as pending; False for an interim one when one is pending
    already (and not stale). A final analysis is always claimed: it must run."""
    now = timezone.now()
    runs = Run.objects.filter(pk=run_id)
    if not final:
        runs = runs.filter(Q(analysis_pending_at__isnull=True) | Q(analysis_pending_at__lt=now - pending_stale()))
    return runs.update(analysis_pending_at=now) == 1


def analysis_release(*, run_id: int) -> None:
    """The pending analysis has started (or was never sent): another one may be claimed."""
    Run.objects.filter(pk=run_id).update(analysis_pending_at=None)


def analysis_enqueue(*, run_id: int, final: bool) -> bool:
    """Send tracking.tasks.analyse_run for the run (interim ones only when none is pending).
    True when a task was sent; False when coalesced or the broker is out of reach (then the
    claim is released: the beat task catches a final analysis up)."""
    from kombu.exceptions import OperationalError

    from webapp.celery import app

    if not analysis_claim(run_id=run_id, final=final):
        return False
    try:
        app.send_task("tracking.tasks.analyse_run", args=[run_id], kwargs={"final": final}, queue="default",
                      retry=True, retry_policy={"max_retries": 1, "interval_start": 0.2})
    except (OperationalError, ConnectionError, OSError) as exc:
        analysis_release(run_id=run_id)
        log.warning("run %s: analysis not enqueued (broker unreachable: %s)", run_id, exc)
        return False
    return True


def analysis_finished(*, run_id: int) -> None:
    """The run's final analysis (and its email) is done."""
    Run.objects.filter(pk=run_id, final_analysed_at__isnull=True).update(final_analysed_at=timezone.now())


def runs_missing_final_analysis(limit: int = CATCH_UP_BATCH) -> list[int]:
    """Runs (LR range tests aside) that ended over ANALYSIS_CATCH_UP_AFTER ago without a final
    analysis, and with none pending (or a pending one whose message was lost), oldest first."""
    now = timezone.now()
    return list(Run.objects.filter(
        status__in=Run.FINAL, final_analysed_at__isnull=True, finished_at__lt=now - catch_up_after(),
    ).exclude(kind=Run.Kind.LR_FIND).filter(Q(analysis_pending_at__isnull=True) | Q(analysis_pending_at__lt=now - pending_stale()))
        .order_by("finished_at").values_list("pk", flat=True)[:limit])
