"""Email test fixtures: a real SMTP server on loopback (aiosmtpd), Celery tasks run in-process
(eagerly) unless a test starts a real worker, and runs with an analysis built with the ORM."""
import email
import logging
import socket
import threading
import time
from email import policy

import pytest
from aiosmtpd.controller import Controller


logging.getLogger("mail.log").setLevel(logging.WARNING)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    """aiosmtpd handler keeping every message it accepts."""

    def __init__(self):
        self.messages = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        parsed = email.message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        with self.lock:
            self.messages.append({"to": list(envelope.rcpt_tos), "from": envelope.mail_from, "msg": parsed})
        return "250 OK"

    def to(self, address):
        return [m for m in self.messages if address in m["to"]]

    def wait_for(self, count, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.messages) < count:
            time.sleep(0.05)
        return self.messages


class SmtpServer:
    def __init__(self, port):
        self.port = port
        self.inbox = Inbox()
        self.controller = None

    def start(self):
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self):
        if self.controller:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp_port():
    return free_port()


@pytest.fixture
def smtp_settings(settings, smtp_port):
    """Django sends over real SMTP to 127.0.0.1:<smtp_port> (pytest-django defaults to locmem)."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = smtp_port
    settings.EMAIL_TIMEOUT = 5
    settings.SITE_URL = "http://runwise.test"
    return settings


@pytest.fixture
def smtp_server(smtp_settings, smtp_port):
    server = SmtpServer(smtp_port).start()
    yield server
    server.stop()


@pytest.fixture
def eager_tasks():
    """Tasks enqueued on commit run in this process, as a worker would run them."""
    from webapp.celery import app

    old = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, False
    yield app
    app.conf.task_always_eager, app.conf.task_eager_propagates = old


ANALYSIS = {
    "diagnoses": [
        {"id": "overfitting", "severity": 0.8,
         "evidence": "val_loss rose 35% from its minimum at epoch 9 while train_loss fell 60%", "epochs": [9, 30]},
        {"id": "not_converged", "severity": 0.3, "evidence": "train_loss still falling 2% per epoch",
         "epochs": [25, 30]},
    ],
    "recommendations": [
        {"rule": "overfitting.raise_weight_decay", "diagnosis": "overfitting", "change": {"weight_decay": 0.0005},
         "rationale": "A stronger L2 penalty narrows the train/val gap.", "confidence": 0.7},
        {"rule": "overfitting.add_dropout", "diagnosis": "overfitting", "change": {"dropout": 0.3},
         "rationale": "Dropout regularises the hidden layers.", "confidence": 0.6},
        {"rule": "overfitting.early_stopping", "diagnosis": "overfitting", "change": {"early_stopping_patience": 5},
         "rationale": "Stop near the val_loss minimum.", "confidence": 0.5},
        {"rule": "not_converged.more_epochs", "diagnosis": "not_converged", "change": {"epochs": 60},
         "rationale": "The loss was still falling.", "confidence": 0.3},
    ],
}
HEALTHY = {"diagnoses": [{"id": "healthy", "severity": 0.1, "evidence": "val_loss converged", "epochs": [1, 20]}],
           "recommendations": []}


def curves(epochs=30):
    train = [[e, 2.0 * 0.9 ** e] for e in range(1, epochs + 1)]
    val = [[e, 1.0 + 0.02 * (e - 9) ** 2 / 10] for e in range(1, epochs + 1)]
    return {"train_loss_epoch": train, "val_loss": val}


@pytest.fixture
def make_run():
    """A finished, analysed run built with the ORM (no worker, no rules engine)."""
    from django.utils import timezone

    from tracking.models import MetricSeries, Recommendation, Run

    def make(project, owner, *, name="run 42", status="succeeded", analysis=ANALYSIS, finished_at=None,
             series=True, rows=True, config=None, parent=None, applied=None):
        run = Run.objects.create(
            project=project, owner=owner, name=name, status=status,
            config=config or {"optimizer": "sgd", "lr": 0.1, "weight_decay": 0.0, "dropout": 0.0, "epochs": 30},
            analysis=analysis, analysed_at=timezone.now(), finished_at=finished_at or timezone.now(),
            best_val_loss=1.0, best_val_accuracy=0.9, parent=parent, applied_recommendation=applied)
        if series:
            for key, points in curves().items():
                MetricSeries.objects.create(run=run, key=key, points=points, count=len(points),
                                            last_step=points[-1][0])
        if rows:
            for rank, rec in enumerate(analysis.get("recommendations", [])):
                Recommendation.objects.create(run=run, rank=rank, **rec)
        return run

    return make


def parts(message):
    """{content_type: part} of a parsed message (first part of each type)."""
    found = {}
    for part in message.walk():
        found.setdefault(part.get_content_type(), part)
    return found
