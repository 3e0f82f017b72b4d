"""The runner: request sent, example-shaped output, parsed JSON, rejected parameters, options."""

import copy
import json
import logging
from pathlib import Path

import pytest
import responses
from conftest import key_paths

import connector
from connector import InvalidInput, InvalidResponse, RequestRejected
from connector.transport import session

URL = "https://api.openai.com/v1/chat/completions"
KEY = "sk-runner-canary-9f8e7d"
CONN = {"api_key": KEY, "max_retries": "0"}
FORM = {"model": "gpt-4o-mini", "messages": "Hello!"}
REPLY = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1901345026,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hi there"},
            "finish_reason": "stop",
        }
    ],
}


@pytest.fixture(autouse=True)
def public_dns(monkeypatch):
    """Resolve every name to a public address: unit tests make no DNS lookups."""
    monkeypatch.setattr(
        "connector.transport.policy.socket.getaddrinfo",
        lambda *a, **k: [(2, 1, 6, "", ("93.184.216.34", 443))],
    )


def completion(content="Hi there", **message):
    """Return an API reply with one choice carrying ``content`` and extra message keys."""
    reply = copy.deepcopy(REPLY)
    reply["choices"][0]["message"].update(content=content, **message)
    return reply


def run(form=None, reply=None, status=200, **kw):
    """Run create_chat_completion against a mocked API; return (output, sent body)."""
    with responses.RequestsMock() as mock:
        mock.post(URL, json=reply if reply is not None else REPLY, status=status, **kw)
        out = connector.run("create_chat_completion", {**FORM, **(form or {})}, CONN)
        return out, json.loads(mock.calls[0].request.body)


def test_sends_the_form_as_a_validated_body_with_the_key_as_bearer():
    with responses.RequestsMock() as mock:
        mock.post(URL, json=REPLY)
        connector.run("create_chat_completion", {**FORM, "temperature": "0.2", "stop": "END"}, CONN)
        request = mock.calls[0].request
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert json.loads(request.body) == {
        "messages": [{"role": "user", "content": "Hello!"}],
        "model": "gpt-4o-mini",
        "stop": "END",
        "temperature": 0.2,
    }


def test_keys_the_api_adds_pass_through_and_present_ones_are_kept():
    reply = completion(annotations=[{"type": "url_citation"}], audio=None)
    reply.update(
        service_tier="flex",
        usage={"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "extra": 1},
        moderation={"input": None},
    )
    out, _ = run(reply=reply)
    assert out["service_tier"] == "flex" and out["moderation"] == {"input": None}
    assert out["usage"]["extra"] == 1 and out["usage"]["total_tokens"] == 5
    assert out["choices"][0]["message"]["annotations"] == [{"type": "url_citation"}]
    assert "audio" in out["choices"][0]["message"]


def test_output_validates_against_the_manifest_output_schema():
    from jsonschema import Draft202012Validator

    out, _ = run()
    schema = connector.load_manifest().action("create_chat_completion").output.schema_
    assert not list(Draft202012Validator(schema).iter_errors(out))


@pytest.mark.parametrize(
    ("response_format", "content", "parsed"),
    [
        ("json_object", '{"city": "Paris"}', {"city": "Paris"}),
        (
            '{"type": "object", "properties": {"t": {"type": "number"}}, "required": ["t"]}',
            '{"t": 21.5}',
            {"t": 21.5},
        ),
        ("json_object", "[1, 2]", [1, 2]),
    ],
)
def test_json_replies_are_parsed(response_format, content, parsed):
    out, _ = run({"response_format": response_format}, completion(content))
    assert out["choices"][0]["message"]["parsed"] == parsed
    assert out["choices"][0]["message"]["content"] == content


def test_text_replies_have_no_parsed_key():
    out, _ = run({"response_format": "text"})
    assert "parsed" not in out["choices"][0]["message"]


def test_a_refusal_is_returned_with_parsed_null():
    out, _ = run(
        {"response_format": "json_object"}, completion(None, refusal="I can't help with that.")
    )
    message = out["choices"][0]["message"]
    assert message["parsed"] is None and message["refusal"] == "I can't help with that."


@pytest.mark.parametrize(
    ("response_format", "content", "finish", "fragment"),
    [
        ("json_object", "Sure! Here it is: {", "stop", "is not valid JSON"),
        ("json_object", '{"city": "Par', "length", "raise Max Completion Tokens"),
        (
            '{"type": "object", "properties": {"t": {"type": "number"}}, "required": ["t"]}',
            '{"t": "warm"}',
            "stop",
            "does not match the Response Format schema at t",
        ),
    ],
)
def test_json_that_is_not_json_fails_with_the_raw_content(
    response_format, content, finish, fragment
):
    reply = completion(content)
    reply["choices"][0]["finish_reason"] = finish
    with pytest.raises(InvalidResponse) as exc:
        run({"response_format": response_format}, reply)
    assert fragment in exc.value.message
    assert exc.value.body == content and exc.value.exit_code == 5


def test_function_tool_calls_carry_parsed_arguments():
    call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
    }
    out, _ = run(reply=completion(None, tool_calls=[call]))
    function = out["choices"][0]["message"]["tool_calls"][0]["function"]
    assert function["parsed_arguments"] == {"city": "Oslo"}
    assert function["arguments"] == '{"city": "Oslo"}'


