"""Documentation generated from the manifest: Markdown pages, terminal tables, JSON descriptions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from connector.engine.forms import BOOLEAN_SPELLINGS
from connector.engine.loader import load_manifest
from connector.errors import ERROR_TYPES
from connector.manifest.spec import Action, Manifest, Param
from connector.transport.connection import ENV_VARS
from connector.transport.providers import PROVIDERS
from connector.views import files

GENERATED = "<!-- Generated from manifest.yaml by `python -m connector docs`. Do not edit. -->"

# (type, exit code, retryable, when): the error object's `type` values, for every action page.
ERRORS = [
    (name, t.cls.exit_code, t.cls.retryable, t.when)
    for name, t in ERROR_TYPES.items()
    if not t.server_only
]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br />")


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _code(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return f"`{text}`"


def accepts(p: Param) -> str:
    """Return how a form value for ``p`` may be written, with ranges."""
    rng = ""
    if p.minimum is not None and p.maximum is not None and abs(p.maximum) < 1e15:
        rng = f" from `{_num(p.minimum)}` to `{_num(p.maximum)}`"
    elif p.minimum is not None and abs(p.minimum) < 1e15:
        rng = f" of at least `{_num(p.minimum)}`"
    if p.input == "text":
        text = "Text"
        if p.max_length:
            text += f" of up to {p.max_length} characters"
        return text + "."
    if p.input == "integer":
        return f"A whole number{rng}."
    if p.input == "number":
        return f"A number{rng}, such as `0.2` or `1e-1`."
    if p.input == "boolean":
        others = ", ".join(f"`{t}`/`{f}`" for t, f in BOOLEAN_SPELLINGS[1:])
        return f"`true` or `false` (also {others}), in any case."
    if p.input == "enum":
        return "One of " + ", ".join(f"`{v}`" for v in p.enum or []) + " (any case)."
    if p.input == "list":
        text = "Comma-separated text (quotes around items are dropped; `\\n`, `\\t` and `\\,` are"
        text += " understood), or a JSON array"
        if p.example is not None and isinstance(p.example, list):
            text += f" such as `{json.dumps(p.example)}`."
        else:
            text += ' such as `["\\n\\n", "###"]` for items with commas or newlines.'
        if p.single_as_string:
            text += " One item is sent as a single string."
        if p.max_items:
            text += f" Up to {p.max_items} items."
        return text
    if p.merge:
        return "A JSON object; its keys are added to the request."
    types = " or ".join(f"a JSON {t}" if t in ("object", "array") else t for t in p.types)
    return f"JSON text ({types})." + (" Shortcuts as described." if p.text_fallback else "")


def notes(p: Param, manifest: Manifest | None = None) -> list[str]:
    """Return the Markdown notes on a field beside its description: status, input, default."""
    manifest = manifest or load_manifest()
    parts = []
    if p.deprecated:
        instead = f" Use **{_label(p.replaced_by, manifest)}** instead." if p.replaced_by else ""
        parts.append(f"**Deprecated.**{instead}")
    if p.required:
        parts.append("**Required.**")
    parts.append("Accepts: " + accepts(p))
    if p.api_default is not None:
        parts.append(f"API default: {_code(p.api_default)} (not sent unless you set it).")
    if p.options is not None:
        parts.append(
            f"Options: from the **{manifest.action(p.options.action).title}** action"
            + ("; any other value may be typed." if p.options.free_text else ".")
        )
    return parts


def _row(p: Param, manifest: Manifest) -> str:
    parts = [p.description.strip(), *notes(p, manifest)]
    if p.example is not None:
        example = p.example_text(indent=2)
        parts.append(
            f"Example:<pre><code>{_cell(example)}</code></pre>"
            if "\n" in example
            else f"Example: {_code(p.example)}"
        )
    return f"| {p.label} | {_cell('<br /><br />'.join(parts))} |"


def _label(name: str | None, manifest: Manifest) -> str:
    for action in manifest.actions:
        for p in action.parameters:
            if p.name == name:
                return p.label
    return str(name)


def _table(params: list[Param], manifest: Manifest) -> list[str]:
    return ["| Parameter | Description |", "| --- | --- |", *(_row(p, manifest) for p in params)]


def page(action: Action, manifest: Manifest | None = None) -> str:
    """Return the Markdown page of an action, in the shape of the platform's page."""
    manifest = manifest or load_manifest()
    basic = [p for p in action.parameters if p.visibility == "basic"]
    advanced = [p for p in action.parameters if p.visibility == "advanced"]
    lines = [GENERATED, "", f"# {action.title}", "", action.description.strip(), ""]
    lines += [f"`{action.method} {action.path}`", ""]
    if basic:
        lines += ["## Basic Parameters", "", *_table(basic, manifest), ""]
    if advanced:
        lines += ["## Advanced Parameters", "", *_table(advanced, manifest), ""]
    if not action.parameters:
        lines += ["This action takes no parameters.", ""]
    lines += [
        "## Example Output",
        "",
        "Every key of this example is always present in the output, with its official type: a",
        'key the API left out is `[]`, `0`, `""` or an object filled the same way, and null',
        "only where the official schema or this example allows null. Other keys the API",
        "returns pass through.",
        "",
        "```json",
        json.dumps(action.output.example, indent=2),
        "```",
        "",
        "## Errors",
        "",
        'A failed step returns `{"error": {...}}` with `type`, `message`, `retryable`, `status`,',
        "`code`, `param`, `request_id`, `attempts`, and `body` (the API's raw reply, capped).",
        "",
        "| Type | Exit code | Retryable | When |",
        "| --- | --- | --- | --- |",
        *(
            f"| `{t}` | {code} | {'yes' if r else 'no'} | {_cell(when)} |"
            for t, code, r, when in ERRORS
        ),
        "",
    ]
    return "\n".join(lines)


