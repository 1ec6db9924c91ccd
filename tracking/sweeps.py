"""Sweeps, coarse to fine: random search in two stages, sampled with Optuna's ask-and-tell.

Stage 1 asks `stage1_trials` points of the chosen ranges (RandomSampler) and trains each for
`stage1_epochs` (1 or 2) epochs; stage 2 narrows every range around the best stage-1 trials and
trains `stage2_trials` points for the base config's full length. All of a stage's runs are
created at once (`run_create`), so the workers train them in parallel. Each stage is an Optuna
study in an RDB storage file under VAR_DIR (`optuna.db`); when a trial's run ends,
`on_run_ended(run_id)` tells the study its best val_loss and advances the sweep. Every step
claims its work with a conditional UPDATE, so a repeated call does nothing twice. `sweep_stop`
ends a running sweep: its running trials are asked to stop, its queued ones end at once, and no
trial is asked after it.
"""
from __future__ import annotations

import functools
import logging
import math

import optuna
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .config import ConfigError, validate_config
from .models import Run, Sweep, Trial
from .services import run_create, run_limits_check, run_request_stop

logger = logging.getLogger(__name__)

SWEEPABLE = {  # param -> the kind of range it takes
    "lr": "float", "weight_decay": "float", "momentum": "float", "dropout": "float",
    "label_smoothing": "float", "batch_size": "choice", "width": "choice",
}
DEFAULT_SPACE = {
    "lr": {"low": 1e-4, "high": 1.0, "log": True},
    "weight_decay": {"low": 1e-6, "high": 1e-2, "log": True},
    "batch_size": {"choices": [16, 32, 64, 128, 256]},
    "momentum": {"low": 0.9, "high": 0.99, "log": False},
    "dropout": {"low": 0.0, "high": 0.5, "log": False},
}
TOP_FRACTION, TOP_MAX = 0.25, 3
WIDEN = 0.125   # stage 2 ranges: the best values' span, widened by this share of the full range
BORDER = 0.05   # a best value within 5% of a range end (log scale where the range is) is on its border

optuna.logging.set_verbosity(optuna.logging.WARNING)


class SweepError(ConfigError):
    """A bad sweep definition; `field` names the parameter or setting."""


# ---------------------------------------------------------------- the search space

def space_clean(space: dict) -> dict:
    """A validated copy of a search space, or SweepError naming the bad parameter."""
    if not isinstance(space, dict) or not space:
        raise SweepError("space", "choose at least one hyperparameter to sweep")
    clean = {}
    for name, spec in space.items():
        if name not in SWEEPABLE:
            raise SweepError(name, f"cannot be swept (choose among {', '.join(SWEEPABLE)})")
        if not isinstance(spec, dict):
            raise SweepError(name, "needs a range {low, high, log} or a list of choices")
        if SWEEPABLE[name] == "choice":
            choices = spec.get("choices")
            if not isinstance(choices, list) or not choices or not all(
                    isinstance(c, int) and not isinstance(c, bool) and c >= 1 for c in choices):
                raise SweepError(name, "needs a list of positive whole numbers")
            clean[name] = {"choices": sorted(set(choices))}
            continue
        try:
            low, high = float(spec["low"]), float(spec["high"])
        except (KeyError, TypeError, ValueError):
            raise SweepError(name, "needs numbers low and high") from None
        log = bool(spec.get("log", False))
        if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
            raise SweepError(name, "low must be below high")
        if log and low <= 0:
            raise SweepError(name, "a log range needs low > 0")
        clean[name] = {"low": low, "high": high, "log": log}
    return clean


def distributions(space: dict) -> dict:
    out = {}
    for name, spec in space.items():
        if "choices" in spec:
            out[name] = optuna.distributions.CategoricalDistribution(spec["choices"])
        else:
            out[name] = optuna.distributions.FloatDistribution(spec["low"], spec["high"], log=spec["log"])
    return out


def _corners(base: dict, space: dict) -> None:
    """Both ends of every range must make a valid config, so no trial can fail validation."""
    for name, spec in space.items():
        for value in (spec["choices"][0], spec["choices"][-1]) if "choices" in spec else (spec["low"], spec["high"]):
            try:
                validate_config({**base, name: value})
            except ConfigError as exc:
                raise SweepError(name, f"{value:g} makes an invalid run config ({exc})") from None


