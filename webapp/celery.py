import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webapp.settings")

app = Celery("webapp")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["workers", "tracking"])
app.autodiscover_tasks(["tracking"], related_name="email_tasks")

# Email (tracking/email_tasks.py): the daily digest for the previous UTC day, and a sweep
# that re-sends outbox rows whose task never ran.
app.conf.beat_schedule = {
    **(app.conf.beat_schedule or {}),
    "email-daily-digest": {"task": "tracking.email_tasks.send_daily_digests",
                           "schedule": crontab(hour=0, minute=10), "options": {"queue": "default"}},
    "email-requeue-stale-outbox": {"task": "tracking.email_tasks.requeue_stale_outbox",
                                   "schedule": 300.0, "options": {"queue": "default"}},
}

# Training (workers/recovery.py), every RUN_RECOVERY_INTERVAL s (5): send queued runs where their
# team has a free slot and re-send lost messages, and re-queue (or fail) runs whose worker
# stopped sending heartbeats.
def _recovery_interval() -> float:
    from django.conf import settings

    return float(getattr(settings, "RUN_RECOVERY_INTERVAL", 5))


app.conf.beat_schedule.update({
    "runs-enqueue-waiting": {"task": "workers.tasks.enqueue_waiting_runs", "schedule": _recovery_interval(),
                             "options": {"queue": "default", "expires": _recovery_interval()}},
    "runs-recover-stalled": {"task": "workers.tasks.recover_stalled_runs", "schedule": _recovery_interval(),
                             "options": {"queue": "default", "expires": _recovery_interval()}},
})

# Analysis (tracking/tasks.py): the final analysis (and email) of runs that ended while the broker
# was down, or whose task failed.
app.conf.beat_schedule.update({
    "analysis-catch-up": {"task": "tracking.tasks.catch_up_analyses",
                          "schedule": float(os.environ.get("ANALYSIS_CATCH_UP_SECONDS", "30")),
                          "options": {"queue": "default", "expires": 25}},
})

# Tuning (tracking/tuning_tasks.py): advance sweeps and autopilots whose run-end hook was missed.
app.autodiscover_tasks(["tracking"], related_name="tuning_tasks")
app.conf.beat_schedule.update({
    "tuning-advance": {"task": "tracking.tuning_tasks.advance_tuning", "schedule": 30.0,
                       "options": {"queue": "default", "expires": 25}},
})

# The team's own code (tracking/code/tasks.py): import the runs of followed MLflow experiments.
app.autodiscover_tasks(["tracking.code"])
app.conf.beat_schedule.update({
    "code-import-followed": {"task": "tracking.code.tasks.import_followed",
                             "schedule": float(os.environ.get("FOLLOW_INTERVAL", "30")),
                             "options": {"queue": "default", "expires": 25}},
})
