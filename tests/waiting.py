"""Polling for what a real worker, server or browser does in its own time."""
import time

# The first polls come quickly (most waits end within moments); a long wait polls at most 4 times a
# second. Each poll is a database query or a browser round trip in the test process, and 20 a
# second for minutes on end took a share of the two cores from the workers the test waits on.
FIRST_INTERVAL, MAX_INTERVAL = 0.05, 0.25


def wait_for(predicate, timeout, what, log=None, interval=None):
    """The predicate's first truthy value within `timeout` seconds, or a failure naming `what`
    (with the tail of `log()`, e.g. a worker's output, when given). Polls every `interval` s when
    given, else from every 0.05 s up to every 0.25 s."""
    deadline = time.monotonic() + timeout
    pause = interval or FIRST_INTERVAL
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(pause)
        if interval is None:
            pause = min(pause * 1.5, MAX_INTERVAL)
    raise AssertionError(f"{what} not reached in {timeout}s" + (f"\n{log()[-4000:]}" if log else ""))
