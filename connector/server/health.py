"""Readiness for ``/healthz``: can this server run calls now, part by part.

- ``runs``: the async run store answers (the SQLite file, or PostgreSQL in scale-out mode);
- ``connection``: the server's own connection can make a call (a key, for a provider that
  needs one).
Either failing answers 503, so a load balancer and an operator see it. Nothing secret is said:
a connection error is worded without its values, a store error by its kind. Each answer is
kept for ``KEEP_SECONDS``, so a load balancer's polls cost one look each time, not one each.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from connector.engine import runner
from connector.errors import ConnectorError

KEEP_SECONDS = 2.0
_NO_RUN = "0" * 32  # a run id that is never stored: reading it asks the store a question


class Readiness:
    """The parts of a server's readiness, looked at no more often than every KEEP_SECONDS."""

    def __init__(self, scheduler: Any, clock=time.monotonic) -> None:
        self.scheduler = scheduler
        self.clock = clock
        self._lock = threading.Lock()
        self._seen: tuple[float, dict[str, str]] | None = None

    def parts(self) -> dict[str, str]:
        with self._lock:
            now = self.clock()
            if self._seen is None or now - self._seen[0] > KEEP_SECONDS:
                self._seen = (now, {"runs": self._runs(), "connection": self._connection()})
            return dict(self._seen[1])

    def answer(self) -> tuple[int, dict[str, Any]]:
        """Return (HTTP status, document): 200 when every part is ok, else 503."""
        parts = self.parts()
        ready = all(v == "ok" for v in parts.values())
        return (200 if ready else 503), {"status": "ok" if ready else "unavailable", "parts": parts}

    def _runs(self) -> str:
        store = getattr(self.scheduler, "queue", None) or self.scheduler.store
        try:
            if hasattr(store, "ping"):  # PostgreSQL: one query on a pooled connection
                store.ping()
            else:
                store.get(_NO_RUN)
        except Exception as exc:  # whatever the driver raises: the store cannot be used
            return f"unreachable ({type(exc).__name__}): async runs cannot be stored"
        return "ok"

    def _connection(self) -> str:
        try:
            runner.resolve_connection(self.scheduler.environment)
        except ConnectorError as exc:
            return exc.message
        return "ok"


def startup_warning(environment: dict[str, str]) -> str | None:
    """Return the line ``serve`` prints when its own connection cannot make a call, or None."""
    try:
        runner.resolve_connection(environment)
    except ConnectorError as exc:
        return (
            f"warning: the server's own connection cannot make a call: {exc.message} Only"
            " calls that bring their own X-OpenAI-Api-Key can run; /healthz answers 503."
        )
    return None
