"""A fault-injection HTTP server on loopback: one real server, many scenarios chosen by URL path.

A base URL looks like ``http://127.0.0.1:PORT/<scenario>/v1``; the connector then calls
``.../chat/completions`` or ``.../models`` under it. The scenario segment may carry parameters,
comma-separated: ``/429-then-ok,retry-after=0,id=7/v1``. ``FaultServer.scenario()`` builds such
URLs and adds a unique ``id`` so each test gets fresh counters on a shared server.

Common parameters: ``fails`` (how many requests get the fault before the scenario answers like
``ok``; "-then-ok" scenarios default to 1, the others fail forever), ``retry-after``,
``retry-after-ms`` and ``should-retry`` (headers added to error replies).

Scenarios:
    ok                  a chat.completion (an SSE stream when the body asks ``stream: true``),
                        a model list for GET /models; the reply echoes the last message
    429-then-ok         429 rate limit (Retry-After: ``retry-after``, default 1), then ok
    quota               429 with code ``insufficient_quota``
    500-then-ok         500 server error, then ok
    503-always          503 server error
    html-502            502 with an HTML proxy page
    reset               the connection is reset (SO_LINGER 0, then close) without a reply
    slow                sleeps ``seconds`` (default 5, at most 30; cut short on shutdown)
    sleepy              like slow, for as many seconds as the message says ("sleep=2.5 ..."; none:
                        no sleep), then ok: one base URL, each run its own delay (queued runs)
    truncated-json      200 application/json with a cut body
    captive-portal      200 text/html
    stream-cut          SSE that ends before ``[DONE]`` (``mode=chunked``: the chunked body
                        breaks off; ``mode=eof``: a clean close of a body without length)
    stream-error-event  SSE with an ``{"error": ...}`` event after some content
    stream-stall        SSE that sends some content, then sleeps ``seconds``
    stream-trickle      SSE that sends some content, then a keep-alive comment every ``every``
                        seconds (default 0.2) for ``seconds`` (default 30), then the rest
                        (``then=stall``: then silence, until the client gives up)
    stream-big-line     SSE whose content event is one line of ``size`` bytes
    big                 a valid chat.completion whose content is ``size`` characters
    redirect            307 to the same path on another host (a second server that records hits)
    echo-key            401 whose error message echoes the Authorization/api-key header
    error               an API error: ``status``, ``code``, ``type``, ``param``, ``message``
    flaky               for every ``every``-th message (by a stable hash of its text) the first
                        ``fails`` requests get ``status`` (429, 503 or ``mix``), then ok
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import socket
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

SCENARIOS = (
    "ok",
    "429-then-ok",
    "quota",
    "500-then-ok",
    "503-always",
    "html-502",
    "reset",
    "slow",
    "sleepy",
    "truncated-json",
    "captive-portal",
    "stream-cut",
    "stream-error-event",
    "stream-stall",
    "stream-trickle",
    "stream-big-line",
    "big",
    "redirect",
    "echo-key",
    "error",
    "flaky",
)
FOREVER = 10**9
MAX_SLEEP = 30.0
MAX_BODY = 64 * 1024 * 1024
MODELS = ("gpt-4o-mini", "gpt-4o", "o4-mini", "text-embedding-3-small", "dall-e-3")
HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.25.3</center>\r\n"
    "</body>\r\n</html>\r\n"
)
PORTAL = (
    "<!DOCTYPE html><html><head><title>Sign in to HotelWiFi</title></head>"
    "<body><h1>Welcome!</h1><p>Please accept the terms to continue.</p></body></html>"
)


@dataclass(frozen=True)
class Recorded:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any
    time: float
    client: tuple[str, int]

    def header(self, name: str) -> str | None:
        """Return a request header by case-insensitive name."""
        name = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == name), None)

    @property
    def message(self) -> str | None:
        """Return the text of the last message in a chat request, if any."""
        return last_message_text(self.json)


@dataclass
class _State:
    """Counters and records of one scenario key."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[Recorded] = field(default_factory=list)
    per_message: dict[str, int] = field(default_factory=dict)


