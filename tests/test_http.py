"""Tests for the HTTP transport: retries, errors, redirects, limits, headers, streaming."""

from __future__ import annotations

import copy
import email.utils
import io
import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import responses

from connector import errors
from connector.actions.chunks import Aggregator
from connector.engine.runner import make_connection
from connector.transport import registry, replies, session
from connector.transport.http import Transport
from connector.transport.registry import transport_for

KEY = "sk-test-SECRET-0123456789"
BASE = "https://api.openai.com/v1"
URL = BASE + "/chat/completions"
NOW = 1_700_000_000.0
BODY = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello"},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
}
STREAMS = Path(__file__).parent / "fixtures" / "streams"


def api_error(message="boom", type_="server_error", param=None, code=None):
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def make(random=0.0, **kw) -> tuple[Transport, list[float]]:
    """Return a transport with a fake sleep (its waits are recorded) and a fixed clock."""
    waits: list[float] = []
    kw.setdefault("api_key", KEY)
    transport = Transport(
        make_connection(**kw), sleep=waits.append, random=lambda: random, clock=lambda: NOW
    )
    return transport, waits


def fail(transport, **kw) -> errors.ConnectorError:
    with pytest.raises(errors.ConnectorError) as info:
        transport.send("POST", "/chat/completions", BODY, **kw)
    return info.value


@pytest.fixture
def mock():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as m:
        yield m


@pytest.fixture(autouse=True)
def _fresh_transports(close_transports):
    return close_transports


# -- status classes and retry counts -----------------------------------------------------------


@pytest.mark.parametrize(
    "status, body, cls, type_, calls",
    [
        (400, api_error("bad", "invalid_request_error"), errors.RequestRejected, "bad_request", 1),
        (401, api_error("no key", "invalid_request_error", code="invalid_api_key"),
         errors.RequestRejected, "authentication", 1),
        (402, {"error": {"code": 402, "message": "no credits"}}, errors.RequestRejected,
         "quota_exceeded", 1),
        (403, api_error("region"), errors.RequestRejected, "permission", 1),
        (404, api_error("no model", code="model_not_found"), errors.RequestRejected, "not_found", 1),
        (418, api_error(), errors.RequestRejected, "bad_request", 1),
        (422, {"detail": "bad"}, errors.RequestRejected, "bad_request", 1),
        (408, api_error(), errors.TemporaryFailure, "timeout", 3),
        (409, api_error(), errors.TemporaryFailure, "server_error", 3),
        (429, api_error("slow down", "requests", code="rate_limit_exceeded"),
         errors.TemporaryFailure, "rate_limited", 3),
        (429, api_error("quota", "insufficient_quota", code="insufficient_quota"),
         errors.RequestRejected, "quota_exceeded", 1),
        (500, api_error(), errors.TemporaryFailure, "server_error", 3),
        (502, api_error(), errors.TemporaryFailure, "server_error", 3),
        (503, api_error(), errors.TemporaryFailure, "server_error", 3),
        (504, api_error(), errors.TemporaryFailure, "server_error", 3),
        (501, api_error(), errors.TemporaryFailure, "server_error", 3),
        (520, api_error(), errors.TemporaryFailure, "server_error", 3),
        (429, api_error("billing", code="billing_hard_limit_reached"), errors.RequestRejected,
         "quota_exceeded", 1),
    ],
)  # fmt: skip
def test_status_classes_and_retry_counts(mock, status, body, cls, type_, calls):
    mock.post(URL, json=body, status=status, headers={"x-request-id": "req_1"})
    transport, waits = make()
    error = fail(transport)
    assert type(error) is cls
    assert error.type == type_
    assert error.status == status
    assert error.attempts == calls == len(mock.calls)
    assert len(waits) == calls - 1
    assert error.request_id == "req_1"
    assert "request id: req_1" in error.message
    assert error.body is not None


@pytest.mark.parametrize(
    "random, retries, headers, waits",
    [
        (0.0, 2, {}, [0.5, 1.0]),
        (1.0, 2, {}, [0.375, 0.75]),
        (0.0, 6, {}, [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]),
        (1.0, 6, {}, [0.375, 0.75, 1.5, 3.0, 6.0, 6.0]),  # jitter takes off up to a quarter
        (0.5, 3, {}, [0.4375, 0.875, 1.75]),
        (0.0, 0, {}, []),
        (0.0, 2, {"retry-after": "3"}, [3.0, 3.0]),
        (0.0, 2, {"retry-after": "0"}, [0.5, 1.0]),
        (0.0, 2, {"retry-after": "-4"}, [0.5, 1.0]),
        (0.0, 2, {"retry-after": "soon"}, [0.5, 1.0]),
        (0.0, 2, {"retry-after-ms": "1500"}, [1.5, 1.5]),
        (0.0, 2, {"retry-after-ms": "250", "retry-after": "9"}, [0.25, 0.25]),
        (0.0, 2, {"retry-after-ms": "x", "retry-after": "9"}, [9.0, 9.0]),
        (0.0, 2, {"retry-after": email.utils.formatdate(NOW + 30, usegmt=True)}, [30.0, 30.0]),
        (0.0, 2, {"retry-after": email.utils.formatdate(NOW - 30, usegmt=True)}, [0.5, 1.0]),
        (0.0, 2, {"retry-after": "120"}, [120.0, 120.0]),
    ],
)
def test_retry_waits(mock, random, retries, headers, waits):
    mock.post(URL, json=api_error(), status=429, headers=headers)
    transport, seen = make(random=random, max_retries=retries)
    error = fail(transport)
    assert seen == pytest.approx(waits)
    assert error.attempts == len(waits) + 1
    if len(waits) > 0:
        assert f"Gave up after {len(waits) + 1} attempts." in error.message


