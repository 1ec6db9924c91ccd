"""Queues are shared fairly between teams: a team has at most RUN_TEAM_CONCURRENCY runs sent to a
queue at once; the rest wait in `queued` and are sent as its slots free. Real redis-server and a
real Celery worker process."""
import pytest

from tests.waiting import wait_for
from tracking.models import Run
from tracking.services import run_create
from workers.dispatch import dispatch_waiting

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def one_slot_worker(redis_server, transactional_db, tmp_path, monkeypatch, settings):
    from tests.conftest import WorkerProcess

    settings.RUN_TEAM_CONCURRENCY = 1
    monkeypatch.setenv("RUN_TEAM_CONCURRENCY", "1")
    worker = WorkerProcess("cpu", tmp_path / "worker.log")
    yield worker
    worker.kill()


def test_team_a_s_five_queued_runs_do_not_starve_team_b_s_run(one_slot_worker, team_users):
    config = {"dataset": "wine", "epochs": 3}
    a_runs = [run_create(project=team_users["project"], owner=team_users["member"], config=config, name=f"a{i}")
              for i in range(5)]
    b_run = run_create(project=team_users["other_project"], owner=team_users["outsider"], config=config, name="b")
    # one slot a team: A's first run and B's run are sent, A's four others wait
    sent = set(Run.objects.filter(enqueued_at__isnull=False).values_list("name", flat=True))
    assert sent == {"a0", "b"}
    one_slot_worker.start()
    everything = a_runs + [b_run]
    wait_for(lambda: all(r.status in Run.FINAL for r in Run.objects.filter(pk__in=[x.pk for x in everything])),
             180, "every run's end", log=one_slot_worker.log)
    order = list(Run.objects.filter(pk__in=[x.pk for x in everything]).order_by("started_at")
                 .values_list("name", "status"))
    assert all(status == "succeeded" for _, status in order), order
    assert [name for name, _ in order].index("b") <= 1, order  # not behind all of A's runs


def test_a_waiting_run_is_sent_when_its_team_s_slot_frees(team_users, redis_server, settings):
    settings.RUN_TEAM_CONCURRENCY = 1
    first = run_create(project=team_users["project"], owner=team_users["member"], config={"epochs": 2})
    second = run_create(project=team_users["project"], owner=team_users["member"], config={"epochs": 2})
    second.refresh_from_db()
    assert second.enqueued_at is None and dispatch_waiting() == 0
    Run.objects.filter(pk=first.pk).update(status="succeeded")
    assert dispatch_waiting() == 1
    second.refresh_from_db()
    assert second.enqueued_at is not None
