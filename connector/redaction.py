"""The one redaction policy: which values are secrets, how text is scrubbed of them and capped.

Every output, log line, error and dry-run passes through ``redact`` (errors through
``ConnectorError.redacted``); replies kept in errors are capped by ``excerpt``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

BODY_EXCERPT_CHARS = 2000
REDACTED = "***"


def excerpt(text: str | bytes | None, limit: int = BODY_EXCERPT_CHARS) -> str | None:
    """Return ``text`` capped at ``limit`` characters, decoded leniently."""
    if text is None:
        return None
    if isinstance(text, bytes | bytearray):
        text = bytes(text[: limit * 4]).decode("utf-8", errors="replace")
    if len(text) <= limit:
        return text
    return text[:limit] + f"... [{len(text) - limit} more characters]"


# The one redaction rule. A value shorter than this is a placeholder that key-less servers take
# ("EMPTY", "ollama"), not a secret: replacing it would garble replies that merely mention it.
# Fields that hold a secret (the key header, ``api_key``) are masked whole, whatever their length.
MIN_SECRET_CHARS = 8


def secret_values(secrets: Iterable[str | None]) -> list[str]:
    """Return the values that redaction looks for in text (the one threshold rule)."""
    return [s for s in secrets if s and len(s) >= MIN_SECRET_CHARS]


def redact(value: Any, secrets: Iterable[str | None]) -> Any:
    """Replace every secret inside strings of ``value`` (recursively) with ``***``."""
    secrets = secret_values(secrets)
    if not secrets:
        return value
    return _redact(value, secrets)


def _redact(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {k: _redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v, secrets) for v in value]
    return value
