"""Pages. Each view: an access helper (404 outside the user's teams), a form, one service call,
a redirect. Reads come from tracking.selectors."""
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from rest_framework.authtoken.models import Token

from . import access, selectors, services
from .config import ConfigError
from .datasets import uploads
from .forms import ProjectForm, RunForm, RunNoteForm, SignUpForm, TeamForm
from .models import Membership, Project, Run

PAGE_SIZES = (25, 50, 100, 200)


@require_GET
def home(request):
    memberships = Membership.objects.filter(user=request.user).select_related("team").order_by("team__name")
    projects = Project.objects.filter(team__memberships__user=request.user).order_by("team__name", "name")
    return render(request, "tracking/home.html", {
        "memberships": memberships, "projects": projects, "team_form": TeamForm()})


@require_POST
def team_create(request):
    form = TeamForm(request.POST)
    if not form.is_valid():
        messages.error(request, "name: " + "; ".join(form.errors.get("name", ["is invalid"])))
        return redirect("home")
    team = services.team_create(name=form.cleaned_data["name"], creator=request.user)
    return redirect("team", team.pk)


@require_GET
def team_detail(request, team_id):
    membership = access.membership_or_404(request.user, team_id)
    team = membership.team
    return render(request, "tracking/team.html", {
        "team": team, "membership": membership,
        "members": team.memberships.select_related("user").order_by("user__username"),
        "invites": team.invites.filter(used_at__isnull=True).order_by("-created_at") if membership.is_admin() else [],
        "projects": team.projects.order_by("name"), "project_form": ProjectForm(team=team),
    })


@require_POST
def project_create(request, team_id):
    team = access.membership_or_404(request.user, team_id).team
    form = ProjectForm(request.POST, team=team)
    if not form.is_valid():
        for field, errors in form.errors.items():
            messages.error(request, f"{field}: {'; '.join(errors)}")
        return redirect("team", team.pk)
    try:
        project = services.project_create(team=team, **form.cleaned_data)
    except ConfigError as exc:  # the same name submitted twice at once: the constraint decided
        messages.error(request, f"{exc.field}: {exc.message}")
        return redirect("team", team.pk)
    return redirect(project)


@require_POST
def invite_create(request, team_id):
    membership = access.admin_membership_or_404(request.user, team_id)
    invite = services.invite_create(team=membership.team, created_by=request.user)
    messages.success(request, "Invite link created: " + request.build_absolute_uri(
        reverse("invite", args=[invite.token])))
    return redirect("team", team_id)


@require_POST
def member_remove(request, team_id, membership_id):
    access.admin_membership_or_404(request.user, team_id)
    target = access.member_of_team_or_404(team_id, membership_id)
    try:
        services.member_remove(membership=target, by=request.user)
    except services.ServiceError as exc:  # e.g. the last admin: nothing changed, back to the team
        messages.error(request, str(exc))
        return redirect("team", team_id)
    if target.user_id == request.user.id:
        return redirect("home")
    return redirect("team", team_id)


@require_GET
def invite_open(request, token):
    """The invite: join with a click when signed in, else sign up here (or sign in and come back)."""
    invite = access.invite_or_404(token)
    form = SignUpForm() if not request.user.is_authenticated else None
    return render(request, "tracking/invite.html", {"invite": invite, "signup_form": form})


@require_POST
def invite_signup(request, token):
    invite = access.invite_or_404(token)
    if request.user.is_authenticated:
        return redirect("invite", token)
    form = SignUpForm(request.POST)
    if form.is_valid():
        try:
            user = services.user_signup_with_invite(invite=invite, username=form.cleaned_data["username"],
                                                    email=form.cleaned_data["email"],
                                                    password=form.cleaned_data["password1"])
        except services.ServiceError as exc:
            form.add_error(None, str(exc))
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, f"Welcome, {user.username}: you joined {invite.team.name}.")
            return redirect("team", invite.team_id)
    return render(request, "tracking/invite.html", {"invite": invite, "signup_form": form}, status=400)


@require_POST
def invite_accept(request, token):
    invite = access.invite_or_404(token)
    if not request.user.is_authenticated:
        return redirect_to_login(reverse("invite", args=[token]))
    try:
        services.invite_accept(invite=invite, user=request.user)
    except services.ServiceError as exc:
        messages.error(request, str(exc))
        return redirect("home")
    messages.success(request, f"You joined {invite.team.name}.")
    return redirect("team", invite.team_id)


@require_GET
def project_detail(request, project_id):
    project = access.project_or_404(request.user, project_id)
    run_filter, runs, sort = selectors.run_history(project, request.GET)
    size = access.int_param(request.GET.get("size"), 25)
    page = Paginator(runs, size if size in PAGE_SIZES else 25).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "tracking/project.html", {
        "project": project, "filter": run_filter, "page": page, "sort": sort, "query": query.urlencode(),
        "query_nosort": _without(query, "sort"), "page_sizes": PAGE_SIZES, "size": page.paginator.per_page,
    })


def _without(query, key):
    query = query.copy()
    query.pop(key, None)
    return query.urlencode()


