"""Registered code of a project (an MLflow project: a directory under CODE_ROOT or a git URL
at a commit), its runs, and the MLflow experiments a project follows (their runs imported).

These models belong to the `tracking` app (tracking/models.py imports them)."""
from django.conf import settings
from django.db import models
from django.urls import reverse


class Code(models.Model):
    """An MLflow project registered by a team admin. Nothing runs at registration: the
    MLproject's entry points and typed parameters are read and stored here."""

    class Source(models.TextChoices):
        DIRECTORY = "dir"
        GIT = "git"

    project = models.ForeignKey("tracking.Project", on_delete=models.CASCADE, related_name="codes")
    name = models.CharField(max_length=100)
    source = models.CharField(max_length=3, choices=Source.choices)
    path = models.CharField(max_length=1000, blank=True)  # absolute, under CODE_ROOT (source "dir")
    git_url = models.CharField(max_length=1000, blank=True)
    git_ref = models.CharField(max_length=200, blank=True)
    commit = models.CharField(max_length=40, blank=True)  # the ref resolved at registration; a dir's HEAD if any
    entry_points = models.JSONField(default=dict)  # {name: {"command", "parameters": {p: {"type", "default"}}}}
    registered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "tracking"
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="unique_code_name_per_project")]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("code", args=[self.pk])

    def location(self):
        return self.path if self.source == self.Source.DIRECTORY else f"{self.git_url} @ {self.git_ref}"


class CodeRun(models.Model):
    """The code side of a Run of kind "code": which code, commit and entry point it runs with
    which parameters, and what the process printed and returned."""

    run = models.OneToOneField("tracking.Run", on_delete=models.CASCADE, related_name="code_run")
    code = models.ForeignKey(Code, on_delete=models.PROTECT, related_name="runs")
    commit = models.CharField(max_length=40, blank=True)
    entry_point = models.CharField(max_length=200)
    parameters = models.JSONField(default=dict)  # every parameter of the entry point, typed
    mapping = models.JSONField(default=dict)  # {DESIGN key: parameter name}
    exit_code = models.IntegerField(null=True, blank=True)
    output = models.TextField(blank=True)  # the last OUTPUT_LINES lines of stdout and stderr
    output_updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "tracking"


class FollowedExperiment(models.Model):
    """An experiment of the configured MLflow tracking server whose runs a project imports
    (read only: nothing is written back to MLflow)."""

    project = models.ForeignKey("tracking.Project", on_delete=models.CASCADE, related_name="followed_experiments")
    reference = models.CharField(max_length=500)  # what the user typed: a name or an id
    by_id = models.BooleanField(default=False)
    experiment_id = models.CharField(max_length=100, blank=True)
    experiment_name = models.CharField(max_length=500, blank=True)  # as last seen
    state = models.CharField(max_length=300, blank=True)  # "" = fine, else what went wrong, shown on the page
    checked_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "tracking"
        constraints = [models.UniqueConstraint(fields=["project", "reference"], name="follow_once_per_project")]

    def __str__(self):
        return self.experiment_name or self.reference


class ExternalRun(models.Model):
    """The import side of a Run of kind "external": an MLflow run logged outside Runwise."""

    run = models.OneToOneField("tracking.Run", on_delete=models.CASCADE, related_name="external_run")
    followed = models.ForeignKey(FollowedExperiment, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="runs")  # empty once the experiment is unfollowed
    params = models.JSONField(default=dict)  # the MLflow params, as logged
    mapping = models.JSONField(default=dict)  # {DESIGN key: param name}
    code = models.ForeignKey(Code, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    entry_point = models.CharField(max_length=200, blank=True)
    mlflow_status = models.CharField(max_length=20, blank=True)
    state = models.CharField(max_length=300, blank=True)  # "" = present; "deleted in MLflow ..." etc.
    checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "tracking"
