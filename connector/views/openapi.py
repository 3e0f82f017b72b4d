"""The action server's OpenAPI 3.1 document (every route), generated from the manifest.

Written so that code generators read it whole: every array has ``items``, a field of several
types is an ``anyOf``. Power Automate's Swagger 2.0 is ``connector.views.swagger``.
"""

from __future__ import annotations

from copy import deepcopy
from http import HTTPStatus
from importlib.metadata import PackageNotFoundError, metadata
from typing import Any

from connector.engine.loader import load_manifest
from connector.errors import ERROR_TYPES
from connector.manifest.spec import Action, Manifest, Param
from connector.version import __version__
from connector.views import shapes

# HTTP statuses a call of each kind can answer, besides its success (from ERROR_TYPES).
CALL_ERRORS = sorted({t.http_status for t in ERROR_TYPES.values()} - {405})
_READ_ERRORS = [401, 404, 500]


def constraints(p: Param) -> dict[str, Any]:
    """Return a typed field's enum, bounds and length as JSON Schema (huge bounds left out)."""
    s: dict[str, Any] = {}
    if p.enum:
        s["enum"] = list(p.enum)
    if p.minimum is not None and abs(p.minimum) < 1e15:
        s["minimum"] = p.minimum
    if p.maximum is not None and abs(p.maximum) < 1e15:
        s["maximum"] = p.maximum
    if p.max_length:
        s["maxLength"] = p.max_length
    return s


def _field(p: Param) -> dict[str, Any]:
    """Return the schema of one form field: its types, and text where form text is accepted."""
    if p.input in ("list", "json"):  # JSON text, or comma-separated text, is accepted too
        kinds = list(dict.fromkeys([*p.types, "string"]))
        item = {"type": "string"} if p.input == "list" else {"type": "object"}
        alts = [{"type": t, "items": item} if t == "array" else {"type": t} for t in kinds]
        s: dict[str, Any] = alts[0] if len(alts) == 1 else {"anyOf": alts}
    else:
        s = {"type": p.types[0], **constraints(p)}
    s["description"] = p.description.strip()
    s["title"] = p.label
    if p.deprecated:
        s["deprecated"] = True
    return s


def _form(action: Action) -> dict[str, Any]:
    required = [p.name for p in action.parameters if p.required]
    props = {p.name: _field(p) for p in action.parameters}
    return {"type": "object", "properties": props, **({"required": required} if required else {})}


def action_name(action: Action | str) -> str:
    """Return an action's (or a field's) id in CamelCase: ``CreateChatCompletion``."""
    name = action if isinstance(action, str) else action.id
    return "".join(w.title() for w in name.split("_"))


class _Builder:
    """Collects the operations and their named schemas."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.paths: dict[str, dict[str, Any]] = {}
        self.schemas: dict[str, dict[str, Any]] = {}

    def ref(self, name: str, schema: dict[str, Any]) -> dict[str, Any]:
        """Declare a named schema once; return a reference to it."""
        self.schemas.setdefault(name, deepcopy(schema))
        return {"$ref": "#/components/schemas/" + name}

    def response(
        self,
        description: str,
        schema: tuple[str, dict],
        headers: dict | None = None,
        media: str = "application/json",
    ) -> dict[str, Any]:
        """Return a response whose body is the named schema (inline when it is not JSON)."""
        body = self.ref(*schema) if media == "application/json" else deepcopy(schema[1])
        out: dict[str, Any] = {"description": description, "content": {media: {"schema": body}}}
        if headers:
            out["headers"] = {
                name: {"description": d, "schema": {"type": kind}}
                for name, (kind, d) in headers.items()
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
            op["responses"][str(status)] = self.response(reason(status), ("Error", shapes.ERROR))
        parameters = list(params or [])
        if tenant:
            parameters.append(
                {
                    "name": shapes.BASE_URL_HEADER,
                    "in": "header",
                    "required": False,
                    "description": "Base URL for this call (only when the server allows the host).",
                    "schema": {"type": "string"},
                }
            )
        if body is not None:
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
        self.paths.setdefault(path, {})[method] = op


def _path_param(name: str, description: str, enum: list[str] | None = None) -> dict:
    schema: dict[str, Any] = {"type": "string"}
    if enum:
        schema["enum"] = enum
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
    }


def license_id() -> str | None:
    """Return the SPDX license of the installed package (pyproject.toml's ``license``)."""
    try:
        return metadata("openai-chat-connector")["License-Expression"]
    except PackageNotFoundError:  # a source tree that was never installed
        return None


def reason(status: int) -> str:
    types = [n for n, t in ERROR_TYPES.items() if t.http_status == status]
    return f"{HTTPStatus(status).phrase}: " + ", ".join(f"`{t}`" for t in types)


def _action_operations(b: _Builder, a: Action) -> None:
    name = action_name(a)
    form = (name + "Form", _form(a))
    output = (name + "Output", a.output.schema_)
    base = f"/actions/{a.id}"
    b.operation(
        "post",
        f"{base}/run",
        a.id,
        a.title,
        f"{a.description.strip()} Waits for the reply (see the async operation for long runs).",
        {
            "200": b.response(
                "The output, shaped like the API's example response.",
                output,
                shapes.WARNINGS_HEADERS,
            )
        },
        errors=CALL_ERRORS,
        body=form,
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
                "Queued; poll the Location.", ("RunAccepted", shapes.ACCEPTED), shapes.POLL_HEADERS
            ),
            "200": b.response(
                "The output (from the poll), like the sync operation's.",
                output,
                shapes.WARNINGS_HEADERS,
            ),
        },
        errors=CALL_ERRORS,
        body=form,
        params=[
            {
                "name": h,
                "in": "header",
                "required": False,
                "description": d,
                "schema": {"type": "string"},
            }
            for h, d in shapes.RUN_HEADERS.items()
        ],
        tenant=True,
    )
    b.operation(
        "post",
        f"{base}/dry-run",
        f"{a.id}_dry_run",
        f"{a.title} (dry run)",
        "The request that the run would send, with secrets redacted. Nothing is sent.",
        {
            "200": b.response(
                "The request: method, URL, headers, body.",
                ("Request", shapes.PREPARED),
                shapes.WARNINGS_HEADERS,
            )
        },
        errors=CALL_ERRORS,
        body=form,
        tenant=True,
    )
    for p in a.parameters:
        if p.options is None:
            continue
        b.operation(
            "get",
            f"{base}/options/{p.name}",
            f"{a.id}_{p.name}_options",
            f"{p.label} options",
            f"The values offered for {p.label} (from {b.manifest.action(p.options.action).title}).",
            {"200": b.response("Options as value and label.", ("Options", shapes.OPTIONS))},
            errors=CALL_ERRORS,
            tenant=True,
        )


