"""Create Chat Completion: the input shortcuts and output parsing the manifest cannot express."""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from typing import Any

from connector.actions.chunks import Aggregator
from connector.engine.forms import FieldProblem
from connector.engine.notices import warn
from connector.errors import InvalidResponse

ROLES = ("developer", "system", "user", "assistant", "tool", "function")
_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_TOOL_CHOICE_WORDS = ("none", "auto", "required")
_SCHEMA_HINTS = ("properties", "items", "anyOf", "oneOf", "allOf", "$schema", "$defs", "enum")


# The stream_aggregator hook: chat.completion.chunk events into one chat.completion.
stream_aggregator = Aggregator


def normalize_messages(value: Any) -> list:
    """Return a message list from a JSON list, one JSON object, or plain text (one user message)."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise FieldProblem(
            'expected a JSON list of messages, e.g. [{"role": "user", "content": "Hello!"}]'
        )
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise FieldProblem(
                f'expected a message object like {{"role": "user", "content": "..."}}, '
                f"got {json.dumps(message)[:60]}",
                (i,),
            )
        role = message.get("role")
        if role is None:
            raise FieldProblem(f"is missing; use one of: {', '.join(ROLES[:5])}", (i, "role"))
        if isinstance(role, str) and role != role.strip().lower():
            # Authors type "User" or " assistant"; the API only takes lower case.
            message = {**message, "role": role.strip().lower()}
        out.append(message)
    return out


def normalize_tool_choice(value: Any) -> Any:
    """Return a tool_choice from `auto`/`none`/`required`, a tool name, or a JSON object."""
    if not isinstance(value, str):
        return value
    word = value.strip().strip('"').strip()
    if word.lower() in _TOOL_CHOICE_WORDS:
        return word.lower()
    if _NAME_RE.fullmatch(word):
        return {"type": "function", "function": {"name": word}}
    raise FieldProblem(
        "use auto, none, required, a tool's name (letters, digits, _ and -), or a JSON object"
    )


def normalize_response_format(value: Any) -> Any:
    """Return a response_format from `text`, `json_object`, a format object, or a bare schema."""
    if isinstance(value, str):
        word = value.strip().strip('"').strip().lower()
        if word == "text":
            return {"type": "text"}
        if word in ("json_object", "json"):
            return {"type": "json_object"}
        raise FieldProblem(
            "use text, json_object, a JSON Schema object, or "
            '{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}}}'
        )
    if not isinstance(value, dict):
        return value
    kind = value.get("type")
    if kind in ("text", "json_object", "json_schema"):
        return value
    if kind == "object" or any(k in value for k in _SCHEMA_HINTS):
        return _schema_format(value)
    raise FieldProblem(
        f"type {json.dumps(kind)} is not a response format; use text, json_object, json_schema, "
        "or give a JSON Schema object"
    )


def _schema_format(schema: dict) -> dict:
    """Wrap a bare JSON Schema as a strict json_schema format, when the schema allows strict."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", str(schema.get("title") or "response")).strip("_")
    strict_schema = _close_objects(schema)
    problem = _strict_problem(strict_schema)
    if problem:
        # Strict mode would make the API reject the schema; send it non-strict and say why.
        warn(
            "not_strict",
            f"sent with strict false because {problem}",
            name="response_format",
        )
        return {
            "type": "json_schema",
            "json_schema": {"name": name[:64] or "response", "schema": schema, "strict": False},
        }
    return {
        "type": "json_schema",
        "json_schema": {"name": name[:64] or "response", "schema": strict_schema, "strict": True},
    }


