"""Form input rules: text (or native values) to typed values, and every problem reported."""

import pytest

from connector import InvalidInput, make_connection
from connector.engine import plan
from connector.engine.body import build_body
from connector.engine.loader import load_manifest
from connector.engine.notices import described

ACTION = load_manifest().action("create_chat_completion")
CONN = make_connection(api_key="sk-test")
BASE = {"model": "gpt-4o-mini", "messages": "Hello!"}


def body(**form):
    """Return the request body for BASE plus ``form``."""
    return build_body(ACTION, {**BASE, **form}, CONN)


def errors(**form):
    """Return the field errors of BASE plus ``form`` as {name: message}."""
    with pytest.raises(InvalidInput) as exc:
        build_body(ACTION, {**BASE, **form}, CONN)
    return {e["name"]: described(e) for e in exc.value.fields}


@pytest.mark.parametrize(
    ("name", "text", "sent"),
    [
        ("temperature", " 0.2 ", 0.2),
        ("temperature", "1e-1", 0.1),
        ("temperature", "2", 2.0),
        ("temperature", 0.7, 0.7),
        ("top_p", ".5", 0.5),
        ("frequency_penalty", "-2", -2.0),
        ("max_completion_tokens", "1024", 1024),
        ("max_completion_tokens", " 2.0 ", 2),
        ("max_completion_tokens", "1e3", 1000),
        ("max_completion_tokens", 64, 64),
        ("seed", "9223372036854775807", 9223372036854775807),
        ("seed", "-5", -5),
        ("n", "3", 3),
        ("logprobs", "true", True),
        ("logprobs", "FALSE", False),
        ("logprobs", "Yes", True),
        ("logprobs", "no", False),
        ("logprobs", "1", True),
        ("logprobs", "0", False),
        ("logprobs", " TRUE ", True),
        ("logprobs", "NO", False),
        ("store", "yEs", True),
        ("store", "False", False),
        ("logprobs", True, True),
        ("store", " on ", True),
        ("reasoning_effort", "High", "high"),
        ("reasoning_effort", " low ", "low"),
        ("service_tier", "FLEX", "flex"),
        ("verbosity", "Medium", "medium"),
        ("user", "  user-1 ", "user-1"),
        ("safety_identifier", "abc", "abc"),
        ("model", " gpt-4o ", "gpt-4o"),
    ],
)
def test_scalars_from_text(name, text, sent):
    value = body(**{name: text})[name]
    assert value == sent and type(value) is type(sent)


@pytest.mark.parametrize(
    ("text", "sent"),
    [
        ("END", "END"),
        ("END,STOP", ["END", "STOP"]),
        (" END , STOP ,", ["END", "STOP"]),
        ('"END","STOP"', ["END", "STOP"]),
        ("'END', 'STOP'", ["END", "STOP"]),
        ('"END"', "END"),
        ('["\\n\\n", "###"]', ["\n\n", "###"]),
        ('["a,b"]', ["a,b"]),
        ("\\n\\n,###", ["\n\n", "###"]),
        ("a\\,b,c", ["a,b", "c"]),
        ("\\t", "\t"),
        (["x", "y"], ["x", "y"]),
        ("a,b,c,d", ["a", "b", "c", "d"]),
    ],
)
def test_stop(text, sent):
    assert body(stop=text)["stop"] == sent


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a,b,c,d,e", "at most 4 items, got 5. Enter up to 4 items, separated by commas."),
        ('["a", "b", "c", "d", "e"]', "at most 4 items, got 5. Enter up to 4 items."),
        (["a", "b", "c", "d", "e"], "at most 4 items, got 5. Enter up to 4 items."),
        ('["a", 1]', "Stop[1]: expected text"),
        ('["a", ', "not valid JSON"),
        ("[]", "needs at least 1 item, got 0"),
    ],
)
def test_stop_errors(text, fragment):
    assert fragment in errors(stop=text)["stop"]


@pytest.mark.parametrize("blank", ["", "   ", "\n\t", None])
def test_blank_optional_values_are_not_sent(blank):
    form = {
        name: blank
        for name in ("temperature", "stop", "user", "tools", "logprobs", "reasoning_effort")
    }
    assert body(**form) == {
        "messages": [{"role": "user", "content": "Hello!"}],
        "model": "gpt-4o-mini",
    }


