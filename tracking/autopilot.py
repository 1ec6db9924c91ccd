"""Autopilot, "Tune this run": rounds of advise -> apply the first recommendation -> train ->
compare, up to `max_rounds` (4). It stops early when the best run has nothing left to try, or
when two rounds in a row did not improve the best val_loss. The team gets an email when it ends.

Rounds are not wasted: when the best run has no confident recommendation left (it is healthy, or
its fixes were tried), the autopilot goes on with `tracking.rules.explore` on its curves: the
fixes of its weak notes (low confidence) and knowledge-based explorations (momentum for plain
SGD, an annealed LR, SGD+momentum after Adam, more epochs when the best epoch is the last). When
those are exhausted too, it carries over what its ancestors (the runs it descends from in this
autopilot, nearest first) still had to try, applied to the best run's config: only changes to
settings that have not changed since (a change to a setting changed since was made for other
curves; `carried_over`). Only then, or when no curves can be read, does it stop for want of a change.

Each round trains from the best run so far: its first recommendation not yet tried from that
run is applied (`apply_change`, the same as the "apply" button) and the new run records the
best run as its parent and the recommendation it applied, so the rounds form a tree (the
lineage view). `on_run_analysed(run_id)` is called once a run's analysis is stored (the rules
helper's analyse_run task); every step claims its work with a conditional UPDATE.

`run_offline` is the same loop without a database (bench/bench_autopilot.py and tests):
plain functions to train a config and to advise on a trained run.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Callable, Optional

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from .config import ConfigError, apply_change
from .models import Autopilot, AutopilotRound, Recommendation, Run
from .services import ServiceError, run_create

log = logging.getLogger(__name__)
DEFAULT_ROUNDS = 4
MAX_ROUNDS = 20
PATIENCE = 2              # rounds without improvement before stopping
MIN_IMPROVEMENT = 1e-3    # relative: a new best val_loss must be 0.1% below the old one


# ---------------------------------------------------------------- the decisions (pure)

def improved(new: Optional[float], best: Optional[float]) -> bool:
    if new is None or not math.isfinite(new):
        return False
    if best is None or not math.isfinite(best):
        return True
    return new < best - MIN_IMPROVEMENT * abs(best)


def first_untried(recommendations: list[dict], config: dict, tried: set) -> Optional[tuple[dict, dict]]:
    """The first recommendation (best first) whose rule was not tried from this run and whose
    change makes a valid, different config: (recommendation, new config), or None."""
    for rec in recommendations:
        change = rec.get("change") or {}
        if not change or rec.get("rule") in tried:
            continue
        try:
            new_config = apply_change(config, change)
        except ConfigError:
            continue
        if new_config != config:
            return rec, new_config
    return None


def carried_over(candidates: list[dict], ancestor_config: dict, config: dict) -> list[dict]:
    """An ancestor's recommendations (or explorations) that still fit a descendant's config: those
    whose change touches only settings the two configs share."""
    return [rec for rec in candidates
            if rec.get("change") and all(ancestor_config.get(k) == config.get(k) for k in rec["change"])]


def stop_reason(rounds: int, max_rounds: int, without_improvement: int) -> str:
    if without_improvement >= PATIENCE:
        return f"no improvement in {PATIENCE} rounds"
    if rounds >= max_rounds:
        return f"used its {max_rounds} rounds"
    return ""


@dataclass
class OfflineRound:
    number: int
    parent: int            # index of the parent in `runs` (0 is the starting run)
    rule: str
    change: dict
    val_loss: Optional[float]
    improved: bool


@dataclass
class OfflineResult:
    best_val_loss: Optional[float]
    best_config: dict
    rounds: list = field(default_factory=list)
    stop_reason: str = ""
    trainings: int = 0


def run_offline(config: dict, *, train: Callable[[dict], dict], advise: Callable[[dict, dict], dict],
                max_rounds: int = DEFAULT_ROUNDS, start: Optional[dict] = None,
                explore: Optional[Callable[[dict, dict], list]] = None) -> OfflineResult:
    """The autopilot loop on plain functions: `train(config)` -> {"best_val_loss", ...} (any
    data `advise` needs), `advise(config, trained)` -> the advise answer, `explore(config, trained)`
    -> further changes to try once the recommendations are used up (tracking.rules.explore; none
    if not given). `start` is the starting config's training if already done (else it is trained
    first, and counts as a training)."""
    trainings = 0
    if start is None:
        start, trainings = train(config), 1
    runs = [(config, start, advise(config, start))]
    parents = [None]  # index of each run's parent in `runs`
    best = 0
    out = OfflineResult(best_val_loss=start.get("best_val_loss"), best_config=config)
    tried: dict[int, set] = {}
    explored: dict[int, list] = {}
    without = 0
    while True:
        reason = stop_reason(len(out.rounds), max_rounds, without)
        if reason:
            break
        best_config, best_trained, answer = runs[best]
        picked = first_untried(answer.get("recommendations", []), best_config, tried.setdefault(best, set()))
        if picked is None and explore is not None:
            if best not in explored:
                explored[best] = explore(best_config, best_trained)
            picked = first_untried(explored[best], best_config, tried[best])
        ancestor = parents[best]
        while picked is None and ancestor is not None:  # what the ancestors still had to try
            a_config, a_trained, a_answer = runs[ancestor]
            candidates = list(a_answer.get("recommendations", []))
            if explore is not None:
                if ancestor not in explored:
                    explored[ancestor] = explore(a_config, a_trained)
                candidates += explored[ancestor]
            picked = first_untried(carried_over(candidates, a_config, best_config), best_config, tried[best])
            ancestor = parents[ancestor]
        if picked is None:
            reason = "no recommendation left to try"
            break
        rec, new_config = picked
        tried[best].add(rec.get("rule"))
        trained = train(new_config)
        trainings += 1
        runs.append((new_config, trained, advise(new_config, trained)))
        parents.append(best)
        better = improved(trained.get("best_val_loss"), out.best_val_loss)
        out.rounds.append(OfflineRound(len(out.rounds) + 1, best, rec.get("rule", ""), rec.get("change", {}),
                                       trained.get("best_val_loss"), better))
        if better:
            best, out.best_val_loss, out.best_config, without = len(runs) - 1, trained["best_val_loss"], new_config, 0
        else:
            without += 1
    out.stop_reason, out.trainings = reason, trainings
    return out


# ---------------------------------------------------------------- services

def autopilot_start(*, run: Run, owner, max_rounds: int = DEFAULT_ROUNDS) -> Autopilot:
    """Start tuning a run. The first round starts now if the run has ended and been analysed,
    else as soon as its analysis is stored."""
    if run.kind not in (Run.Kind.TRAIN, Run.Kind.CODE):
        raise ServiceError("Only a training run or a run of registered code can be tuned.")
    if not isinstance(max_rounds, int) or not 1 <= max_rounds <= MAX_ROUNDS:
        raise ConfigError("max_rounds", f"must be a whole number from 1 to {MAX_ROUNDS}")
    with transaction.atomic():
        try:
            with transaction.atomic():  # one running autopilot a run: the unique constraint decides
                pilot = Autopilot.objects.create(project=run.project, owner=owner, start_run=run, max_rounds=max_rounds,
                                                 best_run=run, best_val_loss=run.best_val_loss)
        except IntegrityError:
            raise ServiceError("This run is already being tuned.") from None
        run.refresh_from_db()  # it may have ended meanwhile (the periodic task covers a later race)
        if run.is_final() and run.analysed_at:
            Autopilot.objects.filter(pk=pilot.pk).update(best_val_loss=run.best_val_loss)
            pilot.best_val_loss = run.best_val_loss
            next_round(pilot)
    return pilot


def on_run_analysed(run_id: int) -> Optional[str]:
    """Advance every autopilot waiting on this run (its start run, or its current round)."""
    outcome = None
    for pilot in Autopilot.objects.filter(start_run_id=run_id, state=Autopilot.State.RUNNING,
                                          current_run__isnull=True, rounds__isnull=True):
        with transaction.atomic():
            run = Run.objects.get(pk=run_id)
            if Autopilot.objects.filter(pk=pilot.pk, current_run__isnull=True, rounds__isnull=True,
                                        state=Autopilot.State.RUNNING).update(
                    best_run=run, best_val_loss=run.best_val_loss):
                pilot.refresh_from_db()
                outcome = next_round(pilot)
    for pilot in Autopilot.objects.filter(current_run_id=run_id, state=Autopilot.State.RUNNING):
        outcome = round_ended(pilot, run_id)
    return outcome


def round_ended(pilot: Autopilot, run_id: int) -> str:
    """Compare the round's run with the best so far, then start the next round or finish."""
    with transaction.atomic():
        if not Autopilot.objects.filter(pk=pilot.pk, current_run_id=run_id,
                                        state=Autopilot.State.RUNNING).update(current_run=None):
            return "claimed elsewhere"
        run = Run.objects.get(pk=run_id)
        better = improved(run.best_val_loss, pilot.best_val_loss)
        AutopilotRound.objects.filter(autopilot=pilot, run_id=run_id).update(improved=better)
        if run.applied_recommendation_id:
            Recommendation.objects.filter(pk=run.applied_recommendation_id).update(helped=better)
        if better:
            pilot.best_run, pilot.best_val_loss, pilot.rounds_without_improvement = run, run.best_val_loss, 0
        else:
            pilot.rounds_without_improvement += 1
        pilot.current_run = None
        pilot.save(update_fields=["best_run", "best_val_loss", "rounds_without_improvement"])
        return next_round(pilot)


