"""The Power Automate custom connector, generated from the manifest: Swagger 2.0 and apiProperties.

Only the connector's own operations are in it (each action's run and async run, the poll, the
dropdown options), written to Power Platform's rules: letters-and-digits operation ids, one
schema per operation (on its 200), a 202 with headers only, ``x-ms-summary`` on every parameter
and output field, ``x-ms-visibility`` from the manifest (Basic ``important``, Advanced
``advanced``), and the Model dropdown as ``x-ms-dynamic-values`` plus ``x-ms-dynamic-list``.
The rules, one test each: tests/test_swagger_rules.py.
"""

from __future__ import annotations

import re
from copy import deepcopy
from typing import Any

from connector.engine.loader import load_manifest
from connector.manifest.spec import Action, Manifest, Param
from connector.version import __version__
from connector.views.openapi import CALL_ERRORS, action_name, constraints, license_id, reason
from connector.views.shapes import (
    BASE_URL_HEADER,
    CALLBACK_HEADER,
    IDEMPOTENCY_HEADER,
    OPTIONS,
    RUN_HEADERS,
    WARNINGS_HEADERS,
)

SECURITY = "api_key"  # the name Power Automate gives an API-key connection parameter
_VISIBILITY = {"basic": "important", "advanced": "advanced"}
_WORDS = {"id": "ID", "url": "URL"}
_RUN_OUTPUT = {
    "type": "object",
    "description": "The output of the run's action, as its run operation answers it.",
}


def _title(name: str) -> str:
    """Return a property name in Title Case, as ``x-ms-summary`` wants it: ``prompt_tokens``."""
    return " ".join(_WORDS.get(w, w.capitalize()) for w in name.split("_"))


def _sentence(title: str) -> str:
    """Return a title in sentence case (an operation summary): acronyms keep their capitals."""
    first, *rest = title.split()
    return " ".join([first, *(w if w.isupper() else w.lower() for w in rest)])


def _schema(schema: Any, name: str | None = None) -> Any:
    """Return a JSON Schema as Swagger 2.0 takes it, every property with an ``x-ms-summary``.

    One type per schema (``x-nullable`` for a null), no ``deprecated``.
    """
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for k, v in schema.items():
        if k == "type" and isinstance(v, list):
            kinds = [t for t in v if t != "null"]
            if "null" in v:
                out["x-nullable"] = True
            if len(kinds) == 1:
                out["type"] = kinds[0]
        elif k == "properties":
            out[k] = {n: _schema(s, n) for n, s in v.items()}
        elif k in ("items", "additionalProperties"):
            out[k] = _schema(v)
        elif k not in ("deprecated", "title"):
            out[k] = deepcopy(v)
    if name is not None:
        out["x-ms-summary"] = schema.get("title") or _title(name)
    return out


def _field(action: Action, p: Param) -> dict[str, Any]:
    """Return one form field: form text (a string) unless the input is typed."""
    typed = p.input in ("text", "integer", "number", "boolean", "enum")
    s: dict[str, Any] = {"type": (p.types[0] if typed else "string")}
    s["description"] = p.description.strip()
    if typed:
        s.update(constraints(p))
    s["x-ms-summary"] = p.label
    s["x-ms-visibility"] = _VISIBILITY[p.visibility]
    if p.options is not None:
        op_id = options_id(action, p)
        s["x-ms-dynamic-values"] = {
            "operationId": op_id,
            "parameters": {},
            "value-path": "value",
            "value-title": "label",
        }
        s["x-ms-dynamic-list"] = {
            "operationId": op_id,
            "parameters": {},
            "itemValuePath": "value",
            "itemTitlePath": "label",
        }
    return s


def options_id(action: Action, p: Param) -> str:
    """Return the operation id of a field's options: ``CreateChatCompletionModelOptions``."""
    return action_name(action) + action_name(p.name) + "Options"


def _errors(statuses: list[int]) -> dict[str, Any]:
    return {str(s): {"description": reason(s)} for s in statuses}


