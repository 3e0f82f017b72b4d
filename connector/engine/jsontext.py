"""JSON text from a form: read losslessly, repaired only where unambiguous, refused with a fix.

Workflow hosts fill a form by inserting an earlier step's text into the author's JSON, almost
always unescaped. The rules (documented in the README, "Text from earlier steps"):

- raw control characters inside strings are read as the characters they are (no warning);
- text that starts with ``[`` or ``{``, is not JSON and names none of the field's ``json_keys``
  is the field's plain text (a warning says so);
- two repairs, each a warning with its line and column: a ``"`` that cannot close its string
  is part of the text, and a backslash that starts no JSON escape is a backslash. A repair is
  kept only when the repaired text parses (and later passes the field's rules); else the
  original error stands;
- a key given twice in one object is an error: inserted text may have closed its string;
- a Windows path in a string (``C:\\Users\\x``, ``\\\\host\\share``) written without escapes: its
  backslashes are kept where the text needed a repair anyway (a drive path holding a backslash
  that starts no JSON escape), else a warning says which escapes became control characters.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

# How to fix the host's expression: the same words in every error of a broken JSON text.
FIX = (
    'Fix: in n8n, write {{ JSON.stringify($json.text) }} in place of "{{ $json.text }}" '
    "(the quotes go too); in Power Automate, build the object with json() or a variable "
    'instead of joining strings; anywhere, write \\" for a quote and \\n for a line break '
    "inside a JSON string"
)
SHORTCUT = ", or give the text alone: plain text is sent as one user message"
DUPLICATE = "is given twice; text inserted into the JSON may have closed its string"
_MAX_REPAIR_WARNINGS = 10
_CAN_FOLLOW_CLOSE = frozenset(",:}]")
_WHITESPACE = " \t\r\n"
_ESCAPES = frozenset('"\\/bfnrt')
_HEX = re.compile(r"[0-9a-fA-F]{4}")
_SPECIAL = re.compile(r'["\\]')  # inside a string, only these two matter for the repairs
_QUOTE = "\"'\u201c\u201d\u2018\u2019"
_CURLY = re.compile("[\u201c\u201d\u2018\u2019]")
# A Windows path as it reads in JSON text written without escapes: a drive (C:) or a share's
# host (two backslashes), then segments each after one backslash. A segment stops at what no
# path holds and at white space; a colon after it means no path ("Q:\nA: ..." is a question).
_SEGMENTS = r'(?:\\[^\\"\s*?<>|:]++)++(?!:)'
_DRIVE = re.compile(rf"(?<![\w\\])[A-Za-z]:{_SEGMENTS}")
_SHARE = re.compile(rf"(?<![\w\\])\\\\[\w.$-]+{_SEGMENTS}")
_CONTROL = {"n": "a line break", "t": "a tab", "r": "a carriage return", "b": "a backspace",
            "f": "a form feed", "u": "a \\u escape"}  # fmt: skip


BOM = "\ufeff"


class FieldProblem(ValueError):
    """A problem with one form value; ``path`` points inside it (e.g. ``(1, "role")``).

    ``line`` and ``column``: where in the field's text, for broken JSON text.
    """

    def __init__(self, message: str, path: tuple = (), line: int | None = None, column=None):
        super().__init__(message)
        self.message, self.path, self.line, self.column = message, path, line, column


class Note(NamedTuple):
    """A warning about one field's text: what was read differently, and where (``notices``)."""

    message: str
    line: int | None = None
    column: int | None = None
    kind: str = "repaired"


class Lenient(NamedTuple):
    """A value read with warnings; ``original`` stands if the value fails the field's rules."""

    value: Any
    notes: tuple[Note, ...]
    original: FieldProblem | None


class _Duplicate(Exception):
    pass


def _pairs(pairs: list) -> dict:
    d = dict(pairs)
    if len(d) != len(pairs):
        raise _Duplicate
    return d


class _Marked(dict):
    duplicate = ""


def _mark(pairs: list) -> dict:
    d = _Marked(pairs)
    if len(d) != len(pairs):
        seen: set = set()
        d.duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))
    return d


# Built once: json.loads with arguments builds a decoder on every call.
_DECODER = json.JSONDecoder(strict=False, object_pairs_hook=_pairs)
_MARKER = json.JSONDecoder(strict=False, object_pairs_hook=_mark)


@functools.lru_cache(maxsize=64)
def _sign(keys: tuple[str, ...]) -> re.Pattern:
    """Return the pattern of text meant as JSON: one of ``keys`` in quotes, then a colon."""
    names = "|".join(re.escape(k) for k in keys)
    return re.compile(rf"[{_QUOTE}](?:{names})[{_QUOTE}]\s*:")


def where(text: str, pos: int) -> tuple[int, int]:
    """Return the (line, column) of ``pos``, both from 1, lines ending at line feeds."""
    return text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)


def loads(text: str) -> Any:
    """Parse JSON text as the form reads it; raise FieldProblem (duplicates, nesting) or JSONDecodeError."""
    try:
        return _DECODER.decode(text)
    except _Duplicate:
        raise _duplicate(text) from None
    except RecursionError:
        raise FieldProblem("JSON is nested too deeply") from None


