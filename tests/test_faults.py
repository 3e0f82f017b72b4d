"""Each fault scenario through the CLI: exit code, error type, attempts, time, what was kept."""

from __future__ import annotations

import pytest
from conftest import CANARY
from faultserver import Blackhole

# id, scenario, scenario params, extra --set, CLI options,
# exit code, error type, requests the server saw, "attempts" in the error, max seconds from the
# first request to the process's end (not counting its start, which a loaded machine stretches)
CASES = [
    ("ok", "ok", {}, (), {}, 0, None, 1, None, 10),
    ("ok-stream", "ok", {}, ("stream=true",), {}, 0, None, 1, None, 10),
    ("429-then-ok", "429-then-ok", {"retry_after_ms": 20}, (), {}, 0, None, 2, None, 10),
    (
        "429-outlasts-retries",
        "429-then-ok",
        {"fails": 9, "retry_after_ms": 20},
        (),
        {"retries": 1},
        4,
        "rate_limited",
        2,
        2,
        10,
    ),
    (
        "429-retry-after-past-cap",
        "429-then-ok",
        {"retry_after": 300},
        (),
        {},
        4,
        "rate_limited",
        1,
        1,
        10,
    ),
    ("quota", "quota", {}, (), {}, 3, "quota_exceeded", 1, 1, 10),
    ("500-then-ok", "500-then-ok", {"retry_after_ms": 20}, (), {}, 0, None, 2, None, 10),
    ("503-always", "503-always", {"retry_after_ms": 20}, (), {}, 4, "server_error", 3, 3, 10),
    (
        "503-should-retry-false",
        "503-always",
        {"should_retry": "false"},
        (),
        {},
        4,
        "server_error",
        1,
        1,
        10,
    ),
    ("html-502", "html-502", {"retry_after_ms": 20}, (), {}, 4, "server_error", 3, 3, 10),
    ("reset", "reset", {}, (), {"retries": 1}, 4, "connection", 2, 2, 15),
    ("reset-then-ok", "reset", {"fails": 1}, (), {"retries": 1}, 0, None, 2, None, 15),
    ("slow", "slow", {"seconds": 4}, (), {"retries": 0, "timeout": 1}, 4, "timeout", 1, 1, 3.5),
    ("truncated-json", "truncated-json", {}, (), {}, 5, "invalid_response", 1, 1, 10),
    ("captive-portal", "captive-portal", {}, (), {}, 5, "invalid_response", 1, 1, 10),
    ("stream-cut", "stream-cut", {}, ("stream=true",), {}, 5, "invalid_response", 1, 1, 10),
    (
        "stream-cut-eof",
        "stream-cut",
        {"mode": "eof"},
        ("stream=true",),
        {},
        5,
        "invalid_response",
        1,
        1,
        10,
    ),
    (
        "stream-error-event",
        "stream-error-event",
        {},
        ("stream=true",),
        {},
        5,
        "invalid_response",
        1,
        1,
        10,
    ),
    (
        "stream-stall",
        "stream-stall",
        {"seconds": 4},
        ("stream=true",),
        {"timeout": 1},
        5,
        "invalid_response",
        1,
        1,
        3.5,
    ),
    (
        "stream-trickle-past-max-duration",
        "stream-trickle",
        {"every": 0.2},
        ("stream=true",),
        {"connection": {"max_duration": 2}},
        4,
        "timeout",
        1,
        1,
        5,
    ),
    (
        "slow-past-max-duration",
        "slow",
        {"seconds": 8},
        (),
        {"retries": 0, "connection": {"max_duration": 1.5}},
        4,
        "timeout",
        1,
        1,
        4,
    ),
    (
        "429-retry-after-past-max-duration",
        "429-then-ok",
        {"retry_after": 5},
        (),
        {"connection": {"max_duration": 2}},
        4,
        "rate_limited",
        1,
        1,
        2,
    ),
    (
        "503-retries-past-max-duration",
        "503-always",
        {"retry_after": 1},
        (),
        {"retries": 5, "connection": {"max_duration": 1.5}},
        4,
        "server_error",
        2,
        2,
        4,
    ),
    ("redirect", "redirect", {}, (), {}, 3, "bad_request", 1, 1, 10),
    ("echo-key", "echo-key", {}, (), {}, 3, "authentication", 1, 1, 10),
]

