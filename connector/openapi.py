"""The action server's OpenAPI documents, generated from the manifest.

``document()`` is OpenAPI 3.1 (JSON Schema types, nulls as ``"null"``); ``document(swagger2=True)``
is OpenAPI 2.0 for Power Automate, with ``x-ms-summary`` (labels), ``x-ms-visibility`` (Basic
is ``important``, Advanced ``advanced``) and ``x-ms-dynamic-values`` (dropdowns fed by the
options route). Each action has its own operations, so that its form is typed.
"""

from __future__ import annotations

import json
from copy import deepcopy
from pathlib import Path
from typing import Any

from .errors import ERROR_TYPES
from .manifest import Action, Manifest, Param, load_manifest

FILES = {"openapi.json": False, "swagger.json": True}
KEY_HEADER = "X-OpenAI-Api-Key"
BASE_URL_HEADER = "X-OpenAI-Base-Url"
# HTTP statuses a call of each kind can answer, besides its success (from ERROR_TYPES).
_CALL_ERRORS = sorted({t.http_status for t in ERROR_TYPES.values()} - {405})
_READ_ERRORS = [401, 404, 500]

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message", "retryable"],
            "properties": {
                "type": {"type": "string", "enum": list(ERROR_TYPES)},
                "message": {"type": "string"},
                "retryable": {"type": "boolean"},
                "status": {"type": ["integer", "null"], "description": "The API's HTTP status."},
                "code": {"type": ["string", "integer", "null"]},
                "param": {"type": ["string", "null"]},
                "request_id": {"type": ["string", "null"]},
                "attempts": {"type": ["integer", "null"]},
                "retry_after": {"type": ["number", "null"]},
                "body": {"type": ["string", "null"], "description": "The raw reply, capped."},
                "partial": {
                    "description": "What arrived before a failure, or the output a check rejected."
                },
                "fields": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["name", "message"],
                        "properties": {
                            "name": {"type": "string"},
                            "label": {"type": "string"},
                            "message": {"type": "string"},
                            "path": {"type": "string"},
                        },
                    },
                },
            },
        }
    },
}
_ACCEPTED = {
    "type": "object",
    "required": ["id", "state", "location"],
    "properties": {
        "id": {"type": "string"},
        "action": {"type": "string"},
        "state": {"type": "string", "enum": ["running"]},
        "location": {"type": "string"},
    },
}
_PREPARED = {
    "type": "object",
    "required": ["method", "url", "headers"],
    "properties": {
        "method": {"type": "string"},
        "url": {"type": "string"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "body": {"type": ["object", "null"]},
    },
}
_OPTIONS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["value", "label"],
        "properties": {"value": {"type": "string"}, "label": {"type": "string"}},
    },
}
_ACTIONS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["id", "title", "description"],
        "properties": {k: {"type": "string"} for k in ("id", "title", "description")},
    },
}
_OBJECT = {"type": "object"}
_HEALTH = {"type": "object", "properties": {"status": {"type": "string"}}}


def _field(p: Param, *, swagger2: bool) -> dict[str, Any]:
    """Return the schema of one form field."""
    native = p.type if isinstance(p.type, list) else [p.type]
    if p.input in ("list", "json"):  # JSON text, or comma-separated text, is accepted too
        types = ["string"] if swagger2 else list(dict.fromkeys([*native, "string"]))
    else:
        types = native[:1]
    s: dict[str, Any] = {"type": types[0] if len(types) == 1 else types}
    s["description"] = p.description.strip()
    if p.input not in ("list", "json"):
        if p.enum:
            s["enum"] = list(p.enum)
        if p.minimum is not None and abs(p.minimum) < 1e15:
            s["minimum"] = p.minimum
        if p.maximum is not None and abs(p.maximum) < 1e15:
            s["maximum"] = p.maximum
        if p.max_length:
            s["maxLength"] = p.max_length
    s["title"] = p.label
    if p.deprecated:
        s["deprecated"] = True
    if swagger2:
        s.pop("deprecated", None)
        s["x-ms-summary"] = p.label
        s["x-ms-visibility"] = "important" if p.visibility == "basic" else "advanced"
    return s


