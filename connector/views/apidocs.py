"""The generated API documents: which files they are, their text, and the staleness check."""

from __future__ import annotations

import json
from pathlib import Path

from connector.views import files, openapi, swagger

# Written to docs/ and served (the first two) by the action server.
FILES = ("openapi.json", "swagger.json", "apiProperties.json")


def text(name: str = "openapi.json") -> str:
    """Return one of ``FILES`` as the JSON text that is served and written."""
    doc = {
        "openapi.json": openapi.document,
        "swagger.json": swagger.document,
        "apiProperties.json": swagger.api_properties,
    }[name]()
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def write_all(out_dir: Path, *, check: bool = False) -> list[str]:
    """Write (or compare) the ``FILES`` in ``out_dir`` (docs/); return the stale names."""
    return files.sync(out_dir, {name: text(name) for name in FILES}, check=check)
