"""The generated Node-RED package (connector/views/nodered.py, hosts/node-red/): every manifest
field is in its node's dialog as the manifest says, the package is laid out as Node-RED loads it,
and the committed copy is current (fast tier; tests/node-red/ runs the nodes in Node-RED's
runtime, and the e2e tier in a real Node-RED)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from connector import __version__, cli
from connector.engine.loader import load_manifest
from connector.manifest.spec import Action, Param
from connector.views import nodered

ROOT = Path(__file__).resolve().parent.parent
HOST = ROOT / "hosts" / "node-red"
MANIFEST = load_manifest()
FILES = nodered.render(MANIFEST)
PARAMS = [(a, p) for a in MANIFEST.actions for p in a.parameters]


class Dialog(HTMLParser):
    """The edit dialog of a node's .html file: each field's label, box, help, and whether it
    sits in the folded Advanced part; in the order they are shown."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.fields: dict[str, dict] = {}
        self.order: list[str] = []
        self._in_details = False
        self._current: str | None = None
        self._text: str | None = None
        template = re.search(r'data-template-name="[^"]+">(.*?)</script>', html, re.S)
        assert template is not None
        self.feed(template.group(1))

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        if tag == "details":
            self._in_details = True
        elif "data-field" in a:
            self._current = a["data-field"]
            self.order.append(self._current)
            self.fields[self._current] = {"advanced": self._in_details, "label": "", "help": ""}
        elif self._current and tag in ("input", "textarea"):
            self.fields[self._current] |= {"box": tag, **a}
        elif self._current and tag == "label":
            self._text = "label"
        elif self._current and a.get("class") == "ocr-help":
            self._text = "help"

    def handle_endtag(self, tag: str) -> None:
        if tag == "details":
            self._in_details = False
        elif tag in ("label",) or (tag == "div" and self._text == "help"):
            self._text = None

    def handle_data(self, data: str) -> None:
        if self._current and self._text:
            self.fields[self._current][self._text] += data


def dialog(action_id: str) -> Dialog:
    action = MANIFEST.action(action_id)
    return Dialog(FILES[nodered.node_file(action, "html")])


def words(text: str) -> str:
    return " ".join(text.replace("`", "").split())


@pytest.mark.parametrize(("action", "param"), PARAMS, ids=[f"{a.id}.{p.name}" for a, p in PARAMS])
def test_every_manifest_field_is_in_the_dialog_as_the_manifest_says(action, param: Param):
    field = dialog(action.id).fields[param.name]
    assert field["label"] == param.label
    assert words(field["help"]).startswith(words(param.description))
    assert field["id"] == f"node-input-{param.name}"  # Node-RED saves it as the property
    assert field["advanced"] is (param.visibility != "basic")
    assert field["box"] == ("textarea" if param.input == "json" else "input")
    expected = param.example_text()
    assert field.get("placeholder") == (None if expected is None else f"e.g. {expected}")
    suggested = nodered.choices(param) or (param.options is not None)
    assert ("list" in field) is bool(suggested)


@pytest.mark.parametrize("action", MANIFEST.actions, ids=lambda a: a.id)
def test_basic_fields_come_first_and_advanced_ones_are_folded(action):
    shown = dialog(action.id)
    assert shown.order == [p.name for p in action.parameters if p.visibility == "basic"] + [
        p.name for p in action.parameters if p.visibility != "basic"
    ]
    html = FILES[nodered.node_file(action, "html")]
    assert "<details open" not in html


@pytest.mark.parametrize("action", MANIFEST.actions, ids=lambda a: a.id)
def test_each_action_is_a_node_of_its_id_with_dashes(action):
    spec = nodered.runtime_spec(action)
    assert spec["type"] == action.id.replace("_", "-")
    assert spec["fields"] == [p.name for p in action.parameters]
    assert spec["options"] == [p.name for p in action.parameters if p.options is not None]
    assert (
        f"const SPEC = {json.dumps(spec, indent=chr(9))};" in FILES[nodered.node_file(action, "js")]
    )
    html = FILES[nodered.node_file(action, "html")]
    assert f'data-template-name="{spec["type"]}"' in html
    assert f'data-help-name="{spec["type"]}"' in html


def test_the_model_field_offers_the_servers_options():
    action = MANIFEST.action("create_chat_completion")
    assert nodered.runtime_spec(action)["options"] == ["model"]
    assert dialog(action.id).fields["model"]["list"] == "ocr-create-chat-completion-model-choices"