def _form(action: Action, *, swagger2: bool) -> dict[str, Any]:
    props = {p.name: _field(p, swagger2=swagger2) for p in action.parameters}
    if swagger2:
        for p in action.parameters:
            if p.options is not None:
                props[p.name]["x-ms-dynamic-values"] = {
                    "operationId": _options_id(action, p),
                    "value-path": "value",
                    "value-title": "label",
                }
    form: dict[str, Any] = {"type": "object", "properties": props}
    required = [p.name for p in action.parameters if p.required]
    if required:
        form["required"] = required
    return form


def _options_id(action: Action, p: Param) -> str:
    return f"{action.id}_{p.name}_options"


def _swagger_schema(schema: Any) -> Any:
    """Return a JSON Schema as OpenAPI 2.0 takes it: one type, ``x-nullable`` for nulls."""
    if isinstance(schema, list):
        return [_swagger_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for k, v in schema.items():
        if k == "type" and isinstance(v, list):
            kinds = [t for t in v if t != "null"]
            if "null" in v:
                out["x-nullable"] = True
            if len(kinds) == 1:
                out["type"] = kinds[0]
        elif k == "properties":
            out[k] = {name: _swagger_schema(s) for name, s in v.items()}
        elif k == "deprecated":
            continue
        else:
            out[k] = _swagger_schema(v) if k in ("items", "additionalProperties") else v
    return out


class _Builder:
    """Collects operations for one of the two formats."""

    def __init__(self, manifest: Manifest, swagger2: bool) -> None:
        self.manifest = manifest
        self.swagger2 = swagger2
        self.paths: dict[str, dict[str, Any]] = {}
        self.schemas: dict[str, dict[str, Any]] = {}

    def schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return _swagger_schema(deepcopy(schema)) if self.swagger2 else deepcopy(schema)

    def ref(self, name: str, schema: dict[str, Any]) -> dict[str, Any]:
        """Declare a named schema once; return a reference to it."""
        self.schemas.setdefault(name, self.schema(schema))
        where = "#/definitions/" if self.swagger2 else "#/components/schemas/"
        return {"$ref": where + name}

    def response(
        self,
        description: str,
        schema: tuple[str, dict],
        headers: dict | None = None,
        text: bool = False,
    ) -> dict[str, Any]:
        """Return a response whose body is the named schema (inline when ``text``)."""
        out: dict[str, Any] = {"description": description}
        body = self.schema(schema[1]) if text else self.ref(*schema)
        if self.swagger2:
            out["schema"] = body
        else:
            out["content"] = {("text/plain" if text else "application/json"): {"schema": body}}
        if headers:
            out["headers"] = {
                name: {"type": "string", "description": d}
                if self.swagger2
                else {"description": d, "schema": {"type": "string"}}
                for name, d in headers.items()
            }
        return out

    def operation(
        self,
        method: str,
        path: str,
        op_id: str,
        summary: str,
        description: str,
        ok: dict[str, dict[str, Any]],
        *,
        errors: list[int],
        body: tuple[str, dict] | None = None,
        params: list[dict] | None = None,
        public: bool = False,
        visibility: str | None = None,
        tenant: bool = False,
    ) -> None:
        op: dict[str, Any] = {
            "operationId": op_id,
            "summary": summary,
            "description": description,
            "responses": dict(ok),
        }
        for status in errors:
            if public and status == 401:
                continue
            op["responses"][str(status)] = self.response(_reason(status), ("Error", _ERROR))
        parameters = list(params or [])
        if tenant:
            parameters.append(
                self.header(
                    BASE_URL_HEADER,
                    "Base URL for this call (only when the server allows the host).",
                )
            )
        if body is not None:
            if self.swagger2:
                parameters.append(
                    {"name": "form", "in": "body", "required": True, "schema": self.ref(*body)}
                )
            else:
                op["requestBody"] = {
                    "required": False,
                    "content": {"application/json": {"schema": self.ref(*body)}},
                }
        if parameters:
            op["parameters"] = parameters
        if public:
            op["security"] = []
        elif tenant:
            op["security"] = [{"serverToken": [], "openaiKey": []}, {"serverToken": []}]
        if self.swagger2:
            op["produces"] = ["text/plain" if path == "/metrics" else "application/json"]
            if body is not None:
                op["consumes"] = ["application/json"]
            if visibility:
                op["x-ms-visibility"] = visibility
        self.paths.setdefault(path, {})[method] = op

    def header(self, name: str, description: str) -> dict[str, Any]:
        if self.swagger2:
            return {
                "name": name,
                "in": "header",
                "required": False,
                "type": "string",
                "description": description,
                "x-ms-visibility": "advanced",
            }
        return {
            "name": name,
            "in": "header",
            "required": False,
            "description": description,
            "schema": {"type": "string"},
        }

    def path_param(self, name: str, description: str, enum: list[str] | None = None) -> dict:
        schema: dict[str, Any] = {"type": "string"}
        if enum:
            schema["enum"] = enum
        if self.swagger2:
            return {
                "name": name,
                "in": "path",
                "required": True,
                "description": description,
                **schema,
            }
        return {
            "name": name,
            "in": "path",
            "required": True,
            "description": description,
            "schema": schema,
        }


def _reason(status: int) -> str:
    from http import HTTPStatus

    types = [n for n, t in ERROR_TYPES.items() if t.http_status == status]
    return f"{HTTPStatus(status).phrase}: " + ", ".join(f"`{t}`" for t in types)


def _action_operations(b: _Builder, a: Action) -> None:
    name = "".join(w.title() for w in a.id.split("_"))
    form = (name + "Form", _form(a, swagger2=b.swagger2))
    output = (name + "Output", a.output.schema_)
    base = f"/actions/{a.id}"
    b.operation(
        "post",
        f"{base}/run",
        a.id,
        a.title,
        f"{a.description.strip()} Waits for the reply (see the async operation for long runs).",
        {"200": b.response("The output, shaped like the API's example response.", output)},
        errors=_CALL_ERRORS,
        body=form,
        visibility="important",
        tenant=True,
    )
    b.operation(
        "post",
        f"{base}/runs",
        f"{a.id}_async",
        f"{a.title} (async)",
        "Starts the run and answers 202 with a Location to poll; the poll answers 202 while "
        "it runs, then the output (200) or the error.",
        {
            "202": b.response(
                "Started; poll the Location.",
                ("RunAccepted", _ACCEPTED),
                {"Location": "Where to poll.", "Retry-After": "Seconds until the next poll."},
            ),
            "200": b.response("The output (from the poll), like the sync operation's.", output),
        },
        errors=_CALL_ERRORS,
        body=form,
        visibility="advanced",
        tenant=True,
    )
    b.operation(
        "post",
        f"{base}/dry-run",
        f"{a.id}_dry_run",
        f"{a.title} (dry run)",
        "The request that the run would send, with secrets redacted. Nothing is sent.",
        {"200": b.response("The request: method, URL, headers, body.", ("Request", _PREPARED))},
        errors=_CALL_ERRORS,
        body=form,
        visibility="advanced",
        tenant=True,
    )
    for p in a.parameters:
        if p.options is None:
            continue
        b.operation(
            "get",
            f"{base}/options/{p.name}",
            _options_id(a, p),
            f"{p.label} options",
            f"The values offered for {p.label} (from {b.manifest.action(p.options.action).title}).",
            {"200": b.response("Options as value and label.", ("Options", _OPTIONS))},
            errors=_CALL_ERRORS,
            visibility="internal",
            tenant=True,
        )


def document(*, swagger2: bool = False, manifest: Manifest | None = None) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document, or with ``swagger2`` the OpenAPI 2.0 one."""
    m = manifest or load_manifest()
    b = _Builder(m, swagger2)
    ids = [a.id for a in m.actions]
    b.operation(
        "get",
        "/healthz",
        "healthz",
        "Health",
        "Answers while the server runs; needs no token.",
        {"200": b.response("Running.", ("Health", _HEALTH))},
        errors=[500],
        public=True,
        visibility="internal",
    )
    b.operation(
        "get",
        "/metrics",
        "metrics",
        "Metrics",
        "Prometheus text: runs by action and outcome, latency, upstream attempts.",
        {"200": b.response("Prometheus text format.", ("Text", {"type": "string"}), text=True)},
        errors=[401, 500],
        visibility="internal",
    )
    b.operation(
        "get",
        "/actions",
        "list_actions",
        "Actions",
        "The actions this connector offers.",
        {"200": b.response("The actions.", ("Actions", _ACTIONS))},
        errors=[401, 500],
        visibility="internal",
    )
    b.operation(
        "get",
        "/actions/{action}",
        "describe_action",
        "Describe an action",
        "An action's parameters, Basic and Advanced, and its example output.",
        {"200": b.response("The describe document.", ("Description", _OBJECT))},
        errors=_READ_ERRORS,
        params=[b.path_param("action", "The action's id.", ids)],
        visibility="internal",
    )
    for a in m.actions:
        _action_operations(b, a)
    b.operation(
        "get",
        "/runs/{run_id}",
        "get_run",
        "Async run",
        "202 while the run is running; then its output (200) or its error object.",
        {
            "200": b.response("The run's output.", ("RunOutput", _OBJECT)),
            "202": b.response(
                "Still running.",
                ("RunAccepted", _ACCEPTED),
                {"Location": "Where to poll.", "Retry-After": "Seconds until the next poll."},
            ),
        },
        errors=_CALL_ERRORS,
        params=[b.path_param("run_id", "The id from the Location of the 202.")],
        visibility="internal",
    )
    for path, op_id, title in (
        ("/openapi.json", "openapi", "OpenAPI 3.1 document"),
        ("/swagger.json", "swagger", "OpenAPI 2.0 document (Power Automate)"),
    ):
        b.operation(
            "get",
            path,
            op_id,
            title,
            f"This server's {title}, generated from the manifest.",
            {"200": b.response("The document.", ("Document", _OBJECT))},
            errors=[401, 500],
            visibility="internal",
        )
    info = {
        "title": m.connector.title,
        "version": m.connector.version,
        "description": m.connector.description.strip(),
    }
    if swagger2:
        return {
            "swagger": "2.0",
            "info": info,
            "basePath": "/",
            "schemes": ["https", "http"],
            "consumes": ["application/json"],
            "produces": ["application/json"],
            "paths": b.paths,
            "definitions": b.schemas,
            "securityDefinitions": {
                "serverToken": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "`Bearer <token>`: one of the server's tokens.",
                },
                "openaiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": KEY_HEADER,
                    "description": "Optional: your own API key for this call.",
                },
            },
            "security": [{"serverToken": []}],
        }
    return {
        "openapi": "3.1.0",
        "info": info,
        "paths": b.paths,
        "components": {
            "schemas": b.schemas,
            "securitySchemes": {
                "serverToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "One of the server's tokens.",
                },
                "openaiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": KEY_HEADER,
                    "description": "Optional: your own API key for this call.",
                },
            },
        },
        "security": [{"serverToken": []}],
    }


def text(*, swagger2: bool = False) -> str:
    """Return a document as the JSON text that is served and written."""
    return json.dumps(document(swagger2=swagger2), indent=2, ensure_ascii=False) + "\n"


def write_all(out_dir: Path, *, check: bool = False) -> list[str]:
    """Write (or compare) docs/openapi.json and docs/swagger.json; return the stale names."""
    stale = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, swagger2 in FILES.items():
        path = out_dir / name
        new = text(swagger2=swagger2)
        if not path.is_file() or path.read_text(encoding="utf-8") != new:
            stale.append(name)
            if not check:
                path.write_text(new, encoding="utf-8")
    return stale
