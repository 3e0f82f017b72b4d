"""What each measured path must have produced. A wrong result ends the run, in every mode.

A figure of a path that answered wrongly measures nothing: ``wrong`` raises ``SystemExit``
(exit status 1) with a message that names the path and what was wrong, and the benchmark's
``finally`` blocks stop its processes.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn


def wrong(path: str, what: str) -> NoReturn:
    """End the run: ``path`` (what was measured) produced a wrong result."""
    raise SystemExit(f"WRONG RESULT: {path}: {what}")


def expect(path: str, got: Any, want: Any) -> None:
    """End the run unless ``got == want``."""
    if got != want:
        wrong(path, difference(got, want))


def difference(got: Any, want: Any) -> str:
    """Return what ``got`` and ``want`` are; for a long text or bytes, from where they differ."""
    if type(got) is type(want) and isinstance(got, str | bytes) and max(len(got), len(want)) > 160:
        at = next(
            (i for i, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
            min(len(got), len(want)),
        )
        return (
            f"got {len(got):,} long, expected {len(want):,}; from offset {at:,}"
            f" got {short(got[at : at + 60])}, expected {short(want[at : at + 60])}"
        )
    return f"got {short(got)}, expected {short(want)}"


def short(value: Any, limit: int = 160) -> str:
    """Return ``repr(value)`` cut to ``limit`` characters, with its length when cut."""
    text = repr(value)
    if len(text) <= limit:
        return text
    size = f"{len(value):,} long" if isinstance(value, str | bytes | list) else "cut"
    return f"{text[:limit]}... ({size})"


def printed_content(path: str, out: str) -> str:
    """Return the reply's content from a chat completion that a process printed as JSON."""
    try:
        return json.loads(out)["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as e:
        wrong(path, f"did not print a chat completion ({type(e).__name__}: {e}): {short(out)}")
