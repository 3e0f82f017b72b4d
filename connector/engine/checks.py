"""The full check of a manifest: its format (pydantic), then what needs code and files.

Hooks must import and name real functions, enums must match the official request schema, the
output example must fit the official response schema, every example must pass its own input
rule, and every provider must have its class. Only a manifest the cache has not seen is checked
(``connector.engine.loader``); the errors name the file, the path inside it and the reason.
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator
from pydantic import ValidationError

from connector.engine import hooks, validation
from connector.engine.forms import Form
from connector.engine.notices import described
from connector.engine.output import allow_example_nulls
from connector.manifest.format import Manifest as ManifestFormat
from connector.manifest.paths import CARD
from connector.manifest.spec import Action, Manifest, ManifestError, Param, build
from connector.transport.providers import PROVIDERS


def _location(loc: tuple, data: Any) -> str:
    """Render a pydantic error location with names instead of list indexes where possible."""
    parts: list[str] = []
    node = data
    for key in loc:
        if isinstance(key, int) and isinstance(node, list) and 0 <= key < len(node):
            node = node[key]
            name = node.get("id") or node.get("name") if isinstance(node, dict) else None
            parts.append(f"[{key}]" + (f"({name})" if name else ""))
            continue
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, dict) and key == "schema_" and "schema" in node:
            node, key = node["schema"], "schema"
        parts.append(("." if parts else "") + str(key))
    return "".join(parts) or "(root)"


def check(data: Any, source: str = "manifest.yaml") -> tuple[dict[str, Any], Manifest]:
    """Check manifest data in full; return it normalized (every field given) and compiled.

    Raise ManifestError naming the file, the path inside it and the reason.
    """
    try:
        normalized = ManifestFormat.model_validate(data).model_dump()
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            # pydantic appends the failing model validator to the loc; keep the data path only
            loc = tuple(k for k in loc if not (isinstance(k, str) and k.startswith("function-")))
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{source}: {_location(loc, data)}: {msg}")
        raise ManifestError("Invalid manifest:\n" + "\n".join(lines)) from None
    compiled = build(normalized)
    problems = _cross_checks(compiled)
    if problems:
        raise ManifestError("Invalid manifest:\n" + "\n".join(f"{source}: {p}" for p in problems))
    return normalized, compiled


def _cross_checks(manifest: Manifest) -> list[str]:
    """Check what needs code or files beyond the models: hooks, official enums, schemas."""
    problems = _provider_problems(manifest)
    problems += _example_problems("connection.fields", manifest.connection.fields, None)
    for action in manifest.actions:
        module = None
        if action.module:
            try:
                module = hooks.module(action.module)
            except ImportError as exc:
                problems.append(f"actions.{action.id}.module: cannot import: {exc}")
        if action.request_schema and not (CARD / action.request_schema).is_file():
            problems.append(f"actions.{action.id}.request_schema: no file {action.request_schema}")
        if action.response_schema:
            problems += _response_problems(action)
        for p in action.parameters:
            where = f"actions.{action.id}.parameters.{p.name}"
            if (
                p.transform
                and module is not None
                and not callable(getattr(module, p.transform, None))
            ):
                problems.append(f"{where}.transform: {action.module} has no '{p.transform}'")
            if action.request_schema and p.enum and not p.merge:
                official = validation.official_enum(p.target, action.request_schema)
                if official is not None and sorted(official) != sorted(p.enum):
                    problems.append(
                        f"{where}.enum: {p.enum} differs from the official schema's {official}"
                    )
        if not problems and (module is not None or not action.module):
            problems += _example_problems(
                f"actions.{action.id}.parameters", action.parameters, action.module
            )
    return problems


def _response_problems(action: Action) -> list[str]:
    """Check the output example against the official response schema, its own nulls allowed."""
    where = f"actions.{action.id}.response_schema"
    try:
        schema = json.loads((CARD / action.response_schema).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"{where}: cannot read {action.response_schema}: {exc}"]
    example = action.output.example
    validator = Draft202012Validator(allow_example_nulls(schema, example, action.output.schema_))
    errors = sorted(validator.iter_errors(example), key=str)
    if errors:
        at = "/".join(str(p) for p in errors[0].absolute_path) or "(root)"
        return [f"{where}: the output example breaks it at {at}: {errors[0].message}"]
    return []


def _example_problems(where: str, params: list[Param], module: str | None) -> list[str]:
    """Run each example through its own input rule, as if an author had typed it."""
    form = Form(params, module)
    problems = []
    for p in params:
        if p.example is None:
            continue
        _, errors = form.coerce({p.name: p.example}, max_chars=10**6, max_depth=64)
        errors = [e for e in errors if e["name"] == p.name]
        if errors:
            problems.append(
                f"{where}.{p.name}.example: breaks its own rules: {described(errors[0])}"
            )
    return problems


def _provider_problems(manifest: Manifest) -> list[str]:
    unknown = sorted(p.name for p in manifest.providers if p.name not in PROVIDERS)
    if unknown:
        return [
            f"providers: {unknown} have no class in connector/transport/providers.py;"
            f" the registered ones are {list(PROVIDERS)}"
        ]
    return []