def narrow(space: dict, best_params: list[dict]) -> dict:
    """Stage 2's ranges: around the values of the best trials, widened a little, inside the
    stage-1 range; a choice range keeps the best choices and their neighbours."""
    out = {}
    for name, spec in space.items():
        values = [p[name] for p in best_params if name in p]
        if not values:
            out[name] = dict(spec)
            continue
        if "choices" in spec:
            choices = spec["choices"]
            idx = sorted({choices.index(v) for v in values})
            keep = range(max(0, idx[0] - 1), min(len(choices), idx[-1] + 2))
            out[name] = {"choices": [choices[i] for i in keep]}
            continue
        to, back = (math.log, math.exp) if spec["log"] else (float, float)
        lo_all, hi_all = to(spec["low"]), to(spec["high"])
        pad = WIDEN * (hi_all - lo_all)
        lo, hi = max(lo_all, to(min(values)) - pad), min(hi_all, to(max(values)) + pad)
        out[name] = {"low": back(lo), "high": back(hi), "log": spec["log"]}
        if spec["log"]:  # exp(log(x)) may drift by an ulp outside the original range
            out[name]["low"] = max(out[name]["low"], spec["low"])
            out[name]["high"] = min(out[name]["high"], spec["high"])
    return out


def border_of(spec: dict, value) -> str:
    """'low' or 'high' when a value sits on that border of its range, else ''."""
    if "choices" in spec:
        choices = spec["choices"]
        if len(choices) > 1 and value == choices[0]:
            return "low"
        if len(choices) > 1 and value == choices[-1]:
            return "high"
        return ""
    to = math.log if spec["log"] else float
    lo, hi, v = to(spec["low"]), to(spec["high"]), to(value)
    if v - lo <= BORDER * (hi - lo):
        return "low"
    if hi - v <= BORDER * (hi - lo):
        return "high"
    return ""


# ---------------------------------------------------------------- Optuna storage

def storage_url() -> str:
    return getattr(settings, "OPTUNA_STORAGE", None) or f"sqlite:///{settings.VAR_DIR / 'optuna.db'}"


@functools.lru_cache(maxsize=4)
def _storage(url: str):
    return optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 20}})


def study_for(sweep: Sweep, stage: int) -> optuna.Study:
    sampler = optuna.samplers.RandomSampler(seed=sweep.seed * 100 + stage)
    return optuna.create_study(storage=_storage(storage_url()), study_name=sweep.study_name(stage),
                               sampler=sampler, direction="minimize", load_if_exists=True)


# ---------------------------------------------------------------- services

def max_trials() -> int:
    """Trials of one sweep, both stages together (setting SWEEP_MAX_TRIALS, at least 3)."""
    return max(3, settings.SWEEP_MAX_TRIALS)


def sweep_create(*, project, owner, base_config: dict, space: dict | None = None, name: str = "",
                 stage1_trials: int = 8, stage1_epochs: int = 2, stage2_trials: int = 3, seed: int = 0) -> Sweep:
    """Validate everything (nothing written on a bad value), write the sweep and launch stage 1."""
    base = validate_config(base_config)
    space = space_clean(DEFAULT_SPACE if space is None else space)
    _corners(base, space)
    run_limits_check(config=base, team_id=project.team_id)  # stage 2 trains the base config's full length
    most = max_trials()
    for field, value, low, high in (("stage1_trials", stage1_trials, 2, most - 1), ("stage1_epochs", stage1_epochs, 1, 2),
                                    ("stage2_trials", stage2_trials, 1, most - 2)):
        if not isinstance(value, int) or not low <= value <= high:
            raise SweepError(field, f"must be a whole number from {low} to {high}")
    if stage1_trials + stage2_trials > most:
        raise SweepError("stage2_trials", f"stage 1 and stage 2 trials together must be at most {most} "
                                          f"(SWEEP_MAX_TRIALS), not {stage1_trials + stage2_trials}")
    with transaction.atomic():
        sweep = Sweep.objects.create(
            project=project, owner=owner, base_config=base, space=space, seed=seed,
            name=(name or "").strip()[:200] or f"sweep of {', '.join(space)}",
            stage1_trials=stage1_trials, stage1_epochs=stage1_epochs, stage2_trials=stage2_trials)
        launch_stage(sweep, 1)
    return sweep


