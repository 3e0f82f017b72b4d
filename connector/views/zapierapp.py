"""The Zapier integration (package.json, index.js), generated from the manifest.

A Zapier Platform CLI integration as ``zapier init`` lays one out: ``index.js`` exports the app
definition and ``package.json`` pins ``zapier-platform-core``. The runtime is the template
``connector/views/templates/zapier.index.js``; what the manifest says (each writing action's
fields, labels, help and example output; the read actions behind dropdowns) is written into it as
JSON. ``hosts/zapier/`` holds the generated copy; ``python -m connector zapier --check`` finds it
stale.
"""

from __future__ import annotations

import json
import re
from importlib.resources import files as package_files
from pathlib import Path
from typing import Any

from connector.engine.loader import load_manifest
from connector.manifest.spec import Action, Manifest, Param
from connector.version import __version__
from connector.views import files
from connector.views.shapes import CALLBACK_HEADER

PACKAGE = "openai-chat-connector-zapier"
# The runtime the app is pushed with; tests/zapier/package.json pins the same (a test holds them).
CORE_VERSION = "19.1.0"
SPEC_MARK = "/*@SPEC@*/"
CALLBACK_FIELD = "wait_for_callback"  # the create's one field that is not the manifest's
# Zapier stops a step at 30 s: a sync call gives up a little before, with an error that says why.
SYNC_TIMEOUT_SECONDS = 28
HELP_MAX = 1000  # Zapier's longest helpText
GROUPS = [
    {"key": "basic", "label": "Basic", "emphasize": True},
    {"key": "advanced", "label": "Advanced"},
]
SCALAR_TYPES = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean"}


def _template(name: str) -> str:
    return package_files("connector.views.templates").joinpath(name).read_text(encoding="utf-8")


def writes(action: Action) -> bool:
    """Return whether an action changes something (a Zapier create), not only reads."""
    return action.method != "GET"


def help_text(p: Param) -> str:
    text = " ".join(p.description.split())
    return text if len(text) <= HELP_MAX else text[: HELP_MAX - 1].rstrip() + "…"


def dropdown(p: Param) -> str:
    """Return the ``dynamic`` reference of a field with options: trigger, value key, label key."""
    return f"{p.options.action}.id.name"


def input_field(p: Param) -> dict[str, Any]:
    """Return the Zapier input field of one manifest parameter: form text, sent as typed."""
    field: dict[str, Any] = {
        "key": p.name,
        "label": p.label,
        # A JSON field gets a text box; every value stays the text typed or mapped, so the
        # connector's own input rules read it.
        "type": "text" if p.input == "json" else "string",
        "required": p.required,
        "helpText": help_text(p),
        "group": p.visibility,
    }
    if p.options is not None:
        field["dynamic"] = dropdown(p)
    elif p.enum:
        field["choices"] = list(p.enum)
    elif p.input == "boolean":
        field["choices"] = ["true", "false"]
    text = p.example_text()
    if text is not None and p.options is None:
        field["placeholder"] = text
    return field


def callback_field() -> dict[str, Any]:
    return {
        "key": CALLBACK_FIELD,
        "label": "Wait for Callback",
        "type": "boolean",
        "required": False,
        "default": "false",
        "group": "advanced",
        "helpText": "Start the run on the server's async route and let Zapier wait for the"
        " server's callback, past Zapier's 30-second limit. Only a scale-out server"
        " (CONNECTOR_RUNS_URL, CONNECTOR_CALLBACK_SECRET) calls back; another one is refused"
        " with an error.",
    }


