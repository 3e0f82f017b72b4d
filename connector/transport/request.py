"""One API request as it is sent: method, URL, headers, the body and its JSON bytes."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from connector.errors import InvalidInput


# A slotted class, not a dataclass: importing dataclasses (and inspect with it)
# would cost every cold start about 4 ms (benchmarks/bench.py).
class Request:
    """One API request as the transport sends it: method, URL, headers, body, stream."""

    __slots__ = ("aggregator", "body", "deadline", "headers", "method", "settings", "stream", "url")

    def __init__(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: dict[str, Any] | None,
        stream: bool,
        settings: dict[str, Any],  # proxies and CA bundle for the URL, from the environment
    ) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.stream = stream
        self.settings = settings
        self.deadline = math.inf  # the end of max_duration, on the monotonic clock
        self.aggregator: Callable[..., Any] | None = None  # collects a stream's events

    @property
    def data(self) -> bytes | None:
        if self.body is None:
            return None
        try:
            return json.dumps(self.body, allow_nan=False).encode()
        except ValueError:
            raise InvalidInput(
                "The request contains NaN or Infinity, which JSON cannot carry; use a number."
            ) from None