@pytest.mark.parametrize(
    "headers, cap, wait",
    [
        ({"retry-after": "121"}, 120, 121),
        ({"retry-after-ms": "90000"}, 60, 90),
        ({"retry-after": email.utils.formatdate(NOW + 3600, usegmt=True)}, 120, 3600),
        ({"retry-after": "1"}, 0, 1),
    ],
)
def test_retry_after_past_the_cap_fails_at_once(mock, headers, cap, wait):
    mock.post(URL, json=api_error("slow down"), status=429, headers=headers)
    transport, waits = make(max_retry_wait=cap)
    error = fail(transport)
    assert len(mock.calls) == 1 and waits == []
    assert error.type == "rate_limited" and error.retryable
    assert error.retry_after == pytest.approx(wait)
    assert f"wait {wait} s" in error.message and "max_retry_wait" in error.message
    assert error.to_dict()["retry_after"] == pytest.approx(wait)


def test_retry_after_is_reported_when_the_retries_run_out(mock):
    mock.post(URL, json=api_error(), status=503, headers={"retry-after": "7"})
    transport, waits = make(max_retries=1)
    error = fail(transport)
    assert waits == [7.0]
    assert error.retry_after == 7.0
    assert "asks to wait 7 s" in error.message


@pytest.mark.parametrize(
    "status, body, header, calls",
    [
        (500, api_error(), "false", 1),
        (503, api_error(), "False", 1),
        (400, api_error("bad"), "true", 3),
        (429, api_error("quota", code="insufficient_quota"), "true", 1),
        (500, api_error(), "maybe", 3),
    ],
)
def test_x_should_retry_overrides(mock, status, body, header, calls):
    mock.post(URL, json=body, status=status, headers={"x-should-retry": header})
    transport, _ = make()
    assert fail(transport).attempts == calls == len(mock.calls)


def test_success_after_retries_logs_each_retry(mock, caplog):
    mock.post(URL, json=api_error(), status=429)
    mock.post(URL, json=api_error(), status=503)
    mock.post(URL, json=COMPLETION, headers={"x-request-id": "req_ok"})
    transport, waits = make()
    with caplog.at_level(logging.WARNING, logger="connector"):
        reply = transport.send("POST", "/chat/completions", BODY)
    assert reply.data == COMPLETION
    assert (reply.status, reply.attempts, reply.request_id) == (200, 3, "req_ok")
    assert reply.headers["X-Request-Id"] == "req_ok"
    assert waits == [0.5, 1.0]
    assert [r.getMessage() for r in caplog.records] == [
        "retrying after 0.5 s: 429 rate_limited (attempt 2 of 3)",
        "retrying after 1.0 s: 503 server_error (attempt 3 of 3)",
    ]
    assert KEY not in caplog.text


# -- network failures ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc, type_, words",
    [
        (requests.ConnectionError("Connection refused"), "connection", "Could not reach api.openai.com"),
        (requests.exceptions.ConnectTimeout("slow"), "timeout", "within 10 s"),
        (requests.exceptions.ReadTimeout("slow"), "timeout", "sent nothing for 600 s"),
        (requests.exceptions.SSLError("bad cert"), "connection", "TLS error"),
    ],
)  # fmt: skip
def test_network_errors_are_retried_then_temporary(mock, exc, type_, words):
    mock.post(URL, body=exc)
    transport, waits = make()
    error = fail(transport)
    assert isinstance(error, errors.TemporaryFailure) and error.exit_code == 4
    assert error.type == type_
    assert words in error.message
    assert error.attempts == 3 and waits == [0.5, 1.0]


def test_network_error_then_success(mock):
    mock.post(URL, body=requests.ConnectionError("reset"))
    mock.post(URL, json=COMPLETION)
    transport, waits = make()
    assert transport.send("POST", "/chat/completions", BODY).attempts == 2
    assert waits == [0.5]


@pytest.mark.parametrize(
    "text",
    [
        "<urllib3.connection.HTTPSConnection object at 0x7f>: Failed to resolve 'x'",
        "HTTPSConnection(host='x', port=443): Failed to resolve 'x'",
        "Failed to resolve 'x'",
    ],
)
def test_reason_drops_object_reprs(text):
    assert replies.reason_of(requests.ConnectionError(OSError(text))) == "Failed to resolve 'x'"


