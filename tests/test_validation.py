"""Tests for request validation against the generated official schema."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from connector.engine import validation
from connector.engine.validation import (
    REQUEST_SCHEMA_PATH,
    Problem,
    official_enum,
    property_schema,
    validate_request,
)
from connector.errors import InternalError

REPO = Path(__file__).resolve().parent.parent
RESPONSE_SCHEMA_PATH = REPO / "schemas" / "create_chat_completion.response.schema.json"
SEED_MESSAGES = [
    {"role": "developer", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello!"},
]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
        "strict": True,
    },
}
GRAMMAR_TOOL = {
    "type": "custom",
    "custom": {
        "name": "sql",
        "format": {"type": "grammar", "grammar": {"definition": "start: /.+/", "syntax": "lark"}},
    },
}
JSON_SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
        "strict": True,
    },
}


def body(**extra):
    """Return the seed's two-message body with ``extra`` fields."""
    return {"model": "gpt-4o", "messages": SEED_MESSAGES, **extra}


def chat(*messages, **extra):
    """Return a body with the given messages."""
    return {"model": "gpt-4o", "messages": list(messages), **extra}


def user(content):
    return {"role": "user", "content": content}


def load_generator():
    """Import scripts/gen_request_schema.py (not a package) without reading ../shared."""
    path = REPO / "scripts" / "gen_request_schema.py"
    spec = importlib.util.spec_from_file_location("gen_request_schema", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


VALID = [
    ("seed example", body()),
    (
        "tools",
        body(tools=[WEATHER_TOOL, GRAMMAR_TOOL, {"type": "custom", "custom": {"name": "c"}}]),
    ),
    ("tool_choice none", body(tools=[WEATHER_TOOL], tool_choice="none")),
    ("tool_choice required", body(tools=[WEATHER_TOOL], tool_choice="required")),
    (
        "tool_choice function",
        body(tools=[WEATHER_TOOL], tool_choice={"type": "function", "function": {"name": "f"}}),
    ),
    ("tool_choice custom", body(tool_choice={"type": "custom", "custom": {"name": "sql"}})),
    (
        "tool_choice allowed_tools",
        body(
            tool_choice={
                "type": "allowed_tools",
                "allowed_tools": {
                    "mode": "auto",
                    "tools": [{"type": "function", "function": {"name": "get_weather"}}],
                },
            }
        ),
    ),
    ("response_format json_schema", body(response_format=JSON_SCHEMA_FORMAT)),
    ("response_format json_object", body(response_format={"type": "json_object"})),
    ("response_format text", body(response_format={"type": "text"})),
    ("tools and response_format", body(tools=[WEATHER_TOOL], response_format=JSON_SCHEMA_FORMAT)),
    ("stop string", body(stop="END")),
    ("stop list", body(stop=["\n\n", "###", "END", "STOP"])),
    ("stop null", body(stop=None)),
    ("audio", body(modalities=["text", "audio"], audio={"voice": "alloy", "format": "wav"})),
    ("audio custom voice", body(audio={"voice": {"id": "voice_1234"}, "format": "pcm16"})),
    ("audio unlisted voice", body(audio={"voice": "fable", "format": "mp3"})),
    (
        "web_search_options",
        body(
            web_search_options={
                "user_location": {
                    "type": "approximate",
                    "approximate": {"country": "US", "city": "San Francisco"},
                },
                "search_context_size": "low",
            }
        ),
    ),
    ("prediction text", body(prediction={"type": "content", "content": "old file"})),
    (
        "prediction parts",
        body(prediction={"type": "content", "content": [{"type": "text", "text": "old"}]}),
    ),
    ("metadata", body(metadata={"k" * 64: "v" * 512, "team": "ops"})),
    ("logit_bias", body(logit_bias={"50256": -100, "198": 100})),
    (
        "sampling and limits",
        body(
            temperature=0.2,
            top_p=1,
            n=128,
            logprobs=True,
            top_logprobs=20,
            max_completion_tokens=50,
            frequency_penalty=-2,
            presence_penalty=2,
            seed=-(2**63),
            reasoning_effort="xhigh",
            service_tier="flex",
            verbosity="low",
            store=True,
            stream=True,
            stream_options={"include_usage": True},
            safety_identifier="a" * 64,
            prompt_cache_key="k",
            prompt_cache_options={"ttl": "30m", "mode": "explicit"},
            user="user-1234",
            parallel_tool_calls=False,
        ),
    ),
    ("nullable fields set to null", body(temperature=None, metadata=None, service_tier=None)),
    ("unknown top-level field", body(brand_new_param={"anything": 1})),
    ("any model name", {"model": "my-local-model", "messages": SEED_MESSAGES}),
    (
        "user content parts",
        chat(
            user(
                [
                    {"type": "text", "text": "What is this?"},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
                    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
                    {"type": "file", "file": {"file_id": "file-1"}},
                ]
            )
        ),
    ),
    (
        "tool call round trip",
        chat(
            user("Weather in Paris?"),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
            tools=[WEATHER_TOOL],
        ),
    ),
    (
        "system, named and refusal parts",
        chat(
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}], "name": "ops"},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]},
            {"role": "function", "name": "f", "content": None},
        ),
    ),
]


