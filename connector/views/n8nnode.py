"""The n8n community-node package, generated from the manifest, as n8n's starter lays it out.

``hosts/n8n/`` is a TypeScript package that n8n's own tooling (``@n8n/node-cli``: ``n8n-node lint``
and ``n8n-node build``) checks and compiles to ``dist/``, which n8n loads. The runtime is the
template ``connector/views/templates/n8n.node.ts``; what the manifest says (the actions, each
parameter's label, description, placeholder and required flag; the publisher) is written into
it and into package.json, the credential and the package's README.
``python -m connector n8n-node --check`` finds any of these files stale (not ``dist/``, which the
build makes, nor ``package-lock.json``, which npm makes from package.json).
"""

from __future__ import annotations

import json
import re
from importlib.resources import files as package_files
from pathlib import Path
from typing import Any

from connector.engine.loader import load_manifest
from connector.manifest.spec import Action, Manifest, ManifestError, Param, Publisher
from connector.version import __version__

PACKAGE = "n8n-nodes-openai-chat-connector"
NODE = "openAiChatConnector"
NODE_CLASS = "OpenAiChatConnector"
DISPLAY_NAME = "OpenAI Chat Connector"
CREDENTIAL = "openAiChatConnectorApi"
CREDENTIAL_CLASS = "OpenAiChatConnectorApi"
ICONS = {"light": f"{NODE}.svg", "dark": f"{NODE}.dark.svg"}
NODE_DIR = f"nodes/{NODE_CLASS}"
NODE_FILE = f"{NODE_DIR}/{NODE_CLASS}.node.ts"
CODEX_FILE = f"{NODE_DIR}/{NODE_CLASS}.node.json"
CREDENTIAL_FILE = f"credentials/{CREDENTIAL_CLASS}.credentials.ts"
# The folder of the package in the repository (package.json's repository.directory).
PACKAGE_DIR = "hosts/n8n"
# What n8n loads: the build's output, named as the sources are.
BUILT_NODE = f"dist/{NODE_DIR}/{NODE_CLASS}.node.js"
BUILT_CREDENTIAL = f"dist/credentials/{CREDENTIAL_CLASS}.credentials.js"
# The tools the package is built and checked with, pinned: package-lock.json pins the rest.
DEV_DEPENDENCIES = {
    "@n8n/node-cli": "0.48.3",
    "eslint": "9.29.0",
    "prettier": "3.6.2",
    "release-it": "19.2.4",
    "typescript": "5.9.3",
}
TIMEOUT_SECONDS = 600  # the default of the node's Timeout option; a local model can be slow
JSON_ROWS = 4  # height of a JSON field's text box
# n8n's conventions that its lint checks (eslint-plugin-n8n-nodes-base).
DYNAMIC_LABEL = "Name or ID"
DYNAMIC_DESCRIPTION = (
    "Choose from the list, or specify an ID using an"
    ' <a href="https://docs.n8n.io/code/expressions/">expression</a>'
)
SECRET_WORDS = ("secret", "password", "token", "apikey")
_MARK = re.compile(r"/\*@(\w+)@\*/")
_IDENTIFIER = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


class Code(str):
    """TypeScript source written into a literal as it is (an enum member, a call)."""


def _template(name: str) -> str:
    return package_files("connector.views.templates").joinpath(name).read_text(encoding="utf-8")


def _fill(template: str, **parts: str) -> str:
    """Return a template with each ``/*@NAME@*/`` mark replaced (every mark must be given)."""
    return _MARK.sub(lambda m: parts[m.group(1).lower()], _template(template))


def _string(text: str) -> str:
    """Return a string literal, quoted as prettier quotes it (single unless that needs escapes)."""
    quote = '"' if "'" in text and '"' not in text else "'"
    escaped = text.replace("\\", "\\\\").replace(quote, "\\" + quote).replace("\n", "\\n")
    return f"{quote}{escaped}{quote}"


def _key(name: str) -> str:
    return name if _IDENTIFIER.match(name) else _string(name)


def ts(value: Any, depth: int = 0) -> str:
    """Return a TypeScript literal of JSON-like data, tab-indented as n8n's sources are."""
    if isinstance(value, Code):
        return str(value)
    if isinstance(value, str):
        return _string(value)
    inner, outer = "\t" * (depth + 1), "\t" * depth
    if isinstance(value, dict):
        if not value:
            return "{}"
        rows = [f"{inner}{_key(k)}: {ts(v, depth + 1)}," for k, v in value.items()]
        return "{\n" + "\n".join(rows) + f"\n{outer}}}"
    if isinstance(value, list):
        if all(isinstance(v, str | int | float | bool) for v in value):
            return "[" + ", ".join(ts(v) for v in value) + "]"
        return "[\n" + "\n".join(f"{inner}{ts(v, depth + 1)}," for v in value) + f"\n{outer}]"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 1, not 1.0, as a TypeScript author writes it
    return json.dumps(value)


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


