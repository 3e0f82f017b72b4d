"""HTTP transport: one pooled session per connection, retries, no redirects, capped bodies.

The retry loop is our own, not urllib3's ``Retry`` (``connector.transport.backoff`` says why).
"""

from __future__ import annotations

import logging
import random as _random
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import requests

from connector import errors
from connector.errors import ConnectorError, InvalidInput, InvalidResponse, TemporaryFailure
from connector.redaction import REDACTED
from connector.transport import backoff, bodies, pacing, providers, replies, session
from connector.transport.connection import Connection
from connector.transport.policy import request_url_problem
from connector.transport.request import Request
from connector.version import __version__

log = logging.getLogger("connector")

ERROR_BODY_BYTES = 1024 * 1024
USER_AGENT = f"openai-chat-connector/{__version__}"


class Reply(NamedTuple):
    """A successful reply: the parsed body (a stream arrives aggregated) and how it came."""

    data: Any
    status: int
    headers: Mapping[str, str]
    request_id: str | None
    attempts: int


class Transport:
    """Send API requests for one connection over its own pooled ``requests.Session``."""

    def __init__(
        self,
        connection: Connection,
        *,
        sleep: Callable[[float], Any] = time.sleep,
        random: Callable[[], float] = _random.random,
        clock: Callable[[], float] = time.time,
        pacer: pacing.Pacer | None = None,
    ) -> None:
        self.connection = connection
        self.provider = providers.provider_for(connection.provider)
        self._sleep = sleep
        self._random = random
        self._clock = clock
        self._key = (connection.api_key or "").strip() or None
        # Every call of the process to this upstream with this key takes its turns from one pacer.
        self.pacer = pacer or pacing.pacer_for(connection.base_url, self._key)
        self._session = session.new_session()
        # The checked URL and its environment settings by API path: the connection never changes.
        self._targets: dict[str, tuple[str, dict[str, Any]]] = {}
        self._prepared: dict[tuple[str, str], requests.PreparedRequest] = {}  # by method, URL
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
                "Bearer " + REDACTED if value.startswith("Bearer ") else REDACTED
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
        aggregator: Callable[..., Any] | None = None,
    ) -> Reply:
        """Send one API request, retrying transient failures; return the reply or raise.

        ``aggregator(on_token)`` makes the object that collects a streamed reply's events
        (``add(event)``, ``result()``, ``chunks``): the action's ``stream_aggregator`` hook,
        needed for a stream. Errors leave unredacted: the facade (``runner.run``) redacts once.
        """
        req = self._request(method, path, body, stream)
        req.deadline = time.monotonic() + self.connection.max_duration
        req.aggregator = aggregator
        data = req.data  # encoded once for every attempt
        self.provider.check_key(self._key)
        max_retries = max(0, int(self.connection.max_retries))
        tokens = pacing.token_cost(data, req.body)
        attempt, refused = 0, False
        while True:
            attempt += 1
            try:
                # A call refused with 429 has waited its Retry-After below: it goes first.
                turn = self.pacer.acquire(tokens, req.deadline, first=refused)
            except ConnectorError as exc:
                raise exc.replace(attempts=attempt - 1) from None
            outcome = self._paced_attempt(turn, req, data, on_token)
            if isinstance(outcome, Reply):
                return outcome._replace(attempts=attempt)
            dead = self.peer_check(outcome.error) if self.peer_check else None
            if dead is not None:
                raise dead.replace(attempts=attempt)
            delay, error = backoff.next_delay(
                outcome, attempt, self.connection, self._clock(), self._random, req.deadline
            )
            if delay is None:
                if attempt > 1:
                    error = replies.noted(error, f"Gave up after {attempt} attempts.")
                raise error.replace(attempts=attempt)
            refused = outcome.error.status == 429
            if refused and replies.retry_after_of(outcome.headers, self._clock()) is None:
                self.pacer.pause(delay)  # the upstream named no wait: the others wait too
            log.warning(
                "retrying after %.1f s: %s (attempt %d of %d)",
                delay,
                replies.summary(outcome.error),
                attempt + 1,
                max_retries + 1,
            )
            self._sleep(delay)

    def close(self) -> None:
        """Close the pooled connections (a call still running keeps its own until it ends)."""
        self._session.close()

    # -- one request --------------------------------------------------------------------------

    def _paced_attempt(
        self,
        turn: pacing.Turn,
        req: Request,
        data: bytes | None,
        on_token: Callable[[str], None] | None,
    ) -> Reply | replies.Failure:
        """Make one attempt in ``turn``, and end the turn with what the reply said."""
        try:
            outcome = self._attempt(req, data, on_token)
        except BaseException:
            turn.done()
            raise
        if isinstance(outcome, Reply):
            turn.done(outcome.status, outcome.headers)
        else:
            turn.done(outcome.error.status, outcome.headers, outcome.error.type)
        return outcome

    def _request(self, method: str, path: str, body: dict | None, stream: bool) -> Request:
        stream = stream or bool(body and body.get("stream"))
        target = self._targets.get(path)
        if target is None:
            url = self.provider.url(self.connection, path)
            self._check_url(url)
            target = self._targets[path] = (url, session.environment_settings(url))
        url, settings = target
        headers = {
            "User-Agent": USER_AGENT,
            "Accept": "text/event-stream" if stream else "application/json",
        }
        if body is not None:
            headers["Content-Type"] = "application/json"
        for name, value in (
            ("api_key", self._key),
            ("organization", self.connection.organization),
            ("project", self.connection.project),
        ):
            if value and not _header_safe(value):
                # Never echo the value: it may be the key.
                raise InvalidInput.of_field(
                    name,
                    f"`{name}` contains spaces, line breaks or non-ASCII characters;"
                    " paste it again.",
                    "invalid characters",
                )
        headers.update(self.provider.headers(self._key, self.connection))
        sent = self.provider.body(body, stream=stream) if body is not None else None
        return Request(method.upper(), url, headers, sent, stream, settings)

    def _check_url(self, url: str) -> None:
        """Refuse URLs the key must not travel to (policy.request_url_problem)."""
        problem = request_url_problem(url, self.connection, has_key=bool(self._key))
        if problem:
            raise _base_url_error(problem)

    def _attempt(
        self, req: Request, data: bytes | None, on_token: Callable[[str], None] | None
    ) -> Reply | replies.Failure:
        host = urlsplit(req.url).hostname or "the server"
        left = req.deadline - time.monotonic()
        if left <= 0:
            return replies.Failure(self._overdue(host), False)
        timeout = (min(self.connection.connect_timeout, left), min(self.connection.timeout, left))
        try:
            resp = self._post(req, data, timeout)
        except requests.exceptions.InvalidURL as exc:
            raise _base_url_error(f"`base_url` is not a valid URL: {exc}") from None
        except session.ForbiddenPeer as exc:
            raise _base_url_error(
                f"The host {exc.host} of `base_url` led to {exc.address}, a link-local or cloud-metadata"
                " address; the key is never sent there. Use the API's public host name."
            ) from None
        except requests.RequestException as exc:
            if bodies.past(req.deadline):
                return replies.Failure(self._overdue(host), False)
            return replies.network_failure(exc, host, self.connection, reading=False)
        try:
            return self._read(resp, req, host, on_token)
        finally:
            resp.close()

    def _post(self, req: Request, data: bytes | None, timeout: tuple) -> requests.Response:
        """Send one request through the session's adapter, past ``Session.request`` and ``send``.

        ``Session.request`` merges settings, hooks and auth this transport never uses (about a
        tenth of a run's CPU on a loaded server), and ``Session.send``, even without redirects,
        reads a 3xx reply's whole body, uncapped, to offer ``Response.next``. What they do that
        matters is kept: the default headers (Accept-Encoding...) and the cookie jar.
        """
        session = self._session
        template = self._prepared.get((req.method, req.url))
        if template is None:
            template = requests.PreparedRequest()
            template.prepare(method=req.method, url=req.url, hooks={})
            self._prepared[req.method, req.url] = template
        prepared = template.copy()
        prepared.prepare_headers({**session.headers, **req.headers})
        prepared.prepare_body(data, None)
        if session.cookies:
            prepared.prepare_cookies(session.cookies)
        adapter = session.get_adapter(req.url)
        resp = adapter.send(prepared, stream=True, timeout=timeout, cert=None, **req.settings)
        if "set-cookie" in resp.headers:
            requests.cookies.extract_cookies_to_jar(session.cookies, prepared, resp.raw)
        return resp

    def _read(
        self,
        resp: requests.Response,
        req: Request,
        host: str,
        on_token: Callable[[str], None] | None,
    ) -> Reply | replies.Failure:
        request_id = replies.request_id_of(resp.headers)
        status = resp.status_code
        failed = errors.classify(status) is not None  # the one status table decides
        if failed and resp.is_redirect:
            return replies.Failure(
                replies.redirect_error(resp, host, request_id), False, resp.headers
            )
        counter = bodies.Counter(req.deadline, bodies.socket_of(resp))
        content_type = resp.headers.get("content-type", "").lower()
        try:
            if failed:
                raw = bodies.read_body(resp, ERROR_BODY_BYTES, counter, truncate=True)
                return replies.status_failure(resp, raw, host, request_id, self.provider)
            if req.stream and "json" not in content_type:
                if content_type and "event-stream" not in content_type:
                    raw = bodies.read_body(resp, ERROR_BODY_BYTES, counter, truncate=True)
                    raise InvalidResponse(
                        f"Expected a stream (text/event-stream) from {host} but got"
                        f" {content_type}: {replies.text_excerpt(raw)!r}. Check base_url.",
                        status=status,
                        body=raw,
                    )
                data = self._read_stream(resp, counter, on_token, req.aggregator)
            else:
                cap = self.connection.max_response_bytes
                raw = bodies.read_body(resp, cap, counter)
                data = replies.parse_json(raw, status, host)
                if replies.is_error_body(data):
                    # A whole reply, so resending is as safe as after the same error status.
                    error = providers.event_error(data, None, request_id=request_id, body=raw)
                    return replies.Failure(
                        error, replies.should_retry(error, resp.headers), resp.headers
                    )
        except (requests.RequestException, bodies.Overdue) as exc:
            if isinstance(exc, bodies.Overdue) or bodies.past(req.deadline):
                partial = getattr(exc, "partial", None)
                error = self._overdue(host, counter.bytes if req.stream else 0, partial)
                return replies.Failure(error.replace(status=status, request_id=request_id), False)
            failure = replies.network_failure(exc, host, self.connection, reading=True)
            if req.stream and counter.bytes:
                partial = getattr(exc, "partial", None)
                return replies.Failure(
                    InvalidResponse(
                        f"The streamed reply from {host} was cut after {counter.bytes} bytes:"
                        f" {failure.error.message}",
                        status=status,
                        request_id=request_id,
                        partial=partial,
                    ),
                    False,
                )
            return replies.Failure(failure.error.replace(request_id=request_id), failure.retryable)
        except ConnectorError as exc:
            error = exc.replace(
                request_id=exc.request_id or request_id, status=exc.status or status
            )
            # A stream closed before its first byte lost nothing: as safe to resend as a reset.
            return replies.Failure(error, req.stream and counter.bytes == 0, resp.headers)
        return Reply(data, status, resp.headers, request_id, 0)

    def _read_stream(
        self,
        resp: requests.Response,
        counter: bodies.Counter,
        on_token: Callable[[str], None] | None,
        aggregator: Callable[..., Any] | None = None,
    ) -> dict[str, Any]:
        from connector.transport import sse  # only when a stream is read

        if aggregator is None:  # runner.py refuses a stream for an action without one
            raise errors.InternalError("A streamed reply needs the action's stream_aggregator.")
        agg = aggregator(on_token)
        chunks = bodies.capped(
            bodies.stream_chunks(resp), self.connection.max_response_bytes, counter
        )
        try:
            return sse.collect(
                chunks, max_line_bytes=self.connection.max_sse_line_bytes, aggregator=agg
            )
        except bodies.TooLarge:
            raise bodies.too_large(
                self.connection.max_response_bytes, partial=agg.result()
            ) from None
        except (requests.RequestException, bodies.Overdue) as exc:
            exc.partial = agg.result()  # type: ignore[union-attr]  # a library error, not ours
            raise

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


_HEADER_SAFE = re.compile(r"[\x21-\x7e]*").fullmatch  # one C-level pass: keys are ~164 chars


def _header_safe(value: str) -> bool:
    return _HEADER_SAFE(value) is not None


def _base_url_error(message: str) -> InvalidInput:
    return InvalidInput.of_field("base_url", message)
