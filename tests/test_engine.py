"""The engine is generic: a second action, declared only in a test manifest, with its own
request schema and no action module, runs through it against the loopback fault server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from connector.engine import runner
from connector.errors import InvalidInput, RequestRejected

MANIFEST = Path(__file__).parent / "fixtures" / "manifests" / "engine" / "embeddings.yaml"
FORM = {"model": "text-embedding-3-small", "input": "Hello", "dimensions": "4"}


@pytest.fixture
def engine_manifest(monkeypatch):
    monkeypatch.setenv("CONNECTOR_MANIFEST", str(MANIFEST))


def connection(scenario) -> dict[str, str]:
    return {"base_url": scenario.base_url, "provider": "compatible", "max_retries": "2"}


@pytest.mark.usefixtures("engine_manifest")
def test_the_second_action_runs_and_its_output_takes_the_example_shape(fault_server):
    scenario = fault_server.scenario("ok")
    out = runner.run("create_embedding", FORM, connection(scenario))
    assert out["data"][0]["embedding"] == [0.5] * 4
    assert out["object"] == "list" and out["model"] == "text-embedding-3-small"
    # The reply had no usage: the example's keys are filled, as for the chat action.
    assert out["usage"] == {"prompt_tokens": 0, "total_tokens": 0}
    (sent,) = scenario.requests
    assert sent.path.endswith("/embeddings") and sent.json == {
        "model": "text-embedding-3-small",
        "input": "Hello",
        "dimensions": 4,
    }


@pytest.mark.usefixtures("engine_manifest")
@pytest.mark.parametrize(
    ("form", "name", "fragment"),
    [
        ({"input": "x" * 101}, "input", "at most 100"),  # the action's own request schema
        ({"dimensions": "0"}, "dimensions", "at least 1"),
        ({"encoding_format": "text"}, "encoding_format", "float, base64"),
        ({"model": ""}, "model", "is required"),
    ],
)
def test_the_second_action_is_validated_against_its_own_schema(fault_server, form, name, fragment):
    scenario = fault_server.scenario("ok")
    with pytest.raises(InvalidInput) as exc:
        runner.run("create_embedding", {**FORM, **form}, connection(scenario))
    assert [f["name"] for f in exc.value.fields] == [name]
    assert fragment in exc.value.fields[0]["message"]
    assert "messages" not in exc.value.message  # never judged as a chat body
    assert scenario.count == 0


@pytest.mark.usefixtures("engine_manifest")
def test_the_second_action_is_retried_and_classified_like_any_other(fault_server):
    flaky = fault_server.scenario("500-then-ok")
    assert runner.run("create_embedding", FORM, connection(flaky))["data"]
    assert flaky.count == 2
    quota = fault_server.scenario("quota")
    with pytest.raises(RequestRejected) as exc:
        runner.run("create_embedding", FORM, connection(quota))
    assert exc.value.type == "quota_exceeded" and quota.count == 1


RUN = """
import json, os, sys
opened = []
sys.addaudithook(
    lambda event, args: event == "open" and isinstance(args[0], str | bytes)
    and opened.append(os.fsdecode(args[0]))
)
import connector
out = connector.run("create_embedding", json.loads(sys.argv[1]), json.loads(sys.argv[2]))
chat = sorted(m for m in sys.modules if "create_chat_completion" in m or m.endswith(".chunks"))
files = sorted({p for p in opened if "chat_completion" in p})
print(json.dumps({"dims": len(out["data"][0]["embedding"]), "chat_modules": chat, "chat_files": files}))
"""


def test_no_chat_code_is_involved(fault_server, tmp_path):
    """No chat module is imported and no chat file (schema, action module) is read, cold or warm."""
    scenario = fault_server.scenario("ok")
    env = {"CONNECTOR_MANIFEST": str(MANIFEST), "CONNECTOR_CACHE_DIR": str(tmp_path), "PATH": ""}
    args = [json.dumps(FORM), json.dumps(connection(scenario))]
    for _ in ("cold", "warm"):
        done = subprocess.run(
            [sys.executable, "-c", RUN, *args], capture_output=True, text=True, env=env, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"dims": 4, "chat_modules": [], "chat_files": []}


@pytest.mark.usefixtures("engine_manifest")
def test_an_action_without_a_stream_aggregator_cannot_stream():
    from connector.engine.loader import load_manifest
    from connector.engine.runner import make_connection

    action = load_manifest().action("create_embedding")
    body = {"model": "m", "input": "x", "stream": True}
    with pytest.raises(InvalidInput, match="cannot stream"):
        runner._send(None, action, body, make_connection(), None)


def test_the_chat_action_streams_through_its_own_aggregator():
    from connector.actions import chunks
    from connector.engine import hooks
    from connector.engine.loader import load_manifest

    chat = load_manifest().action("create_chat_completion")
    assert hooks.hook(chat, "stream_aggregator") is chunks.Aggregator
