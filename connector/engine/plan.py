"""What the engine derives from the compiled manifest, once per object: forms and templates.

The compiled objects (``connector.manifest.spec``) stay plain data; the form that coerces an action's
fields and the template that shapes its output are the engine's, built on first use and kept
for the life of the object (the loader keeps each manifest for the process).
"""

from __future__ import annotations

import functools
import json
from typing import Any

from connector.engine.forms import Form, invalid
from connector.engine.output import Template, template
from connector.manifest.paths import CARD
from connector.manifest.spec import Action, Manifest


@functools.cache
def form(action: Action) -> Form:
    """Return the form that coerces this action's fields."""
    return Form(action.parameters, action.module)


@functools.cache
def output_template(action: Action) -> Template:
    """Return the output template, typed by the official response schema where there is one."""
    if action.response_schema:
        schema = json.loads((CARD / action.response_schema).read_text(encoding="utf-8"))
    else:
        schema = action.output.schema_
    return template(action.output.example, schema)


@functools.cache
def connection_form(manifest: Manifest) -> Form:
    """Return the form that coerces connection settings."""
    return Form(manifest.connection.fields)


@functools.cache
def connection_labels(manifest: Manifest) -> dict[str, str]:
    """Return each connection setting's form label by its name (for the transport's errors)."""
    return {p.name: p.label for p in manifest.connection.fields}


@functools.cache
def connection_defaults(manifest: Manifest) -> dict[str, Any]:
    """Return the connection settings' declared defaults, coerced by their own rules."""
    given = {p.name: p.default for p in manifest.connection.fields if p.default is not None}
    defaults, errors = connection_form(manifest).coerce(given, max_chars=100_000, max_depth=8)
    if errors:
        raise invalid(errors, "connection defaults")
    # YAML writes 600 for the number 600.0: keep Connection's types whatever the spelling.
    for p in manifest.connection.fields:
        if p.types == ("number",) and p.name in defaults:
            defaults[p.name] = float(defaults[p.name])
    return defaults
