"""A real SMTP server on loopback (aiosmtpd) that keeps every message it accepts."""

from __future__ import annotations

import email
import email.policy
import threading
import time
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


class _Controller(Controller):
    """aiosmtpd's controller, bound to port 0: the port is read back once the socket exists."""

    def _trigger_server(self) -> None:
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class MailServer:
    """``with MailServer() as mail: ... mail.wait(1)`` gives the parsed messages received."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self._arrived = threading.Condition()
        self._controller = _Controller(self, hostname=host, port=0)

    @property
    def host(self) -> str:
        return self._controller.hostname

    @property
    def port(self) -> int:
        return self._controller.port

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """aiosmtpd's hook: parse and keep the message, then accept it."""
        raw = envelope.content.replace(b"\r\n", b"\n")  # SMTP's line ends, as Python's
        message = email.message_from_bytes(raw, policy=email.policy.default)
        with self._arrived:
            self.messages.append(message)
            self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            self._arrived.notify_all()
        return "250 Message accepted for delivery"

    def wait(self, count: int, timeout: float = 10.0) -> list[EmailMessage]:
        """Return the messages once at least ``count`` arrived (fewer after ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.messages) < count and time.monotonic() < deadline:
                self._arrived.wait(deadline - time.monotonic())
            return list(self.messages)

    def clear(self) -> None:
        with self._arrived:
            self.messages.clear()
            self.envelopes.clear()

    def __enter__(self) -> MailServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._controller.stop()
