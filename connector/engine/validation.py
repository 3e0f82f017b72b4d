"""Request validation against the official Create Chat Completion schema.

The schema is ``schemas/create_chat_completion.request.schema.json``, generated from the
official OpenAPI file by ``scripts/gen_request_schema.py``. Validators are built once per
process. Each top-level property is checked on its own, and a oneOf whose branches are told
apart by a one-value property (``role`` of a message, ``type`` of a tool, content part or
response format) is dispatched on it, so a problem is reported against the branch the author
meant rather than as "not valid under any of the given schemas".
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from connector.engine import wording
from connector.errors import InternalError
from connector.manifest.paths import CARD

if TYPE_CHECKING:  # jsonschema is imported when a body needs explaining, not at start-up
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import ValidationError

# Each action names its own ``request_schema`` (relative to the card, connector/card); this is the chat one.
CHAT_SCHEMA = "schemas/create_chat_completion.request.schema.json"
REQUEST_SCHEMA_PATH = CARD / CHAT_SCHEMA
ANNOTATIONS = frozenset({"title", "description", "default", "deprecated", "examples", "$comment"})


class Problem(NamedTuple):
    """One thing wrong with a request body: where it is and what to change."""

    path: tuple[str | int, ...]
    message: str

    @property
    def location(self) -> str:
        """Return the path as text, e.g. ``messages[1].tool_call_id``."""
        text = ""
        for part in self.path:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
        return text

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.path else self.message


def validate_request(body: Any, schema: str = CHAT_SCHEMA) -> list[Problem]:
    """Return every problem of a request body against an action's request schema (empty if valid)."""
    checker = _checker(schema)
    if checker.quick(body):
        return []
    from jsonschema.exceptions import SchemaError, UndefinedTypeCheck, UnknownType
    from referencing.exceptions import Unresolvable

    try:
        return checker.check_body(body)
    except (SchemaError, UnknownType, UndefinedTypeCheck, Unresolvable) as exc:
        raise InternalError(f"the request schema is broken: {exc}") from exc


def property_schema(name: str, schema: str = CHAT_SCHEMA) -> dict[str, Any] | None:
    """Return the official schema of a top-level request property, every $ref inlined."""
    checker = _checker(schema)
    node = checker.schema["properties"].get(name)
    return None if node is None else checker.inline(node, frozenset())


def official_enum(name: str, schema: str = CHAT_SCHEMA) -> list[str] | None:
    """Return the values the official schema allows for a top-level property, if an enum."""
    node = property_schema(name, schema)
    return None if node is None else _enum_values(node)


def _enum_values(schema: dict[str, Any]) -> list[Any] | None:
    if "enum" in schema:
        return [v for v in schema["enum"] if v is not None]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            values: list[Any] = []
            for branch in schema[key]:
                if branch == {"type": "null"}:
                    continue
                sub = _enum_values(branch)
                if sub is None:  # a branch that takes any value: not an enum
                    return None
                values += [v for v in sub if v not in values]
            return values or None
    return None


@functools.cache
def _checker(schema: str = CHAT_SCHEMA) -> _Checker:
    path = CARD / schema
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InternalError(f"cannot load the request schema {path}: {exc}") from exc
    return _Checker(data)


class _Tagged(NamedTuple):
    """A oneOf of objects told apart by one property with one allowed value per branch."""

    prop: str
    branches: dict[Any, dict[str, Any]]
    noun: str

    def phrase(self, tag: Any) -> str:
        """Return e.g. ``for a tool message`` or ``when type is "json_schema"``."""
        if not self.noun:
            return f"when {self.prop} is {wording.short(tag)}"
        article = "an" if str(tag)[:1].lower() in "aeio" else "a"  # "a user"
        return f"for {article} {tag} {self.noun}"


def _never(body: Any) -> bool:
    return False