def recommendations_for(run: Run) -> list[dict]:
    """The run's recommendations, best first: the stored rows (with their ids), else the analysis."""
    rows = list(run.recommendations.exclude(state=Recommendation.State.DISMISSED).order_by("rank", "pk"))
    if rows:
        return [{"id": r.pk, "rule": r.rule, "change": r.change, "confidence": r.confidence} for r in rows]
    return list((run.analysis or {}).get("recommendations") or [])


def explorations_for(run: Run) -> list[dict]:
    """What else to try on a run once its recommendations are used up (tracking.rules.explore on its
    curves), without the rules the run already has a row for (considered, or dismissed by a user).
    Empty when the run's curves cannot be read."""
    from .analysis import run_input_for
    from .mlflow_io import RunNotFound
    from .rules import RunInputError, explore

    if not run.mlflow_run_id:
        return []
    try:
        found = explore(run_input_for(run))
    except (RunNotFound, RunInputError) as exc:
        log.info("autopilot: no explorations for run %s (%s)", run.pk, exc)
        return []
    known = set(run.recommendations.values_list("rule", flat=True))
    return [rec for rec in found if rec.get("rule") not in known]


def carried_over_from_ancestors(pilot: Autopilot, best: Run, tried: set) -> Optional[tuple[dict, dict]]:
    """The first change an ancestor of `best` in this autopilot (its parent runs up to the start
    run, nearest first) still had to try that fits best's config (`carried_over`), with the new
    config; or None."""
    in_pilot = set(pilot.rounds.values_list("run_id", flat=True)) | {pilot.start_run_id}
    known = set(best.recommendations.values_list("rule", flat=True))  # considered there, or dismissed
    seen, run = set(), best
    while run.parent_id and run.parent_id in in_pilot and run.parent_id not in seen and run.pk != pilot.start_run_id:
        seen.add(run.parent_id)
        run = Run.objects.get(pk=run.parent_id)
        candidates = [{k: v for k, v in rec.items() if k != "id"} for rec in recommendations_for(run)]
        candidates += explorations_for(run)
        candidates = [rec for rec in candidates if rec.get("rule") not in known]
        picked = first_untried(carried_over(candidates, run.config, best.config), best.config, tried)
        if picked is not None:
            return picked
    return None


