"""The generated Zapier app (connector/views/zapierapp.py, hosts/zapier/): every manifest field is on
it, as the manifest says, and the committed copy is current (fast tier; the server tier runs it in
zapier-platform-core against the action server: tests/test_zapier_host.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from connector import __version__, cli
from connector.engine.loader import load_manifest
from connector.views import zapierapp

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = load_manifest()
SPEC = zapierapp.app_spec(MANIFEST)
CREATES = {c["key"]: c for c in SPEC["creates"]}
TRIGGERS = {t["key"]: t for t in SPEC["triggers"]}
WRITING = [a for a in MANIFEST.actions if a.method != "GET"]
PARAMS = [(a, p) for a in WRITING for p in a.parameters]


def fields_of(action_id: str) -> dict:
    return {f["key"]: f for f in CREATES[action_id]["inputFields"]}


def test_a_create_per_writing_action_keyed_by_its_id():
    assert list(CREATES) == [a.id for a in WRITING]
    assert "create_chat_completion" in CREATES and "list_models" not in CREATES
    create = CREATES["create_chat_completion"]
    assert create["display"]["label"] == "Create Chat Completion"
    assert create["noun"] == "Chat Completion"


@pytest.mark.parametrize(("action", "param"), PARAMS, ids=[f"{a.id}.{p.name}" for a, p in PARAMS])
def test_every_manifest_field_is_an_input_field_as_the_manifest_says(action, param):
    field = fields_of(action.id)[param.name]
    assert field["label"] == param.label
    assert field["helpText"] == " ".join(param.description.split())
    assert field["required"] is param.required
    assert field["group"] == param.visibility
    # Form text, as typed or mapped: the connector's own input rules read it.
    assert field["type"] == ("text" if param.input == "json" else "string")
    if param.options is not None:
        assert field["dynamic"] == f"{param.options.action}.id.name"
        assert "placeholder" not in field and "choices" not in field
    else:
        assert field.get("placeholder") == param.example_text()
    if param.enum:
        assert field["choices"] == param.enum


def test_messages_and_model_are_required_and_basic_comes_before_advanced():
    fields = CREATES["create_chat_completion"]["inputFields"]
    keys = [f["key"] for f in fields]
    assert keys[:2] == ["messages", "model"]
    assert [f["key"] for f in fields if f.get("required")] == ["messages", "model"]
    groups = [f["group"] for f in fields]
    assert groups == sorted(groups, key=["basic", "advanced"].index)
    assert keys[-1] == zapierapp.CALLBACK_FIELD  # the app's own field, last
    assert CREATES["create_chat_completion"]["fields"] == [
        p.name for p in MANIFEST.action("create_chat_completion").parameters
    ]
    assert {g["key"] for g in zapierapp.GROUPS} == set(groups)


def test_the_model_dropdown_is_a_hidden_trigger_over_the_options_route():
    trigger = TRIGGERS["list_models"]
    assert trigger["display"]["hidden"] is True
    assert trigger["route"] == ["create_chat_completion", "model"]
    assert trigger["sample"] == {"id": "gpt-4o-mini", "name": "gpt-4o-mini"}
    assert [f["key"] for f in trigger["outputFields"]] == ["id", "name"]


def leaves(doc: dict, prefix: str = "", *, in_list: bool = False) -> set[str]:
    """Return the keys Zapier makes of a document: ``a__b``, ``list[]c`` (one list level)."""
    keys = set()
    for name, value in doc.items():
        key = prefix + name
        if isinstance(value, dict) and value:
            keys |= leaves(value, key + "__", in_list=in_list)
        elif isinstance(value, list) and value and isinstance(value[0], dict) and not in_list:
            for item in value:
                keys |= leaves(item, key + "[]", in_list=True)
        else:
            keys.add(key)
    return keys


@pytest.mark.parametrize("action", WRITING, ids=lambda a: a.id)
def test_output_fields_and_the_sample_are_the_manifests_example(action):
    create = CREATES[action.id]
    assert create["sample"] == action.output.example
    keys = {f["key"] for f in create["outputFields"]}
    # Every value of the sample has its output field (the schema's optional keys have theirs too).
    assert leaves(create["sample"]) <= keys
    assert "choices[]message__tool_calls" in keys


def test_the_reply_and_the_usage_can_be_mapped():
    fields = {f["key"]: f for f in CREATES["create_chat_completion"]["outputFields"]}
    assert fields["choices[]message__content"] == {
        "key": "choices[]message__content",
        "label": "Choices Message Content",
        "type": "string",
    }
    assert fields["usage__total_tokens"]["type"] == "integer"
    assert fields["id"]["type"] == "string"


def test_the_connection_is_the_server_url_and_a_password_token():
    fields = {f["key"]: f for f in SPEC["authFields"]}
    assert list(fields) == ["url", "token"]
    assert fields["token"]["type"] == "password"
    assert all(f["required"] for f in fields.values())


def test_the_package_pins_the_core_the_tests_run():
    doc = json.loads((ROOT / "hosts" / "zapier" / "package.json").read_text())
    assert doc["version"] == __version__
    assert doc["main"] == "index.js"
    assert doc["dependencies"] == {"zapier-platform-core": zapierapp.CORE_VERSION}
    tests = json.loads((ROOT / "tests" / "zapier" / "package.json").read_text())
    assert tests["dependencies"]["zapier-platform-core"] == zapierapp.CORE_VERSION
    lock = json.loads((ROOT / "tests" / "zapier" / "package-lock.json").read_text())
    installed = lock["packages"]["node_modules/zapier-platform-core"]["version"]
    assert installed == zapierapp.CORE_VERSION
    assert SPEC["platformVersion"] == zapierapp.CORE_VERSION


def test_every_template_mark_is_filled():
    assert not re.search(r"/\*@\w+@\*/", zapierapp.render()["index.js"])


def test_the_committed_app_is_current():
    assert zapierapp.write_all(ROOT / "hosts" / "zapier", check=True) == []
    assert cli.main(["zapier", "--check"]) == 0


@pytest.mark.parametrize("name", sorted(zapierapp.render()))
def test_a_stale_or_missing_file_is_found(tmp_path, name):
    assert zapierapp.write_all(tmp_path) == list(zapierapp.render())
    assert zapierapp.write_all(tmp_path, check=True) == []
    path = tmp_path / name
    path.write_text(path.read_text() + " ")
    assert zapierapp.write_all(tmp_path, check=True) == [name]
    path.unlink()
    assert zapierapp.write_all(tmp_path, check=True) == [name]
    assert cli.main(["zapier", "--check", "--out", str(tmp_path)]) == 1


@pytest.mark.parametrize(
    "fact",
    [
        "python -m connector zapier",
        "zapier push",
        "zapier-platform-core",
        zapierapp.CORE_VERSION,
        "Wait for Callback",
        "30 seconds",
        "choices[]message__content",
        "Server URL",
        "Server Token",
    ],
)
def test_the_docs_page_names_what_the_generator_makes(fact):
    assert fact in (ROOT / "docs" / "zapier.md").read_text()
