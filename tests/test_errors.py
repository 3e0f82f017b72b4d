"""The error model: one status classification, errors built whole, one redaction rule."""

from __future__ import annotations

import pytest

from connector import redaction
from connector.errors import (
    InvalidInput,
    InvalidResponse,
    RequestRejected,
    TemporaryFailure,
    classify,
    error_for_status,
)
from connector.transport.providers import PROVIDERS


@pytest.mark.parametrize(
    ("status", "code", "in_stream", "expected"),
    [
        (200, None, False, None),
        (204, None, False, None),
        (301, None, False, (RequestRejected, "bad_request")),  # redirects are never followed
        (400, None, False, (RequestRejected, "bad_request")),
        (401, None, False, (RequestRejected, "authentication")),
        (402, None, False, (RequestRejected, "quota_exceeded")),
        (403, None, False, (RequestRejected, "permission")),
        (404, None, False, (RequestRejected, "not_found")),
        (408, None, False, (TemporaryFailure, "timeout")),
        (409, None, False, (TemporaryFailure, "server_error")),
        (418, None, False, (RequestRejected, "bad_request")),
        (422, None, False, (RequestRejected, "bad_request")),
        (429, None, False, (TemporaryFailure, "rate_limited")),
        (429, "insufficient_quota", False, (RequestRejected, "quota_exceeded")),
        (429, "billing_hard_limit_reached", False, (RequestRejected, "quota_exceeded")),
        (500, None, False, (TemporaryFailure, "server_error")),
        (503, None, False, (TemporaryFailure, "server_error")),
        # an error inside a 200 reply: a numeric code is the would-be status, outside a stream
        (None, 429, False, (TemporaryFailure, "rate_limited")),
        (None, 402, False, (RequestRejected, "quota_exceeded")),
        (None, 429, True, (InvalidResponse, "invalid_response")),
        (None, "server_error", False, (InvalidResponse, "invalid_response")),
        (None, True, False, (InvalidResponse, "invalid_response")),
        (None, 200, False, (InvalidResponse, "invalid_response")),
    ],
)
def test_classify_is_the_one_status_table(status, code, in_stream, expected):
    assert classify(status, code, in_stream=in_stream) == expected


@pytest.mark.parametrize(
    ("message", "type_"),
    [
        ("1 validation error:\n  body -> n: must be 1", "bad_request"),
        ("llama_decode failed", "server_error"),
    ],
)
def test_a_misreported_status_is_classified_by_what_it_means_and_kept_as_sent(message, type_):
    means = PROVIDERS["local"].error_status(500, {"message": message})
    error = error_for_status(500, message, means=means)
    assert (error.type, error.status) == (type_, 500)
    assert PROVIDERS["openai"].error_status(500, {"message": message}) == 500


def test_an_error_inside_a_200_reply_reports_its_code_as_the_status():
    error = error_for_status(None, "slow down", code=429)
    assert (error.type, error.status, error.retryable) == ("rate_limited", 429, True)
    error = error_for_status(None, "broke", code=429, in_stream=True)
    assert (error.type, error.status, error.retryable) == ("invalid_response", None, False)


def test_replace_returns_a_new_error_and_leaves_the_original_alone():
    first = RequestRejected("bad", type="not_found", status=404, body=b"x" * 5000)
    second = first.replace(message="worse", attempts=2)
    assert (first.message, first.attempts, str(first)) == ("bad", None, "bad")
    assert (second.message, second.attempts, str(second)) == ("worse", 2, "worse")
    assert type(second) is RequestRejected and second.type == "not_found"
    assert second.body == first.body, "the body is capped once, not again"
    with pytest.raises(TypeError):
        first.replace(colour="red")


@pytest.mark.parametrize(
    ("secret", "redacted"),
    [
        ("sk-" + "a" * 40, True),
        ("x" * redaction.MIN_SECRET_CHARS, True),
        ("x" * (redaction.MIN_SECRET_CHARS - 1), False),  # a placeholder key: "EMPTY", "ollama"
        ("", False),
        (None, False),
    ],
)
def test_one_threshold_rule_for_every_redaction(secret, redacted):
    text = f"key {secret} echoed"
    error = RequestRejected(text, body=text, fields=[{"message": text}])
    out = error.redacted([secret]).to_dict()
    assert (redaction.REDACTED in out["message"]) is redacted
    assert (redaction.REDACTED in out["body"]) is redacted
    assert (redaction.REDACTED in out["fields"][0]["message"]) is redacted
    assert (redaction.redact(text, [secret]) != text) is redacted
    assert error.message == text, "the original is never patched"


@pytest.mark.parametrize(
    ("what", "extras", "expected"),
    [
        ("The action server", "server", "needs the server extra (falcon is missing): "
         "pip install 'openai-chat-connector[server]'."),
        ("The worker", "server,postgres", "needs the postgres extra (falcon is missing): "
         "pip install 'openai-chat-connector[server,postgres]'."),
    ],
)  # fmt: skip
def test_a_missing_extra_names_the_module_and_the_pip_command(what, extras, expected):
    error = InvalidInput.missing_extra(what, extras, ImportError(name="falcon"))
    assert error.message == f"{what} {expected}" and error.exit_code == 2


def test_the_worker_without_procrastinate_says_which_extra(monkeypatch):
    import argparse
    import sys

    from connector.server import worker

    monkeypatch.setitem(sys.modules, "procrastinate", None)  # import procrastinate: ImportError
    with pytest.raises(InvalidInput, match=r"postgres extra \(procrastinate is missing\)"):
        worker.cmd_worker(argparse.Namespace(runs_url="postgresql://x", concurrency=None))
