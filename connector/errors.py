"""Connector errors: one root, subclassed by what the caller should do next.

- ``InvalidInput``: fix the form (nothing was sent); exit 2.
- ``RequestRejected``: the API refused the request; give up or fix the setup; exit 3.
- ``TemporaryFailure``: transient, outlasted the retries; retry later; exit 4.
- ``InvalidResponse``: the reply was unusable; the raw body is kept; exit 5.
- ``InternalError``: a bug in the connector; exit 1.
- ``Refused``: the action server refused the HTTP call itself (token, route, body); fix the call.

HTTP statuses are classified here and nowhere else: the API's statuses into error types
(``error_for_status``), and error types into the action server's statuses (``ERROR_TYPES``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from connector.redaction import excerpt, redact, secret_values


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
        warnings: list[dict[str, Any]] | None = None,
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
        self.warnings = warnings  # what the input rules read leniently (see forms.Notes)

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
        if self.warnings:
            out["warnings"] = self.warnings
        return out

    def replace(self, **changes: Any) -> ConnectorError:
        """Return a copy with some fields changed; an error is never patched once raised."""
        unknown = set(changes) - set(_FIELDS)
        if unknown:
            raise TypeError(f"unknown error fields: {sorted(unknown)}")
        new = copy.copy(self)
        for name, value in changes.items():
            setattr(new, name, excerpt(value) if name == "body" else value)
        new.args = (new.message,)
        new.__traceback__ = None
        return new

    def redacted(self, secrets: Iterable[str | None]) -> ConnectorError:
        """Return a copy with the secrets scrubbed from every text it carries."""
        secrets = secret_values(secrets)
        if not secrets:
            return self
        return self.replace(**{name: redact(getattr(self, name), secrets) for name in _TEXTS})


# What ``replace`` may change, and which of those carry text that could hold a secret.
_FIELDS = ("message", "type", "status", "code", "param", "request_id", "attempts", "body",
           "retry_after", "fields", "partial", "warnings")  # fmt: skip
_TEXTS = ("message", "body", "partial", "fields", "code", "param", "warnings")


class InvalidInput(ConnectorError):
    """The form or the connection is invalid; fix it. Nothing was sent."""

    type = "invalid_input"
    exit_code = 2

    def __init__(self, message: str, *, fields: list[dict[str, str]] | None = None, **kw: Any):
        super().__init__(message, fields=fields or [], **kw)

    @classmethod
    def of_field(cls, name: str, message: str, short: str | None = None) -> InvalidInput:
        """Return the error of the field ``name``, by its name (layers below the manifest).

        ``message`` names fields as `` `name` ``; ``labelled`` puts the form's labels in.
        """
        return cls(message, fields=[{"name": name, "label": name, "message": short or message}])

    @classmethod
    def missing_extra(cls, what: str, extras: str, exc: ImportError) -> InvalidInput:
        """Return the error of a feature whose optional dependencies are not installed."""
        return cls(
            f"{what} needs the {extras.split(',')[-1]} extra ({exc.name} is missing): "
            f"pip install 'openai-chat-connector[{extras}]'."
        )

    def labelled(self, labels: Mapping[str, str]) -> InvalidInput:
        """Return a copy that names by their ``labels`` the fields that ``of_field`` named."""

        def words(text: str) -> str:
            return _NAMED.sub(lambda m: labels.get(m[1], m[0]), text)

        fields = [
            {**f, "label": labels[f["name"]], "message": words(f["message"])}
            if f.get("name") in labels and f.get("label") == f["name"]
            else f
            for f in self.fields or []
        ]
        if fields == self.fields and "`" not in self.message:
            return self
        return self.replace(message=words(self.message), fields=fields)


_NAMED = re.compile(r"`([a-z_]+)`")


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


class Refused(ConnectorError):
    """The action server refused the HTTP call itself (token, route, method, body); nothing ran."""

    type = "bad_call"
    exit_code = 2


class ErrorType(NamedTuple):
    """One value of the error object's ``type``: its class, the server's HTTP status, when."""

    cls: type[ConnectorError]
    http_status: int
    when: str
    server_only: bool = False  # raised by the action server, never by run() or the CLI


# Every error type, with the HTTP status the action server answers it with (the CLI's exit
# code and `retryable` come from the class). Upstream failures are 5xx gateway statuses, so a
# host's retry policy (which retries 429 and 5xx) matches `retryable`, except the two where
# retrying cannot help: `invalid_response` (502) and `internal` (500).
ERROR_TYPES: dict[str, ErrorType] = {
    "invalid_input": ErrorType(
        InvalidInput,
        422,
        "A form field or connection setting is invalid; `fields` lists each one. Nothing was sent.",
    ),
    "bad_request": ErrorType(
        RequestRejected,
        400,
        "The API rejected the request (400/422), e.g. a parameter the model does not support; `param` names it.",
    ),
    "authentication": ErrorType(
        RequestRejected, 401, "The API key is missing, wrong or revoked (401)."
    ),
    "permission": ErrorType(
        RequestRejected, 403, "The key may not use this model or project (403)."
    ),
    "not_found": ErrorType(RequestRejected, 404, "Unknown model or wrong Base URL (404)."),
    "quota_exceeded": ErrorType(
        RequestRejected,
        402,
        "Out of credits or quota (429 `insufficient_quota`, 402). Retrying does not help.",
    ),
    "rate_limited": ErrorType(
        TemporaryFailure,
        429,
        "Still rate limited (429) after the retries, or Retry-After is longer than Max Retry Wait (`retry_after` says how long).",
    ),
    "server_error": ErrorType(
        TemporaryFailure, 502, "The server kept failing (5xx, 409) through the retries."
    ),
    "timeout": ErrorType(
        TemporaryFailure,
        504,
        "No reply within the timeout, through the retries (408 or a read timeout), or the run"
        " reached Max Duration (what arrived of a stream is in `partial`).",
    ),
    "connection": ErrorType(
        TemporaryFailure,
        502,
        "The server could not be reached, or the local backend did not start.",
    ),
    "local_server_crashed": ErrorType(
        RequestRejected,
        502,
        "The embedded local server died while answering (a signal such as SIGSEGV, or an exit"
        " code): the error names its signal and its kept log. Fix the set-up; do not retry.",
    ),
    "local_server_killed": ErrorType(
        TemporaryFailure,
        503,
        "The embedded local server was stopped from outside (SIGKILL, SIGTERM) while answering;"
        " the next run starts a fresh one.",
    ),
    "invalid_response": ErrorType(
        InvalidResponse,
        502,
        "The reply was unusable: not JSON, a stream cut short, or not the JSON that Response Format asked for. `body` keeps the raw reply.",
    ),
    "internal": ErrorType(InternalError, 500, "A bug in the connector."),
    "unauthorized": ErrorType(
        Refused,
        401,
        "The action server's bearer token is missing or wrong (`Authorization: Bearer ...`).",
        server_only=True,
    ),
    "unknown_route": ErrorType(
        Refused, 404, "No such action, run id, field or route.", server_only=True
    ),
    "method_not_allowed": ErrorType(
        Refused, 405, "The route exists, but not for this HTTP method.", server_only=True
    ),
    "bad_call": ErrorType(
        Refused,
        400,
        "The body is not JSON, not an object, or nested deeper than the server allows.",
        server_only=True,
    ),
    "too_large": ErrorType(
        Refused, 413, "The body is larger than the server's cap.", server_only=True
    ),
    "malformed_request": ErrorType(
        Refused,
        400,
        "The HTTP request itself was refused before it was read: a header line or the headers"
        " too large (the status is then 431, or 414 for the request line), too many headers, or"
        " conflicting framing (Content-Length with Transfer-Encoding).",
        server_only=True,
    ),
    "request_timeout": ErrorType(
        Refused,
        408,
        "The request's body did not arrive within the server's read time limit"
        " (CONNECTOR_SERVER_READ_TIMEOUT); send it again, whole.",
        server_only=True,
    ),
    "unsupported_media_type": ErrorType(
        Refused, 415, "The body is not sent as `application/json`.", server_only=True
    ),
    "overloaded": ErrorType(
        TemporaryFailure,
        503,
        "Every run slot of this worker is busy (a sync call), or the queue of async runs is"
        " full (CONNECTOR_RUN_QUEUE_MAX); retry after `Retry-After` seconds.",
        server_only=True,
    ),
    "interrupted": ErrorType(
        TemporaryFailure,
        503,
        "An async run was cut short (its server restarted or stopped, or its queued run's"
        " workers died on it as many times as CONNECTOR_RUN_MAX_ATTEMPTS); start it again.",
        server_only=True,
    ),
    "store_unavailable": ErrorType(
        TemporaryFailure,
        503,
        "The shared run store (PostgreSQL, CONNECTOR_RUNS_URL) cannot be reached; nothing was"
        " started. Retry after `Retry-After` seconds.",
        server_only=True,
    ),
}


def http_status(exc: ConnectorError) -> int:
    """Return the action server's HTTP status for an error (500 for a type not in the table)."""
    entry = ERROR_TYPES.get(exc.type)
    return entry.http_status if entry is not None else 500


