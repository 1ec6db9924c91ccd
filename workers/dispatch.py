"""Putting a queued run on its Celery queue. Called after commit; never raises on a broker outage."""
import logging

from django.utils import timezone
from kombu.exceptions import OperationalError

from webapp.celery import app

log = logging.getLogger(__name__)
TRAIN_TASK = "workers.tasks.train_run"


def enqueue_run(run_id: int) -> bool:
    """Send the run to its queue. False (and the run stays queued) when the broker is unreachable;
    a periodic task re-sends queued runs that never reached a worker."""
    from tracking.models import Run

    run = Run.objects.only("queue", "status").get(pk=run_id)
    if run.status != Run.Status.QUEUED:
        return False
    try:
        app.send_task(TRAIN_TASK, args=[run_id], queue=run.queue,
                      retry=True, retry_policy={"max_retries": 2, "interval_start": 0.2,
                                                "interval_step": 0.3, "interval_max": 1})
    except (OperationalError, ConnectionError, OSError) as exc:
        log.warning("run %s stays queued: broker unreachable (%s)", run_id, exc)
        return False
    Run.objects.filter(pk=run_id, status=Run.Status.QUEUED).update(enqueued_at=timezone.now())
    return True
