"""Compiled yes/no checks for the subset of JSON Schema that the request schema uses.

``jsonschema`` walks the schema on every call and builds an error object for every branch of a
``oneOf`` it rules out; a valid request (the usual case) only needs a yes. ``compile_schema``
turns a schema node into nested closures once. Any keyword outside the subset makes it return
None, and the caller then uses ``jsonschema``, which also explains the problems: a check says
True only where ``jsonschema`` finds no error (a test compares the two).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Check = Callable[[Any], bool]

# Keywords that never reject a value (format is not asserted: no format checker is set).
ANNOTATIONS = frozenset(
    {"title", "description", "default", "deprecated", "examples", "$comment", "format"}
    | {"readOnly", "writeOnly", "contentMediaType", "contentEncoding", "$schema"}
)
KEYWORDS = frozenset(
    {"$ref", "type", "enum", "properties", "required", "additionalProperties", "propertyNames"}
    | {"items", "minItems", "maxItems", "minProperties", "maxProperties", "minLength"}
    | {"maxLength", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}
    | {"oneOf", "anyOf", "allOf", "not"}
)


class Unsupported(Exception):
    """The schema uses something the compiler does not handle exactly."""


def _is_integer(v: Any) -> bool:
    # As jsonschema's draft 2020-12 type checker: 1.0 is an integer, True is not.
    return (isinstance(v, int) and not isinstance(v, bool)) or (
        isinstance(v, float) and v.is_integer()
    )


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


TYPES: dict[str, Check] = {
    "string": lambda v: isinstance(v, str),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": _is_integer,
    "number": _is_number,
}


def compile_schema(node: Any, defs: dict[str, Any]) -> Check | None:
    """Return a check for ``node`` (local ``#/$defs/`` refs into ``defs``), or None."""
    try:
        return _Compiler(defs).node(node)
    except (Unsupported, re.error, TypeError, ValueError):
        return None


class _Compiler:
    def __init__(self, defs: dict[str, Any]) -> None:
        self.defs = defs
        self.refs: dict[str, Check] = {}

    def ref(self, ref: Any) -> Check:
        name = ref.removeprefix("#/$defs/") if isinstance(ref, str) else None
        if name is None or name == ref or name not in self.defs or set(name) & set("/~%"):
            raise Unsupported(ref)
        if name not in self.refs:
            slot: list[Check] = []
            # A recursive definition calls itself through the slot, filled once compiled.
            self.refs[name] = lambda v: slot[0](v)
            slot.append(self.node(self.defs[name]))
        return self.refs[name]

    def node(self, node: Any) -> Check:
        if node is True:
            return lambda v: True
        if node is False:
            return lambda v: False
        if not isinstance(node, dict):
            raise Unsupported(node)
        unknown = set(node) - KEYWORDS - ANNOTATIONS
        if unknown:
            raise Unsupported(unknown)
        checks = [check for key in node if key in KEYWORDS for check in self.keyword(key, node)]
        return _all(checks)

    def keyword(self, key: str, node: dict[str, Any]) -> list[Check]:
        """Return the checks of one keyword (none where a sibling keyword covers it)."""
        value = node[key]
        if key == "$ref":
            return [self.ref(value)]
        if key == "type":
            names = [value] if isinstance(value, str) else value
            if not isinstance(names, list) or not all(n in TYPES for n in names):
                raise Unsupported(value)
            kinds = [TYPES[n] for n in names]
            return [kinds[0]] if len(kinds) == 1 else [lambda v: any(k(v) for k in kinds)]
        if key == "enum":
            return [_enum(value)]
        if key in ("properties", "additionalProperties"):
            return (
                []
                if key == "additionalProperties" and "properties" in node
                else [self.object(node)]
            )
        if key == "required":
            names = list(value)
            return [lambda v: not isinstance(v, dict) or all(n in v for n in names)]
        if key == "propertyNames":
            names_ok = self.node(value)
            return [lambda v: not isinstance(v, dict) or all(names_ok(k) for k in v)]
        if key == "items":
            if not isinstance(value, dict | bool):
                raise Unsupported(key)
            item = self.node(value)
            return [lambda v: not isinstance(v, list) or all(item(x) for x in v)]
        if key in (
            "minItems",
            "maxItems",
            "minProperties",
            "maxProperties",
            "minLength",
            "maxLength",
        ):
            return [_size(key, _count(value))]
        if key == "pattern":
            search = re.compile(value).search
            return [lambda v: not isinstance(v, str) or search(v) is not None]
        if key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
            return [_bound(key, value)]
        if key == "not":
            inner = self.node(value)
            return [lambda v: not inner(v)]
        branches = [self.node(b) for b in value] if isinstance(value, list) and value else None
        if branches is None:
            raise Unsupported(key)
        if key == "anyOf":
            return [lambda v: any(b(v) for b in branches)]
        if key == "allOf":
            return [_all(branches)]
        tagged = self.tagged(value, branches)
        if tagged is not None:
            return [tagged]
        return [lambda v: sum(1 for b in branches if b(v)) == 1]  # oneOf

    def tagged(self, nodes: list[Any], branches: list[Check]) -> Check | None:
        """Return a dispatch on the tag of a oneOf whose objects each require their own tag.

        Such a value can match at most the branch its tag names, so "exactly one" is that one.
        """
        resolved = [self.resolve(n) for n in nodes]
        if not all(isinstance(n, dict) and n.get("type") == "object" for n in resolved):
            return None
        for prop in resolved[0].get("required", []):
            tags = [_single_tag(n, prop) for n in resolved]
            if all(t is not None for t in tags) and len(set(tags)) == len(tags):
                table = dict(zip(tags, branches, strict=True))

                def dispatch(v: Any, prop: str = prop, table: dict = table) -> bool:
                    tag = v.get(prop) if isinstance(v, dict) else None
                    branch = table.get(tag) if isinstance(tag, str) else None
                    return branch is not None and branch(v)

                return dispatch
        return None

    def resolve(self, node: Any) -> Any:
        """Return the definition a bare ``$ref`` node points at (annotations aside)."""
        seen = 0
        while isinstance(node, dict) and "$ref" in node and not set(node) - {"$ref"} - ANNOTATIONS:
            name = str(node["$ref"]).removeprefix("#/$defs/")
            if name not in self.defs or seen > 32:
                return None
            node, seen = self.defs[name], seen + 1
        return node

    def object(self, node: dict[str, Any]) -> Check:
        """Return the check of ``properties`` with ``additionalProperties``."""
        props = node.get("properties", {})
        if not isinstance(props, dict):
            raise Unsupported("properties")
        subs = {name: self.node(sub) for name, sub in props.items()}
        extra = node.get("additionalProperties", True)
        rest = None if extra is True else self.node(extra)

        def check(v: Any) -> bool:
            if not isinstance(v, dict):
                return True
            for name, value in v.items():
                sub = subs.get(name, rest)
                if sub is not None and not sub(value):
                    return False
            return True

        return check


def _all(checks: list[Check]) -> Check:
    """Return a check that passes when every check does (unrolled for the usual few)."""
    if not checks:
        return lambda v: True
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        a, b = checks
        return lambda v: a(v) and b(v)
    if len(checks) == 3:
        a, b, c = checks
        return lambda v: a(v) and b(v) and c(v)
    return lambda v: all(check(v) for check in checks)


def _single_tag(node: dict[str, Any], prop: str) -> str | None:
    """Return the one text a node's required ``prop`` may hold, or None."""
    if prop not in node.get("required", []):
        return None
    sub = node.get("properties", {}).get(prop)
    enum = sub.get("enum") if isinstance(sub, dict) else None
    return (
        enum[0] if isinstance(enum, list) and len(enum) == 1 and isinstance(enum[0], str) else None
    )


def _enum(values: Any) -> Check:
    # Only text and null: jsonschema's equality (1 == 1.0, True != 1) is then plain membership.
    if not isinstance(values, list) or not all(v is None or isinstance(v, str) for v in values):
        raise Unsupported("enum")
    texts = frozenset(v for v in values if v is not None)
    allow_null = None in values
    return lambda v: (isinstance(v, str) and v in texts) or (v is None and allow_null)


def _count(value: Any) -> int:
    if not _is_integer(value) or value < 0:
        raise Unsupported(value)
    return int(value)


def _size(key: str, limit: int) -> Check:
    kind = {"Items": list, "Properties": dict, "Length": str}[
        key.removeprefix("min").removeprefix("max")
    ]
    if key.startswith("min"):
        return lambda v: not isinstance(v, kind) or len(v) >= limit
    return lambda v: not isinstance(v, kind) or len(v) <= limit


def _bound(key: str, limit: Any) -> Check:
    if not _is_number(limit):
        raise Unsupported(key)
    # Written as jsonschema's error conditions negated, so NaN fares the same.
    compare = {
        "minimum": lambda v: not v < limit,
        "maximum": lambda v: not v > limit,
        "exclusiveMinimum": lambda v: not v <= limit,
        "exclusiveMaximum": lambda v: not v >= limit,
    }[key]
    return lambda v: not _is_number(v) or compare(v)