def test_retry_log_for_network_errors(mock, caplog):
    mock.post(URL, body=requests.ConnectionError("reset"))
    mock.post(URL, body=requests.exceptions.ReadTimeout("slow"))
    mock.post(URL, json=COMPLETION)
    transport, _ = make()
    with caplog.at_level(logging.WARNING, logger="connector"):
        transport.send("POST", "/chat/completions", BODY)
    assert [r.getMessage() for r in caplog.records] == [
        "retrying after 0.5 s: connection error (attempt 2 of 3)",
        "retrying after 1.0 s: timeout (attempt 3 of 3)",
    ]


# -- redirects -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_are_not_followed(mock, status):
    # Even a server that says to retry is not followed or asked again.
    headers = {"Location": "https://evil.example/v1/chat?k=1", "x-should-retry": "true"}
    mock.post(URL, status=status, headers=headers)
    evil = mock.post("https://evil.example/v1/chat", json=COMPLETION)
    transport, waits = make()
    error = fail(transport)
    assert len(mock.calls) == 1 and evil.call_count == 0  # the key never went to evil.example
    assert isinstance(error, errors.RequestRejected) and error.status == status
    assert "evil.example" in error.message and "base_url" in error.message
    assert "k=1" not in error.message
    assert waits == []


# -- bodies that are not what they should be -------------------------------------------------

