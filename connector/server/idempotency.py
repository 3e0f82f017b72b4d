"""Idempotency keys of async runs: a retried POST returns the run it started, in either store.

The key comes in the ``Idempotency-Key`` header (as Stripe's API takes it); it is scoped by a
digest of the caller's token, never the token itself, and bound to a digest of what the call
asked for, so that the same key with another body is refused (422) instead of answered.
"""

from __future__ import annotations

import hashlib
import json
import re

from connector.errors import InvalidInput
from connector.views.shapes import IDEMPOTENCY_HEADER

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, as Stripe's keys


def header_error(name: str, message: str) -> InvalidInput:
    """Return the error of a request header, named as the header."""
    return InvalidInput(
        f"{name}: {message}",
        fields=[{"name": name, "label": name, "message": f"{name}: {message}"}],
    )


def key_of(req) -> str | None:
    """Return the request's idempotency key, or None; refuse one that is not a key (422)."""
    key = (req.get_header(IDEMPOTENCY_HEADER) or "").strip() or None
    if key is not None and not _KEY.match(key):
        raise header_error(IDEMPOTENCY_HEADER, "use 1 to 255 printable ASCII characters.")
    return key


def scope_of(req) -> str:
    """Return the idempotency scope of the caller's bearer token: a digest, never the token."""
    token = (req.get_header("Authorization") or "").partition(" ")[2].strip()
    if not token:
        return ""
    return hashlib.sha256(("connector-idempotency:" + token).encode()).hexdigest()[:32]


def fingerprint(action: str, form: dict, callback_url: str | None = None) -> str:
    """Return the digest of what a call asked for (the same key must ask for the same)."""
    text = json.dumps([action, form, callback_url], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def check_same(given: str | None, digest: str) -> None:
    """Refuse a key already used for another call (its fingerprint differs)."""
    if given != digest:
        raise header_error(
            IDEMPOTENCY_HEADER,
            "this key was already used for a different call (another action, form or "
            "callback). Use a new key for a new run.",
        )
