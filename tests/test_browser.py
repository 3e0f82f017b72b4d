"""Browser tier: the form page in headless Chromium, against the real action server.

Run with ``pytest -m browser``. Debian's chromium (scripts/setup-browser) is driven by
Playwright; the action server runs as ``python -m connector serve`` with provider ``local``,
pointed at the session's llama.cpp server. Set CONNECTOR_SCREENSHOT_DIR=docs to refresh the
screenshots in docs/ (shown by the README and docs/form-page.md).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import requests
from actionserver import TOKEN

import connector
import connector.server.page
import connector.views.formschema
from connector.transport import local

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHAT = connector.load_manifest().action("create_chat_completion")
SEED_MESSAGES = json.dumps(CHAT.param("messages").example, indent=2)
ADVANCED = [p for p in CHAT.parameters if p.visibility == "advanced"]


def expect(locator):
    """Playwright's expect, imported here so that other tiers need no Playwright."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


@pytest.fixture
def page(browser, action_server):
    """Open the form page in a fresh context; record every request the page makes."""
    context = browser.new_context(viewport={"width": 1000, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=action_server)
    tab = context.new_page()
    tab.requests = []
    tab.errors = []
    tab.on("request", lambda r: tab.requests.append((r.method, r.url)))
    tab.on("pageerror", lambda e: tab.errors.append(str(e)))
    # A module not served, or not served as JavaScript: Chromium refuses it and draws nothing.
    tab.on("response", lambda r: "/static/" in r.url and not r.ok and tab.errors.append(r.url))
    tab.on("console", lambda m: "module script" in m.text and tab.errors.append(m.text))
    tab.goto(action_server + "/")
    assert tab.errors == []
    give_token(tab)
    yield tab
    assert tab.errors == []
    context.close()


def give_token(tab):
    """Answer the page's one question for the server token."""
    tab.get_by_role("textbox", name="Server token").fill(TOKEN)
    tab.get_by_role("button", name="Use token").click()
    expect(tab.get_by_role("dialog")).to_be_hidden()


def field(tab, label):
    return tab.get_by_label(label, exact=True)


def open_advanced(tab):
    tab.locator("#toggle-advanced").click()


def screenshot(tab, name, tmp_path, locator=None):
    """Save a screenshot in tmp_path, and in $CONNECTOR_SCREENSHOT_DIR when it is set."""
    folder = Path(os.environ.get("CONNECTOR_SCREENSHOT_DIR") or tmp_path)
    path = folder / name
    (locator or tab).screenshot(path=str(path))
    assert path.stat().st_size > 10_000


def posts(tab, suffix):
    return [url for method, url in tab.requests if method == "POST" and url.endswith(suffix)]


def test_seed_example_runs_against_the_local_model(page, action_server, tmp_path):
    field(page, "Messages").fill(SEED_MESSAGES)
    field(page, "Model").fill(local.MODEL_ALIAS)
    open_advanced(page)
    field(page, "Max Completion Tokens").fill("24")
    field(page, "Temperature").fill("0")
    expect(page.locator("#check-state")).to_contain_text("Ready to run", timeout=10_000)
    open_advanced(page)  # folded again, as an author leaves it
    page.evaluate(
        """() => {
          const progress = document.getElementById("progress");
          new MutationObserver(() => { if (!progress.hidden) window.sawProgress = true; })
            .observe(progress, {attributes: true});
        }"""
    )
    page.get_by_role("button", name="Run").click()
    reply = page.get_by_test_id("reply-content")
    expect(reply).to_be_visible(timeout=60_000)
    assert reply.text_content().strip()
    expect(page.locator("#progress")).to_be_hidden()
    assert page.evaluate("window.sawProgress") is True
    output = page.locator("#output-box")
    assert output.get_attribute("open") is None  # the whole output is folded
    doc = json.loads(page.locator("#output").text_content())
    assert doc["object"] == "chat.completion"
    assert doc["choices"][0]["message"]["content"] == reply.text_content()
    assert len(posts(page, "/actions/create_chat_completion/runs")) == 1
    screenshot(page, "form-filled.png", tmp_path, page.locator("main"))
    # The token: in this tab's sessionStorage only, never on the page.
    storage = page.evaluate("[sessionStorage.length, localStorage.length, document.cookie]")
    assert storage == [1, 0, ""]
    assert TOKEN not in page.content()
    # Offline: every request went to the server itself.
    assert {re.match(r"https?://[^/]+", url).group(0) for _, url in page.requests} == {
        action_server
    }


def test_temperature_hot_is_marked_beside_temperature_before_anything_is_sent(page, tmp_path):
    field(page, "Messages").fill(SEED_MESSAGES)
    field(page, "Model").fill(local.MODEL_ALIAS)
    open_advanced(page)
    field(page, "Stop").fill("a,b,c,d,e")
    field(page, "Temperature").fill("hot")
    error = page.locator(".field[data-field=temperature] .error")
    expect(error).to_have_text("expected a number, got 'hot'")  # under the label Temperature
    expect(field(page, "Temperature")).to_have_attribute("aria-invalid", "true")
    expect(page.locator(".field[data-field=stop] .error")).to_contain_text("at most 4 items")
    expect(page.locator("#toggle-advanced")).to_contain_text("2 problems")
    assert posts(page, "/dry-run") and not posts(page, "/run") and not posts(page, "/runs")
    page.locator("#toggle-advanced").evaluate(
        "e => { e.scrollIntoView({block: 'start'}); window.scrollBy(0, -16); }"
    )
    screenshot(page, "form-error.png", tmp_path)

    field(page, "Messages").fill('[\n  {"role": "user",\n   "content": "Hi"\n  ]')
    expect(page.locator(".field[data-field=messages] .error")).to_contain_text(
        "not valid JSON at line 4, column 3"
    )
    page.get_by_role("button", name="Run").click()  # a syntax error stops the run in the page
    expect(field(page, "Messages")).to_be_focused()
    assert not posts(page, "/runs")


def test_text_from_earlier_steps_is_marked_beside_messages(page):
    messages = field(page, "Messages")
    warning = page.locator(".field[data-field=messages] .warning")
    error = page.locator(".field[data-field=messages] .error")
    field(page, "Model").fill(local.MODEL_ALIAS)
    # An unescaped quote, as a host inserts it: read as text, with the warning beside the field.
    messages.fill('[{"role": "user", "content": "He said "hi" to me"}]')
    expect(warning).to_contain_text(
        'line 1, column 39: read a " as part of the text', timeout=10_000
    )
    expect(warning).to_contain_text("line 1, column 42: ")
    expect(warning).not_to_contain_text("Messages:")  # the label is the field's own
    expect(error).to_be_empty()
    expect(page.locator("#check-state")).to_contain_text("Ready to run")
    sent = json.loads(page.locator("#preview").text_content())["body"]["messages"]
    assert sent == [{"role": "user", "content": 'He said "hi" to me'}]
    # A raw line break and a tab inside the string: read as they are, no warning.
    messages.fill('[{"role": "user", "content": "line one\nline\ttwo"}]')
    expect(page.locator("#check-state")).to_contain_text("Ready to run", timeout=10_000)
    expect(warning).to_be_empty()
    sent = json.loads(page.locator("#preview").text_content())["body"]["messages"]
    assert sent == [{"role": "user", "content": "line one\nline\ttwo"}]
    # Plain text that starts with a bracket: one user message, and it says so.
    messages.fill("[URGENT] the server is down")
    expect(warning).to_contain_text("sent as text (one user message)", timeout=10_000)
    # A key given twice: refused under Messages, and the warning is gone.
    messages.fill('[{"role": "user", "content": "x", "role": "system"}]')
    expect(error).to_have_text(
        'Messages[0]: "role" is given twice; text inserted into the JSON may have closed its string'
    )
    expect(warning).to_be_empty()
    assert not posts(page, "/runs")


def test_advanced_is_folded_until_opened_from_the_keyboard(page):
    for p in ADVANCED:
        expect(field(page, p.label)).to_be_hidden()
    page.locator("#toggle-advanced").focus()
    page.keyboard.press("Enter")
    for p in ADVANCED:
        expect(field(page, p.label)).to_be_visible()
    # Every control has a label; numbers show their range beside the label.
    unlabelled = page.evaluate(
        "[...document.querySelectorAll('#fields input, #fields select, #fields textarea')]"
        ".filter(e => !e.labels.length).map(e => e.id)"
    )
    assert unlabelled == []
    expect(page.locator("#r-temperature")).to_have_text("0 to 2")
    expect(page.locator("#r-top_logprobs")).to_have_text("0 to 20")


def test_pick_a_model_from_the_dropdown(page):
    model = field(page, "Model")
    model.focus()
    page.keyboard.press("ArrowDown")
    option = page.get_by_role("listbox").get_by_role("option", name=local.MODEL_ALIAS)
    expect(option).to_be_visible(timeout=20_000)
    page.keyboard.press("Enter")
    expect(model).to_have_value(local.MODEL_ALIAS)
    expect(page.get_by_role("listbox")).to_be_hidden()
    model.fill("my-own-model")  # free text is allowed
    expect(page.get_by_role("listbox").get_by_role("option")).to_have_count(0)
    expect(page.get_by_role("listbox")).to_contain_text("the typed value is used")
    page.get_by_role("button", name="Show Model options").click()
    model.fill("")
    page.get_by_role("listbox").get_by_role("option", name=local.MODEL_ALIAS).click()
    expect(model).to_have_value(local.MODEL_ALIAS)


def test_fill_in_the_examples_fills_the_basic_fields(page):
    page.get_by_role("button", name="Fill in the examples").click()
    expect(field(page, "Messages")).to_have_value(SEED_MESSAGES)
    expect(field(page, "Model")).to_have_value(CHAT.param("model").example)
    expect(page.locator("#check-state")).to_contain_text("Ready to run", timeout=10_000)
    open_advanced(page)
    expect(field(page, "Temperature")).to_have_value("")  # Advanced stays as the author left it


def test_a_run_error_marks_its_fields(page):
    field(page, "Messages").fill('[{"role": "tool", "content": "42"}]')
    field(page, "Model").fill(local.MODEL_ALIAS)
    open_advanced(page)
    field(page, "Number of Choices").fill("1.5")
    open_advanced(page)
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#run-error")).to_contain_text("invalid_input")
    expect(page.locator(".field[data-field=messages] .error")).to_contain_text(
        "Messages[0].tool_call_id"
    )
    expect(field(page, "Number of Choices")).to_be_visible()  # Advanced opened
    expect(page.locator(".field[data-field=n] .error")).to_contain_text("whole number")


def test_copy_as_curl_and_as_n8n_node_make_the_same_call(page, action_server):
    field(page, "Messages").fill(SEED_MESSAGES)
    field(page, "Model").fill(local.MODEL_ALIAS)
    open_advanced(page)
    field(page, "Max Completion Tokens").fill("8")
    page.get_by_role("button", name="Copy as curl").click()
    expect(page.locator("#copied-what")).to_contain_text("copied to the clipboard")
    curl = page.evaluate("navigator.clipboard.readText()")
    assert TOKEN not in curl and "$CONNECTOR_SERVER_TOKEN" in curl
    done = subprocess.run(
        ["bash", "-c", curl],
        env={**os.environ, "CONNECTOR_SERVER_TOKEN": TOKEN},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["object"] == "chat.completion"

    page.get_by_role("button", name="Copy as n8n HTTP node").click()
    expect(page.locator("#copied-what")).to_contain_text("n8n")
    node = json.loads(page.evaluate("navigator.clipboard.readText()"))["nodes"][0]
    assert node["type"] == "n8n-nodes-base.httpRequest"
    params = node["parameters"]
    assert params["url"] == f"{action_server}/actions/create_chat_completion/run"
    body = json.loads(params["jsonBody"])
    assert body["messages"] == CHAT.param("messages").example
    reply = requests.post(
        params["url"], json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120
    )
    assert reply.status_code == 200 and reply.json()["object"] == "chat.completion"


def test_list_models_form_runs_without_fields(page, action_server):
    page.get_by_role("link", name="List Models").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("List Models")
    page.wait_for_load_state("networkidle")
    expect(page.get_by_role("dialog")).to_be_hidden()  # the tab kept the token: asked once
    expect(page.locator("#fields")).to_contain_text("This action takes no parameters.")
    page.get_by_role("button", name="Run").click()
    expect(page.locator("#reply")).to_contain_text(local.MODEL_ALIAS, timeout=30_000)


def test_the_page_serves_only_its_own_assets(action_server):
    page = requests.get(action_server + "/", timeout=5)
    assert page.ok and "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert re.findall(r'(?:src|href)="(?!/|data:)', page.text) == []
    for name, media in connector.server.page.ASSETS.items():
        asset = requests.get(f"{action_server}/static/{name}", timeout=5)
        assert asset.ok and asset.headers["Content-Type"] == media
    assert requests.get(action_server + "/actions/list_models/form", timeout=5).ok
    for path in ("/static/../server.py", "/static/index.html", "/actions/nope/form"):
        assert requests.get(action_server + path, timeout=5).status_code == 404
    assert requests.get(action_server + "/actions", timeout=5).status_code == 401
    schema = requests.get(action_server + "/actions/create_chat_completion/form-schema", timeout=5)
    assert schema.json() == connector.views.formschema.form_schema("create_chat_completion")