def test_tool_arguments_that_are_not_json_fail_with_the_raw_arguments():
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"city": '}}
    with pytest.raises(InvalidResponse) as exc:
        run(reply=completion(None, tool_calls=[call]))
    assert exc.value.body == '{"city": '


def test_a_reply_cut_at_the_token_limit_succeeds_with_a_warning(caplog):
    reply = completion("Once upon a")
    reply["choices"][0]["finish_reason"] = "length"
    with caplog.at_level(logging.WARNING, logger="connector"):
        out, _ = run(reply=reply)
    assert out["choices"][0]["finish_reason"] == "length"
    assert "cut at the token limit" in caplog.text


def test_no_choices_is_an_invalid_response():
    with pytest.raises(InvalidResponse):
        run(reply={**REPLY, "choices": []})


UNSUPPORTED = {
    "error": {
        "message": "Unsupported parameter: 'temperature' is not supported with this model.",
        "type": "invalid_request_error",
        "param": "temperature",
        "code": "unsupported_parameter",
    }
}


def test_an_unsupported_parameter_names_the_field_the_model_and_the_fix():
    with pytest.raises(RequestRejected) as exc:
        run({"model": "o3", "temperature": "0.2"}, UNSUPPORTED, status=400)
    message = exc.value.message
    assert "The model 'o3' does not accept Temperature (temperature)" in message
    assert "'temperature' is not supported with this model" in message
    assert "clear the Temperature field" in message and "Drop Unsupported Parameters" in message
    assert exc.value.to_dict()["param"] == "temperature" and exc.value.exit_code == 3


def test_drop_unsupported_params_sends_once_more_without_it(caplog):
    with responses.RequestsMock() as mock, caplog.at_level(logging.WARNING, logger="connector"):
        mock.post(URL, json=UNSUPPORTED, status=400)
        mock.post(URL, json=REPLY)
        out = connector.run(
            "create_chat_completion",
            {**FORM, "model": "o3", "temperature": "0.2", "top_p": "0.5"},
            {**CONN, "drop_unsupported_params": "true"},
        )
        bodies = [json.loads(c.request.body) for c in mock.calls]
    assert out["choices"][0]["message"]["content"] == "Hi there"
    assert (
        "temperature" in bodies[0] and "temperature" not in bodies[1] and bodies[1]["top_p"] == 0.5
    )
    assert "rejected Temperature (temperature)" in caplog.text


def test_a_compatible_server_rejecting_max_tokens_drops_max_completion_tokens(caplog):
    rejected = {"error": {**UNSUPPORTED["error"], "param": "max_tokens"}}
    local_url = "http://127.0.0.1:8080/v1/chat/completions"
    conn = {"provider": "compatible", "base_url": "http://127.0.0.1:8080/v1"}
    with responses.RequestsMock() as mock, caplog.at_level(logging.WARNING, logger="connector"):
        mock.post(local_url, json=rejected, status=400)
        mock.post(local_url, json=REPLY)
        connector.run(
            "create_chat_completion",
            {**FORM, "max_completion_tokens": "5"},
            {**conn, "drop_unsupported_params": "true"},
        )
        bodies = [json.loads(c.request.body) for c in mock.calls]
    assert bodies[0]["max_tokens"] == 5 and "max_tokens" not in bodies[1]
    assert "rejected Max Completion Tokens (max_completion_tokens)" in caplog.text


