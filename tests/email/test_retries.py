"""Sending survives an SMTP outage: retries with back-off, sends exactly once when the server is
back, records the failure after the last retry, and does not retry a permanent refusal."""
import time

import pytest

from tests.conftest import WorkerProcess
from tests.email.conftest import SmtpServer
from tracking.email_tasks import MAX_RETRIES, send_outbox_email
from tracking.models import NotificationSetting, OutboxEmail
from tracking.notifications import notify_run_ended

from tests.waiting import wait_for



@pytest.fixture
def email_worker(redis_server, transactional_db, smtp_settings, smtp_port, monkeypatch, tmp_path):
    """A real `celery worker -P solo` on the "default" queue, sending to the test SMTP port,
    with a 1 s back-off base and no jitter so that the test is quick and predictable."""
    for name, value in dict(EMAIL_PORT=str(smtp_port), EMAIL_HOST="127.0.0.1", EMAIL_RETRY_BACKOFF="1",
                            EMAIL_RETRY_JITTER="false", EMAIL_MAX_RETRIES="8", EMAIL_TIMEOUT="5",
                            SITE_URL="http://runwise.test").items():
        monkeypatch.setenv(name, value)
    worker = WorkerProcess("default", tmp_path / "email-worker.log").start()
    yield worker
    worker.kill()


@pytest.mark.slow
def test_with_the_smtp_server_down_it_retries_and_sends_exactly_once_when_it_is_back(
        team_users, make_run, email_worker, smtp_port):
    run = make_run(team_users["project"], team_users["member"])

    [row] = notify_run_ended(run.pk)  # autocommit: enqueued on Redis at once, the worker picks it up

    # Nothing listens on the port: the worker fails, releases the row and retries (1 s, 2 s, ...).
    def released_after_two_attempts():
        current = OutboxEmail.objects.get(pk=row.pk)
        return current.attempts >= 2 and current.state == "pending"

    wait_for(released_after_two_attempts, 20, "two failed attempts")
    row.refresh_from_db()
    assert "Connection refused" in row.error

    server = SmtpServer(smtp_port).start()
    try:
        wait_for(lambda: OutboxEmail.objects.get(pk=row.pk).state == "sent", 30, "the email to be sent")
        time.sleep(1.0)  # a duplicate would arrive now
        assert [m["to"] for m in server.inbox.messages] == [["bob@example.com"]]
        assert server.inbox.messages[0]["msg"]["Subject"].startswith("[vision] run 42: overfitting")
    finally:
        server.stop()
    row.refresh_from_db()
    assert row.attempts >= 3 and row.error == ""
    assert "Retry in" in email_worker.log()


@pytest.mark.django_db
def test_after_the_last_retry_it_is_marked_failed_with_the_error(
        team_users, make_run, smtp_settings, django_capture_on_commit_callbacks):
    run = make_run(team_users["project"], team_users["member"])
    with django_capture_on_commit_callbacks(execute=False):
        [row] = notify_run_ended(run.pk)

    # Run in-process: an eager task retries at once (no countdown) until max_retries.
    result = send_outbox_email.apply(args=[row.pk])

    assert result.failed()
    row.refresh_from_db()
    assert row.state == "failed"
    assert row.attempts == MAX_RETRIES + 1
    assert "Connection refused" in row.error


class RefusingInbox:
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        return "550 5.1.1 no such mailbox"


