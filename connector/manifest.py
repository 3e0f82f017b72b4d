"""The manifest at run time: plain objects compiled once from checked data, and their loader.

The format itself (fields, defaults, rules) is declared once, by the pydantic models of
``connector.models``. They check a manifest the cache has not seen and return it normalized,
every field given; the run path builds these objects from that data without importing pydantic.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

from .errors import ConnectorError

PACKAGE = Path(__file__).resolve().parent
# A source checkout keeps the manifest and schemas/ at its root; a wheel carries them in
# connector/data (see setup.py), so `pip install` without -e works too.
CHECKOUT = (PACKAGE.parent / "manifest.yaml").is_file()
ROOT = PACKAGE.parent if CHECKOUT else PACKAGE / "data"
MANIFEST_PATH = ROOT / "manifest.yaml"
CACHE_FORMAT = 2
# The code and files the full check depends on: a change to any of them invalidates the cache
# (pydantic's own version is stamped with the action modules, see _module_stamps).
CHECK_INPUTS = (
    PACKAGE / "manifest.py",
    PACKAGE / "models.py",
    PACKAGE / "forms.py",
    PACKAGE / "validation.py",
    PACKAGE / "output.py",
    PACKAGE / "providers.py",
    ROOT / "schemas" / "create_chat_completion.request.schema.json",
    ROOT / "schemas" / "create_chat_completion.response.schema.json",
)


class ManifestError(ConnectorError):
    """The manifest is broken; the message names the file, the path inside it and the reason."""

    type = "internal"
    exit_code = 1


class Compiled:
    """Base of the compiled objects: read-only, every annotated field given.

    One class per model of ``connector.models``, with the same fields (a test compares them)
    and no defaults: the checked data gives every field. Each object is its own identity, so
    what it compiles on first use (``functools.cached_property``) stays with it. Plain classes,
    not dataclasses: defining and filling them costs a few milliseconds less per process.
    """

    _fields = frozenset()

    def __init_subclass__(cls) -> None:
        cls._fields = frozenset(cls.__annotations__)

    def __init__(self, **values: Any) -> None:
        if values.keys() != self._fields:
            wrong = sorted(values.keys() ^ self._fields)
            raise TypeError(f"{type(self).__name__}: missing or unknown fields {wrong}")
        self.__dict__.update(values)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    def data(self) -> dict[str, Any]:
        """Return the fields as the normalized data they were built from."""
        return {name: _data(getattr(self, name)) for name in sorted(self._fields)}

    def __repr__(self) -> str:
        name = getattr(self, "id", None) or getattr(self, "name", None)
        return f"<{type(self).__name__} {name}>" if name else f"<{type(self).__name__}>"


class Options(Compiled):
    """Where a field's dropdown options come from."""

    action: str
    value: str
    free_text: bool


class Param(Compiled):
    """One form field: an action parameter or a connection setting."""

    name: str
    label: str
    description: str
    type: str | list[str]
    input: str
    visibility: str
    required: bool
    secret: bool
    minimum: float | None
    maximum: float | None
    min_length: int | None
    max_length: int | None
    min_items: int | None
    max_items: int | None
    enum: list[str] | None
    single_as_string: bool
    text_fallback: bool
    transform: str | None
    send_as: str | None
    merge: bool
    deprecated: bool
    replaced_by: str | None
    api_default: Any
    default: Any
    options: Options | None
    example: Any

    @functools.cached_property
    def types(self) -> tuple[str, ...]:
        """Return the accepted JSON types as a tuple."""
        return as_types(self.type)

    @property
    def target(self) -> str:
        """Return the body field this parameter is sent as."""
        return self.send_as or self.name


class Output(Compiled):
    """The example-shaped output: its JSON Schema and the example itself."""

    schema_: dict[str, Any]
    example: dict[str, Any]


class Action(Compiled):
    """One action: an API call, its form, its output, and what it compiles on first use."""

    id: str
    title: str
    description: str
    method: str
    path: str
    module: str | None
    request_schema: str | None
    response_schema: str | None
    parameters: list[Param]
    output: Output

    def param(self, name: str) -> Param:
        """Return the parameter called ``name``."""
        found = self.by_name.get(name)
        if found is None:
            raise KeyError(name)
        return found

    @functools.cached_property
    def form(self) -> Any:
        """The form that coerces this action's fields (a ``forms.Form``)."""
        from .forms import Form

        return Form(self.parameters, self.module)

    @functools.cached_property
    def by_name(self) -> dict[str, Param]:
        """The parameters by form name."""
        return {p.name: p for p in self.parameters}

    @functools.cached_property
    def by_target(self) -> dict[str, Param]:
        """The parameters by the body field they are sent as (merge and aliases left out)."""
        return {p.target: p for p in self.parameters if not p.merge and not p.send_as}

    @functools.cached_property
    def merge_param(self) -> Param | None:
        """The parameter whose JSON object is merged into the body, if any."""
        return next((p for p in self.parameters if p.merge), None)

    @functools.cached_property
    def template(self) -> Any:
        """The output template, typed by the official response schema (an ``output.Template``)."""
        from .output import output_template

        return output_template(self)


class Provider(Compiled):
    """A kind of server the connection can point at."""

    name: str
    label: str
    description: str
    base_url: str | None


