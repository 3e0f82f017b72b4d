"""The Node-RED node package (a config node, one node per action, icon, README, example flow).

Generated from the manifest, like the n8n node: the runtime is plain JavaScript in
``connector/views/templates/node-red/``, and what the manifest says (each action's fields,
labels, help, placeholders, choices) is written into the nodes' ``.js`` and ``.html`` files.
``hosts/node-red/`` holds the generated copy; ``python -m connector node-red --check`` finds it
stale. The nodes are thin clients of the action server, which keeps every input rule.
"""

from __future__ import annotations

import json
import re
from html import escape
from importlib.resources import files as package_files
from pathlib import Path
from typing import Any

from connector.engine.loader import load_manifest
from connector.manifest.spec import Action, Manifest, Param
from connector.version import __version__
from connector.views import files

PACKAGE = "node-red-contrib-openai-chat-connector"
SERVER_TYPE = "openai-chat-connector-server"
DISPLAY_NAME = "OpenAI Chat Connector"
CATEGORY = "AI"
COLOR = "#74c7a8"
ICON = "openai-chat-connector.svg"
DEFAULT_URL = "http://127.0.0.1:8080"
NODE_RED_VERSION = ">=4.0.0"  # the line the tests run (4.1); the APIs used are older
LIB_FILE = "lib/action-server.js"
EXAMPLE_FILE = "examples/chat-to-email.json"
MAIL_SUBJECT = "Chat completion"
# The seed's fields (the platform page's example form), set in the example flow from the
# manifest's examples; the e2e tier swaps in the local model.
SEED_FIELDS = ("messages", "model", "max_completion_tokens", "stop", "temperature")
# Properties every Node-RED node has, or that this package's nodes use for their own ends:
# a manifest field of one of these names would clash with it.
RESERVED = {"id", "type", "z", "x", "y", "g", "d", "l", "wires", "name", "info", "server"}
MARKS = ("/*@SPEC@*/", "<!--@TYPE@-->", "<!--@FORM@-->", "<!--@HELP@-->")
JSON_ROWS = 4  # height of a JSON field's text box


def _template(name: str) -> str:
    root = package_files("connector.views.templates").joinpath("node-red")
    return root.joinpath(name).read_text(encoding="utf-8")


def node_type(action: Action) -> str:
    """Return the node type of an action: its id with dashes (``create-chat-completion``)."""
    return action.id.replace("_", "-")


def node_file(action: Action, ext: str) -> str:
    return f"nodes/{node_type(action)}.{ext}"


def _check_names(action: Action) -> None:
    clash = sorted(RESERVED & {p.name for p in action.parameters})
    if clash:
        raise ValueError(f"{action.id}: field names {clash} clash with Node-RED node properties")


def choices(p: Param) -> list[str]:
    """Return the values a field suggests as it is typed: an enum's, or a boolean's."""
    if p.enum:
        return [str(v) for v in p.enum]
    return ["true", "false"] if p.input == "boolean" else []


def runtime_spec(action: Action) -> dict[str, Any]:
    """Return what the node's runtime needs: its type, action, field names, option fields."""
    _check_names(action)
    return {
        "type": node_type(action),
        "action": action.id,
        "title": action.title,
        "serverType": SERVER_TYPE,
        "fields": [p.name for p in action.parameters],
        "options": [p.name for p in action.parameters if p.options is not None],
    }


def editor_spec(action: Action) -> dict[str, Any]:
    """Return what the editor's registration needs (defaults come from the field names)."""
    spec = runtime_spec(action)
    return {**spec, "category": CATEGORY, "color": COLOR, "icon": ICON}


