"""Live tier: the action server (real gunicorn) in front of the embedded llama.cpp model."""

from __future__ import annotations

import json

import pytest
from actionserver import ActionServer
from test_server import poll

import connector
from connector.transport import local

pytestmark = pytest.mark.live

ACTION = "/actions/create_chat_completion"
SEED = connector.load_manifest().action("create_chat_completion").param("messages").example
FORM = {"model": local.MODEL_ALIAS, "messages": json.dumps(SEED), "max_completion_tokens": "24"}


@pytest.fixture(scope="module")
def srv(local_backend, tmp_path_factory):
    """The action server in front of the session's local model (conftest's local_backend)."""
    env = {
        "OPENAI_PROVIDER": "local",
        local.BASE_URL_ENV: local_backend.base_url,
        "CONNECTOR_RUNS_DB": str(tmp_path_factory.mktemp("live-server") / "runs.sqlite3"),
    }
    with ActionServer(env=env) as server:
        yield server


def test_run_answers_with_the_models_reply(srv):
    r = srv.call("POST", f"{ACTION}/run", FORM, timeout=120)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"].strip()
    assert r.json()["model"]


def test_async_run_against_the_model(srv):
    r = srv.call("POST", f"{ACTION}/runs", FORM)
    assert r.status_code == 202
    _, final = poll(srv, r.headers["Location"], seconds=120)
    assert final.status_code == 200 and final.json()["choices"][0]["message"]["content"].strip()


def test_options_list_the_local_model(srv):
    r = srv.call("GET", f"{ACTION}/options/model", timeout=60)
    assert r.status_code == 200 and local.MODEL_ALIAS in {o["value"] for o in r.json()}


def test_a_request_the_model_server_rejects_is_a_400_error_object(srv):
    too_long = {**FORM, "messages": "hello " * 3000}  # past the 2048-token context
    r = srv.call("POST", f"{ACTION}/run", too_long, timeout=60)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["type"], error["status"], error["code"]) == (
        "bad_request",
        400,
        "context_length_exceeded",
    )