def test_drop_unsupported_params_retries_only_once():
    with responses.RequestsMock() as mock:
        mock.post(URL, json=UNSUPPORTED, status=400)
        mock.post(
            URL,
            json={**UNSUPPORTED, "error": {**UNSUPPORTED["error"], "param": "top_p"}},
            status=400,
        )
        with pytest.raises(RequestRejected) as exc:
            connector.run(
                "create_chat_completion",
                {**FORM, "temperature": "0.2", "top_p": "0.5"},
                {**CONN, "drop_unsupported_params": "yes"},
            )
        assert len(mock.calls) == 2
    assert exc.value.attempts == 2


@pytest.mark.parametrize(
    ("connection", "fragment"),
    [
        ({}, "API Key is required for provider 'openai'"),
        ({"api_key": KEY, "timeout": "soon"}, "Timeout (seconds): expected a number"),
        ({"api_key": KEY, "provider": "bedrock"}, "'bedrock' is not allowed"),
        ({"api_key": KEY, "max_retries": "11"}, "must be at most 10"),
    ],
)
def test_bad_connections_are_invalid_input_and_nothing_is_sent(connection, fragment):
    with responses.RequestsMock() as mock, pytest.raises(InvalidInput) as exc:
        connector.run("create_chat_completion", FORM, connection)
    assert fragment in exc.value.message and not mock.calls


def test_connection_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", "https://example.test/v1/")
    monkeypatch.setenv("OPENAI_ORG_ID", "org-1")
    monkeypatch.setenv("OPENAI_PROJECT_ID", "proj-1")
    monkeypatch.setenv("OPENAI_MAX_RETRIES", "0")
    with responses.RequestsMock() as mock:
        mock.post("https://example.test/v1/chat/completions", json=REPLY)
        connector.run("create_chat_completion", FORM)
        headers = mock.calls[0].request.headers
    assert headers["OpenAI-Organization"] == "org-1" and headers["OpenAI-Project"] == "proj-1"


@pytest.mark.parametrize(
    ("connection", "url"),
    [
        ({"provider": "local"}, "http://127.0.0.1:0/v1/chat/completions"),
        ({"provider": "local", "base_url": "http://127.0.0.1:8080/v1"}, "http://127.0.0.1:8080"),
        ({"provider": "compatible", "base_url": "http://localhost:11434/v1"}, "http://localhost"),
        ({"api_key": KEY}, URL),
    ],
)
def test_dry_run_url_follows_the_provider(connection, url):
    request = connector.prepare("create_chat_completion", FORM, connection)
    assert request["url"].startswith(url)


def test_a_local_connection_without_base_url_uses_the_embedded_server(monkeypatch):
    class Server:
        base_url = "http://127.0.0.1:5999/v1"

        def crash_error(self, cause):
            return None  # alive

    monkeypatch.setattr("connector.transport.local.shared_server", lambda: Server())
    monkeypatch.setenv("OPENAI_PROVIDER", "local")
    with responses.RequestsMock() as mock:
        mock.post("http://127.0.0.1:5999/v1/chat/completions", json=REPLY)
        out = connector.run("create_chat_completion", FORM)
    assert out["choices"][0]["message"]["content"] == "Hi there"


def test_errors_never_carry_the_key():
    echo = {
        "error": {
            "message": f"Incorrect API key provided: {KEY}.",
            "type": "invalid_request_error",
            "param": None,
            "code": "invalid_api_key",
        }
    }
    with pytest.raises(RequestRejected) as exc:
        run(reply=echo, status=401)
    assert KEY not in json.dumps(exc.value.to_dict()) and KEY not in str(exc.value)
    assert exc.value.type == "authentication"


def test_prepare_shows_the_request_without_the_key():
    request = connector.prepare("create_chat_completion", {**FORM, "max_tokens": "5"}, CONN)
    assert KEY not in json.dumps(request)
    assert request["method"] == "POST" and request["url"] == URL
    assert request["body"]["max_completion_tokens"] == 5


