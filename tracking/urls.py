from django.urls import path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from rest_framework.permissions import IsAuthenticated

from . import api, views, views_notifications

SIGNED_IN = [IsAuthenticated]


class IdConverter:
    """A database id in a URL: 1 to 18 ASCII digits, so it fits a 64-bit integer column. Anything
    else ('²', 10**20) is a 404, never an overflow in the database (use <id:...>, not <id:...>)."""

    regex = "[0-9]{1,18}"

    def to_python(self, value):
        return int(value)

    def to_url(self, value):
        return str(value)


register_converter(IdConverter, "id")

urlpatterns = [
    path("", views.home, name="home"),
    path("teams/new/", views.team_create, name="team-create"),
    path("teams/<id:team_id>/", views.team_detail, name="team"),
    path("teams/<id:team_id>/projects/new/", views.project_create, name="project-create"),
    path("teams/<id:team_id>/invites/new/", views.invite_create, name="invite-create"),
    path("teams/<id:team_id>/members/<id:membership_id>/remove/", views.member_remove, name="member-remove"),
    path("invites/<str:token>/", views.invite_open, name="invite"),
    path("invites/<str:token>/accept/", views.invite_accept, name="invite-accept"),
    path("invites/<str:token>/signup/", views.invite_signup, name="invite-signup"),
    path("projects/<id:project_id>/", views.project_detail, name="project"),
    path("projects/<id:project_id>/runs/new/", views.run_new, name="run-new"),
    path("projects/<id:project_id>/compare/", views.runs_compare, name="runs-compare"),
    path("runs/<id:run_id>/", views.run_detail, name="run"),
    path("runs/<id:run_id>/data.json", views.run_data, name="run-data"),
    path("runs/<id:run_id>/mlflow/", views.run_mlflow, name="run-mlflow"),
    path("runs/<id:run_id>/analysis/", views.run_analysis, name="run-analysis"),
    path("runs/<id:run_id>/clone/", views.run_clone, name="run-clone"),
    path("runs/<id:run_id>/stop/", views.run_stop, name="run-stop"),
    path("runs/<id:run_id>/annotate/", views.run_annotate, name="run-annotate"),
    path("account/token/", views.api_token, name="api-token"),
    path("notifications/", views_notifications.notification_settings, name="notification-settings"),
    path("teams/<id:team_id>/emails/failed/", views_notifications.team_failed_emails, name="team-failed-emails"),
    path("teams/<id:team_id>/emails/<id:outbox_id>/retry/", views_notifications.outbox_email_retry,
         name="outbox-email-retry"),
    # JSON API (token auth) and its OpenAPI schema and docs
    path("api/projects/", api.ProjectList.as_view(), name="api-projects"),
    path("api/runs/", api.RunListCreate.as_view(), name="api-runs"),
    path("api/runs/<id:pk>/", api.RunDetail.as_view(), name="api-run"),
    path("api/runs/<id:pk>/metrics/", api.RunMetrics.as_view(), name="api-run-metrics"),
    path("api/runs/<id:pk>/stop/", api.RunStop.as_view(), name="api-run-stop"),
    path("api/schema/", SpectacularAPIView.as_view(permission_classes=SIGNED_IN), name="api-schema"),
    # Swagger UI's start script as a file of its own (the Content-Security-Policy refuses inline scripts)
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema", permission_classes=SIGNED_IN),
         name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema", permission_classes=SIGNED_IN),
         name="api-redoc"),
]

# Tuning: LR range test, sweeps, autopilot (tracking/views_tuning.py)
from . import views_tuning  # noqa: E402

urlpatterns += [
    path("runs/<id:run_id>/lr-find/start/", views_tuning.lr_find_start, name="lr-find-start"),
    path("lr-find/<id:run_id>/", views_tuning.lr_find_detail, name="lr-find"),
    path("lr-find/<id:run_id>/use/", views_tuning.lr_find_use, name="lr-find-use"),
    path("runs/<id:run_id>/sweep/new/", views_tuning.sweep_new, name="sweep-new"),
    path("sweeps/<id:sweep_id>/", views_tuning.sweep_detail, name="sweep"),
    path("sweeps/<id:sweep_id>/stop/", views_tuning.sweep_stop, name="sweep-stop"),
    path("runs/<id:run_id>/autopilot/", views_tuning.autopilot_start, name="autopilot-start"),
    path("autopilots/<id:pilot_id>/", views_tuning.autopilot_detail, name="autopilot"),
    path("autopilots/<id:pilot_id>/stop/", views_tuning.autopilot_stop, name="autopilot-stop"),
    path("projects/<id:project_id>/tuning/", views_tuning.tuning_index, name="tuning"),
]

# Recommendations of the rules engine: apply (confirm page, then a follow-up run) and dismiss
from . import views_recommendations  # noqa: E402

urlpatterns += [
    path("recommendations/<id:rec_id>/apply/", views_recommendations.recommendation_apply,
         name="recommendation_apply"),
    path("recommendations/<id:rec_id>/dismiss/", views_recommendations.recommendation_dismiss,
         name="recommendation_dismiss"),
]

# The team's own code (MLflow projects) and followed MLflow experiments (tracking/code/)
from .code.urls import urlpatterns as code_urlpatterns  # noqa: E402

urlpatterns += code_urlpatterns
