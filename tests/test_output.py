"""Output shaping: each key the reply lacks is filled with the empty value of its official type."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import connector
from connector.engine import output
from connector.engine.output import Template, allow_example_nulls, shape, template
from connector.engine.plan import output_template
from connector.manifest.paths import CARD

CHAT = connector.load_manifest().action("create_chat_completion")
OFFICIAL = json.loads((CARD / CHAT.response_schema).read_text(encoding="utf-8"))


def filled(node: Template) -> dict[str, Any]:
    """Return every key path of a template with its fill value, as ``a.b[].c``: value."""
    out: dict[str, Any] = {}
    for key, (sub, fill) in node.items():
        value = (
            shape(sub, {}) if fill is output.FILLED else [] if fill is output.EMPTY_LIST else fill
        )
        out[key] = value
        if type(sub) is dict:
            out.update({f"{key}.{k}": v for k, v in filled(sub).items()})
        elif isinstance(sub, list):
            out.update({f"{key}[].{k}": v for k, v in filled(sub[0]).items()})
    return out


USAGE_ZEROS = {
    "prompt_tokens": 0,
    "completion_tokens": 0,
    "total_tokens": 0,
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}

# Every key path of the example: what a reply without it gets, and that value's JSON type.
FILLED = [
    ("id", "", str),
    ("object", "chat.completion", str),  # the official enum's only value
    ("created", 0, int),
    ("model", "", str),
    ("choices", [], list),
    ("choices[].index", 0, int),
    ("choices[].message", {"role": "assistant", "content": None, "refusal": None,
                           "annotations": []}, dict),
    ("choices[].message.role", "assistant", str),
    ("choices[].message.content", None, type(None)),  # the official schema allows null
    ("choices[].message.refusal", None, type(None)),  # allowed, and the example shows null
    ("choices[].message.annotations", [], list),
    ("choices[].logprobs", None, type(None)),
    ("choices[].finish_reason", "stop", str),  # the first of the official values
    ("usage", None, type(None)),  # the manifest declares null: the server reported none
    ("usage.prompt_tokens", 0, int),
    ("usage.completion_tokens", 0, int),
    ("usage.total_tokens", 0, int),
    ("usage.prompt_tokens_details", USAGE_ZEROS["prompt_tokens_details"], dict),
    ("usage.prompt_tokens_details.cached_tokens", 0, int),
    ("usage.prompt_tokens_details.audio_tokens", 0, int),
    ("usage.completion_tokens_details", USAGE_ZEROS["completion_tokens_details"], dict),
    ("usage.completion_tokens_details.reasoning_tokens", 0, int),
    ("usage.completion_tokens_details.audio_tokens", 0, int),
    ("usage.completion_tokens_details.accepted_prediction_tokens", 0, int),
    ("usage.completion_tokens_details.rejected_prediction_tokens", 0, int),
    ("service_tier", None, type(None)),  # the official ServiceTier is nullable
    ("system_fingerprint", None, type(None)),  # not nullable officially, but null in the example
]  # fmt: skip


@pytest.mark.parametrize(("path", "value", "kind"), FILLED, ids=[p for p, _, _ in FILLED])
def test_each_filled_key_has_its_official_type(path, value, kind):
    fills = filled(output_template(CHAT))
    assert fills[path] == value
    assert type(fills[path]) is kind


def test_the_table_lists_every_key_path_of_the_example():
    assert set(filled(output_template(CHAT))) == {p for p, _, _ in FILLED}


def _at(value, path):
    for part in path.split("."):
        value = value[part[:-2]][0] if part.endswith("[]") else value[part]
    return value


# A reply with one choice: each key the table lists is filled there (or, for "choices", not).
MINIMAL = {"choices": [{"message": {"content": "Hi"}}]}


@pytest.mark.parametrize(
    ("path", "value", "kind"),
    [row for row in FILLED if row[0] not in ("choices", "choices[].message",
                                              "choices[].message.content")],
    ids=[p for p, _, _ in FILLED if p not in ("choices", "choices[].message",
                                                "choices[].message.content")],
)  # fmt: skip
@pytest.mark.parametrize("how", ["absent", "null"])
def test_an_absent_or_null_key_gets_its_fill(path, value, kind, how):
    reply = json.loads(json.dumps(MINIMAL))
    if path.startswith("usage."):  # the counts of a usage the server reported, partly
        reply["usage"] = {}
    if how == "null":  # a compatible server's explicit null counts as absent unless null is allowed
        *parents, key = path.split(".")
        node = reply
        for part in parents:
            node = node[part[:-2]][0] if part.endswith("[]") else node.setdefault(part, {})
        node[key] = None
    out = shape(output_template(CHAT), reply)
    assert _at(out, path) == value and type(_at(out, path)) is kind


@pytest.mark.parametrize(
    ("example", "schema", "fill"),
    [
        (None, {"type": "string"}, None),  # the example shows null
        ("x", {"type": ["string", "null"]}, None),
        ("x", {"anyOf": [{"type": "string"}, {"type": "null"}]}, None),
        ("x", {"type": "string", "enum": ["a", None]}, None),
        ("x", None, None),  # no official type known
        ([], {"type": "array"}, []),
        (1, {"type": "integer", "default": 0}, 0),
        (1, {"type": "integer", "default": 7}, 7),
        (1.5, {"type": "number"}, 0),
        (True, {"type": "boolean"}, False),
        ("x", {"type": "string"}, ""),
        ("b", {"type": "string", "enum": ["a", "b"]}, "a"),
        ("b", {"type": "string", "enum": ["a", "b"], "default": "b"}, "b"),
        ({"a": 1}, {"type": "object", "properties": {"a": {"type": "integer"}}}, {"a": 0}),
    ],
)
def test_fill_values_follow_the_schema_and_the_example(example, schema, fill):
    official = {"type": "object", "properties": {"k": schema}} if schema is not None else None
    out = shape(template({"k": example}, official), {})
    assert out == {"k": fill} and type(out["k"]) is type(fill)  # 0 is not False


def test_a_ref_is_followed():
    schema = {"properties": {"u": {"$ref": "#/$defs/U"}}, "$defs": {"U": {"type": "object",
              "properties": {"n": {"type": "integer", "default": 0}}}}}  # fmt: skip
    assert shape(template({"u": {"n": 5}}, schema), {}) == {"u": {"n": 0}}


def test_filled_lists_are_fresh_each_run():
    node = output_template(CHAT)
    first = shape(node, {**MINIMAL, "usage": {}})
    first["choices"][0]["message"]["annotations"].append("x")
    first["usage"]["prompt_tokens"] = 5
    second = shape(node, {**MINIMAL, "usage": {}})
    assert second["choices"][0]["message"]["annotations"] == []
    assert second["usage"]["prompt_tokens"] == 0


def test_values_of_another_type_and_extra_keys_pass_through():
    reply = {"choices": "oops", "usage": {"prompt_tokens": 3, "cost": 0.1}, "x_extra": 1}
    out = shape(output_template(CHAT), reply)
    assert out["choices"] == "oops" and out["x_extra"] == 1
    assert out["usage"]["prompt_tokens"] == 3 and out["usage"]["cost"] == 0.1


def test_the_example_fits_the_official_schema_with_its_own_nulls():
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(allow_example_nulls(OFFICIAL, CHAT.output.example, DECLARED))
    assert not list(validator.iter_errors(CHAT.output.example))
    # Without the allowance, the example's null system_fingerprint breaks the official type.
    assert list(Draft202012Validator(OFFICIAL).iter_errors(CHAT.output.example))


def test_an_unofficial_null_is_only_allowed_where_the_example_shows_it():
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(allow_example_nulls(OFFICIAL, CHAT.output.example, DECLARED))
    out = shape(output_template(CHAT), MINIMAL)
    assert not list(validator.iter_errors(out))
    out["choices"][0]["message"]["annotations"] = None
    assert list(validator.iter_errors(out))


DECLARED = CHAT.output.schema_  # the manifest's output schema: usage may be null


def test_usage_is_null_only_where_the_manifest_declares_it():
    from jsonschema import Draft202012Validator

    out = shape(output_template(CHAT), MINIMAL)
    assert out["usage"] is None
    assert not list(
        Draft202012Validator(
            allow_example_nulls(OFFICIAL, CHAT.output.example, DECLARED)
        ).iter_errors(out)
    )
    assert list(
        Draft202012Validator(allow_example_nulls(OFFICIAL, CHAT.output.example)).iter_errors(out)
    )
    out["usage"] = {"prompt_tokens": None}
    assert list(
        Draft202012Validator(
            allow_example_nulls(OFFICIAL, CHAT.output.example, DECLARED)
        ).iter_errors(out)
    )


FIXTURES = Path(__file__).parent / "fixtures"
REPLIES = sorted((FIXTURES / "replies").glob("*.json"))
# OpenAI-shaped streams that end in a reply (the others test broken streams).
STREAMS = [
    FIXTURES / "streams" / f"{name}.sse"
    for name in ("plain_text", "usage_chunk", "tool_calls", "refusal_logprobs",
                 "azure_prompt_filter", "comments", "multiline_data")
]  # fmt: skip
BASE_URLS = {"openai": "https://api.openai.com/v1", "compatible": "http://127.0.0.1:9/v1",
             "local": "http://127.0.0.1:9/v1"}  # fmt: skip


def _case(path: Path) -> tuple[dict, dict, bytes, str]:
    """Return (form, connection, raw body, content type) of a reply fixture."""
    if path.suffix == ".sse":
        form, provider = {"stream": "true"}, "openai"
        raw, content_type = path.read_bytes(), "text/event-stream"
    else:
        fixture = json.loads(path.read_text(encoding="utf-8"))
        form, provider, content_type = fixture["form"], fixture["provider"], fixture["content_type"]
        raw = fixture["body"] if "body" in fixture else json.dumps(fixture["reply"])
        raw = raw.encode()
    conn = {"provider": provider, "base_url": BASE_URLS[provider], "api_key": "sk-output-test-1",
            "max_retries": "0"}  # fmt: skip
    return {"model": "gpt-4o-mini", "messages": "Hello!", **form}, conn, raw, content_type


def _run(path: Path) -> dict:
    import responses

    form, conn, raw, content_type = _case(path)
    with responses.RequestsMock() as mock:
        mock.post(conn["base_url"] + "/chat/completions", body=raw, content_type=content_type)
        return connector.run("create_chat_completion", form, conn)


@pytest.fixture(autouse=True)
def public_dns(monkeypatch):
    """Resolve every name to a public address: unit tests make no DNS lookups."""
    monkeypatch.setattr(
        "connector.transport.policy.socket.getaddrinfo",
        lambda *a, **k: [(2, 1, 6, "", ("93.184.216.34", 443))],
    )


EVERY_REPLY = pytest.mark.parametrize(
    "path", [*REPLIES, *STREAMS], ids=[p.name for p in [*REPLIES, *STREAMS]]
)


def test_there_are_recorded_and_documented_replies():
    names = {p.stem for p in REPLIES}
    for needed in ("local_plain", "local_json", "local_stop", "local_length", "local_stream",
                   "openai_tool_calls", "openai_refusal", "openai_logprobs",
                   "openai_several_choices", "openai_annotations", "compatible_minimal"):  # fmt: skip
        assert needed in names


@EVERY_REPLY
def test_every_output_validates_against_the_official_response_schema(path):
    from jsonschema import Draft202012Validator

    out = _run(path)
    validator = Draft202012Validator(allow_example_nulls(OFFICIAL, CHAT.output.example, DECLARED))
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(out)
    ]
    assert not errors


@EVERY_REPLY
def test_every_output_parses_with_the_official_sdk(path):
    from openai.types.chat import ChatCompletion

    out = _run(path)
    completion = ChatCompletion.model_validate(out)
    assert completion.choices and (completion.usage is None) == (out["usage"] is None)
    assert completion.choices[0].message.annotations is not None


@EVERY_REPLY
def test_every_output_fits_the_manifest_output_schema(path):
    from jsonschema import Draft202012Validator

    assert not list(Draft202012Validator(CHAT.output.schema_).iter_errors(_run(path)))


def test_the_seed_example_passes_through_unchanged():
    import responses

    with responses.RequestsMock() as mock:
        mock.post(BASE_URLS["openai"] + "/chat/completions", json=CHAT.output.example)
        out = connector.run(
            "create_chat_completion", {"model": "gpt-4o-mini", "messages": "Hello!"},
            {"api_key": "sk-output-test-1"},
        )  # fmt: skip
    assert out == CHAT.output.example


@pytest.mark.parametrize(
    ("name", "warned"),
    [
        ("compatible_no_usage.json", "The server reported no token usage; usage is null."),
        ("local_stream.json", "The server reported no token usage for this stream, although the"
                              " connector asked for it (stream_options.include_usage)"),
        ("local_plain.json", None),
    ],
)  # fmt: skip
def test_no_usage_gives_null_usage_and_a_warning(caplog, name, warned):
    import logging

    with caplog.at_level(logging.WARNING, logger="connector"):
        out = _run(FIXTURES / "replies" / name)
    said = [r.getMessage() for r in caplog.records if "usage" in r.getMessage()]
    if warned is None:
        assert not said and out["usage"]["total_tokens"] > 0
    else:
        assert said and said[0].startswith(warned)
        assert out["usage"] is None  # unknown, not 0


def test_a_structured_output_refusal_is_a_success_with_parsed_null(caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="connector"):
        out = _run(FIXTURES / "replies" / "openai_refusal.json")
    message = out["choices"][0]["message"]
    assert message["refusal"] == "I'm sorry, I can't assist with that request."
    assert message["parsed"] is None and message["content"] is None
    assert any("the model refused" in r.getMessage() for r in caplog.records)


def test_a_refusal_beside_text_content_is_not_parsed_as_json():
    import responses

    reply = {"choices": [{"message": {"content": "Sorry.", "refusal": "Sorry."}}]}
    with responses.RequestsMock() as mock:
        mock.post(BASE_URLS["openai"] + "/chat/completions", json=reply)
        out = connector.run(
            "create_chat_completion",
            {"model": "gpt-4o-mini", "messages": "Hi", "response_format": "json_object"},
            {"api_key": "sk-output-test-1"},
        )
    assert out["choices"][0]["message"]["parsed"] is None
