"""Putting queued runs on their Celery queues, fairly between teams. Never raises on a broker outage.

A team has at most RUN_TEAM_CONCURRENCY runs sent to each queue at once (running, or sent and
waiting in the broker); its other runs wait in `queued` (enqueued_at empty) and are sent when
one of its slots frees: when a run ends (the worker calls `dispatch_waiting`) and every few
seconds from beat (workers.recovery). So one team's many runs never starve another team's: a
worker's queue holds at most a few runs of each team, in the order they were sent.
"""
import logging

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from kombu.exceptions import ChannelError, OperationalError

from webapp.celery import app

log = logging.getLogger(__name__)
TRAIN_TASK = "workers.tasks.train_run"
RETRY_POLICY = {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.3, "interval_max": 1}


def team_concurrency() -> int:
    return max(1, getattr(settings, "RUN_TEAM_CONCURRENCY", 2))


def _busy(team_id, queue, exclude):
    """The team's runs holding a slot of the queue: running, or sent and not yet claimed."""
    from tracking.models import Run

    return (Run.objects.filter(project__team_id=team_id, queue=queue)
            .filter(Q(status=Run.Status.RUNNING) | Q(status=Run.Status.QUEUED, enqueued_at__isnull=False))
            .exclude(pk=exclude).count())


def _send(run_id, queue) -> bool:
    try:
        app.send_task(TRAIN_TASK, args=[run_id], queue=queue, retry=True, retry_policy=RETRY_POLICY)
    except (OperationalError, ConnectionError, OSError) as exc:
        log.warning("run %s stays queued: broker unreachable (%s)", run_id, exc)
        return False
    return True


def enqueue_run(run_id: int) -> bool:
    """Send the run to its queue if its team has a free slot there; True when sent. False (the run
    stays queued, to be sent later) when the team's slots are taken or the broker is unreachable."""
    from tracking.models import Run, Team

    run = Run.objects.select_related("project").only("queue", "status", "enqueued_at", "project__team_id").get(pk=run_id)
    if run.status != Run.Status.QUEUED or run.enqueued_at is not None:
        return False
    team_id = run.project.team_id
    with transaction.atomic():
        list(Team.objects.select_for_update().filter(pk=team_id))  # one dispatch of a team at a time
        if _busy(team_id, run.queue, run_id) >= team_concurrency():
            return False
        # the slot is taken before the message is sent, and given back if it cannot be
        if not Run.objects.filter(pk=run_id, status=Run.Status.QUEUED, enqueued_at__isnull=True).update(
                enqueued_at=timezone.now()):
            return False
    if not _send(run_id, run.queue):
        Run.objects.filter(pk=run_id, status=Run.Status.QUEUED).update(enqueued_at=None)
        return False
    return True


def resend_run(run_id: int) -> bool:
    """Send a run whose message was lost again (a duplicate is harmless: the claim is conditional)."""
    from tracking.models import Run

    run = Run.objects.only("queue", "status").get(pk=run_id)
    if run.status != Run.Status.QUEUED or not _send(run_id, run.queue):
        return False
    Run.objects.filter(pk=run_id, status=Run.Status.QUEUED).update(enqueued_at=timezone.now())
    return True


def dispatch_waiting(*, team_id=None, limit=200) -> int:
    """Send waiting runs (oldest first) wherever their team has a free slot; returns how many."""
    from tracking.models import Run

    waiting = Run.objects.filter(status=Run.Status.QUEUED, enqueued_at__isnull=True)
    if team_id is not None:
        waiting = waiting.filter(project__team_id=team_id)
    sent, full = 0, set()
    for run_id, team, queue in waiting.order_by("created_at", "pk").values_list(
            "pk", "project__team_id", "queue")[:limit]:
        if (team, queue) in full:
            continue
        if enqueue_run(run_id):
            sent += 1
        else:
            full.add((team, queue))
    return sent


def queue_lengths(queues) -> dict:
    """Messages waiting in each broker queue ({} when the broker cannot be asked)."""
    lengths = {}
    try:
        with app.connection_for_read() as conn:
            channel = conn.default_channel
            for queue in queues:
                try:
                    lengths[queue] = channel.queue_declare(queue=queue, passive=True).message_count
                except ChannelError:  # never declared: no worker consumes it yet, nothing waits in it
                    lengths[queue] = 0
    except (OperationalError, ConnectionError, OSError) as exc:
        log.warning("broker queues not readable (%s)", exc)
        return {}
    return lengths
