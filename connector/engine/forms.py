"""Form input rules: text (or native values) from a form becomes typed, checked values.

Each parameter's ``input`` rule in the manifest picks a coercer; coercers are compiled once
per form and reused. Every problem is collected, so the author sees all of them at once.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from connector.engine import jsontext
from connector.engine.hooks import module as action_module
from connector.engine.jsontext import FieldProblem, Lenient
from connector.engine.notices import described
from connector.errors import InvalidInput
from connector.manifest.spec import Param
from connector.manifest.values import constraint_problem, json_depth, num
from connector.transport.connection import ENV_VARS

__all__ = ["FieldProblem", "Form", "Notes", "field_error", "invalid", "is_blank", "json_depth"]

_OMIT = object()
# Spellings of (true, false) accepted in any case; the first pair is the canonical one.
BOOLEAN_SPELLINGS = (("true", "false"), ("yes", "no"), ("y", "n"), ("1", "0"), ("on", "off"))
_TRUE = frozenset(t for t, _ in BOOLEAN_SPELLINGS)
_FALSE = frozenset(f for _, f in BOOLEAN_SPELLINGS)
_OTHER_BOOLEANS = ", ".join(f"{t}/{f}" for t, f in BOOLEAN_SPELLINGS[1:])
_INT_RE = re.compile(r"[+-]?\d+")
_DECIMAL_COMMA = re.compile(r"[+-]?\d*,\d+")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", ",": ","}
_ESCAPE_RE = re.compile(r"\\(.)")
_QUOTES = ('"', "'", "\u201c", "\u201d", "\u2018", "\u2019")


def field_error(
    param: Param, message: str, path: tuple = (), line: int | None = None, column: int | None = None
) -> dict[str, Any]:
    """Return the ``{name, label, message}`` entry of an invalid_input error (or a warning).

    The message does not repeat the label (a host shows both); ``path`` is the label with the
    place inside the value; ``line`` and ``column`` say where in the field's text (JSON text).
    """
    entry: dict[str, Any] = {"name": param.name, "label": param.label, "message": message}
    if path:
        entry["path"] = param.label + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in path
        )
    if line is not None:
        entry["line"], entry["column"] = line, column
    return entry


class Notes:
    """What coercion noticed without failing: warnings, and the errors that repairs stand for.

    ``fallbacks`` maps a repaired field to its original error: it stands if a later check
    (the request schema) rejects the repaired value.
    """

    def __init__(self) -> None:
        self.warnings: list[dict[str, Any]] = []
        self.fallbacks: dict[str, dict[str, Any]] = {}


def is_blank(value: Any) -> bool:
    """Return True when a form value counts as not given."""
    return value is None or (isinstance(value, str) and not value.strip())


@functools.lru_cache(maxsize=4096, typed=True)  # the same few keys arrive run after run
def _norm_key(key: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(key).strip().lower())


# ---- coercers: (param, value) -> typed value; raise FieldProblem --------------------------------


def _text(param: Param, value: Any) -> Any:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise FieldProblem(f"expected text, got {type(value).__name__}")


MAX_DIGITS = 100  # the longest number text read (seeds and token counts have under 20 digits)


def _integer(param: Param, value: Any) -> int:
    if isinstance(value, bool):
        raise FieldProblem("expected a whole number, got true/false")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise FieldProblem(f"expected a whole number, got {value}")
    if isinstance(value, str):
        text = value.strip().replace("_", "")
        if len(text) > MAX_DIGITS:
            # Python refuses to read integers of over 4,300 digits; no field takes one anyway.
            raise FieldProblem(
                f"expected a whole number, got {len(text):,} characters; no field takes a number"
                f" longer than {MAX_DIGITS} digits"
            )
        if _INT_RE.fullmatch(text):
            return int(text)
        try:
            number = float(text)
        except ValueError:
            raise FieldProblem(f"expected a whole number, got {value.strip()!r}") from None
        if math.isfinite(number) and number.is_integer():
            return int(number)
        raise FieldProblem(f"expected a whole number, got {value.strip()!r}")
    raise FieldProblem(f"expected a whole number, got {type(value).__name__}")


def _number(param: Param, value: Any) -> float | int:
    if isinstance(value, bool):
        raise FieldProblem("expected a number, got true/false")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        number = value
    elif isinstance(value, str):
        try:
            number = float(value.strip().replace("_", ""))
        except ValueError:
            text = value.strip()
            hint = ""
            if _DECIMAL_COMMA.fullmatch(text):
                hint = f": use a dot as the decimal mark ({text.replace(',', '.')})"
            raise FieldProblem(f"expected a number, got {text!r}{hint}") from None
    else:
        raise FieldProblem(f"expected a number, got {type(value).__name__}")
    if not math.isfinite(number):
        raise FieldProblem("expected a finite number")
    return number


def _boolean(param: Param, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise FieldProblem(f"expected true or false (also {_OTHER_BOOLEANS}), got {value!r}")


def _enum(param: Param, value: Any) -> str:
    if not isinstance(value, str):
        raise FieldProblem(f"expected one of: {', '.join(param.enum or [])}")
    text = value.strip()
    for allowed in param.enum or ():
        if text.lower() == allowed.lower():
            return allowed
    import difflib  # only for a wrong value: the import costs every process 1 ms

    hint = difflib.get_close_matches(text.lower(), param.enum or [], n=1)
    did_you_mean = f" Did you mean '{hint[0]}'?" if hint else ""
    raise FieldProblem(
        f"'{text}' is not allowed; use one of: {', '.join(param.enum or [])}.{did_you_mean}"
    )


def _unquote(item: str) -> str:
    if len(item) >= 2 and item[0] in _QUOTES and item[-1] in _QUOTES:
        return item[1:-1]
    return item


def _split_list(text: str) -> list[str]:
    # Split on commas that are not escaped; then understand \n, \t and \, inside items.
    items, current, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if ch == ",":
            items.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    items.append("".join(current))
    out = []
    for raw in items:
        item = _unquote(raw.strip())
        item = _ESCAPE_RE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(0)), item)
        if item:
            out.append(item)
    return out


def _list(param: Param, value: Any) -> Any:
    if isinstance(value, list):
        items = value
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            read = jsontext.read(value, fallback=False, keys=None)
            items = read.value if isinstance(read, Lenient) else read
            if not isinstance(items, list):
                raise FieldProblem("expected a JSON array")
            if isinstance(read, Lenient):
                return read._replace(value=_strings(items))
        else:
            items = _split_list(text)
            if not items:
                return _OMIT
            if param.single_as_string and len(items) == 1:
                return items[0]
    else:
        raise FieldProblem(f"expected comma-separated text or a list, got {type(value).__name__}")
    return _strings(items)


def _strings(items: list) -> list:
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise FieldProblem(f"expected text, got {json.dumps(item)}", (i,))
    return items


def _json(param: Param, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    return jsontext.read(
        value, fallback=param.text_fallback, keys=param.json_keys, example=param.example
    )


_COERCERS: dict[str, Callable[[Param, Any], Any]] = {
    "text": _text,
    "integer": _integer,
    "number": _number,
    "boolean": _boolean,
    "enum": _enum,
    "list": _list,
    "json": _json,
}


class Form:
    """A compiled form: coerces a mapping of form values into checked values by parameter name."""

    def __init__(self, params: list[Param], module: str | None = None):
        self.params = params
        self._by_key: dict[str, Param] = {}
        for p in params:
            self._by_key[_norm_key(p.name)] = p
            self._by_key.setdefault(_norm_key(p.label), p)
        hooks = action_module(module) if module else None
        self._steps = [
            (p, _COERCERS[p.input], getattr(hooks, p.transform) if p.transform else None)
            for p in params
        ]
        # A run gives a few of many fields: visit those and the required ones, in form order.
        self._position = {p.name: i for i, p in enumerate(params)}
        self._required = frozenset(i for i, p in enumerate(params) if p.required)

    def lookup(self, key: str) -> Param | None:
        """Return the parameter a form key names (its API name or its label, any case)."""
        return self._by_key.get(_norm_key(key))

    def coerce(
        self,
        form: Mapping[str, Any],
        *,
        max_chars: int,
        max_depth: int,
        notes: Notes | None = None,
    ) -> tuple[dict[str, Any], list[dict[str, str]]]:
        """Return (values by parameter name, field errors); blank values are left out.

        ``notes``, when given, collects the warnings of text read leniently (see jsontext).
        """
        errors: list[dict[str, str]] = []
        given: dict[str, Any] = {}
        for key, value in form.items():
            param = self._by_key.get(_norm_key(key))
            if param is None:
                errors.append(self._unknown(key))
            elif not is_blank(value):
                given[param.name] = value
        values: dict[str, Any] = {}
        visit = sorted(self._required.union(self._position[name] for name in given))
        for param, coerce, transform in (self._steps[i] for i in visit):
            raw = given.get(param.name, _OMIT)
            if raw is _OMIT:
                if param.required:
                    errors.append(field_error(param, "is required. " + _how(param)))
                continue
            if isinstance(raw, str) and len(raw) > max_chars:
                errors.append(
                    field_error(
                        param,
                        f"is {len(raw):,} characters, over the limit of {max_chars:,}. Shorten"
                        " it, or raise the connection's Max Input Characters (max_input_chars;"
                        f" {ENV_VARS['max_input_chars']} in the environment)",
                    )
                )
                continue
            lenient = None
            try:
                value = coerce(param, raw)
                if type(value) is Lenient:
                    lenient, value = value, value.value
                if value is _OMIT:
                    if param.required:
                        errors.append(field_error(param, "is required. " + _how(param)))
                    continue
                if json_depth(value, max_depth):
                    raise FieldProblem(
                        f"nests deeper than {max_depth} levels (connection setting max_json_depth)"
                    )
                if transform is not None:
                    value = transform(value)
                problem = constraint_problem(param, value)
                if problem:
                    raise FieldProblem(f"{problem}. {_how(param, raw)}".strip())
            except FieldProblem as exc:
                bad = exc
                if lenient is not None and lenient.original is not None:
                    bad = lenient.original  # the repaired value fails: the text's own error stands
                errors.append(field_error(param, bad.message, bad.path, bad.line, bad.column))
                continue
            values[param.name] = value
            if lenient is not None and notes is not None:
                notes.warnings += [
                    {**field_error(param, n.message, (), n.line, n.column), "kind": n.kind}
                    for n in lenient.notes
                ]
                if lenient.original is not None:
                    o = lenient.original
                    notes.fallbacks[param.name] = field_error(
                        param, o.message, (), o.line, o.column
                    )
        return values, errors

    def _unknown(self, key: str) -> dict[str, str]:
        names = [p.name for p in self.params]
        import difflib

        hint = difflib.get_close_matches(_norm_key(key), names, n=1)
        fix = f" Did you mean '{hint[0]}'?" if hint else f" Known fields: {', '.join(names)}."
        return {
            "name": str(key),
            "label": str(key),
            "message": f"is not a field of this form.{fix}",
        }


def _how(param: Param, raw: Any = None) -> str:
    """Return a short hint on what to enter (``raw``: what was entered, if anything)."""
    if param.input == "enum":
        return f"Use one of: {', '.join(param.enum or [])}."
    lo, hi = param.minimum, param.maximum
    if param.input in ("integer", "number") and lo is not None and hi is not None and hi < 1e15:
        kind = "a whole number" if param.input == "integer" else "a number"
        return f"Enter {kind} from {num(lo)} to {num(hi)}."
    if param.input in ("integer", "number") and lo is not None:
        kind = "a whole number" if param.input == "integer" else "a number"
        return f"Enter {kind} of at least {num(lo)}."
    if param.input == "list" and param.max_items:
        # Commas only help text items; a JSON array or a host's list needs fewer items.
        commas = not (isinstance(raw, list) or (isinstance(raw, str) and raw.lstrip()[:1] == "["))
        return f"Enter up to {param.max_items} items{', separated by commas' if commas else ''}."
    if param.example is not None:
        example = param.example if isinstance(param.example, str) else json.dumps(param.example)
        return f"For example: {example}"
    return ""


def invalid(errors: list[dict[str, str]], what: str = "form") -> InvalidInput:
    """Return one InvalidInput listing every field error."""
    lines = "; ".join(described(e) for e in errors)
    noun = "problem" if len(errors) == 1 else "problems"
    return InvalidInput(f"The {what} has {len(errors)} {noun}: {lines}", fields=errors)
