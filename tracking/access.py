"""Access helpers: return the object, or raise Http404 for a user outside its team.

Every view that takes an object id goes through one of these, so that a user of
another team cannot tell a forbidden object from a missing one.
"""
import re

from django.http import Http404
from django.shortcuts import get_object_or_404

from .models import Invite, Membership, Project, Recommendation, Run, Team


def team_ids(user):
    return Membership.objects.filter(user=user).values_list("team_id", flat=True)


def membership_or_404(user, team_id) -> Membership:
    return get_object_or_404(Membership.objects.select_related("team"), team_id=team_id, user=user)


def admin_membership_or_404(user, team_id) -> Membership:
    membership = membership_or_404(user, team_id)
    if not membership.is_admin():
        raise Http404("Only a team admin can do this.")
    return membership


def member_of_team_or_404(team_id, membership_id) -> Membership:
    return get_object_or_404(Membership.objects.select_related("team", "user"), pk=membership_id, team_id=team_id)


def team_or_404(user, team_id) -> Team:
    return membership_or_404(user, team_id).team


def project_or_404(user, project_id) -> Project:
    return get_object_or_404(Project.objects.select_related("team"), pk=project_id, team__memberships__user=user)


def run_or_404(user, run_id) -> Run:
    qs = Run.objects.select_related("project__team", "owner", "parent", "applied_recommendation")
    return get_object_or_404(qs, pk=run_id, project__team__memberships__user=user)


def runs_or_404(user, run_ids) -> list[Run]:
    """All of these runs, in the given order, or 404 if any is missing or foreign."""
    runs = {r.pk: r for r in Run.objects.select_related("project", "owner").filter(
        pk__in=run_ids, project__team__memberships__user=user)}
    if len(runs) != len(set(run_ids)):
        raise Http404("No such run.")
    return [runs[i] for i in run_ids]


def recommendation_or_404(user, rec_id) -> Recommendation:
    qs = Recommendation.objects.select_related("run__project__team")
    return get_object_or_404(qs, pk=rec_id, run__project__team__memberships__user=user)


def invite_or_404(token) -> Invite:
    """Invites are opened by users who are not members yet: the secret token is the access check."""
    return get_object_or_404(Invite.objects.select_related("team"), token=token)


def mlflow_ui_url(user, run) -> str:
    """The run's page in the MLflow UI, for staff only: the MLflow UI holds every team's runs and
    only operators hold MLflow logins (README, "Security and limits"). Empty when MLFLOW_UI_URL
    is not set, the run has no MLflow run yet, or the user is not staff."""
    from django.conf import settings

    if not (settings.MLFLOW_UI_URL and run.mlflow_run_id and user.is_staff):
        return ""
    return f"{settings.MLFLOW_UI_URL}/#/runs/{run.mlflow_run_id}?workflowType=machine_learning"


def int_param(value, default=None):
    """A number from a query string: 1 to 18 ASCII digits (it fits a 64-bit column), else `default`.
    '²'.isdigit() is true and int('²') fails; 10**20 overflows the database: neither is a 500."""
    return int(value) if isinstance(value, str) and re.fullmatch(r"[0-9]{1,18}", value) else default
