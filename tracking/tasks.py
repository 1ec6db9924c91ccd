"""Celery tasks of the rules engine. The worker sends `tracking.tasks.analyse_run` by name on the
"default" queue every few epochs (final=False) and when a run ends (final=True)."""
import importlib.util
import logging

from celery import shared_task

log = logging.getLogger(__name__)


def _optional(module: str):
    return importlib.import_module(module) if importlib.util.find_spec(module) else None


@shared_task(name="tracking.tasks.analyse_run", ignore_result=True)
def analyse_run(run_id, final=False):
    """Analyse the run and store the recommendations; after a final analysis, email the team and
    let the tuning tools (sweeps, autopilot) move on. Idempotent: a re-delivery re-analyses."""
    from tracking.analysis import run_analyse

    answer = run_analyse(run_id, final=final)
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
