"""Size and depth limits: each gives a clear error naming its connection setting."""

from __future__ import annotations

import json

import pytest

DEEP = "[" * 80 + "]" * 80  # deeper than the default max_json_depth (64)


@pytest.mark.parametrize(
    ("sets", "settings", "field"),
    [
        (("messages=" + "x" * 1500,), {"max_input_chars": 1000}, "messages"),
        (
            ("messages=" + json.dumps([{"role": "user", "content": "y" * 1200}]),),
            {"max_input_chars": 1000},
            "messages",
        ),
        (("messages=" + DEEP,), {}, "messages"),
        (("metadata=" + json.dumps({"a": json.loads(DEEP)}),), {}, "metadata"),
        (("tools=" + "[" * 10 + "]" * 10,), {"max_json_depth": 8}, "tools"),
    ],
    ids=["text-chars", "json-chars", "messages-depth", "metadata-depth", "tools-depth-setting"],
)
def test_input_limits_refuse_before_sending(fault_server, cli, sets, settings, field):
    scenario = fault_server.scenario("ok")
    result = cli(scenario.base_url, *sets, connection=settings)
    assert result.code == 2 and result.error["type"] == "invalid_input"
    assert scenario.count == 0
    [problem] = [f for f in result.error["fields"] if f["name"] == field]
    setting = "max_input_chars" if "chars" in json.dumps(settings) else "max_json_depth"
    assert setting in problem["message"]


def test_input_within_limits_is_sent(fault_server, cli):
    scenario = fault_server.scenario("ok")
    result = cli(scenario.base_url, "messages=" + "x" * 999, connection={"max_input_chars": 1000})
    assert result.code == 0 and scenario.count == 1


@pytest.mark.parametrize(
    ("name", "sets", "settings", "setting"),
    [
        ("big", (), {"max_response_bytes": 2000}, "max_response_bytes"),
        ("big", ("stream=true",), {"max_response_bytes": 2000}, "max_response_bytes"),
        ("stream-big-line", ("stream=true",), {"max_sse_line_bytes": 2000}, "max_sse_line_bytes"),
    ],
    ids=["body", "stream-body", "sse-line"],
)
def test_response_limits_fail_cleanly_without_retrying(
    fault_server, cli, name, sets, settings, setting
):
    scenario = fault_server.scenario(name, size=5000)
    result = cli(scenario.base_url, *sets, connection=settings)
    assert result.code == 5 and result.error["type"] == "invalid_response"
    assert result.error["attempts"] == 1 and scenario.count == 1
    assert setting in result.error["message"]


@pytest.mark.parametrize("name", ["big", "stream-big-line"])
def test_response_within_limits_is_read(fault_server, cli, name):
    scenario = fault_server.scenario(name, size=5000)
    sets = ("stream=true",) if name.startswith("stream") else ()
    result = cli(scenario.base_url, *sets)
    assert result.code == 0
    assert result.doc["choices"][0]["message"]["content"] == "x" * 5000
