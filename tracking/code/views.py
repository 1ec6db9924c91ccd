"""Pages of registered code: the project's code and followed experiments, registering code
(team admins only: the workers execute it), the code page, the run form generated from an
entry point, the script's output (live), applying a recommendation to a code or external run.
Each view: an access helper (404 outside the user's teams), a form, one service call."""
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from tracking import access
from tracking.models import Membership, Recommendation, Run
from tracking.services import tag_names_parse

from . import services
from .access import code_or_404, followed_or_404
from .forms import CodeRegisterForm, CodeRunForm, FollowForm
from .mapping import key_map
from .mlproject import MLprojectError


def _is_admin(user, team_id) -> bool:
    return Membership.objects.filter(team_id=team_id, user=user, role=Membership.ADMIN).exists()


@require_GET
def code_index(request, project_id):
    project = access.project_or_404(request.user, project_id)
    return render(request, "tracking/code/index.html", {
        "project": project, "codes": project.codes.select_related("registered_by").order_by("name"),
        "followed": project.followed_experiments.order_by("reference"),
        "is_admin": _is_admin(request.user, project.team_id), "form": CodeRegisterForm(), "follow_form": FollowForm(),
    })


@require_POST
def code_register(request, project_id):
    project = access.project_or_404(request.user, project_id)
    if not _is_admin(request.user, project.team_id):
        raise PermissionDenied("Only a team admin can register code: the workers execute it.")
    form = CodeRegisterForm(request.POST)
    if form.is_valid():
        try:
            code = services.code_register(project=project, user=request.user, **form.cleaned_data)
        except MLprojectError as exc:
            form.add_error(exc.field if exc.field in form.fields else None, f"{exc.field}: {exc.message}")
        else:
            messages.success(request, f"Code “{code.name}” registered: {len(code.entry_points)} entry point(s).")
            return redirect(code)
    return render(request, "tracking/code/index.html", {
        "project": project, "codes": project.codes.order_by("name"),
        "followed": project.followed_experiments.order_by("reference"), "is_admin": True, "form": form,
        "follow_form": FollowForm()}, status=400)


@require_GET
def code_detail(request, code_id):
    code = code_or_404(request.user, code_id)
    entry_points = [{"name": name, "command": ep["command"], "parameters": ep["parameters"],
                     "mapping": {v: k for k, v in key_map(ep["parameters"]).items()}}
                    for name, ep in code.entry_points.items()]
    runs = Run.objects.filter(code_run__code=code).select_related("owner").order_by("-created_at")[:20]
    return render(request, "tracking/code/code.html", {"code": code, "project": code.project,
                                                       "entry_points": entry_points, "runs": runs})


