"""Live tier: the connector end to end against the embedded llama.cpp server (a real server).

Run with ``pytest -m live``. One server is started per session (or the one named by
$CONNECTOR_LOCAL_BASE_URL is used); if it cannot start, every test here fails: never skips.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import connector
from connector.errors import ConnectorError, RequestRejected
from connector.transport import local

pytestmark = pytest.mark.live

ROOT = Path(__file__).resolve().parent.parent
MODEL = local.MODEL_ALIAS
# The platform page's example messages, as the manifest declares them.
SEED_MESSAGES = json.dumps(
    connector.load_manifest().action("create_chat_completion").param("messages").example
)
JSON_MESSAGES = json.dumps(
    [
        {"role": "system", "content": "Reply with JSON only."},
        {"role": "user", "content": 'Return this JSON object: {"name": "Bob", "age": 30}'},
    ]
)
PERSON_SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


@pytest.fixture(scope="session")
def server(local_backend):
    """The session's local backend (conftest: fails, never skips, when it cannot start)."""
    return local_backend


def chat(server, **form: str) -> dict:
    """Run create_chat_completion with text form values, as a web form sends them."""
    form.setdefault("model", MODEL)
    form.setdefault("messages", SEED_MESSAGES)
    return connector.run(
        "create_chat_completion", form, {"provider": "local", "base_url": server.base_url}
    )


def content(output: dict) -> str:
    return output["choices"][0]["message"]["content"]


@pytest.mark.parametrize(
    ("form", "usage_known"),
    [
        ({"model": "gpt-4o-mini", "max_completion_tokens": "4"}, True),
        ({"model": "smollm2", "stream": "true", "max_completion_tokens": "4"}, False),
    ],
)
def test_the_local_provider_says_the_model_that_ran_and_unknown_usage_is_null(
    server, form, usage_known
):
    heard = []
    out = connector.run(
        "create_chat_completion",
        {"messages": "Hi", **form},
        {"provider": "local", "base_url": server.base_url},
        on_warning=heard.append,
    )
    assert out["model"] == MODEL  # not the form's model: the one the local server runs
    assert (out["usage"] is not None) == usage_known
    assert ("no_usage" in [w["kind"] for w in heard]) == (not usage_known)
    assert "truncated" in [w["kind"] for w in heard]  # 4 tokens: cut, and said so