def _duplicate(text: str) -> FieldProblem:
    try:
        tree = _MARKER.decode(text)
    except (RecursionError, json.JSONDecodeError):  # the first parse stopped at the duplicate
        return FieldProblem(f"a key {DUPLICATE}")
    stack: list[tuple[Any, tuple]] = [(tree, ())]
    while stack:  # depth first, in document order: the first object with a key given twice
        node, path = stack.pop()
        if isinstance(node, _Marked):
            if node.duplicate:
                return FieldProblem(f"{json.dumps(node.duplicate)} {DUPLICATE}", path)
            items = list(node.items())
        elif isinstance(node, list):
            items = list(enumerate(node))
        else:
            continue
        stack.extend((child, (*path, key)) for key, child in reversed(items))
    return FieldProblem(f"a key {DUPLICATE}")


def read(value: str, *, fallback: bool, keys: Sequence[str] | None, example: Any = None) -> Any:
    """Return the value of a JSON field's text, a ``Lenient`` value, or raise FieldProblem.

    ``fallback``: the field takes plain text (its transform reads it); ``keys``: the keys whose
    presence means text starting with ``[`` or ``{`` was meant as JSON (None: it always was).
    """
    if value[:1] in ("{", "["):  # the common case, valid JSON: no copies, no scans
        try:
            parsed = loads(value)
        except json.JSONDecodeError:
            pass
        else:
            if ":\\" not in value and "\\\\" not in value:  # no Windows path can be in it
                return parsed
            notes = paths(value, value, 0)[1]
            return Lenient(parsed, tuple(notes), None) if notes else parsed
    if value[:1] == BOM:  # text saved from a file with its encoding mark: the mark is no text
        value = value[1:]
    text = value.strip()
    lead = len(value) - len(value.lstrip())
    if text[:1] not in ("{", "["):
        if fallback:
            return text
        try:
            return loads(text)
        except json.JSONDecodeError:
            shown = json.dumps(example) if example is not None else "{...}"
            raise FieldProblem(f"expected JSON, for example {shown}") from None
    try:
        return loads(text)
    except json.JSONDecodeError as exc:
        first = exc
    original = syntax_problem(value, first, lead, shortcut=bool(keys))
    if fallback and keys and not _sign(tuple(keys)).search(text):
        line, column = original.line, original.column
        note = Note(
            f"sent as text (one user message): it starts with {text[0]} but is not JSON "
            f"(line {line}, column {column}) and names no " + " or ".join(f'"{k}":' for k in keys),
            line,
            column,
            "as_text",
        )
        return Lenient(text, (note,), None)
    repaired, notes = repair(text, value, lead)
    if not notes:
        raise original
    try:
        parsed = loads(repaired)
    except (json.JSONDecodeError, FieldProblem):
        raise original from None
    return Lenient(parsed, tuple(notes), original)


def repair(text: str, value: str, lead: int) -> tuple[str, list[Note]]:
    """Return ``text`` with the two unambiguous repairs made, and a note for each repair.

    ``value`` is the field's whole text and ``lead`` where ``text`` starts in it (for lines).
    """
    out: list[str] = []
    spots: list[tuple[int, str]] = []
    keep, path_notes = paths(text, value, lead)
    start = i = 0
    n = len(text)
    while True:
        i = text.find('"', i)  # outside strings only a quote matters
        if i < 0:
            break
        i += 1
        while True:  # inside a string
            m = _SPECIAL.search(text, i)
            if m is None:
                i = n
                break
            i = m.start()
            if text[i] == "\\":
                after = text[i + 1 : i + 2]
                if i in keep:  # a separator of a Windows path: a backslash (``paths``)
                    out += (text[start:i], "\\\\")
                    start = i = i + 1
                elif after in _ESCAPES and after:
                    i += 2
                elif after == "u" and _HEX.match(text, i + 2):
                    i += 6
                else:  # starts no JSON escape: a backslash, as in C:\Users
                    out += (text[start:i], "\\\\")
                    spots.append(
                        (i, f"read \\{after} as a backslash and {after}: it starts no JSON escape")
                    )
                    start = i = i + 1
                continue
            if _closes(text, i + 1):
                i += 1
                break
            out += (text[start:i], '\\"')
            spots.append((i, 'read a " as part of the text: it cannot end the string there'))
            start = i = i + 1
        if i >= n:
            break
    out.append(text[start:])
    notes = path_notes
    for pos, what in spots[:_MAX_REPAIR_WARNINGS]:
        line, column = where(value, pos + lead)
        notes.append(Note(f"line {line}, column {column}: {what}", line, column))
    if len(spots) > _MAX_REPAIR_WARNINGS:
        notes.append(Note(f"and {len(spots) - _MAX_REPAIR_WARNINGS} more such repairs"))
    return "".join(out), notes