def n8n_description(text: str) -> str:
    """Return a description as n8n's lint wants it: one sentence ends with no period."""
    text = text.strip()
    one_sentence = len(text.replace("e.g.", "").split(". ")) == 1
    return text[:-1] if one_sentence and text.endswith(".") else text


def sentence_case(title: str) -> str:
    """Return a title in sentence case, as n8n writes an option's action (all-caps words kept)."""
    first, *rest = title.split(" ")
    return " ".join([first, *(w if w.isupper() else w.lower() for w in rest)])


def looks_secret(name: str) -> bool:
    """Return True if n8n's lint takes a field of this name for a secret (a password field)."""
    return any(word in name.lower() for word in SECRET_WORDS)


def field(action: Action, p: Param, *, top: bool) -> dict[str, Any]:
    """Return the n8n property of one manifest parameter: form text, sent as typed."""
    prop: dict[str, Any] = {
        "displayName": p.label,
        "name": p.name,
        "type": "string",
        "default": "",
        "description": n8n_description(p.description),
    }
    if p.secret:
        prop["typeOptions"] = {"password": True}
    elif looks_secret(p.name) and p.input == "integer":
        # A token count (max_completion_tokens): n8n's lint takes a text field of this name for
        # a secret, and n8n's scanner allows no exception, so it is a number field, as n8n's own
        # nodes have it. A number is sent as a number, which the connector takes as well.
        prop["type"] = "number"
        prop["default"] = p.default if p.default is not None else p.example
        if p.minimum is not None:
            prop["typeOptions"] = {"minValue": p.minimum}
    if top:
        prop["required"] = p.required
        prop["displayOptions"] = _shown_for(action)
    if p.options is not None:
        # A dropdown over the server's options route. An n8n options field also keeps a value
        # typed in or an expression: the workflow JSON holds it as a plain string either way.
        # n8n names and describes every such field so (its lint checks both).
        prop["displayName"] = f"{p.label} {DYNAMIC_LABEL}"
        prop["description"] = f"{p.description.strip()} {DYNAMIC_DESCRIPTION}."
        prop["type"] = "options"
        prop["typeOptions"] = {"loadOptionsMethod": load_options_method(action, p)}
    elif p.input == "json":
        prop["typeOptions"] = {"rows": JSON_ROWS}
    text = placeholder(p)
    if text is not None and prop["type"] == "string":
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
                    "description": n8n_description(a.description),
                    "action": sentence_case(a.title),
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
                    # In the order n8n's lint wants: by label.
                    "options": sorted(
                        (field(action, p, top=False) for p in advanced),
                        key=lambda prop: prop["displayName"],
                    ),
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
        "icon": {side: f"file:{name}" for side, name in ICONS.items()},
        "group": ["transform"],
        "version": 1,
        "subtitle": '={{$parameter["action"]}}',
        "description": manifest.connector.description.strip(),
        "defaults": {"name": DISPLAY_NAME},
        "usableAsTool": True,
        "inputs": [Code("NodeConnectionTypes.Main")],
        "outputs": [Code("NodeConnectionTypes.Main")],
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


def publisher(manifest: Manifest) -> Publisher:
    """Return the manifest's publisher: the package's author, homepage and repository."""
    pub = manifest.connector.publisher
    if pub is None or pub.repository is None:
        raise ManifestError(
            "The n8n package needs connector.publisher with its repository in the manifest"
            " (the package's author, homepage and repository)"
        )
    return pub


