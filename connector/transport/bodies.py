"""Reading a reply body: capped at a size, and ended at the run's deadline (``max_duration``).

A read timeout alone cannot end a run on time: a server trickling keep-alive bytes never trips
it. So the bytes are counted as they arrive and, near the deadline, the socket's timeout is cut
to the time left.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import requests
import urllib3

from connector.errors import InvalidResponse

READ_CHUNK = 64 * 1024
DEADLINE_SLACK = 0.1  # how far past max_duration a read may end


class Counter:
    """Bytes read from one reply body so far, and the run's deadline for reading them."""

    def __init__(self, deadline: float = math.inf, sock: Any = None) -> None:
        self.bytes = 0
        self.deadline = deadline
        self.socket = sock  # its timeout is cut to the time left as the deadline nears
        timeout = _timeout_of(sock)
        # Until this moment a read cannot end later than the deadline (plus a little).
        self.check_at = deadline if timeout is None else deadline - timeout + DEADLINE_SLACK


class TooLarge(Exception):
    """The body grew past max_response_bytes."""


class Overdue(Exception):
    """The run reached max_duration while reading a body."""


def past(deadline: float) -> bool:
    # A socket timeout cut to the time left may fire a hair before the deadline.
    return time.monotonic() >= deadline - 0.01


def socket_of(resp: requests.Response) -> Any:
    """Return the socket a reply is read from (None for a mocked reply, which has none).

    Through urllib3's public ``HTTPResponse.connection`` and http.client's ``sock``: a real
    reply always has both while its body is read (tests/test_faults.py fails loudly if not).
    """
    conn = getattr(resp.raw, "connection", None)
    return getattr(conn, "sock", None)


def _timeout_of(sock: Any) -> float | None:
    try:
        return sock.gettimeout() if sock is not None else None
    except OSError:
        return None


def _near_deadline(counter: Counter) -> None:
    """Raise Overdue past the deadline; else cut the next read to the time left."""
    left = counter.deadline - time.monotonic()
    if left <= 0:
        raise Overdue
    counter.check_at = counter.deadline
    if counter.socket is not None:
        try:
            counter.socket.settimeout(left)
        except OSError:
            counter.socket = None
            return
        counter.check_at = counter.deadline - left + DEADLINE_SLACK


def too_large(cap: int, partial: Any = None) -> InvalidResponse:
    return InvalidResponse(
        f"The reply is larger than max_response_bytes ({cap} bytes); raise max_response_bytes"
        " in the connection if it is expected.",
        partial=partial,
    )


def read_body(
    resp: requests.Response, cap: int, counter: Counter, *, truncate: bool = False
) -> bytes:
    """Return the body, reading no more than ``cap`` bytes (error bodies are cut, others fail)."""
    length = resp.headers.get("content-length", "")
    if not truncate and length.isdigit() and int(length) > cap:
        raise too_large(cap)
    parts: list[bytes] = []
    try:
        for chunk in capped(resp.iter_content(READ_CHUNK), cap, counter):
            parts.append(chunk)
    except TooLarge:
        if not truncate:
            raise too_large(cap) from None
    return b"".join(parts)


def capped(chunks: Iterator[bytes], cap: int, counter: Counter) -> Iterator[bytes]:
    monotonic = time.monotonic
    for chunk in chunks:
        counter.bytes += len(chunk)
        if counter.bytes > cap:
            yield chunk[: max(0, cap - (counter.bytes - len(chunk)))]
            raise TooLarge
        yield chunk
        # A server trickling keep-alive comments never trips the read timeout: the deadline
        # does. Near it, the next read waits only for the time left.
        if monotonic() > counter.check_at:
            _near_deadline(counter)


def stream_chunks(resp: requests.Response) -> Iterator[bytes]:
    """Yield body bytes as they arrive (``iter_content`` waits for full blocks unless chunked)."""
    raw = resp.raw
    if getattr(raw, "chunked", False) or not hasattr(raw, "read1"):
        yield from resp.iter_content(READ_CHUNK)
        return
    while True:
        try:
            data = raw.read1(READ_CHUNK)
        except urllib3.exceptions.ReadTimeoutError as exc:
            raise requests.exceptions.ReadTimeout(exc) from exc
        except urllib3.exceptions.ProtocolError as exc:
            raise requests.exceptions.ChunkedEncodingError(exc) from exc
        except urllib3.exceptions.DecodeError as exc:
            raise requests.exceptions.ContentDecodingError(exc) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise requests.exceptions.ConnectionError(exc) from exc
        if not data:
            return
        yield data
