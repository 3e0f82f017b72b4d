"""How a schema error is worded for an author: short, in plain words, with the value shown.

jsonschema's own messages quote whole instances and name keywords; these say what to change
("must be at most 2 (got 3)"), and are the same wherever a request body is explained.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from connector.manifest.values import json_type

if TYPE_CHECKING:  # jsonschema is imported when a body needs explaining, not at start-up
    from jsonschema.exceptions import ValidationError


TYPE_NAMES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "null": "null",
}
PATTERN_MESSAGES = {
    "^[a-zA-Z0-9_-]+$": "must contain only letters, digits, underscores and dashes",
    "^[0-9]+$": "must be a token id (digits only)",
}
SHORT_VALUE_CHARS = 40


def message(error: ValidationError, with_value: bool = True) -> str:
    """Return a short human message for a jsonschema error on a plain keyword."""
    keyword, value, instance, schema = (
        error.validator,
        error.validator_value,
        error.instance,
        error.schema,
    )
    got = f" (got {short(instance)})" if with_value else ""
    if keyword == "type":
        wanted = join_types([value] if isinstance(value, str) else value)
        return f"must be {wanted} (got {kind(instance)})"
    if keyword == "enum":
        allowed = [v for v in value if v is not None]
        if len(allowed) == 1:
            return f"must be {short(allowed[0])}{got}"
        return f"must be one of {', '.join(plain(v) for v in allowed)}{got}"
    if keyword == "const":
        return f"must be {short(value)}{got}"
    if keyword in ("minimum", "maximum"):
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is not None and high is not None:
            return f"must be between {low} and {high}{got}"
        bound = f"at least {low}" if keyword == "minimum" else f"at most {high}"
        return f"must be {bound}{got}"
    if keyword == "exclusiveMinimum":
        return f"must be greater than {value}{got}"
    if keyword == "exclusiveMaximum":
        return f"must be less than {value}{got}"
    if keyword == "minItems":
        if value == 1:
            return "must not be empty"
        return f"must have at least {value} items (got {len(instance)})"
    if keyword == "maxItems":
        return f"must have at most {value} items (got {len(instance)})"
    if keyword == "minLength":
        return "must not be empty" if value == 1 else f"must be at least {value} characters"
    if keyword == "maxLength":
        return f"must be at most {value} characters (got {len(instance)})"
    if keyword == "maxProperties":
        return f"must have at most {value} entries (got {len(instance)})"
    if keyword == "minProperties":
        return f"must have at least {value} entries (got {len(instance)})"
    if keyword == "pattern":
        return PATTERN_MESSAGES.get(value, f"must match the pattern {value}") + got
    if keyword == "uniqueItems":
        return "must not repeat an item"
    return cap(error.message)


def join_types(types: Iterable[str]) -> str:
    """Return JSON type names as words: "a string or an array"; null only when alone."""
    names: list[str] = []
    for kind in types:
        name = TYPE_NAMES.get(kind, kind)
        if name not in names:
            names.append(name)
    if len(names) > 1 and "null" in names:
        names.remove("null")  # null is never what the author meant to send
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def kind(value: Any) -> str:
    """Return the JSON type of a value as words ("an object")."""
    name = json_type(value)
    return TYPE_NAMES[name] if name else type(value).__name__


def plain(value: Any) -> str:
    """Return a value as shown in a list of allowed values: a string bare, others as JSON."""
    return value if isinstance(value, str) else short(value)


def short(value: Any) -> str:
    """Return a value as JSON, cut to a few words."""
    if isinstance(value, str) and len(value) > SHORT_VALUE_CHARS:
        value = value[:SHORT_VALUE_CHARS]  # no need to encode a megabyte to show 40 characters
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= SHORT_VALUE_CHARS else text[: SHORT_VALUE_CHARS - 1] + "…"


def cap(text: str, limit: int = 200) -> str:
    """Return ``text`` cut to ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def noun(branches: list[dict[str, Any]]) -> str:
    """Return the words all branch titles end with ("message", "content part"), or ""."""
    titles = [str(b.get("title", "")).lower().split() for b in branches]
    if not all(titles):
        return ""
    common: list[str] = []
    for words in zip(*(reversed(t) for t in titles), strict=False):
        if len(set(words)) != 1:
            break
        common.insert(0, words[0])
    return " ".join(common) if all(len(t) > len(common) for t in titles) else ""
