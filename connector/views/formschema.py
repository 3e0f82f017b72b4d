"""An action's form as JSON Schema plus a UI schema (the react-jsonschema-form convention).

The JSON Schema describes the values the form produces (after the input rules); the UI schema
says how each is entered: ``ui:order`` (Basic first), ``ui:widget``, ``ui:help``,
``ui:placeholder``, and ``ui:options.groups`` with the Advanced group collapsed.
"""

from __future__ import annotations

from typing import Any

from connector.engine.loader import load_manifest
from connector.manifest.spec import Action, Param
from connector.views.docs import notes

DIALECT = "https://json-schema.org/draft/2020-12/schema"
GROUPS = (("basic", "Basic Parameters", False), ("advanced", "Advanced Parameters", True))
# input rule -> (widget, inputmode): numbers are typed as text so that the connector's own
# rules (" 0.2 ", "1e-1") apply and a wrong value is reported, not silently dropped.
WIDGETS = {
    "text": ("text", None),
    "integer": ("text", "numeric"),
    "number": ("text", "decimal"),
    "boolean": ("select", None),
    "enum": ("select", None),
    "list": ("text", None),
    "json": ("json", None),
}


def _bound(x: float) -> int | float:
    # Integral bounds print as integers; beyond 2**53 a float is all the manifest kept.
    return int(x) if float(x).is_integer() and abs(x) < 2**53 else x


def property_schema(p: Param) -> dict[str, Any]:
    """Return the JSON Schema of the value one parameter produces."""
    prop: dict[str, Any] = {"title": p.label, "description": p.description.strip()}
    prop["type"] = list(p.types) if len(p.types) > 1 else p.types[0]
    if p.minimum is not None:
        prop["minimum"] = _bound(p.minimum)
    if p.maximum is not None:
        prop["maximum"] = _bound(p.maximum)
    for key, value in (
        ("minLength", p.min_length),
        ("maxLength", p.max_length),
        ("minItems", p.min_items),
        ("maxItems", p.max_items),
    ):
        if value is not None:
            prop[key] = value
    if p.input == "list":
        prop["items"] = {"type": "string", **({"enum": p.enum} if p.enum else {})}
    elif p.enum:
        prop["enum"] = list(p.enum)
    if p.deprecated:
        prop["deprecated"] = True
    if p.example is not None:
        prop["examples"] = [p.example]
    return prop


def field_ui(action: Action, p: Param) -> dict[str, Any]:
    """Return the UI schema of one parameter: widget, help, placeholder and options."""
    widget, inputmode = WIDGETS[p.input]
    options: dict[str, Any] = {}
    if inputmode:
        options["inputMode"] = inputmode
    if p.options is not None:
        widget = "combobox"
        options["source"] = f"/actions/{action.id}/options/{p.name}"
        options["freeText"] = p.options.free_text
    placeholder = None
    if p.example is not None:
        placeholder = p.example_text(indent=2)
    if p.input == "json":
        # Tall enough for the example, so an author who types it sees all of it.
        lines = placeholder.count("\n") + 1 if placeholder else 1
        options["rows"] = max(3, min(12, lines + 1))
        options["textFallback"] = p.text_fallback
    ui: dict[str, Any] = {"ui:widget": widget, "ui:help": " ".join(notes(p))}
    if placeholder is not None:
        ui["ui:placeholder"] = placeholder
    if options:
        ui["ui:options"] = options
    return ui


def form_schema(action_id: str) -> dict[str, Any]:
    """Return ``{action, title, description, schema, uiSchema}`` for an action's form."""
    action = load_manifest().action(action_id)
    groups = [
        {
            "name": name,
            "title": title,
            "collapsed": collapsed,
            "fields": [p.name for p in action.parameters if p.visibility == name],
        }
        for name, title, collapsed in GROUPS
    ]
    groups = [g for g in groups if g["fields"]]
    schema = {
        "$schema": DIALECT,
        "title": action.title,
        "description": action.description.strip(),
        "type": "object",
        "required": [p.name for p in action.parameters if p.required],
        "properties": {p.name: property_schema(p) for p in action.parameters},
        "additionalProperties": False,
    }
    ui: dict[str, Any] = {
        "ui:order": [name for g in groups for name in g["fields"]],
        "ui:options": {"groups": groups},
    }
    ui.update({p.name: field_ui(action, p) for p in action.parameters})
    return {
        "action": action.id,
        "title": action.title,
        "description": action.description.strip(),
        "method": action.method,
        "path": action.path,
        "schema": schema,
        "uiSchema": ui,
    }