@pytest.mark.parametrize("body", [case[1] for case in VALID], ids=[case[0] for case in VALID])
def test_valid_bodies_have_no_problems(body):
    assert validate_request(body) == []


INVALID = [
    ("messages empty", chat(), ("messages",), "must not be empty"),
    ("model missing", {"messages": SEED_MESSAGES}, ("model",), "is required"),
    (
        "bad role",
        chat(user("hi"), {"role": "bot", "content": "x"}),
        ("messages", 1, "role"),
        "must be one of developer, system, user, assistant, tool, function",
    ),
    ("role missing", chat({"content": "x"}), ("messages", 0, "role"), "is required (one of"),
    ("message not an object", chat("hello"), ("messages", 0), "must be an object"),
    (
        "tool message without tool_call_id",
        chat(user("hi"), {"role": "tool", "content": "r"}),
        ("messages", 1, "tool_call_id"),
        "is required for a tool message",
    ),
    (
        "user message without content",
        chat({"role": "user"}),
        ("messages", 0, "content"),
        "is required for a user message",
    ),
    (
        "content part with unknown type",
        chat(user([{"type": "text", "text": "a"}, {"type": "video", "url": "x"}])),
        ("messages", 0, "content", 1, "type"),
        "must be one of text, image_url, input_audio, file",
    ),
    (
        "text part without text",
        chat(user([{"type": "text"}])),
        ("messages", 0, "content", 0, "text"),
        "is required for a text content part",
    ),
    (
        "image part in a system message",
        chat({"role": "system", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}),
        ("messages", 0, "content", 0, "type"),
        'must be "text"',
    ),
    (
        "content of the wrong type",
        chat(user(42)),
        ("messages", 0, "content"),
        "must be a string or an array (got an integer)",
    ),
    ("temperature 3", body(temperature=3), ("temperature",), "between 0 and 2 (got 3)"),
    ("n 0", body(n=0), ("n",), "between 1 and 128 (got 0)"),
    ("n boolean", body(n=True), ("n",), "must be an integer (got a boolean)"),
    ("top_logprobs 21", body(top_logprobs=21), ("top_logprobs",), "between 0 and 20 (got 21)"),
    ("stop with 5 items", body(stop=list("abcde")), ("stop",), "at most 4 items (got 5)"),
    ("stop number", body(stop=5), ("stop",), "must be a string or an array"),
    (
        "metadata value too long",
        body(metadata={"note": "v" * 513}),
        ("metadata", "note"),
        "at most 512 characters (got 513)",
    ),
    ("metadata key too long", body(metadata={"k" * 65: "v"}), ("metadata",), "at most 64"),
    (
        "metadata too many pairs",
        body(metadata={str(i): "v" for i in range(17)}),
        ("metadata",),
        "at most 16 entries",
    ),
    (
        "response_format json_schema without name",
        body(response_format={"type": "json_schema", "json_schema": {"schema": {}}}),
        ("response_format", "json_schema", "name"),
        "is required",
    ),
    (
        "response_format json_schema without json_schema",
        body(response_format={"type": "json_schema"}),
        ("response_format", "json_schema"),
        'is required when type is "json_schema"',
    ),
    (
        "response_format unknown type",
        body(response_format={"type": "xml"}),
        ("response_format", "type"),
        "must be one of text, json_schema, json_object",
    ),
    (
        "reasoning_effort extreme",
        body(reasoning_effort="extreme"),
        ("reasoning_effort",),
        'none, minimal, low, medium, high, xhigh, max (got "extreme")',
    ),
    (
        "function name with a space",
        body(tools=[{"type": "function", "function": {"name": "get weather"}}]),
        ("tools", 0, "function", "name"),
        "only letters, digits, underscores and dashes",
    ),
    (
        "custom tool without custom",
        body(tools=[{"type": "custom"}]),
        ("tools", 0, "custom"),
        "is required for a custom tool",
    ),
    (
        "tool with unknown type",
        body(tools=[{"type": "x"}]),
        ("tools", 0, "type"),
        "function, custom",
    ),
    (
        "tool_choice unknown mode",
        body(tool_choice="maybe"),
        ("tool_choice",),
        "none, auto, required",
    ),
    (
        "tool_choice function without name",
        body(tool_choice={"type": "function", "function": {}}),
        ("tool_choice", "function", "name"),
        "is required",
    ),
    (
        "grammar tool with extra key",
        body(tools=[{**GRAMMAR_TOOL, "custom": {"name": "g", "format": {"type": "text", "x": 1}}}]),
        ("tools", 0, "custom", "format", "x"),
        "is not allowed here",
    ),
    (
        "logit_bias over 100",
        body(logit_bias={"1": 101}),
        ("logit_bias", "1"),
        "between -100 and 100",
    ),
    (
        "logit_bias word key",
        body(logit_bias={"hi": 1}),
        ("logit_bias",),
        'key "hi" must be a token',
    ),
    (
        "audio format",
        body(audio={"voice": "ash", "format": "ogg"}),
        ("audio", "format"),
        "wav, aac",
    ),
    ("audio without voice", body(audio={"format": "wav"}), ("audio", "voice"), "is required"),
    ("seed beyond int64", body(seed=2**63), ("seed",), "between -9223372036854775808"),
    ("safety_identifier too long", body(safety_identifier="a" * 65), ("safety_identifier",), "64"),
    (
        "prediction wrong type",
        body(prediction={"type": "x", "content": "c"}),
        ("prediction", "type"),
        '"content"',
    ),
    ("model not a string", body(model=4), ("model",), "must be a string (got an integer)"),
]