HTML_502 = (
    "<html><head><title>502 Bad Gateway</title><style>body{color:red}</style></head>"
    "<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)


def test_html_error_page_gives_a_clean_excerpt(mock):
    mock.post(URL, body=HTML_502, status=502, content_type="text/html")
    transport, _ = make(max_retries=0)
    error = fail(transport)
    assert error.message == (
        "HTTP 502 Bad Gateway from api.openai.com (text/html):"
        " 502 Bad Gateway 502 Bad Gateway nginx"
    )
    assert error.type == "server_error" and error.code is None
    assert error.body == HTML_502


@pytest.mark.parametrize(
    "status, content_type, body, message",
    [
        (502, "text/html", HTML_502, "HTTP 502 Bad Gateway from api.openai.com (text/html):"
         " 502 Bad Gateway 502 Bad Gateway nginx (request id: req_h)"),
        (503, "text/plain", "upstream connect error or disconnect/reset before headers",
         "HTTP 503 Service Unavailable from api.openai.com (text/plain): upstream connect error"
         " or disconnect/reset before headers (request id: req_h)"),
        (500, "text/html", "<p>" + "word " * 200 + "</p>",
         "HTTP 500 Internal Server Error from api.openai.com (text/html): "
         + ("word " * 60).strip() + "... (request id: req_h)"),
    ],
)  # fmt: skip
def test_non_json_error_bodies_give_a_short_excerpt_and_the_request_id(
    mock, status, content_type, body, message
):
    mock.post(URL, body=body, status=status, content_type=content_type,
              headers={"x-request-id": "req_h"})  # fmt: skip
    transport, _ = make(max_retries=0)
    error = fail(transport)
    assert error.message == message
    assert error.request_id == "req_h" and error.body == body and error.code is None


@pytest.mark.parametrize(
    "settings, timeout",
    [
        ({}, (10.0, 600.0)),  # the read timeout lets slow reasoning models finish
        ({"timeout": 30.0}, (10.0, 30.0)),
        ({"timeout": 1800.0, "connect_timeout": 3.0, "max_duration": 3600.0}, (3.0, 1800.0)),
    ],
)
def test_connect_and_read_timeouts_are_sent_separately(mock, settings, timeout):
    mock.post(URL, json=COMPLETION)
    transport, _ = make(**settings)
    transport.send("POST", "/chat/completions", BODY)
    assert mock.calls[0].request.req_kwargs["timeout"] == timeout


@pytest.mark.parametrize(
    ("settings", "connect", "read"),
    [
        ({"max_duration": 5.0}, 5.0, 5.0),  # each wait is cut to the time left
        ({"max_duration": 5.0, "connect_timeout": 2.0, "timeout": 3.0}, 2.0, 3.0),
    ],
)
def test_waits_are_cut_to_the_time_left_of_max_duration(mock, settings, connect, read):
    mock.post(URL, json=COMPLETION)
    transport, _ = make(**settings)
    transport.send("POST", "/chat/completions", BODY)
    sent = mock.calls[0].request.req_kwargs["timeout"]
    assert connect - 0.5 < sent[0] <= connect and read - 0.5 < sent[1] <= read


@pytest.mark.parametrize(
    ("headers", "note", "waited"),
    [
        ({"retry-after": "30"}, "The server asks to wait 30 s before retrying, but only", []),
        # The fake sleep takes no time: backoffs of 0.5, 1 and 2 s fit in 3.5 s, 4 s does not.
        ({}, "The next retry would start in 4.0 s, but only", [0.5, 1.0, 2.0]),
    ],
)
def test_a_wait_past_max_duration_fails_at_once_with_the_last_error(mock, headers, note, waited):
    mock.post(URL, json={"error": {"message": "Slow down."}}, status=429, headers=headers)
    transport, waits = make(max_duration=3.5, max_retries=9, max_retry_wait=60)
    error = fail(transport)
    assert error.type == "rate_limited" and "Slow down." in error.message
    assert note in error.message and "of max_duration (3.5 s) remain" in error.message
    assert waits == waited


def test_empty_error_body(mock):
    mock.post(URL, body="", status=500)
    transport, _ = make(max_retries=0)
    assert (
        fail(transport).message
        == "HTTP 500 Internal Server Error from api.openai.com with an empty body"
    )


@pytest.mark.parametrize(
    "body, words",
    [
        (
            "<html><body><h1>Sign in to the hotel wifi</h1></body></html>",
            "Sign in to the hotel wifi",
        ),
        ('{"id": "chatcmpl-1", "choi', "Unterminated string"),
        ("", "empty body"),
    ],
)
def test_2xx_body_that_is_not_json(mock, body, words):
    mock.post(URL, body=body, status=200, content_type="text/html")
    transport, waits = make()
    error = fail(transport)
    assert isinstance(error, errors.InvalidResponse) and error.exit_code == 5
    assert words in error.message
    assert "<h1>" not in error.message
    assert len(mock.calls) == 1 and waits == []
    assert error.attempts == 1 and error.status == 200


@pytest.mark.parametrize("length_header", [True, False])
def test_body_over_max_response_bytes(mock, length_header):
    big = {**COMPLETION, "pad": "x" * 3000}
    mock.post(URL, json=big, auto_calculate_content_length=length_header)
    transport, _ = make(max_response_bytes=1024)
    error = fail(transport)
    assert isinstance(error, errors.InvalidResponse)
    assert "max_response_bytes (1024 bytes)" in error.message
    assert len(mock.calls) == 1


@pytest.mark.parametrize(
    "body, cls, type_, calls",
    [
        ({"error": {"message": "upstream died", "code": 502}}, errors.TemporaryFailure, "server_error", 3),
        ({"error": {"message": "bad", "code": 400}}, errors.RequestRejected, "bad_request", 1),
        ({"object": "error", "message": "odd", "code": "x"}, errors.InvalidResponse, "invalid_response", 1),
    ],
)  # fmt: skip
def test_2xx_body_that_is_an_error(mock, body, cls, type_, calls):
    mock.post(URL, json=body, headers={"x-request-id": "req_2xx"})
    transport, _ = make()
    error = fail(transport)
    assert type(error) is cls and error.type == type_
    assert len(mock.calls) == calls
    # Nothing is lost: the raw reply and the request id, as for an error status.
    assert json.loads(error.body) == body
    assert error.request_id == "req_2xx" and "request id: req_2xx" in error.message


# -- error bodies ----------------------------------------------------------------------------


def test_unsupported_parameter_carries_code_and_param(mock):
    body = api_error(
        "Unsupported parameter: 'temperature' is not supported with this model.",
        "invalid_request_error",
        "temperature",
        "unsupported_parameter",
    )
    mock.post(URL, json=body, status=400, headers={"x-request-id": "req_9"})
    transport, _ = make()
    error = fail(transport)
    assert (error.code, error.param, error.request_id) == (
        "unsupported_parameter",
        "temperature",
        "req_9",
    )
    assert error.message == (
        "HTTP 400 Bad Request from api.openai.com: Unsupported parameter: 'temperature' is not"
        " supported with this model. (type: invalid_request_error, code: unsupported_parameter,"
        " param: temperature, request id: req_9)"
    )
    assert error.to_dict()["param"] == "temperature"


@pytest.mark.parametrize(
    "status, body, type_, code, message",
    [
        (400, {"object": "error", "message": "n must be 1", "type": "BadRequestError", "param": None,
               "code": 400}, "bad_request", 400, "n must be 1"),
        (402, {"error": {"code": 402, "message": "Insufficient credits"}}, "quota_exceeded", 402,
         "Insufficient credits"),
        (404, {"error": "model 'llama9' not found"}, "not_found", None, "model 'llama9' not found"),
    ],
)  # fmt: skip
def test_compatible_error_bodies(mock, status, body, type_, code, message):
    mock.post("http://localhost:11434/v1/chat/completions", json=body, status=status)
    transport, _ = make(provider="compatible", base_url="http://localhost:11434/v1", api_key=None)
    error = fail(transport)
    assert (error.type, error.code) == (type_, code)
    assert message in error.message


def test_key_echoed_by_the_server_is_redacted_at_the_facade(mock):
    from connector.engine import runner

    mock.post(URL, json=api_error(f"Incorrect API key provided: {KEY}"), status=401)
    with pytest.raises(errors.ConnectorError) as info:
        runner.run("create_chat_completion", {"model": "m", "messages": "Hi"}, {"api_key": KEY})
    assert KEY not in json.dumps(info.value.to_dict())
    assert KEY not in str(info.value)
    assert "Incorrect API key provided: ***" in info.value.message


# -- requests as sent ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "settings, url, present, absent",
    [
        ({}, URL, {"Authorization": f"Bearer {KEY}"}, ["api-key", "OpenAI-Organization"]),
        ({"organization": "org-1", "project": "proj_1"}, URL,
         {"OpenAI-Organization": "org-1", "OpenAI-Project": "proj_1"}, []),
        ({"api_key": f"  {KEY}\n"}, URL, {"Authorization": f"Bearer {KEY}"}, []),
        ({"provider": "azure", "base_url": "https://r.openai.azure.com/openai/deployments/d",
          "api_version": "2024-10-21"},
         "https://r.openai.azure.com/openai/deployments/d/chat/completions?api-version=2024-10-21",
         {"api-key": KEY}, ["Authorization"]),
        ({"provider": "azure", "base_url": "https://r.openai.azure.com/openai/v1"},
         "https://r.openai.azure.com/openai/v1/chat/completions", {"api-key": KEY}, ["Authorization"]),
        ({"provider": "compatible", "base_url": "http://localhost:11434/v1", "api_key": None},
         "http://localhost:11434/v1/chat/completions", {}, ["Authorization", "api-key"]),
        ({"provider": "local", "base_url": "http://127.0.0.1:8080/v1", "api_key": None},
         "http://127.0.0.1:8080/v1/chat/completions", {}, ["Authorization"]),
    ],
)  # fmt: skip
def test_headers_and_urls_per_provider(mock, settings, url, present, absent):
    mock.post(url, json=COMPLETION)
    transport, _ = make(**settings)
    transport.send("POST", "/chat/completions", BODY)
    sent = mock.calls[0].request.headers
    for name, value in present.items():
        assert sent[name] == value
    for name in absent:
        assert name not in sent
    assert sent["User-Agent"] == "openai-chat-connector/0.1.0"
    assert sent["Content-Type"] == "application/json"
    assert sent["Accept"] == "application/json"


