"""Where the card is read from: one rule, the same in a checkout and in an installed wheel.

The card (``manifest.yaml`` and ``schemas/``) stays at the repository's top level, where an
author edits it; ``connector/card/`` holds symbolic links to it, which a wheel build follows
and copies. So every module reads ``CARD``, and only the generators that write into a checkout
(docs, the n8n package) ask where that checkout is.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent  # connector/
CARD = PACKAGE / "card"
MANIFEST_PATH = CARD / "manifest.yaml"
SCHEMAS = CARD / "schemas"


def checkout() -> Path | None:
    """Return the source checkout the card links to (docs/ and hosts/ live there), or None."""
    root = MANIFEST_PATH.resolve().parent
    return root if root != CARD and (root / "pyproject.toml").is_file() else None
