"""Analysis is never lost and never piles up: interim analyses coalesce to one pending a run
(counted in the real Redis queue), and ended runs without a final analysis are caught up."""
from datetime import timedelta

import pytest
from django.utils import timezone

from tracking.analysis import analysis_claim, analysis_release, runs_missing_final_analysis
from tracking.models import Run
from workers.callbacks import Callback
from workers.engine import fit
from workers.run_callbacks import Analysis

from tracking.config import validate_config


class QueueLength(Callback):
    """The number of messages waiting in Redis's "default" queue after each epoch's hooks."""

    order = 99

    def __init__(self, client):
        self.client, self.lengths = client, []

    def on_epoch_end(self, training):
        self.lengths.append(self.client.llen("default"))


@pytest.mark.django_db(transaction=True)
def test_a_long_run_never_has_more_than_one_interim_analysis_pending(redis_server, run_factory):
    """Without a worker on the queue, an interim analysis asked every epoch for 20 epochs: one
    message waits in Redis, not 20."""
    redis = redis_server["client"]
    redis.delete("default")
    run = run_factory({"dataset": "wine", "epochs": 20})
    Run.objects.filter(pk=run.pk).update(status=Run.Status.RUNNING)
    length = QueueLength(redis)
    fit(validate_config({"dataset": "wine", "epochs": 20}),
        callbacks=[Analysis(run.pk, every=1, min_seconds=0), length])
    assert length.lengths == [1] * 20
    assert Run.objects.get(pk=run.pk).analysis_pending_at is not None
    redis.delete("default")


@pytest.mark.django_db
def test_an_interim_claim_is_free_again_once_its_task_starts_or_when_it_is_stale(run_factory, settings):
    run = run_factory()
    assert analysis_claim(run_id=run.pk, final=False)
    assert not analysis_claim(run_id=run.pk, final=False)
    assert analysis_claim(run_id=run.pk, final=True)  # a final analysis is never coalesced away
    analysis_release(run_id=run.pk)  # the task started
    assert analysis_claim(run_id=run.pk, final=False)
    Run.objects.filter(pk=run.pk).update(analysis_pending_at=timezone.now() - timedelta(seconds=601))
    assert analysis_claim(run_id=run.pk, final=False)  # its message was lost


@pytest.mark.django_db
def test_ended_runs_without_a_final_analysis_are_listed_for_the_catch_up(run_factory):
    from tracking.analysis import analysis_finished

    long_ago = timezone.now() - timedelta(minutes=5)
    missed = run_factory(status=Run.Status.SUCCEEDED, finished_at=long_ago)
    just_ended = run_factory(status=Run.Status.FAILED, finished_at=timezone.now())
    done = run_factory(status=Run.Status.SUCCEEDED, finished_at=long_ago)
    analysis_finished(run_id=done.pk)
    pending = run_factory(status=Run.Status.STOPPED, finished_at=long_ago, analysis_pending_at=timezone.now())
    lost = run_factory(status=Run.Status.DIVERGED, finished_at=long_ago,
                       analysis_pending_at=timezone.now() - timedelta(hours=1))
    running = run_factory(status=Run.Status.RUNNING)
    lr_find = run_factory(status=Run.Status.SUCCEEDED, finished_at=long_ago, kind=Run.Kind.LR_FIND)
    found = runs_missing_final_analysis()
    assert missed.pk in found and lost.pk in found
    assert not {just_ended.pk, done.pk, pending.pk, running.pk, lr_find.pk} & set(found)
