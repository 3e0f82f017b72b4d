"""Secret hygiene: the canary key never appears in output, errors, logs or dry-runs."""

from __future__ import annotations

import json
import logging
import traceback

import pytest
from conftest import CANARY

import connector
from connector.engine import runner

KEY_HEADERS = {"openai": "Authorization", "azure": "api-key", "compatible": "Authorization"}


def leaks(error: connector.ConnectorError) -> list[str]:
    """Return the views of an error that show the canary."""
    views = {
        "str": str(error),
        "repr": repr(error),
        "args": repr(error.args),
        "to_dict": json.dumps(error.to_dict()),
        "traceback": "".join(traceback.format_exception(error)),
    }
    return [name for name, text in views.items() if CANARY in text]


def run_in_process(base_url, form=None, **settings):
    """Run the action in-process; return the output or the ConnectorError raised."""
    connection = {"api_key": CANARY, "base_url": base_url, "max_retries": 1, **settings}
    form = {"model": "gpt-4o-mini", "messages": "Hello", **(form or {})}
    try:
        return connector.run("create_chat_completion", form, connection)
    except connector.ConnectorError as error:
        return error


@pytest.mark.parametrize("provider", ["openai", "azure", "compatible"])
def test_echoed_key_is_redacted_through_the_cli(fault_server, cli, provider):
    scenario = fault_server.scenario("echo-key")
    result = cli(scenario.base_url, connection={"provider": provider})
    assert result.code == 3 and result.error["type"] == "authentication"
    [seen] = scenario.requests
    assert CANARY in seen.header(KEY_HEADERS[provider])  # the key was sent, and echoed back
    assert "***" in result.error["message"] and "***" in result.error["body"]


@pytest.mark.parametrize("provider", ["openai", "azure", "compatible"])
def test_dry_run_redacts_the_key(fault_server, cli, provider):
    scenario = fault_server.scenario("ok")
    result = cli(scenario.base_url, connection={"provider": provider}, dry_run=True)
    assert result.code == 0 and scenario.count == 0
    assert result.doc["headers"][KEY_HEADERS[provider]] in ("Bearer ***", "***")


def test_dry_run_redacts_a_key_pasted_into_the_form(fault_server, cli):
    scenario = fault_server.scenario("ok")
    metadata = json.dumps({"note": CANARY})
    result = cli(scenario.base_url, f"user={CANARY}", f"metadata={metadata}", dry_run=True)
    assert result.code == 0 and scenario.count == 0  # the fixture checked the canary is absent
    assert result.doc["body"]["user"] == "***"


@pytest.mark.parametrize(
    ("settings", "sets"),
    [
        ({"base_url": CANARY}, ()),  # the key pasted into Base URL by mistake
        ({"base_url": f"https://{CANARY}@api.openai.com/v1"}, ()),
        ({"timeout": CANARY}, ()),
        ({"max_retries": "lots"}, ()),
        ({}, (f"temperature={CANARY}",)),
        ({}, (f"messages=[{{'role': '{CANARY}'", "stop=[1,2,3,4,5]")),
    ],
)
def test_invalid_settings_and_forms_do_not_echo_the_key(fault_server, cli, settings, sets):
    scenario = fault_server.scenario("ok")
    result = cli(scenario.base_url, *sets, connection=settings)
    assert result.code == 2 and result.error["type"] == "invalid_input"
    assert scenario.count == 0


@pytest.mark.parametrize("key", [f"{CANARY}\r\nX-Injected: 1", f"{CANARY} tail", f"{CANARY}é"])
def test_a_key_that_cannot_be_a_header_is_refused_without_echo(fault_server, cli, key):
    scenario = fault_server.scenario("ok")
    result = cli(scenario.base_url, key=key)
    assert result.code == 2 and result.error["fields"][0]["name"] == "api_key"
    assert scenario.count == 0


@pytest.mark.parametrize(
    ("name", "params", "form"),
    [
        ("echo-key", {}, {}),
        ("429-then-ok", {"retry_after_ms": 10}, {}),
        ("503-always", {"retry_after_ms": 10}, {}),
        ("stream-error-event", {}, {"stream": "true"}),
        ("stream-cut", {}, {"stream": "true"}),
        ("redirect", {}, {}),
        ("reset", {"fails": 1}, {}),
        ("error", {"status": 400, "code": "unsupported_parameter", "param": "temperature"}, {}),
    ],
)
def test_in_process_errors_and_logs_never_show_the_key(fault_server, caplog, name, params, form):
    caplog.set_level(logging.DEBUG)  # every logger, urllib3's included
    scenario = fault_server.scenario(name, **params)
    outcome = run_in_process(scenario.base_url, form)
    assert scenario.count >= 1
    if isinstance(outcome, connector.ConnectorError):
        assert leaks(outcome) == []
    assert CANARY not in caplog.text
    assert CANARY not in json.dumps(outcome, default=str)


def test_an_internal_error_does_not_carry_the_key_in_its_chain(fault_server, monkeypatch):
    def broken(*args, **kw):
        raise RuntimeError(f"unexpected reply for key {CANARY}")

    monkeypatch.setattr(runner, "shape", broken)
    error = run_in_process(fault_server.scenario("ok").base_url)
    assert isinstance(error, connector.InternalError)
    assert leaks(error) == []


def test_connection_repr_hides_the_key():
    conn = connector.make_connection(api_key=CANARY)
    assert CANARY not in repr(conn) and CANARY not in str(conn)
