"""The command line: one JSON document on stdout, a line on stderr, and an exit code per outcome."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import responses

from connector import cli

ROOT = Path(__file__).resolve().parent.parent
URL = "https://api.openai.com/v1/chat/completions"
KEY = "sk-cli-canary-0a1b2c3d4e"
REPLY = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4o-mini",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "Hi"}, "finish_reason": "stop"}
    ],
    "usage": {"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10},
}
NO_STREAM_USAGE = (
    "warning: The server reported no token usage for this stream, although the connector asked"
    " for it (stream_options.include_usage); usage is null.\n"
)
ARGS = ["run", "create_chat_completion", "--set", "model=gpt-4o-mini", "--set", "messages=Hello!"]


def api_error(status, code=None, message="Something went wrong."):
    """Return an OpenAI error body."""
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    }


@pytest.fixture(autouse=True)
def env(monkeypatch):
    """Set the key and no retries; resolve names without DNS."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_MAX_RETRIES", "0")
    monkeypatch.setattr(
        "connector.transport.policy.socket.getaddrinfo",
        lambda *a, **k: [(2, 1, 6, "", ("93.184.216.34", 443))],
    )


def main(args, capsys):
    """Run the CLI in-process; return (exit code, stdout document, stderr)."""
    code = cli.main(args)
    out, err = capsys.readouterr()
    assert KEY not in out and KEY not in err
    return code, json.loads(out), err


@pytest.mark.parametrize(
    ("status", "body", "code", "type_"),
    [
        (200, REPLY, 0, None),
        (400, api_error(400, "invalid_value"), 3, "bad_request"),
        (401, api_error(401, "invalid_api_key"), 3, "authentication"),
        (403, api_error(403), 3, "permission"),
        (404, api_error(404, "model_not_found"), 3, "not_found"),
        (429, api_error(429, "insufficient_quota"), 3, "quota_exceeded"),
        (429, api_error(429, "rate_limit_exceeded"), 4, "rate_limited"),
        (500, api_error(500), 4, "server_error"),
        (503, "<html><body><h1>503 Service Unavailable</h1></body></html>", 4, "server_error"),
        (200, "<html>Please log in to the Wi-Fi</html>", 5, "invalid_response"),
        (200, '{"id": "chatcmpl-1", "choices": [', 5, "invalid_response"),
    ],
)
def test_exit_code_per_outcome(capsys, status, body, code, type_):
    with responses.RequestsMock() as mock:
        if isinstance(body, dict):
            mock.post(URL, json=body, status=status, headers={"x-request-id": "req_123"})
        else:
            mock.post(URL, body=body, status=status, content_type="text/html")
        exit_code, doc, err = main(ARGS, capsys)
    assert exit_code == code
    if type_ is None:
        assert doc["choices"][0]["message"]["content"] == "Hi"
        return
    error = doc["error"]
    assert error["type"] == type_ and error["status"] == status
    assert error["retryable"] is (code == 4)
    assert error["body"], "the raw reply is kept"
    assert err.startswith(f"error ({type_}):") and len(err.strip().splitlines()) == 1
    if isinstance(body, dict):
        assert body["error"]["message"] in error["message"], "the API's own message is kept"
        assert error["request_id"] == "req_123" and error["code"] == body["error"]["code"]


def test_invalid_input_exits_2_and_sends_nothing(capsys):
    with responses.RequestsMock() as mock:
        code, doc, err = main([*ARGS, "--set", "temperature=hot", "--set", "n=1.5"], capsys)
        assert not mock.calls
    assert code == 2
    assert [f["name"] for f in doc["error"]["fields"]] == ["temperature", "n"]
    assert doc["error"]["type"] == "invalid_input" and "2 problems" in err


def test_a_bug_exits_1_with_an_internal_error(capsys, monkeypatch):
    def boom(*a, **k):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("connector.engine.runner.shape", boom)
    with responses.RequestsMock() as mock:
        mock.post(URL, json=REPLY)
        code, doc, _ = main(ARGS, capsys)
    assert code == 1 and doc["error"]["type"] == "internal"
    assert "ZeroDivisionError" in doc["error"]["message"]