def prose(text: str) -> str:
    """Return manifest prose as HTML: escaped, with its `code` spans as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escape(text.strip()))


def _field_html(action: Action, p: Param) -> str:
    """Return one field of the edit dialog: label, text box, suggestions, help."""
    ident = f"node-input-{p.name}"
    attrs = f'id="{ident}"'
    text = p.example_text()
    if text is not None:
        attrs += f' placeholder="{escape("e.g. " + text)}"'
    listed = choices(p)
    suggest = ""
    if listed or p.options is not None:
        list_id = f"ocr-{node_type(action)}-{p.name}-choices"
        attrs += f' list="{list_id}" autocomplete="off"'
        options = "".join(f'<option value="{escape(v)}"></option>' for v in listed)
        suggest = f'\n    <datalist id="{list_id}">{options}</datalist>'
    if p.input == "json":
        box = f'<textarea {attrs} rows="{JSON_ROWS}"></textarea>'
    else:
        box = f'<input type="text" {attrs}>'
    help_text = prose(p.description)
    if p.options is not None:
        help_text += ' <span class="ocr-options-state"></span>'
    return (
        f'<div class="form-row ocr-field" data-field="{p.name}">\n'
        f'    <label for="{ident}">{escape(p.label)}</label>\n'
        f"    {box}{suggest}\n"
        f'    <div class="ocr-help">{help_text}</div>\n'
        "</div>"
    )


def form_html(action: Action) -> str:
    """Return the edit dialog: name and server, then Basic fields, then Advanced folded."""
    basic = [_field_html(action, p) for p in action.parameters if p.visibility == "basic"]
    advanced = [_field_html(action, p) for p in action.parameters if p.visibility != "basic"]
    parts = [*basic]
    if advanced:
        inner = "\n".join(advanced)
        parts.append(
            f'<details class="ocr-advanced">\n<summary>Advanced</summary>\n{inner}\n</details>'
        )
    return "\n".join(parts)


def _definitions(rows: list[tuple[str, str, str]]) -> str:
    """Return an HTML definition list of (name, type, description) rows."""
    items = "".join(
        f'<dt>{name} <span class="property-type">{kind}</span></dt>\n<dd>{text}</dd>\n'
        for name, kind, text in rows
    )
    return f'<dl class="message-properties">\n{items}</dl>\n'


def _kind(schema: dict[str, Any]) -> str:
    """Return a JSON Schema's type as the help's property type (``string | null``)."""
    kind = schema.get("type", "")
    return " | ".join(kind) if isinstance(kind, list) else kind


def help_html(action: Action) -> str:
    """Return the node's help in the editor's sidebar: inputs, outputs, errors, fields."""
    if action.parameters:
        given = (
            "Field values by field name (as below), as text; each one given overrides the"
            " dialog's. Other keys, and a payload that is not an object, are ignored."
        )
    else:
        given = "Not used: any message runs the action, which has no fields."
    keys = (action.output.schema_.get("properties") or {}).items()
    output = [(f"payload.{k}", _kind(v), prose(v.get("description", ""))) for k, v in keys]
    fields = [
        (
            escape(p.label),
            p.name,
            prose(p.description) + (" (Advanced)" * (p.visibility != "basic")),
        )
        for p in action.parameters
    ]
    return (
        f"<p>{prose(action.description)} Runs the action <code>{action.id}</code> on"
        " the connector's action server.</p>\n<h3>Inputs</h3>\n"
        + _definitions([("payload", "object", given)])
        + "<h3>Outputs</h3>\n"
        + _definitions([("payload", "object", "The action's output, unchanged:"), *output])
        + "<h3>Errors</h3>\n<p>A refused form or a failed call ends the message with the"
        " connector's error, which a Catch node receives: <code>msg.error.message</code> names"
        " the field's label and the fix, <code>msg.error.code</code> is the error's type"
        " (<code>invalid_input</code>, ...) and <code>msg.error.cause</code> the server's error"
        " object. The node's status shows requesting, done, or the error's type.</p>\n"
        + (f"<h3>Fields</h3>\n{_definitions(fields)}" if fields else "")
    )


def _fill(template: str, spec: dict[str, Any], action: Action | None = None) -> str:
    text = _template(template).replace(MARKS[0], json.dumps(spec, indent="\t"))
    text = text.replace(MARKS[1], spec["type"])
    if action is not None:
        text = text.replace(MARKS[2], form_html(action)).replace(MARKS[3], help_html(action))
    return text


def server_spec() -> dict[str, Any]:
    """Return the configuration node's type, title and default URL."""
    return {"type": SERVER_TYPE, "title": f"{DISPLAY_NAME} server", "url": DEFAULT_URL}


def package_json(manifest: Manifest) -> dict[str, Any]:
    """Return the package's package.json: the ``node-red`` section is what Node-RED loads."""
    nodes = {SERVER_TYPE: f"nodes/{SERVER_TYPE}.js"}
    nodes |= {node_type(a): node_file(a, "js") for a in manifest.actions}
    return {
        "name": PACKAGE,
        "version": __version__,
        "description": f"{DISPLAY_NAME}: {manifest.connector.title} actions of the connector's"
        " action server, as Node-RED nodes.",
        "keywords": ["node-red", "openai", "chat-completion", "llm"],
        "license": "MIT",
        "files": ["nodes", "lib", "examples", "README.md"],
        "engines": {"node": ">=18.5"},
        "node-red": {"version": NODE_RED_VERSION, "nodes": nodes},
    }


