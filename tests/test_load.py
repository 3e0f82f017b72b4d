"""Load: 200 concurrent runs against intermittent 429/503; none lost, none duplicated."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

from conftest import CANARY
from faultserver import flaky_selected

import connector

RUNS = 200
WORKERS = 32
EVERY = 3  # one message in three gets a 429, then a 503, then succeeds
FAILS = 2
SLACK = 8


def test_concurrent_runs_end_cleanly_exactly_once(fault_server, caplog):
    caplog.set_level(logging.WARNING)
    # Half the runs may retry twice (and so succeed), half once (and so fail cleanly).
    patient = fault_server.scenario("flaky", every=EVERY, fails=FAILS, retry_after_ms=5)
    hasty = fault_server.scenario("flaky", every=EVERY, fails=FAILS, retry_after_ms=5)
    connections = {
        2: connector.make_connection(api_key=CANARY, base_url=patient.base_url, max_retries=2),
        1: connector.make_connection(api_key=CANARY, base_url=hasty.base_url, max_retries=1),
    }
    jobs = [(f"load message {i:03d}", 2 if i % 2 else 1) for i in range(RUNS)]

    def one(job):
        text, retries = job
        form = {"model": "gpt-4o-mini", "messages": text}
        try:
            return connector.run("create_chat_completion", form, connections[retries])
        except connector.ConnectorError as error:
            return error

    started = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        outcomes = list(pool.map(one, jobs, timeout=60))
    assert time.monotonic() - started < 60

    assert len(outcomes) == RUNS
    for (text, retries), outcome in zip(jobs, outcomes, strict=True):
        if flaky_selected(text, EVERY) and retries < FAILS:
            assert isinstance(outcome, connector.TemporaryFailure), (text, outcome)
            assert (outcome.type, outcome.attempts) == ("server_error", retries + 1)
            assert CANARY not in str(outcome.to_dict())
        else:
            assert isinstance(outcome, dict), (text, outcome)
            assert outcome["choices"][0]["message"]["content"] == f"echo: {text}"

    for scenario, retries in ((patient, 2), (hasty, 1)):
        sent = [r.message for r in scenario.requests]
        expected = {
            text: min(FAILS, r) + 1 if flaky_selected(text, EVERY) else 1
            for text, r in jobs
            if r == retries
        }
        assert {t: sent.count(t) for t in expected} == expected  # none lost, none duplicated
        assert len(sent) == sum(expected.values())
        ports = {r.client for r in scenario.requests}
        assert len(ports) <= WORKERS + SLACK, "connections were not pooled"
        assert len(ports) < len(sent)
    assert "pool is full" not in caplog.text