def test_input_file_and_set_overrides(capsys, tmp_path):
    form = tmp_path / "form.yaml"
    form.write_text(
        "model: gpt-4o\nmessages:\n  - role: user\n    content: From a file\ntemperature: 1\n"
    )
    with responses.RequestsMock() as mock:
        mock.post(URL, json=REPLY)
        code, _, _ = main(
            ["run", "create_chat_completion", "--input", str(form), "--set", "temperature=0"],
            capsys,
        )
        sent = json.loads(mock.calls[0].request.body)
    assert code == 0
    assert sent == {
        "messages": [{"role": "user", "content": "From a file"}],
        "model": "gpt-4o",
        "temperature": 0.0,
    }


def test_connection_file_with_key_from_environment(capsys, tmp_path):
    conn = tmp_path / "conn.json"
    conn.write_text(
        json.dumps({"base_url": "https://llm.example.test/v1", "provider": "compatible"})
    )
    with responses.RequestsMock() as mock:
        mock.post("https://llm.example.test/v1/chat/completions", json=REPLY)
        code, _, _ = main(
            [*ARGS, "--set", "max_completion_tokens=7", "--connection", str(conn)], capsys
        )
        sent = json.loads(mock.calls[0].request.body)
    assert code == 0 and sent["max_tokens"] == 7 and "max_completion_tokens" not in sent


def test_dry_run_prints_the_request_with_the_key_redacted(capsys):
    with responses.RequestsMock() as mock:
        code, doc, _ = main([*ARGS, "--dry-run"], capsys)
        assert not mock.calls
    assert code == 0
    assert set(doc) == {"method", "url", "headers", "body"}
    assert doc["headers"]["Authorization"] == "Bearer ***"


@pytest.mark.parametrize(
    ("args", "check"),
    [
        (["list"], lambda doc: [a["id"] for a in doc] == ["create_chat_completion", "list_models"]),
        (
            ["describe", "create_chat_completion", "--json"],
            lambda doc: [p["label"] for p in doc["basic"]] == ["Messages", "Model"],
        ),
        (
            ["describe", "list_models", "--json"],
            lambda doc: doc["basic"] == [] and doc["advanced"] == [],
        ),
    ],
)
def test_json_commands(capsys, args, check):
    assert cli.main(args) == 0
    assert check(json.loads(capsys.readouterr().out))


def test_describe_prints_a_table_grouped_basic_then_advanced(capsys):
    assert cli.main(["describe", "create_chat_completion"]) == 0
    out = capsys.readouterr().out
    assert (
        out.index("Basic Parameters") < out.index("Messages *") < out.index("Advanced Parameters")
    )
    assert "Temperature" in out and "0..2" in out


def test_check_validates_the_manifest(capsys):
    assert cli.main(["check"]) == 0
    assert "manifest is valid" in capsys.readouterr().err


