"""OpenAPI documents of the action server (filled in next)."""

from __future__ import annotations

from pathlib import Path


def document(*, swagger2: bool = False) -> dict:
    """Return the OpenAPI 3.1 document, or with ``swagger2`` the OpenAPI 2.0 one."""
    return {"openapi": "3.1.0", "info": {"title": "connector", "version": "0.1.0"}, "paths": {}}


def write_all(out_dir: Path, *, check: bool = False) -> list[str]:
    """Write (or compare) docs/openapi.json and docs/swagger.json; return the stale names."""
    return []
