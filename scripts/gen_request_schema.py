"""Write the request and response JSON Schemas from the official OpenAPI schemas.

    python scripts/gen_request_schema.py [REFERENCE] [--check]

REFERENCE defaults to ../shared/reference/openai-chat-schemas.yaml (relative to the repo root).
The output is committed under schemas/; ``--check`` exits 1 when a committed file differs from
what would be written, 2 when the reference cannot be read.

The conversion, OpenAPI 3.0 style to JSON Schema draft 2020-12:
- ``$ref: '#/components/schemas/X'`` becomes ``#/$defs/X``; only reachable schemas are kept.
- ``nullable: true`` becomes a type list with "null" (and null in an enum), or
  ``anyOf [schema, {type: null}]`` when the schema has no plain type. ``anyOf [X, {type: null}]``
  with a plain-typed X is folded the same way, so errors name the real constraint.
- ``discriminator`` and ``x-*`` extensions are dropped (the oneOf stays), ``example`` becomes
  ``examples``, relative doc links become absolute.
- The request root's ``allOf`` is flattened into one object; a property defined more than
  once keeps the intersection of its definitions (``top_logprobs``).
- A few limits the spec states only in prose are added (``PROSE_LIMITS``), each with a
  ``$comment``.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
DEFAULT_REFERENCE = REPO.parent / "shared" / "reference" / "openai-chat-schemas.yaml"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
DOCS_SITE = "https://platform.openai.com"
OUTPUTS = {
    "CreateChatCompletionRequest": REPO / "schemas" / "create_chat_completion.request.schema.json",
    "CreateChatCompletionResponse": REPO
    / "schemas"
    / "create_chat_completion.response.schema.json",
}
TITLES = {
    "CreateChatCompletionRequest": "Create chat completion request",
    "CreateChatCompletionResponse": "Create chat completion response",
}
OPENAPI_REF = "#/components/schemas/"
DROPPED_KEYS = {"discriminator", "nullable", "example"}
ANNOTATIONS = ("title", "description", "default", "deprecated", "examples", "$comment")

NAME_RULE = {
    "pattern": "^[a-zA-Z0-9_-]+$",
    "maxLength": 64,
    "$comment": "Limit stated in the description: a-z, A-Z, 0-9, _ and -, at most 64.",
}
# (schema name, JSON pointer inside it) -> keywords merged in. The spec states these limits
# only in descriptions; the API enforces them, so checking them early saves a round trip.
PROSE_LIMITS: dict[tuple[str, str], dict[str, Any]] = {
    ("Metadata", "/anyOf/0"): {
        "maxProperties": 16,
        "propertyNames": {"maxLength": 64},
        "additionalProperties": {"type": "string", "maxLength": 512},
        "$comment": "Limits stated in the description: 16 pairs, keys <= 64, values <= 512.",
    },
    ("CreateChatCompletionRequest", "/allOf/1/properties/logit_bias"): {
        "propertyNames": {"pattern": "^[0-9]+$"},
        "additionalProperties": {"type": "integer", "minimum": -100, "maximum": 100},
        "$comment": "Limits stated in the description: token ids mapped to -100..100.",
    },
    ("CreateChatCompletionRequest", "/allOf/1/properties/seed"): {
        "minimum": -(2**63),
        "maximum": 2**63 - 1,
        "$comment": "The spec's bounds are int64 rounded through a double; exact int64 here.",
    },
    ("FunctionObject", "/properties/name"): NAME_RULE,
    ("ChatCompletionFunctions", "/properties/name"): NAME_RULE,
    ("ResponseFormatJsonSchema", "/properties/json_schema/properties/name"): NAME_RULE,
}


def main(argv: list[str] | None = None) -> int:
    """Write (or, with --check, compare) the generated schema files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", nargs="?", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--check", action="store_true", help="exit 1 if a committed file is stale")
    args = parser.parse_args(argv)
    try:
        spec = yaml.safe_load(args.reference.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        print(f"cannot read the reference {args.reference}: {exc}", file=sys.stderr)
        return 2
    stale = 0
    for root, path in OUTPUTS.items():
        try:
            text = render(build(spec, root))
        except (KeyError, IndexError, ValueError) as exc:  # the reference changed shape
            print(f"cannot convert {root}: {exc!r}", file=sys.stderr)
            return 2
        old = path.read_text(encoding="utf-8") if path.exists() else ""
        if args.check:
            if old != text:
                stale += 1
                print(
                    f"{path.relative_to(REPO)} is stale; run {Path(__file__).name}", file=sys.stderr
                )
                diff = difflib.unified_diff(
                    old.splitlines(), text.splitlines(), "committed", "generated", lineterm="", n=1
                )
                print("\n".join(list(diff)[:40]), file=sys.stderr)
        elif old != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(REPO)}")
    return 1 if stale else 0


