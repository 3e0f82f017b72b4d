"""The form page's routes in the action server's app (fast tier; the browser tier drives the page)."""

import json
import logging
import re

import pytest
from falcon import testing

from connector.engine.loader import load_manifest
from connector.server import page
from connector.server.app import Settings, create_app
from connector.views.formschema import form_schema

TOKEN = "page-test-token"


@pytest.fixture
def client(tmp_path):
    """An in-process app; the handlers it adds to the "connector" logger are taken off after."""
    logger = logging.getLogger("connector")
    handlers = logger.handlers[:]
    settings = Settings(tokens=(TOKEN,), runs_db=str(tmp_path / "runs.db"))
    yield testing.TestClient(create_app(settings))
    logger.handlers[:] = handlers


def page_data(text):
    """Return the JSON document the page carries for its script."""
    found = re.search(r'<script id="page-data" type="application/json">(.*?)</script>', text, re.S)
    return json.loads(found.group(1))


@pytest.mark.parametrize(
    ("path", "action"),
    [
        ("/", "create_chat_completion"),
        ("/actions/create_chat_completion/form", "create_chat_completion"),
        ("/actions/list_models/form", "list_models"),
    ],
)
def test_the_page_is_public_and_carries_its_form_schema(client, path, action):
    resp = client.simulate_get(path)
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in resp.headers["content-security-policy"]
    data = page_data(resp.text)
    assert data["form"] == form_schema(action)
    assert [a["id"] for a in data["actions"]] == [a.id for a in load_manifest().actions]
    # Only the server's own assets: no CDN, no inline script; every module preloaded.
    modules = [f"/static/{name}" for name in page.ASSETS if name.endswith(".js")]
    assert re.findall(r'(?:src|href)="([^"]*)"', resp.text) == [
        "data:,",
        "/static/form.css",
        *modules,
        "/static/form.js",
    ]


@pytest.mark.parametrize(
    ("path", "status", "media"),
    [
        ("/static/form.js", 200, "text/javascript"),
        ("/static/page.js", 200, "text/javascript"),
        ("/static/form.css", 200, "text/css"),
        ("/static/index.html", 404, None),
        ("/static/nope.js", 404, None),
        ("/static/..%2Fpage.py", 404, None),
        ("/actions/nope/form", 404, None),
        ("/actions/nope/form-schema", 404, None),
        ("/actions/create_chat_completion/form-schema", 200, "application/json"),
    ],
)
def test_assets_and_unknown_paths(client, path, status, media):
    resp = client.simulate_get(path)
    assert resp.status_code == status
    if media:
        assert resp.headers["content-type"].startswith(media)
    else:
        assert resp.json["error"]["message"]


def test_the_api_routes_still_need_the_token(client):
    assert client.simulate_get("/actions").status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert client.simulate_get("/actions", headers=auth).status_code == 200


def test_text_in_the_manifest_cannot_close_the_script(monkeypatch):
    real = page.form_schema

    def hostile(action_id):
        doc = real(action_id)
        doc["description"] = "<!--<script></script><script>alert(1)</script>"
        return doc

    monkeypatch.setattr(page, "form_schema", hostile)
    text = page.render("create_chat_completion")
    assert "alert" in text and "<!--" not in text and "</script><script>" not in text
    assert (
        page_data(text)["form"]["description"] == "<!--<script></script><script>alert(1)</script>"
    )


def test_the_documented_page_assets_are_the_served_ones():
    from connector.views import openapi

    assert sorted(openapi.PAGE_ASSETS) == sorted(page.ASSETS)


# A module's static imports: ``import {a, b} from "./x.js";`` and ``import "./x.js";``.
IMPORT = re.compile(r"""^import\b[^"';]*["']([^"']+)["']""", re.M)


def test_every_module_the_page_loads_is_served_as_javascript(client):
    """From the page's one script, each import is a served module: a browser refuses any other."""
    (entry,) = re.findall(
        r'<script type="module" src="/static/([^"]+)">', client.simulate_get("/").text
    )
    graph, todo = {}, [entry]
    while todo:
        name = todo.pop()
        resp = client.simulate_get(f"/static/{name}")
        assert resp.status_code == 200, f"{name} is imported but not served"
        assert resp.headers["content-type"].startswith("text/javascript"), name
        found = IMPORT.findall(resp.text)
        assert all(s.startswith("./") for s in found), f"{name}: imports only ./ siblings"
        graph[name] = {s.removeprefix("./") for s in found}
        todo += sorted(graph[name] - graph.keys() - set(todo))
    assert sorted(graph) == sorted(n for n in page.ASSETS if n.endswith(".js")), (
        "a module no one imports"
    )
    # Imports run one way: a module imports only modules that do not import it back.
    done: list[str] = []
    while len(done) < len(graph):
        ready = [n for n in sorted(graph) if n not in done and graph[n] <= set(done)]
        assert ready, f"modules importing each other: {sorted(set(graph) - set(done))}"
        done += ready


@pytest.mark.parametrize("name", sorted(page.ASSETS))
def test_each_asset_has_the_media_type_of_its_kind(client, name):
    media = {".js": "text/javascript", ".css": "text/css"}[name[name.rindex(".") :]]
    resp = client.simulate_get(f"/static/{name}")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith(media)
    assert resp.headers["x-content-type-options"] == "nosniff"  # so the browser goes by the type
