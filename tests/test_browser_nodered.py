"""Browser tier, Node-RED: the Create Chat Completion node's edit dialog in the real Node-RED
editor (headless Chromium, driven by Playwright), with the Model options from the real action
server. The dialog's fields are the manifest's; tests/test_nodered.py checks the generated HTML,
this checks what the editor makes of it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from actionserver import TOKEN
from noderedhost import NodeRed
from test_browser import expect

import connector
from connector.transport import local
from connector.views import nodered

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
CHAT = connector.load_manifest().action("create_chat_completion")
BASIC = [p for p in CHAT.parameters if p.visibility == "basic"]
ADVANCED = [p for p in CHAT.parameters if p.visibility != "basic"]


@pytest.fixture(scope="module")
def editor(tmp_path_factory, action_server, browser):
    """Node-RED with the example flow deployed (the server configuration pointing at the
    action server), and its editor open in headless Chromium."""
    flow = json.loads((ROOT / "hosts" / "node-red" / nodered.EXAMPLE_FILE).read_text())
    nodes = {n["id"]: n for n in flow}
    nodes["ocr.server"] |= {"url": action_server, "credentials": {"token": TOKEN}}
    with NodeRed(tmp_path_factory.mktemp("node-red")) as red:
        red.deploy(flow)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        tab = context.new_page()
        tab.errors = []
        tab.on("pageerror", lambda e: tab.errors.append(str(e)))
        tab.goto(red.url + "/")
        tab.wait_for_function("window.RED && RED.nodes && RED.nodes.node('ocr.chat')")
        yield tab
        assert tab.errors == []
        context.close()
    assert TOKEN not in red.logs()


@pytest.fixture
def dialog(editor):
    """The chat node's edit dialog, opened as a double click opens it; cancelled after."""
    editor.evaluate("RED.editor.edit(RED.nodes.node('ocr.chat'))")
    form = editor.locator("#dialog-form")
    expect(form.locator("#node-input-messages")).to_be_visible()
    yield form
    cancel = editor.locator("#node-dialog-cancel")
    if cancel.is_visible():
        cancel.click()
    expect(form).to_have_count(0)


def test_the_dialog_shows_the_manifests_fields_basic_first_advanced_folded(editor, dialog):
    for p in CHAT.parameters:
        row = dialog.locator(f'.ocr-field[data-field="{p.name}"]')
        expect(row.locator("label")).to_have_text(p.label)
        expect(row.locator(".ocr-help")).to_contain_text(p.description.split("`")[0].strip())
        text = p.example_text()
        if text is not None:
            expect(row.locator(f"#node-input-{p.name}")).to_have_attribute(
                "placeholder", f"e.g. {text}"
            )
    for p in BASIC:
        expect(dialog.locator(f"#node-input-{p.name}")).to_be_visible()
    for p in ADVANCED:
        expect(dialog.locator(f"#node-input-{p.name}")).to_be_hidden()
    # The flow's text is in the boxes, as the author typed it.
    expect(dialog.locator("#node-input-temperature")).to_have_value("0.2")
    expect(dialog.locator("#node-input-stop")).to_have_value("END,STOP")
    dialog.get_by_text("Advanced", exact=True).click()
    for p in ADVANCED:
        expect(dialog.locator(f"#node-input-{p.name}")).to_be_visible()
    if os.environ.get("CONNECTOR_SCREENSHOT_DIR"):
        folder = Path(os.environ["CONNECTOR_SCREENSHOT_DIR"])
        editor.locator(".red-ui-tray").first.screenshot(path=str(folder / "node-red-dialog.png"))


def test_the_model_field_offers_the_servers_models(dialog):
    # The editor asked the node's admin endpoint, which asked the action server.
    option = f'#ocr-create-chat-completion-model-choices option[value="{local.MODEL_ALIAS}"]'
    expect(dialog.locator(option)).to_have_count(1, timeout=30_000)
    expect(dialog.locator('.ocr-field[data-field="model"] .ocr-options-state')).to_contain_text(
        "Options from the server: "
    )


def test_done_keeps_the_text_as_typed(editor, dialog):
    dialog.get_by_text("Advanced", exact=True).click()
    dialog.locator("#node-input-temperature").fill("hot")
    editor.locator("#node-dialog-ok").click()
    expect(dialog).to_have_count(0)
    assert editor.evaluate("RED.nodes.node('ocr.chat').temperature") == "hot"
    assert editor.evaluate("RED.nodes.node('ocr.chat').changed") is True
