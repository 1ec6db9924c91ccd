"""Celery tasks for email, on the short queue "default".

`send_outbox_email(outbox_id)` sends one OutboxEmail row at most once:
- it claims the row with a conditional UPDATE (pending -> sending, or a claim older than
  CLAIM_LEASE left by a lost worker) and does nothing when another task holds or finished it;
- transient SMTP/connection errors release the claim and retry with exponential back-off
  (EMAIL_RETRY_BACKOFF seconds doubled each time, EMAIL_MAX_RETRIES times); a permanent
  refusal (5xx) or the last failed retry marks the row failed with the error, which team
  admins see on the failed-emails page.
The only window for a duplicate is a worker dying between the SMTP server's "250 OK" and
the row's "sent" update; the lease then lets one later task send again.

Beat: `send_daily_digests` once a day for the previous UTC day; `requeue_stale_outbox`
every few minutes for rows whose task never ran (broker down at commit, lost worker).
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import smtplib
import threading
import time

from celery import Task, shared_task
from django.db.models import F, Q
from django.utils import timezone
from kombu.exceptions import OperationalError

from .models import Membership, OutboxEmail

log = logging.getLogger(__name__)

QUEUE = "default"
SEND_TASK = "tracking.email_tasks.send_outbox_email"
RETRY_BACKOFF = int(os.environ.get("EMAIL_RETRY_BACKOFF", "30"))  # seconds, doubled each retry
RETRY_BACKOFF_MAX = int(os.environ.get("EMAIL_RETRY_BACKOFF_MAX", "900"))
MAX_RETRIES = int(os.environ.get("EMAIL_MAX_RETRIES", "6"))
RETRY_JITTER = os.environ.get("EMAIL_RETRY_JITTER", "true").strip().lower() in ("true", "1", "yes")
CLAIM_LEASE = dt.timedelta(minutes=5)  # well above EMAIL_TIMEOUT: a claim this old was lost


class TransientEmailError(Exception):
    """The SMTP server could not be reached or asked us to try later (4xx): retry."""


class PermanentEmailError(Exception):
    """The SMTP server refused the message for good (5xx), or the recipient left the team."""


def classify(exc: Exception) -> type[Exception]:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return PermanentEmailError if codes and min(codes) >= 500 else TransientEmailError
    if isinstance(exc, smtplib.SMTPResponseException) and exc.smtp_code >= 500:
        return PermanentEmailError
    return TransientEmailError


# The steps, each one conditional UPDATE -----------------------------------------------------------

def outbox_claim(outbox_id: int) -> bool:
    now = timezone.now()
    claimable = Q(state=OutboxEmail.State.PENDING) | Q(state=OutboxEmail.State.SENDING,
                                                       claimed_at__lt=now - CLAIM_LEASE)
    return bool(OutboxEmail.objects.filter(claimable, pk=outbox_id).update(
        state=OutboxEmail.State.SENDING, claimed_at=now, attempts=F("attempts") + 1))


def outbox_release(outbox_id: int, error: str) -> None:
    OutboxEmail.objects.filter(pk=outbox_id, state=OutboxEmail.State.SENDING).update(
        state=OutboxEmail.State.PENDING, error=error[:2000])


def outbox_mark_sent(outbox_id: int, subject: str) -> None:
    OutboxEmail.objects.filter(pk=outbox_id, state=OutboxEmail.State.SENDING).update(
        state=OutboxEmail.State.SENT, sent_at=timezone.now(), subject=subject[:300], error="")


def outbox_mark_failed(outbox_id: int, error: str) -> int:
    return OutboxEmail.objects.filter(
        pk=outbox_id, state__in=[OutboxEmail.State.PENDING, OutboxEmail.State.SENDING]
    ).update(state=OutboxEmail.State.FAILED, error=error[:2000])


def recipient_still_member(outbox: OutboxEmail) -> bool:
    return Membership.objects.filter(team_id=outbox.team_id, user_id=outbox.recipient_id).exists()


# One SMTP connection a worker thread, kept between emails ------------------------------------------

CONNECTION_IDLE = 20.0  # seconds: a connection unused longer is closed and opened again (servers drop idle ones)
_connections = threading.local()


def _connection_key():
    from django.conf import settings

    return tuple(getattr(settings, name, None) for name in (
        "EMAIL_BACKEND", "EMAIL_HOST", "EMAIL_PORT", "EMAIL_HOST_USER", "EMAIL_USE_TLS", "EMAIL_USE_SSL"))


def _drop_connection() -> None:
    connection = getattr(_connections, "open", None)
    _connections.open = None
    if connection is not None:
        try:
            connection.close()
        except Exception:  # noqa: BLE001 - a broken connection may fail to say goodbye; it is dropped anyway
            pass


def send_message(message) -> None:
    """Send over this worker thread's SMTP connection, opened at the first email and kept for the
    next ones (a new connection an email costs a TCP and an SMTP handshake). It is opened again
    when the settings changed or when it sat idle for CONNECTION_IDLE seconds; a kept connection
    that the server closed meanwhile (disconnected, broken pipe) is dropped and the message sent
    once more over a new one. Any other error, or any error on a new connection, drops the
    connection and propagates (the task's retries and the outbox's states take it from there)."""
    from django.core.mail import get_connection

    held = getattr(_connections, "open", None)
    if held is not None and (held[0] != _connection_key() or time.monotonic() - held[2] > CONNECTION_IDLE):
        _drop_connection()
        held = None
    if held is not None:
        message.connection = held[1]
        try:
            message.send()
        except (smtplib.SMTPServerDisconnected, ConnectionError):
            _drop_connection()  # closed by the server while kept: not delivered, try a new connection
        except BaseException:
            _drop_connection()
            raise
        else:
            _connections.open = (held[0], held[1], time.monotonic())
            return
    connection = get_connection()
    try:
        connection.open()
        message.connection = connection
        message.send()
    except BaseException:
        try:
            connection.close()
        except Exception:  # noqa: BLE001 - a broken connection may fail to say goodbye
            pass
        raise
    _connections.open = (_connection_key(), connection, time.monotonic())


def outbox_send(outbox_id: int) -> str:
    """Claim, render, send, mark. Returns "sent", "skipped" (not ours to send) or "failed";
    raises TransientEmailError for the task to retry."""
    from .emails import build_message

    if not outbox_claim(outbox_id):
        return "skipped"
    outbox = OutboxEmail.objects.select_related("recipient").get(pk=outbox_id)
    if not recipient_still_member(outbox):
        outbox_mark_failed(outbox_id, "not sent: the recipient is no longer a member of the team")
        return "failed"
    message = build_message(outbox)
    try:
        send_message(message)
    except (smtplib.SMTPException, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}"
        if classify(exc) is PermanentEmailError:
            outbox_mark_failed(outbox_id, error)
            return "failed"
        outbox_release(outbox_id, error)
        raise TransientEmailError(error) from exc
    outbox_mark_sent(outbox_id, message.subject)
    return "sent"


# Tasks ------------------------------------------------------------------------------------

class OutboxTask(Task):
    """Records the final failure (after the last retry, or any unexpected error) on the row."""

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        outbox_id = args[0] if args else kwargs.get("outbox_id")
        if outbox_id is not None:
            outbox_mark_failed(outbox_id, f"after {self.request.retries + 1} attempts: {exc}")


@shared_task(bind=True, base=OutboxTask, name=SEND_TASK, queue=QUEUE, acks_late=True,
             autoretry_for=(TransientEmailError,), retry_backoff=RETRY_BACKOFF,
             retry_backoff_max=RETRY_BACKOFF_MAX, retry_jitter=RETRY_JITTER, max_retries=MAX_RETRIES, ignore_result=True)
def send_outbox_email(self, outbox_id: int) -> str:
    return outbox_send(outbox_id)


@shared_task(name="tracking.email_tasks.send_daily_digests", queue=QUEUE, ignore_result=True)
def send_daily_digests(day: str | None = None) -> int:
    """One digest per subscribed user for `day` (ISO date; default yesterday, UTC)."""
    from .notifications import digests_create

    return len(digests_create(dt.date.fromisoformat(day) if day else None))


@shared_task(name="tracking.email_tasks.requeue_stale_outbox", queue=QUEUE, ignore_result=True)
def requeue_stale_outbox() -> int:
    from .notifications import stale_outbox_ids

    return sum(enqueue_outbox_email(pk) for pk in stale_outbox_ids())


def enqueue_outbox_email(outbox_id: int) -> bool:
    """Put the row's send task on the queue. False when the broker is unreachable: the row stays
    pending and `requeue_stale_outbox` sends it later."""
    try:
        send_outbox_email.apply_async(args=[outbox_id], queue=QUEUE, retry=True, retry_policy={
            "max_retries": 2, "interval_start": 0.2, "interval_step": 0.3})
    except (OperationalError, ConnectionError, OSError) as exc:
        log.warning("email %s stays pending: broker unreachable (%s)", outbox_id, exc)
        return False
    return True