def test_session_defaults_and_cookies_are_kept(mock):
    """Sending past Session.request keeps what it did that matters: default headers, cookies."""
    mock.post(URL, json=COMPLETION, headers={"Set-Cookie": "route=a1; Path=/"})
    transport, _ = make()
    transport.send("POST", "/chat/completions", BODY)
    transport.send("POST", "/chat/completions", BODY)
    first, second = (call.request.headers for call in mock.calls)
    assert "gzip" in first["Accept-Encoding"] and "Cookie" not in first
    assert second["Cookie"] == "route=a1"
    assert json.loads(mock.calls[1].request.body) == BODY


def test_get_sends_no_body_or_content_type(mock):
    mock.get(BASE + "/models", json={"object": "list", "data": []})
    transport, _ = make()
    assert transport.send("GET", "/models").data == {"object": "list", "data": []}
    request = mock.calls[0].request
    assert request.body is None and "Content-Type" not in request.headers


def test_compatible_body_is_translated_and_the_callers_dict_kept(mock):
    url = "http://localhost:11434/v1/chat/completions"
    mock.post(url, json=COMPLETION)
    transport, _ = make(provider="compatible", base_url="http://localhost:11434/v1")
    body = {
        "model": "llama3",
        "max_completion_tokens": 9,
        "messages": [{"role": "developer", "content": "x"}],
    }
    before = copy.deepcopy(body)
    transport.send("POST", "/chat/completions", body)
    assert json.loads(mock.calls[0].request.body) == {
        "model": "llama3",
        "max_tokens": 9,
        "messages": [{"role": "system", "content": "x"}],
    }
    assert body == before


@pytest.mark.parametrize("provider", ["openai", "azure"])
def test_missing_key_is_invalid_input_and_nothing_is_sent(mock, provider):
    base = BASE if provider == "openai" else "https://r.openai.azure.com/openai/v1"
    transport, _ = make(api_key=None, provider=provider, base_url=base)
    with pytest.raises(errors.InvalidInput) as info:
        transport.send("POST", "/chat/completions", BODY)
    assert info.value.fields[0]["name"] == "api_key"
    assert len(mock.calls) == 0


@pytest.mark.parametrize(
    "settings, field, words",
    [
        ({"api_key": "sk-abc def"}, "api_key", "`api_key` contains spaces"),
        ({"api_key": "sk-abcé"}, "api_key", "non-ASCII"),
        ({"organization": "org 1"}, "organization", "`organization` contains"),
        ({"base_url": "http://api.example.com/v1"}, "base_url", "plain http"),
        ({"base_url": "api.openai.com/v1"}, "base_url", "http(s) URL"),
        ({"base_url": "ftp://api.openai.com/v1"}, "base_url", "http(s) URL"),
        ({"allowed_hosts": ("*.openai.azure.com",)}, "base_url", "not in `allowed_hosts`"),
        ({"base_url": "https://api.openai.com:99999/v1"}, "base_url", "not a valid URL"),
    ],
)
def test_bad_settings_are_invalid_input(mock, settings, field, words):
    transport, _ = make(**settings)
    with pytest.raises(errors.InvalidInput) as info:
        transport.send("POST", "/chat/completions", BODY)
    assert info.value.fields[0]["name"] == field
    assert words in info.value.message
    assert "sk-abc" not in info.value.message
    assert len(mock.calls) == 0


