"""Self-tests of the fault-injection server, with plain ``requests``."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from faultserver import SCENARIOS, Blackhole, FaultServer, flaky_selected, parse_segment

KEY = "sk-canary-faultserver-0123456789"
HEADERS = {"Authorization": f"Bearer {KEY}"}


def chat(scenario, text="Hello", *, stream=False, timeout=5.0, session=requests, **kw):
    """POST a chat request to a scenario and return the response."""
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    url = scenario.base_url + "/chat/completions"
    return session.post(url, json=body, headers=HEADERS, timeout=timeout, stream=stream, **kw)


def events(response):
    """Return the data payloads of an SSE response."""
    return [line[6:] for line in response.iter_lines(decode_unicode=True) if line[:6] == "data: "]


def test_parse_segment():
    assert parse_segment("429-then-ok,retry-after=0,id=3") == (
        "429-then-ok",
        {"retry-after": "0", "id": "3"},
    )
    assert parse_segment("ok") == ("ok", {})


def test_scenario_rejects_unknown_name(fault_server):
    with pytest.raises(ValueError):
        fault_server.scenario("nope")


def test_ok_chat_completion_echoes_and_is_recorded(fault_server):
    s = fault_server.scenario("ok")
    r = chat(s, "ping")
    assert r.status_code == 200
    assert r.headers["x-request-id"] == "req_ok_1"
    data = r.json()
    assert data["object"] == "chat.completion"
    assert data["choices"][0]["message"]["content"] == "echo: ping"
    assert data["choices"][0]["finish_reason"] == "stop"
    [seen] = s.requests
    assert (seen.method, seen.path) == ("POST", f"/{s.key}/v1/chat/completions")
    assert seen.header("authorization") == f"Bearer {KEY}"
    assert seen.json["model"] == "gpt-4o-mini"
    assert seen.message == "ping"
    assert seen.time <= time.time()


def test_ok_stream_ends_with_done_and_usage(fault_server):
    s = fault_server.scenario("ok")
    r = chat(s, "one two three", stream=True)
    assert r.headers["Content-Type"].startswith("text/event-stream")
    payloads = events(r)
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "echo: one two three"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0


def test_ok_models(fault_server):
    s = fault_server.scenario("ok")
    r = requests.get(s.base_url + "/models", headers=HEADERS, timeout=5)
    assert r.status_code == 200
    assert "gpt-4o-mini" in [m["id"] for m in r.json()["data"]]


@pytest.mark.parametrize(
    ("name", "params", "statuses", "retry_after"),
    [
        ("429-then-ok", {}, [429, 200, 200], "1"),
        ("429-then-ok", {"retry_after": 0}, [429, 200], "0"),
        ("429-then-ok", {"fails": 2}, [429, 429, 200], "1"),
        ("500-then-ok", {}, [500, 200], None),
        ("503-always", {}, [503, 503, 503], None),
        ("503-always", {"retry_after_ms": 5}, [503], None),
        ("quota", {}, [429, 429], None),
        (
            "error",
            {"status": 400, "code": "unsupported_parameter", "param": "temperature"},
            [400],
            None,
        ),
    ],
)
def test_status_sequences(fault_server, name, params, statuses, retry_after):
    s = fault_server.scenario(name, **params)
    got = [chat(s) for _ in statuses]
    assert [r.status_code for r in got] == statuses
    assert got[0].headers.get("Retry-After") == retry_after
    assert s.count == len(statuses)
    if statuses[0] != 200:
        error = got[0].json()["error"]
        assert set(error) == {"message", "type", "param", "code"}


def test_retry_after_ms_and_should_retry_headers(fault_server):
    s = fault_server.scenario("503-always", retry_after_ms=5, should_retry="false")
    r = chat(s)
    assert (r.headers["retry-after-ms"], r.headers["x-should-retry"]) == ("5", "false")


def test_quota_code(fault_server):
    error = chat(fault_server.scenario("quota")).json()["error"]
    assert error["code"] == "insufficient_quota"


def test_error_scenario_fields(fault_server):
    s = fault_server.scenario(
        "error", status=400, code="unsupported_parameter", param="temperature"
    )
    error = chat(s).json()["error"]
    assert (error["code"], error["param"]) == ("unsupported_parameter", "temperature")


def test_html_502(fault_server):
    r = chat(fault_server.scenario("html-502"))
    assert r.status_code == 502
    assert r.headers["Content-Type"] == "text/html"
    assert "502 Bad Gateway" in r.text


def test_reset_is_a_connection_reset(fault_server):
    s = fault_server.scenario("reset")
    with pytest.raises(requests.ConnectionError) as info:
        chat(s)
    assert "reset" in str(info.value).lower()
    assert s.count == 1


def test_reset_then_ok_with_fails(fault_server):
    s = fault_server.scenario("reset", fails=1)
    with pytest.raises(requests.ConnectionError):
        chat(s)
    assert chat(s).status_code == 200


def test_slow_outlasts_read_timeout(fault_server):
    s = fault_server.scenario("slow", seconds=2)
    with pytest.raises(requests.ReadTimeout):
        chat(s, timeout=(2, 0.2))
    assert s.count == 1


def test_truncated_json(fault_server):
    r = chat(fault_server.scenario("truncated-json"))
    assert r.status_code == 200 and r.headers["Content-Type"] == "application/json"
    with pytest.raises(ValueError):
        json.loads(r.text)
    assert r.text.startswith('{"id": "chatcmpl-fault"')


def test_captive_portal(fault_server):
    r = chat(fault_server.scenario("captive-portal"))
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert "Sign in" in r.text


def test_stream_cut_chunked_breaks_off(fault_server):
    r = chat(fault_server.scenario("stream-cut"), stream=True)
    seen = []
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        seen.extend(r.iter_lines())
    assert any(b"This" in line for line in seen) and b"data: [DONE]" not in seen


def test_stream_cut_eof_ends_without_done(fault_server):
    payloads = events(chat(fault_server.scenario("stream-cut", mode="eof"), stream=True))
    assert payloads and "[DONE]" not in payloads


def test_stream_error_event(fault_server):
    payloads = events(chat(fault_server.scenario("stream-error-event"), stream=True))
    assert "[DONE]" not in payloads
    assert json.loads(payloads[-1])["error"]["type"] == "server_error"
    assert "Partial" in payloads[1]


def test_stream_stall_times_out_mid_stream(fault_server):
    r = chat(fault_server.scenario("stream-stall", seconds=2), stream=True, timeout=(2, 0.2))
    with pytest.raises(requests.ConnectionError):
        list(r.iter_lines())


def test_stream_big_line(fault_server):
    r = chat(fault_server.scenario("stream-big-line", size=100_000), stream=True)
    assert max(len(line) for line in r.iter_lines()) > 100_000


def test_big(fault_server):
    r = chat(fault_server.scenario("big", size=100_000))
    assert len(r.json()["choices"][0]["message"]["content"]) == 100_000


def test_redirect_points_at_another_host_that_records_hits(fault_server):
    s = fault_server.scenario("redirect")
    r = chat(s, allow_redirects=False)
    assert r.status_code == 307
    assert r.headers["Location"].startswith(fault_server.target.url)
    assert fault_server.target.url != fault_server.url
    before = fault_server.target.count
    assert chat(s).status_code == 200  # a client that follows does reach the target
    assert fault_server.target.count == before + 1


def test_echo_key_echoes_the_authorization_header(fault_server):
    r = chat(fault_server.scenario("echo-key"))
    assert r.status_code == 401
    assert KEY in r.json()["error"]["message"]


def test_unknown_scenario_path_is_404(fault_server):
    r = requests.post(fault_server.url + "/nope/v1/chat/completions", json={}, timeout=5)
    assert r.status_code == 404


def test_counters_are_per_scenario_key(fault_server):
    a, b = fault_server.scenario("ok"), fault_server.scenario("ok")
    chat(a), chat(a), chat(b)
    assert (a.count, b.count) == (2, 1)


def test_keep_alive_reuses_one_connection(fault_server):
    s = fault_server.scenario("ok")
    with requests.Session() as session:
        for i in range(5):
            assert chat(s, f"m{i}", session=session).status_code == 200
    assert len({r.client for r in s.requests}) == 1


def test_flaky_fails_selected_messages_once_then_ok(fault_server):
    s = fault_server.scenario("flaky", every=3)
    texts = [f"message {i}" for i in range(30)]
    first = {t: chat(s, t).status_code for t in texts}
    second = {t: chat(s, t).status_code for t in texts}
    selected = {t for t in texts if flaky_selected(t, 3)}
    assert 0 < len(selected) < len(texts)
    assert {first[t] for t in selected} == {429}  # "mix" starts with 429
    assert all(first[t] == 200 for t in texts if t not in selected)
    assert set(second.values()) == {200}


def test_concurrent_requests_are_all_recorded(fault_server):
    s = fault_server.scenario("flaky", every=2, status=503)
    texts = [f"concurrent {i}" for i in range(40)]
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda t: chat(s, t).status_code, texts))
    assert s.count == 40
    assert sorted(r.message for r in s.requests) == sorted(texts)
    assert statuses == [503 if flaky_selected(t, 2) else 200 for t in texts]


def test_every_scenario_answers_or_fails_cleanly(fault_server):
    for name in SCENARIOS:
        s = fault_server.scenario(name, seconds=0.05, size=10)
        with contextlib.suppress(requests.RequestException):
            chat(s, timeout=2).close()
        assert s.count == 1, name
    assert fault_server.errors == []


def test_stop_is_quick_with_sleeping_and_idle_connections():
    server = FaultServer().start()
    slow = server.scenario("slow", seconds=25)
    session = requests.Session()
    chat(server.scenario("ok"), session=session)  # leaves an idle keep-alive connection
    caller = threading.Thread(target=lambda: _swallow(chat, slow, timeout=30), daemon=True)
    caller.start()
    deadline = time.monotonic() + 5
    while slow.count == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 2
    caller.join(5)
    assert not caller.is_alive()
    session.close()


def _swallow(fn, *args, **kw):
    with contextlib.suppress(requests.RequestException):
        fn(*args, **kw)


def test_blackhole_connects_time_out():
    with Blackhole() as hole, pytest.raises(requests.ConnectTimeout):
        requests.get(hole.url, timeout=(0.2, 1))