def paths(text: str, value: str, lead: int) -> tuple[set[int], list[Note]]:
    """Return the backslashes of Windows paths in ``text`` to keep, and a note for each path.

    A drive path (``C:\\Users\\anna``) holding a backslash that starts no JSON escape was
    written without escapes: all its backslashes are kept. Otherwise a path whose escapes read
    as control characters (``C:\\new\\tax``), and a share (``\\\\host\\share``, whose ``\\\\``
    reads as one backslash), is read as JSON says, with a warning. ``value`` and ``lead`` as
    for ``repair``.
    """
    if ":\\" not in text and "\\\\" not in text:
        return set(), []
    runs = [(m, 0) for m in _DRIVE.finditer(text)] + [(m, 2) for m in _SHARE.finditer(text)]
    keep: set[int] = set()
    notes = []
    for run, prefix in sorted(runs, key=lambda r: r[0].start()):
        seps = [i for i in range(run.start(), run.end()) if text[i] == "\\"][prefix:]
        shown = run.group() if len(run.group()) <= 60 else run.group()[:57] + "..."
        line, column = where(value, run.start() + lead)
        at = f"line {line}, column {column}: {shown}"
        if not prefix and any(_escape(text, i) is None for i in seps):
            keep.update(seps)
            notes.append(
                Note(
                    f"{at}: kept its backslashes (a Windows path without JSON escapes)",
                    line,
                    column,
                )
            )
            continue
        read = [
            f"\\{text[i + 1]} as {_CONTROL[text[i + 1]]}"
            for i in seps
            if _escape(text, i) in _CONTROL
        ]
        if not prefix and len(seps) < 2:
            continue  # "Q:\nWhat ...": one escape after a letter and a colon is no path yet
        if prefix:
            read.insert(0, "its leading \\\\ as one backslash")
        if read:
            what = "a network path" if prefix else "a Windows path"
            notes.append(
                Note(
                    f"{at}: looks like {what} without JSON escapes: read {', '.join(read)}. "
                    "Write each backslash twice (\\\\), or escape the text on the host",
                    line,
                    column,
                    "escapes",
                )
            )
    return keep, notes


def _escape(text: str, i: int) -> str | None:
    """Return the JSON escape letter at the backslash ``text[i]`` (n, t, ...), or None."""
    after = text[i + 1 : i + 2]
    if after == "u":
        return after if _HEX.match(text, i + 2) else None
    return after if after in _ESCAPES else None


def _closes(text: str, j: int) -> bool:
    """Whether a quote before ``j`` can close a string: what follows it could follow a string."""
    if j >= len(text) or text[j] in _CAN_FOLLOW_CLOSE:
        return True
    if text[j] not in _WHITESPACE:
        return False  # `"hi"there` or `""`: no JSON puts these right after a string
    k = j
    while k < len(text) and text[k] in _WHITESPACE:
        k += 1
    # After a space, a quote is more likely a missing comma than text: not repaired.
    return k == len(text) or text[k] in _CAN_FOLLOW_CLOSE or text[k] == '"'


def syntax_problem(
    value: str, exc: json.JSONDecodeError, lead: int, *, shortcut: bool
) -> FieldProblem:
    """Return the error of broken JSON: line, column, an excerpt, the likely cause and the fix."""
    pos = exc.pos + lead
    line, column = where(value, pos)
    lines = value.split("\n")
    row = lines[line - 1] if line <= len(lines) else ""
    start = max(0, column - 30)
    snippet = re.sub(r"[\x00-\x1f]", " ", row[start : column + 30]).rstrip()
    pointer = " " * (column - 1 - start) + "^"
    reason = exc.msg.removesuffix(" at").rstrip(".")
    message = (
        f"not valid JSON at line {line}, column {column}: {reason}.\n"
        f"    {snippet}\n    {pointer}\n"
        f"    Likely cause: {_cause(exc)}.\n"
        f"    {FIX}{SHORTCUT if shortcut else ''}."
    )
    return FieldProblem(message, (), line, column)


def _cause(exc: json.JSONDecodeError) -> str:
    text, pos, msg = exc.doc, exc.pos, exc.msg
    before = text[:pos].rstrip()
    if msg.startswith("Extra data"):
        return "text after the end of the JSON: a quote or bracket in inserted text closed it early"
    if msg.startswith("Unterminated string") or pos >= len(text.rstrip()):
        return "a cut-off text: the JSON ends before its strings and brackets are closed"
    if msg.startswith("Invalid \\escape"):
        return "a backslash in inserted text (a Windows path?) that is not a JSON escape"
    if before.endswith(",") and text[pos : pos + 1] in ("}", "]"):
        return "a comma before a closing bracket"
    if _CURLY.search(text, max(0, pos - 1), pos + 2):
        return (
            "curly quotes (\u201c \u201d or \u2018 \u2019), which an editor or a chat app typed for"
            ' straight ones: JSON needs straight double quotes (") around keys and texts'
        )
    if "'" in text[max(0, pos - 1) : pos + 1]:
        return "single quotes: JSON needs double quotes around keys and texts"
    if before.endswith('"') and text[pos : pos + 1] == '"':
        return 'a missing comma between two texts, or an unescaped quote (") in inserted text'
    if re.search(r'"\s*[,:]?\s*$', before):
        return 'an unescaped quote (") in inserted text ended the JSON string early'
    return "a missing comma, colon, quote or bracket near the caret"
