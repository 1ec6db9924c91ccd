"""Teams, projects, runs and recommendations: the Django side of the one source of truth.

Metric histories, params and artifacts live in MLflow; a Run holds its mlflow_run_id.
MetricSeries is a derived, rebuildable downsampled copy of a run's curves for the pages.
"""
import re
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.urls import reverse
from django.utils import timezone


class Team(models.Model):
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(auto_now_add=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, through="Membership", related_name="teams")

    def __str__(self):
        return self.name


class Membership(models.Model):
    ADMIN, MEMBER = "admin", "member"
    ROLES = [(ADMIN, "Admin"), (MEMBER, "Member")]

    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=ROLES, default=MEMBER)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "user"], name="one_membership_per_team")]

    def is_admin(self):
        return self.role == self.ADMIN


def _invite_token():
    return secrets.token_urlsafe(24)


class Invite(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="invites")
    token = models.CharField(max_length=64, unique=True, default=_invite_token)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    used_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    used_at = models.DateTimeField(null=True, blank=True)

    def is_usable(self):
        return self.used_at is None and self.created_at > timezone.now() - timedelta(days=7)


class Project(models.Model):
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="projects")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["team", "name"], name="unique_project_name_per_team")]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("project", args=[self.pk])


class Tag(models.Model):
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=50)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="unique_tag_per_project")]

    def __str__(self):
        return self.name


class ConfigText(models.Func):
    """A run config's value at `key` as text, written the same in a filter and in an index (with the
    key inline: a query's bound parameter would not match an index's literal), so the history's
    filter on it is an index search: JSON_EXTRACT(config, '$."key"') on SQLite, config ->> 'key'
    on PostgreSQL (Django's own JSON lookups wrap the key in a CASE that no index matches)."""

    output_field = models.CharField()

    def __init__(self, key, **extra):
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", key):
            raise ValueError(f"config key {key!r}: lowercase letters, digits and underscores only")
        self.key = key
        super().__init__(F("config"), **extra)

    def as_sql(self, compiler, connection, **extra_context):
        sql, params = compiler.compile(self.source_expressions[0])
        if connection.vendor == "postgresql":
            return f"({sql} ->> '{self.key}')", params
        return f"JSON_EXTRACT({sql}, '$.\"{self.key}\"')", params

    def deconstruct(self):
        path, args, kwargs = super().deconstruct()
        return path, (self.key,), kwargs


class Run(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        STOPPED = "stopped"
        DIVERGED = "diverged"

    FINAL = (Status.SUCCEEDED, Status.FAILED, Status.STOPPED, Status.DIVERGED)

    class Kind(models.TextChoices):
        TRAIN = "train"
        LR_FIND = "lr_find"
        CODE = "code"  # the team's own code (tracking/code/): CodeRun
        EXTERNAL = "external"  # imported from a followed MLflow experiment: ExternalRun

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="runs")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="runs")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.TRAIN)
    config = models.JSONField()
    queue = models.CharField(max_length=10, default="cpu")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, db_index=True)
    status_reason = models.TextField(blank=True)
    note = models.TextField(blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="runs")

    # Lineage: the run this one was cloned from, and the recommendation it applied.
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="children")
    applied_recommendation = models.ForeignKey(
        "Recommendation", null=True, blank=True, on_delete=models.SET_NULL, related_name="follow_ups"
    )

    # Execution
    mlflow_run_id = models.CharField(max_length=64, blank=True, db_index=True)
    device = models.CharField(max_length=30, blank=True)
    worker = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    stop_requested = models.BooleanField(default=False)
    heartbeat_at = models.DateTimeField(null=True, blank=True)

    # Progress (written a few times a second at most by the worker)
    epoch = models.PositiveIntegerField(default=0)
    step = models.PositiveIntegerField(default=0)
    total_steps = models.PositiveIntegerField(default=0)
    steps_per_epoch = models.PositiveIntegerField(default=0)
    eta_seconds = models.FloatField(null=True, blank=True)
    latest_metrics = models.JSONField(default=dict, blank=True)
    diverged_step = models.PositiveIntegerField(null=True, blank=True)

    # Summary, denormalised for the history table
    best_val_loss = models.FloatField(null=True, blank=True, db_index=True)
    best_val_accuracy = models.FloatField(null=True, blank=True)

    # The rules engine's latest answer (diagnoses, recommendations) as plain data
    analysis = models.JSONField(default=dict, blank=True)
    analysed_at = models.DateTimeField(null=True, blank=True)
    # tracking/analysis.py: an analysis task sent and not started yet (at most one interim a run),
    # and when the final analysis (and its email) was done; Celery beat catches up the ended runs
    # without one.
    analysis_pending_at = models.DateTimeField(null=True, blank=True)
    final_analysed_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        # The history table (tracking.selectors.run_history) filters a project's runs and sorts them:
        # each index serves one sort or filter as an index search (EXPLAIN QUERY PLAN: no scan of
        # every run), and the paginator's count of a filtered page as a covering index.
        indexes = [
            models.Index(fields=["project", "-created_at"]),
            models.Index(fields=["project", "best_val_loss"], name="run_project_best_val_loss"),
            models.Index(fields=["project", "best_val_accuracy"], name="run_project_best_val_acc"),
            models.Index(fields=["project", "started_at"], name="run_project_started"),
            models.Index(F("project"), ConfigText("optimizer"), name="run_project_optimizer"),
            models.Index(fields=["finished_at"], condition=Q(final_analysed_at__isnull=True),
                         name="run_awaiting_final_analysis"),
        ]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("run", args=[self.pk])

    def is_final(self):
        return self.status in self.FINAL

    def duration(self):
        if not self.started_at:
            return None
        return (self.finished_at or timezone.now()) - self.started_at

    def progress_fraction(self):
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0

    def is_stalled(self, timeout=timedelta(minutes=10)):
        return self.status == self.Status.RUNNING and (
            self.heartbeat_at is None or self.heartbeat_at < timezone.now() - timeout
        )


