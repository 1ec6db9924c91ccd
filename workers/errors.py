"""Errors of a training run, classified before anything retries them.

Permanent errors (a bad config, a data set that cannot be built, an unusable checkpoint)
fail the run at once with their reason. Transient ones (MLflow or the database out of
reach) are retried with back-off by `retrying`, then fail the run with a clear reason.
"""
from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)


class TrainingError(Exception):
    """An error that ends a run; str(error) is the reason shown on the run page."""


class PermanentError(TrainingError):
    pass


class TransientError(TrainingError):
    pass


class MlflowUnavailable(TransientError):
    pass


def retrying(fn, *, what: str, attempts: int = 5, first_delay: float = 0.5, max_delay: float = 8.0,
             transient=(Exception,), permanent=(), error=MlflowUnavailable):
    """Call fn(); on a transient exception wait (doubling from first_delay) and try again.
    After `attempts` tries raise `error` naming `what` and the last cause."""
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except permanent:
            raise
        except transient as exc:
            if attempt == attempts:
                raise error(f"{what} failed after {attempts} tries: {_short(exc)}") from exc
            log.warning("%s failed (try %d/%d, again in %.1fs): %s", what, attempt, attempts, delay, _short(exc))
            time.sleep(delay)
            delay = min(max_delay, delay * 2)


def _short(exc, limit=300):
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= limit else line[:limit] + "..."
