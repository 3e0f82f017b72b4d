"""The server's front door: gunicorn's gthread worker, with a time limit on reading a request.

gunicorn's threaded worker reads a request's headers and body in one of its threads, from a
blocking socket with no time limit: a client that sends half a request and waits holds that
thread for ever, and enough of them leave none for the calls. Here each request's socket
reads share one deadline (``READ_TIMEOUT`` seconds from the first byte awaited): past it the
connection is dropped while headers are read, and a body read fails, which the app answers 408.
Once the app has answered, the limit is lifted (a slow model's reply is not a slow client).
"""

from __future__ import annotations

import errno
import html
import json
import math
import re
import time
from typing import Any

from gunicorn.workers.gthread import ThreadWorker

from connector.errors import ConnectorError, InternalError, Refused

READ_TIMEOUT = 30.0  # set by serving.serve before the workers fork (CONNECTOR_SERVER_READ_TIMEOUT)


class ReadTimedOut(ConnectionResetError):
    """A client did not send its request in time (a reset to gunicorn: logged at debug level)."""

    def __init__(self) -> None:
        super().__init__(errno.ECONNRESET, "the client did not send its request in time")


class TimedSocket:
    """A client socket whose reads stop at ``deadline`` (monotonic); all else passes through."""

    __slots__ = ("deadline", "sock")

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.deadline = math.inf

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)

    def recv(self, size: int, *flags: int) -> bytes:
        return self._timed(self.sock.recv, size, *flags)

    def recv_into(self, buffer: Any, *args: int) -> int:
        return self._timed(self.sock.recv_into, buffer, *args)

    def _timed(self, read, *args):
        if self.deadline == math.inf:
            return read(*args)
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise ReadTimedOut()
        before = self.sock.gettimeout()
        self.sock.settimeout(left)
        try:
            return read(*args)
        except TimeoutError:
            raise ReadTimedOut() from None
        finally:
            self.sock.settimeout(before)


class ErrorObjects:
    """A client socket whose gunicorn error page (a request refused before the app: a header
    too large, too many, conflicting framing) is sent as the connector's error object."""

    __slots__ = ("sock",)

    def __init__(self, sock: Any) -> None:
        self.sock = sock

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)

    def sendall(self, data: bytes, *flags: int) -> None:
        self.sock.sendall(error_object(data), *flags)

    def send(self, data: bytes, *flags: int) -> int:
        self.sock.sendall(error_object(data), *flags)
        return len(data)


_PAGE = re.compile(rb"^HTTP/1\.1 (\d+) ([^\r]*)\r\n.*?</h1>\s*(.*?)\s*</body>", re.S)


def error_object(page: bytes) -> bytes:
    """Return gunicorn's HTML error reply as the same status with the error object, JSON."""
    m = _PAGE.match(page)
    if m is None:
        return page
    status, reason = int(m.group(1)), m.group(2).decode("latin-1")
    detail = html.unescape(m.group(3).decode("latin-1")).strip()
    message = f"{reason}: {detail}" if detail else reason
    if status >= 500:
        error: ConnectorError = InternalError(f"Internal error: {message}.")
    else:
        error = Refused(
            f"{message}. The request was refused before it was read: fix the HTTP request itself.",
            type="malformed_request",
        )
    body = json.dumps({"error": error.to_dict()}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
        f"X-Content-Type-Options: nosniff\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


class FrontDoorWorker(ThreadWorker):
    """gunicorn's gthread worker whose request reads have a deadline (``READ_TIMEOUT``), and
    whose refusals before the app are error objects (``ErrorObjects``)."""

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        super().handle_error(req, ErrorObjects(client), addr, exc)

    def handle(self, conn: Any) -> Any:
        if not isinstance(conn.sock, TimedSocket) and not conn.initialized and not self.cfg.is_ssl:
            conn.sock = TimedSocket(conn.sock)  # before the parser takes the socket
        if isinstance(conn.sock, TimedSocket):
            conn.sock.deadline = time.monotonic() + READ_TIMEOUT
        return super().handle(conn)

    def handle_request(self, req: Any, conn: Any) -> Any:
        try:
            return super().handle_request(req, conn)
        finally:
            if isinstance(conn.sock, TimedSocket):
                conn.sock.deadline = math.inf
