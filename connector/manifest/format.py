"""The manifest format: pydantic models of every field, its default and its rules.

Declared once: ``connector.engine.checks`` validates a manifest with them, ``export_schema`` writes
``schemas/manifest.schema.json`` from them, and the compiled objects (``connector.manifest.spec``) have
their fields. Rules that need code beyond the models (hooks, official schemas, providers) are
``connector.engine.checks``'.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from connector.manifest.values import as_types, constraint_problem

JsonType = Literal["string", "integer", "number", "boolean", "array", "object"]
InputRule = Literal["text", "integer", "number", "boolean", "enum", "list", "json"]


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
    json_keys: list[str] | None = Field(
        None,
        min_length=1,
        description=(
            "With text_fallback: text starting with [ or { that is not JSON is plain text unless"
            ' it names one of these keys (as "key":).'
        ),
    )
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
        return as_types(self.type)

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
        if self.json_keys and not self.text_fallback:
            raise ValueError("json_keys needs text_fallback")
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
    def _example_fits(self) -> Output:
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


class Provider(Strict):
    """A kind of server the connection can point at."""

    name: str = Field(description="A provider of connector/transport/providers.py PROVIDERS.")
    label: str
    description: str
    base_url: str | None = Field(None, description="Typical base URL, shown as a hint.")


# Power Platform's fixed list of connector categories (a connector names one or two).
Category = Literal[
    "AI", "Business Management", "Business Intelligence", "Collaboration", "Commerce",
    "Communication", "Content and Files", "Finance", "Data", "Human Resources",
    "Internet of Things", "IT Operations", "Lifestyle and Entertainment", "Marketing",
    "Productivity", "Sales and CRM", "Security", "Social Media", "Website",
]  # fmt: skip
_URL = r"^https?://[^\s/]+\S*$"


class Publisher(Strict):
    """Who publishes the connector: the contact and pages a connector listing shows."""

    name: str = Field(min_length=1, description="Contact name.")
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", description="Contact e-mail.")
    url: str = Field(pattern=_URL, description="Contact page.")
    website: str = Field(pattern=_URL, description="The connector's website.")
    privacy_policy: str = Field(pattern=_URL, description="The privacy policy's page.")
    categories: list[Category] = Field(min_length=1, max_length=2)
    repository: str | None = Field(
        None,
        pattern=r"^https://\S+[^/]$",
        description="The source repository's https URL (the n8n package's repository, which"
        " its npm provenance names).",
    )


class ConnectorInfo(Strict):
    """The connector's identity."""

    id: str
    title: str
    description: str
    publisher: Publisher | None = Field(
        None, description="For connector listings (Power Automate) and the n8n package."
    )


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

    @model_validator(mode="before")
    @classmethod
    def _provider_choices(cls, data: Any) -> Any:
        """Fill the ``provider`` field's enum, when left out, from ``providers``: said once."""
        try:
            fields, providers = data["connection"]["fields"], data["providers"]
            at = next(i for i, f in enumerate(fields) if f.get("name") == "provider")
            names = [p["name"] for p in providers]
        except (TypeError, KeyError, AttributeError, StopIteration):
            return data  # the field validators name what is wrong
        if "enum" in fields[at]:
            return data
        fields = [*fields[:at], {**fields[at], "enum": names}, *fields[at + 1 :]]
        return {**data, "connection": {**data["connection"], "fields": fields}}

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
        names = sorted(p.name for p in self.providers)
        provider_field = next((f for f in self.connection.fields if f.name == "provider"), None)
        if provider_field is None or sorted(provider_field.enum or []) != names:
            raise ValueError(
                f"connection field 'provider' must list exactly the providers {names}"
                " (or leave its enum out: it is filled from them)"
            )
        return self


def _unique(params: list[Param], what: str) -> None:
    names = [p.name for p in params]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"{what} names are not unique: {dupes}")


def export_schema() -> dict[str, Any]:
    """Return the JSON Schema of the manifest format, generated from the models."""
    schema = Manifest.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Connector manifest"
    return schema


def given(obj: Any) -> dict[str, Any]:
    """Return the fields of a compiled manifest object that differ from the format's defaults."""
    model = MODELS[type(obj).__name__]
    out = {}
    for name, info in model.model_fields.items():
        value = getattr(obj, name)
        if value is None or (not info.is_required() and value == info.get_default()):
            continue
        out[name] = given(value) if type(value).__name__ in MODELS else value
    return out


MODELS: dict[str, type[BaseModel]] = {
    m.__name__: m
    for m in (
        Options,
        Param,
        Output,
        Action,
        Provider,
        Publisher,
        ConnectorInfo,
        ConnectionSpec,
        Manifest,
    )
}
