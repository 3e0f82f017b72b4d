"""The hook protocol: what an action's module (``module:`` in the manifest) may define.

The manifest declares an action; its module holds only what the manifest cannot express. Every
hook is optional: an action without a module runs through the same engine. This module is the
one place that imports action modules.

- ``<transform>(value) -> value``: named by a parameter's ``transform``, applied after its input
  rule; raise ``ValueError`` with the message to show against the field.
- ``cross_rules(body) -> Iterable[(field, message, path)]``: rules between fields of the built
  body that the API enforces but its request schema cannot say; ``field`` is a body field (one
  without a form field of its own is reported against the merge parameter), ``path`` the place
  inside it.
- ``finish(output, body) -> output``: checks and additions to the example-shaped output; raise
  ``InvalidResponse`` for a reply that is not what was asked for.
- ``options(output) -> list[{"value", "label"}]``: the dropdown options this action's output
  gives another action's field (``options.action`` in the manifest).
- ``stream_aggregator(on_token)``: a class (or factory) whose objects collect a streamed reply's
  events into the whole reply: ``add(event)``, ``result()``, ``chunks``; ``on_token(text)`` is
  called with text as it arrives. Without it the action cannot stream.

Fields that Drop Unsupported Parameters never removes are the action's required parameters.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

HOOKS = frozenset({"cross_rules", "finish", "options", "stream_aggregator"})


def module(name: str) -> ModuleType:
    """Return the action module called ``name`` (``sys.modules`` keeps it once imported)."""
    return importlib.import_module(name)


def hook(action: Any, name: str) -> Any:
    """Return the action's ``name`` hook, or None when its module does not define it."""
    if name not in HOOKS:
        raise KeyError(f"{name!r} is not a hook; the hooks are {sorted(HOOKS)}")
    return getattr(module(action.module), name, None) if action.module else None
