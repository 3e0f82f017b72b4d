"""Callback URLs, signatures and the scale-out settings (no network: literal addresses only)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from connector.errors import InvalidInput
from connector.server import callbacks
from connector.server.app import Settings
from connector.server.worker import WorkerSettings


@pytest.mark.parametrize(
    ("url", "allowed", "problem"),
    [
        ("https://93.184.216.34/hook", (), None),
        ("https://[2606:2800:220:1::1]/hook", (), None),
        ("http://93.184.216.34/hook", (), "must use https://"),
        ("https://127.0.0.1/hook", (), "loopback or private"),
        ("https://localhost/hook", (), "loopback or private"),
        ("https://10.0.0.7/hook", (), "loopback or private"),
        ("https://192.168.1.2/hook", (), "loopback or private"),
        ("https://[::ffff:10.0.0.7]/hook", (), "loopback or private"),
        ("https://[fd00::1]/hook", (), "loopback or private"),
        ("https://169.254.169.254/latest", (), "metadata"),
        ("https://169.254.169.254/latest", ("169.254.169.254",), "metadata"),  # never
        ("https://0.0.0.0/hook", ("0.0.0.0",), "metadata"),
        ("http://127.0.0.1:9000/hook", ("127.0.0.1",), None),  # allowed: http and loopback
        ("http://10.0.0.7/hook", ("10.0.0.7",), None),
        ("http://10.0.0.8/hook", ("10.0.0.7",), "must use https://"),
        ("ftp://93.184.216.34/hook", (), "https:// URL"),
        ("https:///hook", (), "https:// URL"),
        ("https://u:p@93.184.216.34/hook", (), "user name or password"),
        ("https://93.184.216.34:99999/hook", (), "not a valid URL"),
        ("https://93.184.216.34/a b", (), "spaces"),
    ],
)
def test_callback_url_policy(url, allowed, problem):
    found = callbacks.url_problem(url, allowed)
    assert (found is None) if problem is None else (problem in (found or "")), found


def test_the_signature_is_hmac_sha256_of_the_raw_body():
    body = b'{"id": "x", "status": 200}'
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert callbacks.sign(body, "s3cret") == f"sha256={expected}"
    assert callbacks.sign(body + b" ", "s3cret") != callbacks.sign(body, "s3cret")


@pytest.mark.parametrize(
    ("secret", "message"),
    [("", "no CONNECTOR_CALLBACK_SECRET"), ("k" * 16, "loopback or private")],
)
def test_callbacks_are_refused_without_a_secret_or_outside_the_policy(monkeypatch, secret, message):
    monkeypatch.setenv(callbacks.SECRET_ENV, secret)
    monkeypatch.delenv(callbacks.ALLOWED_ENV, raising=False)
    with pytest.raises(InvalidInput) as caught:
        callbacks.check_callback_url("https://10.1.1.1/hook", "X-Callback-Url")
    assert message in caught.value.message
    assert caught.value.fields[0]["name"] == "X-Callback-Url"


def test_the_runs_url_is_read_and_never_shown():
    url = "postgresql://app:pw-9f8e7d6c@db.internal/runs"
    settings = Settings.from_env({"CONNECTOR_RUNS_URL": url})
    assert settings.runs_url == url
    assert "pw-9f8e7d6c" not in repr(settings)
    worker = WorkerSettings.from_env(
        {"CONNECTOR_RUNS_URL": url, "CONNECTOR_WORKER_HEARTBEAT": "0.5"}
    )
    assert worker.heartbeat == 0.5 and "pw-9f8e7d6c" not in repr(worker)


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({}, "CONNECTOR_RUNS_URL"),
        (
            {"CONNECTOR_RUNS_URL": "postgresql://x/y", "CONNECTOR_RUN_MAX_ATTEMPTS": "three"},
            "CONNECTOR_RUN_MAX_ATTEMPTS",
        ),
    ],
)
def test_worker_settings_errors_name_the_variable(env, words):
    with pytest.raises(InvalidInput) as caught:
        WorkerSettings.from_env(env)
    assert words in caught.value.message
