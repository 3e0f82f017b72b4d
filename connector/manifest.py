"""The declarative manifest: models, cross-field rules and the once-per-process loader."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    VERSION,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from .errors import ConnectorError

PACKAGE = Path(__file__).resolve().parent
# A source checkout keeps the manifest and schemas/ at its root; a wheel carries them in
# connector/data (see pyproject.toml), so `pip install` without -e works too.
CHECKOUT = (PACKAGE.parent / "manifest.yaml").is_file()
ROOT = PACKAGE.parent if CHECKOUT else PACKAGE / "data"
MANIFEST_PATH = ROOT / "manifest.yaml"
CACHE_FORMAT = 1
# The code and files the full check depends on: a change to any of them invalidates the cache.
CHECK_INPUTS = (
    PACKAGE / "manifest.py",
    PACKAGE / "forms.py",
    PACKAGE / "validation.py",
    ROOT / "schemas" / "create_chat_completion.request.schema.json",
    ROOT / "schemas" / "create_chat_completion.response.schema.json",
)

JsonType = Literal["string", "integer", "number", "boolean", "array", "object"]
InputRule = Literal["text", "integer", "number", "boolean", "enum", "list", "json"]


class ManifestError(ConnectorError):
    """The manifest is broken; the message names the file, the path inside it and the reason."""

    type = "internal"
    exit_code = 1


class Strict(BaseModel):
    """Base for manifest models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Options(Strict):
    """Where a field's dropdown options come from."""

    action: str = Field(description="Action whose output lists the options.")
    value: str = Field("id", description="Key of each listed item used as the option value.")
    free_text: bool = Field(True, description="Whether a value not in the list is accepted.")