def test_a_field_named_as_a_node_property_is_refused():
    action = MANIFEST.action("create_chat_completion")
    first = action.parameters[0]
    clash = Param(**{k: getattr(first, k) for k in Param._fields} | {"name": "wires"})
    broken = Action(**{k: getattr(action, k) for k in Action._fields} | {"parameters": (clash,)})
    assert nodered.runtime_spec(action)["fields"][0] == first.name
    with pytest.raises(ValueError, match=r"\['wires'\] clash"):
        nodered.runtime_spec(broken)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("name", nodered.PACKAGE),
        ("version", __version__),
        ("license", "MIT"),
        ("node-red.version", ">=4.0.0"),
        (
            "node-red.nodes",
            {
                "openai-chat-connector-server": "nodes/openai-chat-connector-server.js",
                "create-chat-completion": "nodes/create-chat-completion.js",
                "list-models": "nodes/list-models.js",
            },
        ),
    ],
)
def test_package_json(path, value):
    doc = json.loads((HOST / "package.json").read_text())
    for key in path.split("."):
        doc = doc[key]
    assert doc == value


def test_the_package_has_a_js_and_an_html_file_per_node_an_icon_and_an_example():
    doc = json.loads((HOST / "package.json").read_text())
    assert "node-red" in doc["keywords"]
    for name in doc["node-red"]["nodes"].values():
        assert (HOST / name).is_file()
        assert (HOST / name).with_suffix(".html").is_file()
    assert (HOST / "nodes" / "icons" / nodered.ICON).read_text().startswith("<svg ")
    assert json.loads((HOST / nodered.EXAMPLE_FILE).read_text())
    assert {Path(f).parts[0] for f in FILES} <= set(doc["files"]) | {"package.json"}


def test_the_server_node_keeps_its_token_a_password_credential():
    for name in (f"nodes/{nodered.SERVER_TYPE}.js", f"nodes/{nodered.SERVER_TYPE}.html"):
        assert "credentials: { token: { type: 'password' } }" in FILES[name]
    assert 'id="node-config-input-token"' in FILES[f"nodes/{nodered.SERVER_TYPE}.html"]
    assert "url: { value: SPEC.url, required: true }" in FILES[f"nodes/{nodered.SERVER_TYPE}.html"]


def test_every_template_mark_is_filled():
    for name, text in FILES.items():
        assert not any(mark in text for mark in nodered.MARKS), name


def test_the_committed_package_is_current():
    assert nodered.write_all(HOST, check=True) == []
    assert cli.main(["node-red", "--check"]) == 0


@pytest.mark.parametrize("name", sorted(FILES))
def test_a_stale_or_missing_file_is_found(tmp_path, name):
    assert nodered.write_all(tmp_path) == list(FILES)
    assert nodered.write_all(tmp_path, check=True) == []
    path = tmp_path / name
    path.write_text(path.read_text() + " ")
    assert nodered.write_all(tmp_path, check=True) == [name]
    path.unlink()
    assert nodered.write_all(tmp_path, check=True) == [name]
    assert cli.main(["node-red", "--check", "--out", str(tmp_path)]) == 1


@pytest.mark.parametrize(
    "fact",
    [
        nodered.PACKAGE,
        nodered.SERVER_TYPE,
        "create-chat-completion",
        "list-models",
        "python -m connector node-red",
        "bash scripts/setup-npm tests/node-red",
        nodered.EXAMPLE_FILE,
        "msg.payload",
        "msg.error.code",
        "RED.auth.needsPermission",
    ],
)
def test_the_docs_page_names_what_the_generator_makes(fact):
    assert fact in (ROOT / "docs" / "node-red.md").read_text()


@pytest.mark.parametrize("action", MANIFEST.actions, ids=lambda a: a.id)
def test_the_help_lists_the_fields_and_the_outputs_keys(action):
    html = FILES[nodered.node_file(action, "html")]
    help_part = html.split('data-help-name="')[1]
    for key, schema in action.output.schema_["properties"].items():
        assert f"<dt>payload.{key} " in help_part
        assert nodered.prose(schema["description"]) in help_part
    for p in action.parameters:
        assert f'<dt>{p.label} <span class="property-type">{p.name}</span></dt>' in help_part
    assert ("<h3>Fields</h3>" in help_part) is bool(action.parameters)
