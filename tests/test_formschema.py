"""The form schema against the manifest: every field, its order, group, label, range and widget."""

import json

import pytest
from jsonschema import Draft202012Validator

from connector import cli
from connector.engine.forms import Form
from connector.engine.loader import load_manifest
from connector.views.formschema import form_schema

MANIFEST = load_manifest()
ACTIONS = [a.id for a in MANIFEST.actions]
PARAMS = [(a.id, p.name) for a in MANIFEST.actions for p in a.parameters]
CHAT = "create_chat_completion"


def schema_of(action_id):
    return form_schema(action_id)


@pytest.mark.parametrize("action_id", ACTIONS)
def test_every_field_once_basic_first_in_manifest_order(action_id):
    action = MANIFEST.action(action_id)
    doc = schema_of(action_id)
    basic = [p.name for p in action.parameters if p.visibility == "basic"]
    advanced = [p.name for p in action.parameters if p.visibility == "advanced"]
    assert doc["uiSchema"]["ui:order"] == basic + advanced
    assert list(doc["schema"]["properties"]) == [p.name for p in action.parameters]
    assert doc["schema"]["required"] == [p.name for p in action.parameters if p.required]
    groups = doc["uiSchema"]["ui:options"]["groups"]
    expected = [("basic", basic, False), ("advanced", advanced, True)]
    assert [(g["name"], g["fields"], g["collapsed"]) for g in groups] == [
        e for e in expected if e[1]
    ]


@pytest.mark.parametrize(("action_id", "name"), PARAMS)
def test_field_says_what_the_manifest_says(action_id, name):
    p = MANIFEST.action(action_id).param(name)
    doc = schema_of(action_id)
    prop, ui = doc["schema"]["properties"][name], doc["uiSchema"][name]
    assert prop["title"] == p.label
    assert prop["description"] == p.description.strip()
    assert prop.get("minimum") == p.minimum
    assert prop.get("maximum") == p.maximum
    assert prop.get("maxItems") == p.max_items
    assert prop.get("maxLength") == p.max_length
    assert prop.get("deprecated", False) == p.deprecated
    assert set(prop["type"] if isinstance(prop["type"], list) else [prop["type"]]) == set(p.types)
    assert ("Accepts: " in ui["ui:help"]) and (
        ("API default" in ui["ui:help"]) == bool(p.api_default is not None)
    )
    if p.enum and p.input != "list":
        assert prop["enum"] == p.enum


@pytest.mark.parametrize(
    ("name", "widget", "options"),
    [
        ("messages", "json", {"rows": 11, "textFallback": True}),
        ("model", "combobox", {"source": f"/actions/{CHAT}/options/model", "freeText": True}),
        ("temperature", "text", {"inputMode": "decimal"}),
        ("n", "text", {"inputMode": "numeric"}),
        ("reasoning_effort", "select", None),
        ("logprobs", "select", None),
        ("stop", "text", None),
        ("tools", "json", {"rows": 12, "textFallback": False}),
        ("metadata", "json", {"rows": 4, "textFallback": False}),
    ],
)
def test_widgets(name, widget, options):
    ui = schema_of(CHAT)["uiSchema"][name]
    assert ui["ui:widget"] == widget
    assert ui.get("ui:options") == options


@pytest.mark.parametrize("action_id", ACTIONS)
def test_the_manifest_examples_fit_the_schema(action_id):
    """What the input rules make of every example is valid against the schema."""
    action = MANIFEST.action(action_id)
    schema = schema_of(action_id)["schema"]
    Draft202012Validator.check_schema(schema)
    form = {p.name: p.example for p in action.parameters if p.example is not None}
    values, errors = Form(action.parameters, action.module).coerce(
        form, max_chars=10**6, max_depth=64
    )
    assert errors == []
    assert sorted(e.message for e in Draft202012Validator(schema).iter_errors(values)) == []


RANGED = [
    (p.name, p.minimum, p.maximum)
    for p in MANIFEST.action(CHAT).parameters
    if p.minimum is not None and p.maximum is not None and abs(p.maximum) < 1e15
]


@pytest.mark.parametrize(("name", "low", "high"), RANGED)
def test_ranges_reject_what_the_form_rejects(name, low, high):
    schema = schema_of(CHAT)["schema"]
    validator = Draft202012Validator(schema)
    base = {"messages": [{"role": "user", "content": "Hi"}], "model": "m"}
    assert validator.is_valid({**base, name: low}) and validator.is_valid({**base, name: high})
    assert not validator.is_valid({**base, name: high + 1})
    assert not validator.is_valid({**base, name: low - 1})


def test_cli_prints_the_schema(capsys):
    assert cli.main(["form-schema", CHAT]) == 0
    assert json.loads(capsys.readouterr().out) == schema_of(CHAT)


def test_cli_unknown_action(capsys):
    assert cli.main(["form-schema", "nope"]) == 2
    assert "Known actions: create_chat_completion" in capsys.readouterr().out