class Param(Strict):
    """One form field: an action parameter or a connection setting."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="API field; the form key.")
    label: str = Field(min_length=1, description="Label shown in the form.")
    description: str = Field(min_length=1)
    type: JsonType | list[JsonType] = Field(description="JSON type(s) of the value sent.")
    input: InputRule = Field(description="How form text becomes a value.")
    visibility: Literal["basic", "advanced"] = "advanced"
    required: bool = False
    secret: bool = Field(False, description="Never shown in any output (connection only).")
    minimum: float | None = None
    maximum: float | None = None
    min_length: int | None = Field(None, ge=0)
    max_length: int | None = Field(None, ge=1)
    min_items: int | None = Field(None, ge=0)
    max_items: int | None = Field(None, ge=1)
    enum: list[str] | None = None
    single_as_string: bool = Field(False, description="List input: one item is sent as a string.")
    text_fallback: bool = Field(False, description="JSON input: non-JSON text goes to transform.")
    transform: str | None = Field(None, description="Function of the action module applied last.")
    send_as: str | None = Field(None, description="Body field the value is sent as.")
    merge: bool = Field(False, description="A JSON object merged into the body (extra fields).")
    deprecated: bool = False
    replaced_by: str | None = None
    api_default: Any = Field(None, description="The API's own default (documented, never sent).")
    default: Any = Field(None, description="Connection settings only: value when not given.")
    options: Options | None = None
    example: Any = None

    @property
    def types(self) -> tuple[str, ...]:
        """Return the accepted JSON types as a tuple."""
        return tuple(self.type) if isinstance(self.type, list) else (self.type,)

    @property
    def target(self) -> str:
        """Return the body field this parameter is sent as."""
        return self.send_as or self.name

    @model_validator(mode="after")
    def _rules(self) -> Param:
        types = self.types
        if self.input == "list" and "array" not in types:
            raise ValueError("input 'list' is only for parameters whose type includes 'array'")
        if self.single_as_string and not (self.input == "list" and "string" in types):
            raise ValueError("single_as_string needs input 'list' and a type including 'string'")
        if self.input == "enum" and not self.enum:
            raise ValueError("input 'enum' needs a non-empty 'enum' list")
        if self.enum is not None and self.input not in ("enum", "list", "text"):
            raise ValueError(f"'enum' values make no sense with input '{self.input}'")
        if self.input in ("integer", "number", "boolean") and types != (self.input,):
            raise ValueError(f"input '{self.input}' needs type '{self.input}'")
        if self.text_fallback and self.input != "json":
            raise ValueError("text_fallback is only for input 'json'")
        if self.merge and (self.input != "json" or types != ("object",)):
            raise ValueError("merge needs input 'json' and type 'object'")
        if self.replaced_by and not self.deprecated:
            raise ValueError("replaced_by is only for deprecated parameters")
        if (self.minimum is not None and self.maximum is not None) and self.minimum > self.maximum:
            raise ValueError("minimum is greater than maximum")
        if self.required and self.visibility != "basic":
            raise ValueError("a required parameter must be basic")
        if self.default is not None:
            problem = constraint_problem(self, self.default)
            if problem:
                raise ValueError(
                    f"default {json.dumps(self.default, default=str)} breaks its own rules: {problem}"
                )
        return self


class Output(Strict):
    """The example-shaped output: its JSON Schema and the example itself."""

    schema_: dict[str, Any] = Field(alias="schema")
    example: dict[str, Any]

    @model_validator(mode="after")
    def _example_fits(self, info: ValidationInfo) -> Output:
        if info.context and info.context.get("checked"):
            return self  # this very manifest passed the check before (see _load)
        from jsonschema import Draft202012Validator

        Draft202012Validator.check_schema(self.schema_)
        errors = sorted(Draft202012Validator(self.schema_).iter_errors(self.example), key=str)
        if errors:
            where = "/".join(str(p) for p in errors[0].absolute_path) or "(root)"
            raise ValueError(f"example does not match schema at {where}: {errors[0].message}")
        return self


class Action(Strict):
    """One action: an API call, its form and its output."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    description: str
    method: Literal["GET", "POST"]
    path: str = Field(pattern=r"^/[A-Za-z0-9_/{}.-]*$")
    module: str | None = Field(None, description="Python module with the action's hooks.")
    request_schema: str | None = Field(None, description="JSON Schema file for the body.")
    response_schema: str | None = Field(
        None,
        description="The official JSON Schema file of the reply: the types that filled keys keep.",
    )
    parameters: list[Param] = []
    output: Output

    @model_validator(mode="after")
    def _rules(self) -> Action:
        _unique(self.parameters, "parameter")
        names = {p.name for p in self.parameters}
        targets = [p.target for p in self.parameters if not p.merge]
        for p in self.parameters:
            if p.secret:
                raise ValueError(f"parameter '{p.name}': secrets belong in the connection")
            if p.replaced_by and p.replaced_by not in names:
                raise ValueError(f"parameter '{p.name}': replaced_by '{p.replaced_by}' is unknown")
            if p.send_as and p.send_as not in names:
                raise ValueError(f"parameter '{p.name}': send_as '{p.send_as}' is not a parameter")
            if p.transform and not self.module:
                raise ValueError(f"parameter '{p.name}': a transform needs the action's 'module'")
        dupes = {t for t in targets if targets.count(t) > 1} - {
            p.send_as for p in self.parameters if p.send_as
        }
        if dupes:
            raise ValueError(f"two parameters are sent as the same field: {sorted(dupes)}")
        if sum(p.merge for p in self.parameters) > 1:
            raise ValueError("at most one parameter may merge extra fields")
        return self

    def param(self, name: str) -> Param:
        """Return the parameter called ``name``."""
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)


class Provider(Strict):
    """A kind of server the connection can point at."""

    name: str = Field(description="A provider of connector/providers.py PROVIDERS.")
    label: str
    description: str
    base_url: str | None = Field(None, description="Typical base URL, shown as a hint.")


class ConnectorInfo(Strict):
    """The connector's identity."""

    id: str
    title: str
    description: str
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")


class ConnectionSpec(Strict):
    """The connection form."""

    fields: list[Param]

    @model_validator(mode="after")
    def _rules(self) -> ConnectionSpec:
        _unique(self.fields, "connection field")
        return self


