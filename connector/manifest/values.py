"""JSON values against a field's declared rules: type names, and the constraint checks.

Shared by the format's check (a default must keep its own rules) and the input rules (what an
author typed must keep them): one wording for both.
"""

from __future__ import annotations

import math
from typing import Any, Protocol


class Rules(Protocol):
    """What ``constraint_problem`` reads of a field (a compiled or a format ``Param``)."""

    types: tuple[str, ...]
    minimum: float | None
    maximum: float | None
    min_length: int | None
    max_length: int | None
    min_items: int | None
    max_items: int | None
    enum: list[str] | None


def as_types(type_: str | list[str]) -> tuple[str, ...]:
    """Return a declared ``type`` (one name or a list) as a tuple of JSON type names."""
    return tuple(type_) if isinstance(type_, list) else (type_,)


def json_type(value: Any) -> str | None:
    """Return the JSON Schema type name of a parsed JSON value; None for anything else."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return None


def constraint_problem(param: Rules, value: Any) -> str | None:
    """Return what is wrong with an already-typed ``value`` for ``param``, or None."""
    kind = json_type(value) or "null"
    types = param.types
    if kind not in types and not (kind == "integer" and "number" in types):
        return f"expected {' or '.join(types)}, got {kind}"
    if kind in ("integer", "number"):
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        if param.minimum is not None and value < param.minimum:
            return f"must be at least {num(param.minimum)}"
        if param.maximum is not None and value > param.maximum:
            return f"must be at most {num(param.maximum)}"
    if kind == "string":
        if param.min_length is not None and len(value) < param.min_length:
            return f"must be at least {param.min_length} characters"
        if param.max_length is not None and len(value) > param.max_length:
            return f"must be at most {param.max_length} characters"
        if param.enum and value not in param.enum:
            return f"must be one of: {', '.join(param.enum)}"
    if kind == "array":
        if param.max_items is not None and len(value) > param.max_items:
            return f"takes at most {param.max_items} items, got {len(value)}"
        if param.min_items is not None and len(value) < param.min_items:
            n = param.min_items
            return f"needs at least {n} {'item' if n == 1 else 'items'}, got {len(value)}"
        if param.enum:
            bad = [v for v in value if v not in param.enum]
            if bad:
                return f"unknown value(s) {bad}; allowed: {', '.join(param.enum)}"
    return None


def num(x: float) -> str:
    """Return a number as an author writes it: 600, not 600.0."""
    return str(int(x)) if float(x).is_integer() else str(x)


def json_depth(value: Any, limit: int) -> bool:
    """Return True when ``value`` nests deeper than ``limit`` (iteratively; no recursion limit)."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return False