@pytest.mark.parametrize(
    ("body", "path", "fragment"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_invalid_bodies_name_path_and_reason(body, path, fragment):
    problems = validate_request(body)
    matching = [p for p in problems if p.path == path]
    assert matching, problems
    assert any(fragment in p.message for p in matching), problems


def test_all_problems_are_reported_at_once():
    bad = chat(
        {"role": "tool", "content": "r"},
        user([{"type": "video"}]),
        temperature=3,
        n=0,
        stop=list("abcde"),
    )
    paths = {p.path for p in validate_request(bad)}
    assert paths == {
        ("messages", 0, "tool_call_id"),
        ("messages", 1, "content", 0, "type"),
        ("temperature",),
        ("n",),
        ("stop",),
    }


def test_a_wrong_tag_hides_the_other_problems_of_that_object():
    problems = validate_request(body(prediction={"type": "x"}))
    assert [p.path for p in problems] == [("prediction", "type")]


@pytest.mark.parametrize("bad", [[], "text", None, 3])
def test_a_body_that_is_not_an_object_is_one_problem(bad):
    [problem] = validate_request(bad)
    assert problem.path == ()
    assert problem.message.startswith("the request body must be an object (got ")


@pytest.mark.parametrize(
    ("path", "text"),
    [
        (("messages", 1, "tool_call_id"), "messages[1].tool_call_id"),
        (("temperature",), "temperature"),
        (("messages", 0, "content", 2, "image_url", "url"), "messages[0].content[2].image_url.url"),
        ((), ""),
    ],
)
def test_problem_location_reads_like_a_path(path, text):
    assert Problem(path, "m").location == text


def test_a_broken_schema_raises_internal_error_not_jsonschema(monkeypatch):
    broken = {"properties": {"model": {"$ref": "#/$defs/Missing"}}, "$defs": {}}
    monkeypatch.setattr(validation, "_checker", lambda *schema: validation._Checker(broken))
    with pytest.raises(InternalError):
        validate_request({"model": "x"})


def test_the_request_schema_is_valid_draft_2020_12():
    schema = json.loads(REQUEST_SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["required"] == ["model", "messages"]
    assert "additionalProperties" not in schema  # new API fields must pass


def test_the_response_schema_is_valid_and_accepts_its_own_example():
    schema = json.loads(RESPONSE_SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    for example in schema["examples"]:
        assert list(validator.iter_errors(example)) == []


@pytest.mark.parametrize(
    "path", [REQUEST_SCHEMA_PATH, RESPONSE_SCHEMA_PATH], ids=["request", "response"]
)
def test_no_one_of_can_match_a_value_twice(path):
    schema = json.loads(path.read_text(encoding="utf-8"))
    load_generator().check_disjoint_one_ofs(schema)  # raises when two branches overlap


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("reasoning_effort", ["none", "minimal", "low", "medium", "high", "xhigh", "max"]),
        ("service_tier", ["auto", "default", "flex", "scale", "priority", "fast"]),
        ("verbosity", ["low", "medium", "high"]),
        ("prompt_cache_retention", ["in_memory", "24h"]),
        ("model", None),
        ("stop", None),
        ("modalities", None),
        ("temperature", None),
        ("not_a_parameter", None),
    ],
)
def test_official_enum(name, values):
    assert official_enum(name) == values


def test_request_properties_cover_both_seeds():
    names = set(json.loads(REQUEST_SCHEMA_PATH.read_text(encoding="utf-8"))["properties"])
    seed_params = {
        "messages", "model", "max_completion_tokens", "reasoning_effort", "stop", "temperature",
        "user", "top_p", "frequency_penalty", "presence_penalty", "seed", "n", "logprobs",
        "top_logprobs", "tools", "tool_choice", "parallel_tool_calls", "response_format",
        "stream", "store", "metadata", "service_tier", "safety_identifier", "prompt_cache_key",
        "verbosity", "logit_bias", "max_tokens", "web_search_options", "audio", "prediction",
        "modalities",
    }  # fmt: skip
    assert seed_params <= names


def test_property_schema_is_self_contained():
    schema = property_schema("stop")
    assert "$ref" not in json.dumps(schema)
    assert property_schema("top_logprobs")["maximum"] == 20
    assert property_schema("max_tokens")["deprecated"] is True
    assert property_schema("nope") is None
    schema["description"] = "changed"  # a copy: the cached schema is untouched
    assert property_schema("stop")["description"] != "changed"


# The generator's conversion rules, on small OpenAPI snippets (the reference is not read).
CONVERSIONS = [
    ("ref rewritten", {"$ref": "#/components/schemas/X"}, {"$ref": "#/$defs/X"}),
    ("nullable type", {"type": "integer", "nullable": True}, {"type": ["integer", "null"]}),
    (
        "nullable enum",
        {"type": "string", "enum": ["a"], "nullable": True},
        {"type": ["string", "null"], "enum": ["a", None]},
    ),
    (
        "nullable oneOf goes through anyOf",
        {"description": "d", "nullable": True, "oneOf": [{"type": "string"}, {"type": "array"}]},
        {
            "description": "d",
            "anyOf": [{"oneOf": [{"type": "string"}, {"type": "array"}]}, {"type": "null"}],
        },
    ),
    (
        "anyOf null folded",
        {"anyOf": [{"type": "number", "maximum": 2}, {"type": "null"}]},
        {"type": ["number", "null"], "maximum": 2},
    ),
    (
        "anyOf null with ref kept",
        {"anyOf": [{"$ref": "#/components/schemas/X"}, {"type": "null"}]},
        {"anyOf": [{"$ref": "#/$defs/X"}, {"type": "null"}]},
    ),
    (
        "discriminator and extensions dropped, example kept",
        {
            "oneOf": [{"type": "string"}],
            "discriminator": {"propertyName": "t"},
            "x-a": 1,
            "example": 3,
        },
        {"oneOf": [{"type": "string"}], "examples": [3]},
    ),
    (
        "single-ref oneOf unwrapped",
        {"description": "d", "oneOf": [{"$ref": "#/components/schemas/X"}]},
        {"description": "d", "$ref": "#/$defs/X"},
    ),
    (
        "description unwrapped, relative links made absolute",
        {"description": "See the\n[guide](/docs/guides/x).\n\nSecond\nparagraph.\n"},
        {
            "description": "See the [guide](https://platform.openai.com/docs/guides/x).\n\nSecond paragraph."
        },
    ),
]


@pytest.mark.parametrize(
    ("source", "expected"), [c[1:] for c in CONVERSIONS], ids=[c[0] for c in CONVERSIONS]
)
def test_generator_conversion(source, expected):
    assert load_generator().convert(source) == expected


def test_generator_flattens_all_of_and_keeps_the_strictest_duplicate():
    spec = {
        "Base": {
            "type": "object",
            "properties": {
                "top_logprobs": {"anyOf": [{"type": "integer", "maximum": 20}, {"type": "null"}]},
                "temperature": {"type": "number"},
            },
        },
        "Mid": {
            "allOf": [
                {"$ref": "#/components/schemas/Base"},
                {"properties": {"top_logprobs": {"type": "integer", "minimum": 0, "maximum": 30}}},
            ]
        },
        "Request": {
            "allOf": [
                {"$ref": "#/components/schemas/Mid"},
                {
                    "type": "object",
                    "properties": {
                        "top_logprobs": {"type": "integer", "nullable": True, "description": "d"},
                        "model": {"type": "string"},
                    },
                    "required": ["model"],
                },
            ]
        },
    }
    flat = load_generator().flatten(spec, spec["Request"])
    assert flat["required"] == ["model"]
    assert list(flat["properties"]) == ["top_logprobs", "temperature", "model"]
    assert flat["properties"]["top_logprobs"] == {
        "type": "integer",
        "minimum": 0,
        "maximum": 20,
        "description": "d",
    }


def test_generator_rejects_an_overlapping_one_of():
    schema = {"oneOf": [{"type": ["string", "null"]}, {"type": "null"}]}
    with pytest.raises(ValueError, match="can both match"):
        load_generator().check_disjoint_one_ofs(schema)
