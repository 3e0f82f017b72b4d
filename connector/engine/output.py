"""Output shaping: the API's reply made to carry every key path of the action's example.

A later workflow step can always read e.g. ``choices[0].message.content`` or
``usage.completion_tokens_details.reasoning_tokens``, with the type the official response
schema gives it: a key the API (or a compatible server) left out, or sent as null where its
type has no null, gets the empty value of that type (``[]``, ``0``, ``""``, an object with its
own keys filled the same way). It is null only where the official schema allows null or the
example shows null. Keys the API added pass through unchanged.

The fill values are derived once per process from the example and the official schema
(``template``), never per run.
"""

from __future__ import annotations

import copy
from typing import Any

# A template mirrors the example: {key: (sub, fill)}. ``sub`` is None for a leaf, a template
# for an object, or a one-item list of the item template for a list of objects. ``fill`` is
# what an absent (or wrongly null) key gets: a constant, or one of the markers below.
Template = dict[str, tuple[Any, Any]]


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


EMPTY_LIST = _Marker("EMPTY_LIST")  # a fresh [] each time
FILLED = _Marker("FILLED")  # the object's own template, filled
_ZERO = {"integer": 0, "number": 0, "string": "", "boolean": False}


def template(example: dict, schema: dict | None = None, declared: dict | None = None) -> Template:
    """Return the shaping template of an example, with fill values from ``schema``'s types.

    ``declared`` (the manifest's output schema) may allow null where ``schema`` does not: a key
    it declares nullable is null when the reply lacks it (``usage`` a server did not report).
    """
    defs = (schema or {}).get("$defs", {})
    return _template(example, schema, defs, declared)


def _template(example: dict, schema: dict | None, defs: dict, declared: Any = None) -> Template:
    props = (_resolve(schema, defs) or {}).get("properties") or {}
    own = (declared or {}).get("properties") or {} if isinstance(declared, dict) else {}
    out: Template = {}
    for key, value in example.items():
        sub_schema = _resolve(props.get(key), defs)
        mine = own.get(key)
        fill = None if mine and _nullable(mine) else fill_value(value, sub_schema, defs)
        out[key] = (_sub(value, sub_schema, defs, mine), fill)
    return out


def _sub(value: Any, schema: dict | None, defs: dict, declared: Any = None) -> Any:
    if isinstance(value, dict):
        return _template(value, schema, defs, declared)
    if isinstance(value, list) and value and isinstance(value[0], dict):
        items = _resolve((schema or {}).get("items"), defs)
        return [_template(value[0], items, defs, (declared or {}).get("items"))]
    return None


def fill_value(example: Any, schema: dict | None, defs: dict | None = None) -> Any:
    """Return what a key gets when the reply lacks it: null only where null is allowed."""
    schema = _resolve(schema, defs or {})
    if example is None or schema is None or _nullable(schema):
        return None  # the example shows null, the type is unknown, or the schema allows null
    kinds = _types(schema)
    if isinstance(example, dict) or "object" in kinds:
        return FILLED
    if "array" in kinds:
        return EMPTY_LIST
    if "enum" in schema:
        default = schema.get("default")
        return default if default in schema["enum"] else schema["enum"][0]
    if "default" in schema:
        return copy.deepcopy(schema["default"])
    return next((_ZERO[k] for k in kinds if k in _ZERO), None)


def _resolve(schema: Any, defs: dict) -> dict | None:
    """Return a schema with ``$ref`` followed and ``anyOf [X, null]`` seen as a nullable X.

    The official schema's refs are all ``#/$defs/X``: followed here, not by ``referencing``,
    whose import (attrs, rpds) costs about 90 ms on the first run of every process.
    """
    for _ in range(32):  # refs chain a few levels at most; a cycle must not hang the loader
        if not isinstance(schema, dict):
            return None
        if "$ref" in schema:
            schema = {**defs.get(schema["$ref"].rsplit("/", 1)[-1], {}), **_without(schema)}
            continue
        branches = schema.get("anyOf") or schema.get("oneOf")
        if isinstance(branches, list):
            real = [b for b in branches if b != {"type": "null"}]
            if len(real) == 1:
                rest = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
                merged = {**(_resolve(real[0], defs) or {}), **rest}
                if len(real) < len(branches):
                    merged["nullable"] = True
                return merged
        return schema
    return None


def _without(schema: dict) -> dict:
    return {k: v for k, v in schema.items() if k != "$ref"}


def _types(schema: dict) -> list[str]:
    kind = schema.get("type")
    return [kind] if isinstance(kind, str) else list(kind or ())


def _nullable(schema: dict) -> bool:
    return (
        schema.get("nullable") is True
        or "null" in _types(schema)
        or None in (schema.get("enum") or ())
    )


def shape(node: Template, value: Any) -> Any:
    """Return ``value`` with every key path of ``node`` present, extra keys kept."""
    if not isinstance(value, dict):
        return value  # an unexpected type passes through rather than being lost
    get = value.get
    out = {}
    # Runs once per key of every reply: the common case (a leaf that is present) is tested first.
    for key, (sub, fill) in node.items():
        item = get(key)
        if item is None:
            if fill.__class__ is _Marker:
                item = [] if fill is EMPTY_LIST else shape(sub, {}) if sub is not None else {}
            else:
                item = fill
        elif sub is not None:
            if sub.__class__ is dict:
                item = shape(sub, item)
            elif item.__class__ is list:
                item = [shape(sub[0], x) for x in item]
        out[key] = item
    if not out.keys() >= value.keys():
        for key, extra in value.items():
            if key not in out:
                out[key] = extra
    return out


def allow_example_nulls(schema: dict, example: Any, declared: dict | None = None) -> dict:
    """Return a copy of ``schema`` that also accepts null wherever ``example`` shows null.

    The seed's example has nulls the official schema lacks (``system_fingerprint``); the output
    keeps them, so the output is checked against the official schema with these allowed, and
    with the nulls ``declared`` (the manifest's output schema) allows (``usage``).
    """
    schema = copy.deepcopy(schema)
    defs = schema.get("$defs", {})
    _allow(schema, example, defs, declared)
    return schema


def _allow(node: dict, example: Any, defs: dict, declared: Any) -> None:
    node = _inline(node, defs)
    declared = declared if isinstance(declared, dict) else {}
    if isinstance(example, dict):
        props = node.get("properties") or {}
        own = declared.get("properties") or {}
        for key, value in example.items():
            if key not in props:
                continue
            if value is None or (isinstance(own.get(key), dict) and _nullable(own[key])):
                props[key] = {"anyOf": [props[key], {"type": "null"}]}
            if value is not None:
                target = props[key]["anyOf"][0] if "anyOf" in props[key] else props[key]
                target = dict(target)
                if "anyOf" in props[key]:
                    props[key]["anyOf"][0] = target
                else:
                    props[key] = target
                _allow(target, value, defs, own.get(key))
    elif isinstance(example, list) and example and isinstance(node.get("items"), dict):
        node["items"] = dict(node["items"])
        _allow(node["items"], example[0], defs, declared.get("items"))


def _inline(node: dict, defs: dict) -> dict:
    """Replace a ``$ref`` in place by a copy of its target, so changes stay on this path."""
    while "$ref" in node:
        target = copy.deepcopy(defs[node.pop("$ref").rsplit("/", 1)[-1]])
        for key, value in target.items():
            node.setdefault(key, value)
    return node