def next_round(pilot: Autopilot) -> str:
    """Start the next round from the best run, or finish with the reason."""
    rounds = pilot.rounds.count()
    reason = stop_reason(rounds, pilot.max_rounds, pilot.rounds_without_improvement)
    if reason:
        return finish(pilot, reason)
    best = pilot.best_run or pilot.start_run
    tried = set(pilot.rounds.filter(parent_run=best).values_list("rule", flat=True))
    if best.kind == Run.Kind.CODE:  # registered code: only changes its entry point has parameters for
        from .code.services import first_applicable

        picked = (first_applicable(recommendations_for(best), best, tried)
                  or first_applicable(explorations_for(best), best, tried))
    else:
        picked = first_untried(recommendations_for(best), best.config, tried)
    if picked is None and best.kind != Run.Kind.CODE:
        picked = (first_untried(explorations_for(best), best.config, tried)
                  or carried_over_from_ancestors(pilot, best, tried))
        if picked is not None:
            # an exploration, or an ancestor's change carried over: stored as a recommendation of
            # the best run, so the round links to it and its outcome counts
            rec = picked[0]
            row = Recommendation.objects.create(
                run=best, rule=rec["rule"], diagnosis=rec.get("diagnosis", ""), change=rec["change"],
                rationale=rec.get("rationale", ""), confidence=rec.get("confidence", 0.0),
                rank=best.recommendations.count())
            picked = ({**rec, "id": row.pk}, picked[1])
    if picked is None:
        return finish(pilot, f"no recommendation left to try on {best.name}")
    rec, config = picked
    number = rounds + 1
    rec_row = Recommendation.objects.filter(pk=rec.get("id")).first() if rec.get("id") else None
    twin = trained_twin(pilot, config) if best.kind == Run.Kind.TRAIN else None
    if twin is not None:  # this config (same seed) was trained in the lineage already: reuse it
        run = twin
    elif best.kind == Run.Kind.CODE:
        from .code.services import code_run_follow_up

        run = code_run_follow_up(run=best, owner=pilot.owner, change=rec["change"], applied_recommendation=rec_row,
                                 name=f"{pilot.start_run.name} · autopilot {number}", tags=[f"autopilot-{pilot.pk}"],
                                 note=f"Autopilot round {number}: {rec.get('rule', '')}")
    else:
        run = run_create(project=best.project, owner=pilot.owner, config=config, parent=best,
                         applied_recommendation=rec_row, name=f"{pilot.start_run.name} · autopilot {number}",
                         tags=[f"autopilot-{pilot.pk}"], note=f"Autopilot round {number}: {rec.get('rule', '')}")
    if rec_row:
        Recommendation.objects.filter(pk=rec_row.pk).update(state=Recommendation.State.APPLIED)
    AutopilotRound.objects.create(autopilot=pilot, number=number, parent_run=best, run=run,
                                  rule=rec.get("rule", ""), change=rec.get("change") or {})
    Autopilot.objects.filter(pk=pilot.pk).update(current_run=run)
    pilot.current_run = run
    if twin is not None:
        log.info("autopilot %s round %s: reuses run %s (same config, already trained)", pilot.pk, number, twin.pk)
        return round_ended(pilot, twin.pk)
    return f"round {number}"


