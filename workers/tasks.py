"""Celery tasks: thin interfaces that take ids and call one service each.

train_run is acknowledged late and rejected (re-queued) if its worker process dies, so a
training is never silently lost; running it twice is harmless (the run is claimed with a
conditional UPDATE) and a re-delivered run resumes from its last checkpoint.
"""
import logging

from celery import shared_task
from celery.signals import worker_process_init

log = logging.getLogger(__name__)


@shared_task(name="workers.tasks.train_run", bind=True, acks_late=True, reject_on_worker_lost=True,
             ignore_result=True)
def train_run(self, run_id):
    """Train the run (or LR range test) in a child process (workers/isolation.py): out of memory,
    a crash or the time limit end that run, never the worker. A code run (the team's own MLflow
    project) runs in its own process group (workers/project_runs.py)."""
    from tracking.models import Run
    from workers.isolation import train_in_child

    kind = Run.objects.filter(pk=run_id).values_list("kind", flat=True).first()
    if kind is None:  # deleted, or a stale message (a run is committed before its task is sent)
        log.info("run %s: no such run; task dropped", run_id)
        return False
    if kind == Run.Kind.CODE:  # the team's own code, an MLflow project (workers/project_runs.py)
        from workers.dispatch import dispatch_waiting
        from workers.project_runs import run_code

        try:
            return run_code(run_id, worker=self.request.hostname)
        finally:
            dispatch_waiting(team_id=Run.objects.filter(pk=run_id).values_list("project__team_id", flat=True).first())
    train_in_child(run_id, worker=self.request.hostname, lr_find=kind == Run.Kind.LR_FIND)  # workers/lr_range.py


@shared_task(name="workers.tasks.enqueue_waiting_runs", ignore_result=True)
def enqueue_waiting_runs():
    from workers.recovery import enqueue_waiting_runs as resend

    resend()


@shared_task(name="workers.tasks.recover_stalled_runs", ignore_result=True)
def recover_stalled_runs():
    from workers.recovery import recover_stalled_runs as recover

    recover()


def warm_up():
    """Open the MLflow store, start the writer process and the forkserver that forks each run's
    training process (it imports torch and the trainer once) before the first task, so that a run
    starts training within moments of being queued. Torch itself is never initialised here."""
    from django.conf import settings

    from workers.isolation import warm_up as start_forkserver
    from workers.mlflow_logging import shared_writer

    _open_store()
    shared_writer(settings.MLFLOW_TRACKING_URI)
    start_forkserver()  # last: its imports run beside the worker's start, not before it
    log.info("training worker warmed up (runs train in child processes)")


def _open_store():
    """MLflow's import and its SQL store (~4 s here), once, before the first task."""
    from django.conf import settings

    from workers.mlflow_logging import make_client

    make_client(settings.MLFLOW_TRACKING_URI).search_experiments(max_results=1)


def warm_up_store():
    """The short tasks' worker: its analyses read the runs' metrics from the MLflow store."""
    _open_store()
    log.info("short-task worker warmed up (MLflow store open)")


@worker_process_init.connect
def _warm_up_in_process(**kwargs):
    """Where tasks run: the worker itself with `-P solo` (its pool sends this signal in the worker's
    own process), each child of a prefork pool. The forkserver (torch, ~12 s of CPU and its memory)
    and the writer only on a worker that trains; the short tasks' worker (-Q default) opens the store."""
    _safely(warm_up if consumes_training_queues() else warm_up_store)


def consumes_training_queues() -> bool:
    """Whether this worker takes training tasks (its -Q; every queue when none was selected)."""
    from celery import current_app

    queues = set(current_app.amqp.queues.consume_from or ())
    return not queues or bool(queues & {"cpu", "gpu"})


def _safely(fn):
    try:
        fn()
    except Exception:  # a cold start is slower, not broken: the task itself reports real errors
        log.exception("training worker warm-up failed")