def _run_form_page(request, project, *, parent=None, initial=None):
    """GET: the run form (prefilled for a clone); POST: validate, store a CSV, create and queue."""
    form = RunForm(request.POST or None, request.FILES or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        config, stored = form.cleaned_config, None
        if form.cleaned_data.get("csv_file"):
            config["csv_path"] = stored = uploads.csv_store(uploaded=form.cleaned_data["csv_file"],
                                                            team_id=project.team_id, summary=form.csv_summary)
        try:
            run = services.run_create(project=project, owner=request.user, config=config, parent=parent,
                                      name=form.cleaned_data["name"], tags=form.tag_names(),
                                      note=form.cleaned_data["note"])
        except ConfigError as exc:
            if stored:  # a rejected submission leaves nothing on disk
                uploads.csv_remove(path=stored)
            form.add_error(exc.field if exc.field in form.fields else None, f"{exc.field}: {exc.message}")
        else:
            messages.success(request, f"Run “{run.name}” is queued.")
            return redirect(run)
    return render(request, "tracking/run_form.html", {"form": form, "project": project, "parent": parent},
                  status=400 if form.is_bound and form.errors else 200)


@require_http_methods(["GET", "POST"])
def run_new(request, project_id):
    project = access.project_or_404(request.user, project_id)
    return _run_form_page(request, project)


@require_http_methods(["GET", "POST"])
def run_clone(request, run_id):
    source = access.run_or_404(request.user, run_id)
    return _run_form_page(request, source.project, parent=source, initial=RunForm.initial_from_run(source))


@require_GET
def run_detail(request, run_id):
    run = access.run_or_404(request.user, run_id)
    # Staff only (access.mlflow_ui_url): through /runs/<id>/mlflow/, to MLflow's model-training view.
    mlflow_url = reverse("run-mlflow", args=[run.pk]) if access.mlflow_ui_url(request.user, run) else ""
    return render(request, "tracking/run.html", {
        "run": run, "project": run.project, "mlflow_url": mlflow_url,
        "children": run.children.select_related("owner").order_by("created_at"),
        "note_form": RunNoteForm(initial={"note": run.note, "tags": ", ".join(t.name for t in run.tags.all())}),
        "config_groups": selectors.config_groups(run.config),
        "chart_script": json_script_text(selectors.run_chart_json(run), "run-data"),
    })


@require_GET
def run_mlflow(request, run_id):
    """"Open in MLflow": the run in MLflow's view for model training runs (MLflow 3 opens the GenAI
    view unless told otherwise), under its experiment."""
    run = access.run_or_404(request.user, run_id)
    if not access.mlflow_ui_url(request.user, run):  # no MLflow run yet, or not staff
        raise Http404("No MLflow link for this run.")
    return redirect(mlflow_ui_run_url(run.mlflow_run_id, _mlflow_experiment_of(run.mlflow_run_id)))


def _mlflow_experiment_of(mlflow_run_id):
    """The MLflow run's experiment id; None when the store cannot say (the link then opens the run
    by its id alone, which MLflow's UI also resolves)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return MlflowClient(tracking_uri=settings.MLFLOW_TRACKING_URI).get_run(mlflow_run_id).info.experiment_id
    except (MlflowException, OSError):
        return None


def mlflow_ui_run_url(mlflow_run_id, experiment_id=None):
    route = f"experiments/{experiment_id}/runs/{mlflow_run_id}" if experiment_id else f"runs/{mlflow_run_id}"
    return f"{settings.MLFLOW_UI_URL}/#/{route}?workflowType=machine_learning"


@require_GET
def run_data(request, run_id):
    run = access.run_or_404(request.user, run_id)
    return HttpResponse(selectors.run_chart_json(run), content_type="application/json")


JSON_SCRIPT_ESCAPES = {ord(">"): "\\u003E", ord("<"): "\\u003C", ord("&"): "\\u0026"}


def json_script_text(text: str, element_id: str):
    """Django's json_script filter for JSON already serialised (the same escapes: the text can
    never close the script element)."""
    return format_html('<script id="{}" type="application/json">{}</script>', element_id,
                       mark_safe(text.translate(JSON_SCRIPT_ESCAPES)))


@require_GET
def run_analysis(request, run_id):
    """The run page's diagnosis card alone: the page swaps it in when a new analysis is stored."""
    run = access.run_or_404(request.user, run_id)
    return render(request, "tracking/_recommendations.html", {"run": run})


@require_POST
def run_stop(request, run_id):
    run = access.run_or_404(request.user, run_id)
    run = services.run_request_stop(run=run)
    messages.info(request, "Stop requested." if run.status == Run.Status.RUNNING else f"The run is {run.status}.")
    return redirect(run)


@require_POST
def run_annotate(request, run_id):
    run = access.run_or_404(request.user, run_id)
    form = RunNoteForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(f"{k}: {' '.join(v)}" for k, v in form.errors.items()))
        return redirect(run)
    services.run_annotate(run=run, note=form.cleaned_data["note"], tags=form.tag_names())
    return redirect(run)


@require_GET
def runs_compare(request, project_id):
    project = access.project_or_404(request.user, project_id)
    ids = [i for i in map(access.int_param, request.GET.getlist("runs")) if i is not None]
    if len(set(ids)) < 2:
        messages.error(request, "runs: select two or more runs to compare.")
        return redirect(project)
    runs = access.runs_or_404(request.user, list(dict.fromkeys(ids)))
    if any(r.project_id != project.pk for r in runs):
        raise Http404("No such run in this project.")
    compare = selectors.runs_compare(runs)
    return render(request, "tracking/compare.html", {
        "project": project, "runs": runs, "rows": compare["rows"],
        "chart": {"runs": [{"id": r.pk, "name": r.name} for r in runs], "series": compare["series"]},
    })


@require_http_methods(["GET", "POST"])
def api_token(request):
    """Show the user's API token; POST creates (or replaces) it."""
    if request.method == "POST":
        Token.objects.filter(user=request.user).delete()
        Token.objects.create(user=request.user)
        return redirect("api-token")
    return render(request, "tracking/token.html", {"token": Token.objects.filter(user=request.user).first()})
