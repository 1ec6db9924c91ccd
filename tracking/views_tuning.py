"""Pages of the tuning tools: the LR range test, sweeps and the autopilot. Thin views: an access
helper (404 outside the user's teams), the form values, one service call, a redirect."""
from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import access, autopilot, lr_finder, selectors, sweeps
from .config import FIELDS, ConfigError, validate_config
from .models import Autopilot, MetricSeries, Run, Sweep
from .services import ServiceError, run_create


def _sweep_or_404(user, sweep_id) -> Sweep:
    return get_object_or_404(Sweep.objects.select_related("project__team"), pk=sweep_id,
                             project__team__memberships__user=user)


def _autopilot_or_404(user, pilot_id) -> Autopilot:
    return get_object_or_404(Autopilot.objects.select_related("project__team", "start_run", "best_run"),
                             pk=pilot_id, project__team__memberships__user=user)


def _training_run_or_404(user, run_id) -> Run:
    run = access.run_or_404(user, run_id)
    if run.kind != Run.Kind.TRAIN:
        raise Http404("Only a training run can be tuned.")
    return run


def _number(post, name, kind=float):
    raw = (post.get(name) or "").strip()
    if raw == "":
        return None
    try:
        return kind(raw)
    except ValueError:
        if name in FIELDS:  # a config key: the validator's own words ("Input should be a valid number, ...")
            validate_config({name: raw})
        what = ("a valid integer, unable to parse string as an integer" if kind is int
                else "a valid number, unable to parse string as a number")  # the validator's words
        raise ConfigError(name, f"Input should be {what}") from None


# ---------------------------------------------------------------- LR range test

@require_POST
def lr_find_start(request, run_id):
    """Start an LR range test on a run's model and data (its config, the sweep keys from the form)."""
    from workers.lr_range import lr_find_create

    source = _training_run_or_404(request.user, run_id)
    try:
        keys = {k: _number(request.POST, k, int if k == "lr_find_steps" else float)
                for k in ("lr_min", "lr_max", "lr_find_steps")}
        run = lr_find_create(source=source, owner=request.user, **{k: v for k, v in keys.items() if v is not None})
    except ConfigError as exc:
        messages.error(request, str(exc))
        return redirect(source)
    return redirect("lr-find", run.pk)


def lr_find_data(run: Run) -> dict:
    """The range test's curves (from MetricSeries) and the three suggestions computed from them."""
    series = {s.key: s.points for s in MetricSeries.objects.filter(run=run, key__in=("lr", "train_loss", "smooth_loss"))}
    lrs = [p[1] for p in series.get("lr", [])]
    smooth = [p[1] for p in series.get("smooth_loss", [])]
    try:
        suggestions = lr_finder.suggest(lrs, [float("nan") if v is None else v for v in smooth],
                                        steps=run.config.get("lr_find_steps"))
    except (lr_finder.NotEnoughPoints, ValueError):
        suggestions = {}
    return {"lr": lrs, "loss": [p[1] for p in series.get("train_loss", [])], "smooth": smooth,
            "suggestions": suggestions}


@require_GET
def lr_find_detail(request, run_id):
    run = access.run_or_404(request.user, run_id)
    if run.kind != Run.Kind.LR_FIND:
        raise Http404("Not an LR range test.")
    data = lr_find_data(run)
    return render(request, "tracking/lr_find.html", {
        "run": run, "project": run.project, "data": data, "suggestions": data["suggestions"],
        "chart_data": selectors.run_chart_data(run)})


@require_POST
def lr_find_use(request, run_id):
    """"Use this LR": a new training run with the chosen LR, constant or as one-cycle's max_lr."""
    run = access.run_or_404(request.user, run_id)
    if run.kind != Run.Kind.LR_FIND:
        raise Http404("Not an LR range test.")
    mode = request.POST.get("mode", "constant")
    try:
        lr = _number(request.POST, "lr")
        if lr is None:
            raise ConfigError("lr", "choose a learning rate")
        if mode not in ("constant", "onecycle"):
            raise ConfigError("mode", "must be 'constant' or 'onecycle'")
        config = lr_finder.run_config_with_lr(run.config, lr, mode)
        new = run_create(project=run.project, owner=request.user, config=config, parent=run.parent or run,
                         name=f"{(run.parent or run).name} · lr {lr:.3g} ({mode})",
                         note=f"LR {lr:.3g} from the range test #{run.pk}")
    except ConfigError as exc:
        messages.error(request, str(exc))
        return redirect("lr-find", run.pk)
    what = "one-cycle's max_lr" if mode == "onecycle" else "a constant LR"
    messages.success(request, f"Run “{new.name}” is queued with {lr:.3g} as {what}.")
    return redirect(new)


# ---------------------------------------------------------------- sweeps

SPACE_FIELDS = ("lr", "weight_decay", "momentum", "dropout")


