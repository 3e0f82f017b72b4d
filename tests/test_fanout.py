"""A workflow's fan-out against the real server at default settings, with a slow upstream.

The upstream (``upstream.py``) answers each call after a delay, and with a rate limit refuses
calls past its budget with 429 as OpenAI does. Timings are the benchmark's job
(benchmarks/fanout_bench.py); these tests check that every call is answered with its own
output, how many 429s the upstream had to send, memory, and the front door's limits.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from actionserver import TOKEN, ActionServer
from conftest import CANARY
from fanout import chat_forms, fan_out, own_answers, tree_rss_mib
from upstream import Running

import connector

pytestmark = pytest.mark.server

RUN = "/actions/create_chat_completion/run"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def serve(upstream: Running, tmp_path, **env: str) -> ActionServer:
    """The server at its default settings, its own key and Base URL the upstream's."""
    return ActionServer(
        env={
            "OPENAI_API_KEY": CANARY,
            "OPENAI_BASE_URL": upstream.base_url,
            "CONNECTOR_RUNS_DB": str(tmp_path / "runs.sqlite3"),
            **env,
        }
    )


@pytest.fixture
def slow():
    upstream = Running(delay=3.0)
    yield upstream
    upstream.close()


@pytest.fixture
def limited():
    """OpenAI's behaviour at 10 requests a second, a bucket of 10, each admitted call 1 s."""
    upstream = Running(delay=1.0, rate=10, burst=10)
    yield upstream
    upstream.close()


def test_a_thousand_slow_calls_at_once_are_all_answered(slow, tmp_path):
    with serve(slow, tmp_path) as srv:
        answers, _ = fan_out(srv.url, RUN, chat_forms(1000), AUTH)
    assert own_answers(answers, 1000) == []
    # Far past the old cap of 8 a worker: on a loaded machine the last calls can arrive after
    # the first ones end (3 s), so not every one need overlap every other.
    assert slow.stats["max_in_flight"] >= 500, slow.stats


def test_a_rate_limited_fan_out_through_the_server_waits_its_turn(limited, tmp_path):
    with serve(limited, tmp_path) as srv:
        answers, _ = fan_out(srv.url, RUN, chat_forms(100), AUTH)
        metrics = srv.call("GET", "/metrics").text
    assert own_answers(answers, 100) == []
    assert limited.stats["refused"] <= 10, limited.stats
    assert "connector_upstream_calls_waiting{" in metrics and CANARY not in metrics


def test_a_rate_limited_fan_out_from_threads_of_one_process_waits_its_turn(limited):
    connection = {"api_key": CANARY, "base_url": limited.base_url}

    def call(i: int) -> str:
        form = {"model": "gpt-4o-mini", "messages": f"item {i}"}
        return connector.run("create_chat_completion", form, connection)["choices"][0]["message"][
            "content"
        ]

    with ThreadPoolExecutor(100) as pool:
        contents = list(pool.map(call, range(100)))
    assert contents == [f"echo: item {i}" for i in range(100)]
    assert limited.stats["refused"] <= 10, limited.stats


def test_three_thousand_tenant_keys_keep_the_memory_flat(tmp_path):
    upstream = Running(delay=0.0)
    try:
        with serve(upstream, tmp_path, CONNECTOR_ALLOWED_HOSTS="127.0.0.1") as srv:

            def tenants(first: int, count: int) -> None:
                for start in range(first, first + count, 100):
                    bodies = chat_forms(100)
                    for i in range(100):
                        headers = {**AUTH, "X-OpenAI-Api-Key": f"sk-tenant-{start + i:06d}"}
                        answers, _ = fan_out(srv.url, RUN, [bodies[i]], headers)
                        assert answers[0].status == 200, answers[0].body

            tenants(0, 500)  # past the 256 sessions kept: the LRU is full from here on
            before = tree_rss_mib(srv.proc.pid)
            tenants(500, 2500)
            after = tree_rss_mib(srv.proc.pid)
    finally:
        upstream.close()
    assert after - before <= 10, f"{before:.1f} MiB -> {after:.1f} MiB"


