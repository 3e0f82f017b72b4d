"""Async runs queue on one machine (SQLite), against real gunicorn servers and a slow upstream.

A POST is answered 202 whenever the run can be stored, the run waits for a slot, a queued run
survives a restart, and only a full queue is refused.
"""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pytest
import requests
from actionserver import TOKEN, ActionServer
from conftest import CANARY
from test_server import ACTION, FORM, poll, server_env, wait_running

pytestmark = pytest.mark.server


def form(n: int) -> dict:
    return {**FORM, "messages": f"run {n}"}


def echo(n: int) -> str:
    return f"echo: run {n}"


def own_upstream(fault_server, tmp, seconds: float, **extra: str) -> dict[str, str]:
    """A server environment whose own connection is a slow upstream (any process may run it)."""
    slow = fault_server.scenario("slow", seconds=seconds).base_url
    return server_env(fault_server, tmp, OPENAI_BASE_URL=slow, **extra)


def test_a_thousand_async_runs_posted_at_once_are_all_accepted_and_all_done(fault_server, tmp_path):
    env = own_upstream(
        fault_server,
        tmp_path,
        1.0,
        OPENAI_TIMEOUT="30",
        OPENAI_MAX_RETRIES="2",  # a kept-alive connection the stub closed is tried again
        CONNECTOR_SERVER_CONCURRENCY="250",
    )
    local = threading.local()

    def call(method: str, path: str, body=None) -> requests.Response:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        headers = {"Authorization": f"Bearer {TOKEN}"}
        return local.session.request(method, server.url + path, json=body, headers=headers)

    with ActionServer(env=env) as server, ThreadPoolExecutor(100) as clients:
        began = time.monotonic()
        posted = list(clients.map(lambda n: call("POST", f"{ACTION}/runs", form(n)), range(1000)))
        assert [r.status_code for r in posted].count(202) == 1000, posted[0].text
        paths = {n: urlsplit(r.headers["Location"]).path for n, r in enumerate(posted)}
        done: dict[int, requests.Response] = {}
        while paths and time.monotonic() - began < 120:
            time.sleep(1)
            polled = list(clients.map(lambda p: call("GET", p), paths.values()))
            for n, r in zip(list(paths), polled, strict=True):
                if r.status_code != 202:
                    done[n] = r
                    del paths[n]
        assert not paths, f"{len(paths)} runs never finished"
        bad = [r.text for r in done.values() if r.status_code != 200]
        assert not bad, (len(bad), bad[:2])
        assert all(r.json()["choices"][0]["message"]["content"] == echo(n) for n, r in done.items())
        # 250 slots, 1 s each: four rounds, not a thousand seconds.
        assert time.monotonic() - began < 60


@pytest.mark.parametrize(
    ("sig", "first_status"),
    [
        (signal.SIGKILL, 503),  # a crash: the run in flight reads interrupted
        (signal.SIGTERM, 200),  # a stop: the run in flight finishes within the drain time
    ],
)
def test_queued_runs_survive_a_restart(fault_server, tmp_path, sig, first_status):
    env = own_upstream(fault_server, tmp_path, 2.0, OPENAI_TIMEOUT="10")
    first = ActionServer("--concurrency", "1", env=env).start()
    try:
        started = [first.call("POST", f"{ACTION}/runs", form(n)) for n in range(3)]
        assert [r.status_code for r in started] == [202] * 3
        # With a tenant's key: the key is never written down, so this run cannot outlive
        # the process that holds it.
        slow = fault_server.scenario("slow", seconds=2.0).base_url
        tenant = {"X-OpenAI-Api-Key": CANARY, "X-OpenAI-Base-Url": slow}
        pinned = first.call("POST", f"{ACTION}/runs", form(3), headers=tenant)
        assert pinned.status_code == 202
        wait_running(first, started[0].headers["Location"])
        states = [first.call("GET", urlsplit(r.headers["Location"]).path) for r in started[1:]]
        assert [r.json()["state"] for r in states] == ["queued", "queued"]
        for name in ("runs.sqlite3", "runs.sqlite3-wal"):
            assert CANARY.encode() not in (tmp_path / name).read_bytes()
    finally:
        if sig == signal.SIGKILL:
            first.kill()
        else:
            assert first.stop(sig) == 0
    with ActionServer("--concurrency", "1", env=env) as second:
        finals = [poll(second, r.headers["Location"], seconds=30)[1] for r in started]
        assert [r.status_code for r in finals] == [first_status, 200, 200]
        assert [r.json()["choices"][0]["message"]["content"] for r in finals[1:]] == [
            echo(1),
            echo(2),
        ]
        _, lost = poll(second, pinned.headers["Location"], headers=tenant)
        assert lost.status_code == 503 and lost.json()["error"]["type"] == "interrupted"
        assert CANARY not in lost.text
        assert CANARY not in first.logs() + second.logs()


def test_a_full_queue_answers_503_with_retry_after(fault_server, tmp_path):
    env = own_upstream(fault_server, tmp_path, 1.5, CONNECTOR_RUN_QUEUE_MAX="2")
    with ActionServer("--concurrency", "1", env=env) as server:
        running = server.call("POST", f"{ACTION}/runs", form(0))
        wait_running(server, running.headers["Location"])
        waiting = [server.call("POST", f"{ACTION}/runs", form(n)) for n in (1, 2)]
        assert [r.status_code for r in waiting] == [202, 202]
        full = server.call("POST", f"{ACTION}/runs", form(3))
        assert full.status_code == 503, full.text
        error = full.json()["error"]
        assert error["type"] == "overloaded" and error["retryable"]
        assert "CONNECTOR_RUN_QUEUE_MAX" in error["message"] and int(full.headers["Retry-After"])
        assert "Location" not in full.headers
        for r in [running, *waiting]:
            assert poll(server, r.headers["Location"])[1].status_code == 200
        assert server.call("POST", f"{ACTION}/runs", form(4)).status_code == 202