class Manifest(Strict):
    """The whole manifest."""

    connector: ConnectorInfo
    connection: ConnectionSpec
    providers: list[Provider]
    actions: list[Action]

    @model_validator(mode="after")
    def _rules(self) -> Manifest:
        ids = [a.id for a in self.actions]
        if len(ids) != len(set(ids)):
            raise ValueError(f"action ids are not unique: {ids}")
        for action in self.actions:
            for p in action.parameters:
                if p.options and p.options.action not in ids:
                    raise ValueError(
                        f"{action.id}.{p.name}: options come from unknown action '{p.options.action}'"
                    )
        from .providers import PROVIDERS

        names = sorted(p.name for p in self.providers)
        unknown = [n for n in names if n not in PROVIDERS]
        if unknown:
            raise ValueError(
                f"providers {unknown} have no class in connector/providers.py;"
                f" the registered ones are {list(PROVIDERS)}"
            )
        provider_field = next((f for f in self.connection.fields if f.name == "provider"), None)
        if provider_field is None or sorted(provider_field.enum or []) != names:
            raise ValueError(f"connection field 'provider' must list exactly the providers {names}")
        return self

    def action(self, action_id: str) -> Action:
        """Return the action called ``action_id`` or raise a clear error."""
        for a in self.actions:
            if a.id == action_id:
                return a
        known = ", ".join(a.id for a in self.actions)
        from .errors import InvalidInput

        raise InvalidInput(f"Unknown action '{action_id}'. Known actions: {known}.")


def _unique(params: list[Param], what: str) -> None:
    names = [p.name for p in params]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{what} names are not unique: {dupes}")


