"""Periodic repairs (Celery beat, every RUN_RECOVERY_INTERVAL s): nothing queued is lost, nothing
running is left hanging.

- `enqueue_waiting_runs`: queued runs that were never sent (their team's slots were taken, or
  Redis was down) are sent where their team has a free slot (workers.dispatch); a run sent more
  than RUN_RESEND_AFTER s ago and still not claimed while its broker queue is empty lost its
  message, and is sent again. A duplicate message is harmless: the claim is a conditional UPDATE.
- `recover_stalled_runs`: a running run whose heartbeat is older than RUN_HEARTBEAT_TIMEOUT lost
  its worker (killed, machine gone). It goes back to `queued` ("worker lost, retrying") and is
  sent at once, to resume from its last checkpoint on the first free worker, until it has had
  RUN_MAX_ATTEMPTS attempts; then it fails with the reason.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from workers.dispatch import dispatch_waiting, enqueue_run, queue_lengths, resend_run
from workers.training import heartbeat_timeout

log = logging.getLogger(__name__)
LOST = "worker lost, retrying"


def enqueue_waiting_runs(*, min_age=timedelta(seconds=0), resend_after=None, limit=100):
    """Send waiting runs where their team has a free slot, and re-send lost messages; returns how many were sent."""
    from tracking.models import Run

    now = timezone.now()
    resend_after = resend_after if resend_after is not None else timedelta(
        seconds=getattr(settings, "RUN_RESEND_AFTER", 30))
    sent = 0
    if min_age:
        young = Run.objects.filter(status=Run.Status.QUEUED, enqueued_at__isnull=True, created_at__gt=now - min_age)
        skip = set(young.values_list("pk", flat=True))
    else:
        skip = set()
    for run_id in (Run.objects.filter(status=Run.Status.QUEUED, enqueued_at__isnull=True).exclude(pk__in=skip)
                   .order_by("created_at", "pk").values_list("pk", flat=True)[:limit]):
        sent += enqueue_run(run_id)
    stale = list(Run.objects.filter(status=Run.Status.QUEUED, enqueued_at__lt=now - resend_after)
                 .values_list("pk", "queue")[:limit])
    if stale:
        empty = {q for q, n in queue_lengths({q for _, q in stale}).items() if n == 0}
        for run_id, queue in stale:
            if queue in empty and resend_run(run_id):  # sent, unclaimed, and nothing waits before it
                log.warning("run %s: its message was lost (queue %s empty): sent again", run_id, queue)
                sent += 1
    if sent:
        log.info("sent %d queued run(s) to their queues", sent)
    return sent


def recover_stalled_runs(*, timeout=None, max_attempts=None):
    """Re-queue (or fail) runs left running by a dead worker; returns (requeued, failed) ids."""
    from tracking.models import Run

    from workers.project_runs import fail_lost_code_runs

    timeout = timeout if timeout is not None else heartbeat_timeout()
    max_attempts = max_attempts or getattr(settings, "RUN_MAX_ATTEMPTS", 3)
    lost_code = fail_lost_code_runs(timeout=timeout)  # a script is not resumed: its run fails
    now = timezone.now()
    # code runs fail instead (above); an imported (external) run has no worker of ours
    stale = Run.objects.filter(status=Run.Status.RUNNING).exclude(kind__in=(Run.Kind.CODE, Run.Kind.EXTERNAL)).filter(
        Q(heartbeat_at__lt=now - timeout) | Q(heartbeat_at__isnull=True, started_at__lt=now - timeout))
    requeued, failed = [], []
    for run in stale.only("pk", "worker", "attempts", "heartbeat_at"):
        silent = f"worker {run.worker or '?'} sent no heartbeat for over {timeout.total_seconds():.0f}s"
        same = Run.objects.filter(pk=run.pk, status=Run.Status.RUNNING, heartbeat_at=run.heartbeat_at)
        if run.attempts < max_attempts:
            if same.update(status=Run.Status.QUEUED, enqueued_at=None,
                           status_reason=f"{LOST} (attempt {run.attempts} of {max_attempts} ended: {silent})"):
                requeued.append(run.pk)
                enqueue_run(run.pk)
        elif same.update(status=Run.Status.FAILED, finished_at=now, eta_seconds=None,
                         status_reason=f"gave up after {run.attempts} attempts: {silent}"):
            failed.append(run.pk)
    failed += lost_code
    if failed:
        dispatch_waiting()  # their slots are free
    if requeued or failed:
        log.warning("stalled runs: re-queued %s, failed %s", requeued, failed)
    return requeued, failed