def render(schema: dict[str, Any]) -> str:
    """Return the schema as the committed text."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def build(spec: dict[str, Any], root: str) -> dict[str, Any]:
    """Return a self-contained draft 2020-12 schema for ``root`` and what it references."""
    spec = apply_prose_limits(spec)
    body = flatten(spec, spec[root]) if "allOf" in spec[root] else spec[root]
    top = convert(body)
    examples = _meta_examples(spec[root])
    names = reachable(spec, body)
    out: dict[str, Any] = {
        "$schema": DRAFT,
        "title": TITLES.get(root, root),
        "$comment": f"Generated from the official '{root}' by scripts/gen_request_schema.py; "
        "do not edit.",
    }
    out.update(top)
    if examples:
        out["examples"] = examples
    out["$defs"] = {name: convert(spec[name]) for name in spec if name in names}
    check_disjoint_one_ofs(out)
    return out


def apply_prose_limits(spec: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``spec`` with ``PROSE_LIMITS`` merged in; fail if a target moved."""
    spec = copy.deepcopy(spec)
    for (name, pointer), extra in PROSE_LIMITS.items():
        node = spec[name]
        for part in pointer.strip("/").split("/"):
            node = node[int(part)] if isinstance(node, list) else node[part]
        node.update(copy.deepcopy(extra))
    return spec