def json_type(value: Any) -> str | None:
    """Return the JSON Schema type name of a parsed JSON value; None for anything else."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return None


def constraint_problem(param: Param, value: Any) -> str | None:
    """Return what is wrong with an already-typed ``value`` for ``param``, or None."""
    kind = json_type(value) or "null"
    types = param.types
    if kind not in types and not (kind == "integer" and "number" in types):
        return f"expected {' or '.join(types)}, got {kind}"
    if kind in ("integer", "number"):
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        if param.minimum is not None and value < param.minimum:
            return f"must be at least {_num(param.minimum)}"
        if param.maximum is not None and value > param.maximum:
            return f"must be at most {_num(param.maximum)}"
    if kind == "string":
        if param.min_length is not None and len(value) < param.min_length:
            return f"must be at least {param.min_length} characters"
        if param.max_length is not None and len(value) > param.max_length:
            return f"must be at most {param.max_length} characters"
        if param.enum and value not in param.enum:
            return f"must be one of: {', '.join(param.enum)}"
    if kind == "array":
        if param.max_items is not None and len(value) > param.max_items:
            return f"takes at most {param.max_items} items, got {len(value)}"
        if param.min_items is not None and len(value) < param.min_items:
            n = param.min_items
            return f"needs at least {n} {'item' if n == 1 else 'items'}, got {len(value)}"
        if param.enum:
            bad = [v for v in value if v not in param.enum]
            if bad:
                return f"unknown value(s) {bad}; allowed: {', '.join(param.enum)}"
    return None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _location(loc: tuple, data: Any) -> str:
    """Render a pydantic error location with names instead of list indexes where possible."""
    parts: list[str] = []
    node = data
    for key in loc:
        if isinstance(key, int) and isinstance(node, list) and 0 <= key < len(node):
            node = node[key]
            name = node.get("id") or node.get("name") if isinstance(node, dict) else None
            parts.append(f"[{key}]" + (f"({name})" if name else ""))
            continue
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, dict) and key == "schema_" and "schema" in node:
            node, key = node["schema"], "schema"
        parts.append(("." if parts else "") + str(key))
    return "".join(parts) or "(root)"


def parse_manifest(data: Any, source: str = "manifest.yaml", *, checked: bool = False) -> Manifest:
    """Validate manifest data; raise ManifestError naming the file, the path and the reason.

    ``checked`` skips what needs code or files beyond the models (the example against its
    schema, hooks, official enums): for data that already passed them, as the cache records.
    """
    try:
        manifest = Manifest.model_validate(data, context={"checked": checked})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            # pydantic appends the failing model validator to the loc; keep the data path only
            loc = tuple(k for k in loc if not (isinstance(k, str) and k.startswith("function-")))
            msg = err["msg"].removeprefix("Value error, ")
            lines.append(f"{source}: {_location(loc, data)}: {msg}")
        raise ManifestError("Invalid manifest:\n" + "\n".join(lines)) from None
    problems = [] if checked else _cross_checks(manifest)
    if problems:
        raise ManifestError("Invalid manifest:\n" + "\n".join(f"{source}: {p}" for p in problems))
    return manifest


def _cross_checks(manifest: Manifest) -> list[str]:
    """Check what needs code or files beyond the models: hooks, official enums, schemas."""
    from . import hooks, validation

    problems = _example_problems("connection.fields", manifest.connection.fields, None)
    for action in manifest.actions:
        module = None
        if action.module:
            try:
                module = hooks.module(action.module)
            except ImportError as exc:
                problems.append(f"actions.{action.id}.module: cannot import: {exc}")
        if action.request_schema and not (ROOT / action.request_schema).is_file():
            problems.append(f"actions.{action.id}.request_schema: no file {action.request_schema}")
        if action.response_schema:
            problems += _response_problems(action)
        for p in action.parameters:
            where = f"actions.{action.id}.parameters.{p.name}"
            if (
                p.transform
                and module is not None
                and not callable(getattr(module, p.transform, None))
            ):
                problems.append(f"{where}.transform: {action.module} has no '{p.transform}'")
            if action.request_schema and p.enum and not p.merge:
                official = validation.official_enum(p.target, action.request_schema)
                if official is not None and sorted(official) != sorted(p.enum):
                    problems.append(
                        f"{where}.enum: {p.enum} differs from the official schema's {official}"
                    )
        if not problems and (module is not None or not action.module):
            problems += _example_problems(
                f"actions.{action.id}.parameters", action.parameters, action.module
            )
    return problems


def _response_problems(action: Action) -> list[str]:
    """Check the output example against the official response schema, its own nulls allowed."""
    from jsonschema import Draft202012Validator

    from .output import allow_example_nulls

    where = f"actions.{action.id}.response_schema"
    try:
        schema = json.loads((ROOT / action.response_schema).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"{where}: cannot read {action.response_schema}: {exc}"]
    example = action.output.example
    validator = Draft202012Validator(allow_example_nulls(schema, example))
    errors = sorted(validator.iter_errors(example), key=str)
    if errors:
        at = "/".join(str(p) for p in errors[0].absolute_path) or "(root)"
        return [f"{where}: the output example breaks it at {at}: {errors[0].message}"]
    return []


def _example_problems(where: str, params: list[Param], module: str | None) -> list[str]:
    """Run each example through its own input rule, as if an author had typed it."""
    from .forms import Form

    form = Form(params, module)
    problems = []
    for p in params:
        if p.example is None:
            continue
        _, errors = form.coerce({p.name: p.example}, max_chars=10**6, max_depth=64)
        errors = [e for e in errors if e["name"] == p.name]
        if errors:
            problems.append(
                f"{where}.{p.name}.example: breaks its own rules: {errors[0]['message']}"
            )
    return problems


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"Cannot read the manifest {path}: {exc.strerror}") from None


def _parse_yaml(raw: bytes, path: Path) -> Any:
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(raw.decode("utf-8"), Loader=loader)
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path.name}: not UTF-8 text: {exc}") from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path.name}: not valid YAML: {exc}") from None


def cache_dir() -> Path | None:
    """Return the directory of the checked-manifest cache, or None when it is turned off."""
    value = os.environ.get("CONNECTOR_CACHE_DIR")
    if value is not None:
        value = value.strip()
        return Path(value) if value and value.lower() != "off" else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "openai-chat-connector"


def _cache_key(raw: bytes) -> str:
    """Return a digest of the manifest bytes and of the code and files that check it."""
    digest = hashlib.sha256(raw)
    digest.update(f"{CACHE_FORMAT} {VERSION}".encode())
    for path in CHECK_INPUTS:
        digest.update(_stamp(path).encode())
    return digest.hexdigest()


def _stamp(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return f"{path} missing"
    return f"{path} {st.st_mtime_ns} {st.st_size}"


def _module_stamps(names: list[str]) -> dict[str, str]:
    """Return a stamp of each action module's file, found without importing the module."""
    import importlib.util

    stamps = {}
    for name in names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        stamps[name] = _stamp(Path(spec.origin)) if spec and spec.origin else "not found"
    return stamps


