"""The generated n8n node (connector/views/n8nnode.py, hosts/n8n/): every manifest field is on it, as
the manifest says, and the committed copy is current (fast tier; the e2e tier runs it in n8n)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from connector import __version__, cli
from connector.engine.loader import load_manifest
from connector.views import n8nnode

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = load_manifest()
SPEC = n8nnode.node_spec(MANIFEST)
PROPS = SPEC["description"]["properties"]
PARAMS = [(a, p) for a in MANIFEST.actions for p in a.parameters]
EXAMPLE = ROOT / "examples" / "n8n" / "chat-to-email-node.json"


def shown(action_id: str) -> dict:
    return {"show": {"action": [action_id]}}


def top_level(name: str, action_id: str) -> dict:
    (prop,) = [
        p for p in PROPS if p["name"] == name and p.get("displayOptions") == shown(action_id)
    ]
    return prop


@pytest.mark.parametrize(("action", "param"), PARAMS, ids=[f"{a.id}.{p.name}" for a, p in PARAMS])
def test_every_manifest_field_is_a_node_field_as_the_manifest_says(action, param):
    if param.visibility == "basic":
        prop = top_level(param.name, action.id)
        assert prop["required"] is param.required
    else:
        advanced = top_level("advanced", action.id)
        assert advanced["type"] == "collection"
        assert advanced["displayName"] == "Advanced Parameters"
        (prop,) = [p for p in advanced["options"] if p["name"] == param.name]
        assert "required" not in prop and "displayOptions" not in prop
    assert prop["displayName"] == param.label
    assert prop["description"] == param.description.strip()
    assert prop["default"] == ""
    if param.options is not None:
        # A dropdown over the options route: the method is one the node defines, for this field.
        assert prop["type"] == "options"
        method = prop["typeOptions"]["loadOptionsMethod"]
        assert SPEC["loadOptions"][method] == [action.id, param.name]
    else:
        # Form text, sent as typed: the connector's input rules apply to it.
        assert prop["type"] == "string"
        expected = n8nnode.placeholder(param)
        assert prop.get("placeholder") == (None if expected is None else f"e.g. {expected}")


def test_the_action_field_lists_every_action_by_its_name():
    (action,) = [p for p in PROPS if p["name"] == "action"]
    assert action["type"] == "options"
    assert [o["value"] for o in action["options"]] == [a.id for a in MANIFEST.actions]
    assert [o["value"] for o in action["options"]][:2] == ["create_chat_completion", "list_models"]


def test_the_node_sends_each_action_its_basic_fields():
    assert SPEC["actions"] == {
        a.id: [p.name for p in a.parameters if p.visibility == "basic"] for a in MANIFEST.actions
    }
    assert SPEC["actions"]["create_chat_completion"] == ["messages", "model"]


def test_the_model_field_loads_its_options_from_the_server():
    prop = top_level("model", "create_chat_completion")
    assert prop["type"] == "options"
    assert SPEC["loadOptions"] == {
        "optionsCreateChatCompletionModel": ["create_chat_completion", "model"]
    }


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("name", "n8n-nodes-openai-chat-connector"),
        ("version", __version__),
        ("license", "MIT"),
        ("n8n.n8nNodesApiVersion", 1),
        ("n8n.nodes", ["nodes/OpenAiChatConnector/OpenAiChatConnector.node.js"]),
        ("n8n.credentials", ["credentials/OpenAiChatConnectorApi.credentials.js"]),
    ],
)
def test_package_json(path, value):
    doc = json.loads((ROOT / "hosts" / "n8n" / "package.json").read_text())
    for key in path.split("."):
        doc = doc[key]
    assert doc == value


def test_package_json_is_a_community_node_package_and_lists_files_that_exist():
    doc = json.loads((ROOT / "hosts" / "n8n" / "package.json").read_text())
    assert "n8n-community-node-package" in doc["keywords"]
    for name in doc["n8n"]["nodes"] + doc["n8n"]["credentials"]:
        assert (ROOT / "hosts" / "n8n" / name).is_file()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("name", "openAiChatConnector"),
        ("displayName", "OpenAI Chat Connector"),
        ("version", 1),
        ("icon", "file:openAiChatConnector.svg"),
        ("credentials", [{"name": "openAiChatConnectorApi", "required": True}]),
    ],
)
def test_node_description(key, value):
    assert SPEC["description"][key] == value


def test_the_icon_is_an_svg_beside_the_node():
    icon = ROOT / "hosts" / "n8n" / n8nnode.ICON_FILE
    assert icon.read_text().startswith("<svg ")
    assert Path(n8nnode.NODE_FILE).parent == Path(n8nnode.ICON_FILE).parent


def test_the_credential_is_the_server_url_and_a_secret_token_sent_as_bearer():
    spec = n8nnode.credential_spec()
    assert spec["name"] == "openAiChatConnectorApi"
    fields = {p["name"]: p for p in spec["properties"]}
    assert set(fields) == {"url", "token"}
    assert fields["token"]["typeOptions"] == {"password": True}
    headers = spec["authenticate"]["properties"]["headers"]
    assert headers == {"Authorization": "=Bearer {{$credentials.token}}"}
    assert spec["test"]["request"]["url"] == "/actions"  # answers 401 to a wrong token


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        (n8nnode.NODE_FILE, "OpenAiChatConnector"),
        (n8nnode.CREDENTIAL_FILE, "OpenAiChatConnectorApi"),
    ],
)
def test_each_file_exports_the_class_its_name_says(name, cls):
    # n8n loads the class named as the file, from a file it requires as is.
    text = n8nnode.render()[name]
    assert Path(name).name.split(".")[0] == cls
    assert f"exports.{cls} = {cls};" in text
    assert not re.search(r"/\*@\w+@\*/", text)  # every template mark is filled


def test_the_committed_package_is_current():
    assert n8nnode.write_all(ROOT / "hosts" / "n8n", check=True) == []
    assert cli.main(["n8n-node", "--check"]) == 0


@pytest.mark.parametrize("name", sorted(n8nnode.render()))
def test_a_stale_or_missing_file_is_found(tmp_path, name):
    assert n8nnode.write_all(tmp_path) == list(n8nnode.render())
    assert n8nnode.write_all(tmp_path, check=True) == []
    path = tmp_path / name
    path.write_text(path.read_text() + " ")
    assert n8nnode.write_all(tmp_path, check=True) == [name]
    path.unlink()
    assert n8nnode.write_all(tmp_path, check=True) == [name]
    assert cli.main(["n8n-node", "--check", "--out", str(tmp_path)]) == 1


def test_the_example_workflow_uses_the_node_with_fields_it_has():
    (node,) = [
        n
        for n in json.loads(EXAMPLE.read_text())["nodes"]
        if n["type"].endswith(".openAiChatConnector")
    ]
    assert node["type"] == "CUSTOM.openAiChatConnector"  # as a custom extension loads it
    action = node["parameters"]["action"]
    names = {p["name"] for p in PROPS if p.get("displayOptions", shown(action)) == shown(action)}
    assert set(node["parameters"]) <= names
    advanced = {p["name"] for p in top_level("advanced", action)["options"]}
    assert set(node["parameters"]["advanced"]) <= advanced
    assert list(node["credentials"]) == ["openAiChatConnectorApi"]


@pytest.mark.parametrize(
    "fact",
    [
        n8nnode.PACKAGE,
        f"CUSTOM.{n8nnode.NODE}",
        f"{n8nnode.PACKAGE}.{n8nnode.NODE}",
        n8nnode.CREDENTIAL,
        n8nnode.NODE_FILE,
        n8nnode.CREDENTIAL_FILE,
        "N8N_CUSTOM_EXTENSIONS",
        "python -m connector n8n-node",
        f"`{EXAMPLE.relative_to(ROOT)}`",
        f"--id={json.loads(EXAMPLE.read_text())['id']}",
    ],
)
def test_the_docs_page_names_what_the_generator_makes(fact):
    assert fact in (ROOT / "docs" / "n8n.md").read_text()


MANIFEST_NAMES = {p.name for _, p in PARAMS}
OWN_FIELDS = [p for p in PROPS if p["name"] not in MANIFEST_NAMES] + [
    o for p in PROPS if p["name"] == "options" for o in p["options"]
]


@pytest.mark.parametrize("prop", OWN_FIELDS, ids=lambda p: p["name"])
def test_the_docs_page_explains_each_field_the_manifest_does_not_declare(prop):
    assert f"**{prop['displayName']}**" in (ROOT / "docs" / "n8n.md").read_text()
