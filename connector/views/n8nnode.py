"""The n8n community-node package (package.json, node, credential, icon), generated from the manifest.

The node is plain JavaScript that n8n loads as it is (no build, no install): the runtime is the
template ``connector/views/templates/n8n.node.js``, and what the manifest says (the actions, each
parameter's label, description, placeholder and required flag) is written into it as JSON.
``hosts/n8n/`` holds the generated copy; ``python -m connector n8n-node --check`` finds it stale.
"""

from __future__ import annotations

import json
from importlib.resources import files as package_files
from pathlib import Path
from typing import Any

from connector.engine.loader import load_manifest
from connector.manifest.spec import Action, Manifest, Param
from connector.version import __version__

PACKAGE = "n8n-nodes-openai-chat-connector"
NODE = "openAiChatConnector"
NODE_CLASS = "OpenAiChatConnector"
DISPLAY_NAME = "OpenAI Chat Connector"
CREDENTIAL = "openAiChatConnectorApi"
CREDENTIAL_CLASS = "OpenAiChatConnectorApi"
ICON = "openAiChatConnector.svg"
NODE_FILE = f"nodes/{NODE_CLASS}/{NODE_CLASS}.node.js"
ICON_FILE = f"nodes/{NODE_CLASS}/{ICON}"
CREDENTIAL_FILE = f"credentials/{CREDENTIAL_CLASS}.credentials.js"
# The JSON a template gets, and the class name it exports (n8n loads the class named as the file).
SPEC_MARK, CLASS_MARK = "/*@SPEC@*/", "/*@CLASS@*/"
TIMEOUT_SECONDS = 600  # the default of the node's Timeout option; a local model can be slow
JSON_ROWS = 4  # height of a JSON field's text box


def _template(name: str) -> str:
    return package_files("connector.views.templates").joinpath(name).read_text(encoding="utf-8")


def _js(spec: dict[str, Any]) -> str:
    return json.dumps(spec, indent="\t", ensure_ascii=False)


def placeholder(p: Param) -> str | None:
    """Return the field's placeholder: its manifest example as form text (JSON when not text)."""
    if p.example is None:
        return None
    return p.example if isinstance(p.example, str) else json.dumps(p.example)


def _shown_for(action: Action) -> dict[str, Any]:
    return {"show": {"action": [action.id]}}


def load_options_method(action: Action, p: Param) -> str:
    """Return the name of the node's loadOptions method for a field with options."""
    words = f"{action.id}_{p.name}".split("_")
    return "options" + "".join(w.capitalize() for w in words)


def field(action: Action, p: Param, *, top: bool) -> dict[str, Any]:
    """Return the n8n property of one manifest parameter: form text, sent as typed."""
    prop: dict[str, Any] = {
        "displayName": p.label,
        "name": p.name,
        "type": "string",
        "default": "",
        "description": p.description.strip(),
    }
    if top:
        prop["required"] = p.required
        prop["displayOptions"] = _shown_for(action)
    if p.options is not None:
        # A dropdown over the server's options route. An n8n options field also keeps a value
        # typed in or an expression: the workflow JSON holds it as a plain string either way.
        prop["type"] = "options"
        prop["typeOptions"] = {"loadOptionsMethod": load_options_method(action, p)}
    elif p.input == "json":
        prop["typeOptions"] = {"rows": JSON_ROWS}
    text = placeholder(p)
    if text is not None and p.options is None:
        prop["placeholder"] = f"e.g. {text}"
    return prop


def properties(manifest: Manifest) -> list[dict[str, Any]]:
    """Return the node's parameters: the action, each action's Basic and Advanced, the options."""
    props: list[dict[str, Any]] = [
        {
            "displayName": "Action",
            "name": "action",
            "type": "options",
            "noDataExpression": True,
            "default": manifest.actions[0].id,
            "options": [
                {
                    "name": a.title,
                    "value": a.id,
                    "description": a.description.strip(),
                    "action": a.title,
                }
                for a in manifest.actions
            ],
        }
    ]
    for action in manifest.actions:
        basic = [p for p in action.parameters if p.visibility == "basic"]
        advanced = [p for p in action.parameters if p.visibility == "advanced"]
        props += [field(action, p, top=True) for p in basic]
        if advanced:
            props.append(
                {
                    "displayName": "Advanced Parameters",
                    "name": "advanced",
                    "type": "collection",
                    "placeholder": "Add Advanced Parameter",
                    "default": {},
                    "displayOptions": _shown_for(action),
                    "options": [field(action, p, top=False) for p in advanced],
                }
            )
    props.append(
        {
            "displayName": "Options",
            "name": "options",
            "type": "collection",
            "placeholder": "Add Option",
            "default": {},
            "options": [
                {
                    "displayName": "Wait for Async Run",
                    "name": "waitForAsyncRun",
                    "type": "boolean",
                    "default": False,
                    "description": "Whether to start the action on the server's runs route and"
                    " poll the run, as each Retry-After says, until it is done (for runs longer"
                    " than a proxy lets one request last)",
                },
                {
                    "displayName": "Timeout (Seconds)",
                    "name": "timeout",
                    "type": "number",
                    "typeOptions": {"minValue": 1},
                    "default": TIMEOUT_SECONDS,
                    "description": "How long to wait for the action server, per request (and"
                    " in all, when waiting for an async run)",
                },
            ],
        }
    )
    return props