def _space_from_post(post) -> dict:
    space = {}
    for name in SPACE_FIELDS:
        if post.get(f"{name}_on"):
            space[name] = {"low": _number(post, f"{name}_low"), "high": _number(post, f"{name}_high"),
                           "log": bool(post.get(f"{name}_log"))}
            if space[name]["low"] is None or space[name]["high"] is None:
                raise ConfigError(name, "needs a low and a high value")
    if post.get("batch_size_on"):
        try:
            choices = [int(c) for c in post.get("batch_size_choices", "").replace(" ", "").split(",") if c]
        except ValueError:
            raise ConfigError("batch_size", "choices must be whole numbers separated by commas") from None
        space["batch_size"] = {"choices": choices}
    return space


@require_http_methods(["GET", "POST"])
def sweep_new(request, run_id):
    """A sweep around a run's config."""
    source = _training_run_or_404(request.user, run_id)
    if request.method == "POST":
        try:
            sweep = sweeps.sweep_create(
                project=source.project, owner=request.user, base_config=source.config,
                space=_space_from_post(request.POST), name=request.POST.get("name", ""),
                **_stage_settings(request.POST))
        except ConfigError as exc:
            messages.error(request, str(exc))
            return render(request, "tracking/sweep_form.html", _sweep_form_context(source, request.POST), status=400)
        return redirect(sweep)
    return render(request, "tracking/sweep_form.html", _sweep_form_context(source, None))


def _stage_settings(post) -> dict:
    defaults = {"stage1_trials": 8, "stage1_epochs": 2, "stage2_trials": 3}
    values = {k: _number(post, k, int) for k in defaults}
    return {k: defaults[k] if v is None else v for k, v in values.items()}


def _sweep_form_context(source, post):
    defaults = sweeps.DEFAULT_SPACE
    rows = [{"name": n, **defaults[n], "on": True} if n in defaults else
            {"name": n, "low": 0.0, "high": 0.2, "log": False, "on": False} for n in SPACE_FIELDS]
    if post is not None:
        rows = [{"name": n, "low": post.get(f"{n}_low", ""), "high": post.get(f"{n}_high", ""),
                 "log": bool(post.get(f"{n}_log")), "on": bool(post.get(f"{n}_on"))} for n in SPACE_FIELDS]
    choices = post.get("batch_size_choices") if post is not None else ", ".join(
        map(str, defaults["batch_size"]["choices"]))
    return {"source": source, "project": source.project, "rows": rows, "batch_size_choices": choices,
            "batch_size_on": True if post is None else bool(post.get("batch_size_on")),
            "values": post or {"stage1_trials": 8, "stage1_epochs": 2, "stage2_trials": 3},
            "max_trials": sweeps.max_trials(), "team_concurrency": settings.RUN_TEAM_CONCURRENCY}


@require_GET
def sweep_detail(request, sweep_id):
    sweep = _sweep_or_404(request.user, sweep_id)
    data = sweeps.sweep_chart_data(sweep)
    return render(request, "tracking/sweep.html", {
        "sweep": sweep, "project": sweep.project, "data": data, "param_names": list(sweep.space),
        "borders": {k: v["border"] for k, v in data["params"].items() if v["border"]}})


@require_POST
def sweep_stop(request, sweep_id):
    """"Stop sweep": running trials are asked to stop, queued ones end, no trial is asked after."""
    sweep = _sweep_or_404(request.user, sweep_id)
    if sweeps.sweep_stop(sweep=sweep, user=request.user):
        messages.info(request, "Sweep stopped: its running trials were asked to stop, its queued ones will not train.")
    else:
        messages.error(request, f"This sweep has already ended ({sweep.state}); nothing was changed.")
    return redirect(sweep)


# ---------------------------------------------------------------- autopilot

@require_POST
def autopilot_start(request, run_id):
    run = access.run_or_404(request.user, run_id)
    try:
        rounds = _number(request.POST, "max_rounds", int)
        rounds = autopilot.DEFAULT_ROUNDS if rounds is None else rounds
        pilot = autopilot.autopilot_start(run=run, owner=request.user, max_rounds=rounds)
    except (ConfigError, ServiceError) as exc:
        messages.error(request, str(exc))
        return redirect(run)
    return redirect(pilot)


@require_GET
def autopilot_detail(request, pilot_id):
    pilot = _autopilot_or_404(request.user, pilot_id)
    return render(request, "tracking/autopilot.html", {
        "pilot": pilot, "project": pilot.project, "tree": autopilot.lineage(pilot),
        "rounds": pilot.rounds.select_related("run", "parent_run")})


@require_POST
def autopilot_stop(request, pilot_id):
    pilot = _autopilot_or_404(request.user, pilot_id)
    autopilot.autopilot_stop(pilot=pilot)
    messages.info(request, "The autopilot will start no further round.")
    return redirect(pilot)


@require_GET
def tuning_index(request, project_id):
    project = access.project_or_404(request.user, project_id)
    return render(request, "tracking/tuning_index.html", {
        "project": project, "sweeps": project.sweeps.order_by("-created_at")[:50],
        "autopilots": project.autopilots.select_related("start_run", "best_run").order_by("-created_at")[:50],
        "lr_finds": project.runs.filter(kind=Run.Kind.LR_FIND).order_by("-created_at")[:50]})
