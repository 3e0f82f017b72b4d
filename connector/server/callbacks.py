"""Run callbacks: when a queued run is done, POST its result to the URL the caller gave.

The body is signed with HMAC-SHA256 under ``CONNECTOR_CALLBACK_SECRET``, in the header
``X-Connector-Signature: sha256=<hex>``; a receiver recomputes it over the raw body. The URL
follows the Base-URL rules and more: https only, and never a loopback, private, link-local or
metadata address, unless its host is in ``CONNECTOR_CALLBACK_ALLOWED_HOSTS`` (then http and
private addresses are allowed; metadata addresses never are). A failed delivery raises, and the
worker's queue retries it with backoff (``worker.py``).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import os
from urllib.parse import urlsplit

from connector.errors import InvalidInput, TemporaryFailure
from connector.transport.policy import _literal_address, _resolve, host_allowed, is_forbidden

SECRET_ENV = "CONNECTOR_CALLBACK_SECRET"
ALLOWED_ENV = "CONNECTOR_CALLBACK_ALLOWED_HOSTS"
SIGNATURE_HEADER = "X-Connector-Signature"
RUN_HEADER = "X-Connector-Run-Id"
TIMEOUT = 10.0


def secret() -> str:
    """Return the signing secret (the servers' and workers' environment)."""
    return os.environ.get(SECRET_ENV, "").strip()


def allowed_hosts() -> tuple[str, ...]:
    """Return the hosts a callback may name despite a loopback or private address."""
    return tuple(h.strip() for h in os.environ.get(ALLOWED_ENV, "").split(",") if h.strip())


def sign(body: bytes, key: str) -> str:
    """Return the signature header's value for ``body``."""
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def url_problem(url: str, allowed: tuple[str, ...]) -> str | None:
    """Return what is wrong with a callback URL and how to fix it, or None."""
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        return "contains spaces or control characters."
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises on a bad port)
    except ValueError as error:
        return f"is not a valid URL ({error})."
    host = (parts.hostname or "").rstrip(".")
    if parts.scheme not in ("http", "https") or not host:
        return "must be an https:// URL with a host."
    if "@" in parts.netloc:
        return "must not contain a user name or password."
    listed = host_allowed(host, allowed)
    if parts.scheme == "http" and not listed:
        return (
            f"must use https:// for {host} (plain http only for CONNECTOR_CALLBACK_ALLOWED_HOSTS)."
        )
    literal = _literal_address(host)
    addresses = [literal] if literal is not None else _resolve(host, parts.port)
    if not addresses:
        return f"names {host}, which does not resolve."
    for address in addresses:
        if is_forbidden(address) or address.is_unspecified:
            return f"points at {host} ({address}), a link-local or metadata address."
        if not listed and not _public(address):
            return (
                f"points at {host} ({address}), a loopback or private address. Its operator can "
                f"allow the host with {ALLOWED_ENV}."
            )
    return None


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_global


def check_callback_url(url: str, label: str) -> None:
    """Raise ``InvalidInput`` naming ``label`` when a run must not get this callback."""
    problem = None if secret() else f"this server has no {SECRET_ENV} to sign callbacks with."
    problem = problem or url_problem(url, allowed_hosts())
    if problem:
        message = f"{label}: {problem}"
        raise InvalidInput(message, fields=[{"name": label, "label": label, "message": message}])


def payload(run) -> bytes:
    """Return the callback's body: the run's id, action, HTTP status, and output or error."""
    doc = {"id": run.id, "action": run.action, "state": "done", "status": run.status}
    if run.status == 200:
        doc["output"] = run.result
    else:
        doc.update(run.result or {})
    if getattr(run, "warnings", None):
        doc["warnings"] = run.warnings  # beside the output, as the result's header says them
    return json.dumps(doc, ensure_ascii=False).encode()


def deliver(store, run_id: str) -> None:
    """POST a finished run to its callback URL; raise ``TemporaryFailure`` to be retried."""
    import requests

    found = store.done_run(run_id)
    if found is None or not found[1]:
        return  # purged, or no callback
    run, url = found
    key = secret()
    problem = url_problem(url, allowed_hosts()) or (None if key else f"{SECRET_ENV} is not set")
    if problem:  # checked again now: the name may resolve elsewhere than when it was accepted
        raise TemporaryFailure(f"Callback URL {problem}", type="connection")
    body = payload(run)
    headers = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(body, key),
        RUN_HEADER: run.id,
        "User-Agent": "openai-chat-connector-callback",
    }
    try:
        reply = requests.post(
            url, data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False
        )
    except requests.RequestException as exc:
        raise TemporaryFailure(f"Callback: {type(exc).__name__}", type="connection") from None
    if not 200 <= reply.status_code < 300:
        raise TemporaryFailure(f"Callback: HTTP {reply.status_code}", type="server_error")
