"""Who hears about which run: outbox rows for run emails and daily digests.

Services only decide and record; sending is `tracking.email_tasks.send_outbox_email`,
enqueued after commit. An OutboxEmail row per (run or digest, recipient, kind), unique
by `key`, makes every step idempotent: a second analysis, a retried or re-delivered
task never produces a second email.

Defaults when a user has no NotificationSetting for a project:
- the run's owner gets every run of their own ("all");
- other members get nothing ("none") until they subscribe on the settings page.
A stopped run is emailed only if its owner asked for it (the owner's setting for the
project has include_stopped); the digest lists stopped runs like the others.
Recipients are always current members of the run's team with an email address.
"""
from __future__ import annotations

import datetime as dt
import logging

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from .models import NotificationSetting, OutboxEmail, Project, Recommendation, Run

log = logging.getLogger(__name__)

RUN_ENDED, DIGEST = "run_ended", "digest"
OWNER_DEFAULT = NotificationSetting.EVERY_RUN
MEMBER_DEFAULT = NotificationSetting.NOTHING


def run_email_key(run_id: int, user_id: int, kind: str = RUN_ENDED) -> str:
    return f"run:{run_id}:user:{user_id}:{kind}"


def digest_key(day: dt.date, user_id: int) -> str:
    return f"digest:{day.isoformat()}:user:{user_id}:{DIGEST}"


def effective_mode(modes: dict, user_id: int, owner_id: int) -> str:
    """The user's mode from {user_id: mode}, or the default (owner: every run, others: nothing)."""
    return modes.get(user_id, OWNER_DEFAULT if user_id == owner_id else MEMBER_DEFAULT)


def run_has_recommendation(run: Run) -> bool:
    return bool((run.analysis or {}).get("recommendations")) or run.recommendations.exists()


def owner_wants_stopped(run: Run) -> bool:
    return NotificationSetting.objects.filter(
        user_id=run.owner_id, project_id=run.project_id, include_stopped=True).exists()


def is_tuning_run(run: Run) -> bool:
    """A trial of a sweep or a round of an autopilot: summarised in that sweep's or autopilot's email."""
    from .models import AutopilotRound, Trial

    return Trial.objects.filter(run_id=run.pk).exists() or AutopilotRound.objects.filter(run_id=run.pk).exists()


def run_recipients(run: Run) -> list:
    """Current members of the run's team who asked for this run by email. A sweep's or an
    autopilot's run only goes to those who ticked "runs of sweeps and autopilots too"."""
    if run.status not in Run.FINAL:
        return []
    if run.status == Run.Status.STOPPED and not owner_wants_stopped(run):
        return []
    settings_rows = NotificationSetting.objects.filter(project_id=run.project_id)
    modes = dict(settings_rows.values_list("user_id", "mode"))
    if is_tuning_run(run):
        every_one = set(settings_rows.filter(include_tuning_runs=True).values_list("user_id", flat=True))
    else:
        every_one = None
    wanted = {NotificationSetting.EVERY_RUN}
    if run_has_recommendation(run):
        wanted.add(NotificationSetting.WITH_RECOMMENDATION)
    members = get_user_model().objects.filter(
        memberships__team_id=run.project.team_id, is_active=True).exclude(email="").order_by("pk")
    return [user for user in members if effective_mode(modes, user.pk, run.owner_id) in wanted
            and (every_one is None or user.pk in every_one)]


def outbox_create(*, key: str, kind: str, recipient, team_id: int, run_id=None, digest_date=None):
    """The outbox row for this key: (row, created). An existing row is never touched."""
    try:
        with transaction.atomic():
            row = OutboxEmail.objects.create(key=key, kind=kind, recipient=recipient, team_id=team_id,
                                             run_id=run_id, digest_date=digest_date)
        return row, True
    except IntegrityError:
        return OutboxEmail.objects.get(key=key), False


def enqueue_send(outbox_id: int) -> None:
    """Send this outbox row after the current transaction commits."""
    from .email_tasks import enqueue_outbox_email

    transaction.on_commit(lambda: enqueue_outbox_email(outbox_id))


def notify_run_ended(run_id: int) -> list[OutboxEmail]:
    """Called after an ended run has been analysed: one outbox row per recipient, sent after
    commit. Returns the rows created now (none on a second call for the same run)."""
    run = Run.objects.select_related("project__team", "owner").filter(pk=run_id).first()
    if run is None:
        log.warning("notify_run_ended: run %s does not exist", run_id)
        return []
    created = []
    with transaction.atomic():
        for user in run_recipients(run):
            row, is_new = outbox_create(key=run_email_key(run.pk, user.pk), kind=RUN_ENDED, recipient=user,
                                        team_id=run.project.team_id, run_id=run.pk)
            if is_new:
                created.append(row)
                enqueue_send(row.pk)
    return created