def _cache_file(path: Path) -> Path | None:
    folder = cache_dir()
    if folder is None:
        return None
    return folder / f"manifest-{hashlib.sha256(str(path).encode()).hexdigest()[:16]}.json"


def _cached_data(file: Path | None, key: str) -> Any:
    """Return the data of a manifest that passed the full check, or None."""
    if file is None:
        return None
    try:
        entry = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    modules = entry.get("modules")
    if not isinstance(modules, dict) or modules != _module_stamps(list(modules)):
        return None  # an action module changed: its hooks are checked again
    return entry.get("data")


def _store(file: Path | None, key: str, data: Any, manifest: Manifest) -> None:
    """Record that ``data`` passed the full check; quietly skip what JSON cannot carry."""
    if file is None:
        return
    modules = _module_stamps(sorted({a.module for a in manifest.actions if a.module}))
    try:
        entry = {"key": key, "modules": modules, "data": data}
        text = json.dumps(entry, ensure_ascii=False, allow_nan=False)
        if json.loads(text)["data"] != data:  # e.g. YAML dates or number keys: not cached
            return
        file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = file.with_name(f"{file.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, file)  # atomic: a concurrent reader sees the old entry or the new one
    except (OSError, TypeError, ValueError):
        pass  # a read-only or full disk only costs the next process the full check


@functools.cache
def _load(path: str) -> Manifest:
    # The full check (the example against its schema, hooks, official enums) costs tens of
    # milliseconds per process, mostly imports. A manifest whose bytes, and the code that checks
    # it, passed it before is only validated structurally: same models, same error messages.
    file = Path(path)
    raw = _read_bytes(file)
    key = _cache_key(raw)
    cache = _cache_file(file)
    data = _cached_data(cache, key)
    if data is not None:
        return parse_manifest(data, file.name, checked=True)
    data = _parse_yaml(raw, file)
    manifest = parse_manifest(data, file.name)
    _store(cache, key, data, manifest)
    return manifest


@functools.lru_cache(maxsize=64)
def _resolved(path: str, cwd: str) -> str:
    return str(Path(cwd, path).resolve())


def load_manifest(path: str | os.PathLike | None = None) -> Manifest:
    """Return the manifest, parsed and validated once per process per path."""
    raw = os.fspath(path or os.environ.get("CONNECTOR_MANIFEST") or MANIFEST_PATH)
    # Resolving a path costs more than the rest of a lookup; a relative one depends on the cwd.
    return _load(_resolved(raw, "" if os.path.isabs(raw) else os.getcwd()))


def check_manifest(path: str | os.PathLike | None = None) -> Manifest:
    """Return the manifest after the full check, whatever the cache says."""
    file = Path(path or os.environ.get("CONNECTOR_MANIFEST") or MANIFEST_PATH).resolve()
    raw = _read_bytes(file)
    data = _parse_yaml(raw, file)
    manifest = parse_manifest(data, file.name)
    _store(_cache_file(file), _cache_key(raw), data, manifest)
    return manifest


def export_schema() -> dict[str, Any]:
    """Return the JSON Schema of the manifest format, generated from the models."""
    schema = Manifest.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Connector manifest"
    return schema
