"""Generated files on disk: write them, or with ``check``, say which differ (CI's staleness)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path


def sync(out_dir: Path, files: Mapping[str, str], *, check: bool = False) -> list[str]:
    """Write each ``name: text`` under ``out_dir`` that differs; return those names.

    With ``check`` nothing is written: the names returned are the stale files.
    """
    stale = []
    for name, text in files.items():
        path = out_dir / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    return stale
