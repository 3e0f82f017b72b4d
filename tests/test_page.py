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
    # Only the server's own assets: no CDN, no inline script.
    assert re.findall(r'(?:src|href)="([^"]*)"', resp.text) == [
        "data:,",
        "/static/form.css",
        "/static/form.js",
    ]


@pytest.mark.parametrize(
    ("path", "status", "media"),
    [
        ("/static/form.js", 200, "text/javascript"),
        ("/static/form.css", 200, "text/css"),
        ("/static/index.html", 404, None),
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