LINEAGE_LIMIT = 2000  # runs looked at for a trained twin: the start run's family tree


def lineage_runs(start: Run) -> list[dict]:
    """The start run's family tree (its oldest ancestor and every descendant of it): pk, config,
    status, analysed_at and whether the run is some autopilot's round already."""
    root, seen = start, {start.pk}
    while root.parent_id and root.parent_id not in seen and len(seen) < 100:
        seen.add(root.parent_id)
        root = Run.objects.only("pk", "parent_id").get(pk=root.parent_id)
    fields = ("pk", "config", "status", "analysed_at", "kind", "autopilot_round")
    found = list(Run.objects.filter(pk=root.pk).values(*fields))
    frontier = [root.pk]
    while frontier and len(found) < LINEAGE_LIMIT:
        children = list(Run.objects.filter(parent_id__in=frontier).values(*fields)[:LINEAGE_LIMIT])
        found += children
        frontier = [c["pk"] for c in children]
    return found


def trained_twin(pilot: Autopilot, config: dict) -> Optional[Run]:
    """A run of the lineage that already trained exactly this config (the seed included, so the
    same result), ended well and was analysed; not another autopilot's round. None if there is none."""
    for row in lineage_runs(pilot.start_run):
        if (row["config"] == config and row["kind"] == Run.Kind.TRAIN and row["status"] == Run.Status.SUCCEEDED
                and row["analysed_at"] is not None and row["autopilot_round"] is None):
            return Run.objects.get(pk=row["pk"])
    return None


def finish(pilot: Autopilot, reason: str) -> str:
    """End the autopilot once (conditional UPDATE) and email the team after commit."""
    if Autopilot.objects.filter(pk=pilot.pk, state=Autopilot.State.RUNNING).update(
            state=Autopilot.State.DONE, stop_reason=reason, finished_at=timezone.now(), current_run=None):
        pilot.state, pilot.stop_reason = Autopilot.State.DONE, reason
        pilot_id = pilot.pk
        transaction.on_commit(lambda: email_team(pilot_id))
    return "done: " + reason