def credential_spec(manifest: Manifest) -> dict[str, Any]:
    """Return the credential type: the server's URL and token, sent as a bearer header."""
    return {
        "name": CREDENTIAL,
        "displayName": f"{DISPLAY_NAME} API",
        "icon": {side: f"file:../{NODE_DIR}/{name}" for side, name in ICONS.items()},
        "documentationUrl": f"{publisher(manifest).repository}/tree/main/{PACKAGE_DIR}#credentials",
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


# Each member of the credential class, and its type where TypeScript needs one.
CREDENTIAL_TYPES = {
    "icon": "Icon",
    "properties": "INodeProperties[]",
    "authenticate": "IAuthenticateGeneric",
    "test": "ICredentialTestRequest",
}


def _credential_members(spec: dict[str, Any]) -> str:
    rows = []
    for key, value in spec.items():
        typed = f": {CREDENTIAL_TYPES[key]}" if key in CREDENTIAL_TYPES else ""
        rows.append(f"\t{key}{typed} = {ts(value, 1)};\n")
    return "\n".join(rows)


def codex(manifest: Manifest) -> dict[str, Any]:
    """Return the node's codex file: its categories and documentation links in the editor."""
    docs = f"{publisher(manifest).repository}/tree/main/{PACKAGE_DIR}"
    return {
        "node": f"{PACKAGE}.{NODE}",
        "nodeVersion": "1.0",
        "codexVersion": "1.0",
        "categories": ["AI", "Development"],
        "resources": {
            "credentialDocumentation": [{"url": f"{docs}#credentials"}],
            "primaryDocumentation": [{"url": docs}],
        },
    }


def package_json(manifest: Manifest) -> dict[str, Any]:
    """Return the package's package.json: what n8n's tooling and its package loader read."""
    pub = publisher(manifest)
    return {
        "name": PACKAGE,
        "version": __version__,
        "description": f"{DISPLAY_NAME}: the {manifest.connector.title} actions of the"
        " connector's action server (Create Chat Completion, List Models), as an n8n node.",
        "license": "MIT",
        "homepage": pub.website,
        "keywords": ["n8n-community-node-package", "n8n", "openai", "chat-completion"],
        "author": {"name": pub.name, "email": pub.email, "url": pub.url},
        "repository": {"type": "git", "url": f"git+{pub.repository}.git", "directory": PACKAGE_DIR},
        "scripts": {
            "build": "n8n-node build",
            "build:watch": "tsc --watch",
            "dev": "n8n-node dev",
            "lint": "n8n-node lint",
            "lint:fix": "n8n-node lint --fix",
            "release": "n8n-node release",
            "prepublishOnly": "n8n-node prerelease",
        },
        "files": ["dist"],
        "n8n": {
            "n8nNodesApiVersion": 1,
            "strict": True,
            "credentials": [BUILT_CREDENTIAL],
            "nodes": [BUILT_NODE],
        },
        "devDependencies": DEV_DEPENDENCIES,
        "peerDependencies": {"n8n-workflow": "*"},
    }


def _node_ts(manifest: Manifest) -> str:
    spec = node_spec(manifest)
    methods = {
        name: Code(f"optionsOf({_string(action)}, {_string(field)})")
        for name, (action, field) in spec["loadOptions"].items()
    }
    return _fill(
        "n8n.node.ts",
        credential=_string(CREDENTIAL),
        timeout=str(TIMEOUT_SECONDS),
        actions=ts(spec["actions"]),
        description=ts(spec["description"], 1),
        load_options=ts(methods, 2),
        name=NODE_CLASS,
    )


def _field_rows(params: list[Param]) -> str:
    return "\n".join(f"- **{p.label}** (`{p.name}`): {p.description.strip()}" for p in params)


def readme(manifest: Manifest) -> str:
    """Return the package's README: install, the credential, each action's fields, an example."""
    sections = []
    for a in manifest.actions:
        basic = [p for p in a.parameters if p.visibility == "basic"]
        advanced = [p for p in a.parameters if p.visibility == "advanced"]
        text = f"### {a.title} (`{a.id}`)\n{a.description.strip()}\n\n{_field_rows(basic)}\n"
        if advanced:
            text += f"\nUnder **Advanced Parameters**:\n\n{_field_rows(advanced)}\n"
        sections.append(text)
    pub = publisher(manifest)
    return _fill(
        "n8n.README.md",
        package=PACKAGE,
        display_name=DISPLAY_NAME,
        description=manifest.connector.description.strip(),
        actions="\n".join(sections),
        timeout=str(TIMEOUT_SECONDS),
        homepage=pub.website,
        repository=pub.repository or "",
    )


def render(manifest: Manifest | None = None) -> dict[str, str]:
    """Return the package's files, path (relative to its root) to text."""
    manifest = manifest or load_manifest()
    return {
        "package.json": json.dumps(package_json(manifest), indent=2) + "\n",
        "tsconfig.json": _template("n8n.tsconfig.json"),
        "eslint.config.mjs": _template("n8n.eslint.config.mjs"),
        ".gitignore": "dist\nnode_modules\n",
        "README.md": readme(manifest),
        "LICENSE.md": _fill("n8n.LICENSE.md", holder=publisher(manifest).name),
        NODE_FILE: _node_ts(manifest),
        CODEX_FILE: json.dumps(codex(manifest), indent="\t") + "\n",
        f"{NODE_DIR}/{ICONS['light']}": _template("n8n.light.svg"),
        f"{NODE_DIR}/{ICONS['dark']}": _template("n8n.dark.svg"),
        CREDENTIAL_FILE: _fill(
            "n8n.credentials.ts",
            name=CREDENTIAL_CLASS,
            members=_credential_members(credential_spec(manifest)),
        ),
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
