"""Celery tasks of the rules engine. The worker sends `tracking.tasks.analyse_run` by name on the
"default" queue every few epochs (final=False, at most one pending a run) and when a run ends
(final=True); Celery beat runs `catch_up_analyses` every 30 s for ended runs whose final analysis
never ran (the broker was down when they ended)."""
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

    from tracking.analysis import analysis_finished, analysis_release, run_analyse

    analysis_release(run_id=run_id)  # started: the next interim analysis may be queued
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
    analysis_finished(run_id=run_id)
    log.info("run %s analysed (final): %s", run_id,
             answer["diagnoses"][0]["id"] if answer else "nothing to analyse")


@shared_task(name="tracking.tasks.catch_up_analyses", ignore_result=True)
def catch_up_analyses():
    """Send the final analysis of every ended run that has not had one (Celery beat, every 30 s)."""
    from tracking.analysis import analysis_enqueue, runs_missing_final_analysis

    for run_id in runs_missing_final_analysis():
        log.info("run %s ended without a final analysis: sending it now", run_id)
        analysis_enqueue(run_id=run_id, final=True)