def flatten(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """Return an ``allOf`` of objects as one object: properties merged, required united."""
    out: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
    for part in schema["allOf"]:
        part = spec[part["$ref"].removeprefix(OPENAPI_REF)] if "$ref" in part else part
        part = flatten(spec, part) if "allOf" in part else part
        for name, prop in part.get("properties", {}).items():
            props = out["properties"]
            props[name] = merge(props[name], prop, name) if name in props else prop
        out["required"] += [r for r in part.get("required", []) if r not in out["required"]]
    return out


def merge(a: dict[str, Any], b: dict[str, Any], name: str) -> dict[str, Any]:
    """Return the intersection of two definitions of one property (``b`` is the later one)."""
    a, b = convert(a), convert(b)
    if a == b:
        return b
    out = {**a, **b}
    types = [t for t in _types(a) if t in _types(b)]
    out["type"] = types[0] if len(types) == 1 else types
    for key, pick in (("minimum", max), ("maximum", min), ("minLength", max), ("maxLength", min)):
        values = [s[key] for s in (a, b) if key in s]
        if values:
            out[key] = pick(values)
    known = {"type", "minimum", "maximum", "minLength", "maxLength", *ANNOTATIONS}
    for key in set(a) | set(b):
        if key not in known and a.get(key) != b.get(key):
            raise ValueError(f"cannot merge the definitions of {name!r}: they differ in {key!r}")
    return out


def _types(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type")
    if kind is None:
        raise ValueError(f"cannot merge a property without a plain type: {schema}")
    return [kind] if isinstance(kind, str) else list(kind)


def convert(node: Any) -> Any:
    """Return one OpenAPI schema node as draft 2020-12."""
    if isinstance(node, list):
        return [convert(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in DROPPED_KEYS or key.startswith("x-"):
            continue
        if key == "$ref" and value.startswith(OPENAPI_REF):
            out[key] = "#/$defs/" + value.removeprefix(OPENAPI_REF)
        elif key == "description":
            out[key] = clean_description(value)
        elif key in ("properties", "$defs", "patternProperties"):
            out[key] = {name: convert(sub) for name, sub in value.items()}
        elif key in ("enum", "default", "const", "required"):
            out[key] = copy.deepcopy(value)
        else:
            out[key] = convert(value)
    if "example" in node and "examples" not in out:
        out["examples"] = [copy.deepcopy(node["example"])]
    out = unwrap_single_ref(out)
    if node.get("nullable"):
        out = make_nullable(out)
    return fold_null_branch(out)


def unwrap_single_ref(schema: dict[str, Any]) -> dict[str, Any]:
    """Return ``oneOf [{$ref: X}]`` (one branch) as ``$ref: X`` beside the annotations."""
    branches = schema.get("oneOf")
    if not branches or len(branches) != 1 or set(branches[0]) != {"$ref"}:
        return schema
    if set(schema) - {"oneOf", *ANNOTATIONS}:
        return schema
    rest = {k: v for k, v in schema.items() if k != "oneOf"}
    return {**rest, "$ref": branches[0]["$ref"]}


def make_nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """Return ``schema`` that also accepts null."""
    kind = schema.get("type")
    if isinstance(kind, str) and not ({"$ref", "oneOf", "anyOf", "allOf"} & set(schema)):
        out = {**schema, "type": [kind, "null"]}
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        return out
    if isinstance(kind, list):
        return schema if "null" in kind else {**schema, "type": [*kind, "null"]}
    # A oneOf gets the null branch through anyOf: a nullable branch inside it (as in
    # StopConfiguration) would otherwise match null twice and fail the oneOf.
    outer = {k: v for k, v in schema.items() if k in ANNOTATIONS}
    inner = {k: v for k, v in schema.items() if k not in ANNOTATIONS}
    return {**outer, "anyOf": [inner, {"type": "null"}]}


def fold_null_branch(schema: dict[str, Any]) -> dict[str, Any]:
    """Return ``anyOf [X, {type: null}]`` as X with a nullable type when X is plain-typed."""
    branches = schema.get("anyOf")
    if not branches or len(branches) != 2 or branches[1] != {"type": "null"}:
        return schema
    first = branches[0]
    if not isinstance(first.get("type"), str) or {"$ref", "oneOf", "anyOf", "allOf"} & set(first):
        return schema
    rest = {k: v for k, v in schema.items() if k != "anyOf"}
    return {**make_nullable(first), **rest}


def clean_description(text: str) -> str:
    """Return a description with paragraphs unwrapped and relative doc links made absolute."""
    text = re.sub(r"\]\((/[^)\s]*)\)", lambda m: f"]({DOCS_SITE}{m.group(1)})", text)
    paragraphs = []
    for para in re.split(r"\n\s*\n", text.strip()):
        lines = [line.rstrip() for line in para.splitlines()]
        structured = any(re.match(r"\s*(```|[-*] |\d+\. )", line) for line in lines)
        if structured:
            paragraphs.append("\n".join(lines))
        else:
            paragraphs.append(re.sub(r"\s+", " ", " ".join(lines)).strip())
    return "\n\n".join(paragraphs)


def reachable(spec: dict[str, Any], node: Any) -> set[str]:
    """Return the names of every schema ``node`` references, directly or not."""
    seen: set[str] = set()
    todo = [node]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith(OPENAPI_REF):
                name = ref.removeprefix(OPENAPI_REF)
                if name not in seen:
                    seen.add(name)
                    todo.append(spec[name])
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return seen


def check_disjoint_one_ofs(schema: dict[str, Any]) -> None:
    """Fail when two branches of a oneOf could both match one value."""
    defs = schema.get("$defs", {})
    for where, branches in _one_ofs(schema, "#"):
        shapes = [_shape(b, defs) for b in branches]
        for i, (types_i, tags_i) in enumerate(shapes):
            for types_j, tags_j in shapes[i + 1 :]:
                common = set(types_i) & set(types_j)
                if not common:
                    continue
                if common == {"object"} and _tags_differ(tags_i, tags_j):
                    continue
                raise ValueError(f"oneOf at {where} has branches that can both match")


def _one_ofs(node: Any, where: str):
    if isinstance(node, dict):
        if isinstance(node.get("oneOf"), list):
            yield where, node["oneOf"]
        for key, value in node.items():
            yield from _one_ofs(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _one_ofs(value, f"{where}/{i}")


def _shape(branch: dict[str, Any], defs: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """Return (JSON types, {required property: its one allowed value}) of a branch."""
    while "$ref" in branch:
        branch = defs[branch["$ref"].removeprefix("#/$defs/")]
    kind = branch.get("type")
    if kind is None and "oneOf" in branch:
        types = [t for sub in branch["oneOf"] for t in _shape(sub, defs)[0]]
        return types, {}
    if kind is None:
        return ["null", "boolean", "object", "array", "number", "string"], {}
    types = [kind] if isinstance(kind, str) else list(kind)
    tags = {
        name: prop["enum"][0]
        for name, prop in branch.get("properties", {}).items()
        if name in branch.get("required", []) and len(prop.get("enum", [])) == 1
    }
    return types, tags


def _tags_differ(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return any(name in b and b[name] != value for name, value in a.items())


def _meta_examples(schema: dict[str, Any]) -> list[Any]:
    """Return the spec's ``x-oaiMeta.example`` as JSON Schema ``examples`` when it is JSON."""
    text = (schema.get("x-oaiMeta") or {}).get("example")
    try:
        return [json.loads(text)] if isinstance(text, str) else []
    except ValueError:
        return []


if __name__ == "__main__":
    sys.exit(main())
