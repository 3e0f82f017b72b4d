"""Work a request thread hands off: queued without a lock, done in batches by one thread.

On a busy worker the request threads hand the GIL to each other all the time, and every lock
they take or thread they wake costs such a hand-over. The action server's log line and metrics
update per run are therefore only appended to a deque (atomic); one thread of the worker takes
what is queued every ``interval`` seconds and does it.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable
from typing import Any


class Batcher:
    """Items queued by any thread, passed in order to ``drain(batch)`` every ``interval`` s."""

    def __init__(self, drain: Callable[[list[Any]], None], interval: float, name: str) -> None:
        self.drain = drain
        self.interval = interval
        self._queued: collections.deque[Any] = collections.deque()
        self._draining = threading.Lock()  # one drain at a time: items keep their order
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._every, name=name, daemon=True)
        self._thread.start()

    def add(self, item: Any) -> None:
        """Queue one item (no lock, no wake-up)."""
        self._queued.append(item)

    def flush(self) -> None:
        """Drain what is queued now."""
        with self._draining:
            batch = []
            while self._queued:
                batch.append(self._queued.popleft())
            if batch:
                self.drain(batch)

    def close(self) -> None:
        """Stop the thread, after draining every item queued."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)
        self.flush()

    def _every(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()