@pytest.mark.parametrize(
    "settings, url",
    [
        ({"base_url": "http://gpu.lan:8000/v1", "allow_insecure_http": True}, "http://gpu.lan:8000/v1"),
        ({"base_url": "http://gpu.lan:8000/v1", "api_key": None, "provider": "compatible"},
         "http://gpu.lan:8000/v1"),
        ({"base_url": "http://localhost:8000/v1"}, "http://localhost:8000/v1"),
        ({"allowed_hosts": ("api.openai.com",)}, BASE),
        ({"base_url": "https://r.openai.azure.com/openai/v1", "provider": "azure",
          "allowed_hosts": ("*.openai.azure.com",)}, "https://r.openai.azure.com/openai/v1"),
    ],
)  # fmt: skip
def test_allowed_urls(mock, settings, url):
    mock.post(url + "/chat/completions", json=COMPLETION)
    transport, _ = make(**settings)
    assert transport.send("POST", "/chat/completions", BODY).data == COMPLETION


@pytest.mark.parametrize(
    "settings, stream, url, auth, body",
    [
        ({}, False, URL, ("Authorization", "Bearer ***"), BODY),
        ({}, True, URL, ("Authorization", "Bearer ***"),
         {**BODY, "stream": True, "stream_options": {"include_usage": True}}),
        ({"provider": "azure", "base_url": "https://r.openai.azure.com/openai/v1"}, False,
         "https://r.openai.azure.com/openai/v1/chat/completions", ("api-key", "***"), BODY),
        ({"api_key": None}, False, URL, None, BODY),
    ],
)  # fmt: skip
def test_prepare_redacts_and_sends_nothing(mock, settings, stream, url, auth, body):
    transport, _ = make(**settings)
    prepared = transport.prepare("POST", "/chat/completions", BODY, stream=stream)
    assert prepared["method"] == "POST" and prepared["url"] == url
    assert prepared["body"] == body
    if auth:
        assert prepared["headers"][auth[0]] == auth[1]
    assert prepared["headers"]["Accept"] == ("text/event-stream" if stream else "application/json")
    assert KEY not in json.dumps(prepared)
    assert len(mock.calls) == 0


# -- the process-wide transports -------------------------------------------------------------


def test_transport_for_shares_one_session_per_connection():
    a = make_connection(api_key=KEY)
    first = transport_for(a)
    assert transport_for(make_connection(api_key=KEY)) is first
    assert transport_for(a._replace(timeout=30.0)) is not first
    registry.close_all()
    assert transport_for(a) is not first