def _run_form_page(request, code, entry_point, *, parent=None, initial=None):
    if entry_point not in code.entry_points:
        messages.error(request, f"entry_point: {entry_point!r} is not an entry point of {code.name}")
        return redirect(code)
    form = CodeRunForm(request.POST or None, entry_point=code.entry_points[entry_point], initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            run = services.code_run_create(
                code=code, owner=request.user, entry_point=entry_point, parameters=form.parameters(),
                name=form.cleaned_data["name"], queue=form.cleaned_data["queue"],
                stop_on_diagnosis=form.cleaned_data["stop_on_diagnosis"], tags=tag_names_parse(form.cleaned_data["tags"]),
                note=form.cleaned_data["note"], parent=parent,
                commit=parent.code_run.commit if parent is not None else None)
        except MLprojectError as exc:
            form.add_parameter_error(exc.field, exc.message)
        else:
            messages.success(request, f"Run “{run.name}” is queued.")
            return redirect(run)
    return render(request, "tracking/code/run_form.html", {
        "form": form, "code": code, "project": code.project, "entry_point": entry_point, "parent": parent},
        status=400 if form.is_bound and form.errors else 200)


@require_http_methods(["GET", "POST"])
def code_run_new(request, code_id):
    code = code_or_404(request.user, code_id)
    return _run_form_page(request, code, request.GET.get("entry_point") or next(iter(code.entry_points), "main"))


@require_http_methods(["GET", "POST"])
def code_run_clone(request, run_id):
    source = access.run_or_404(request.user, run_id)
    if source.kind != Run.Kind.CODE:
        return redirect("run-clone", run_id)
    cr = source.code_run
    initial = {f"param_{k}": v for k, v in cr.parameters.items()}
    initial.update(name=f"{source.name} (clone)", queue=source.queue,
                   stop_on_diagnosis=bool(source.config.get("stop_on_diagnosis")),
                   tags=", ".join(t.name for t in source.tags.all()))
    return _run_form_page(request, cr.code, cr.entry_point, parent=source, initial=initial)


@require_GET
def run_output(request, run_id):
    run = access.run_or_404(request.user, run_id)
    cr = getattr(run, "code_run", None) if run.kind == Run.Kind.CODE else None
    return JsonResponse({"status": run.status, "final": run.is_final(),
                         "output": cr.output if cr else "", "exit_code": cr.exit_code if cr else None})


@require_POST
def experiment_follow(request, project_id):
    project = access.project_or_404(request.user, project_id)
    form = FollowForm(request.POST)
    if not form.is_valid():
        messages.error(request, "experiment: " + "; ".join(form.errors.get("experiment", ["is invalid"])))
        return redirect("code-index", project.pk)
    try:
        followed = services.experiment_follow(project=project, user=request.user,
                                              reference=form.cleaned_data["experiment"])
    except MLprojectError as exc:
        messages.error(request, f"{exc.field}: {exc.message}")
    else:
        messages.success(request, f"Following “{followed.reference}”: its runs appear in the history shortly.")
    return redirect("code-index", project.pk)


@require_POST
def experiment_unfollow(request, followed_id):
    followed = followed_or_404(request.user, followed_id)
    project_id = followed.project_id
    services.experiment_unfollow(followed=followed)
    messages.info(request, "No longer following that experiment; its runs stay in the history.")
    return redirect("code-index", project_id)


def recommendation_apply(request, rec: Recommendation):
    """Apply for a run of registered code or an imported run (called by the recommendations view):
    a follow-up run of the same code and commit, or the change as arguments to copy."""
    run = rec.run
    reason = services.applicability(run, rec.change)
    external_only = run.kind == Run.Kind.EXTERNAL and run.external_run.code_id is None
    rows = _change_rows(run, rec)
    if request.method == "GET" or reason or external_only:
        return render(request, "tracking/code/apply.html", {
            "rec": rec, "run": run, "project": run.project, "rows": rows, "reason": reason,
            "arguments": services.command_line_arguments(run, rec.change) if external_only else None,
        }, status=200 if request.method == "GET" else 400)
    try:
        with transaction.atomic():  # claimed by a conditional UPDATE: a second click creates nothing
            if not Recommendation.objects.filter(pk=rec.pk, state=Recommendation.State.NEW).update(
                    state=Recommendation.State.APPLIED):
                state = Recommendation.objects.values_list("state", flat=True).get(pk=rec.pk)
                messages.info(request, f"This recommendation was already {state}.")
                return redirect(run)
            child = services.code_run_follow_up(
                run=run, owner=request.user, change=rec.change, applied_recommendation=rec,
                name=f"{run.name} · {rec.rule.split('.')[-1].replace('_', ' ')}")
    except MLprojectError as exc:
        messages.error(request, f"Cannot apply this change: {exc.field}: {exc.message}")
        return redirect(run)
    messages.success(request, f"Follow-up run created with {', '.join(f'{k}={v}' for k, v in rec.change.items())}.")
    return redirect(child)


def _change_rows(run, rec):
    if run.kind == Run.Kind.CODE:
        names, params = run.code_run.mapping, run.code_run.parameters
    else:
        names, params = run.external_run.mapping, run.external_run.params
    return [{"key": k, "parameter": names.get(k, ""), "old": params.get(names.get(k, ""), run.config.get(k)),
             "new": v} for k, v in sorted(rec.change.items())]