# Daily digest ---------------------------------------------------------------------------

def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time.min, tzinfo=dt.timezone.utc)
    return start, start + dt.timedelta(days=1)


def digest_projects(user) -> list[Project]:
    """Projects of the user's current teams for which the user chose the daily digest."""
    return list(Project.objects.filter(
        team__memberships__user=user, notification_settings__user=user,
        notification_settings__mode=NotificationSetting.DAILY_DIGEST,
    ).select_related("team").order_by("team__name", "name"))


def digest_content(*, user, day: dt.date) -> list[dict]:
    """The day's finished runs of the user's digest projects, grouped by project, with the
    recommendations that were applied and helped. Empty when there is nothing to say."""
    start, end = day_bounds(day)
    groups = []
    for project in digest_projects(user):
        runs = list(project.runs.filter(status__in=Run.FINAL, finished_at__gte=start, finished_at__lt=end)
                    .select_related("owner").prefetch_related("recommendations").order_by("finished_at", "pk"))
        helped = list(Recommendation.objects.filter(run__project=project, helped=True,
                                                    follow_ups__in=runs).select_related("run").distinct()
                      ) if runs else []
        if runs:
            groups.append({"project": project, "runs": runs, "helped": helped})
    return groups


def digest_recipients():
    """Users with at least one digest subscription in a project of one of their current teams."""
    return get_user_model().objects.filter(
        is_active=True, notification_settings__mode=NotificationSetting.DAILY_DIGEST,
        notification_settings__project__team__memberships__user_id=F("pk"),
    ).exclude(email="").distinct().order_by("pk")


def digest_create(*, user, day: dt.date):
    """The user's digest row for the day, if they have finished runs to hear about."""
    groups = digest_content(user=user, day=day)
    if not groups:
        return None, False
    team_id = groups[0]["project"].team_id
    return outbox_create(key=digest_key(day, user.pk), kind=DIGEST, recipient=user,
                         team_id=team_id, digest_date=day)


def digests_create(day: dt.date | None = None) -> list[OutboxEmail]:
    """One digest per subscribed user for `day` (default: yesterday, UTC), sent after commit."""
    day = day or (timezone.now() - dt.timedelta(days=1)).date()
    created = []
    for user in digest_recipients():
        with transaction.atomic():
            row, is_new = digest_create(user=user, day=day)
            if is_new:
                created.append(row)
                enqueue_send(row.pk)
    return created


def stale_outbox_ids(*, older_than=dt.timedelta(minutes=2), lease=None) -> list[int]:
    """Rows that should be sent but may have missed their task (broker down at commit, a lost
    worker): pending for a while and never tried (a tried pending row has a retry scheduled, and
    must keep its back-off), or claimed longer ago than the lease."""
    from .email_tasks import CLAIM_LEASE

    now = timezone.now()
    lease = lease or CLAIM_LEASE
    pending = OutboxEmail.objects.filter(state=OutboxEmail.State.PENDING, attempts=0,
                                         created_at__lt=now - older_than)
    stuck = OutboxEmail.objects.filter(state=OutboxEmail.State.SENDING, claimed_at__lt=now - lease)
    return list(pending.values_list("pk", flat=True)) + list(stuck.values_list("pk", flat=True))


def failed_emails(team) -> list[OutboxEmail]:
    return list(team.outbox.filter(state=OutboxEmail.State.FAILED)
                .select_related("recipient", "run").order_by("-created_at"))


def outbox_retry(*, outbox: OutboxEmail) -> bool:
    """An admin asks to try a failed email again: back to pending, sent after commit."""
    updated = OutboxEmail.objects.filter(pk=outbox.pk, state=OutboxEmail.State.FAILED).update(
        state=OutboxEmail.State.PENDING, attempts=0)
    if updated:
        enqueue_send(outbox.pk)
    return bool(updated)



# Settings ---------------------------------------------------------------------------------

def notification_settings_of(user) -> list[dict]:
    """Every project of the user's current teams with the user's setting (None = the default)."""
    settings_by_project = {s.project_id: s for s in NotificationSetting.objects.filter(user=user)}
    projects = Project.objects.filter(team__memberships__user=user).select_related("team").order_by(
        "team__name", "name")
    return [dict(project=p, setting=settings_by_project.get(p.pk)) for p in projects]


def notification_setting_save(*, user, project, mode: str, include_stopped: bool, include_tuning_runs: bool = False):
    """Save the user's choice for the project; mode "" goes back to the default (no row)."""
    if not mode:
        NotificationSetting.objects.filter(user=user, project=project).delete()
        return None
    setting, _ = NotificationSetting.objects.update_or_create(
        user=user, project=project, defaults=dict(mode=mode, include_stopped=include_stopped,
                                                  include_tuning_runs=include_tuning_runs))
    return setting
