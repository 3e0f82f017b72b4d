"""A run's warnings: told to whoever listens for the run (``heard``), else logged.

A warning is a dict ``{"kind", "message"}``, with ``name``, ``label`` (and ``path``, ``line``,
``column``) when it is about one form field. ``message`` never repeats the label:
``described`` puts the two together for a line of text. The kinds are listed in ``KINDS``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any

log = logging.getLogger("connector")

# What a workflow may branch on; docs/output.md ("Warnings") says when each is given.
KINDS = {
    "repaired": "form text was read leniently (a quote or backslash of inserted text repaired)",
    "escapes": "a backslash in inserted text (a Windows path?) was read as a control character",
    "as_text": "JSON-looking text was sent as plain text",
    "deprecated": "a deprecated field was given",
    "not_strict": "a Response Format schema was sent with strict false",
    "dropped": "the model rejected a parameter; it was sent again without it",
    "truncated": "a reply was cut at the token limit (finish_reason: length)",
    "refused": "the model refused (message.refusal)",
    "no_usage": "the server reported no token usage",
    "key_echoed": "the reply held the API key; it was replaced by ***",
    "no_stream": "tokens are echoed only for a streamed reply",
    "echo_stopped": "the on_token callback failed; echoing stopped",
    "more": "the server's header ran out of room: how many more warnings its log has",
}

Listener = Callable[[dict[str, Any]], None]
_listener: ContextVar[Listener | None] = ContextVar("connector_warnings", default=None)


def described(warning: dict[str, Any]) -> str:
    """Return a warning (or a field error) as a line: ``Label[path]: message`` for a field's.

    A message that already names its field (a sentence about the run) is left as it is.
    """
    where, message = warning.get("path") or warning.get("label"), str(warning["message"])
    return f"{where}: {message}" if where and where not in message else message


def warn(kind: str, message: str, **about: Any) -> None:
    """Tell the run's listener of a warning (``about``: the field's name, label, ...)."""
    warning = {**about, "kind": kind, "message": message}
    listener = _listener.get()
    if listener is None:
        log.warning("%s", described(warning))
        return
    try:
        listener(warning)
    except Exception as exc:  # a listener's bug must not cost the run its output
        log.warning("on_warning failed (%s): %s", type(exc).__name__, described(warning))


def listener() -> Listener | None:
    """Return the listener set for this context, if any."""
    return _listener.get()


def tell(warning: dict[str, Any]) -> None:
    """Pass on a warning already made (a form field's, from ``forms.Notes``)."""
    warn(**{"kind": "repaired", **warning})


@contextlib.contextmanager
def heard(listener: Listener | None) -> Iterator[None]:
    """Send the warnings raised in this context (this thread) to ``listener``.

    ``None`` keeps the listener already set (a server's), or the log when there is none.
    """
    if listener is None:
        yield
        return
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)
