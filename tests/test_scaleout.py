"""Scale-out mode: two gunicorn servers and two workers on a real PostgreSQL (docs/scale-out.md).

One deployment per module (starting four processes costs seconds); a case that kills a process
starts a new one before it ends. Failure detection is tuned fast through settings.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import CANARY
from scaleout import Deployment, content, poll, start_run

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def dep(pg_cluster, fault_server):
    upstream = fault_server.scenario("sleepy")
    d = Deployment(pg_cluster, pg_cluster.database(), upstream.base_url, CANARY).start()
    d.upstream = upstream
    yield d
    d.stop()


def wait_for(predicate, timeout: float = 30, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out waiting")


def test_started_on_one_server_polled_on_the_other(dep):
    a, b = dep.servers
    r = start_run(a, "sleep=1 one server, then the other")
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]
    assert r.headers["Location"] == f"{a.url}/runs/{run_id}" == r.json()["location"]
    assert r.json()["state"] == "queued"
    waiting = b.call("GET", f"/runs/{run_id}")
    assert waiting.status_code == 202
    assert waiting.json()["state"] in ("queued", "running")
    assert waiting.headers["Retry-After"] == "2"
    assert waiting.headers["Location"] == f"{b.url}/runs/{run_id}"
    done = poll(b, run_id)
    assert done.status_code == 200, done.text
    assert "one server, then the other" in content(done)


def test_fifty_runs_over_both_servers_each_with_its_own_output(dep):
    def one(i: int) -> tuple[int, str]:
        r = start_run(dep.servers[i % 2], f"run number {i} of fifty")
        assert r.status_code == 202, r.text
        return i, r.json()["id"]

    with ThreadPoolExecutor(10) as pool:
        started = list(pool.map(one, range(50)))
    for i, run_id in started:
        done = poll(dep.servers[(i + 1) % 2], run_id)
        assert done.status_code == 200, done.text
        assert f"run number {i} of fifty" in content(done)
    for w in dep.workers:  # both workers took a share
        assert any(rid for _, rid in started if w.took(rid)), w.logs()[-2000:]