class ConnectorInfo(Compiled):
    """The connector's identity."""

    id: str
    title: str
    description: str
    version: str
    publisher: dict[str, Any] | None


class ConnectionSpec(Compiled):
    """The connection form."""

    fields: list[Param]


class Manifest(Compiled):
    """The whole manifest, compiled."""

    connector: ConnectorInfo
    connection: ConnectionSpec
    providers: list[Provider]
    actions: list[Action]

    @functools.cached_property
    def connections(self) -> dict[tuple, Any]:
        """Connections coerced from the same settings, run after run (runner.resolve_connection)."""
        return {}

    def action(self, action_id: str) -> Action:
        """Return the action called ``action_id`` or raise a clear error."""
        for a in self.actions:
            if a.id == action_id:
                return a
        known = ", ".join(a.id for a in self.actions)
        from .errors import InvalidInput

        raise InvalidInput(f"Unknown action '{action_id}'. Known actions: {known}.")

    @functools.cached_property
    def connection_form(self) -> Any:
        """The form that coerces connection settings (a ``forms.Form``)."""
        from .forms import Form

        return Form(self.connection.fields)

    @functools.cached_property
    def connection_defaults(self) -> dict[str, Any]:
        """The connection settings' declared defaults, coerced by their own rules."""
        from .forms import invalid

        given = {p.name: p.default for p in self.connection.fields if p.default is not None}
        defaults, errors = self.connection_form.coerce(given, max_chars=100_000, max_depth=8)
        if errors:
            raise invalid(errors, "connection defaults")
        # YAML writes 600 for the number 600.0: keep Connection's types whatever the spelling.
        for p in self.connection.fields:
            if p.types == ("number",) and p.name in defaults:
                defaults[p.name] = float(defaults[p.name])
        return defaults


def build(data: dict[str, Any]) -> Manifest:
    """Return the compiled manifest of checked, normalized data (``models.check`` returns it)."""
    return Manifest(
        connector=ConnectorInfo(**data["connector"]),
        connection=ConnectionSpec(fields=[_param(f) for f in data["connection"]["fields"]]),
        providers=[Provider(**p) for p in data["providers"]],
        actions=[
            Action(
                **{
                    **a,
                    "parameters": [_param(p) for p in a["parameters"]],
                    "output": Output(**a["output"]),
                }
            )
            for a in data["actions"]
        ],
    )


def _data(value: Any) -> Any:
    if isinstance(value, Compiled):
        return value.data()
    if isinstance(value, list):
        return [_data(v) for v in value]
    return value


def _param(data: dict[str, Any]) -> Param:
    options = data["options"]
    return Param(**{**data, "options": Options(**options) if options else None})


def as_types(type_: str | list[str]) -> tuple[str, ...]:
    """Return a declared ``type`` (one name or a list) as a tuple of JSON type names."""
    return tuple(type_) if isinstance(type_, list) else (type_,)


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
    digest.update(f"{CACHE_FORMAT}".encode())
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
    """Record that normalized ``data`` passed the full check; skip what JSON cannot carry."""
    if file is None:
        return
    modules = _module_stamps(_stamped_modules(manifest))
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


def _stamped_modules(manifest: Manifest) -> list[str]:
    # pydantic checks the format: another version could accept or fill data differently.
    return ["pydantic", *sorted({a.module for a in manifest.actions if a.module})]


def _checked(raw: bytes, file: Path, key: str) -> Manifest:
    """Check the manifest in full (pydantic, hooks, schemas), record it, return it compiled."""
    from .models import check

    data, manifest = check(_parse_yaml(raw, file), file.name)
    _store(_cache_file(file), key, data, manifest)
    return manifest


@functools.cache
def _load(path: str) -> Manifest:
    # The full check (pydantic, the example against its schema, hooks, official enums) costs
    # about 100 ms per process, mostly imports. A manifest whose bytes, and the code that checks
    # it, passed it before is compiled from the normalized data the check recorded.
    file = Path(path)
    raw = _read_bytes(file)
    key = _cache_key(raw)
    data = _cached_data(_cache_file(file), key)
    if data is not None:
        try:
            return build(data)
        except (TypeError, KeyError, AttributeError):
            pass  # an entry this code did not write: check again, and overwrite it
    return _checked(raw, file, key)


@functools.lru_cache(maxsize=64)
def _resolved(path: str, cwd: str) -> str:
    return str(Path(cwd, path).resolve())


def load_manifest(path: str | os.PathLike | None = None) -> Manifest:
    """Return the compiled manifest, checked once per process per path (or once per change)."""
    raw = os.fspath(path or os.environ.get("CONNECTOR_MANIFEST") or MANIFEST_PATH)
    # Resolving a path costs more than the rest of a lookup; a relative one depends on the cwd.
    return _load(_resolved(raw, "" if os.path.isabs(raw) else os.getcwd()))


def check_manifest(path: str | os.PathLike | None = None) -> Manifest:
    """Return the manifest after the full check, whatever the cache says."""
    file = Path(path or os.environ.get("CONNECTOR_MANIFEST") or MANIFEST_PATH).resolve()
    raw = _read_bytes(file)
    return _checked(raw, file, _cache_key(raw))