def connection_page(manifest: Manifest | None = None) -> str:
    """Return the Markdown page of the connection settings and providers."""
    manifest = manifest or load_manifest()
    lines = [GENERATED, "", f"# {manifest.connector.title} connection", ""]
    lines += [manifest.connector.description.strip(), "", "## Providers", ""]
    lines += ["| Provider | API key | Description |", "| --- | --- | --- |"]
    lines += [
        f"| `{p.name}` ({p.label}) | {'required' if PROVIDERS[p.name].key_required else 'optional'}"
        f" | {_cell(p.description.strip())} |"
        for p in manifest.providers
    ]
    lines += ["", "## Settings", "", "| Setting | Description |", "| --- | --- |"]
    for p in manifest.connection.fields:
        parts = [p.description.strip(), "Accepts: " + accepts(p)]
        if p.default is not None:
            parts.append(f"Default: {_code(p.default)}.")
        if p.name in ENV_VARS:  # what the CLI, run() and the server read without a connection
            parts.append(f"Environment: `{ENV_VARS[p.name]}`.")
        if p.secret:
            parts.append("**Secret.**")
        lines.append(f"| {p.label} (`{p.name}`) | {_cell('<br /><br />'.join(parts))} |")
    return "\n".join([*lines, ""])


def status_table() -> str:
    """Return the Markdown table of error types: the server's HTTP status and the CLI's exit code."""
    lines = [
        "| type | HTTP status | exit code | retryable | when |",
        "| --- | --- | --- | --- | --- |",
        "| (success) | 200 (202 while an async run is queued or running) | 0 | | |",
    ]
    for name, t in ERROR_TYPES.items():
        code = "(server only)" if t.server_only else str(t.cls.exit_code)
        retry = "yes" if t.cls.retryable else "no"
        lines.append(f"| `{name}` | {t.http_status} | {code} | {retry} | {_cell(t.when)} |")
    return "\n".join(lines) + "\n"


