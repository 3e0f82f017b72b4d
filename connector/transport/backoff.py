"""When to retry a failed attempt: the server's ``Retry-After``, else capped jittered backoff.

The wait never runs past ``max_retry_wait`` or the run's ``max_duration``: a retry that could
only end in the deadline fails now, with a note that says which setting to raise.

Our own loop (``http.Transport.send``) rather than urllib3's ``Retry``: ``Retry`` cannot read
the API's error body (a 429 with code ``insufficient_quota`` must not be retried), does not know
``retry-after-ms`` or ``x-should-retry``, cannot fail at once when ``Retry-After`` is past a cap
while still reporting the wait, and would retry a stream after its first byte. A loop also lets
every error carry the number of attempts and lets tests inject the sleep.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from connector.errors import ConnectorError
from connector.transport import replies
from connector.transport.connection import Connection

INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 8.0


def next_delay(
    outcome: replies.Failure,
    attempt: int,
    connection: Connection,
    now: float,
    random: Callable[[], float],
    deadline: float = math.inf,
) -> tuple[float | None, ConnectorError]:
    """Return how long to wait before attempt ``attempt + 1`` (None: give up), and its error.

    ``now`` is the wall clock (``Retry-After`` may be a date); ``deadline`` is monotonic.
    """
    error = outcome.error
    max_retries = max(0, int(connection.max_retries))
    wait = replies.retry_after_of(outcome.headers, now)
    if wait is not None and wait > 0:
        error = error.replace(retry_after=round(wait, 3))
    if not outcome.retryable:
        return None, error
    cap = connection.max_retry_wait
    if wait is not None and wait > cap:
        note = (
            f"The server asks to wait {wait:.0f} s before retrying, longer than"
            f" max_retry_wait ({cap:g} s): retry after that time, or raise max_retry_wait."
        )
        return None, replies.noted(error, note)
    if attempt > max_retries:
        if wait is not None and wait > 0:
            error = replies.noted(error, f"The server asks to wait {wait:g} s before retrying.")
        return None, error
    if wait is not None and wait > 0:
        delay = wait
    else:
        backoff = min(INITIAL_BACKOFF * 2 ** (attempt - 1), MAX_BACKOFF)
        delay = backoff * (1 - 0.25 * random())
    left = deadline - time.monotonic()
    if delay >= left:
        # Waiting would only end in the deadline: fail now, with this attempt's error.
        total = connection.max_duration
        if wait is not None and wait > 0:
            why = f"The server asks to wait {delay:g} s before retrying"
        else:
            why = f"The next retry would start in {delay:.1f} s"
        note = (
            f"{why}, but only {max(left, 0):.1f} s of max_duration ({total:g} s) remain:"
            " retry later, or raise max_duration."
        )
        return None, replies.noted(error, note)
    return delay, error