class _Checker:
    """Validators for the request schema, built on first use and kept for the process."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self.defs: dict[str, Any] = schema.get("$defs", {})  # kept beside inlined validators
        self._validators: dict[int, Draft202012Validator] = {}
        self._tagged: dict[int, _Tagged | None] = {}
        self._array_only: dict[int, dict[str, Any]] = {}
        self._fast: Any = None  # the jsonschema-rs validator, built on first use
        self.required: list[str] = schema.get("required", [])

    @functools.cached_property
    def properties(self) -> dict[str, dict[str, Any]]:
        """The top-level properties, each with its $ref followed (a body is being explained)."""
        return {name: self.resolve(sub) for name, sub in self.schema["properties"].items()}

    @functools.cached_property
    def _resolver(self) -> Any:
        # referencing comes with jsonschema, which explaining a body imports anyway; the quick
        # yes/no of a valid body never gets here (importing it costs about 90 ms).
        from referencing import Registry
        from referencing.jsonschema import DRAFT202012

        resource = DRAFT202012.create_resource(self.schema)
        return Registry().with_resource("urn:request", resource).resolver("urn:request")

    def target(self, ref: Any) -> dict[str, Any] | None:
        """Return what a local ``$ref`` points at, or None when it points nowhere."""
        from referencing.exceptions import Unresolvable

        if not (isinstance(ref, str) and ref.startswith("#")):
            return None
        try:
            found = self._resolver.lookup(ref).contents
        except Unresolvable:
            return None
        return found if isinstance(found, dict) else None

    def quick(self, body: Any) -> bool:
        """Return True when the body is certainly valid; False means: look closer.

        jsonschema-rs answers the yes/no (about 8x faster than a hand-compiled check, and 200x
        faster than jsonschema: see benchmarks/validators.py); jsonschema only words the errors
        of a body that fails.
        """
        fast = self._fast
        if fast is None:
            import jsonschema_rs

            try:
                fast = jsonschema_rs.validator_for(self.schema).is_valid
            except jsonschema_rs.ValidationError:  # a broken schema: jsonschema names the fault
                fast = _never
            self._fast = fast
        try:
            return fast(body)
        except (ValueError, RecursionError):  # a value JSON cannot carry: look closer
            return False

    def check_body(self, body: Any) -> list[Problem]:
        """Return the problems of a whole request body."""
        if not isinstance(body, dict):
            return [Problem((), f"the request body must be an object (got {wording.kind(body)})")]
        problems = [Problem((name,), "is required") for name in self.required if name not in body]
        for name, value in body.items():
            node = self.properties.get(name)
            if node is not None:  # unknown fields are the API's business
                problems += self.check(node, value, (name,))
        return _unique(problems)

    def check(self, node: dict[str, Any], value: Any, path: tuple) -> list[Problem]:
        """Return the problems of ``value`` against a schema node found at ``path``."""
        tagged = self.tagged(node)
        if tagged is not None:
            return self.check_tagged(tagged, value, path)
        items = self.resolve(node.get("items", {}))
        item_tagged = self.tagged(items) if node.get("type") == "array" else None
        if item_tagged is None:
            return self.explain_all(self.validator(node).iter_errors(value), path)
        problems = self.explain_all(self.validator(self.array_only(node)).iter_errors(value), path)
        if isinstance(value, list):
            for i, item in enumerate(value):
                problems += self.check_tagged(item_tagged, item, (*path, i))
        return problems

    def check_tagged(self, tagged: _Tagged, value: Any, path: tuple) -> list[Problem]:
        """Return the problems of ``value`` against the branch its tag names."""
        allowed = ", ".join(str(tag) for tag in tagged.branches)
        if not isinstance(value, dict):
            return [Problem(path, f"must be an object (got {wording.kind(value)})")]
        if tagged.prop not in value:
            return [Problem((*path, tagged.prop), f"is required (one of {allowed})")]
        tag = value[tagged.prop]
        branch = tagged.branches.get(tag) if isinstance(tag, str) else None
        if branch is None:
            message = f"must be one of {allowed} (got {wording.short(tag)})"
            return [Problem((*path, tagged.prop), message)]
        errors = self.validator(branch).iter_errors(value)
        return self.explain_all(errors, path, tagged.phrase(tag))

    def explain_all(
        self, errors: Iterable[ValidationError], base: tuple, phrase: str = ""
    ) -> list[Problem]:
        """Return problems for jsonschema errors found by a validator rooted at ``base``."""
        problems: list[Problem] = []
        wrong_tags: list[tuple] = []
        for error in errors:
            problems += self.explain(error, base, phrase)
            if _is_wrong_tag(error):
                wrong_tags.append((*base, *error.absolute_path))
        # An object with the wrong one-value tag (a system message's image part) is another
        # kind of object: its other problems are noise.
        for tag_path in wrong_tags:
            parent = tag_path[:-1]
            problems = [
                p for p in problems if p.path == tag_path or p.path[: len(parent)] != parent
            ]
        return problems

    def explain(self, error: ValidationError, base: tuple, phrase: str = "") -> list[Problem]:
        """Return human problems for one jsonschema error."""
        where = (*base, *error.absolute_path)
        keyword, value, instance = error.validator, error.validator_value, error.instance
        if keyword in ("oneOf", "anyOf"):
            return self.explain_choice(error, where)
        if keyword == "required":
            at_root = not error.absolute_path and phrase
            suffix = f" {phrase}" if at_root else ""
            return [Problem((*where, name), "is required" + suffix) for name in _missing(error)]
        if keyword == "additionalProperties" and value is False:
            known = error.schema.get("properties", {})
            extra = [key for key in instance if key not in known]
            return [Problem((*where, key), "is not allowed here") for key in extra]
        if "propertyNames" in error.relative_schema_path:
            return [
                Problem(
                    where,
                    f"key {wording.short(instance)} {wording.message(error, with_value=False)}",
                )
            ]
        return [Problem(where, wording.message(error))]

    def explain_choice(self, error: ValidationError, where: tuple) -> list[Problem]:
        """Return the problems of the branch of a oneOf/anyOf that ``error.instance`` meant."""
        instance, branches = error.instance, error.validator_value
        if error.validator == "oneOf" and not error.context:
            return [Problem(where, "matches more than one of the allowed forms")]
        candidates = [b for b in branches if self.accepts_type(b, instance)]
        if not candidates:
            wanted = wording.join_types(t for b in branches for t in self.types(b))
            return [Problem(where, f"must be {wanted} (got {wording.kind(instance)})")]
        tagged = self.tagged_branches(candidates) if len(candidates) > 1 else None
        if tagged is not None:
            return self.check_tagged(tagged, instance, where)
        if len(candidates) == 1:
            return self.check(candidates[0], instance, where)
        best = min(error.context, key=lambda e: len(e.path))
        return [Problem(where, wording.cap(best.message))]

    def resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        """Return ``node`` with a local $ref followed when its siblings are only annotations."""
        while "$ref" in node and not (set(node) - {"$ref"} - ANNOTATIONS):
            target = self.target(node["$ref"])
            if target is None:  # left to jsonschema, which reports it as unresolvable
                break
            node = target
        return node

    def inline(self, node: Any, seen: frozenset[str]) -> Any:
        """Return a deep copy of ``node`` with every $ref replaced by its target."""
        if isinstance(node, list):
            return [self.inline(item, seen) for item in node]
        if not isinstance(node, dict):
            return copy.deepcopy(node)
        ref = node.get("$ref")
        found = self.target(ref) if ref not in seen else None
        if found is not None:
            target = self.inline(found, seen | {ref})
            siblings = {k: self.inline(v, seen) for k, v in node.items() if k != "$ref"}
            return {**target, **siblings}
        return {k: self.inline(v, seen) for k, v in node.items()}

    def validator(self, node: dict[str, Any]) -> Draft202012Validator:
        """Return the (cached) validator of a schema node."""
        found = self._validators.get(id(node))
        if found is None:
            from jsonschema import Draft202012Validator

            # $refs are inlined up front: following them at run time costs most of the time.
            found = Draft202012Validator({**self.inline(node, frozenset()), "$defs": self.defs})
            self._validators[id(node)] = found
        return found

    def array_only(self, node: dict[str, Any]) -> dict[str, Any]:
        """Return ``node`` without ``items``: the items are checked one by one."""
        found = self._array_only.get(id(node))
        if found is None:
            found = {k: v for k, v in node.items() if k != "items"}
            self._array_only[id(node)] = found
        return found

    def tagged(self, node: dict[str, Any]) -> _Tagged | None:
        """Return the dispatch of ``node`` if it is a tagged oneOf, else None."""
        node = self.resolve(node)
        branches = node.get("oneOf")
        if not branches or set(node) - {"oneOf"} - ANNOTATIONS:
            return None
        return self.tagged_branches(branches)

    def tagged_branches(self, branches: list[dict[str, Any]]) -> _Tagged | None:
        """Return the dispatch of a list of branches if one property tells them apart."""
        key = id(branches)
        if key not in self._tagged:
            self._tagged[key] = self._find_tag([self.resolve(b) for b in branches])
        return self._tagged[key]

    @staticmethod
    def _find_tag(branches: list[dict[str, Any]]) -> _Tagged | None:
        if len(branches) < 2 or any(b.get("type") != "object" for b in branches):
            return None
        first = branches[0]
        for prop in first.get("required", []):
            tags = [_single_value(b, prop) for b in branches]
            if all(t is not None for t in tags) and len(set(tags)) == len(tags):
                return _Tagged(prop, dict(zip(tags, branches, strict=True)), wording.noun(branches))
        return None

    def types(self, node: dict[str, Any]) -> list[str]:
        """Return the JSON types a schema node can accept (all of them when unconstrained)."""
        node = self.resolve(node)
        kind = node.get("type")
        if kind is not None:
            return [kind] if isinstance(kind, str) else list(kind)
        for key in ("oneOf", "anyOf"):
            if key in node:
                return [t for branch in node[key] for t in self.types(branch)]
        if "$ref" in node:
            return self.types({"$ref": node["$ref"]})
        return list(wording.TYPE_NAMES)

    def accepts_type(self, node: dict[str, Any], instance: Any) -> bool:
        """Return whether ``instance`` has one of the JSON types ``node`` accepts."""
        from jsonschema import Draft202012Validator

        checker = Draft202012Validator.TYPE_CHECKER
        return any(checker.is_type(instance, kind) for kind in self.types(node))


def _single_value(branch: dict[str, Any], prop: str) -> Any:
    """Return the one value ``branch`` allows for a required ``prop``, or None."""
    if prop not in branch.get("required", []):
        return None
    enum = branch.get("properties", {}).get(prop, {}).get("enum", [])
    return enum[0] if len(enum) == 1 and isinstance(enum[0], str) else None


def _is_wrong_tag(error: ValidationError) -> bool:
    """Return whether ``error`` is a property with one allowed value holding another."""
    path = error.relative_schema_path
    return (
        error.validator == "enum"
        and len(error.validator_value) == 1
        and len(path) >= 3
        and path[-3] == "properties"
    )


def _missing(error: ValidationError) -> list[str]:
    instance = error.instance if isinstance(error.instance, dict) else {}
    return [name for name in error.validator_value if name not in instance]


def _unique(problems: list[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))