MODELS = {
    "object": "list",
    "data": [
        {
            "id": "text-embedding-3-small",
            "object": "model",
            "created": 1705948997,
            "owned_by": "system",
        },
        {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
        {"id": "o3", "object": "model", "created": 1744225308, "owned_by": "system"},
        {"id": "ft:gpt-4o-mini:acme", "object": "model", "created": 1730000000, "owned_by": "acme"},
        {"id": "whisper-1", "object": "model"},
    ],
}


def test_list_models_returns_the_api_list_with_every_key_path():
    with responses.RequestsMock() as mock:
        mock.get("https://api.openai.com/v1/models", json=MODELS)
        out = connector.run("list_models", {}, CONN)
    assert [m["id"] for m in out["data"]][:2] == ["text-embedding-3-small", "gpt-4o-mini"]
    assert out["data"][4]["owned_by"] is None and out["data"][4]["created"] is None


def test_model_options_list_chat_models_first():
    with responses.RequestsMock() as mock:
        mock.get("https://api.openai.com/v1/models", json=MODELS)
        options = connector.options("create_chat_completion", "model", CONN)
    assert [o["value"] for o in options] == [
        "o3",
        "ft:gpt-4o-mini:acme",
        "gpt-4o-mini",
        "text-embedding-3-small",
        "whisper-1",
    ]
    assert options[1]["label"] == "ft:gpt-4o-mini:acme (acme)"


def test_options_for_a_field_without_options_is_invalid_input():
    with pytest.raises(InvalidInput):
        connector.options("create_chat_completion", "temperature", CONN)


def test_unknown_action_is_invalid_input():
    with pytest.raises(InvalidInput) as exc:
        connector.run("delete_everything", {}, CONN)
    assert "Known actions: create_chat_completion, list_models" in exc.value.message


# -- every key path, streamed or not, from any provider ------------------------------------------

STREAMS = Path(__file__).parent / "fixtures" / "streams"


EXAMPLE_PATHS = key_paths(connector.load_manifest().action("create_chat_completion").output.example)
SPARSE = {  # what Ollama or llama.cpp may send: no refusal, annotations, tier, fingerprint, details
    "id": "chatcmpl-9",
    "object": "chat.completion",
    "created": 1,
    "model": "llama3",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi"}}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}
COMPATIBLE = {"provider": "compatible", "base_url": "http://localhost:11434/v1", "max_retries": "0"}


@pytest.mark.parametrize(
    ("connection", "url", "form", "reply"),
    [
        (CONN, URL, {}, {"json": REPLY}),
        (CONN, URL, {}, {"json": {"choices": [{"message": {"content": "x"}}]}}),
        (COMPATIBLE, "http://localhost:11434/v1/chat/completions", {}, {"json": SPARSE}),
        (CONN, URL, {"stream": "true"}, {"body": (STREAMS / "plain_text.sse").read_bytes(),
                                         "content_type": "text/event-stream"}),
        (COMPATIBLE, "http://localhost:11434/v1/chat/completions", {"stream": "yes"},
         {"body": (STREAMS / "comments.sse").read_bytes(), "content_type": "text/event-stream"}),
    ],
)  # fmt: skip
def test_every_example_key_path_is_present(connection, url, form, reply):
    with responses.RequestsMock() as mock:
        mock.post(url, **reply)
        out = connector.run("create_chat_completion", {**FORM, **form}, connection)
    # Under a key that is null (usage a server did not report: the manifest declares null), none.
    missing = {p for p in EXAMPLE_PATHS - key_paths(out) if out[p.split(".")[0]] is not None}
    assert not missing


@pytest.mark.parametrize("name", ["plain_text", "usage_chunk", "tool_calls", "refusal_logprobs"])
def test_a_streamed_reply_gives_the_output_of_the_same_reply_unstreamed(name):
    """The aggregated stream, run through the runner, equals the same completion sent whole."""
    whole = json.loads((STREAMS / f"{name}.json").read_text())["result"]
    with responses.RequestsMock() as mock:
        mock.post(
            URL, body=(STREAMS / f"{name}.sse").read_bytes(), content_type="text/event-stream"
        )
        mock.post(URL, json=whole)
        streamed = connector.run("create_chat_completion", {**FORM, "stream": "true"}, CONN)
        plain = connector.run("create_chat_completion", FORM, CONN)
        sent = json.loads(mock.calls[0].request.body)
    assert streamed == plain
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}


# -- the progress echo ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc",
    [
        BrokenPipeError(32, "Broken pipe"),
        ValueError("I/O operation on closed file."),
        RuntimeError(f"echo failed for {KEY}"),
    ],
)
def test_a_failing_progress_echo_is_turned_off_and_the_reply_kept(caplog, exc):
    calls: list[str] = []

    def on_token(text):
        calls.append(text)
        raise exc

    with (
        responses.RequestsMock() as mock,
        caplog.at_level(logging.WARNING, logger="connector"),
    ):
        mock.post(
            URL, body=(STREAMS / "plain_text.sse").read_bytes(), content_type="text/event-stream"
        )
        out = connector.run(
            "create_chat_completion", {**FORM, "stream": "true"}, CONN, on_token=on_token
        )
    assert out["choices"][0]["message"]["content"] == "Hello, wörld!"
    assert calls == ["Hello"]  # called once, then off: three tokens arrived
    warnings = [r.getMessage() for r in caplog.records if "usage" not in r.getMessage()]
    assert len(warnings) == 1 and "progress echo stopped" in warnings[0]
    assert type(exc).__name__ in warnings[0] and KEY not in caplog.text


