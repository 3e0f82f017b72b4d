"""The request body: checked form values assembled and validated against the official schema."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from connector.engine import notices, plan, validation
from connector.engine.forms import Notes, field_error, invalid
from connector.engine.hooks import hook
from connector.errors import InvalidInput
from connector.manifest.spec import Action, Param
from connector.transport.connection import Connection


def build_body(
    action: Action, form: Mapping[str, Any], connection: Connection, notes: Notes | None = None
) -> dict | None:
    """Return the request body for ``form``, or raise InvalidInput listing every problem.

    The warnings of text read leniently go to ``notes`` when given, else to the log; a failure
    carries them in its ``warnings``.
    """
    if not isinstance(form, Mapping):
        raise InvalidInput(
            f"The form must be an object of field values, not {type(form).__name__}."
        )
    own = notes is None
    notes = Notes() if notes is None else notes
    values, errors = plan.form(action).coerce(
        form,
        max_chars=connection.max_input_chars,
        max_depth=connection.max_json_depth,
        notes=notes,
    )
    if action.method == "GET":
        _finish(errors, notes, own)
        return None
    body: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for name, value in values.items():  # in parameter order, as the form coerced them
        param = action.by_name[name]
        if param.merge:
            extra = value
        elif param.send_as and param.send_as in values:
            if values[param.send_as] != value:
                target = action.param(param.send_as)
                errors.append(
                    field_error(param, f"conflicts with {target.label}; give only {target.label}.")
                )
        else:
            if param.deprecated and param.replaced_by:
                notices.warn(
                    "deprecated",
                    "is deprecated; "
                    + (
                        f"it is sent as {action.param(param.target).label}."
                        if param.send_as
                        else f"use {action.param(param.replaced_by).label} instead."
                    ),
                    name=param.name,
                    label=param.label,
                )
            body[param.target] = value
    merge_param = action.merge_param
    for key, value in extra.items():
        clash = plan.form(action).lookup(key) if key not in body else None
        if key in body or (clash is not None and not clash.merge):
            label = clash.label if clash else key
            errors.append(
                field_error(merge_param, f"'{key}' has its own field; use {label} instead.", (key,))
            )
        else:
            body[key] = value
    errors.extend(_cross_rules(action, body))
    if action.request_schema:
        # Validate what did coerce, so every problem is reported at once; skip fields that
        # already have an error (a missing or rejected field would be reported twice).
        failed = {e["name"] for e in errors}
        for e in _schema_errors(action, body, merge_param, set(extra)):
            if e["name"] not in failed:
                errors.append(e)
    _finish(errors, notes, own)
    return body


def _finish(errors: list[dict[str, Any]], notes: Notes, log_warnings: bool) -> None:
    """Raise the errors, if any; a repaired field that fails a check gets its original error."""
    if notes.fallbacks and errors:
        kept, stood = [], set()
        for e in errors:
            name = e["name"]
            if name not in notes.fallbacks:
                kept.append(e)
            elif name not in stood:
                stood.add(name)
                kept.append(notes.fallbacks[name])
        errors[:] = kept
        notes.warnings[:] = [w for w in notes.warnings if w["name"] not in stood]
    if errors:
        raise invalid(errors).replace(warnings=list(notes.warnings) or None)
    if log_warnings:
        for w in notes.warnings:
            notices.tell(w)


def _cross_rules(action: Action, body: dict) -> list[dict[str, str]]:
    """Rules between fields that the API enforces but its schema cannot say: the action's own."""
    rules = hook(action, "cross_rules")
    if rules is None:
        return []
    errors = []
    for field, message, path in rules(body):
        param = action.by_target.get(field) or action.merge_param
        errors.append(field_error(param, message, path))
    return errors


def _schema_errors(
    action: Action, body: dict, merge_param: Param | None, extra_keys: set[str]
) -> list[dict[str, str]]:
    by_target = action.by_target
    errors = []
    for problem in validation.validate_request(body, action.request_schema):
        head, rest = (problem.path[0], problem.path[1:]) if problem.path else (None, ())
        if head in extra_keys and merge_param is not None:
            errors.append(field_error(merge_param, problem.message, problem.path))
        elif head in by_target:
            errors.append(field_error(by_target[head], problem.message, rest))
        else:
            errors.append({"name": str(head), "label": str(head), "message": problem.message})
    return errors
