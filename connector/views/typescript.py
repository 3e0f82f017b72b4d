"""TypeScript literals of JSON-like data, written as n8n's sources (and prettier) write them."""

from __future__ import annotations

import json
import re
from typing import Any

_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


class Code(str):
    """TypeScript source written into a literal as it is (an enum member, a call)."""


def string_literal(text: str) -> str:
    """Return a string literal, quoted as prettier quotes it (single unless that needs escapes)."""
    quote = '"' if "'" in text and '"' not in text else "'"
    escaped = text.replace("\\", "\\\\").replace(quote, "\\" + quote).replace("\n", "\\n")
    return f"{quote}{escaped}{quote}"


def _key(name: str) -> str:
    return name if _IDENTIFIER.match(name) else string_literal(name)


def ts(value: Any, depth: int = 0) -> str:
    """Return a TypeScript literal of JSON-like data, tab-indented as n8n's sources are."""
    if isinstance(value, Code):
        return str(value)
    if isinstance(value, str):
        return string_literal(value)
    inner, outer = "\t" * (depth + 1), "\t" * depth
    if isinstance(value, dict):
        if not value:
            return "{}"
        rows = [f"{inner}{_key(k)}: {ts(v, depth + 1)}," for k, v in value.items()]
        return "{\n" + "\n".join(rows) + f"\n{outer}}}"
    if isinstance(value, list):
        if all(isinstance(v, str | int | float | bool) for v in value):
            return "[" + ", ".join(ts(v) for v in value) + "]"
        return "[\n" + "\n".join(f"{inner}{ts(v, depth + 1)}," for v in value) + f"\n{outer}]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 1, not 1.0, as a TypeScript author writes it
    return json.dumps(value)