@pytest.mark.parametrize(
    ("name", "text", "fragment"),
    [
        ("max_completion_tokens", "1.5", "expected a whole number, got '1.5'"),
        ("max_completion_tokens", "ten", "expected a whole number"),
        ("max_completion_tokens", "0", "must be at least 1"),
        ("max_completion_tokens", True, "expected a whole number"),
        ("temperature", "hot", "expected a number, got 'hot'"),
        ("temperature", "2.5", "must be at most 2. Enter a number from 0 to 2."),
        ("temperature", "nan", "finite"),
        ("temperature", "inf", "finite"),
        ("top_p", "-0.1", "must be at least 0"),
        ("n", "0", "must be at least 1"),
        ("n", "129", "must be at most 128"),
        ("top_logprobs", "21", "must be at most 20"),
        ("logprobs", "maybe", "expected true or false"),
        ("reasoning_effort", "extreme", "'extreme' is not allowed; use one of: none, minimal"),
        ("reasoning_effort", "hihg", "Did you mean 'high'?"),
        ("service_tier", "cheap", "use one of: auto, default, flex, scale, priority, fast"),
        ("safety_identifier", "x" * 65, "at most 64 characters"),
        ("metadata", "not json", "expected JSON"),
        ("metadata", "[1]", "expected object, got array"),
        ("tools", '{"type": "function"}', "expected array, got object"),
        ("logit_bias", '{"50256": -100', "not valid JSON"),
        ("user", {"a": 1}, "expected text"),
        ("seed", "9" * 5000, "no field takes a number longer than 100 digits"),  # not a 500
    ],
)
def test_invalid_values_name_the_field_and_the_fix(name, text, fragment):
    message = errors(**{name: text})[name]
    label = ACTION.param(name).label
    assert message.startswith(label + ":"), message
    assert fragment in message, message


def test_all_problems_are_reported_at_once():
    found = errors(
        model="",
        temperature="3",
        n="1.5",
        stop="a,b,c,d,e",
        messages='[{"role": "bot", "content": "x"}, {"role": "tool", "content": "x"}]',
    )
    assert set(found) == {"model", "temperature", "n", "stop", "messages"}
    with pytest.raises(InvalidInput) as exc:
        body(
            model="", messages='[{"role": "bot", "content": "x"}, {"role": "tool", "content": "x"}]'
        )
    messages = " ".join(described(e) for e in exc.value.fields if e["name"] == "messages")
    assert "Messages[0].role" in messages and "Messages[1].tool_call_id" in messages


def test_every_messages_problem_is_listed_with_its_path():
    with pytest.raises(InvalidInput) as exc:
        body(messages='[{"role": "bot", "content": "x"}, {"role": "tool", "content": "x"}]')
    paths = [e.get("path") for e in exc.value.fields]
    assert paths == ["Messages[0].role", "Messages[1].tool_call_id"]


@pytest.mark.parametrize(
    ("text", "sent"),
    [
        ("Hello!", [{"role": "user", "content": "Hello!"}]),
        ("Use {name} here", [{"role": "user", "content": "Use {name} here"}]),
        ({"role": "user", "content": "Hi"}, [{"role": "user", "content": "Hi"}]),
        ("  Summarize: a, b  ", [{"role": "user", "content": "Summarize: a, b"}]),
        ('{"role": "user", "content": "Hi"}', [{"role": "user", "content": "Hi"}]),
        (
            '[{"role": "developer", "content": "You are a helpful assistant."}, {"role": "user", "content": "Hello!"}]',
            [
                {"role": "developer", "content": "You are a helpful assistant."},
                {"role": "user", "content": "Hello!"},
            ],
        ),
        ('[{"role": "User", "content": "Hi"}]', [{"role": "user", "content": "Hi"}]),
        (
            [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
            [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        ),
        (
            '[{"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, {"role": "tool", "tool_call_id": "c1", "content": "42"}]',
            [
                {
                    "role": "assistant",
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "f", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "42"},
            ],
        ),
    ],
)
def test_messages(text, sent):
    assert body(messages=text)["messages"] == sent


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            '[{"role": "user", "content": "Hi"}',
            "not valid JSON at line 1, column 35: Expecting ',' delimiter",
        ),
        ('[\n  {"role": "user",\n   "content": "Hi",}\n]', "line 3, column 20"),
        ("[]", "needs at least 1 item, got 0"),
        ('["Hello"]', "Messages[0]: expected a message object"),
        ('[{"content": "Hi"}]', "Messages[0].role: is missing"),
        ('[{"role": "bot", "content": "Hi"}]', "Messages[0].role: must be one of"),
        ('[{"role": "tool", "content": "42"}]', "Messages[0].tool_call_id: is required"),
        ('[{"role": "user"}]', "Messages[0].content"),
        ('[{"role": "user", "content": 5}]', "Messages[0].content"),
        ('[{"role": "user", "content": [{"type": "video"}]}]', "Messages[0].content[0]"),
        ('{"role": "user", "content": }', "not valid JSON at line 1, column 29: Expecting value"),
        ('{"role": "user"', "line 1, column 16"),
    ],
)
def test_messages_errors(text, fragment):
    assert fragment in errors(messages=text)["messages"]


