"""Celery tasks: thin interfaces that take ids and call one service each.

train_run is acknowledged late and rejected (re-queued) if its worker process dies, so a
training is never silently lost; running it twice is harmless (the run is claimed with a
conditional UPDATE) and a re-delivered run resumes from its last checkpoint.
"""
from celery import shared_task


@shared_task(name="workers.tasks.train_run", bind=True, acks_late=True, reject_on_worker_lost=True,
             ignore_result=True)
def train_run(self, run_id):
    from tracking.models import Run

    if Run.objects.filter(pk=run_id, kind=Run.Kind.LR_FIND).exists():  # an LR range test (workers/lr_range.py)
        from workers.lr_range import run_lr_find

        return run_lr_find(run_id, worker=self.request.hostname)
    from workers.training import train_run as train

    train(run_id, worker=self.request.hostname)


@shared_task(name="workers.tasks.enqueue_waiting_runs", ignore_result=True)
def enqueue_waiting_runs():
    from workers.recovery import enqueue_waiting_runs as resend

    return resend()


@shared_task(name="workers.tasks.recover_stalled_runs", ignore_result=True)
def recover_stalled_runs():
    from workers.recovery import recover_stalled_runs as recover

    recover()
