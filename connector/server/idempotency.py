"""Whose async run it is, and idempotency keys: the digests and ids both run stores use.

A run belongs to its caller (``Caller.tenant``: a digest of the bearer token and, where one was
sent, the tenant key); another caller reading it gets the 404 of an unknown id. Run ids are 128
random bits. The idempotency key comes in the ``Idempotency-Key`` header (as Stripe's API takes
it); it is scoped by a digest of the token, the tenant key and the Base URL together
(``Caller.scope``), never the values themselves, and bound to a digest of what the call asked
for, so that the same key with another body is refused (422) instead of answered.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass

from connector.errors import InvalidInput
from connector.views.shapes import BASE_URL_HEADER, IDEMPOTENCY_HEADER, KEY_HEADER

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


RUN_ID = re.compile(r"^[0-9a-f]{32}$")  # what new_run_id makes (the routes check it)


def new_run_id() -> str:
    """Return a new run id: 128 random bits, as 32 hex digits (the capability to find the run)."""
    return secrets.token_hex(16)


def _digest(kind: str, text: str) -> str:
    return hashlib.sha256(f"connector-{kind}:{text}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Caller:
    """Who calls, as digests (never a token or key): whose runs it may read, its key scope."""

    tenant: str = ""  # the token and tenant key: the runs it owns ("": stored by no request)
    scope: str = ""  # the token, tenant key and Base URL: where its idempotency keys live
    token: str = ""  # the token alone: the scope stored by versions that kept no tenant


OPERATOR = Caller()  # runs stored by the operator's own code, not a request: no tenant


def caller_of(req) -> Caller:
    """Return the digests of a request's token, tenant key (``X-OpenAI-Api-Key``) and Base URL."""
    return caller(
        (req.get_header("Authorization") or "").partition(" ")[2].strip(),
        (req.get_header(KEY_HEADER) or "").strip(),
        (req.get_header(BASE_URL_HEADER) or "").strip(),
    )


def caller(token: str, key: str = "", base: str = "") -> Caller:
    """Return the digests of a bearer token, a tenant key and a Base URL (``caller_of``)."""
    # Without a tenant key or Base URL, the scope is the one earlier versions stored (the token
    # alone), so that their keys still answer; the prefixes differ, so the two forms never meet.
    alone = _digest("idempotency", token) if token else ""
    scope = _digest("idempotency-2", json.dumps([token, key, base])) if key or base else alone
    return Caller(_digest("tenant", json.dumps([token, key])), scope, alone)


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