def _ok(description: str, ref: str, warned: bool = False) -> dict[str, Any]:
    """Return a 200 of the ``ref`` definition; ``warned``: it may carry the warnings header."""
    out: dict[str, Any] = {"description": description, "schema": {"$ref": f"#/definitions/{ref}"}}
    if warned:
        out["headers"] = {
            name: {"type": kind, "description": d, "x-ms-summary": "Warnings"}
            for name, (kind, d) in WARNINGS_HEADERS.items()
        }
    return out


_ACCEPTED = {
    "description": "Queued: Power Automate polls the Location until the output is ready.",
    "headers": {
        "Location": {"type": "string", "description": "The absolute URL of the run to poll."},
        "Retry-After": {"type": "integer", "description": "Seconds to wait before polling."},
    },
}
_BASE_URL = {
    "name": BASE_URL_HEADER,
    "in": "header",
    "required": False,
    "type": "string",
    "description": "The API's base URL for this call; the server must allow its host.",
    "x-ms-visibility": "advanced",
}
# The async operation's own headers: a retried POST, and a result pushed (scale-out mode only).
_RUN_HEADERS = [
    {
        "name": name,
        "in": "header",
        "required": False,
        "type": "string",
        "x-ms-summary": summary,
        "description": RUN_HEADERS[name],
        "x-ms-visibility": "advanced",
    }
    for name, summary in (
        (IDEMPOTENCY_HEADER, "Idempotency Key"),
        (CALLBACK_HEADER, "Callback URL"),
    )
]
_RUN_ID = {
    "name": "run_id",
    "in": "path",
    "required": True,
    "type": "string",
    "x-ms-summary": "Run ID",
    "description": "The run's identifier, from the Location of the 202.",
    "x-ms-url-encoding": "single",
}


def _operation(op_id: str, summary: str, description: str, visibility: str, **rest) -> dict:
    return {
        "operationId": op_id,
        "summary": summary,
        "description": description,
        "x-ms-visibility": visibility,
        **rest,
    }


def _action_paths(m: Manifest, a: Action, definitions: dict[str, Any]) -> dict[str, Any]:
    """Return the paths of one action: run, async run, and its fields' options."""
    name = action_name(a)
    definitions[name + "Output"] = _schema(a.output.schema_)
    base_url = next(f for f in m.connection.fields if f.name == "base_url")
    params: list[dict[str, Any]] = [{**_BASE_URL, "x-ms-summary": base_url.label}]
    if a.parameters:
        form: dict[str, Any] = {
            "type": "object",
            "properties": {p.name: _field(a, p) for p in a.parameters},
        }
        required = [p.name for p in a.parameters if p.required]
        if required:
            form["required"] = required
        definitions[name + "Form"] = form
        body = {
            "name": "form",
            "in": "body",
            "required": True,
            "x-ms-summary": "Form",
            "description": f"The {a.title} form: each field as the text typed in it.",
            "schema": {"$ref": f"#/definitions/{name}Form"},
        }
        params = [*params, body]
    what = a.description.strip().rstrip(".") + "."
    paths: dict[str, Any] = {}
    paths[f"/actions/{a.id}/run"] = {
        "post": _operation(
            name,
            _sentence(a.title),
            f"{what} Waits for the reply.",
            "important",
            parameters=params,
            responses={
                "200": _ok(
                    "The output, shaped like the API's example response.", name + "Output", True
                ),
                **_errors(CALL_ERRORS),
            },
        )
    }
    paths[f"/actions/{a.id}/runs"] = {
        "post": _operation(
            name + "Async",
            _sentence(a.title) + " (async)",
            f"{what} Answers 202 at once, and the output when the poll finds the run done.",
            "advanced",
            parameters=[*params, *_RUN_HEADERS],
            responses={
                "200": _ok("The output, once the run is done.", name + "Output", True),
                "202": _ACCEPTED,
                **_errors(CALL_ERRORS),
            },
        )
    }
    for p in a.parameters:
        if p.options is None:
            continue
        source = m.action(p.options.action).title
        paths[f"/actions/{a.id}/options/{p.name}"] = {
            "get": _operation(
                options_id(a, p),
                f"{p.label} options",
                f"Lists the values offered for {p.label} (from {source}).",
                "internal",
                responses={
                    "200": _ok("The options, each a value and a label.", "Options"),
                    **_errors(CALL_ERRORS),
                },
            )
        }
    return paths