def test_check_names_the_broken_file(capsys):
    bad = ROOT / "tests" / "fixtures" / "manifests" / "invalid" / "list_on_string.yaml"
    assert cli.main(["check", "--manifest", str(bad)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert "list_on_string.yaml" in doc["error"]["message"]


def test_docs_and_schema_are_fresh(capsys):
    assert cli.main(["docs", "--check"]) == 0
    assert cli.main(["schema", "--check"]) == 0


def test_options_for_the_model_field(capsys):
    with responses.RequestsMock() as mock:
        mock.get(
            "https://api.openai.com/v1/models",
            json={
                "object": "list",
                "data": [{"id": "gpt-4o", "object": "model", "created": 1, "owned_by": "system"}],
            },
        )
        code, doc, _ = main(["options", "create_chat_completion", "model"], capsys)
    assert code == 0 and doc == [{"value": "gpt-4o", "label": "gpt-4o"}]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([*ARGS, "--set", "novalue"], "--set takes NAME=VALUE"),
        ([*ARGS, "--set"], "expected one argument"),
        (["run"], "the following arguments are required: action"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_are_invalid_input_documents(capsys, args, fragment):
    code, doc, _ = main(args, capsys)
    assert code == 2 and fragment in doc["error"]["message"]


def test_subprocess_contract_stdout_is_one_json_document():
    env = {**os.environ, "OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}
    proc = subprocess.run(
        [sys.executable, "-m", "connector", *ARGS, "--set", "temperature=9"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["error"]["fields"][0]["name"] == "temperature"
    assert proc.stderr.startswith("error (invalid_input):")
    assert KEY not in proc.stdout + proc.stderr


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "chat-connector"
    proc = subprocess.run([str(script), "list"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "create_chat_completion" in proc.stdout


@pytest.mark.parametrize(
    ("command", "usage"),
    [
        ([str(Path(sys.executable).parent / "chat-connector")], "usage: chat-connector "),
        ([sys.executable, "-m", "connector"], "usage: python -m connector "),
    ],
)
def test_help_names_the_command_as_it_was_typed(command, usage):
    proc = subprocess.run(
        [*command, "--help"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert proc.returncode == 0 and proc.stdout.startswith(usage)


def test_dry_run_needs_no_api_key(capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    code, doc, err = main([*ARGS, "--dry-run"], capsys)
    assert code == 0 and err == ""
    assert "Authorization" not in doc["headers"]
    assert doc["body"]["messages"] == [{"role": "user", "content": "Hello!"}]


def test_a_real_run_still_needs_the_key(capsys, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    code, doc, _ = main(ARGS, capsys)
    assert code == 2 and doc["error"]["fields"][0]["name"] == "api_key"
    assert "OPENAI_PROVIDER=local" in doc["error"]["message"]  # the key-less way, named


def test_a_dry_run_prints_the_repairs_as_warnings_on_stderr(capsys):
    text = r'[{"role": "user", "content": "C:\Users said "hi""}]'
    code, doc, err = main([*ARGS, "--set", f"messages={text}", "--dry-run"], capsys)
    assert code == 0 and doc["body"]["messages"][0]["content"] == r'C:\Users said "hi"'
    assert err.splitlines() == [f"warning: Messages: {w['message']}" for w in doc["warnings"]]
    assert [w["column"] for w in doc["warnings"]] == [31, 45, 48]
    assert [w["kind"] for w in doc["warnings"]] == ["repaired"] * 3


def test_stderr_keeps_the_caret_line_of_broken_json(capsys):
    code, _, err = main([*ARGS, "--set", 'messages=[{"role": "user" "content": "Hi"}]'], capsys)
    assert code == 2
    assert err.splitlines()[:4] == [
        "error (invalid_input): The form has 1 problem: Messages: not valid JSON at line 1,"
        " column 18: Expecting ',' delimiter.",
        '    [{"role": "user" "content": "Hi"}]',
        "    " + " " * 17 + "^",  # under the second string
        '    Likely cause: a missing comma between two texts, or an unescaped quote (") in'
        " inserted text.",
    ]
    assert err.splitlines()[4].startswith("    Fix: in n8n, write {{ JSON.stringify(")


# -- more outcomes, the error object, warnings and --progress ------------------------------------

STREAMS = ROOT / "tests" / "fixtures" / "streams"
ERROR_KEYS = {"type", "message", "retryable", "status", "code", "param", "request_id", "attempts"}
SSE = {"content_type": "text/event-stream"}


def not_json_reply():
    """Return a reply whose content is not the JSON a json_object format asked for."""
    return {**REPLY, "choices": [{**REPLY["choices"][0], "message": {"content": "Sure! {"}}]}


@pytest.mark.parametrize(
    ("sets", "mocked", "code", "type_", "status"),
    [
        ([], {"body": requests.exceptions.ReadTimeout("slow")}, 4, "timeout", None),
        ([], {"body": requests.exceptions.ConnectionError("refused")}, 4,
         "connection", None),
        ([], {"json": api_error(408), "status": 408}, 4, "timeout", 408),
        ([], {"json": {"error": {"code": 402, "message": "No credits"}}, "status": 402}, 3,
         "quota_exceeded", 402),
        ([], {"status": 307, "headers": {"Location": "https://elsewhere.example/v1"}}, 3,
         "bad_request", 307),
        (["stream=true"], {"body": (STREAMS / "cut.sse").read_bytes(), **SSE}, 5,
         "invalid_response", 200),
        (["stream=true"], {"body": (STREAMS / "error_event.sse").read_bytes(), **SSE}, 5,
         "invalid_response", 200),
        (["response_format=json_object"], {"json": not_json_reply()}, 5, "invalid_response", 200),
    ],
)  # fmt: skip
def test_exit_code_per_failure_kind(capsys, sets, mocked, code, type_, status):
    with responses.RequestsMock() as mock:
        mock.post(URL, **mocked)
        args = [*ARGS]
        for item in sets:
            args += ["--set", item]
        exit_code, doc, err = main(args, capsys)
        assert len(mock.calls) == 1  # no retries were allowed; a redirect is not followed
    error = doc["error"]
    assert exit_code == code and error["type"] == type_ and error["status"] == status
    assert set(error) >= ERROR_KEYS
    assert error["attempts"] == 1
    assert error["retryable"] is (code == 4)
    assert err.startswith(f"error ({type_}):") and len(err.strip().splitlines()) == 1
    if "stream=true" in sets:
        assert error["partial"]["choices"][0]["message"]["content"]


@pytest.mark.parametrize(
    ("args", "keys"),
    [
        ([*ARGS, "--set", "temperature=hot"], ERROR_KEYS | {"fields"}),
        (["run", "no_such_action"], ERROR_KEYS | {"fields"}),
    ],
)
def test_the_error_object_always_has_every_field(capsys, args, keys):
    code, doc, _ = main(args, capsys)
    assert code == 2 and set(doc["error"]) == keys
    for entry in doc["error"]["fields"]:
        assert set(entry) >= {"name", "label", "message"}


@pytest.mark.parametrize(
    ("sets", "mocked", "code", "stderr"),
    [
        (["stream=true"], {"body": (STREAMS / "plain_text.sse").read_bytes(), **SSE}, 0,
         "Hello, wörld!\n" + NO_STREAM_USAGE),
        (["stream=true"], {"body": (STREAMS / "multiline_data.sse").read_bytes(), **SSE}, 0,
         "line one\nline two\n" + NO_STREAM_USAGE),
        (["stream=true"], {"body": (STREAMS / "usage_chunk.sse").read_bytes(), **SSE}, 0,
         "Four.\nwarning: Choice 0 was cut at the token limit (finish_reason: length);"
         " raise Max Completion Tokens for a complete reply.\n"),
        (["stream=true"], {"body": (STREAMS / "cut.sse").read_bytes(), **SSE}, 5,
         "The answer is\nerror (invalid_response): The streamed reply ended before [DONE] after"
         " 2 chunks; the answer is incomplete (what arrived is in `partial`).\n"),
        ([], {"json": REPLY}, 0,  # nothing streamed, nothing echoed, and it says so
         "warning: Tokens are echoed only for a streamed reply: set Stream (stream=true) to"
         " see them as they arrive. This reply comes whole.\n"),
    ],
)  # fmt: skip
def test_progress_echoes_the_tokens_to_stderr(capsys, sets, mocked, code, stderr):
    args = [*ARGS, "--progress"]
    for item in sets:
        args += ["--set", item]
    with responses.RequestsMock() as mock:
        mock.post(URL, **mocked)
        exit_code, doc, err = main(args, capsys)
    assert exit_code == code and err == stderr
    if code == 0:
        assert doc["choices"][0]["message"]["content"] in stderr or not sets


class ClosedStderr:
    """A stderr whose reader has gone: every write fails."""

    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


@pytest.mark.parametrize("stderr", [ClosedStderr(), None], ids=["broken-pipe", "closed-at-start"])
@pytest.mark.parametrize(
    ("sets", "mocked", "code"),
    [
        (["stream=true"], {"body": (STREAMS / "plain_text.sse").read_bytes(), **SSE}, 0),
        (["stream=true"], {"body": (STREAMS / "usage_chunk.sse").read_bytes(), **SSE}, 0),
        ([], {"json": api_error(401, "invalid_api_key"), "status": 401}, 3),
        (["temperature=hot"], None, 2),
        (["temperature=hot", "--dry-run"], None, 2),
    ],
)
def test_a_closed_stderr_changes_neither_stdout_nor_the_exit_code(
    capsys, monkeypatch, stderr, sets, mocked, code
):
    # None is what Python sets when the process starts with stderr closed (2>&-).
    monkeypatch.setattr(sys, "stderr", stderr)
    args = [*ARGS, "--progress"]
    for item in sets:
        args += [item] if item.startswith("--") else ["--set", item]
    with responses.RequestsMock() as mock:
        if mocked is not None:
            mock.post(URL, **mocked)
        exit_code = cli.main(args)
    doc = json.loads(capsys.readouterr().out)
    assert exit_code == code
    assert ("error" in doc) is (code != 0)
    if code == 0:
        assert doc["choices"][0]["message"]["content"] in ("Hello, wörld!", "Four.")


def test_a_reply_cut_at_the_token_limit_exits_0_with_a_warning(capsys):
    cut = {**REPLY, "choices": [{**REPLY["choices"][0], "finish_reason": "length"}]}
    with responses.RequestsMock() as mock:
        mock.post(URL, json=cut)
        code, doc, err = main(ARGS, capsys)
    assert code == 0 and doc["choices"][0]["finish_reason"] == "length"
    assert err.startswith("warning: Choice 0 was cut at the token limit")


def test_drop_unsupported_params_says_so_on_stderr(capsys, tmp_path):
    conn = tmp_path / "conn.yaml"
    conn.write_text("drop_unsupported_params: true\nmax_retries: 0\n")
    rejected = {"error": {"message": "Unsupported parameter: 'temperature'.", "param": "temperature",
                          "type": "invalid_request_error", "code": "unsupported_parameter"}}  # fmt: skip
    with responses.RequestsMock() as mock:
        mock.post(URL, json=rejected, status=400)
        mock.post(URL, json=REPLY)
        code, doc, err = main(
            [*ARGS, "--set", "model=o3", "--set", "temperature=0.2", "--connection", str(conn)],
            capsys,
        )
        sent = [json.loads(c.request.body) for c in mock.calls]
    assert code == 0 and doc["choices"][0]["message"]["content"] == "Hi"
    assert "temperature" in sent[0] and "temperature" not in sent[1]
    assert err == (
        "warning: The model 'o3' rejected Temperature (temperature); sent again without it"
        " (Drop Unsupported Parameters).\n"
    )


def test_input_from_stdin_and_a_yaml_connection(capsys, monkeypatch, tmp_path):
    import io

    conn = tmp_path / "conn.yaml"
    conn.write_text("base_url: https://llm.example.test/v1\norganization: org-9\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"model": "m1", "messages": "From stdin"}'))
    with responses.RequestsMock() as mock:
        mock.post("https://llm.example.test/v1/chat/completions", json=REPLY)
        code, _, _ = main(
            ["run", "create_chat_completion", "--input", "-", "--connection", str(conn)], capsys
        )
        request = mock.calls[0].request
    assert code == 0 and request.headers["OpenAI-Organization"] == "org-9"
    assert json.loads(request.body)["messages"] == [{"role": "user", "content": "From stdin"}]


def test_progress_into_a_closed_pipe_still_prints_the_reply(fault_server):
    """A real closed stderr (the reader went away): the reply still reaches stdout, exit 0."""
    scenario = fault_server.scenario("ok")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env |= {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": scenario.base_url, "OPENAI_MAX_RETRIES": "0"}
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "connector", *ARGS, "--set", "stream=true", "--progress"],
            stdout=subprocess.PIPE, stderr=write_end, text=True, env=env, cwd=ROOT, timeout=60,
        )  # fmt: skip
    finally:
        os.close(write_end)
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["choices"][0]["message"]["content"] == "echo: Hello!"