def launch_stage(sweep: Sweep, stage: int) -> list[Trial]:
    """Ask the stage's study for its trials and create one run each (enqueued after commit)."""
    space = sweep.space if stage == 1 else sweep.narrowed_space
    count = sweep.stage1_trials if stage == 1 else sweep.stage2_trials
    epochs = min(sweep.stage1_epochs, sweep.base_config["epochs"]) if stage == 1 else sweep.base_config["epochs"]
    study, dists = study_for(sweep, stage), distributions(space)
    trials = []
    with transaction.atomic():
        for _ in range(count):
            asked = study.ask(dists)
            config = {**sweep.base_config, **asked.params, "epochs": epochs}
            if config["warmup_epochs"] >= epochs:
                config["warmup_epochs"] = 0.0
            run = run_create(project=sweep.project, owner=sweep.owner, config=config,
                             name=f"{sweep.name} · stage {stage} · trial {asked.number}",
                             tags=[f"sweep-{sweep.pk}"])
            trials.append(Trial.objects.create(sweep=sweep, stage=stage, number=asked.number,
                                               params=asked.params, run=run))
    return trials


def on_run_ended(run_id: int) -> bool:
    """Tell the study a trial's result and advance the sweep; a no-op for other runs and for a
    trial already told. Returns True when it told a trial."""
    trial = Trial.objects.select_related("sweep", "run").filter(run_id=run_id).first()
    if trial is None or trial.run.status not in Run.FINAL:
        return False
    value = trial.run.best_val_loss
    ok = trial.run.status == Run.Status.SUCCEEDED and value is not None and math.isfinite(value)
    stopped = not ok and trial.run.status == Run.Status.STOPPED
    state = Trial.State.COMPLETE if ok else Trial.State.STOPPED if stopped else Trial.State.FAILED
    # The claim and the tell commit together: no reader sees the trial told here and still running
    # in the study, and a tell that fails leaves the trial running for advance_pending to retry
    # (skip_if_finished: a tell that landed before a failed commit is not an error the next time).
    with transaction.atomic():
        if not Trial.objects.filter(pk=trial.pk, state=Trial.State.RUNNING).update(
                state=state, value=value if ok else None):
            return False
        study = study_for(trial.sweep, trial.stage)
        if ok:
            study.tell(trial.number, value, skip_if_finished=True)
        else:
            study.tell(trial.number, state=optuna.trial.TrialState.PRUNED if stopped else optuna.trial.TrialState.FAIL,
                       skip_if_finished=True)
    advance(trial.sweep.pk)
    return True


def sweep_stop(*, sweep: Sweep, user) -> bool:
    """Stop a running sweep: mark it stopped, ask its running trial runs to stop (as the run
    page's stop button does) and end its queued ones; the study hears of each ended trial, and
    no further trial is asked. False, with nothing changed, when the sweep had already ended."""
    with transaction.atomic():
        # The claim comes first: a concurrent stage-2 launch either commits before it (its
        # trials are then seen below) or finds the sweep no longer running and launches nothing.
        if not Sweep.objects.filter(pk=sweep.pk, state=Sweep.State.RUNNING).update(
                state=Sweep.State.STOPPED, stop_reason=f"stopped by {user.get_username()}",
                finished_at=timezone.now()):
            sweep.refresh_from_db()
            return False
        runs = [t.run for t in sweep.trials.filter(state=Trial.State.RUNNING).select_related("run")]
        for run in runs:
            run_request_stop(run=run)
        best = sweep.trials.filter(state=Trial.State.COMPLETE).order_by("value").first()
        if best is not None:
            Sweep.objects.filter(pk=sweep.pk).update(best_run_id=best.run_id)
    for run in runs:  # the queued runs just ended (and runs ended but not told yet): tell the study
        try:
            on_run_ended(run.pk)
        except Exception:  # the stop is committed; the periodic catch-up tells the study later
            logger.exception("sweep %s: telling the study that run %s ended failed", sweep.pk, run.pk)
    sweep.refresh_from_db()
    return True


