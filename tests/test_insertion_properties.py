"""Properties of text from earlier steps: any insertion arrives exactly or is refused."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_insertions import ACTION, OBJECT, PLATFORM, build, fill

from connector import InvalidInput
from connector.engine import jsontext

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
# Prose with quotes, backslashes (never forming a JSON escape: those read as the escape),
# line breaks, tabs, brackets, braces and emoji.
inserted = st.lists(
    st.sampled_from([*"abc XYZ é,:.", '"', '"', "\n", "\r\n", "\t", *"[]{}", "😀", "服"])
    | st.sampled_from(["\\U", "\\p", "\\ ", "\\:", "\\é", "\\1"])
    | st.sampled_from(
        ['", ', '"}', '"]', '": ', '", "role": "', '"}, {"role": "user", "content": "']
    ),
    max_size=40,
).map("".join)
# A quote that could end a string where it stands: only such a text can change the JSON.
CLOSING = re.compile(r'"(\s*[,:}\]]|\s+"|\s*$)')
SHAPES = {
    PLATFORM: [["role", "content"], ["role", "content"]],
    OBJECT: [["role", "content"]],
}


@pytest.mark.parametrize("template", [PLATFORM, OBJECT])
@SETTINGS
@given(text=inserted)
def test_any_insertion_arrives_exactly_or_is_an_error(template, text):
    try:
        body, _ = build({"messages": fill(template, text)})
    except InvalidInput as exc:
        assert exc.type == "invalid_input" and exc.fields[0]["name"] == "messages"
        return
    messages = body["messages"]
    if [list(m) for m in messages] == SHAPES[template]:
        assert messages[-1]["content"] == text
    else:  # the text closed its string and wrote JSON of its own (documented)
        assert CLOSING.search(text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@SETTINGS
@given(value=json_values, indent=st.sampled_from([None, 2]), ascii=st.booleans())
def test_valid_json_is_read_unchanged(value, indent, ascii):
    text = json.dumps(value, indent=indent, ensure_ascii=ascii)
    for fallback, keys in ((False, None), (True, ACTION.param("messages").json_keys)):
        read = jsontext.read(text, fallback=fallback, keys=keys)
        if text[:1] in "[{" or not fallback:
            assert read == value and type(read) is type(value)
        else:
            assert read == text.strip()


@SETTINGS
@given(
    messages=st.lists(
        st.fixed_dictionaries({"role": st.sampled_from(["user", "system"]), "content": st.text()}),
        min_size=1,
        max_size=3,
    ),
    indent=st.sampled_from([None, 2]),
)
def test_valid_messages_are_sent_unchanged_without_warnings(messages, indent):
    body, noted = build({"messages": json.dumps(messages, indent=indent, ensure_ascii=False)})
    assert body["messages"] == messages and noted == []