def _types(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type", [])
    return [t for t in ([kind] if isinstance(kind, str) else kind) if t != "null"]


def _label(key: str) -> str:
    return " ".join(w.capitalize() for w in re.split(r"\[\]|__|_", key) if w)


def output_fields(schema: dict[str, Any], prefix: str = "", *, in_list: bool = False) -> list:
    """Return Zapier's output fields of an output schema, keys as Zapier flattens them.

    A nested object's keys join with ``__``, a list of objects's with ``[]`` (one level: a list
    inside a list item is one field).
    """
    fields = []
    for name, sub in schema.get("properties", {}).items():
        key, types = prefix + name, _types(sub)
        if types == ["object"] and sub.get("properties"):
            fields += output_fields(sub, key + "__", in_list=in_list)
        elif types == ["array"] and sub.get("items", {}).get("properties") and not in_list:
            fields += output_fields(sub["items"], key + "[]", in_list=True)
        else:
            field = {"key": key, "label": _label(key)}
            if len(types) == 1 and types[0] in SCALAR_TYPES:
                field["type"] = SCALAR_TYPES[types[0]]
            fields.append(field)
    return fields


def _noun(title: str) -> str:
    """Return the thing an action makes: its title without the verb (Chat Completion)."""
    return title.split(" ", 1)[-1]


def create(action: Action) -> dict[str, Any]:
    """Return what the template needs of one writing action."""
    basic = [p for p in action.parameters if p.visibility == "basic"]
    advanced = [p for p in action.parameters if p.visibility != "basic"]
    if CALLBACK_FIELD in {p.name for p in action.parameters}:
        raise ValueError(f"{action.id} has a field named {CALLBACK_FIELD}, the Zapier app's own")
    return {
        "key": action.id,
        "noun": _noun(action.title),
        "display": {"label": action.title, "description": action.description.strip()},
        "fields": [p.name for p in action.parameters],
        "inputFieldGroups": GROUPS,
        "inputFields": [input_field(p) for p in basic + advanced] + [callback_field()],
        "outputFields": output_fields(action.output.schema_),
        "sample": action.output.example,
    }


def triggers(manifest: Manifest) -> list[dict[str, Any]]:
    """Return the hidden triggers behind dropdowns: one per read action that fills a field.

    Each lists the options route of the first field it fills (``[action, field]``), as items with
    ``id`` (the value) and ``name`` (the label).
    """
    out: dict[str, dict[str, Any]] = {}
    for action in manifest.actions:
        for p in action.parameters:
            if p.options is None or p.options.action in out:
                continue
            source = manifest.action(p.options.action)
            first = source.output.example
            value = next(iter(first.get("data") or [{}]), {}).get(p.options.value) or p.label
            out[source.id] = {
                "key": source.id,
                "noun": p.label,
                "display": {
                    "label": source.title,
                    "description": source.description.strip(),
                    "hidden": True,
                },
                "route": [action.id, p.name],
                "outputFields": [{"key": "id", "label": "ID"}, {"key": "name", "label": "Name"}],
                "sample": {"id": value, "name": value},
            }
    return list(out.values())


def auth_fields() -> list[dict[str, Any]]:
    return [
        {
            "key": "url",
            "label": "Server URL",
            "type": "string",
            "required": True,
            "placeholder": "https://connector.example.com",
            "helpText": "Base URL of the connector's action server (python -m connector serve),"
            " reachable from Zapier's servers.",
        },
        {
            "key": "token",
            "label": "Server Token",
            "type": "password",
            "required": True,
            "helpText": "One of the server's bearer tokens (CONNECTOR_SERVER_TOKENS).",
        },
    ]


def app_spec(manifest: Manifest) -> dict[str, Any]:
    """Return what the index.js template needs."""
    return {
        "platformVersion": CORE_VERSION,
        "authFields": auth_fields(),
        "creates": [create(a) for a in manifest.actions if writes(a)],
        "triggers": triggers(manifest),
        "callbackField": CALLBACK_FIELD,
        "callbackHeader": CALLBACK_HEADER,
        "syncTimeoutSeconds": SYNC_TIMEOUT_SECONDS,
    }


def package_json(manifest: Manifest) -> dict[str, Any]:
    """Return the integration's package.json, as ``zapier init`` writes one."""
    return {
        "name": PACKAGE,
        "version": __version__,
        "description": f"{manifest.connector.title} chat actions of the connector's action"
        " server, as a Zapier integration.",
        "main": "index.js",
        "license": "MIT",
        "private": True,
        "engines": {"node": ">=18"},
        "dependencies": {"zapier-platform-core": CORE_VERSION},
    }


GITIGNORE = "node_modules/\nbuild/\n*.zip\n.env\n"


def render(manifest: Manifest | None = None) -> dict[str, str]:
    """Return the integration's files, path (relative to its root) to text."""
    manifest = manifest or load_manifest()
    spec = json.dumps(app_spec(manifest), indent="\t", ensure_ascii=False)
    return {
        "package.json": json.dumps(package_json(manifest), indent=2) + "\n",
        "index.js": _template("zapier.index.js").replace(SPEC_MARK, spec),
        ".gitignore": GITIGNORE,
    }


def write_all(out_dir: Path, *, check: bool = False) -> list[str]:
    """Write (or compare) the integration under ``out_dir``; return the stale files."""
    return files.sync(out_dir, render(), check=check)
