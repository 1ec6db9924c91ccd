"""Autopilot end to end: a real Celery worker trains the rounds, the rules engine's analysis task
advances the autopilot, and the team's email arrives over real SMTP on loopback."""
import email
import socket
import threading
from email import policy

import pytest
from aiosmtpd.controller import Controller

from tracking import autopilot
from tracking.config import validate_config
from tracking.models import Autopilot, Run
from tracking.services import run_create

from tests.waiting import wait_for

pytestmark = pytest.mark.slow


class Inbox:
    def __init__(self):
        self.messages, self.lock = [], threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.messages.append(email.message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


@pytest.fixture
def smtp_for_worker(monkeypatch):
    """A real SMTP server; the worker process (started after this fixture) sends to it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("EMAIL_PORT", str(port))
    monkeypatch.setenv("EMAIL_HOST", "127.0.0.1")
    monkeypatch.setenv("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
    yield inbox
    controller.stop()



def test_tune_this_run_trains_rounds_on_the_worker_and_emails_the_team(smtp_for_worker, celery_worker_process,
                                                                        team_users):
    # Plain SGD at a far too low LR, 3 epochs: still converging, so the rules have something to say.
    config = validate_config({"dataset": "wine", "optimizer": "sgd", "lr": 1e-4, "epochs": 3, "width": 16})
    start = run_create(project=team_users["project"], owner=team_users["admin"], config=config, name="slow start")
    pilot = autopilot.autopilot_start(run=start, owner=team_users["admin"], max_rounds=2)
    log = celery_worker_process.log
    wait_for(lambda: Autopilot.objects.get(pk=pilot.pk).state == Autopilot.State.DONE, 150, "the autopilot's end", log=log)
    pilot.refresh_from_db()
    start.refresh_from_db()
    rounds = list(pilot.rounds.select_related("run", "parent_run"))
    assert start.analysed_at is not None and start.recommendations.exists()
    assert 1 <= len(rounds) <= 2, pilot.stop_reason
    for r in rounds:
        assert r.run.status == Run.Status.SUCCEEDED and r.run.parent_id == r.parent_run_id
        assert r.run.applied_recommendation is not None and r.run.applied_recommendation.rule == r.rule
        assert all(r.run.config[k] == v for k, v in r.change.items())
        assert r.improved is not None
    assert rounds[0].parent_run_id == start.pk
    best = min([start] + [r.run for r in rounds], key=lambda run: run.best_val_loss)
    assert pilot.best_run_id == best.pk and pilot.best_val_loss == pytest.approx(best.best_val_loss)
    def text(m):  # run emails are multipart (HTML, text, PNG); the autopilot's is plain text
        return m.get_body(preferencelist=("plain",)).get_content()

    wait_for(lambda: sum("Autopilot on" in text(m) for m in smtp_for_worker.messages) >= 2, 20, "the emails", log=log)
    mails = [m for m in smtp_for_worker.messages if "Autopilot on" in text(m)]
    assert sorted(m["To"] for m in mails) == ["alice@example.com", "bob@example.com"]
    assert mails[0]["Subject"].strip().startswith(f"[vision] {best.name}: ") and "[Runwise]" not in mails[0]["Subject"]
    assert pilot.stop_reason in text(mails[0])
    assert "Round 1: " + rounds[0].rule in text(mails[0])
    assert f"Best run: {best.name}, best val_loss" in text(mails[0]) and "Recommendation: " in text(mails[0])
    # The rounds' runs are summarised in this one email: none of their own (the default settings).
    assert len(smtp_for_worker.messages) == len(mails) + 1, [m["Subject"] for m in smtp_for_worker.messages]
