"""Celery tasks of the tuning tools. The hook in tracking.tasks.analyse_run advances sweeps and
autopilots when a run ends; `advance_tuning` (Celery beat, every 30 s) catches anything that
hook missed (a lost task, a broker outage). Both are idempotent: every step claims its work
with a conditional UPDATE."""
from celery import shared_task


@shared_task(name="tracking.tuning_tasks.advance_tuning", ignore_result=True)
def advance_tuning():
    from tracking import autopilot, sweeps

    return {"trials": sweeps.advance_pending(), "autopilots": autopilot.advance_pending()}


@shared_task(name="tracking.tuning_tasks.run_ended", ignore_result=True)
def run_ended(run_id):
    from tracking import autopilot, sweeps

    sweeps.on_run_ended(run_id)
    autopilot.on_run_analysed(run_id)