class MetricSeries(models.Model):
    """A downsampled copy of one metric of one run, for charts (derived from MLflow, rebuildable)."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="series")
    key = models.CharField(max_length=100)
    points = models.JSONField(default=list)  # [[step, value], ...] at most ~2,000
    count = models.PositiveIntegerField(default=0)  # points in the full history
    last_step = models.BigIntegerField(default=-1)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "key"], name="one_series_per_run_metric")]


class Recommendation(models.Model):
    class State(models.TextChoices):
        NEW = "new"
        APPLIED = "applied"
        DISMISSED = "dismissed"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="recommendations")
    rule = models.CharField(max_length=100, db_index=True)
    diagnosis = models.CharField(max_length=50)
    change = models.JSONField()
    rationale = models.TextField()
    confidence = models.FloatField()
    rank = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=10, choices=State.choices, default=State.NEW)
    created_at = models.DateTimeField(auto_now_add=True)
    # Outcome, filled when the follow-up run ends: did its best val_loss beat the parent's?
    helped = models.BooleanField(null=True, blank=True)

    class Meta:
        ordering = ["rank"]
        constraints = [models.UniqueConstraint(fields=["run", "rule"], name="one_recommendation_per_rule")]

    def team_record(self):
        """(helped, tried): how often this rule's applied recommendations helped in this run's team."""
        outcomes = Recommendation.objects.filter(
            run__project__team_id=self.run.project.team_id, rule=self.rule, helped__isnull=False)
        return outcomes.filter(helped=True).count(), outcomes.count()


class NotificationSetting(models.Model):
    EVERY_RUN, WITH_RECOMMENDATION, DAILY_DIGEST, NOTHING = "all", "recommended", "digest", "none"
    CHOICES = [
        (EVERY_RUN, "Every run"),
        (WITH_RECOMMENDATION, "Only runs with a recommendation"),
        (DAILY_DIGEST, "A daily digest"),
        (NOTHING, "Nothing"),
    ]
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_settings")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="notification_settings")
    mode = models.CharField(max_length=12, choices=CHOICES, default=EVERY_RUN)
    include_stopped = models.BooleanField(default=False)
    # Runs of sweeps and autopilots are summarised in the sweep's or autopilot's one email; a user
    # who ticks this hears about each of them too.
    include_tuning_runs = models.BooleanField(default=False)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "project"], name="one_setting_per_user_project")]


class OutboxEmail(models.Model):
    """One email to one recipient; the unique key makes sending idempotent."""

    class State(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"  # claimed by one send task (claimed_at); reclaimable after a lease
        SENT = "sent"
        FAILED = "failed"

    key = models.CharField(max_length=200, unique=True)  # e.g. "run:42:user:7:run_ended"
    kind = models.CharField(max_length=20)
    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="outbox")
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.CASCADE, related_name="emails")
    subject = models.CharField(max_length=300, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    digest_date = models.DateField(null=True, blank=True)  # the day a digest covers (kind "digest")


class Sweep(models.Model):
    """A coarse-to-fine random search (tracking/sweeps.py): stage 1 many short trials, stage 2
    full-length trials in ranges narrowed around the best. Sampling is Optuna's ask-and-tell."""

    class State(models.TextChoices):
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"
        STOPPED = "stopped"  # by a user: no further trial is asked (sweeps.sweep_stop)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="sweeps")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="sweeps")
    name = models.CharField(max_length=200)
    base_config = models.JSONField()
    space = models.JSONField()  # {param: {"low", "high", "log"} | {"choices": [...]}}
    narrowed_space = models.JSONField(default=dict, blank=True)  # stage 2's ranges
    stage = models.PositiveSmallIntegerField(default=1)
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING, db_index=True)
    stage1_trials = models.PositiveIntegerField(default=8)
    stage1_epochs = models.PositiveIntegerField(default=2)
    stage2_trials = models.PositiveIntegerField(default=3)
    seed = models.PositiveIntegerField(default=0)
    best_run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    stop_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("sweep", args=[self.pk])

    def study_name(self, stage=None):
        # The creation time keeps names unique if the database is reset but the Optuna file is not.
        return f"runwise-sweep-{self.pk}-{self.created_at:%Y%m%d%H%M%S%f}-stage-{stage or self.stage}"


