"""What a reply means: error bodies, statuses and network failures become connector errors.

The transport (``connector/transport/http.py``) reads replies; this module words what went wrong, with
the status table of ``errors.classify`` and the provider's reading of error bodies.
"""

from __future__ import annotations

import email.utils
import json
import re
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import requests

from connector import errors
from connector.errors import ConnectorError, InvalidResponse, TemporaryFailure
from connector.transport import providers
from connector.transport.connection import Connection

EXCERPT_CHARS = 300
_TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<!--.*?-->|<[^>]*>", re.I | re.S)
# urllib3 starts its messages with the connection object: "<...HTTPSConnection at 0x..>: " or
# "HTTPSConnection(host='x', port=443): ".
_OBJECT_PREFIX = re.compile(r"^(<[^>]*>|\w+\(host=[^)]*\)):\s*")


class Failure(NamedTuple):
    """One failed attempt: the error to raise, whether another attempt may help, the headers."""

    error: ConnectorError
    retryable: bool
    headers: Mapping[str, str] | None = None


def parse_json(raw: bytes, status: int, host: str) -> Any:
    if not raw.strip():
        if status == 204:
            return None
        raise InvalidResponse(f"{host} answered {status} with an empty body.", status=status)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidResponse(
            f"{host} answered {status} but the body is not JSON ({_json_problem(exc)}):"
            f" {text_excerpt(raw)!r}. Check base_url and any proxy or login page in between.",
            status=status,
            body=raw,
        ) from None


def _json_problem(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at character {exc.pos}"
    return type(exc).__name__


def text_excerpt(raw: bytes, limit: int = EXCERPT_CHARS) -> str:
    """Return a short plain-text excerpt of a body, HTML tags stripped."""
    text = raw[: limit * 20].decode("utf-8", errors="replace")
    if "<" in text and ">" in text:
        text = _TAGS.sub(" ", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rstrip() + "..."


# -- errors ------------------------------------------------------------------------------------


def request_id_of(headers: Mapping[str, str]) -> str | None:
    for name in ("x-request-id", "apim-request-id", "request-id", "x-ms-request-id"):
        if headers.get(name):
            return headers[name]
    return None


def status_failure(
    resp: requests.Response,
    raw: bytes,
    host: str,
    request_id: str | None,
    provider: providers.Provider,
) -> Failure:
    status = resp.status_code
    head = f"HTTP {status} {resp.reason or ''}".rstrip() + f" from {host}"
    try:
        data = json.loads(raw) if raw.strip() else None
    except (ValueError, RecursionError):
        data = None
    fields = providers.read_error(data)
    if fields is not None:
        details = [f"{k}: {fields[k]}" for k in ("type", "code", "param") if fields[k] is not None]
        message = f"{head}: {provider.error_message(fields['message'])}"
        code, param = fields["code"], fields["param"]
    else:
        content_type = resp.headers.get("content-type", "unknown type").split(";")[0]
        text = text_excerpt(raw)
        message = f"{head} ({content_type}): {text}" if text else f"{head} with an empty body"
        details, code, param = [], None, None
    if request_id:
        details.append(f"request id: {request_id}")
    if details:
        message += f" ({', '.join(details)})"
    error = errors.error_for_status(
        status,
        message,
        means=provider.error_status(status, fields),
        code=code,
        param=param,
        request_id=request_id,
        body=raw or None,
    )
    return Failure(error, should_retry(error, resp.headers), resp.headers)


def should_retry(error: ConnectorError, headers: Mapping[str, str]) -> bool:
    if error.type == "quota_exceeded":
        return False  # an account problem: waiting does not help, whatever the headers say
    override = headers.get("x-should-retry", "").strip().lower()
    if override in ("true", "false"):
        return override == "true"
    return error.retryable


def redirect_error(resp: requests.Response, host: str, request_id: str | None) -> ConnectorError:
    location = resp.headers.get("location", "")
    target = urlsplit(location)
    where = f"{target.scheme}://{target.netloc}{target.path}" if target.netloc else target.path
    message = (
        f"HTTP {resp.status_code} from {host} redirects to {where or 'an unknown place'}."
        f" Redirects are not followed so the API key stays with {host}: fix base_url"
        f" (the server points to {target.hostname or host})."
    )
    return errors.error_for_status(resp.status_code, message, request_id=request_id)


def network_failure(
    exc: requests.RequestException, host: str, connection: Connection, *, reading: bool
) -> Failure:
    reason = reason_of(exc)
    timed_out = isinstance(exc, requests.Timeout) or "timed out" in reason.lower()
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        message = f"Could not connect to {host} within {connection.connect_timeout:g} s."
    elif timed_out:
        message = (
            f"{host} sent nothing for {connection.timeout:g} s (timeout); slow models may need"
            " a longer timeout."
        )
    elif isinstance(exc, requests.exceptions.SSLError):
        message = f"TLS error with {host}: {reason}."
    elif reading:
        message = f"The connection to {host} broke while reading the reply: {reason}."
    else:
        message = f"Could not reach {host}: {reason}."
    error = TemporaryFailure(message, type="timeout" if timed_out else "connection")
    return Failure(error, True)


def reason_of(exc: BaseException) -> str:
    """Return the innermost cause of a requests/urllib3 error, without object reprs."""
    seen: set[int] = set()
    current: BaseException = exc
    while id(current) not in seen:
        seen.add(id(current))
        inner = getattr(current, "reason", None)
        if not isinstance(inner, BaseException) and current.args:
            inner = current.args[0]
        if not isinstance(inner, BaseException):
            break
        current = inner
    text = str(current) or type(current).__name__
    return _OBJECT_PREFIX.sub("", text)


def summary(error: ConnectorError) -> str:
    if error.status:
        return f"{error.status} {error.type}"
    return "connection error" if error.type == "connection" else error.type


def retry_after_of(headers: Mapping[str, str] | None, now: float) -> float | None:
    """Return the wait the server asks for (``retry-after-ms``, then ``Retry-After``), if any."""
    if not headers:
        return None
    try:
        return float(headers["retry-after-ms"]) / 1000
    except (KeyError, ValueError, TypeError):
        pass
    value = (headers.get("retry-after") or "").strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when.timestamp() - now


def noted(error: ConnectorError, note: str) -> ConnectorError:
    return error.replace(message=f"{error.message} {note}")


def is_error_body(data: Any) -> bool:
    """Return True for a 2xx body that is an API error (some servers answer 200 with one)."""
    return isinstance(data, dict) and (
        data.get("error") is not None or data.get("object") == "error"
    )
