"""The n8n node's form: its properties, from the manifest's actions and fields, as n8n's
conventions (which its lint checks) want them."""

from __future__ import annotations

from typing import Any

from connector.manifest.spec import Action, Manifest, Param

TIMEOUT_SECONDS = 600  # the default of the node's Timeout option; a local model can be slow
JSON_ROWS = 4  # height of a JSON field's text box
# n8n's conventions that its lint checks (eslint-plugin-n8n-nodes-base).
DYNAMIC_LABEL = "Name or ID"
DYNAMIC_DESCRIPTION = (
    "Choose from the list, or specify an ID using an"
    ' <a href="https://docs.n8n.io/code/expressions/">expression</a>'
)
SECRET_WORDS = ("secret", "password", "token", "apikey")


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
    text = p.example_text()
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
