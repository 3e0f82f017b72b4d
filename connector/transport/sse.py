"""Server-sent events: parse a streamed reply and hand its JSON events to an aggregator.

Parsing follows the SSE spec (lines end in CR, LF or CRLF; ``:`` starts a comment; several
``data`` lines join with a newline; a blank line ends an event). What the events mean is the
action's: its ``stream_aggregator`` hook (``add(event)``, ``result()``, ``chunks``) collects
them; for chat, ``actions/chunks.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple, Protocol

from connector.errors import InvalidResponse
from connector.redaction import excerpt
from connector.transport.providers import event_error

DONE = "[DONE]"
_NEWLINE = re.compile(rb"\r\n|\r|\n")


class Event(NamedTuple):
    """One dispatched server-sent event."""

    event: str
    data: str
    complete: bool = True


class LineTooLong(Exception):
    """A stream line grew past the configured limit."""


def iter_lines(chunks: Iterable[bytes], max_line_bytes: int) -> Iterator[bytes]:
    """Yield the lines of a byte stream, whatever the chunk boundaries; the last may be partial."""
    parts: list[bytes] = []
    size = 0
    skip_lf = False
    for chunk in chunks:
        start = 0
        if skip_lf and chunk[:1] == b"\n":
            start = 1  # the LF of a CRLF split across two chunks
        skip_lf = False
        while True:
            match = _NEWLINE.search(chunk, start)
            end = match.start() if match else len(chunk)
            size += end - start
            if size > max_line_bytes:
                raise LineTooLong(size)
            parts.append(chunk[start:end])
            if match is None:
                break
            yield b"".join(parts)
            parts, size = [], 0
            skip_lf = match.group() == b"\r" and match.end() == len(chunk)
            start = match.end()
    if size:
        yield b"".join(parts)


def iter_events(lines: Iterable[bytes]) -> Iterator[Event]:
    """Yield the events in SSE lines; one still open when the lines end comes marked incomplete."""
    data: list[str] = []
    event = ""
    for raw in lines:
        line = raw.decode("utf-8", errors="replace")
        if not line:
            if data:
                yield Event(event or "message", "\n".join(data))
            data, event = [], ""
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            data.append(value)
        elif field == "event":
            event = value
    if data:
        yield Event(event or "message", "\n".join(data), complete=False)


class Aggregator(Protocol):
    """What collects a stream's JSON events into the whole reply (an action's hook makes it)."""

    chunks: int

    def add(self, event: dict[str, Any]) -> None: ...

    def result(self) -> dict[str, Any]: ...


def collect(chunks: Iterable[bytes], *, max_line_bytes: int, aggregator: Aggregator) -> Any:
    """Read a whole SSE reply and return what the aggregator made of it.

    Raises ``InvalidResponse`` (with ``partial``) for a stream cut before ``[DONE]``, a line over
    the limit or an event that is not JSON, and the status-classified error for an API error event.
    """
    agg = aggregator
    try:
        for event in iter_events(iter_lines(chunks, max_line_bytes)):
            if event.data.strip() == DONE:
                return agg.result()
            if event.event in ("message", "error"):  # other named events are not chunks
                _handle(event, agg)
    except LineTooLong as exc:
        raise InvalidResponse(
            f"A line of the streamed reply is longer than max_sse_line_bytes ({max_line_bytes}"
            f" bytes, got at least {exc.args[0]}); raise max_sse_line_bytes in the connection.",
            partial=agg.result(),
        ) from None
    raise InvalidResponse(
        f"The streamed reply ended before [DONE] after {agg.chunks} chunks; the answer is"
        " incomplete (what arrived is in `partial`).",
        partial=agg.result(),
    )


def _handle(event: Event, agg: Aggregator) -> None:
    try:
        payload = json.loads(event.data)
    except (ValueError, RecursionError):
        if not event.complete:
            return  # the stream stopped inside this event: reported as cut by the caller
        if event.event == "error":
            raise event_error(
                {"error": {"message": event.data}}, agg.result(), in_stream=True
            ) from None
        raise InvalidResponse(
            f"An event of the streamed reply is not JSON: {excerpt(event.data, 200)}",
            body=event.data,
            partial=agg.result(),
        ) from None
    if event.event == "error" or (
        isinstance(payload, dict)
        and (payload.get("error") is not None or payload.get("object") == "error")
    ):
        raise event_error(payload, agg.result(), in_stream=True)
    if not isinstance(payload, dict):
        raise InvalidResponse(
            f"An event of the streamed reply is not a JSON object: {excerpt(event.data, 200)}",
            body=event.data,
            partial=agg.result(),
        )
    agg.add(payload)
