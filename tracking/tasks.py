"""Celery tasks of the rules engine. The worker sends `tracking.tasks.analyse_run` by name on the
"default" queue every few epochs (final=False) and when a run ends (final=True)."""
import importlib.util
import logging

from celery import shared_task

log = logging.getLogger(__name__)


def _optional(module: str):
    return importlib.import_module(module) if importlib.util.find_spec(module) else None


@shared_task(bind=True, name="tracking.tasks.analyse_run", ignore_result=True, max_retries=4)
def analyse_run(self, run_id, final=False):
    """Analyse the run and store the recommendations; after a final analysis, email the team and
    let the tuning tools (sweeps, autopilot) move on. Idempotent: a re-delivery re-analyses.
    An MLflow store that is busy or unreachable is retried with back-off (5, 10, 20, 40 s)."""
    from mlflow.exceptions import MlflowException

    from tracking.analysis import run_analyse

    try:
        answer = run_analyse(run_id, final=final)
    except MlflowException as exc:
        raise self.retry(exc=exc, countdown=5 * 2 ** self.request.retries)
    if not final:
        return
    notifications = _optional("tracking.notifications")
    if notifications is not None:
        notifications.notify_run_ended(run_id)
    tuning = _optional("tracking.tuning_tasks")
    if tuning is not None:
        tuning.run_ended(run_id)
    log.info("run %s analysed (final): %s", run_id,
             answer["diagnoses"][0]["id"] if answer else "nothing to analyse")