def test_json_error_shows_an_excerpt_with_a_pointer():
    message = errors(messages='[{"role": "user", "content": "Hi"]')["messages"]
    assert '"content": "Hi"]' in message and "^" in message


@pytest.mark.parametrize(
    ("text", "sent"),
    [
        ("text", {"type": "text"}),
        ("json_object", {"type": "json_object"}),
        ("JSON", {"type": "json_object"}),
        ('{"type": "json_object"}', {"type": "json_object"}),
        (
            '{"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}',
            {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        ),
        (
            '{"title": "Weather report", "type": "object", "properties": {"t": {"type": "number"}}, "required": ["t"]}',
            {
                "type": "json_schema",
                "json_schema": {
                    "name": "Weather_report",
                    "schema": {
                        "title": "Weather report",
                        "type": "object",
                        "properties": {"t": {"type": "number"}},
                        "required": ["t"],
                        "additionalProperties": False,
                    },
                    "strict": True,
                },
            },
        ),
        (
            # not every property required: strict would be rejected by the API, so it is off
            '{"type": "object", "properties": {"t": {"type": "number"}}}',
            {
                "type": "json_schema",
                "json_schema": {
                    "name": "response",
                    "schema": {"type": "object", "properties": {"t": {"type": "number"}}},
                    "strict": False,
                },
            },
        ),
    ],
)
def test_response_format(text, sent):
    assert body(response_format=text)["response_format"] == sent


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("yaml", "use text, json_object, a JSON Schema object"),
        ('{"type": "xml"}', 'type "xml" is not a response format'),
        (
            '{"type": "json_schema", "json_schema": {"schema": {}}}',
            "Response Format.json_schema.name",
        ),
    ],
)
def test_response_format_errors(text, fragment):
    assert fragment in errors(response_format=text)["response_format"]


@pytest.mark.parametrize(
    ("text", "sent"),
    [
        ("auto", "auto"),
        ("Required", "required"),
        ("none", "none"),
        ("get_weather", {"type": "function", "function": {"name": "get_weather"}}),
        (
            '{"type": "function", "function": {"name": "f"}}',
            {"type": "function", "function": {"name": "f"}},
        ),
    ],
)
def test_tool_choice(text, sent):
    assert body(tool_choice=text)["tool_choice"] == sent


def test_tool_choice_rejects_names_the_api_cannot_take():
    assert "a tool's name" in errors(tool_choice="get weather!")["tool_choice"]


def test_max_tokens_is_sent_as_max_completion_tokens():
    sent = body(max_tokens="100")
    assert sent["max_completion_tokens"] == 100 and "max_tokens" not in sent


def test_max_tokens_and_max_completion_tokens_must_agree():
    assert body(max_tokens="100", max_completion_tokens="100")["max_completion_tokens"] == 100
    assert (
        "give only Max Completion Tokens"
        in errors(max_tokens="100", max_completion_tokens="50")["max_tokens"]
    )


@pytest.mark.parametrize(
    "extra",
    [
        {"web_search_options": {"search_context_size": "low"}},
        {"audio": {"voice": "alloy", "format": "mp3"}, "modalities": ["text", "audio"]},
        {"prediction": {"type": "content", "content": "draft"}},
        {"prompt_cache_options": {"ttl": "30m"}},
        {"moderation": {"model": "omni-moderation-latest"}},
        {"functions": [{"name": "f"}], "function_call": "auto"},
        {"a_future_field": 1},
    ],
)
def test_additional_parameters_are_merged(extra):
    import json

    sent = body(additional_parameters=json.dumps(extra))
    for key, value in extra.items():
        assert sent[key] == value


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ('{"temperature": 0.5}', "'temperature' has its own field; use Temperature instead"),
        ('{"max_tokens": 5}', "'max_tokens' has its own field; use Max Tokens instead"),
        (
            '{"web_search_options": {"search_context_size": "huge"}}',
            "Additional Parameters.web_search_options.search_context_size",
        ),
        ('{"audio": {"voice": "alloy"}}', "Additional Parameters.audio.format"),
        ('{"stream_options": {"include_usage": true}}', "only allowed with Stream"),
        ("[1, 2]", "expected object, got array"),
    ],
)
def test_additional_parameters_errors(extra, fragment):
    assert fragment in errors(additional_parameters=extra)["additional_parameters"]


