"""HTTP transport: one pooled session per connection, retries, no redirects, capped bodies.

The retry loop is our own rather than urllib3's ``Retry``: ``Retry`` cannot read the API's error
body (a 429 with code ``insufficient_quota`` must not be retried), does not know
``retry-after-ms`` or ``x-should-retry``, cannot fail at once when ``Retry-After`` is past a cap
while still reporting the wait, and would retry a stream after its first byte. A loop also lets
every error carry the number of attempts and lets tests inject the sleep.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import logging
import math
import os
import random as _random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

from connector import errors, providers
from connector.connection import Connection
from connector.errors import ConnectorError, InvalidInput, InvalidResponse, TemporaryFailure
from connector.policy import host_allowed, is_forbidden, is_loopback

log = logging.getLogger("connector")

# Idle connections kept per host; 200 concurrent runs reuse them without waiting on the pool.
POOL_MAXSIZE = 200
READ_CHUNK = 64 * 1024
ERROR_BODY_BYTES = 1024 * 1024
INITIAL_BACKOFF = 0.5
MAX_BACKOFF = 8.0
EXCERPT_CHARS = 300
DEADLINE_SLACK = 0.1  # how far past max_duration a read may end
_TAGS = re.compile(r"<(script|style)\b.*?</\1\s*>|<!--.*?-->|<[^>]*>", re.I | re.S)
# urllib3 starts its messages with the connection object: "<...HTTPSConnection at 0x..>: " or
# "HTTPSConnection(host='x', port=443): ".
_OBJECT_PREFIX = re.compile(r"^(<[^>]*>|\w+\(host=[^)]*\)):\s*")


def _version() -> str:
    try:
        return metadata.version("openai-chat-connector")
    except metadata.PackageNotFoundError:
        return "0"


USER_AGENT = f"openai-chat-connector/{_version()}"


@dataclass
class Reply:
    """A successful reply: the parsed body (a stream arrives aggregated) and how it came."""

    data: Any
    status: int
    headers: Mapping[str, str]
    request_id: str | None
    attempts: int


@dataclass
class _Failure:
    """One failed attempt: the error to raise, whether another attempt may help, the headers."""

    error: ConnectorError
    retryable: bool
    headers: Mapping[str, str] | None = None


@dataclass
class _Request:
    method: str
    url: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    stream: bool
    settings: dict[str, Any]  # proxies and CA bundle for the URL, from the environment
    deadline: float = math.inf  # the end of max_duration, on the monotonic clock

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


class _Counter:
    """Bytes read from one reply body so far, and the run's deadline for reading them."""

    def __init__(self, deadline: float = math.inf, sock: Any = None) -> None:
        self.bytes = 0
        self.deadline = deadline
        self.socket = sock  # its timeout is cut to the time left as the deadline nears
        timeout = _timeout_of(sock)
        # Until this moment a read cannot end later than the deadline (plus a little).
        self.check_at = deadline if timeout is None else deadline - timeout + DEADLINE_SLACK


