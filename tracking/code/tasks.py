"""Celery tasks of registered code: the beat task that imports followed MLflow experiments."""
from celery import shared_task


@shared_task(name="tracking.code.tasks.import_followed", ignore_result=True)
def import_followed(followed_id=None):
    from .following import import_followed as run_import

    run_import(followed_id)