@pytest.mark.parametrize(
    ("key", "param"),
    [
        ("Max Completion Tokens", "max_completion_tokens"),
        ("max-completion-tokens", "max_completion_tokens"),
        ("TEMPERATURE", "temperature"),
        ("Reasoning Effort", "reasoning_effort"),
    ],
)
def test_form_keys_may_be_labels(key, param):
    assert plan.form(ACTION).lookup(key).name == param


def test_unknown_field_suggests_the_closest():
    assert "Did you mean 'temperature'?" in errors(temprature="1")["temprature"]


@pytest.mark.parametrize(
    ("form", "fragment"),
    [
        ({"messages": "x" * 2001}, "over the limit of 2,000. Shorten it, or raise"),
        (
            {"metadata": "[" * 10 + "]" * 10},
            "deeper than 8 levels (connection setting max_json_depth)",
        ),
    ],
)
def test_limits(form, fragment):
    conn = make_connection(api_key="k", max_input_chars=2000, max_json_depth=8)
    with pytest.raises(InvalidInput) as exc:
        build_body(ACTION, {**BASE, **form}, conn)
    assert fragment in exc.value.message


def test_deep_json_does_not_crash():
    with pytest.raises(InvalidInput) as exc:
        body(metadata="[" * 100_000 + "]" * 100_000)
    assert exc.value.fields[0]["name"] == "metadata"


TOOLS = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]


@pytest.mark.parametrize(
    ("name", "native", "sent"),
    [
        ("tools", TOOLS, TOOLS),
        ("tool_choice", {"type": "function", "function": {"name": "f"}},
         {"type": "function", "function": {"name": "f"}}),
        ("response_format", {"type": "json_object"}, {"type": "json_object"}),
        ("response_format", {"type": "object", "properties": {"a": {"type": "string"}},
                             "required": ["a"]},
         {"type": "json_schema", "json_schema": {"name": "response", "strict": True, "schema": {
             "type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"],
             "additionalProperties": False}}}),
        ("metadata", {"team": "a"}, {"team": "a"}),
        ("logit_bias", {"50256": -100}, {"50256": -100}),
        ("stream", True, True),
        ("n", 2, 2),
        ("temperature", 0, 0),
    ],
)  # fmt: skip
def test_native_values_are_taken_as_they_come(name, native, sent):
    form = {"tools": TOOLS} if name == "tool_choice" else {}
    assert body(**form, **{name: native})[name] == sent


def test_native_additional_parameters_are_merged():
    sent = body(additional_parameters={"prediction": {"type": "content", "content": "x"}})
    assert sent["prediction"] == {"type": "content", "content": "x"}


# ---- hints that fix -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "name", "hint"),
    [
        ({"temperature": "0,7"}, "temperature", "use a dot as the decimal mark (0.7)"),
        ({"top_p": ",5"}, "top_p", "use a dot as the decimal mark (.5)"),
        ({"messages": "[{\u201crole\u201d: \u201cuser\u201d}]"}, "messages", "curly quotes"),
        ({"tools": "[{\u2018type\u2019: 1}]"}, "tools", "JSON needs straight double quotes"),
        ({"user": "x" * 1_000_001}, "user", "Max Input Characters (max_input_chars;"),
        ({"user": "x" * 1_000_001}, "user", "OPENAI_MAX_INPUT_CHARS in the environment"),
    ],
)
def test_hints_say_the_fix(form, name, hint):
    assert hint in errors(**form)[name]


def test_a_field_message_leaves_the_label_to_its_own_key():
    with pytest.raises(InvalidInput) as exc:
        build_body(ACTION, {**BASE, "temperature": "hot", "messages": '[{"content": "Hi"}]'}, CONN)
    fields = {f["name"]: f for f in exc.value.fields}
    assert fields["temperature"]["message"] == "expected a number, got 'hot'"
    assert fields["temperature"]["label"] == "Temperature"
    assert fields["messages"]["path"] == "Messages[0].role"
    assert not fields["messages"]["message"].startswith("Messages")
    assert "Temperature: expected a number, got 'hot'" in exc.value.message
    assert "Messages[0].role: is missing" in exc.value.message


def test_max_input_chars_comes_from_the_environment(monkeypatch):
    from connector.engine.runner import resolve_connection

    monkeypatch.setenv("OPENAI_MAX_INPUT_CHARS", "5000")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert resolve_connection().max_input_chars == 5000


def test_every_environment_variable_is_on_the_connection_page():
    from pathlib import Path

    from connector.transport.connection import ENV_VARS

    page = (Path(__file__).resolve().parent.parent / "docs" / "connection.md").read_text()
    for name, var in ENV_VARS.items():
        assert f"(`{name}`)" in page and f"Environment: `{var}`." in page
