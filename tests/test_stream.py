"""Tests for SSE parsing (connector/transport/sse.py) and chunk aggregation (actions/chunks.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from connector import errors
from connector.actions.chunks import Aggregator
from connector.transport import sse as stream
from connector.transport.sse import Event, LineTooLong, iter_events, iter_lines

FIXTURES = Path(__file__).parent / "fixtures" / "streams"
STREAMS = sorted(p.stem for p in FIXTURES.glob("*.sse"))


def split(raw: bytes, size: int) -> list[bytes]:
    return [raw[i : i + size] for i in range(0, len(raw), size)] if size else [raw]


def chunk(index: int = 0, finish: str | None = None, **delta) -> dict:
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "m",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
    }


def sse(*payloads: object) -> bytes:
    lines = [f"data: {p if isinstance(p, str) else json.dumps(p)}\n\n" for p in payloads]
    return "".join(lines).encode()


def test_fixtures_cover_the_brief():
    assert set(STREAMS) >= {
        "plain_text",
        "tool_calls",
        "usage_chunk",
        "comments",
        "multiline_data",
        "error_event",
        "error_in_data",
        "cut",
        "azure_prompt_filter",
    }


@pytest.mark.parametrize("size", [0, 1, 7, 4096])
@pytest.mark.parametrize("name", STREAMS)
def test_fixture_aggregates_or_fails_as_expected(name, size):
    expected = json.loads((FIXTURES / f"{name}.json").read_text())
    tokens: list[str] = []
    chunks = split((FIXTURES / f"{name}.sse").read_bytes(), size)
    aggregator = Aggregator(tokens.append)
    if "result" in expected:
        result = stream.collect(chunks, max_line_bytes=1 << 20, aggregator=aggregator)
        assert result == expected["result"]
    else:
        want = expected["error"]
        with pytest.raises(errors.ConnectorError) as info:
            stream.collect(chunks, max_line_bytes=1 << 20, aggregator=aggregator)
        error = info.value
        assert type(error).__name__ == want["class"]
        assert error.type == want["type"]
        assert error.message == want["message"]
        assert error.code == want["code"]
        assert error.partial["choices"][0]["message"]["content"] == want["partial_content"]
    assert tokens == expected["tokens"]


@pytest.mark.parametrize(
    "chunks, lines",
    [
        ([b"a\nb\n"], [b"a", b"b"]),
        ([b"a\r\nb\r\n"], [b"a", b"b"]),
        ([b"a\rb\r"], [b"a", b"b"]),
        ([b"a\r", b"\nb\n"], [b"a", b"b"]),  # CRLF split across chunks
        ([b"a\r", b"\n", b"\nb"], [b"a", b"", b"b"]),
        ([b"ab", b"c", b"d\n"], [b"abcd"]),
        ([b"a\n\nb"], [b"a", b"", b"b"]),  # the last line has no end
        ([b""], []),
    ],
)
def test_iter_lines(chunks, lines):
    assert list(iter_lines(chunks, 100)) == lines


def test_iter_lines_stops_at_the_limit_without_a_newline():
    with pytest.raises(LineTooLong):
        list(iter_lines([b"x" * 60, b"x" * 60], 100))
    assert list(iter_lines([b"x" * 100 + b"\n"], 100)) == [b"x" * 100]


@pytest.mark.parametrize(
    "text, events",
    [
        ("data: a\n\n", [Event("message", "a")]),
        ("data:a\n\n", [Event("message", "a")]),
        ("data:  a\n\n", [Event("message", " a")]),  # only one space is dropped
        ("data: a\ndata: b\n\n", [Event("message", "a\nb")]),
        (": comment\ndata: a\n\n", [Event("message", "a")]),
        ("event: error\ndata: x\n\n", [Event("error", "x")]),
        ("id: 3\nretry: 10\ndata: a\n\n", [Event("message", "a")]),
        ("data\n\n", [Event("message", "")]),  # a field with no colon has an empty value
        ("event: x\n\ndata: a\n\n", [Event("message", "a")]),  # an event with no data is dropped
        ("data: a", [Event("message", "a", complete=False)]),
        ("\n\n\n", []),
    ],
)
def test_iter_events(text, events):
    assert list(iter_events(iter_lines([text.encode()], 1000))) == events


@pytest.mark.parametrize(
    "fragments, expected",
    [
        (  # a repeated id or name is not glued onto the first
            [
                {"index": 0, "id": "call_1", "type": "function", "function": {"name": "f"}},
                {"index": 0, "id": "call_1", "function": {"name": "f", "arguments": '{"a"'}},
                {"index": 0, "id": "", "function": {"arguments": ": 1}"}},
            ],
            [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "f", "arguments": '{"a": 1}'},
                }
            ],
        ),
        (  # no index: a new id starts a new call, otherwise the last call grows
            [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{"}},
                {"function": {"arguments": "}"}},
                {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
            ],
            [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
            ],
        ),
        (  # out-of-order indexes come back sorted
            [
                {"index": 1, "id": "b", "type": "function", "function": {"name": "g"}},
                {"index": 0, "id": "a", "type": "function", "function": {"name": "f"}},
            ],
            [
                {"id": "a", "type": "function", "function": {"name": "f"}},
                {"id": "b", "type": "function", "function": {"name": "g"}},
            ],
        ),
        (  # custom tools stream their input the same way
            [
                {"index": 0, "id": "c", "type": "custom", "custom": {"name": "sql", "input": "SE"}},
                {"index": 0, "custom": {"input": "LECT 1"}},
            ],
            [{"id": "c", "type": "custom", "custom": {"name": "sql", "input": "SELECT 1"}}],
        ),
    ],
)
def test_tool_call_fragments(fragments, expected):
    agg = Aggregator()
    for fragment in fragments:
        agg.add(chunk(tool_calls=[fragment]))
    assert agg.result()["choices"][0]["message"]["tool_calls"] == expected


@pytest.mark.parametrize(
    "deltas, key, expected",
    [
        (
            [{"reasoning_content": "Think"}, {"reasoning_content": "ing"}],
            "reasoning_content",
            "Thinking",
        ),
        ([{"annotations": [1]}, {"annotations": [2, 3]}], "annotations", [1, 2, 3]),
        (
            [
                {"function_call": {"name": "f", "arguments": "{"}},
                {"function_call": {"arguments": "}"}},
            ],
            "function_call",
            {"name": "f", "arguments": "{}"},
        ),
        (
            [
                {"audio": {"id": "au_1", "data": "AAA", "transcript": "He"}},
                {"audio": {"id": "au_1", "data": "BBB", "transcript": "llo", "expires_at": 9}},
            ],
            "audio",
            {"id": "au_1", "data": "AAABBB", "transcript": "Hello", "expires_at": 9},
        ),
    ],
)
def test_other_delta_fields(deltas, key, expected):
    agg = Aggregator()
    for delta in deltas:
        agg.add(chunk(**delta))
    assert agg.result()["choices"][0]["message"][key] == expected


def test_on_token_echoes_only_the_first_choice_and_skips_empty_text():
    tokens: list[str] = []
    agg = Aggregator(tokens.append)
    for index, text in [(0, ""), (0, "a"), (1, "x"), (0, None), (0, "b")]:
        agg.add(chunk(index, content=text))
    assert tokens == ["a", "b"]
    assert [c["message"]["content"] for c in agg.result()["choices"]] == ["ab", "x"]


def test_empty_stream_result_keeps_the_api_shape():
    assert Aggregator().result() == {"object": "chat.completion", "choices": []}


def test_usage_comes_from_the_last_usage_chunk():
    agg = Aggregator()
    agg.add({**chunk(content="a"), "usage": {"total_tokens": 1}})
    agg.add({"id": "c", "choices": [], "usage": {"total_tokens": 5}})
    agg.add({"id": "c", "choices": [], "usage": None})
    assert agg.result()["usage"] == {"total_tokens": 5}


@pytest.mark.parametrize(
    "body, code, message",
    [
        (  # vLLM sends its flat error object as an event
            sse({"object": "error", "message": "bad n", "type": "BadRequestError", "code": 400}),
            400,
            "bad n",
        ),
        (b"event: error\ndata: overloaded\n\n", None, "overloaded"),  # a text error event
        (sse({"error": {"message": "slow down", "code": 429}}), 429, "slow down"),
        (
            sse({"error": {"message": "no quota", "code": "insufficient_quota"}}),
            "insufficient_quota",
            "no quota",
        ),
    ],
)
def test_error_events_are_invalid_responses_that_keep_the_code(body, code, message):
    with pytest.raises(errors.InvalidResponse) as info:
        stream.collect([body], max_line_bytes=1000, aggregator=Aggregator())
    assert info.value.type == "invalid_response" and not info.value.retryable
    assert info.value.code == code
    assert message in info.value.message
    assert info.value.partial == {"object": "chat.completion", "choices": []}


@pytest.mark.parametrize(
    "body, message",
    [
        (sse(chunk(content="a"), "{not json", "[DONE]"), "is not JSON"),
        (sse(chunk(content="a"), "[1, 2]", "[DONE]"), "is not a JSON object"),
        (sse(chunk(content="a")), "ended before [DONE] after 1 chunks"),
        (b"", "ended before [DONE] after 0 chunks"),
    ],
)
def test_bad_streams_fail_with_the_partial_reply(body, message):
    with pytest.raises(errors.InvalidResponse) as info:
        stream.collect([body], max_line_bytes=1000, aggregator=Aggregator())
    assert message in info.value.message
    assert info.value.exit_code == 5


def test_long_line_fails_naming_the_setting_and_keeps_the_partial():
    body = sse(chunk(content="kept")) + b"data: " + b"x" * 5000
    with pytest.raises(errors.InvalidResponse) as info:
        stream.collect(split(body, 100), max_line_bytes=1024, aggregator=Aggregator())
    assert "max_sse_line_bytes (1024 bytes" in info.value.message
    assert info.value.partial["choices"][0]["message"]["content"] == "kept"


def test_done_ends_reading_even_if_more_follows():
    body = sse(chunk(content="a"), "[DONE]") + b"garbage that is never parsed"
    assert (
        stream.collect([body], max_line_bytes=1000, aggregator=Aggregator())["choices"][0][
            "message"
        ]["content"]
        == "a"
    )


def test_aggregation_is_linear():
    # 100k content deltas with logprobs: a quadratic join would take minutes, not seconds.
    agg = Aggregator()
    token = [{"token": "x", "logprob": 0.0, "bytes": [120], "top_logprobs": []}]
    start = time.monotonic()
    for _ in range(100_000):
        agg.add(
            {
                "choices": [
                    {
                        "index": 0,
                        "delta": {
                            "content": "x",
                            "tool_calls": [{"index": 0, "function": {"arguments": "y"}}],
                        },
                        "logprobs": {"content": token},
                    }
                ]
            }
        )
    result = agg.result()["choices"][0]
    assert time.monotonic() - start < 30
    assert len(result["message"]["content"]) == 100_000
    assert len(result["message"]["tool_calls"][0]["function"]["arguments"]) == 100_000
    assert len(result["logprobs"]["content"]) == 100_000