def last_message_text(body: Any) -> str | None:
    """Return the text of the last message of a chat request body."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return None
    if not body["messages"] or not isinstance(body["messages"][-1], dict):
        return None
    content = body["messages"][-1].get("content")
    if isinstance(content, list):
        parts = [p.get("text", "") for p in content if isinstance(p, dict)]
        return "".join(str(p) for p in parts)
    return content if isinstance(content, str) else None


def flaky_selected(text: str | None, every: int) -> bool:
    """Return True when the ``flaky`` scenario fails the first attempts for this message."""
    return every > 0 and zlib.crc32((text or "").encode()) % every == 0


def parse_segment(segment: str) -> tuple[str, dict[str, str]]:
    """Split ``name,key=value,...`` into the scenario name and its parameters."""
    name, *pairs = unquote(segment).split(",")
    params = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        params[key.strip()] = value.strip()
    return name, params


class Scenario:
    """A handle on one scenario key of a running server: its base URL and what it received."""

    def __init__(self, server: FaultServer, key: str) -> None:
        self.server = server
        self.key = key
        self.name, self.params = parse_segment(key)

    @property
    def base_url(self) -> str:
        """Return the base URL a connection should use for this scenario."""
        return f"{self.server.url}/{self.key}/v1"

    @property
    def requests(self) -> list[Recorded]:
        """Return a snapshot of the requests received so far."""
        return self.server.requests(self.key)

    @property
    def count(self) -> int:
        """Return how many requests this scenario received."""
        return len(self.requests)

    def __repr__(self) -> str:
        return f"Scenario({self.base_url!r}, count={self.count})"


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 128  # the load test opens dozens of connections at once

    def __init__(self, address: tuple[str, int], owner: FaultServer) -> None:
        self.owner = owner
        super().__init__(address, _Handler)

    def process_request_thread(self, request: socket.socket, client_address: Any) -> None:
        self.owner._track(request, add=True)
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.owner._track(request, add=False)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that vanish are the point of a fault server; keep the rest for the self-tests.
        import sys

        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError | TimeoutError):
            self.owner.errors.append(error)


class FaultServer:
    """Start a fault-injection server (and a redirect target) on loopback, in daemon threads."""

    def __init__(self, host: str = "127.0.0.1", *, recorder: bool = False) -> None:
        self.host = host
        self.recorder = recorder  # a redirect target: records, answers ok to every scenario
        self.stopping = threading.Event()
        self.errors: list[BaseException] = []
        self.connections: set[tuple[str, int]] = set()
        self._states: dict[str, _State] = {}
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._ids = itertools.count(1)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.target: FaultServer | None = None
        if not recorder:
            self.target = FaultServer(_other_loopback_host(), recorder=True)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FaultServer:
        """Bind a free port and serve in a daemon thread; return self."""
        if self.target:
            self.target.start()
        self._httpd = _HTTPServer((self.host, 0), self)
        self.port = self._httpd.server_address[1]
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop serving, cut open connections and sleeping handlers, and wait briefly."""
        self.stopping.set()
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
        with self._lock:
            sockets, threads = list(self._open), list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes handlers blocked on keep-alive reads
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        if self.target:
            self.target.stop(timeout)

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _track(self, sock: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._open.add(sock)
                self._threads.add(threading.current_thread())
            else:
                self._open.discard(sock)
                self._threads.discard(threading.current_thread())

    # -- test API ----------------------------------------------------------------------------

    def scenario(self, name: str, **params: Any) -> Scenario:
        """Return a fresh scenario handle; keyword ``retry_after=1`` becomes ``retry-after=1``."""
        if name not in SCENARIOS:
            raise ValueError(f"unknown scenario {name!r}")
        pairs = [f"{k.replace('_', '-')}={v}" for k, v in params.items()]
        pairs.append(f"id={next(self._ids)}")
        return Scenario(self, ",".join([name, *pairs]))

    def requests(self, key: str | None = None) -> list[Recorded]:
        """Return the requests received for one scenario key, or for all of them."""
        with self._lock:
            if key is None:
                states = list(self._states.values())
            else:
                states = [self._states[key]] if key in self._states else []
        out: list[Recorded] = []
        for state in states:
            with state.lock:
                out.extend(state.requests)
        return sorted(out, key=lambda r: r.time)

    @property
    def count(self) -> int:
        """Return how many requests the server received in all."""
        return len(self.requests())

    def _state(self, key: str) -> _State:
        with self._lock:
            return self._states.setdefault(key, _State())


def _other_loopback_host() -> str:
    """Return a second loopback address for the redirect target (Linux routes all of 127/8)."""
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.2", 0))
        return "127.0.0.2"
    except OSError:
        return "127.0.0.1"  # still another origin: a different port


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so the client's pool is exercised
    timeout = 30  # an idle keep-alive connection is closed after this
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    # -- plumbing ----------------------------------------------------------------------------

    def _serve(self) -> None:
        owner = self.server.owner
        raw = self._read_body()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        segment, _, rest = self.path.lstrip("/").partition("/")
        self.rest = "/" + rest.split("?")[0]
        self.key = segment
        self.name, self.params = parse_segment(segment)
        self.body_json = parsed
        state = owner._state(segment)
        record = Recorded(
            method=self.command,
            path=self.path,
            headers=dict(self.headers.items()),
            body=raw,
            json=parsed,
            time=time.time(),
            client=self.client_address[:2],
        )
        with owner._lock:
            owner.connections.add(record.client)
        with state.lock:
            state.requests.append(record)
            self.attempt = len(state.requests)
            text = record.message or ""
            state.per_message[text] = state.per_message.get(text, 0) + 1
            self.message_attempt = state.per_message[text]
        self.request_id = f"req_{self.name}_{self.attempt}"
        fault = FAULTS.get(self.name)
        if fault is None:
            self._error(404, f"Unknown fault scenario {self.name!r}", "not_found")
        elif not owner.recorder and self._faulty():
            fault(self)
        else:
            self._ok()

    def _faulty(self) -> bool:
        if self.name == "ok":
            return False
        if self.name == "flaky":
            every = int(self.params.get("every", 3))
            fails = int(self.params.get("fails", 1))
            return flaky_selected(last_message_text(self.body_json), every) and (
                self.message_attempt <= fails
            )
        default = 1 if self.name.endswith("-then-ok") else FOREVER
        return self.attempt <= int(self.params.get("fails", default))

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        body: bytes | str,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", self.request_id)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _retry_headers(self, retry_after: str | None = None) -> dict[str, str]:
        headers = {}
        if "retry-after" in self.params or retry_after is not None:
            headers["Retry-After"] = self.params.get("retry-after", retry_after or "")
        if "retry-after-ms" in self.params:
            headers["retry-after-ms"] = self.params["retry-after-ms"]
        if "should-retry" in self.params:
            headers["x-should-retry"] = self.params["should-retry"]
        return headers

    def _error(
        self,
        status: int,
        message: str,
        type_: str,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        error = {"message": message, "type": type_, "param": param, "code": code}
        self._send(status, json.dumps({"error": error}), headers=headers)

    def _sleep(self, default: float) -> None:
        seconds = min(float(self.params.get("seconds", default)), MAX_SLEEP)
        self.server.owner.stopping.wait(seconds)

    # -- replies -----------------------------------------------------------------------------

    def _ok(self, content: str | None = None) -> None:
        if self.rest.endswith("/models"):
            self._send(200, json.dumps(model_list()))
        elif self.rest.endswith("/embeddings"):  # the test-only second action (test_engine.py)
            self._send(200, json.dumps(embedding(self.body_json)))
        elif not self.rest.endswith("/chat/completions"):
            self._error(404, f"Unknown path {self.rest}", "invalid_request_error", "not_found")
        elif isinstance(self.body_json, dict) and self.body_json.get("stream") is True:
            self._stream(stream_events(self.body_json, content))
        else:
            self._send(200, json.dumps(completion(self.body_json, content)))

    def _stream(
        self, events: list[str], *, end: str = "done", stall: bool = False, head: bool = True
    ) -> None:
        """Send SSE ``events``; ``end`` is done, chunked-cut, eof-cut or open (more follows)."""
        eof = end == "eof-cut"
        if head:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream; charset=utf-8")
            self.send_header("x-request-id", self.request_id)
            if eof:
                self.send_header("Connection", "close")
            else:
                self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
        for event in events:
            data = event.encode()
            self.wfile.write(data if eof else b"%x\r\n%s\r\n" % (len(data), data))
        if stall:
            self._sleep(5.0)
        if end == "done":
            self.wfile.write(b"0\r\n\r\n")
        elif end == "open":
            self.wfile.flush()
        else:
            self.close_connection = True

    # -- faults ------------------------------------------------------------------------------

    def fault_429(self) -> None:
        self._error(
            429,
            "Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3, Used 3.",
            "requests",
            "rate_limit_exceeded",
            headers=self._retry_headers("1"),
        )

    def fault_quota(self) -> None:
        self._error(
            429,
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            "insufficient_quota",
        )

    def fault_500(self) -> None:
        self._error(
            500,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            headers=self._retry_headers(),
        )

    def fault_503(self) -> None:
        self._error(
            503,
            "The engine is currently overloaded, please try again later.",
            "server_error",
            headers=self._retry_headers(),
        )

    def fault_html_502(self) -> None:
        self._send(502, HTML_502, "text/html", self._retry_headers())

    def fault_reset(self) -> None:
        # Linger 0 makes close() send RST; the real close happens when the handler's files
        # close in finish(), before socketserver's own shutdown(SHUT_WR) could send a FIN.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def fault_slow(self) -> None:
        self._sleep(5.0)
        if not self.server.owner.stopping.is_set():
            self._ok()
        self.close_connection = True

    def fault_sleepy(self) -> None:
        text = last_message_text(self.body_json) or ""
        m = re.match(r"sleep=([0-9.]+)", text)
        self.server.owner.stopping.wait(min(float(m.group(1)), MAX_SLEEP) if m else 0)
        if not self.server.owner.stopping.is_set():
            self._ok()

    def fault_truncated_json(self) -> None:
        data = json.dumps(completion(self.body_json))
        self._send(200, data[: len(data) // 2])

    def fault_captive_portal(self) -> None:
        self._send(200, PORTAL, "text/html; charset=utf-8")

    def fault_stream_cut(self) -> None:
        events = stream_events(self.body_json, "This reply is cut off here")[:-3]
        mode = self.params.get("mode", "chunked")
        self._stream(events, end="eof-cut" if mode == "eof" else "chunked-cut")

    def fault_stream_error_event(self) -> None:
        events = stream_events(self.body_json, "Partial answer before")[:3]
        error = {"message": "The server had an error mid-stream.", "type": "server_error"}
        error |= {"param": None, "code": "stream_error"}
        self._stream([*events, f"data: {json.dumps({'error': error})}\n\n"])

    def fault_stream_stall(self) -> None:
        events = stream_events(self.body_json, "Partial answer then silence")[:3]
        self._stream(events, end="chunked-cut", stall=True)

    def fault_stream_trickle(self) -> None:
        events = stream_events(self.body_json, "Partial answer then keep-alives")
        seconds = min(float(self.params.get("seconds", MAX_SLEEP)), MAX_SLEEP)
        every = max(float(self.params.get("every", 0.2)), 0.01)
        # Each comment comes well within any read timeout: only an overall deadline ends this.
        keep_alive = b": keep-alive\n\n"
        trickle = time.monotonic() + seconds
        self._stream(events[:3], end="open")
        stopping = self.server.owner.stopping
        while time.monotonic() < trickle and not stopping.wait(every):
            try:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(keep_alive), keep_alive))
                self.wfile.flush()
            except OSError:  # the client gave up: the point of the scenario
                self.close_connection = True
                return
        if self.params.get("then") == "stall":
            stopping.wait(MAX_SLEEP)
            self.close_connection = True
            return
        self._stream(events[3:], end="done", head=False)

    def fault_stream_big_line(self) -> None:
        size = int(self.params.get("size", 2 * 1024 * 1024))
        self._stream(stream_events(self.body_json, "x" * size))

    def fault_big(self) -> None:
        size = int(self.params.get("size", 2 * 1024 * 1024))
        self._ok("x" * size)

    def fault_redirect(self) -> None:
        target = self.server.owner.target
        assert target is not None  # only the recorder has none, and it never faults
        self._send(307, b"", "text/plain", {"Location": target.url + self.path})

    def fault_echo_key(self) -> None:
        key = self.headers.get("Authorization") or self.headers.get("api-key") or ""
        self._error(
            401,
            f"Incorrect API key provided: {key}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            "invalid_api_key",
        )

    def fault_error(self) -> None:
        self._error(
            int(self.params.get("status", 400)),
            self.params.get("message", "Injected error."),
            self.params.get("type", "invalid_request_error"),
            self.params.get("code") or None,
            self.params.get("param") or None,
            headers=self._retry_headers(),
        )

    def fault_flaky(self) -> None:
        status = self.params.get("status", "mix")
        if status == "mix":
            status = "429" if self.message_attempt % 2 else "503"
        if status == "429":
            self.fault_429()
        else:
            self.fault_503()


FAULTS = {
    "ok": _Handler._ok,
    "429-then-ok": _Handler.fault_429,
    "quota": _Handler.fault_quota,
    "500-then-ok": _Handler.fault_500,
    "503-always": _Handler.fault_503,
    "html-502": _Handler.fault_html_502,
    "reset": _Handler.fault_reset,
    "slow": _Handler.fault_slow,
    "sleepy": _Handler.fault_sleepy,
    "truncated-json": _Handler.fault_truncated_json,
    "captive-portal": _Handler.fault_captive_portal,
    "stream-cut": _Handler.fault_stream_cut,
    "stream-error-event": _Handler.fault_stream_error_event,
    "stream-stall": _Handler.fault_stream_stall,
    "stream-trickle": _Handler.fault_stream_trickle,
    "stream-big-line": _Handler.fault_stream_big_line,
    "big": _Handler.fault_big,
    "redirect": _Handler.fault_redirect,
    "echo-key": _Handler.fault_echo_key,
    "error": _Handler.fault_error,
    "flaky": _Handler.fault_flaky,
}
assert set(FAULTS) == set(SCENARIOS)


# -- reply bodies --------------------------------------------------------------------------------


def reply_text(body: Any) -> str:
    """Return the assistant text the server answers with: an echo of the last message."""
    text = last_message_text(body)
    return f"echo: {text}" if text is not None else "Hello from the fault server."


def _model(body: Any) -> str:
    model = body.get("model") if isinstance(body, dict) else None
    return model if isinstance(model, str) else "gpt-4o-mini"


def completion(body: Any, content: str | None = None) -> dict[str, Any]:
    """Return a chat.completion for a request body."""
    content = reply_text(body) if content is None else content
    message = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    return {
        "id": "chatcmpl-fault",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": _model(body),
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}],
        "usage": _usage(content),
        "service_tier": "default",
        "system_fingerprint": "fp_fault",
    }