# The one place where an HTTP status becomes an error class and type (see ``classify``).
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
QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached"})


def classify(
    status: int | None, code: str | int | None = None, *, in_stream: bool = False
) -> tuple[type[ConnectorError], str] | None:
    """Return (error class, error type) for a reply's status and the API's error code.

    None for a success (2xx). ``status`` None is an error reported inside a 200 reply (a body or
    a stream event): a numeric ``code`` there is the would-be HTTP status (OpenRouter), classified
    like it, except inside a stream, whose reply had begun (never retried); otherwise the reply
    is unusable.
    """
    if status is None:
        if in_stream or not _is_http_error(code):
            return InvalidResponse, "invalid_response"
        status = int(code)  # type: ignore[arg-type]
    if 200 <= status < 300:
        return None
    if status == 429 and code in QUOTA_CODES:
        return RequestRejected, "quota_exceeded"
    if status in _STATUS_TYPES:
        return _STATUS_TYPES[status]
    if status >= 500:
        return TemporaryFailure, "server_error"
    return RequestRejected, "bad_request"  # other 4xx, 1xx, and 3xx (redirects are never followed)


def _is_http_error(code: Any) -> bool:
    return isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599


def error_for_status(
    status: int | None,
    message: str,
    *,
    means: int | None = None,
    in_stream: bool = False,
    **kw: Any,
) -> ConnectorError:
    """Build the connector error for an error reply, whole.

    ``status`` is reported as it came; ``means`` is the status it stands for when a server
    misreports (the local server answers a rejected request with 500); ``status`` None is an
    error inside a 200 reply (see ``classify``).
    """
    found = classify(means or status, kw.get("code"), in_stream=in_stream)
    cls, type_ = found or (InvalidResponse, "invalid_response")
    if status is None and cls is not InvalidResponse:
        status = kw["code"]
    return cls(message, type=type_, status=status, **kw)
