"""Property-based tests over the form rules: a valid request or an invalid_input, nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from conftest import CANARY
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import connector

ROOT = Path(__file__).resolve().parent.parent
ACTION = "create_chat_completion"
FIELDS = [p.name for p in connector.load_manifest().action(ACTION).parameters]
SCHEMA = json.loads((ROOT / "schemas" / f"{ACTION}.request.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
# Text that looks like what authors type or paste: numbers, words, JSON, broken JSON, escapes.
fragments = st.sampled_from(
    [
        "",
        " ",
        "0",
        " 0.2 ",
        "1e-1",
        "1.5",
        "-3",
        "NaN",
        "inf",
        "true",
        "No",
        "High",
        "auto",
        "json_object",
        "text",
        "user",
        "developer",
        '[{"role": "user", "content": "hi"}]',
        '{"role": "tool", "content": "x"}',
        '[{"role":',
        '{"type": "json_schema"',
        '"quoted", item',
        '["\\n\\n", "###"]',
        "a,b,c,d,e",
        "\\n,\\t",
        "null",
        "[]",
        "{}",
        "\x00",
        "\ud7ff",
    ]
)
form_text = st.one_of(
    fragments,
    st.text(max_size=40),
    json_values.map(json.dumps),
    st.lists(fragments, min_size=1, max_size=4).map("".join),
)
form_value = st.one_of(form_text, json_values)
field_names = st.one_of(st.sampled_from(FIELDS), st.text(min_size=1, max_size=10))


def spaced(values: st.SearchStrategy) -> st.SearchStrategy:
    """Return values as typed by an author: text, padded or in another case, or native."""
    as_text = values.map(str)
    return st.one_of(
        values,
        as_text,
        as_text.map(lambda t: f"  {t} "),
        as_text.map(str.upper),
        as_text.map(str.title),
    )


numbers = st.one_of(st.floats(-3, 3, allow_nan=False), st.integers(-3, 3))
counts = st.integers(-2, 5000)
words = st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=20)
messages = st.one_of(
    words.filter(str.strip),
    st.lists(
        st.fixed_dictionaries(
            {
                "role": st.sampled_from(["user", "system", "developer", "assistant"]),
                "content": words,
            }
        ),
        min_size=1,
        max_size=3,
    ).map(json.dumps),
)
# A value per field that is right more often than not, so the valid branch is exercised too.
PLAUSIBLE = {
    "temperature": spaced(numbers),
    "top_p": spaced(numbers),
    "frequency_penalty": spaced(numbers),
    "presence_penalty": spaced(numbers),
    "max_completion_tokens": spaced(counts),
    "max_tokens": spaced(counts),
    "seed": spaced(st.integers(-(2**64), 2**64)),
    "n": spaced(st.integers(0, 10)),
    "top_logprobs": spaced(st.integers(-1, 25)),
    "logprobs": spaced(st.sampled_from(["true", "false", "yes", "no", "1", "0", "maybe"])),
    "stream": spaced(st.sampled_from(["true", "false", "yes", "no", "1", "0"])),
    "store": spaced(st.booleans()),
    "parallel_tool_calls": spaced(st.booleans()),
    "reasoning_effort": spaced(st.sampled_from(["low", "medium", "high", "none", "extreme"])),
    "verbosity": spaced(st.sampled_from(["low", "medium", "high", "loud"])),
    "service_tier": spaced(st.sampled_from(["auto", "default", "flex", "priority", "cheap"])),
    "stop": st.one_of(
        words,
        st.lists(words, max_size=5).map(", ".join),
        st.lists(words, max_size=5).map(json.dumps),
    ),
    "user": words,
    "safety_identifier": words,
    "prompt_cache_key": words,
    "metadata": st.dictionaries(words, words, max_size=3).map(json.dumps),
    "response_format": st.one_of(
        st.sampled_from(["text", "json_object", "JSON_OBJECT", '{"type": "text"}']),
        st.just({"type": "object", "properties": {"a": {"type": "string"}}}).map(json.dumps),
    ),
    "logit_bias": st.dictionaries(
        st.integers(0, 50000).map(str), st.integers(-100, 100), max_size=3
    ).map(json.dumps),
}
plausible = st.fixed_dictionaries(
    {"model": st.sampled_from(["gpt-4o-mini", "o3", " gpt-4o "]), "messages": messages}
).flatmap(
    lambda base: (
        st.lists(st.sampled_from(sorted(PLAUSIBLE)), max_size=4, unique=True)
        .flatmap(lambda names: st.fixed_dictionaries({n: PLAUSIBLE[n] for n in names}))
        .map(lambda extra: {**base, **extra})
    )
)
forms = st.one_of(
    st.dictionaries(field_names, form_value, max_size=6),
    st.fixed_dictionaries(
        {"model": st.sampled_from(["gpt-4o-mini", " "]), "messages": form_text}
    ).flatmap(
        lambda base: st.dictionaries(st.sampled_from(FIELDS), form_value, max_size=4).map(
            lambda extra: {**extra, **base}
        )
    ),
    plausible,
    plausible,
)


@pytest.fixture(scope="module")
def untouched(fault_server):
    """A connection at a fault-server scenario that must never receive a request."""
    scenario = fault_server.scenario("ok")
    yield scenario, connector.make_connection(api_key=CANARY, base_url=scenario.base_url)
    assert scenario.count == 0


def check_invalid(error: connector.InvalidInput) -> None:
    """Assert an invalid_input error lists its fields, each with a name, label and message."""
    assert error.to_dict()["type"] == "invalid_input"
    assert error.fields, error.message
    for field in error.fields:
        assert all(isinstance(field.get(k), str) and field[k] for k in ("name", "label", "message"))
    assert CANARY not in json.dumps(error.to_dict())


@SETTINGS
@given(form=forms)
def test_any_form_gives_a_valid_request_or_invalid_input(untouched, form):
    scenario, connection = untouched
    try:
        request = connector.prepare(ACTION, form, connection)
    except connector.InvalidInput as error:
        event("invalid_input")
        check_invalid(error)
        return
    event("valid request")
    body = request["body"]
    assert request["url"] == scenario.base_url + "/chat/completions"
    assert json.loads(json.dumps(body, allow_nan=False)) == body
    VALIDATOR.validate(body)
    assert CANARY not in json.dumps(request)


@settings(SETTINGS, max_examples=60)
@given(form=forms)
def test_a_run_sends_exactly_the_prepared_request_or_nothing(fault_server, form):
    scenario = fault_server.scenario("ok")
    connection = connector.make_connection(
        api_key=CANARY, base_url=scenario.base_url, max_retries=0
    )
    try:
        prepared = connector.prepare(ACTION, form, connection)
    except connector.InvalidInput:
        prepared = None
    try:
        connector.run(ACTION, form, connection)
    except connector.InvalidInput as error:
        event("invalid_input, nothing sent")
        check_invalid(error)
        assert prepared is None and scenario.count == 0
        return
    except connector.InvalidResponse:
        pass  # e.g. JSON was asked for and the echo is not JSON; the request itself was valid
    event("sent once")
    assert prepared is not None
    [seen] = scenario.requests
    assert seen.json == prepared["body"]
