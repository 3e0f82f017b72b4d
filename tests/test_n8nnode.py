"""The generated n8n node (connector/views/n8nnode.py, hosts/n8n/): every manifest field is on it, as
the manifest says, and the committed copy is current (fast tier; the e2e tier runs it in n8n)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from connector import __version__, cli
from connector.engine.loader import load_manifest
from connector.views import n8nform, n8nnode, typescript

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
    if param.options is not None:
        # A dropdown over the options route: the method is one the node defines, for this field,
        # labelled and described as n8n's lint wants every such field.
        assert prop["type"] == "options"
        method = prop["typeOptions"]["loadOptionsMethod"]
        assert SPEC["loadOptions"][method] == [action.id, param.name]
        assert prop["displayName"] == f"{param.label} Name or ID"
        assert prop["description"].startswith(param.description.strip())
        assert prop["description"].endswith(f"{n8nform.DYNAMIC_DESCRIPTION}.")
        return
    assert prop["displayName"] == param.label
    assert prop["description"] == n8nform.n8n_description(param.description)
    if n8nform.looks_secret(param.name):
        # A token count: a number field, as n8n's lint allows no text field so named.
        assert (prop["type"], param.input) == ("number", "integer")
        assert prop["default"] == param.example and "placeholder" not in prop
        return
    # Form text, sent as typed: the connector's input rules apply to it.
    assert (prop["type"], prop["default"]) == ("string", "")
    assert prop.get("typeOptions", {}).get("password", False) is param.secret
    expected = param.example_text()
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


PACKAGE = ROOT / "hosts" / "n8n"
PUBLISHER = MANIFEST.connector.publisher


def package_doc() -> dict:
    return json.loads((PACKAGE / "package.json").read_text())


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("name", "n8n-nodes-openai-chat-connector"),
        ("version", __version__),
        ("license", "MIT"),
        ("homepage", PUBLISHER.website),
        ("author.name", PUBLISHER.name),
        ("author.email", PUBLISHER.email),
        ("repository.url", f"git+{PUBLISHER.repository}.git"),
        ("repository.directory", "hosts/n8n"),
        ("files", ["dist"]),
        ("n8n.n8nNodesApiVersion", 1),
        ("n8n.strict", True),
        ("n8n.nodes", ["dist/nodes/OpenAiChatConnector/OpenAiChatConnector.node.js"]),
        ("n8n.credentials", ["dist/credentials/OpenAiChatConnectorApi.credentials.js"]),
        ("scripts.build", "n8n-node build"),
        ("scripts.lint", "n8n-node lint"),
        ("scripts.dev", "n8n-node dev"),
        ("scripts.release", "n8n-node release"),
        ("scripts.prepublishOnly", "n8n-node prerelease"),
        ("peerDependencies", {"n8n-workflow": "*"}),
        ("devDependencies.@n8n/node-cli", "0.48.3"),
    ],
)
def test_package_json(path, value):
    doc = package_doc()
    for key in re.split(r"\.(?!cli)", path):  # "@n8n/node-cli" is one key
        doc = doc[key]
    assert doc == value


def test_package_json_is_a_community_node_package_with_no_runtime_dependency():
    doc = package_doc()
    assert "n8n-community-node-package" in doc["keywords"]
    assert "dependencies" not in doc
    # Every tool exactly pinned; package-lock.json pins what they need.
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", v) for v in doc["devDependencies"].values())


def test_package_json_names_the_build_of_each_source():
    rendered = n8nnode.render()
    doc = package_doc()
    for built in doc["n8n"]["nodes"] + doc["n8n"]["credentials"]:
        assert built.startswith("dist/") and built.endswith(".js")
        assert built.removeprefix("dist/").removesuffix(".js") + ".ts" in rendered


def test_the_lockfile_installs_what_package_json_asks_from_the_registry_only():
    doc, lock = package_doc(), json.loads((PACKAGE / "package-lock.json").read_text())
    root = lock["packages"][""]
    for key in ("name", "version", "devDependencies", "peerDependencies"):
        assert root[key] == doc[key], f"{key}: run npm install --package-lock-only in hosts/n8n"
    assert lock["packages"]["node_modules/@n8n/node-cli"]["version"] == "0.48.3"
    assert not [name for name, p in lock["packages"].items() if "resolved" in p]


def test_the_eslint_config_is_the_official_one():
    # n8n-node lint, in strict mode (n8n Cloud), refuses any other (whitespace aside).
    text = " ".join(n8nnode.render()["eslint.config.mjs"].split())
    assert text == "import { config } from '@n8n/node-cli/eslint'; export default config;"


def test_node_and_build_output_stay_out_of_git():
    assert n8nnode.render()[".gitignore"].split() == ["dist", "node_modules"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("name", "openAiChatConnector"),
        ("displayName", "OpenAI Chat Connector"),
        ("version", 1),
        (
            "icon",
            {"light": "file:openAiChatConnector.svg", "dark": "file:openAiChatConnector.dark.svg"},
        ),
        ("credentials", [{"name": "openAiChatConnectorApi", "required": True}]),
        ("usableAsTool", True),
        ("inputs", ["NodeConnectionTypes.Main"]),
        ("outputs", ["NodeConnectionTypes.Main"]),
    ],
)
def test_node_description(key, value):
    assert SPEC["description"][key] == value


@pytest.mark.parametrize("side", ["light", "dark"])
def test_the_icons_are_svgs_beside_the_node(side):
    icon = Path(n8nnode.NODE_DIR) / n8nnode.ICONS[side]
    assert n8nnode.render()[str(icon)].startswith("<svg ")
    assert Path(n8nnode.NODE_FILE).parent == icon.parent
    assert n8nnode.credential_spec(MANIFEST)["icon"][side] == f"file:../{icon}"


def test_the_light_and_dark_icons_differ():
    rendered = n8nnode.render()
    light, dark = (rendered[f"{n8nnode.NODE_DIR}/{n8nnode.ICONS[s]}"] for s in ("light", "dark"))
    assert light != dark


def test_the_credential_is_the_server_url_and_a_secret_token_sent_as_bearer():
    spec = n8nnode.credential_spec(MANIFEST)
    assert spec["name"] == "openAiChatConnectorApi"
    fields = {p["name"]: p for p in spec["properties"]}
    assert set(fields) == {"url", "token"}
    assert fields["token"]["typeOptions"] == {"password": True}
    headers = spec["authenticate"]["properties"]["headers"]
    assert headers == {"Authorization": "=Bearer {{$credentials.token}}"}
    assert spec["test"]["request"]["url"] == "/actions"  # answers 401 to a wrong token
    assert spec["documentationUrl"].startswith(f"{PUBLISHER.repository}/")


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        (n8nnode.NODE_FILE, "OpenAiChatConnector"),
        (n8nnode.CREDENTIAL_FILE, "OpenAiChatConnectorApi"),
    ],
)
def test_each_file_exports_the_class_its_name_says(name, cls):
    # n8n loads the class named as the file, from the file the build makes of it.
    text = n8nnode.render()[name]
    assert Path(name).name.split(".")[0] == cls
    assert re.search(rf"^export class {cls} implements I\w+Type \{{$", text, re.MULTILINE)
    assert not re.search(r"/\*@\w+@\*/", text)  # every template mark is filled


# What n8n Cloud forbids a community node (n8n's lint rule no-restricted-globals).
RESTRICTED_GLOBALS = ["setTimeout", "setInterval", "setImmediate", "process", "global"]
RESTRICTED_GLOBALS += ["globalThis", "__dirname", "__filename", "clearTimeout"]


@pytest.mark.parametrize("name", [n8nnode.NODE_FILE, n8nnode.CREDENTIAL_FILE])
@pytest.mark.parametrize("word", RESTRICTED_GLOBALS)
def test_the_sources_use_no_restricted_global(name, word):
    assert not re.search(rf"(?<![.\w]){word}\b", n8nnode.render()[name])


@pytest.mark.parametrize("name", [n8nnode.NODE_FILE, n8nnode.CREDENTIAL_FILE])
def test_the_sources_import_only_n8n_workflow(name):
    imports = re.findall(r"^import .*?from '([^']+)';$", n8nnode.render()[name], re.M | re.S)
    assert imports and set(imports) == {"n8n-workflow"}


def test_errors_carry_the_item_and_items_are_paired():
    text = n8nnode.render()[n8nnode.NODE_FILE]
    assert "throw failure(this, outcome, document, itemIndex)" in text
    assert text.count("itemIndex },") >= 2  # each NodeOperationError of a run names its item
    assert text.count("pairedItem }") == 3  # each item's result, output or error document
    assert "this.continueOnFail()" in text


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("plain", "'plain'"),
        ("it's", '"it\'s"'),
        ("both ' and \"", "'both \\' and \"'"),
        ("back\\slash\nline", "'back\\\\slash\\nline'"),
        (True, "true"),
        (1.0, "1"),
        (0.5, "0.5"),
        ([], "[]"),
        ({}, "{}"),
        (["a", 1], "['a', 1]"),
        ({"a-b": 1, "c": typescript.Code("X.Y")}, "{\n\t'a-b': 1,\n\tc: X.Y,\n}"),
        ([{"a": None}], "[\n\t{\n\t\ta: null,\n\t},\n]"),
    ],
)
def test_ts_literal(value, literal):
    assert typescript.ts(value) == literal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("One sentence.", "One sentence"),
        ("Two sentences. The second.", "Two sentences. The second."),
        ("Has e.g. an example.", "Has e.g. an example"),
        ("No period", "No period"),
    ],
)
def test_n8n_description(text, expected):
    assert n8nform.n8n_description(text) == expected


@pytest.mark.parametrize(
    ("title", "expected"),
    [("Create Chat Completion", "Create chat completion"), ("List Models", "List models")],
)
def test_sentence_case(title, expected):
    assert n8nform.sentence_case(title) == expected


def test_advanced_parameters_are_listed_by_label():
    advanced = top_level("advanced", "create_chat_completion")["options"]
    labels = [p["displayName"] for p in advanced]
    assert labels == sorted(labels)


def test_the_package_readme_lists_every_field_by_its_label():
    readme = n8nnode.render()["README.md"]
    for action, param in PARAMS:
        label = n8nform.field(action, param, top=False)["displayName"]  # as the node shows it
        assert f"- **{label}** (`{param.name}`)" in readme
    for fact in ["npm install n8n-nodes-openai-chat-connector", "~/.n8n/nodes", "Community Nodes"]:
        assert fact in readme


@pytest.mark.parametrize(
    "publisher", [None, SimpleNamespace(repository=None)], ids=["no-publisher", "no-repository"]
)
def test_the_package_needs_the_publisher_and_its_repository(publisher):
    manifest = SimpleNamespace(connector=SimpleNamespace(publisher=publisher))
    with pytest.raises(n8nnode.ManifestError, match=r"connector\.publisher with its repository"):
        n8nnode.publisher(manifest)


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
        n8nnode.BUILT_NODE,
        "N8N_CUSTOM_EXTENSIONS",
        "npm install n8n-nodes-openai-chat-connector",
        "~/.n8n/nodes",
        "n8n-node lint",
        "n8n-node build",
        "scripts/build-n8n-node",
        "@n8n/scan-community-package",
        ".github/workflows/publish-n8n-node.yml",
        "--provenance",
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


WORKFLOW = ROOT / ".github" / "workflows" / "publish-n8n-node.yml"


def test_the_publishing_workflow_publishes_hosts_n8n_with_provenance_from_a_tag():
    # It cannot run here: CI lints it (actionlint, scripts/test); this checks what it does.
    doc = yaml.safe_load(WORKFLOW.read_text())
    assert doc[True]["push"]["tags"] == ["n8n-node-v*.*.*"]  # YAML reads the key `on` as True
    (job,) = doc["jobs"].values()
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    assert job["defaults"]["run"]["working-directory"] == "hosts/n8n"
    runs = [step.get("run", "") for step in job["steps"]]
    assert "python -m connector n8n-node --check --out hosts/n8n" in "\n".join(runs)
    assert "npm ci --ignore-scripts" in runs
    # In GitHub Actions, `n8n-node release` lints, builds and runs npm publish with provenance.
    assert runs[-1].rstrip().endswith("npm run release")
    assert n8nnode.package_json(MANIFEST)["scripts"]["release"] == "n8n-node release"


@pytest.mark.parametrize(
    "name", ["nodes/OpenAiChatConnector/OpenAiChatConnector.node.js", "credentials/Old.ts"]
)
def test_a_file_left_over_in_a_source_folder_is_stale_and_removed(tmp_path, name):
    n8nnode.write_all(tmp_path)
    (tmp_path / name).write_text("// an older generator's file\n")
    assert n8nnode.write_all(tmp_path, check=True) == [name]
    assert n8nnode.write_all(tmp_path) == [name]
    assert not (tmp_path / name).exists()
    assert n8nnode.write_all(tmp_path, check=True) == []