def test_transport_for_from_many_threads_builds_one_transport():
    connection = make_connection(api_key=KEY, base_url="https://threads.example/v1")
    seen: list[Transport] = []
    threads = [
        threading.Thread(target=lambda: seen.append(transport_for(connection))) for _ in range(50)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(seen) == 50 and len({id(t) for t in seen}) == 1


def test_session_pool_is_sized_for_concurrent_runs():
    transport, _ = make()
    adapter = transport._session.get_adapter(URL)
    assert adapter._pool_maxsize == session.POOL_MAXSIZE >= 200
    assert adapter.max_retries.total == 0


# -- streaming through the transport ---------------------------------------------------------


def expected(name: str) -> dict:
    return json.loads((STREAMS / f"{name}.json").read_text())


def test_stream_reply_is_aggregated(mock):
    mock.post(
        URL, body=(STREAMS / "usage_chunk.sse").read_bytes(), content_type="text/event-stream"
    )
    transport, _ = make()
    tokens: list[str] = []
    reply = transport.send(
        "POST",
        "/chat/completions",
        BODY,
        stream=True,
        aggregator=Aggregator,
        on_token=tokens.append,
    )
    assert reply.data == expected("usage_chunk")["result"]
    assert tokens == ["Four."]
    request = mock.calls[0].request
    assert json.loads(request.body) == {
        **BODY,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert request.headers["Accept"] == "text/event-stream"


def test_stream_flag_in_the_body_also_streams(mock):
    mock.post(URL, body=(STREAMS / "plain_text.sse").read_bytes(), content_type="text/event-stream")
    transport, _ = make()
    reply = transport.send(
        "POST", "/chat/completions", {**BODY, "stream": True}, aggregator=Aggregator
    )
    assert reply.data == expected("plain_text")["result"]


@pytest.mark.parametrize("name", ["cut", "error_event", "error_in_data"])
def test_failed_streams_keep_the_partial_and_are_not_retried(mock, name):
    mock.post(URL, body=(STREAMS / f"{name}.sse").read_bytes(), content_type="text/event-stream",
              headers={"x-request-id": "req_s"})  # fmt: skip
    transport, waits = make()
    error = fail(transport, stream=True, aggregator=Aggregator)
    want = expected(name)["error"]
    assert (error.type, error.message) == (want["type"], want["message"])
    assert error.partial["choices"][0]["message"]["content"] == want["partial_content"]
    assert error.attempts == 1 and len(mock.calls) == 1 and waits == []
    assert error.request_id == "req_s"


def test_stream_error_status_is_retried_before_the_body(mock):
    mock.post(URL, json=api_error(), status=503)
    mock.post(URL, body=(STREAMS / "plain_text.sse").read_bytes(), content_type="text/event-stream")
    transport, waits = make()
    reply = transport.send("POST", "/chat/completions", BODY, stream=True, aggregator=Aggregator)
    assert reply.attempts == 2 and waits == [0.5]


def test_stream_closed_before_the_first_byte_is_retried(mock):
    mock.post(URL, body=b"", content_type="text/event-stream")
    mock.post(URL, body=(STREAMS / "plain_text.sse").read_bytes(), content_type="text/event-stream")
    transport, waits = make()
    assert (
        transport.send(
            "POST", "/chat/completions", BODY, stream=True, aggregator=Aggregator
        ).attempts
        == 2
    )
    assert waits == [0.5]


def test_stream_answered_with_json_is_taken_as_is(mock):
    mock.post(URL, json=COMPLETION)
    transport, _ = make()
    assert (
        transport.send("POST", "/chat/completions", BODY, stream=True, aggregator=Aggregator).data
        == COMPLETION
    )


def test_stream_answered_with_html_is_invalid(mock):
    mock.post(URL, body="<html><body>Log in</body></html>", content_type="text/html")
    transport, _ = make()
    error = fail(transport, stream=True, aggregator=Aggregator)
    assert isinstance(error, errors.InvalidResponse)
    assert "text/event-stream" in error.message and "Log in" in error.message


def test_stream_over_max_response_bytes(mock):
    body = (STREAMS / "plain_text.sse").read_bytes() * 3
    mock.post(URL, body=body, content_type="text/event-stream")
    transport, _ = make(max_response_bytes=1024)
    error = fail(transport, stream=True, aggregator=Aggregator)
    assert "max_response_bytes (1024 bytes)" in error.message
    assert error.partial["choices"][0]["message"]["content"].startswith("Hello")


def test_stream_line_over_max_sse_line_bytes(mock):
    body = b"data: " + b"x" * 2000 + b"\n\n"
    mock.post(URL, body=body, content_type="text/event-stream")
    transport, _ = make(max_sse_line_bytes=1024)
    assert (
        "max_sse_line_bytes (1024 bytes"
        in fail(transport, stream=True, aggregator=Aggregator).message
    )


class _BrokenRaw(io.RawIOBase):
    """A socket stand-in that gives some bytes, then fails."""

    def __init__(self, data: bytes, exc: BaseException):
        self.data, self.exc = data, exc

    def readable(self):
        return True

    def readinto(self, buffer):
        if not self.data:
            raise self.exc
        n = min(len(buffer), len(self.data))
        buffer[:n], self.data = self.data[:n], self.data[n:]
        return n


def reply_broken_after(mock, content_type: str, data: bytes, exc: Exception) -> None:
    """Answer 200 with ``data``, then fail reading with ``exc``."""
    mock.add_callback(
        responses.POST,
        URL,
        callback=lambda req: (200, {"Content-Type": content_type},
                              io.BufferedReader(_BrokenRaw(data, exc))),
    )  # fmt: skip


def test_stream_failing_before_the_first_byte_is_retried(mock):
    reply_broken_after(mock, "text/event-stream", b"", TimeoutError("timed out"))
    transport, waits = make()
    error = fail(transport, stream=True, aggregator=Aggregator)
    assert error.type == "timeout" and error.attempts == 3 and waits == [0.5, 1.0]


def test_stream_failing_after_the_first_byte_is_not_retried(mock):
    first = (STREAMS / "cut.sse").read_bytes().split(b"\n\n")[0] + b"\n\n"
    reply_broken_after(mock, "text/event-stream", first, ConnectionResetError("reset"))
    transport, waits = make()
    error = fail(transport, stream=True, aggregator=Aggregator)
    assert isinstance(error, errors.InvalidResponse) and error.attempts == 1 and waits == []
    assert f"was cut after {len(first)} bytes" in error.message
    assert error.partial["choices"][0]["message"]["content"] == "The answer"


def test_non_stream_body_cut_by_the_network_is_retried(mock):
    reply_broken_after(mock, "application/json", b'{"id"', ConnectionResetError("reset"))
    transport, waits = make()
    error = fail(transport)
    assert waits == [0.5, 1.0]
    assert error.type == "connection" and error.attempts == 3
    assert "broke while reading the reply" in error.message


# -- real loopback server --------------------------------------------------------------------


@pytest.fixture
def server():
    """Serve POSTs on 127.0.0.1 with the handler set in ``routes[path]``."""
    routes: dict[str, object] = {}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            routes[self.path](self)

        def log_message(self, *args):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_port}/v1", routes
    srv.shutdown()
    srv.server_close()


def sse_event(content: str | None = None, done: bool = False) -> bytes:
    if done:
        return b"data: [DONE]\n\n"
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
             "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}]}  # fmt: skip
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


@pytest.mark.parametrize("chunked", [True, False])
def test_tokens_arrive_while_the_stream_is_open(server, chunked):
    base, routes = server
    first_token_seen = threading.Event()
    server_saw: list[bool] = []

    def handler(h):
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream")
        h.send_header(
            "Transfer-Encoding" if chunked else "Connection", "chunked" if chunked else "close"
        )
        h.end_headers()

        def write(data: bytes):
            h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            h.wfile.flush()

        write(sse_event("Hello"))
        # Hold the rest back until the client has shown the first token.
        server_saw.append(first_token_seen.wait(5))
        write(sse_event(" world") + sse_event(done=True))
        if chunked:
            h.wfile.write(b"0\r\n\r\n")

    routes["/v1/chat/completions"] = handler
    transport, _ = make(base_url=base, api_key=None, provider="compatible")
    tokens: list[str] = []

    def on_token(text):
        tokens.append(text)
        first_token_seen.set()

    reply = transport.send(
        "POST", "/chat/completions", BODY, stream=True, aggregator=Aggregator, on_token=on_token
    )
    assert server_saw == [True]
    assert tokens == ["Hello", " world"]
    assert reply.data["choices"][0]["message"]["content"] == "Hello world"


def test_read_timeout_before_the_reply_is_retried(server):
    base, routes = server
    calls: list[float] = []

    def slow(h):
        calls.append(time.monotonic())
        time.sleep(0.5)  # longer than the client's read timeout below

    routes["/v1/chat/completions"] = slow
    transport, waits = make(base_url=base, timeout=0.1, max_retries=1)
    error = fail(transport)
    assert error.type == "timeout" and error.attempts == 2 and len(calls) == 2
    assert waits == [0.5]


def test_many_concurrent_runs_share_one_transport(server):
    base, routes = server

    def ok(h):
        body = json.dumps(COMPLETION).encode()
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    routes["/v1/chat/completions"] = ok
    connection = make_connection(base_url=base, provider="compatible")
    results: list[object] = []

    def run():
        try:
            results.append(transport_for(connection).send("POST", "/chat/completions", BODY).data)
        except Exception as exc:  # collected so the assertion below shows it
            results.append(exc)

    threads = [threading.Thread(target=run) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == [COMPLETION] * 40


def test_local_validation_500_is_a_rejected_request(mock):
    message = (
        "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'messages', 0, 'role'),"
        " 'msg': \"Input should be 'system'\"}\n\n  File \"/srv/llama_cpp/server/app.py\", line 376"
    )
    mock.post("http://127.0.0.1:8080/v1/chat/completions", status=500,
              json=api_error(message, "internal_server_error"))  # fmt: skip
    transport, waits = make(provider="local", base_url="http://127.0.0.1:8080/v1", api_key=None)
    error = fail(transport)
    assert isinstance(error, errors.RequestRejected) and error.type == "bad_request"
    assert error.status == 500 and error.attempts == 1 and waits == []
    assert "Input should be 'system'" in error.message and "app.py" not in error.message


def test_netrc_credentials_never_replace_the_key(mock, tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine api.openai.com login user password hunter2\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert requests.utils.get_netrc_auth(URL) == ("user", "hunter2")  # the file is read
    mock.post(URL, json=COMPLETION)
    transport, _ = make()
    transport.send("POST", "/chat/completions", BODY)
    assert mock.calls[0].request.headers["Authorization"] == f"Bearer {KEY}"


def test_nan_in_the_body_is_invalid_input(mock):
    transport, _ = make()
    with pytest.raises(errors.InvalidInput, match="NaN"):
        transport.send("POST", "/chat/completions", {**BODY, "temperature": float("nan")})
    assert len(mock.calls) == 0


# -- environment: proxies and CA bundle, read once per URL ------------------------------------


@pytest.mark.parametrize(
    ("env", "proxies", "verify"),
    [
        ({}, {}, True),
        ({"HTTPS_PROXY": "http://proxy.example:3128"}, {"https": "http://proxy.example:3128"}, True),
        ({"HTTPS_PROXY": "http://proxy.example:3128", "NO_PROXY": "api.openai.com"}, {}, True),
        ({"REQUESTS_CA_BUNDLE": "/etc/ssl/corp.pem"}, {}, "/etc/ssl/corp.pem"),
        ({"CURL_CA_BUNDLE": "/etc/ssl/curl.pem"}, {}, "/etc/ssl/curl.pem"),
    ],
)  # fmt: skip
def test_proxies_and_ca_bundle_come_from_the_environment(mock, monkeypatch, env, proxies, verify):
    for name in (
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
    ):
        monkeypatch.delenv(name, raising=False)  # fmt: skip
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    mock.post(URL, json=COMPLETION)
    transport, _ = make()
    transport.send("POST", "/chat/completions", BODY)
    sent = mock.calls[0].request.req_kwargs
    assert {k: v for k, v in sent["proxies"].items() if v} == proxies
    assert sent["verify"] == verify


# -- the process-wide transports: a bounded LRU -------------------------------------------------


def test_transports_are_a_bounded_lru_whose_dropped_pools_close(monkeypatch):
    monkeypatch.setattr(registry, "_MAX_SESSIONS", registry._MAX_SESSIONS)
    registry.limit_sessions(2)
    a, b = (registry.transport_for(make_connection(api_key=f"sk-tenant-{i}")) for i in "ab")
    closed = []
    monkeypatch.setattr(a._session, "close", lambda: closed.append("a"))
    c = registry.transport_for(make_connection(api_key="sk-tenant-c"))  # a is the least recent
    assert closed == ["a"]
    assert list(registry._TRANSPORTS.values()) == [b, c]
    assert registry.transport_for(make_connection(api_key="sk-tenant-b")) is b  # a hit: most recent
    registry.transport_for(make_connection(api_key="sk-tenant-d"))
    assert next(iter(registry._TRANSPORTS.values())) is b and c not in registry._TRANSPORTS.values()