def _close_objects(schema: Any) -> Any:
    """Return the schema with additionalProperties false on objects that do not say otherwise."""
    if isinstance(schema, list):
        return [_close_objects(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _close_objects(v) for k, v in schema.items()}
    if out.get("type") == "object" and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def _strict_problem(schema: Any, path: str = "schema") -> str | None:
    """Return why Structured Outputs' strict mode would reject this schema, or None."""
    if isinstance(schema, list):
        for i, s in enumerate(schema):
            problem = _strict_problem(s, f"{path}[{i}]")
            if problem:
                return problem
        return None
    if not isinstance(schema, dict):
        return None
    props = schema.get("properties")
    if isinstance(props, dict):
        missing = sorted(set(props) - set(schema.get("required") or []))
        if missing:
            return f"{path} does not list {missing} in 'required' (strict needs every property)"
    for key, sub in schema.items():
        if isinstance(sub, dict | list) and key not in ("enum", "const", "required", "examples"):
            problem = _strict_problem(sub, f"{path}.{key}")
            if problem:
                return problem
    return None


@functools.lru_cache(maxsize=64)
def _validator(schema_text: str):
    from jsonschema import Draft202012Validator

    return Draft202012Validator(json.loads(schema_text))


def cross_rules(body: dict) -> Iterator[tuple[str, str, tuple]]:
    """Rules between fields that the API enforces but its schema cannot say."""
    if "top_logprobs" in body and body.get("logprobs") is not True:
        yield "top_logprobs", "needs Logprobs set to true; set Logprobs.", ()
    if body.get("stream_options") is not None and not body.get("stream"):
        message = "'stream_options' is only allowed with Stream set to true."
        yield "stream_options", message, ("stream_options",)


def finish(output: dict, body: dict) -> dict:
    """Add `parsed` for JSON replies and `parsed_arguments` for function tool calls."""
    choices = output.get("choices")
    if not isinstance(choices, list) or not choices:
        raise InvalidResponse(
            "The API returned no choices.", body=json.dumps(output)[:2000], partial=output
        )
    fmt = body.get("response_format") or {}
    wants_json = fmt.get("type") in ("json_object", "json_schema")
    schema = (
        (fmt.get("json_schema") or {}).get("schema") if fmt.get("type") == "json_schema" else None
    )
    try:
        for choice in choices:
            _finish_choice(choice, wants_json, schema)
    except InvalidResponse as exc:  # `body` is capped: the whole reply rides along, nothing lost
        raise exc.replace(partial=output) from None
    _warn_without_usage(output.get("usage"), body)
    return output


def _warn_without_usage(usage: Any, body: dict) -> None:
    """Warn when the server reported no token usage (``usage`` is then null: unknown, not 0)."""
    if usage is not None:
        return
    options = body.get("stream_options") or {}
    if body.get("stream") and options.get("include_usage") is False:
        why = " because stream_options.include_usage is false"
    elif body.get("stream"):
        why = " for this stream, although the connector asked for it (stream_options.include_usage)"
    else:
        why = ""
    warn("no_usage", f"The server reported no token usage{why}; usage is null.")


def _finish_choice(choice: dict, wants_json: bool, schema: dict | None) -> None:
    """Warn about a cut reply; add `parsed` and `parsed_arguments` to one choice."""
    if not isinstance(choice, dict) or not isinstance(choice.get("message") or {}, dict):
        raise InvalidResponse(
            "The API returned a choice that is not a chat message object.",
            body=json.dumps(choice)[:2000],
        )
    message = choice.get("message") or {}
    reason = choice.get("finish_reason")
    if reason == "length":
        warn(
            "truncated",
            f"Choice {choice.get('index')} was cut at the token limit (finish_reason: length);"
            " raise Max Completion Tokens for a complete reply.",
            name="max_completion_tokens",
        )
    if message.get("refusal"):
        # A refusal is an answer, not a failure: the workflow branches on message.refusal.
        warn("refused", f"Choice {choice.get('index')}: the model refused (message.refusal).")
        if wants_json:
            message["parsed"] = None
    elif wants_json:
        message["parsed"] = _parse_reply(message, reason, schema, choice.get("index"))
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict) and isinstance(function.get("arguments"), str):
            function["parsed_arguments"] = _parse_arguments(function)


def _parse_reply(message: dict, reason: str | None, schema: dict | None, index: Any) -> Any:
    content = message.get("content")
    if content is None:
        # A refusal has no content to parse; it is returned as message.refusal.
        return None
    try:
        parsed = json.loads(content)
    except (json.JSONDecodeError, TypeError, RecursionError) as exc:
        why = (
            " The reply was cut at the token limit: raise Max Completion Tokens."
            if reason == "length"
            else ""
        )
        raise InvalidResponse(
            f"Response Format asked for JSON, but choice {index}'s reply is not valid JSON "
            f"({exc}).{why}",
            body=content,
        ) from None
    if schema is not None:
        errors = sorted(_validator(json.dumps(schema, sort_keys=True)).iter_errors(parsed), key=str)
        if errors:
            where = "/".join(str(p) for p in errors[0].absolute_path) or "(root)"
            raise InvalidResponse(
                f"Choice {index}'s JSON reply does not match the Response Format schema at "
                f"{where}: {errors[0].message}",
                body=content,
            )
    return parsed


def _parse_arguments(function: dict) -> Any:
    try:
        return json.loads(function["arguments"]) if function["arguments"].strip() else {}
    except (json.JSONDecodeError, RecursionError) as exc:
        raise InvalidResponse(
            f"Tool call {function.get('name')!r} has arguments that are not valid JSON ({exc}).",
            body=function["arguments"],
        ) from None
