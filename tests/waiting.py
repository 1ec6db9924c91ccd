"""Polling for what a real worker, server or browser does in its own time."""
import time


def wait_for(predicate, timeout, what, log=None, interval=0.05):
    """The predicate's first truthy value within `timeout` seconds, or a failure naming `what`
    (with the tail of `log()`, e.g. a worker's output, when given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not reached in {timeout}s" + (f"\n{log()[-4000:]}" if log else ""))