class Trial(models.Model):
    """One Optuna trial of a sweep and the run that evaluates it."""

    class State(models.TextChoices):
        RUNNING = "running"
        COMPLETE = "complete"
        FAILED = "failed"
        STOPPED = "stopped"  # its run was stopped (told to the study as PRUNED)

    sweep = models.ForeignKey(Sweep, on_delete=models.CASCADE, related_name="trials")
    stage = models.PositiveSmallIntegerField()
    number = models.PositiveIntegerField()  # Optuna's trial number within the stage's study
    params = models.JSONField()
    run = models.OneToOneField(Run, on_delete=models.CASCADE, related_name="trial")
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING)
    value = models.FloatField(null=True, blank=True)  # the run's best val_loss, told to the study

    class Meta:
        ordering = ["stage", "number"]
        constraints = [models.UniqueConstraint(fields=["sweep", "stage", "number"], name="one_trial_per_number")]


class Autopilot(models.Model):
    """"Tune this run": rounds of advise -> apply the first recommendation -> train -> compare."""

    class State(models.TextChoices):
        RUNNING = "running"
        DONE = "done"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="autopilots")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="autopilots")
    start_run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="autopilots")
    max_rounds = models.PositiveIntegerField(default=4)
    state = models.CharField(max_length=10, choices=State.choices, default=State.RUNNING, db_index=True)
    stop_reason = models.TextField(blank=True)
    current_run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    best_run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    best_val_loss = models.FloatField(null=True, blank=True)
    rounds_without_improvement = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["start_run"], condition=models.Q(state="running"),
                                               name="one_running_autopilot_per_run")]

    def get_absolute_url(self):
        return reverse("autopilot", args=[self.pk])

    def rounds_done(self):
        return self.rounds.filter(run__status__in=Run.FINAL).count()


class AutopilotRound(models.Model):
    """One round: the run trained from `parent_run` with one recommendation applied."""

    autopilot = models.ForeignKey(Autopilot, on_delete=models.CASCADE, related_name="rounds")
    number = models.PositiveIntegerField()
    parent_run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="+")
    run = models.OneToOneField(Run, on_delete=models.CASCADE, related_name="autopilot_round")
    rule = models.CharField(max_length=100, blank=True)
    change = models.JSONField(default=dict)
    improved = models.BooleanField(null=True, blank=True)

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["autopilot", "number"], name="one_round_per_number")]


# Registered code, its runs and followed MLflow experiments (tracking/code/).
from tracking.code.models import Code, CodeRun, ExternalRun, FollowedExperiment  # noqa: E402,F401