def test_a_working_progress_echo_sees_every_token():
    tokens: list[str] = []
    with responses.RequestsMock() as mock:
        mock.post(
            URL, body=(STREAMS / "plain_text.sse").read_bytes(), content_type="text/event-stream"
        )
        connector.run(
            "create_chat_completion", {**FORM, "stream": "1"}, CONN, on_token=tokens.append
        )
    assert tokens == ["Hello", ", wörld", "!"]


# -- rejected parameters, broken replies, the connection ----------------------------------------


@pytest.mark.parametrize(
    ("code", "param", "form", "words"),
    [
        ("unsupported_parameter", "temperature", {"temperature": "0.2"},
         ["does not accept Temperature (temperature)", "clear the Temperature field"]),
        ("unsupported_value", "reasoning_effort", {"reasoning_effort": "minimal"},
         ["does not accept this value of Reasoning Effort (reasoning_effort)",
          "clear the Reasoning Effort field or pick a supported value"]),
        ("unsupported_parameter", "messages[0].role", {},
         ["does not accept Messages (messages)"]),
        ("unsupported_parameter", "some_new_field", {}, ["does not accept some_new_field"]),
    ],
)  # fmt: skip
def test_rejected_parameters_name_the_field_the_model_and_the_fix(code, param, form, words):
    body = {"error": {"message": "Not supported.", "type": "invalid_request_error",
                      "param": param, "code": code}}  # fmt: skip
    with pytest.raises(RequestRejected) as exc:
        run({"model": "o3", **form}, body, status=400)
    message = exc.value.message
    assert message.startswith("The model 'o3' ")
    for word in words:
        assert word in message
    assert "Drop Unsupported Parameters" in message and "Not supported." in message
    assert (exc.value.code, exc.value.param) == (code, param)


@pytest.mark.parametrize("field", ["model", "messages"])
def test_drop_unsupported_params_never_drops_model_or_messages(field):
    body = {"error": {"message": "No.", "type": "invalid_request_error", "param": field,
                      "code": "unsupported_value"}}  # fmt: skip
    with responses.RequestsMock() as mock:
        mock.post(URL, json=body, status=400)
        with pytest.raises(RequestRejected):
            connector.run("create_chat_completion", FORM, {**CONN, "drop_unsupported_params": "on"})
        assert len(mock.calls) == 1


def test_a_long_reply_that_is_not_the_json_asked_for_keeps_all_of_its_content():
    content = '{"story": "' + "x" * 10_000  # cut at the token limit: far past the body excerpt
    reply = completion(content)
    reply["choices"][0]["finish_reason"] = "length"
    with pytest.raises(InvalidResponse) as exc:
        run({"response_format": "json_object"}, reply)
    error = exc.value.to_dict()
    assert error["type"] == "invalid_response" and len(error["body"]) < len(content)
    assert error["partial"]["choices"][0]["message"]["content"] == content


