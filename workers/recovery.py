"""Periodic repairs (Celery beat): nothing queued is lost, nothing running is left hanging.

- `enqueue_waiting_runs`: a queued run that never reached the broker (Redis was down when it
  was created: enqueued_at is empty) or was sent long ago and never claimed is sent again.
  A duplicate message is harmless: the worker claims a run with a conditional UPDATE.
- `recover_stalled_runs`: a running run whose heartbeat is older than the timeout lost its
  worker (killed, machine gone). It is re-queued, to resume from its last checkpoint, until
  it has had `max_attempts` attempts; then it fails with the reason.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from workers.dispatch import enqueue_run
from workers.training import heartbeat_timeout

log = logging.getLogger(__name__)


def enqueue_waiting_runs(*, min_age=timedelta(seconds=10), resend_after=None, limit=100):
    """Send queued runs that never reached a worker; returns how many were sent."""
    from tracking.models import Run

    now = timezone.now()
    resend_after = resend_after or timedelta(seconds=getattr(settings, "RUN_RESEND_AFTER", 1800))
    waiting = (Run.objects.filter(status=Run.Status.QUEUED, created_at__lte=now - min_age)
               .filter(Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=now - resend_after))
               .order_by("created_at").values_list("pk", flat=True)[:limit])
    sent = 0
    for run_id in waiting:
        if enqueue_run(run_id):
            sent += 1
    if sent:
        log.info("re-sent %d queued run(s) to their queues", sent)
    return sent


def recover_stalled_runs(*, timeout=None, max_attempts=None):
    """Re-queue (or fail) runs left running by a dead worker; returns (requeued, failed) ids."""
    from tracking.models import Run

    from workers.project_runs import fail_lost_code_runs

    timeout = timeout if timeout is not None else heartbeat_timeout()
    max_attempts = max_attempts or getattr(settings, "RUN_MAX_ATTEMPTS", 3)
    lost_code = fail_lost_code_runs(timeout=timeout)  # a script is not resumed: its run fails
    now = timezone.now()
    stale = Run.objects.filter(status=Run.Status.RUNNING).exclude(kind=Run.Kind.CODE).filter(
        Q(heartbeat_at__lt=now - timeout) | Q(heartbeat_at__isnull=True, started_at__lt=now - timeout))
    requeued, failed = [], []
    for run in stale.only("pk", "worker", "attempts", "heartbeat_at"):
        silent = f"worker {run.worker or '?'} sent no heartbeat for over {timeout.total_seconds():.0f}s"
        same = Run.objects.filter(pk=run.pk, status=Run.Status.RUNNING, heartbeat_at=run.heartbeat_at)
        if run.attempts < max_attempts:
            if same.update(status=Run.Status.QUEUED, enqueued_at=None,
                           status_reason=f"re-queued after attempt {run.attempts}: {silent}"):
                requeued.append(run.pk)
                enqueue_run(run.pk)
        elif same.update(status=Run.Status.FAILED, finished_at=now, eta_seconds=None,
                         status_reason=f"gave up after {run.attempts} attempts: {silent}"):
            failed.append(run.pk)
    failed += lost_code
    if requeued or failed:
        log.warning("stalled runs: re-queued %s, failed %s", requeued, failed)
    return requeued, failed
