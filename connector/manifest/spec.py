"""The compiled manifest: plain read-only objects built once from checked, normalized data.

The format (fields, defaults, rules) is declared once, by the pydantic models of
``connector.manifest.format``; ``connector.engine.checks`` checks a manifest against them and returns it
normalized, every field given, and ``build`` makes these objects from that data, so the run
path never imports pydantic. What the engine derives from an action (its form, its output
template) is ``connector.engine.plan``'s.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from connector.errors import ConnectorError, InvalidInput
from connector.manifest.values import as_types


class ManifestError(ConnectorError):
    """The manifest is broken; the message names the file, the path inside it and the reason."""

    type = "internal"
    exit_code = 1


class Compiled:
    """Base of the compiled objects: read-only, every annotated field given.

    One class per model of ``connector.manifest.format``, with the same fields (a test compares them)
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
    json_keys: list[str] | None
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

    def example_text(self, indent: int | None = None) -> str | None:
        """Return the example as an author would type it: text, or JSON (a placeholder)."""
        if self.example is None:
            return None
        return (
            self.example
            if isinstance(self.example, str)
            else json.dumps(self.example, indent=indent)
        )


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


class Provider(Compiled):
    """A kind of server the connection can point at."""

    name: str
    label: str
    description: str
    base_url: str | None


class Publisher(Compiled):
    """Who publishes the connector: the contact and pages a connector listing shows."""

    name: str
    email: str
    url: str
    website: str
    privacy_policy: str
    categories: list[str]
    repository: str | None


class ConnectorInfo(Compiled):
    """The connector's identity."""

    id: str
    title: str
    description: str
    publisher: Publisher | None


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
        raise InvalidInput(f"Unknown action '{action_id}'. Known actions: {known}.")


def build(data: dict[str, Any]) -> Manifest:
    """Return the compiled manifest of checked, normalized data (``checks.check`` returns it)."""
    return Manifest(
        connector=ConnectorInfo(
            **{
                **data["connector"],
                "publisher": _optional(Publisher, data["connector"]["publisher"]),
            }
        ),
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


def _param(data: dict[str, Any]) -> Param:
    return Param(**{**data, "options": _optional(Options, data["options"])})


def _optional(cls: type[Compiled], data: dict[str, Any] | None) -> Any:
    return cls(**data) if data else None