class Transport:
    """Send API requests for one connection over its own pooled ``requests.Session``."""

    def __init__(
        self,
        connection: Connection,
        *,
        sleep: Callable[[float], Any] = time.sleep,
        random: Callable[[], float] = _random.random,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.connection = connection
        self.provider = providers.provider_for(connection.provider)
        self._sleep = sleep
        self._random = random
        self._clock = clock
        self._key = (connection.api_key or "").strip() or None
        self._session = _new_session()
        # The checked URL and its environment settings by API path: the connection never changes.
        self._targets: dict[str, tuple[str, dict[str, Any]]] = {}
        # Asked after each failed attempt: the error to raise instead, e.g. when the local
        # server behind this connection has died (then a retry would only meet a dead port).
        self.peer_check: Callable[[ConnectorError], ConnectorError | None] | None = None

    def prepare(
        self, method: str, path: str, body: dict | None = None, *, stream: bool = False
    ) -> dict[str, Any]:
        """Return {method, url, headers, body} as they would be sent, secrets redacted."""
        req = self._request(method, path, body, stream)
        headers = dict(req.headers)
        if self.provider.key_header in headers:
            value = headers[self.provider.key_header]
            headers[self.provider.key_header] = (
                "Bearer " + errors.REDACTED if value.startswith("Bearer ") else errors.REDACTED
            )
        # The key header is masked whole; the facade (runner.prepare) redacts the rest.
        return {"method": req.method, "url": req.url, "headers": headers, "body": req.body}

    def send(
        self,
        method: str,
        path: str,
        body: dict | None = None,
        *,
        stream: bool = False,
        on_token: Callable[[str], None] | None = None,
    ) -> Reply:
        """Send one API request, retrying transient failures; return the reply or raise."""
        # Errors leave unredacted: the facade (runner.run) redacts once, at the boundary.
        return self._send(method, path, body, stream, on_token)

    def _send(
        self,
        method: str,
        path: str,
        body: dict | None,
        stream: bool,
        on_token: Callable[[str], None] | None,
    ) -> Reply:
        req = self._request(method, path, body, stream)
        req.deadline = time.monotonic() + self.connection.max_duration
        data = req.data  # encoded once for every attempt
        self.provider.check_key(self._key)
        max_retries = max(0, int(self.connection.max_retries))
        attempt = 0
        while True:
            attempt += 1
            outcome = self._attempt(req, data, on_token)
            if isinstance(outcome, Reply):
                outcome.attempts = attempt
                return outcome
            dead = self.peer_check(outcome.error) if self.peer_check else None
            if dead is not None:
                raise dead.replace(attempts=attempt)
            delay, error = self._retry_delay(outcome, attempt, max_retries, req.deadline)
            if delay is None:
                if attempt > 1:
                    error = _noted(error, f"Gave up after {attempt} attempts.")
                raise error.replace(attempts=attempt)
            log.warning(
                "retrying after %.1f s: %s (attempt %d of %d)",
                delay,
                _summary(outcome.error),
                attempt + 1,
                max_retries + 1,
            )
            self._sleep(delay)

    def close(self) -> None:
        """Close the pooled connections and forget this transport."""
        with _LOCK:
            if _TRANSPORTS.get(self.connection.key()) is self:
                del _TRANSPORTS[self.connection.key()]
        self._session.close()

    # -- one request --------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: dict | None, stream: bool) -> _Request:
        stream = stream or bool(body and body.get("stream"))
        target = self._targets.get(path)
        if target is None:
            url = self.provider.url(self.connection, path)
            self._check_url(url)
            target = self._targets[path] = (url, _environment_settings(url))
        url, settings = target
        headers = {
            "User-Agent": USER_AGENT,
            "Accept": "text/event-stream" if stream else "application/json",
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        for name, label, value in (
            ("api_key", "API Key", self._key),
            ("organization", "Organization ID", self.connection.organization),
            ("project", "Project ID", self.connection.project),
        ):
            if value and not _header_safe(value):
                # Never echo the value: it may be the key.
                raise InvalidInput(
                    f"{label} contains spaces, line breaks or non-ASCII characters;"
                    " paste it again.",
                    fields=[{"name": name, "label": label, "message": "invalid characters"}],
                )
        headers.update(self.provider.headers(self._key, self.connection))
        sent = self.provider.body(body, stream=stream) if body is not None else None
        return _Request(method.upper(), url, headers, sent, stream, settings)

    def _check_url(self, url: str) -> None:
        """Refuse URLs the key must not travel to (a cheap recheck of policy.check_base_url)."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            raise _base_url_error(f"base_url must be an http(s) URL with a host, got {url!r}.")
        if (
            parts.scheme == "http"
            and self._key
            and not is_loopback(host)
            and not self.connection.allow_insecure_http
        ):
            raise _base_url_error(
                f"base_url uses plain http to {host}, which would send the API key unencrypted;"
                " use https, or set allow_insecure_http."
            )
        if self.connection.allowed_hosts and not host_allowed(host, self.connection.allowed_hosts):
            raise _base_url_error(f"base_url names {host}, which is not in allowed_hosts.")

    def _attempt(
        self, req: _Request, data: bytes | None, on_token: Callable[[str], None] | None
    ) -> Reply | _Failure:
        host = urlsplit(req.url).hostname or "the server"
        left = req.deadline - time.monotonic()
        if left <= 0:
            return _Failure(self._overdue(host), False)
        timeout = (min(self.connection.connect_timeout, left), min(self.connection.timeout, left))
        try:
            resp = self._session.request(
                req.method,
                req.url,
                headers=req.headers,
                data=data,
                timeout=timeout,
                allow_redirects=False,
                stream=True,
                auth=_keep_headers,
                **req.settings,
            )
        except requests.exceptions.InvalidURL as exc:
            raise _base_url_error(f"base_url is not a valid URL: {exc}") from None
        except ForbiddenPeer as exc:
            raise _base_url_error(
                f"base_url's host {exc.host} led to {exc.address}, a link-local or cloud-metadata"
                " address; the key is never sent there. Use the API's public host name."
            ) from None
        except requests.RequestException as exc:
            if _past(req.deadline):
                return _Failure(self._overdue(host), False)
            return _network_failure(exc, host, self.connection, reading=False)
        try:
            return self._read(resp, req, host, on_token)
        finally:
            resp.close()

    def _read(
        self,
        resp: requests.Response,
        req: _Request,
        host: str,
        on_token: Callable[[str], None] | None,
    ) -> Reply | _Failure:
        request_id = _request_id(resp.headers)
        status = resp.status_code
        failed = errors.classify(status) is not None  # the one status table decides
        if failed and resp.is_redirect:
            return _Failure(_redirect_error(resp, host, request_id), False, resp.headers)
        counter = _Counter(req.deadline, _socket(resp))
        content_type = resp.headers.get("content-type", "").lower()
        try:
            if failed:
                raw = _read_body(resp, ERROR_BODY_BYTES, counter, truncate=True)
                return _status_failure(resp, raw, host, request_id, self.provider)
            if req.stream and "json" not in content_type:
                if content_type and "event-stream" not in content_type:
                    raw = _read_body(resp, ERROR_BODY_BYTES, counter, truncate=True)
                    raise InvalidResponse(
                        f"Expected a stream (text/event-stream) from {host} but got"
                        f" {content_type}: {_text_excerpt(raw)!r}. Check base_url.",
                        status=status,
                        body=raw,
                    )
                data = self._read_stream(resp, counter, on_token)
            else:
                cap = self.connection.max_response_bytes
                raw = _read_body(resp, cap, counter)
                data = _parse_json(raw, status, host)
                if _is_error_body(data):
                    # A whole reply, so resending is as safe as after the same error status.
                    error = providers.event_error(data, None, request_id=request_id, body=raw)
                    return _Failure(error, _should_retry(error, resp.headers), resp.headers)
        except (requests.RequestException, _Overdue) as exc:
            if isinstance(exc, _Overdue) or _past(req.deadline):
                partial = getattr(exc, "partial", None)
                error = self._overdue(host, counter.bytes if req.stream else 0, partial)
                return _Failure(error.replace(status=status, request_id=request_id), False)
            failure = _network_failure(exc, host, self.connection, reading=True)
            if req.stream and counter.bytes:
                partial = getattr(exc, "partial", None)
                return _Failure(
                    InvalidResponse(
                        f"The streamed reply from {host} was cut after {counter.bytes} bytes:"
                        f" {failure.error.message}",
                        status=status,
                        request_id=request_id,
                        partial=partial,
                    ),
                    False,
                )
            return _Failure(failure.error.replace(request_id=request_id), failure.retryable)
        except ConnectorError as exc:
            error = exc.replace(
                request_id=exc.request_id or request_id, status=exc.status or status
            )
            # A stream closed before its first byte lost nothing: as safe to resend as a reset.
            return _Failure(error, req.stream and counter.bytes == 0, resp.headers)
        return Reply(data, status, resp.headers, request_id, 0)

    def _read_stream(
        self, resp: requests.Response, counter: _Counter, on_token: Callable[[str], None] | None
    ) -> dict[str, Any]:
        from connector import stream  # chat chunks: imported only when a stream is read

        agg = stream.Aggregator(on_token)
        chunks = _capped(_stream_chunks(resp), self.connection.max_response_bytes, counter)
        try:
            return stream.collect(
                chunks, max_line_bytes=self.connection.max_sse_line_bytes, aggregator=agg
            )
        except _TooLarge:
            raise _too_large(self.connection.max_response_bytes, partial=agg.result()) from None
        except (requests.RequestException, _Overdue) as exc:
            exc.partial = agg.result()  # type: ignore[union-attr]  # a library error, not ours
            raise

    def _retry_delay(
        self, outcome: _Failure, attempt: int, max_retries: int, deadline: float = math.inf
    ) -> tuple[float | None, ConnectorError]:
        """Return how long to wait before the next attempt (None: give up), and its error."""
        error = outcome.error
        wait = _retry_after(outcome.headers, self._clock())
        if wait is not None and wait > 0:
            error = error.replace(retry_after=round(wait, 3))
        if not outcome.retryable:
            return None, error
        cap = self.connection.max_retry_wait
        if wait is not None and wait > cap:
            note = (
                f"The server asks to wait {wait:.0f} s before retrying, longer than"
                f" max_retry_wait ({cap:g} s): retry after that time, or raise max_retry_wait."
            )
            return None, _noted(error, note)
        if attempt > max_retries:
            if wait is not None and wait > 0:
                error = _noted(error, f"The server asks to wait {wait:g} s before retrying.")
            return None, error
        if wait is not None and wait > 0:
            delay = wait
        else:
            backoff = min(INITIAL_BACKOFF * 2 ** (attempt - 1), MAX_BACKOFF)
            delay = backoff * (1 - 0.25 * self._random())
        left = deadline - time.monotonic()
        if delay >= left:
            # Waiting would only end in the deadline: fail now, with this attempt's error.
            total = self.connection.max_duration
            if wait is not None and wait > 0:
                why = f"The server asks to wait {delay:g} s before retrying"
            else:
                why = f"The next retry would start in {delay:.1f} s"
            note = (
                f"{why}, but only {max(left, 0):.1f} s of max_duration ({total:g} s) remain:"
                " retry later, or raise max_duration."
            )
            return None, _noted(error, note)
        return delay, error

    def _overdue(self, host: str, streamed: int = 0, partial: Any = None) -> TemporaryFailure:
        """Return the error for a run that reached max_duration."""
        total = self.connection.max_duration
        if streamed:
            where = (
                f" while reading the streamed reply from {host} ({streamed} bytes so far; what"
                " arrived is in `partial`)"
            )
        else:
            where = f" waiting for {host}"
        return TemporaryFailure(
            f"The run reached max_duration ({total:g} s){where}. Retry later, or raise"
            " max_duration (and timeout) in the connection if the reply takes that long.",
            type="timeout",
            partial=partial,
        )


# -- the process-wide transports ---------------------------------------------------------------

_TRANSPORTS: dict[tuple, Transport] = {}
_LOCK = threading.Lock()


def transport_for(connection: Connection) -> Transport:
    """Return the process-wide Transport for this connection (one requests.Session each, reused)."""
    key = connection.key()
    with _LOCK:  # held for the lookup only, never during I/O
        transport = _TRANSPORTS.get(key)
        if transport is None:
            transport = _TRANSPORTS[key] = Transport(connection)
    return transport


def close_all() -> None:
    """Close every process-wide transport."""
    with _LOCK:
        transports = list(_TRANSPORTS.values())
        _TRANSPORTS.clear()
    for transport in transports:
        transport._session.close()


class ForbiddenPeer(Exception):
    """A connection reached a link-local or cloud-metadata address (not an OSError: no retry)."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{host} connected to {address}")
        self.host, self.address = host, address


def _checked(sock, host: str):
    # The policy checked the name before sending; this checks the address actually reached, so
    # a DNS answer that changed in between (rebinding) cannot carry the key to metadata services.
    try:
        address = ipaddress.ip_address(sock.getpeername()[0].split("%")[0])
    except (OSError, ValueError, IndexError):
        return sock
    if is_forbidden(address):
        sock.close()
        raise ForbiddenPeer(host, str(address))
    return sock


class _GuardedHTTPConnection(urllib3.connection.HTTPConnection):
    def _new_conn(self):
        return _checked(super()._new_conn(), self.host)


class _GuardedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def _new_conn(self):
        return _checked(super()._new_conn(), self.host)


class _GuardedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    """An adapter whose connections refuse forbidden peer addresses."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _GuardedHTTPPool,
            "https": _GuardedHTTPSPool,
        }


def _environment_settings(url: str) -> dict[str, Any]:
    """Return the proxies and CA bundle the environment sets for ``url``, as requests reads them."""
    verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return {"proxies": requests.utils.get_environ_proxies(url), "verify": verify}


def _new_session() -> requests.Session:
    session = requests.Session()
    # requests would scan the whole environment for proxy settings on every request (tens of
    # microseconds); the transport reads them once per URL instead (_environment_settings).
    # Netrc, the other thing trust_env brings, must stay off anyway: the key is passed explicitly.
    session.trust_env = False
    # max_retries=0: the loop in Transport.send is the only retry layer.
    adapter = _GuardedAdapter(pool_connections=4, pool_maxsize=POOL_MAXSIZE, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


# -- reading bodies ----------------------------------------------------------------------------


class _TooLarge(Exception):
    """The body grew past max_response_bytes."""


class _Overdue(Exception):
    """The run reached max_duration while reading a body."""


def _past(deadline: float) -> bool:
    # A socket timeout cut to the time left may fire a hair before the deadline.
    return time.monotonic() >= deadline - 0.01


def _socket(resp: requests.Response) -> Any:
    """Return the socket a reply is read from, or None when urllib3 hides it."""
    try:
        return resp.raw._fp.fp.raw._sock
    except AttributeError:
        return None


def _timeout_of(sock: Any) -> float | None:
    try:
        return sock.gettimeout() if sock is not None else None
    except OSError:
        return None


def _near_deadline(counter: _Counter) -> None:
    """Raise _Overdue past the deadline; else cut the next read to the time left."""
    left = counter.deadline - time.monotonic()
    if left <= 0:
        raise _Overdue
    counter.check_at = counter.deadline
    if counter.socket is not None:
        try:
            counter.socket.settimeout(left)
        except OSError:
            counter.socket = None
            return
        counter.check_at = counter.deadline - left + DEADLINE_SLACK


def _too_large(cap: int, partial: Any = None) -> InvalidResponse:
    return InvalidResponse(
        f"The reply is larger than max_response_bytes ({cap} bytes); raise max_response_bytes"
        " in the connection if it is expected.",
        partial=partial,
    )


def _read_body(
    resp: requests.Response, cap: int, counter: _Counter, *, truncate: bool = False
) -> bytes:
    """Return the body, reading no more than ``cap`` bytes (error bodies are cut, others fail)."""
    length = resp.headers.get("content-length", "")
    if not truncate and length.isdigit() and int(length) > cap:
        raise _too_large(cap)
    parts: list[bytes] = []
    try:
        for chunk in _capped(resp.iter_content(READ_CHUNK), cap, counter):
            parts.append(chunk)
    except _TooLarge:
        if not truncate:
            raise _too_large(cap) from None
    return b"".join(parts)


def _capped(chunks: Iterator[bytes], cap: int, counter: _Counter) -> Iterator[bytes]:
    monotonic = time.monotonic
    for chunk in chunks:
        counter.bytes += len(chunk)
        if counter.bytes > cap:
            yield chunk[: max(0, cap - (counter.bytes - len(chunk)))]
            raise _TooLarge
        yield chunk
        # A server trickling keep-alive comments never trips the read timeout: the deadline
        # does. Near it, the next read waits only for the time left.
        if monotonic() > counter.check_at:
            _near_deadline(counter)


def _stream_chunks(resp: requests.Response) -> Iterator[bytes]:
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


def _parse_json(raw: bytes, status: int, host: str) -> Any:
    if not raw.strip():
        if status == 204:
            return None
        raise InvalidResponse(f"{host} answered {status} with an empty body.", status=status)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidResponse(
            f"{host} answered {status} but the body is not JSON ({_json_problem(exc)}):"
            f" {_text_excerpt(raw)!r}. Check base_url and any proxy or login page in between.",
            status=status,
            body=raw,
        ) from None


def _json_problem(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at character {exc.pos}"
    return type(exc).__name__


def _text_excerpt(raw: bytes, limit: int = EXCERPT_CHARS) -> str:
    """Return a short plain-text excerpt of a body, HTML tags stripped."""
    text = raw[: limit * 20].decode("utf-8", errors="replace")
    if "<" in text and ">" in text:
        text = _TAGS.sub(" ", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rstrip() + "..."


# -- errors ------------------------------------------------------------------------------------


def _request_id(headers: Mapping[str, str]) -> str | None:
    for name in ("x-request-id", "apim-request-id", "request-id", "x-ms-request-id"):
        if headers.get(name):
            return headers[name]
    return None


def _status_failure(
    resp: requests.Response,
    raw: bytes,
    host: str,
    request_id: str | None,
    provider: providers.Provider,
) -> _Failure:
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
        text = _text_excerpt(raw)
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
    return _Failure(error, _should_retry(error, resp.headers), resp.headers)


def _should_retry(error: ConnectorError, headers: Mapping[str, str]) -> bool:
    if error.type == "quota_exceeded":
        return False  # an account problem: waiting does not help, whatever the headers say
    override = headers.get("x-should-retry", "").strip().lower()
    if override in ("true", "false"):
        return override == "true"
    return error.retryable


def _redirect_error(resp: requests.Response, host: str, request_id: str | None) -> ConnectorError:
    location = resp.headers.get("location", "")
    target = urlsplit(location)
    where = f"{target.scheme}://{target.netloc}{target.path}" if target.netloc else target.path
    message = (
        f"HTTP {resp.status_code} from {host} redirects to {where or 'an unknown place'}."
        f" Redirects are not followed so the API key stays with {host}: fix base_url"
        f" (the server points to {target.hostname or host})."
    )
    return errors.error_for_status(resp.status_code, message, request_id=request_id)


def _network_failure(
    exc: requests.RequestException, host: str, connection: Connection, *, reading: bool
) -> _Failure:
    reason = _reason(exc)
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
    return _Failure(error, True)


def _reason(exc: BaseException) -> str:
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


def _summary(error: ConnectorError) -> str:
    if error.status:
        return f"{error.status} {error.type}"
    return "connection error" if error.type == "connection" else error.type


def _retry_after(headers: Mapping[str, str] | None, now: float) -> float | None:
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


def _keep_headers(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """Return the request as is: its headers already carry the key."""
    # Without an auth, requests reads ~/.netrc and replaces Authorization with Basic credentials.
    return request


def _noted(error: ConnectorError, note: str) -> ConnectorError:
    return error.replace(message=f"{error.message} {note}")


def _is_error_body(data: Any) -> bool:
    """Return True for a 2xx body that is an API error (some servers answer 200 with one)."""
    return isinstance(data, dict) and (
        data.get("error") is not None or data.get("object") == "error"
    )


_HEADER_SAFE = re.compile(r"[\x21-\x7e]*").fullmatch  # one C-level pass: keys are ~164 chars


def _header_safe(value: str) -> bool:
    return _HEADER_SAFE(value) is not None


def _base_url_error(message: str) -> InvalidInput:
    return InvalidInput(
        message, fields=[{"name": "base_url", "label": "Base URL", "message": message}]
    )