def autopilot_stop(*, pilot: Autopilot) -> str:
    """Stop tuning: the round in training finishes, but no further round starts."""
    return finish(pilot, "stopped by a user")


# ---------------------------------------------------------------- the email when it ends

def email_team(pilot_id: int) -> int:
    """The autopilot's one email to every team member with an address (its rounds' runs send none
    of their own by default): subject "[project] best run: diagnosis, change". Returns the number
    sent; SMTP errors are logged."""
    from .tuning_mail import summary_send, summary_subject

    pilot = Autopilot.objects.select_related("project__team", "start_run__project", "best_run__project").get(pk=pilot_id)
    best = pilot.best_run or pilot.start_run
    return summary_send(project=pilot.project, subject=summary_subject(pilot.project, best, f"autopilot on {pilot.start_run.name}"),
                        body=email_body(pilot), what=f"autopilot {pilot_id}")


def email_body(pilot: Autopilot) -> str:
    from .tuning_mail import best_run_lines

    site = getattr(settings, "SITE_URL", "")
    start = pilot.start_run
    lines = [f"Autopilot on {start.name} ended: {pilot.stop_reason}.", "",
             f"Start: {start.name}, best val_loss {fmt(start.best_val_loss)}"]
    for r in pilot.rounds.select_related("run", "parent_run"):
        mark = "improved" if r.improved else "no improvement" if r.improved is False else r.run.status
        change = ", ".join(f"{k}={v}" for k, v in r.change.items())
        lines.append(f"Round {r.number}: {r.rule} ({change}) from {r.parent_run.name}: "
                     f"best val_loss {fmt(r.run.best_val_loss)}, {mark}")
    lines += [""] + best_run_lines(pilot.best_run or start)
    lines += ["", f"Lineage: {site}{pilot.get_absolute_url()}"]
    return "\n".join(lines)


def fmt(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def lineage(pilot: Autopilot) -> dict:
    """The rounds as a tree: nodes {run_id, name, best_val_loss, rule, change, improved, children}."""
    rounds = list(pilot.rounds.select_related("run"))
    start = pilot.start_run
    nodes = {start.pk: {"run_id": start.pk, "name": start.name, "best_val_loss": start.best_val_loss,
                        "status": start.status, "rule": "", "change": {}, "improved": None, "round": 0,
                        "is_best": pilot.best_run_id == start.pk, "children": []}}
    for r in rounds:
        nodes[r.run_id] = {"run_id": r.run_id, "name": r.run.name, "best_val_loss": r.run.best_val_loss,
                           "status": r.run.status, "rule": r.rule, "change": r.change, "improved": r.improved,
                           "round": r.number, "is_best": pilot.best_run_id == r.run_id, "children": []}
    for r in rounds:
        nodes.get(r.parent_run_id, nodes[start.pk])["children"].append(nodes[r.run_id])
    return nodes[start.pk]


def advance_pending(stale_after=None) -> int:
    """Advance every autopilot whose awaited run has ended and been analysed (for a periodic task:
    idempotent). A run that ended more than `stale_after` ago without an analysis counts as
    analysed with what it has. Returns how many autopilots moved."""
    from datetime import timedelta

    from django.db.models import Q

    stale = timezone.now() - (stale_after or timedelta(minutes=10))
    ready = Q(analysed_at__isnull=False) | Q(finished_at__lt=stale)
    moved = 0
    waiting = Autopilot.objects.filter(state=Autopilot.State.RUNNING)
    for pilot in waiting.filter(current_run__isnull=False):
        if Run.objects.filter(Q(pk=pilot.current_run_id, status__in=Run.FINAL) & ready).exists():
            moved += on_run_analysed(pilot.current_run_id) is not None
    for pilot in waiting.filter(current_run__isnull=True, rounds__isnull=True):
        if Run.objects.filter(Q(pk=pilot.start_run_id, status__in=Run.FINAL) & ready).exists():
            moved += on_run_analysed(pilot.start_run_id) is not None
    return moved