def _node(node_id: str, kind: str, x: int, wires: list[list[str]], **props: Any) -> dict:
    return {"id": node_id, "type": kind, "z": "ocr.flow", **props, "x": x, "y": 80, "wires": wires}


def example_flow(manifest: Manifest) -> list[dict[str, Any]]:
    """Return the example flow: inject, Create Chat Completion, a function, an e-mail."""
    action = manifest.action("create_chat_completion")
    seed = {p.name: p.example_text() for p in action.parameters if p.name in SEED_FIELDS}
    mail = (
        "// The reply's text is the mail's body; msg.topic its subject.\n"
        f"msg.topic = {json.dumps(MAIL_SUBJECT)};\n"
        "msg.to = 'ops@example.com';\n"
        "msg.from = 'connector@example.com';\n"
        "msg.payload = msg.payload.choices[0].message.content;\n"
        "return msg;"
    )
    return [
        {"id": "ocr.flow", "type": "tab", "label": "Chat, then e-mail", "info": ""},
        {"id": "ocr.server", "type": SERVER_TYPE, "name": "", "url": DEFAULT_URL},
        _node(
            "ocr.inject",
            "inject",
            120,
            [["ocr.chat"]],
            name="Start",
            props=[{"p": "payload"}],
            payload="",
            payloadType="date",
            repeat="",
            once=False,
        ),
        _node(
            "ocr.chat", node_type(action), 330, [["ocr.mail"]], name="", server="ocr.server", **seed
        ),
        _node(
            "ocr.mail",
            "function",
            540,
            [["ocr.send"]],
            name="Mail the reply",
            func=mail,
            outputs=1,
            noerr=0,
            initialize="",
            finalize="",
            libs=[],
        ),
        _node(
            "ocr.send",
            "e-mail",
            740,
            [],
            name="",
            dname="Send e-mail",
            server="127.0.0.1",
            port="25",
            authtype="NONE",
            secure=False,
            tls=False,
        ),
    ]


def readme(manifest: Manifest) -> str:
    """Return the package's README: what it holds, how to install and configure it."""
    nodes = "\n".join(
        f"- **{a.title}** (`{node_type(a)}`): {a.description.strip()}" for a in manifest.actions
    )
    return (
        f"# {PACKAGE}\n\n"
        "<!-- Generated by `python -m connector node-red` from manifest.yaml. Do not edit. -->\n\n"
        f"{DISPLAY_NAME}: the {manifest.connector.title} actions of the connector's action server"
        " (`python -m connector serve`) as Node-RED nodes. The server holds the API key and"
        " checks every field; the nodes hold only its URL and one of its tokens.\n\n"
        f"## Nodes\n- **Server** (`{SERVER_TYPE}`, a configuration node): `url`, the action"
        " server's base URL, and `token`, one of its bearer tokens (a credential: never in the"
        " flow file).\n"
        f"{nodes}\n\n"
        "Each field is form text, sent as typed: the connector's input rules apply. An object in"
        " `msg.payload` may supply field values by name, overriding the dialog's. The output is"
        " `msg.payload` = the action's output, unchanged. A refused form or a failed call ends"
        " the message with the connector's error (a Catch node receives it; its message names"
        " the field's label and the fix).\n\n"
        "## Install\nIn Node-RED's user folder (`~/.node-red`):\n"
        f"```bash\nnpm install {PACKAGE}   # or: npm install /path/to/checkout/hosts/node-red\n```\n"
        "then restart Node-RED. The example flow (Import, Examples) needs `node-red-node-email`.\n"
    )


def render(manifest: Manifest | None = None) -> dict[str, str]:
    """Return the package's files, path (relative to its root) to text."""
    manifest = manifest or load_manifest()
    made = {
        "package.json": json.dumps(package_json(manifest), indent=2) + "\n",
        "README.md": readme(manifest),
        LIB_FILE: _template("action-server.js"),
        f"nodes/{SERVER_TYPE}.js": _fill("server.js", server_spec()),
        f"nodes/{SERVER_TYPE}.html": _fill("server.html", server_spec()),
        f"nodes/icons/{ICON}": _template("icon.svg"),
        EXAMPLE_FILE: json.dumps(example_flow(manifest), indent=2) + "\n",
    }
    for action in manifest.actions:
        made[node_file(action, "js")] = _fill("action.js", runtime_spec(action))
        made[node_file(action, "html")] = _fill("action.html", editor_spec(action), action)
    return made


def write_all(out_dir: Path, *, check: bool = False) -> list[str]:
    """Write (or compare) the package under ``out_dir``; return the stale files."""
    return files.sync(out_dir, render(), check=check)
