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
from collections.abc import Iterable
from importlib.resources import files as package_files
from pathlib import Path
from typing import Any

from connector.engine.loader import load_manifest
from connector.manifest.spec import Action, Manifest, ManifestError, Param, Publisher
from connector.version import __version__
from connector.views import files
from connector.views.n8nform import TIMEOUT_SECONDS, field, load_options_method, properties
from connector.views.typescript import Code, string_literal, ts

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
# The folders whose every file is generated (tsc compiles them; the build copies their icons).
SOURCE_DIRS = ("nodes", "credentials")
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
_MARK = re.compile(r"/\*@(\w+)@\*/")


def _template(name: str) -> str:
    return package_files("connector.views.templates").joinpath(name).read_text(encoding="utf-8")


def _fill(template: str, **parts: str) -> str:
    """Return a template with each ``/*@NAME@*/`` mark replaced (every mark must be given)."""
    return _MARK.sub(lambda m: parts[m.group(1).lower()], _template(template))


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
        f" connector's action server ({', '.join(a.title for a in manifest.actions)}), as an"
        " n8n node.",
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
        name: Code(f"optionsOf({string_literal(action)}, {string_literal(field)})")
        for name, (action, field) in spec["loadOptions"].items()
    }
    return _fill(
        "n8n.node.ts",
        credential=string_literal(CREDENTIAL),
        timeout=str(TIMEOUT_SECONDS),
        actions=ts(spec["actions"]),
        description=ts(spec["description"], 1),
        load_options=ts(methods, 2),
        name=NODE_CLASS,
    )


def _field_rows(action: Action, params: list[Param]) -> str:
    """Return a README list of fields, each by the label the node shows."""
    return "\n".join(
        f"- **{field(action, p, top=False)['displayName']}** (`{p.name}`): {p.description.strip()}"
        for p in params
    )


def readme(manifest: Manifest) -> str:
    """Return the package's README: install, the credential, each action's fields, an example."""
    sections = []
    for a in manifest.actions:
        basic = [p for p in a.parameters if p.visibility == "basic"]
        advanced = [p for p in a.parameters if p.visibility == "advanced"]
        text = f"### {a.title} (`{a.id}`)\n{a.description.strip()}\n\n{_field_rows(a, basic)}\n"
        if advanced:
            text += f"\nUnder **Advanced Parameters**:\n\n{_field_rows(a, advanced)}\n"
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


def leftovers(out_dir: Path, names: Iterable[str]) -> list[str]:
    """Return the files under the source folders that the generator no longer makes."""
    made = set(names)
    found = sorted(p for folder in SOURCE_DIRS for p in (out_dir / folder).rglob("*"))
    return [
        str(p.relative_to(out_dir))
        for p in found
        if p.is_file() and str(p.relative_to(out_dir)) not in made
    ]


def write_all(out_dir: Path, *, check: bool = False) -> list[str]:
    """Write (or compare) the package under ``out_dir``; return the stale files (a file left
    over in nodes/ or credentials/, which the build would compile, is removed or reported)."""
    made = render()
    stale = files.sync(out_dir, made, check=check)
    for name in leftovers(out_dir, made):
        stale.append(name)
        if not check:
            (out_dir / name).unlink()
    return stale