# What each failed run must keep of what came back: error.body (raw) or error.partial (stream).
KEPT = {
    "429-outlasts-retries": ("body", "Rate limit reached"),
    "429-retry-after-past-cap": ("body", "Rate limit reached"),
    "quota": ("body", "insufficient_quota"),
    "503-always": ("body", "overloaded"),
    "503-should-retry-false": ("body", "overloaded"),
    "html-502": ("body", "<title>502 Bad Gateway</title>"),
    "truncated-json": ("body", '{"id": "chatcmpl-fault"'),
    "captive-portal": ("body", "Sign in to HotelWiFi"),
    "stream-cut": ("partial", "This reply is cut off here"),
    "stream-cut-eof": ("partial", "This reply is cut off here"),
    "stream-error-event": ("partial", "Partial"),
    "stream-stall": ("partial", "Partial"),
    "stream-trickle-past-max-duration": ("partial", "Partial"),
    "429-retry-after-past-max-duration": ("body", "Rate limit reached"),
    "503-retries-past-max-duration": ("body", "overloaded"),
    "echo-key": ("body", "Incorrect API key provided: Bearer ***"),
}


# Runs where no reply headers came back, so there is no request id.
NO_REPLY = {"reset", "slow", "slow-past-max-duration"}


@pytest.mark.parametrize(
    ("name", "params", "sets", "options", "code", "type_", "count", "attempts", "seconds"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_scenario_through_cli(
    fault_server, cli, request, name, params, sets, options, code, type_, count, attempts, seconds
):
    case_id = request.node.callspec.id
    scenario = fault_server.scenario(name, **params)
    result = cli(scenario.base_url, *sets, **options)
    assert result.code == code, result.doc
    assert scenario.count == count
    assert result.ended - scenario.requests[0].time < seconds
    assert all(r.header("Authorization") == f"Bearer {CANARY}" for r in scenario.requests)
    if code == 0:
        assert result.doc["choices"][0]["message"]["content"] == "echo: Hello"
        assert result.doc["object"] == "chat.completion"
        return
    error = result.error
    assert error["type"] == type_
    assert error["attempts"] == attempts
    assert error["retryable"] is (code == 4)
    assert result.stderr.splitlines()[-1].startswith(f"error ({type_}): ")
    assert "<html" not in error["message"].lower()  # HTML pages are reduced to their text
    if case_id not in NO_REPLY:
        assert error["request_id"] == f"req_{name}_{count}"
    if case_id in KEPT:
        where, text = KEPT[case_id]
        kept = error[where] if where == "body" else error[where]["choices"][0]["message"]["content"]
        assert text in kept


def test_retry_after_is_waited_out(fault_server, cli):
    scenario = fault_server.scenario("429-then-ok", retry_after=1)
    result = cli(scenario.base_url)
    assert result.code == 0 and scenario.count == 2
    first, second = scenario.requests
    assert second.time - first.time >= 0.95
    assert "retrying after 1.0 s" in result.stderr


def test_retry_after_past_the_cap_says_how_long_to_wait(fault_server, cli):
    scenario = fault_server.scenario("429-then-ok", retry_after=30)
    result = cli(scenario.base_url, connection={"max_retry_wait": 5})
    assert result.code == 4 and scenario.count == 1
    assert result.error["retry_after"] == 30
    assert "max_retry_wait" in result.error["message"]


@pytest.mark.parametrize("scenario", ["ok", "stream-trickle"])
def test_the_reply_socket_is_had_through_a_supported_path(fault_server, scenario):
    """max_duration cuts the socket's timeout near the deadline: without the socket it cannot."""
    import requests

    from connector.transport import bodies, session

    url = fault_server.scenario(scenario, every=0.1).base_url + "/chat/completions"
    with session.new_session() as s, s.post(url, json={}, stream=True, timeout=5) as resp:
        sock = bodies.socket_of(resp)
        assert sock is not None, "urllib3 no longer exposes the connection's socket"
        assert sock.getpeername()[1] == requests.utils.urlparse(url).port
        sock.settimeout(3.0)
        assert sock.gettimeout() == 3.0


def test_a_trickling_stream_is_ended_by_max_duration(fault_server, cli):
    scenario = fault_server.scenario("stream-trickle", every=0.1)
    result = cli(scenario.base_url, "stream=true", connection={"max_duration": 1.5}, timeout=1)
    assert result.code == 4 and result.error["type"] == "timeout"
    # Keep-alives every 0.1 s never trip the 1 s read timeout; max_duration ends it.
    assert 1.4 < result.ended - scenario.requests[0].time < 3
    assert "max_duration (1.5 s) while reading the streamed reply" in result.error["message"]
    assert result.error["partial"]["choices"][0]["message"]["content"] == "Partial"


def test_the_last_read_is_cut_to_the_time_left(fault_server, cli):
    # Keep-alives for 1.5 s, then silence: the read timeout (10 s, cut to 2 s when the request
    # went out) alone would end the run near 3.5 s; cut to the time left, it ends near 2 s.
    scenario = fault_server.scenario("stream-trickle", every=0.1, seconds=1.5, then="stall")
    result = cli(scenario.base_url, "stream=true", connection={"max_duration": 2})
    assert result.code == 4 and result.error["type"] == "timeout"
    assert "max_duration (2 s)" in result.error["message"]
    assert result.ended - scenario.requests[0].time < 2.8  # from the request, not the start


def test_a_retry_after_past_the_time_left_fails_at_once_with_the_api_error(fault_server, cli):
    scenario = fault_server.scenario("429-then-ok", retry_after=20)
    result = cli(scenario.base_url, connection={"max_duration": 10})
    assert result.code == 4 and scenario.count == 1
    assert result.ended - scenario.requests[0].time < 3  # not the 20 s asked for
    error = result.error
    assert error["type"] == "rate_limited" and error["retry_after"] == 20
    assert error["message"].startswith("HTTP 429 Too Many Requests from 127.0.0.1: Rate limit")
    assert "asks to wait 20 s before retrying, but only" in error["message"]
    assert "of max_duration (10 s) remain" in error["message"]


@pytest.mark.parametrize("provider", ["openai", "azure", "compatible"])
def test_redirect_never_reaches_the_other_host(fault_server, cli, provider):
    scenario = fault_server.scenario("redirect")
    before = fault_server.target.count
    result = cli(scenario.base_url, connection={"provider": provider})
    assert result.code == 3 and result.error["status"] == 307
    assert scenario.count == 1
    assert fault_server.target.count == before
    assert fault_server.target.host in result.error["message"]


def test_connect_timeout_setting_is_used(cli):
    with Blackhole() as hole:
        result = cli(hole.url + "/v1", connection={"connect_timeout": 0.2}, retries=0)
    assert result.code == 4
    assert result.error["type"] == "timeout"
    assert "0.2 s" in result.error["message"]
    assert result.seconds < 5


def test_dry_run_sends_nothing(fault_server, cli):
    scenario = fault_server.scenario("ok")
    result = cli(scenario.base_url, dry_run=True)
    assert result.code == 0 and scenario.count == 0
    assert result.doc["url"] == scenario.base_url + "/chat/completions"
    assert result.doc["headers"]["Authorization"] == "Bearer ***"