# The files ``connector.server.page`` serves under /static (a test holds the two lists equal).
PAGE_ASSETS = (
    "checks.js", "combobox.js", "fields.js", "form.css", "form.js", "page.js", "run.js",
    "server.js", "snippets.js",
)  # fmt: skip
PAGE_MEDIA = ("text/css", "text/javascript")


def _page_operations(b: _Builder, ids: list[str]) -> None:
    """The form page's routes (``connector.server.page``): public, they hold only the manifest."""
    action = _path_param("action", "The action's id.", ids)
    html = ("Html", {"type": "string"})
    for path, op_id, title, ok, params in (
        ("/", "form_page", "Form page", b.response("The page.", html, media="text/html"), []),
        ("/actions/{action}/form", "action_form_page", "An action's form page",
         b.response("The page.", html, media="text/html"), [action]),
        ("/actions/{action}/form-schema", "form_schema", "Form schema",
         b.response("JSON Schema and UI schema of the form.", ("Document", shapes.OBJECT)), [action]),
        ("/static/{name}", "page_asset", "Page asset",
         {"description": "The file.", "content": {m: {"schema": {"type": "string"}} for m in PAGE_MEDIA}},
         [_path_param("name", "The page's script module or style sheet.", list(PAGE_ASSETS))]),
    ):  # fmt: skip
        b.operation(
            "get", path, op_id, title, f"{title} of the form page.", {"200": ok},
            errors=[404, 500], params=params, public=True,
        )  # fmt: skip


def document(*, manifest: Manifest | None = None) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document."""
    m = manifest or load_manifest()
    b = _Builder(m)
    ids = [a.id for a in m.actions]
    b.operation(
        "get",
        "/healthz",
        "healthz",
        "Health",
        "Readiness, part by part: the run store and the server's own connection; needs no token.",
        {
            "200": b.response("Ready.", ("Health", shapes.HEALTH)),
            "503": b.response("Running, not ready: a part says why.", ("Health", shapes.HEALTH)),
        },
        errors=[500],
        public=True,
    )
    b.operation(
        "get",
        "/metrics",
        "metrics",
        "Metrics",
        "Prometheus text: runs by action and outcome, latency, upstream attempts.",
        {
            "200": b.response(
                "Prometheus text format.", ("Text", {"type": "string"}), media="text/plain"
            )
        },
        errors=[401, 500],
    )
    for path, op_id, title, description, schema in (
        ("/actions", "list_actions", "Actions", "The actions this connector offers.", ("Actions", shapes.ACTIONS)),
        ("/openapi.json", "openapi", "OpenAPI 3.1 document", "", ("Document", shapes.OBJECT)),
        ("/swagger.json", "swagger", "OpenAPI 2.0 document (Power Automate)", "", ("Document", shapes.OBJECT)),
    ):  # fmt: skip
        b.operation(
            "get",
            path,
            op_id,
            title,
            description or f"This server's {title}, generated from the manifest.",
            {"200": b.response(f"The {schema[0].lower()}.", schema)},
            errors=[401, 500],
        )
    b.operation(
        "get",
        "/actions/{action}",
        "describe_action",
        "Describe an action",
        "An action's parameters, Basic and Advanced, and its example output.",
        {"200": b.response("The describe document.", ("Description", shapes.OBJECT))},
        errors=_READ_ERRORS,
        params=[_path_param("action", "The action's id.", ids)],
    )
    for a in m.actions:
        _action_operations(b, a)
    _page_operations(b, ids)
    b.operation(
        "get",
        "/runs/{run_id}",
        "get_run",
        "Async run",
        "202 while the run is queued or running; then its output (200) or its error object.",
        {
            "200": b.response(
                "The run's output.", ("RunOutput", shapes.OBJECT), shapes.WARNINGS_HEADERS
            ),
            "202": b.response(
                "Not done yet.", ("RunAccepted", shapes.ACCEPTED), shapes.POLL_HEADERS
            ),
        },
        errors=CALL_ERRORS,
        params=[_path_param("run_id", "The id from the Location of the 202.")],
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": m.connector.title,
            "version": __version__,
            "description": m.connector.description.strip(),
            **({"license": {"name": spdx, "identifier": spdx}} if (spdx := license_id()) else {}),
        },
        # The file's server is relative to where it is read; the server serves its own address.
        "servers": [{"url": "/", "description": "The server that serves this document."}],
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
                    "name": shapes.KEY_HEADER,
                    "description": "Optional: your own API key for this call.",
                },
            },
        },
        "security": [{"serverToken": []}],
    }