def _usage(content: str) -> dict[str, Any]:
    completion_tokens = max(1, len(content.split()))
    return {
        "prompt_tokens": 9,
        "completion_tokens": completion_tokens,
        "total_tokens": 9 + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def stream_events(body: Any, content: str | None = None) -> list[str]:
    """Return the SSE events of a streamed reply: role, content pieces, finish, usage, [DONE]."""
    content = reply_text(body) if content is None else content
    base = {
        "id": "chatcmpl-fault",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": _model(body),
        "system_fingerprint": "fp_fault",
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return f"data: {json.dumps(base | {'choices': [choice]})}\n\n"

    pieces = content.split(" ")
    events = [": keep-alive comment\n\n", chunk({"role": "assistant", "content": ""})]
    events += [chunk({"content": p if i == 0 else " " + p}) for i, p in enumerate(pieces)]
    events.append(chunk({}, "stop"))
    options = body.get("stream_options") if isinstance(body, dict) else None
    if isinstance(options, dict) and options.get("include_usage"):
        usage = base | {"choices": [], "usage": _usage(content)}
        events.append(f"data: {json.dumps(usage)}\n\n")
    events.append("data: [DONE]\n\n")
    return events


def embedding(body: Any) -> dict[str, Any]:
    """Return an embeddings reply (sparse: no usage) with ``dimensions`` numbers per vector."""
    size = body.get("dimensions", 3) if isinstance(body, dict) else 3
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.5] * int(size)}],
        "model": _model(body),
    }


def model_list() -> dict[str, Any]:
    """Return a GET /models reply."""
    data = [
        {"id": m, "object": "model", "created": 1700000000, "owned_by": "system"} for m in MODELS
    ]
    return {"object": "list", "data": data}


class Blackhole:
    """A loopback port whose accept queue is full, so new connections time out (connect phase)."""

    def __init__(self, fillers: int = 4) -> None:
        self._fillers = fillers
        self._sockets: list[socket.socket] = []

    def __enter__(self) -> Blackhole:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        self._sockets.append(listener)
        self.port = listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        for _ in range(self._fillers):  # Linux drops SYNs once the backlog (0 + 1) is full
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", self.port))
            self._sockets.append(filler)
        time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sock in self._sockets:
            sock.close()
