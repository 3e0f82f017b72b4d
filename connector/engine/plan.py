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
from connector.manifest.spec import Action, Manifest, ManifestError
from connector.transport.connection import Connection


@functools.cache
def form(action: Action) -> Form:
    """Return the form that coerces this action's fields."""
    return Form(action.parameters, action.module)


@functools.cache
def output_template(action: Action) -> Template:
    """Return the output template, typed by the official response schema where there is one."""
    if action.response_schema:
        schema = json.loads((CARD / action.response_schema).read_text(encoding="utf-8"))
        return template(action.output.example, schema, action.output.schema_)
    return template(action.output.example, action.output.schema_)


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
    """Return every connection setting's declared default (the only declaration of them).

    Coerced by the settings' own rules; a setting without one is None, or () for a list.
    """
    given = {p.name: p.default for p in manifest.connection.fields if p.default is not None}
    defaults, errors = connection_form(manifest).coerce(given, max_chars=100_000, max_depth=8)
    if errors:
        raise invalid(errors, "connection defaults")
    out: dict[str, Any] = {}
    for p in manifest.connection.fields:
        value = defaults.get(p.name)
        if p.types == ("number",) and value is not None:
            value = float(value)  # YAML writes 600 for the number 600.0
        elif p.types == ("array",):
            value = tuple(value or ())
        out[p.name] = value
    missing = [name for name in Connection._fields if name not in out]
    unknown = [name for name in out if name not in Connection._fields]
    if missing or unknown:  # the transport needs every setting, and takes no other
        raise ManifestError(
            "connection.fields must declare each connection setting once, with its default;"
            + (f" missing: {', '.join(missing)}." if missing else "")
            + (f" not a setting: {', '.join(unknown)}." if unknown else "")
        )
    return out