def node_spec(manifest: Manifest) -> dict[str, Any]:
    """Return what the node template needs: its description, Basic names, loadOptions sources."""
    description = {
        "displayName": DISPLAY_NAME,
        "name": NODE,
        "icon": f"file:{ICON}",
        "group": ["transform"],
        "version": 1,
        "subtitle": '={{$parameter["action"]}}',
        "description": manifest.connector.description.strip(),
        "defaults": {"name": DISPLAY_NAME},
        "inputs": ["main"],
        "outputs": ["main"],
        "credentials": [{"name": CREDENTIAL, "required": True}],
        "properties": properties(manifest),
    }
    actions = {
        a.id: [p.name for p in a.parameters if p.visibility == "basic"] for a in manifest.actions
    }
    sources = {
        load_options_method(a, p): [a.id, p.name]
        for a in manifest.actions
        for p in a.parameters
        if p.options is not None
    }
    return {"description": description, "actions": actions, "loadOptions": sources}


def credential_spec() -> dict[str, Any]:
    """Return the credential type: the server's URL and token, sent as a bearer header."""
    return {
        "name": CREDENTIAL,
        "displayName": f"{DISPLAY_NAME} API",
        "icon": f"file:../nodes/{NODE_CLASS}/{ICON}",
        "properties": [
            {
                "displayName": "Server URL",
                "name": "url",
                "type": "string",
                "default": "http://127.0.0.1:8080",
                "required": True,
                "description": "Base URL of the connector's action server (python -m connector"
                " serve)",
            },
            {
                "displayName": "Server Token",
                "name": "token",
                "type": "string",
                "typeOptions": {"password": True},
                "default": "",
                "required": True,
                "description": "One of the server's bearer tokens (CONNECTOR_SERVER_TOKENS)",
            },
        ],
        "authenticate": {
            "type": "generic",
            "properties": {"headers": {"Authorization": "=Bearer {{$credentials.token}}"}},
        },
        # The action list needs the token: a wrong one answers 401, and the test says so.
        "test": {"request": {"baseURL": "={{$credentials.url}}", "url": "/actions"}},
    }


def package_json(manifest: Manifest) -> dict[str, Any]:
    """Return the package's package.json: what n8n's community-node loader reads."""
    return {
        "name": PACKAGE,
        "version": __version__,
        "description": f"{DISPLAY_NAME}: {manifest.connector.title} actions of the connector's"
        " action server, as an n8n node.",
        "keywords": ["n8n-community-node-package", "n8n", "openai", "chat-completion"],
        "license": "MIT",
        "main": NODE_FILE,
        "files": ["nodes", "credentials"],
        "n8n": {
            "n8nNodesApiVersion": 1,
            "credentials": [CREDENTIAL_FILE],
            "nodes": [NODE_FILE],
        },
        "peerDependencies": {"n8n-workflow": "*"},
    }


def _fill(template: str, cls: str, spec: dict[str, Any]) -> str:
    return _template(template).replace(CLASS_MARK, cls).replace(SPEC_MARK, _js(spec))


def render(manifest: Manifest | None = None) -> dict[str, str]:
    """Return the package's files, path (relative to its root) to text."""
    manifest = manifest or load_manifest()
    return {
        "package.json": json.dumps(package_json(manifest), indent=2) + "\n",
        NODE_FILE: _fill("n8n.node.js", NODE_CLASS, node_spec(manifest)),
        ICON_FILE: _template("n8n.svg"),
        CREDENTIAL_FILE: _fill("n8n.credentials.js", CREDENTIAL_CLASS, credential_spec()),
    }


def write_all(out_dir: Path, *, check: bool = False) -> list[str]:
    """Write (or compare) the package under ``out_dir``; return the stale files."""
    stale = []
    for name, text in render().items():
        path = out_dir / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    return stale
