"""The form page of the action server: one form per action, drawn from its form schema.

``/`` and ``/actions/{action}/form`` serve the page with the form schema inside it, so the form
is drawn before any call; ``/static/{name}`` serves its script modules and style sheet. These
routes are public: they hold nothing but the manifest. The page's calls (options, dry-run, runs)
carry the server token, which the page asks for once and keeps in sessionStorage.
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import falcon

from connector.engine.loader import load_manifest
from connector.views.formschema import form_schema

STATIC = Path(__file__).resolve().parent / "static"
# The page's assets are the script modules and style sheets in static/ (index.html is the page,
# not an asset); a module is refused by the browser unless its media type is JavaScript's.
MEDIA = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
ASSETS = {p.name: MEDIA[p.suffix] for p in sorted(STATIC.iterdir()) if p.suffix in MEDIA}
# Everything comes from the server itself: no CDN, no inline script, nothing sent elsewhere.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)


def render(action_id: str) -> str:
    """Return the HTML page of an action's form."""
    manifest = load_manifest()
    doc = {
        "actions": [{"id": a.id, "title": a.title} for a in manifest.actions],
        "form": form_schema(action_id),
    }
    # JSON inside <script> must not close the element or open a comment: no "<" at all.
    data = json.dumps(doc, ensure_ascii=False).replace("<", "\\u003c")
    # Every module is fetched at once, in any order; the browser runs them in import order.
    preload = "\n".join(
        f'<link rel="modulepreload" href="/static/{name}">'
        for name in ASSETS
        if name.endswith(".js")
    )
    template = (STATIC / "index.html").read_text(encoding="utf-8")
    return (
        template.replace("{{modules}}", preload)
        .replace("{{title}}", html.escape(doc["form"]["title"]))
        .replace("{{data}}", data)
    )


def _page_headers(resp: falcon.Response) -> None:
    resp.set_header("Content-Security-Policy", CSP)
    resp.set_header("X-Content-Type-Options", "nosniff")
    resp.set_header("Referrer-Policy", "no-referrer")
    resp.set_header("Cache-Control", "no-cache")


class FormPage:
    """GET / and GET /actions/{action}/form: the page."""

    public = True

    def on_get(self, req: falcon.Request, resp: falcon.Response, action: str | None = None):
        action_id = action or load_manifest().actions[0].id
        if action_id not in {a.id for a in load_manifest().actions}:
            raise falcon.HTTPNotFound(description=f"No action '{action_id}'.")
        resp.content_type = "text/html; charset=utf-8"
        resp.text = render(action_id)
        _page_headers(resp)


class FormSchema:
    """GET /actions/{action}/form-schema: what ``python -m connector form-schema`` prints."""

    public = True

    def on_get(self, req: falcon.Request, resp: falcon.Response, action: str):
        if action not in {a.id for a in load_manifest().actions}:
            raise falcon.HTTPNotFound(description=f"No action '{action}'.")
        resp.media = form_schema(action)


class Asset:
    """GET /static/{name}: the page's script modules and style sheet, and nothing else."""

    public = True

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str):
        if name not in ASSETS:
            raise falcon.HTTPNotFound()
        resp.content_type = ASSETS[name]
        resp.data = (STATIC / name).read_bytes()
        _page_headers(resp)


def add_routes(app: falcon.App, settings: object = None) -> None:
    """Add the page's routes to the action server's app."""
    app.add_route("/", FormPage())
    app.add_route("/actions/{action}/form", FormPage())
    app.add_route("/actions/{action}/form-schema", FormSchema())
    app.add_route("/static/{name}", Asset())