@pytest.mark.parametrize(
    "choices",
    [["not a choice"], [{"index": 0, "message": "Hi"}], [[{"index": 0}]]],
)
def test_choices_that_are_not_objects_are_an_invalid_response(choices):
    with pytest.raises(InvalidResponse) as exc:
        run(reply={**REPLY, "choices": choices})
    assert exc.value.exit_code == 5


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("OPENAI_API_KEY", KEY, "api_key", KEY),
        ("OPENAI_BASE_URL", "https://example.test/v1/", "base_url", "https://example.test/v1"),
        ("OPENAI_ORG_ID", "org-1", "organization", "org-1"),
        ("OPENAI_PROJECT_ID", "proj-1", "project", "proj-1"),
        ("OPENAI_TIMEOUT", "1200", "timeout", 1200.0),
        ("OPENAI_MAX_RETRIES", "5", "max_retries", 5),
        ("OPENAI_PROVIDER", "Azure", "provider", "azure"),
    ],
)
def test_each_environment_variable_sets_its_connection_field(
    monkeypatch, variable, value, field, expected
):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv(variable, value)
    assert getattr(connector.engine.runner.resolve_connection(), field) == expected


def test_runs_with_the_same_connection_share_one_session(monkeypatch, close_transports):
    made = []
    real = session.new_session
    monkeypatch.setattr(session, "new_session", lambda: made.append(1) or real())
    with responses.RequestsMock() as mock:
        mock.post(URL, json=REPLY)
        for _ in range(3):
            connector.run("create_chat_completion", FORM, dict(CONN))
        connector.run("create_chat_completion", FORM, {**CONN, "timeout": "30"})
        assert len(mock.calls) == 4
    close_transports()
    assert len(made) == 2  # one session for the three identical connections, one for the other


# -- the key never reaches the output or the progress echo, even when the server echoes it --------


@pytest.mark.parametrize(
    "tokens",
    [
        [f"my key is {KEY}."],
        ["my key is ", KEY[:3], KEY[3:10], KEY[10:], "."],
        ["my key is ", *KEY, "."],  # one character a token
        ["my key is sk-", "sk-", KEY[3:], "."],  # a false start right before the key
        ["my key is ", KEY[:-1], "!", " done."],  # almost the key: shown as it is
    ],
)
def test_the_progress_echo_never_shows_the_key(tokens):
    from connector.engine.echo import Echo

    seen: list[str] = []
    echo = Echo(seen.append, [KEY])
    for token in tokens:
        echo(token)
    echo.flush()
    shown = "".join(seen)
    assert KEY not in shown
    assert shown == "".join(tokens).replace(KEY, "***")


@pytest.mark.parametrize("stream", [False, True])
def test_a_key_echoed_in_a_reply_is_replaced_in_the_output(stream, caplog):
    reply = completion(f"Your key is {KEY}")
    with responses.RequestsMock() as mock:
        if stream:
            text = f"Your key is {KEY}"
            events = [
                {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                 "choices": [{"index": 0, "delta": {"content": part}, "finish_reason": None}]}
                for part in (text[:15], text[15:])
            ]  # fmt: skip
            body = "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"
            mock.post(URL, body=body, content_type="text/event-stream")
        else:
            mock.post(URL, json=reply)
        seen: list[str] = []
        form = {**FORM, "stream": "true"} if stream else FORM
        out = connector.run("create_chat_completion", form, CONN, on_token=seen.append)
    assert out["choices"][0]["message"]["content"] == "Your key is ***"
    assert KEY not in json.dumps(out) and KEY not in "".join(seen)
    assert "replaced by ***" in caplog.text


def test_short_placeholder_keys_are_not_replaced_in_replies():
    with responses.RequestsMock() as mock:
        mock.post("http://127.0.0.1:11434/v1/chat/completions", json=completion("I run on ollama"))
        out = connector.run(
            "create_chat_completion",
            FORM,
            {
                "provider": "compatible",
                "base_url": "http://127.0.0.1:11434/v1",
                "api_key": "ollama",
            },
        )
    assert out["choices"][0]["message"]["content"] == "I run on ollama"