def stalled_client(url: str) -> socket.socket:
    """A client that sends a request's headers and one byte of its 1,000-byte body, then waits."""
    host, port = url.split("//")[1].split(":")
    s = socket.create_connection((host, int(port)))
    s.sendall(
        f"POST {RUN} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".encode()
    )
    return s


def test_stalled_clients_leave_health_prompt_and_are_shut_out(slow, tmp_path):
    with serve(slow, tmp_path, CONNECTOR_SERVER_READ_TIMEOUT="3") as srv:
        clients = [stalled_client(srv.url) for _ in range(100)]
        try:
            waits = []
            for _ in range(10):
                start = time.monotonic()
                assert requests.get(srv.url + "/healthz", timeout=2).status_code == 200
                waits.append(time.monotonic() - start)
            assert max(waits) < 0.5, waits
            clients[0].settimeout(10)
            answer = read_answer(clients[0])  # at the read time limit: 408, the error object
            assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
            assert b'"type": "request_timeout"' in answer
        finally:
            for c in clients:
                c.close()


def read_answer(s: socket.socket) -> bytes:
    """Read one answer whole: its head, then Content-Length bytes."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def raw_call(url: str, head: str, body: bytes = b"") -> tuple[bytes, float]:
    host, port = url.split("//")[1].split(":")
    start = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as s:
        with contextlib.suppress(OSError):  # a server may answer before taking the whole body
            s.sendall(head.encode() + body)
        answer = read_answer(s)
    return answer, time.monotonic() - start


def chunked(data: bytes, size: int = 64 * 1024) -> bytes:
    parts = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


HEAD = (
    f"POST /actions/create_chat_completion/dry-run HTTP/1.1\r\nHost: x\r\n"
    f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
)


def test_a_body_over_the_cap_is_refused_at_once_by_its_length(slow, tmp_path):
    with serve(slow, tmp_path) as srv:
        answer, seconds = raw_call(
            srv.url, HEAD + "Content-Length: 100000000\r\n\r\n", b'{"model": "m", "messages": "Hi"}'
        )
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert b"CONNECTOR_SERVER_MAX_BODY_BYTES" in answer
    assert b"connection: close" in answer.lower()  # the rest is never read: not kept alive
    assert seconds < 5


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b'{"model": "gpt-4o-mini", "messages": "Hi, chunked"}', b"200", b"Hi, chunked"),
        (
            b'{"model": "gpt-4o-mini", "messages": "' + b"x" * 5_000_000 + b'"}',
            b"413",
            b"too_large",
        ),
    ],
    ids=["read", "over-the-cap"],
)
def test_a_chunked_body_is_read_through_the_cap(slow, tmp_path, body, status, fragment):
    with serve(slow, tmp_path) as srv:
        answer, _ = raw_call(srv.url, HEAD + "Transfer-Encoding: chunked\r\n\r\n", chunked(body))
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:300]
    assert fragment in answer


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ("Authorization: Bearer " + "x" * 9000 + "\r\n", b"431"),  # one header over 8 KB
        ("".join(f"X-Extra-{i}: {i}\r\n" for i in range(150)), b"431"),  # 150 headers
        ("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", b"400"),  # conflicting framing
    ],
    ids=["header-too-large", "too-many-headers", "length-and-chunked"],
)
def test_a_request_refused_before_the_app_gets_the_error_object(slow, tmp_path, headers, status):
    with serve(slow, tmp_path) as srv:
        head = f"POST {RUN} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}\r\n"
        answer, _ = raw_call(srv.url, head, b"0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 " + status), answer[:300]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower()
    error = json.loads(body)["error"]
    assert error["type"] == "malformed_request" and "fix the HTTP request" in error["message"]