def document(manifest: Manifest | None = None) -> dict[str, Any]:
    """Return the Swagger 2.0 document of the Power Automate custom connector."""
    m = manifest or load_manifest()
    info: dict[str, Any] = {
        "title": m.connector.title,
        "version": __version__,
        "description": m.connector.description.strip(),
    }
    if spdx := license_id():
        info["license"] = {"name": spdx, "url": f"https://spdx.org/licenses/{spdx}.html"}
    doc: dict[str, Any] = {"swagger": "2.0", "info": info}
    pub = m.connector.publisher
    if pub:
        info["contact"] = {k: getattr(pub, k) for k in ("name", "url", "email")}
        doc["x-ms-connector-metadata"] = [
            {"propertyName": "Website", "propertyValue": pub.website},
            {"propertyName": "Privacy policy", "propertyValue": pub.privacy_policy},
            {"propertyName": "Categories", "propertyValue": ";".join(pub.categories)},
        ]
    definitions: dict[str, Any] = {"Options": _schema(deepcopy(OPTIONS))}
    for row in definitions["Options"]["items"]["properties"].values():
        row["description"] = {"Value": "The value sent.", "Label": "The text shown."}[
            row["x-ms-summary"]
        ]
    paths: dict[str, Any] = {}
    for a in m.actions:
        paths.update(_action_paths(m, a, definitions))
    definitions["RunOutput"] = _RUN_OUTPUT
    paths["/runs/{run_id}"] = {
        "get": _operation(
            "GetRun",
            "Get an async run",
            "Reads an async run: 202 while it runs, then its action's output or its error.",
            "internal",
            parameters=[_RUN_ID],
            responses={
                "200": _ok("The run's output.", "RunOutput", True),
                "202": _ACCEPTED,
                **_errors(CALL_ERRORS),
            },
        )
    }
    return {
        **doc,
        "basePath": "/",
        "schemes": ["https"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "paths": paths,
        "definitions": definitions,
        "securityDefinitions": {
            SECURITY: {"type": "apiKey", "in": "header", "name": "Authorization"}
        },
        "security": [{SECURITY: []}],
    }


def api_properties(manifest: Manifest | None = None) -> dict[str, Any]:
    """Return the custom connector's apiProperties.json: the server token, a securestring.

    A policy sends it as ``Authorization: Bearer <token>``, so the author pastes the bare token.
    """
    m = manifest or load_manifest()
    owner = re.sub(r"[^A-Za-z0-9 ]", "", getattr(m.connector.publisher, "name", "")).strip()
    props: dict[str, Any] = {
        "connectionParameters": {
            SECURITY: {
                "type": "securestring",
                "uiDefinition": {
                    "displayName": "Server Token",
                    "description": "One of the action server's tokens (CONNECTOR_SERVER_TOKENS).",
                    "tooltip": "The token the action server was started with.",
                    "constraints": {"tabIndex": 2, "clearText": False, "required": "true"},
                },
            }
        },
        "iconBrandColor": "#da3b01",
        "capabilities": ["actions"],
        "policyTemplateInstances": [
            {
                "templateId": "setheader",
                "title": "Send the server token as a bearer token",
                "parameters": {
                    "x-ms-apimTemplateParameter.name": "Authorization",
                    "x-ms-apimTemplateParameter.value": f"Bearer @connectionParameters('{SECURITY}')",
                    "x-ms-apimTemplateParameter.existsAction": "override",
                    "x-ms-apimTemplate-policySection": "Request",
                },
            }
        ],
    }
    if owner:
        props["publisher"] = props["stackOwner"] = owner
    return {"properties": props}