# Hand-written pages that hold a generated part, between these two lines (the page's prose is
# the team's; the part is rewritten by `python -m connector docs`).
PART_START = (
    "<!-- Generated by `python -m connector docs`: {name}. Do not edit down to the end mark. -->"
)
PART_END = "<!-- End of the generated part. -->"


def parts() -> dict[str, dict[str, str]]:
    """Return the generated parts of hand-written pages: {page: {part name: text}}."""
    return {"server.md": {"statuses": status_table()}}


def splice(text: str, name: str, body: str) -> str:
    """Return ``text`` with the generated part ``name`` replaced by ``body``."""
    start = PART_START.format(name=name)
    head, found, rest = text.partition(start + "\n")
    _, ended, tail = rest.partition(PART_END)
    if not (found and ended):
        raise ValueError(f"the page lacks the marks of its generated part {name!r}: {start}")
    return f"{head}{start}\n{body}{PART_END}{tail}"


def pages(manifest: Manifest | None = None) -> dict[str, str]:
    """Return every generated page by file name."""
    manifest = manifest or load_manifest()
    out = {f"{a.id}.md": page(a, manifest) for a in manifest.actions}
    out["connection.md"] = connection_page(manifest)
    return out


def write_all(out_dir: Path, *, check: bool = False) -> list[str]:
    """Write (or with ``check``, compare) every page and part; return the names that were stale."""
    stale = []
    out_dir.mkdir(parents=True, exist_ok=True)
    wanted = dict(pages())
    for name, named_parts in parts().items():
        if not (out_dir / name).is_file():  # a hand-written page: nothing to splice into
            stale.append(name)
            continue
        text = (out_dir / name).read_text(encoding="utf-8")
        for part, body in named_parts.items():
            text = splice(text, part, body)
        wanted[name] = text
    return stale + files.sync(out_dir, wanted, check=check)


def describe(action: Action) -> dict[str, Any]:
    """Return an action's parameters grouped Basic / Advanced, for machines."""

    def one(p: Param) -> dict[str, Any]:
        from connector.manifest.format import given  # pydantic: only for the describe document

        d = given(p)
        d.update(name=p.name, label=p.label, type=p.type, input=p.input, accepts=accepts(p))
        return d

    return {
        "id": action.id,
        "title": action.title,
        "description": action.description,
        "method": action.method,
        "path": action.path,
        "basic": [one(p) for p in action.parameters if p.visibility == "basic"],
        "advanced": [one(p) for p in action.parameters if p.visibility == "advanced"],
        "output_example": action.output.example,
    }


def table(action: Action) -> str:
    """Return a plain-text table of an action's parameters, Basic then Advanced."""
    lines = [f"{action.title} ({action.id}): {action.method} {action.path}"]
    for group in ("basic", "advanced"):
        params = [p for p in action.parameters if p.visibility == group]
        if not params:
            continue
        rows = [
            (
                p.label + (" *" if p.required else "") + (" (deprecated)" if p.deprecated else ""),
                p.name,
                p.input,
                _limits(p),
            )
            for p in params
        ]
        widths = [
            max(len(r[i]) for r in [*rows, ("Label", "Name", "Input", "Limits")]) for i in range(4)
        ]
        lines += ["", f"{group.title()} Parameters"]
        for r in [("Label", "Name", "Input", "Limits"), *rows]:
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    lines.append("\n* required")
    return "\n".join(lines) + "\n"


def _limits(p: Param) -> str:
    bits = []
    if p.minimum is not None and p.maximum is not None and abs(p.maximum) < 1e15:
        bits.append(f"{_num(p.minimum)}..{_num(p.maximum)}")
    elif p.minimum is not None and abs(p.minimum) < 1e15:
        bits.append(f">= {_num(p.minimum)}")
    if p.enum:
        bits.append("|".join(p.enum))
    if p.max_items:
        bits.append(f"max {p.max_items} items")
    if p.max_length:
        bits.append(f"max {p.max_length} chars")
    return ", ".join(bits)