@pytest.mark.parametrize(
    ("form", "names"),
    [
        (FORM, ["api_key"]),
        ({**FORM, "temperature": "hot"}, ["api_key", "temperature"]),
        ({"model": "", "messages": "Hi", "n": "1.5"}, ["api_key", "model", "n"]),
    ],
)
def test_a_missing_key_is_reported_with_the_form_problems(monkeypatch, form, names):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with responses.RequestsMock() as mock, pytest.raises(InvalidInput) as exc:
        connector.run("create_chat_completion", form, {})
    assert not mock.calls
    assert [f["name"] for f in exc.value.fields] == names
    assert exc.value.message.startswith("API Key is required for provider 'openai'")


def _cut(reply: dict) -> dict:
    reply["choices"][0]["finish_reason"] = "length"
    return reply


# (form, connection, replies in turn, the warnings heard as (kind, name, label)).
WARNINGS = [
    (
        {"messages": r'[{"role": "user", "content": "He said "hi" at C:\Users\x"}]'},
        {},
        [REPLY],
        [
            ("repaired", "messages", "Messages"),
            ("repaired", "messages", "Messages"),
            ("repaired", "messages", "Messages"),
        ],
    ),
    (
        {},
        {},
        [_cut(completion("Once upon a"))],
        [("truncated", "max_completion_tokens", "Max Completion Tokens")],
    ),
    (
        {"model": "o3", "temperature": "0.2"},
        {"drop_unsupported_params": "true"},
        [(UNSUPPORTED, 400), REPLY],
        [("dropped", "temperature", "Temperature")],
    ),
    ({"max_tokens": "5"}, {}, [REPLY], [("deprecated", "max_tokens", "Max Tokens")]),
    ({}, {}, [REPLY], []),
]


@pytest.mark.parametrize(("form", "conn", "replies", "heard"), WARNINGS)
def test_on_warning_hears_each_warning_and_the_output_is_unchanged(form, conn, replies, heard):
    told = []
    with responses.RequestsMock() as mock:
        for reply in replies:
            body, status = reply if isinstance(reply, tuple) else (reply, 200)
            mock.post(URL, json=body, status=status)
        args = ("create_chat_completion", {**FORM, **form}, {**CONN, **conn})
        out = connector.run(*args, on_warning=told.append)
    told = [w for w in told if w["kind"] != "no_usage"]  # REPLY has no usage: its own test
    assert [(w["kind"], w.get("name"), w.get("label")) for w in told] == heard
    assert all(w["message"] and not w["message"].startswith("Messages:") for w in told)
    assert set(out) >= {"id", "choices", "model"} and "warnings" not in out


def test_without_on_warning_the_warnings_go_to_the_log(caplog):
    with caplog.at_level(logging.WARNING, logger="connector"):
        run(reply=_cut(completion("Once upon a")))
    assert "Max Completion Tokens: Choice 0 was cut" not in caplog.text
    assert "Choice 0 was cut at the token limit" in caplog.text


def test_a_failing_on_warning_costs_nothing(caplog):
    def broken(warning):
        raise RuntimeError("listener bug")

    with responses.RequestsMock() as mock, caplog.at_level(logging.WARNING, logger="connector"):
        mock.post(URL, json=_cut(completion("Once")))
        out = connector.run("create_chat_completion", FORM, CONN, on_warning=broken)
    assert out["choices"][0]["message"]["content"] == "Once"
    assert "on_warning failed (RuntimeError)" in caplog.text


def test_a_warning_never_holds_the_key():
    told = []
    form = {**FORM, "messages": f'[{{"role": "user", "content": "key "{KEY}" here"}}]'}
    with responses.RequestsMock() as mock:
        mock.post(URL, json=REPLY)
        connector.run("create_chat_completion", form, CONN, on_warning=told.append)
    assert told and KEY not in json.dumps(told)


def test_the_warning_kinds_are_the_docs_table():
    from connector.engine.notices import KINDS

    page = Path(__file__).resolve().parent.parent / "docs" / "output.md"
    section = page.read_text(encoding="utf-8").split("## Warnings\n")[1]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| `")]
    assert {kind.strip("|` "): when.rstrip(" |") for kind, when in rows} == KINDS
