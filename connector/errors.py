"""Connector errors: one root, subclassed by what the caller should do next.

- ``InvalidInput``: fix the form (nothing was sent); exit 2.
- ``RequestRejected``: the API refused the request; give up or fix the setup; exit 3.
- ``TemporaryFailure``: transient, outlasted the retries; retry later; exit 4.
- ``InvalidResponse``: the reply was unusable; the raw body is kept; exit 5.
- ``InternalError``: a bug in the connector; exit 1.

HTTP statuses are classified here and nowhere else (``error_for_status``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

BODY_EXCERPT_CHARS = 2000
REDACTED = "***"


def excerpt(text: str | bytes | None, limit: int = BODY_EXCERPT_CHARS) -> str | None:
    """Return ``text`` capped at ``limit`` characters, decoded leniently."""
    if text is None:
        return None
    if isinstance(text, bytes | bytearray):
        text = bytes(text[: limit * 4]).decode("utf-8", errors="replace")
    if len(text) <= limit:
        return text
    return text[:limit] + f"... [{len(text) - limit} more characters]"


def redact(value: Any, secrets: Iterable[str | None]) -> Any:
    """Replace every secret inside strings of ``value`` (recursively) with ``***``."""
    secrets = [s for s in secrets if s and len(s) >= 4]
    if not secrets:
        return value
    return _redact(value, secrets)


def _redact(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {k: _redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v, secrets) for v in value]
    return value


class ConnectorError(Exception):
    """Root of every error the connector raises; ``to_dict()`` is the workflow's error object."""

    type = "internal"
    retryable = False
    exit_code = 1

    def __init__(
        self,
        message: str,
        *,
        type: str | None = None,
        status: int | None = None,
        code: str | int | None = None,
        param: str | None = None,
        request_id: str | None = None,
        attempts: int | None = None,
        body: str | bytes | None = None,
        retry_after: float | None = None,
        fields: list[dict[str, str]] | None = None,
        partial: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if type is not None:
            self.type = type
        self.status = status
        self.code = code
        self.param = param
        self.request_id = request_id
        self.attempts = attempts
        self.body = excerpt(body)
        self.retry_after = retry_after
        self.fields = fields
        self.partial = partial

    def to_dict(self) -> dict[str, Any]:
        """Return the structured error object a workflow can branch on."""
        out: dict[str, Any] = {
            "type": self.type,
            "message": self.message,
            "retryable": self.retryable,
            "status": self.status,
            "code": self.code,
            "param": self.param,
            "request_id": self.request_id,
            "attempts": self.attempts,
        }
        if self.fields is not None:
            out["fields"] = self.fields
        if self.retry_after is not None:
            out["retry_after"] = self.retry_after
        if self.body is not None:
            out["body"] = self.body
        if self.partial is not None:
            out["partial"] = self.partial
        return out

    def redacted(self, secrets: Iterable[str | None]) -> ConnectorError:
        """Scrub secrets from every text this error carries, in place; return self."""
        secrets = list(secrets)
        self.message = redact(self.message, secrets)
        self.args = (self.message,)
        self.body = redact(self.body, secrets)
        self.partial = redact(self.partial, secrets)
        self.fields = redact(self.fields, secrets)
        self.code = redact(self.code, secrets)
        self.param = redact(self.param, secrets)
        return self


class InvalidInput(ConnectorError):
    """The form or the connection is invalid; fix it. Nothing was sent."""

    type = "invalid_input"
    exit_code = 2

    def __init__(self, message: str, *, fields: list[dict[str, str]] | None = None, **kw: Any):
        super().__init__(message, fields=fields or [], **kw)


class RequestRejected(ConnectorError):
    """The API refused the request (bad request, auth, permission, not found, quota)."""

    type = "bad_request"
    exit_code = 3


class TemporaryFailure(ConnectorError):
    """A transient failure that outlasted the retries; the same call may work later."""

    type = "server_error"
    retryable = True
    exit_code = 4


class InvalidResponse(ConnectorError):
    """The API answered with something unusable; ``body``/``partial`` keep what came back."""

    type = "invalid_response"
    exit_code = 5


class InternalError(ConnectorError):
    """A bug in the connector."""

    type = "internal"
    exit_code = 1


# The one place where an HTTP status becomes an error class and type.
_STATUS_TYPES: dict[int, tuple[type[ConnectorError], str]] = {
    400: (RequestRejected, "bad_request"),
    401: (RequestRejected, "authentication"),
    402: (RequestRejected, "quota_exceeded"),  # OpenRouter: out of credits
    403: (RequestRejected, "permission"),
    404: (RequestRejected, "not_found"),
    408: (TemporaryFailure, "timeout"),
    409: (TemporaryFailure, "server_error"),  # lock/conflict: transient per the SDK
    422: (RequestRejected, "bad_request"),
    429: (TemporaryFailure, "rate_limited"),
}

RETRYABLE_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))
QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})


def classify_status(status: int, code: str | int | None = None) -> tuple[type[ConnectorError], str]:
    """Return (error class, error type) for an HTTP status and the API's error code."""
    if status == 429 and code in QUOTA_CODES:
        return RequestRejected, "quota_exceeded"
    if status in _STATUS_TYPES:
        return _STATUS_TYPES[status]
    if status >= 500:
        return TemporaryFailure, "server_error"
    return RequestRejected, "bad_request"  # other 4xx, and 3xx (redirects are never followed)


def is_retryable_status(status: int, code: str | int | None = None) -> bool:
    """Return True when a response with this status may succeed if sent again."""
    return classify_status(status, code)[0] is TemporaryFailure


def error_for_status(status: int, message: str, **kw: Any) -> ConnectorError:
    """Build the connector error for an HTTP error response."""
    cls, type_ = classify_status(status, kw.get("code"))
    return cls(message, type=type_, status=status, **kw)