def test_plain_completion_on_the_seed_example(server):
    out = chat(server)
    assert out["object"] == "chat.completion"
    assert out["id"].startswith("chatcmpl-")
    choice = out["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert isinstance(content(out), str) and content(out).strip()
    assert choice["finish_reason"] in ("stop", "length")
    usage = out["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    # Keys this server leaves out are still there, as in the example output.
    assert choice["message"]["refusal"] is None
    assert "annotations" in choice["message"]
    assert {"service_tier", "system_fingerprint"} <= out.keys()
    assert "cached_tokens" in usage["prompt_tokens_details"]
    assert "reasoning_tokens" in usage["completion_tokens_details"]


@pytest.mark.parametrize("form_text", ["{word}", "zzqx, {word}", '["zzqx", "{word}"]'])
def test_stop_sequences_are_honoured(server, form_text):
    capped = {"temperature": "0", "seed": "3", "max_completion_tokens": "40"}
    free = content(chat(server, **capped))
    words = free.split()
    assert len(words) >= 3, free
    word = words[len(words) // 2]
    out = chat(server, **capped, stop=form_text.format(word=word))
    assert content(out) == free[: free.index(word)]
    assert out["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("limit", [1, 4, 9])
def test_max_completion_tokens_is_honoured(server, limit, caplog):
    out = chat(server, max_completion_tokens=str(limit), temperature="0")
    assert out["usage"]["completion_tokens"] <= limit
    if out["choices"][0]["finish_reason"] == "length":
        assert "cut" in caplog.text


@pytest.mark.parametrize(("temperature", "seed"), [("0", "42"), (" 0.9 ", "7")])
def test_seed_makes_replies_reproducible(server, temperature, seed):
    first = chat(server, temperature=temperature, seed=seed, max_completion_tokens="24")
    second = chat(server, temperature=temperature, seed=seed, max_completion_tokens="24")
    assert content(first) == content(second)


def test_streaming_aggregates_to_the_non_stream_reply(server):
    form = {
        "model": MODEL,
        "messages": SEED_MESSAGES,
        "temperature": "0",
        "seed": "11",
        "max_completion_tokens": "40",
    }
    connection = {"provider": "local", "base_url": server.base_url}
    plain = connector.run("create_chat_completion", form, connection)
    tokens: list[str] = []
    streamed = connector.run(
        "create_chat_completion", {**form, "stream": "true"}, connection, on_token=tokens.append
    )
    assert content(streamed) == content(plain)
    assert "".join(tokens) == content(plain)
    assert len(tokens) > 1
    assert streamed["choices"][0]["finish_reason"] == plain["choices"][0]["finish_reason"]
    assert streamed["object"] == "chat.completion"
    assert streamed["choices"][0]["message"]["role"] == "assistant"


def test_json_object_gives_parsed_json(server):
    out = chat(
        server,
        messages=JSON_MESSAGES,
        response_format="json_object",
        temperature="0",
        max_completion_tokens="120",
    )
    message = out["choices"][0]["message"]
    assert isinstance(message["parsed"], dict)
    assert json.loads(message["content"]) == message["parsed"]


@pytest.mark.parametrize(
    "response_format",
    [
        json.dumps(
            {
                "type": "json_schema",
                "json_schema": {"name": "person", "strict": True, "schema": PERSON_SCHEMA},
            }
        ),
        json.dumps(PERSON_SCHEMA),  # a bare schema: the form's shortcut
    ],
    ids=["json_schema", "bare_schema"],
)
def test_json_schema_is_translated_and_parsed(server, response_format):
    out = chat(
        server,
        messages=JSON_MESSAGES,
        response_format=response_format,
        temperature="0",
        max_completion_tokens="120",
    )
    parsed = out["choices"][0]["message"]["parsed"]
    assert set(parsed) == {"name", "age"}
    assert isinstance(parsed["name"], str)
    assert isinstance(parsed["age"], int)


def test_list_models_names_the_local_model(server):
    out = connector.run("list_models", {}, {"provider": "local", "base_url": server.base_url})
    assert MODEL in [m["id"] for m in out["data"]]


def test_a_request_the_server_rejects_is_a_clean_error(server):
    with pytest.raises(RequestRejected) as caught:
        chat(server, messages="hello " * 3000)  # past the 2048-token context
    err = caught.value.to_dict()
    assert err["type"] == "bad_request"
    assert err["status"] == 400
    assert err["code"] == "context_length_exceeded"
    assert err["attempts"] == 1
    assert not err["retryable"]
    assert "context length" in err["message"]


def run_cli(*sets: str, env: dict[str, str], connection: dict | None = None, tmp_path=None):
    args = [sys.executable, "-m", "connector", "run", "create_chat_completion"]
    for item in sets:
        args += ["--set", item]
    if connection is not None:
        path = tmp_path / "connection.json"
        path.write_text(json.dumps(connection))
        args += ["--connection", str(path)]
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CONNECTOR_"))}
    return subprocess.run(
        args, env=clean | env, cwd=ROOT, capture_output=True, text=True, timeout=180
    )


def test_cli_runs_the_seed_example(server, tmp_path):
    proc = run_cli(
        f"model={MODEL}",
        f"messages={SEED_MESSAGES}",
        "temperature=0",
        env={},
        connection={"provider": "local", "base_url": server.base_url},
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert content(out).strip()
    assert out["usage"]["total_tokens"] > 0


def test_cli_rejected_request_exits_3(server, tmp_path):
    proc = run_cli(
        f"model={MODEL}",
        "messages=" + "hello " * 3000,
        env={"OPENAI_PROVIDER": "local", local.BASE_URL_ENV: server.base_url},
    )
    assert proc.returncode == 3, proc.stderr
    assert json.loads(proc.stdout)["error"]["code"] == "context_length_exceeded"
    assert "Traceback" not in proc.stderr


def _processes_with(tag: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if tag.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_cli_starts_and_stops_its_own_server():
    tag = f"connector-live-{uuid.uuid4().hex}"
    proc = run_cli(
        f"model={MODEL}",
        f"messages={SEED_MESSAGES}",
        "max_completion_tokens=8",
        env={"OPENAI_PROVIDER": "local", "CONNECTOR_TEST_TAG": tag},
    )
    assert proc.returncode == 0, proc.stderr
    assert content(json.loads(proc.stdout)).strip()
    if Path("/proc/self/environ").exists():  # Linux: the server it started did not outlive it
        assert _processes_with(tag) == []


def test_the_built_llama_cpp_is_portable():
    """Built for any x86-64 with AVX2: no AMX (it crashed on Xeons), not tuned to this CPU."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode()
    features = {name for name, on in re.findall(r"(\w+) = (\d)", info) if on == "1"}
    assert {"AVX", "AVX2", "FMA", "F16C"} <= features, info
    assert not any(name.startswith(("AMX", "AVX512")) for name in features), info


@pytest.mark.parametrize("death", [signal.SIGSEGV, signal.SIGKILL])
def test_the_real_server_dying_mid_answer_is_named_and_restarted(monkeypatch, death):
    monkeypatch.delenv(local.BASE_URL_ENV, raising=False)
    monkeypatch.setattr(local, "_shared", None)
    killed = []

    def kill_at_first_token(_text: str) -> None:
        if not killed:
            killed.append(local._shared)
            os.kill(local._shared.pid, death)

    form = {"model": MODEL, "messages": SEED_MESSAGES, "max_completion_tokens": "200"}
    try:
        with pytest.raises(ConnectorError) as caught:
            connector.run(
                "create_chat_completion",
                {**form, "stream": "true"},
                {"provider": "local"},
                on_token=kill_at_first_token,
            )
        err, (server,) = caught.value, killed
        crashed = death == signal.SIGSEGV
        assert err.type == ("local_server_crashed" if crashed else "local_server_killed")
        assert err.retryable is not crashed and err.attempts == 1
        assert f"pid {server.pid}" in err.message
        assert f"was killed by signal {death.name}" in err.message
        assert str(server.log_path) in err.message and server.log_path.is_file()
        assert err.partial["choices"][0]["message"]["content"]  # what came before the death
        out = connector.run("create_chat_completion", form, {"provider": "local"})
        assert content(out).strip() and local._shared is not server  # restarted once
    finally:
        local._stop_shared()