def advance(sweep_id: int) -> str:
    """Start stage 2 once every stage-1 trial is told; finish once every stage-2 trial is."""
    sweep = Sweep.objects.get(pk=sweep_id)
    if sweep.state != Sweep.State.RUNNING:
        return sweep.state  # done, failed or stopped: nothing more is asked
    if sweep.trials.filter(stage=sweep.stage, state=Trial.State.RUNNING).exists():
        return "waiting"
    done = list(sweep.trials.filter(stage=sweep.stage, state=Trial.State.COMPLETE).order_by("value"))
    if sweep.stage == 1:
        if not done:
            return _finish(sweep, Sweep.State.FAILED, "every stage-1 trial failed")
        top = done[:max(1, min(TOP_MAX, math.ceil(TOP_FRACTION * len(done))))]
        narrowed = narrow(sweep.space, [t.params for t in top])
        with transaction.atomic():
            if not Sweep.objects.filter(pk=sweep.pk, stage=1, state=Sweep.State.RUNNING).update(
                    stage=2, narrowed_space=narrowed):
                return "claimed elsewhere"
            sweep.refresh_from_db()
            launch_stage(sweep, 2)
        return "stage 2"
    best = sweep.trials.filter(state=Trial.State.COMPLETE).order_by("value").first()
    if best is None:
        return _finish(sweep, Sweep.State.FAILED, "every trial failed")
    return _finish(sweep, Sweep.State.DONE, f"best val_loss {best.value:.4g} (trial {best.number}, "
                                            f"stage {best.stage})", best.run_id)


def _finish(sweep, state, reason, best_run_id=None) -> str:
    """End the sweep once (conditional UPDATE) and send its one email after commit."""
    if Sweep.objects.filter(pk=sweep.pk, state=Sweep.State.RUNNING).update(
            state=state, stop_reason=reason, best_run_id=best_run_id, finished_at=timezone.now()):
        from .tuning_mail import sweep_email

        sweep_id = sweep.pk
        transaction.on_commit(lambda: sweep_email(sweep_id))
    return state


def advance_pending() -> int:
    """Tell every ended trial not told yet (for a periodic task: idempotent). Returns how many."""
    ended = Trial.objects.filter(state=Trial.State.RUNNING, run__status__in=Run.FINAL).values_list("run_id", flat=True)
    told = 0
    for run_id in list(ended):
        try:
            told += on_run_ended(run_id)
        except Exception:  # one trial's store error does not hold back the others; the next round retries it
            logger.exception("telling the study that run %s ended failed", run_id)
    return told


# ---------------------------------------------------------------- reads for the sweep page

def sweep_chart_data(sweep: Sweep) -> dict:
    """The trials table, a val_loss-vs-parameter scatter per parameter, and border flags."""
    trials = list(sweep.trials.select_related("run").order_by("stage", "number"))
    best = min((t for t in trials if t.value is not None), key=lambda t: t.value, default=None)
    params = {}
    for name, spec in sweep.space.items():
        flag = border_of(spec, best.params[name]) if best and name in best.params else ""
        params[name] = {
            "log": bool(spec.get("log")) or ("choices" in spec and len(spec["choices"]) > 2
                                             and spec["choices"][-1] / spec["choices"][0] >= 8),
            "range": spec, "narrowed": sweep.narrowed_space.get(name),
            "points": [[t.params[name], t.value, t.stage] for t in trials
                       if t.value is not None and name in t.params],
            "best": best.params.get(name) if best else None, "border": flag,
        }
    rows = [{"stage": t.stage, "number": t.number, "params": t.params, "value": t.value, "state": t.state,
             "run_id": t.run_id, "run_status": t.run.status, "is_best": best is not None and t.pk == best.pk}
            for t in trials]
    return {"params": params, "trials": rows, "best": rows[[r["is_best"] for r in rows].index(True)]
            if best else None}
