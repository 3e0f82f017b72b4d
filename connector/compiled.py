"""Each action compiled once per process: its form, its parameter lookups, its output template.

The one per-action cache, keyed by identity: a reloaded manifest's actions compile afresh.
"""

from __future__ import annotations

import functools
from typing import Any

from .forms import Form
from .manifest import Action, Param


class Compiled:
    """An action's runtime parts, built on first use."""

    def __init__(self, action: Action) -> None:
        self.action = action
        self.form = Form(action.parameters, action.module)
        self.by_name: dict[str, Param] = {p.name: p for p in action.parameters}
        self.by_target: dict[str, Param] = {
            p.target: p for p in action.parameters if not p.merge and not p.send_as
        }
        self.merge: Param | None = next((p for p in action.parameters if p.merge), None)

    @functools.cached_property
    def template(self) -> Any:
        """The output template, typed by the official response schema (read once)."""
        from .output import output_template

        return output_template(self.action)


_compiled: dict[int, Compiled] = {}


def compiled(action: Action) -> Compiled:
    """Return the compiled action (once per process)."""
    entry = _compiled.get(id(action))
    if entry is None or entry.action is not action:
        entry = _compiled[id(action)] = Compiled(action)
    return entry