@pytest.mark.django_db
def test_a_permanent_refusal_fails_at_once_without_retrying(
        team_users, make_run, smtp_settings, smtp_port, django_capture_on_commit_callbacks):
    from aiosmtpd.controller import Controller

    run = make_run(team_users["project"], team_users["member"])
    with django_capture_on_commit_callbacks(execute=False):
        [row] = notify_run_ended(run.pk)
    controller = Controller(RefusingInbox(), hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        assert send_outbox_email.apply(args=[row.pk]).get() == "failed"
    finally:
        controller.stop()
    row.refresh_from_db()
    assert (row.state, row.attempts) == ("failed", 1)
    assert "550" in row.error


@pytest.mark.django_db
def test_the_sweep_sends_rows_whose_task_never_ran_and_reclaims_lost_claims(
        team_users, make_run, smtp_server, eager_tasks, django_capture_on_commit_callbacks):
    import datetime as dt

    from django.utils import timezone

    from tracking.email_tasks import requeue_stale_outbox

    t = team_users
    NotificationSetting.objects.create(user=t["admin"], project=t["project"], mode="all")
    run = make_run(t["project"], t["member"])
    with django_capture_on_commit_callbacks(execute=False):  # the broker was down at commit
        rows = {r.recipient.username: r for r in notify_run_ended(run.pk)}
    long_ago = timezone.now() - dt.timedelta(minutes=30)
    OutboxEmail.objects.filter(pk=rows["bob"].pk).update(created_at=long_ago)
    # alice's row: claimed by a worker that died 30 minutes ago
    OutboxEmail.objects.filter(pk=rows["alice"].pk).update(created_at=long_ago, state="sending",
                                                           claimed_at=long_ago, attempts=1)
    fresh = make_run(t["project"], t["member"], name="run 43")
    with django_capture_on_commit_callbacks(execute=False):
        notify_run_ended(fresh.pk)  # just written: its own task is on its way, the sweep leaves it
    retrying = make_run(t["project"], t["member"], name="run 44")
    with django_capture_on_commit_callbacks(execute=False):
        rows44 = notify_run_ended(retrying.pk)
    # tried twice and released: its retry is scheduled with back-off, the sweep leaves it too
    OutboxEmail.objects.filter(pk__in=[r.pk for r in rows44]).update(created_at=long_ago, attempts=2)

    assert requeue_stale_outbox.apply().get() == 2

    mails = smtp_server.inbox.wait_for(2)
    assert sorted(m["to"][0] for m in mails) == ["alice@example.com", "bob@example.com"]
    assert all("run 42" in m["msg"]["Subject"] for m in mails)
    assert OutboxEmail.objects.get(pk=rows["alice"].pk).attempts == 2
    assert requeue_stale_outbox.apply().get() == 0


class PeerInbox(SmtpServer):
    """The test SMTP server, recording the client's address (host, port) of each message: one
    address for several messages means one kept connection."""

    def __init__(self, port):
        super().__init__(port)
        peers = self.peers = []
        keep = self.inbox.handle_DATA

        async def handle_DATA(server, session, envelope):
            peers.append(session.peer)
            return await keep(server, session, envelope)

        self.inbox.handle_DATA = handle_DATA


@pytest.mark.slow
def test_a_worker_keeps_its_smtp_connection_and_opens_a_new_one_when_the_server_dropped_it(
        team_users, make_run, email_worker, smtp_port):
    server = PeerInbox(smtp_port).start()
    try:
        rows = []
        for i in range(3):
            rows += notify_run_ended(make_run(team_users["project"], team_users["member"], name=f"run {i}").pk)
        wait_for(lambda: OutboxEmail.objects.filter(pk__in=[r.pk for r in rows], state="sent").count() == 3, 30,
                 "three emails sent", log=email_worker.log)
        assert len(server.inbox.messages) == 3
        assert len(set(server.peers)) == 1  # one connection for the three
    finally:
        server.stop()  # closes the worker's kept connection from the server's side

    server = PeerInbox(smtp_port).start()
    try:
        [row] = notify_run_ended(make_run(team_users["project"], team_users["member"], name="run 3").pk)
        wait_for(lambda: OutboxEmail.objects.get(pk=row.pk).state == "sent", 30, "the email after the drop",
                 log=email_worker.log)
        time.sleep(0.5)  # a duplicate would arrive now
        assert len(server.inbox.messages) == 1
    finally:
        server.stop()
    row.refresh_from_db()
    assert (row.attempts, row.error) == (1, "")  # sent over a new connection in the same attempt, no retry
