"""What a request brings: its id, its form (the body, within the caps), its connection, its action.

The body is read here rather than by Falcon's ``req.get_media()``, which reads a whole body
before any cap: a body over the cap is refused at once (by its Content-Length) or after
``cap + 1`` bytes (a chunked one), within the front door's time limit (``frontdoor``).
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
from collections.abc import Mapping
from typing import Any

import falcon

from connector.engine.loader import load_manifest
from connector.engine.runner import labelled
from connector.errors import InvalidInput, Refused
from connector.manifest.spec import Action
from connector.manifest.values import json_depth
from connector.server import frontdoor
from connector.server.frontdoor import ReadTimedOut
from connector.server.settings import Settings
from connector.transport.connection import env_values
from connector.views.shapes import BASE_URL_HEADER, KEY_HEADER

CLOSE = "connector.close"  # in a request's environ: close the connection after the answer
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_id(req) -> str:
    given = req.get_header("X-Request-Id")
    # 96 random bits: unique enough to find one call in the logs of every machine. (The random
    # module is reseeded in each forked worker.)
    return given if given and _REQUEST_ID.match(given) else f"{random.getrandbits(96):024x}"


def read_form(req, settings: Settings) -> dict:
    """Return the JSON object in the body (``{}`` when empty), within the size and depth caps."""
    raw = _read_body(req, settings)
    if not raw.strip():
        return {}
    media = (req.content_type or "").split(";")[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise Refused(
            f"Send the form as JSON with `Content-Type: application/json` (got {media or 'none'}).",
            type="unsupported_media_type",
        )
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if hasattr(exc, "lineno") else ""
        raise Refused(f"The body is not valid JSON{where}.", type="bad_call") from None
    if not isinstance(doc, dict):
        raise Refused(
            f"The body must be a JSON object of form values, not a JSON {type(doc).__name__}.",
            type="bad_call",
        )
    # Nesting needs an opening bracket per level: most bodies have too few to be worth a walk.
    if raw.count(b"[") + raw.count(b"{") > settings.max_json_depth and json_depth(
        doc, settings.max_json_depth
    ):
        raise Refused(
            f"The body is nested deeper than {settings.max_json_depth} levels.", type="bad_call"
        )
    return doc


def _read_body(req, settings: Settings) -> bytes:
    """Read the body, a chunked one too, refusing one over the cap as soon as that is known.

    A refused body is not read on: the 413 goes out at once, and says the connection closes
    (``CLOSE``), as the rest of the body is never read.
    """
    cap = settings.max_body_bytes
    length = req.content_length
    if length is not None and length > cap:
        req.env[CLOSE] = True
        raise _too_large(f"The body has {length} bytes", cap)
    # Without Content-Length, a chunked body (Transfer-Encoding) is read from the stream the
    # server de-chunks, through the same cap; Falcon's bounded stream would read it as empty.
    stream = req.bounded_stream if length is not None else req.stream
    try:
        raw = stream.read(cap + 1)
    except ReadTimedOut:
        req.env[CLOSE] = True
        raise Refused(
            f"The request's body did not arrive within {frontdoor.READ_TIMEOUT:g} s"
            " (CONNECTOR_SERVER_READ_TIMEOUT); send it whole, at once.",
            type="request_timeout",
        ) from None
    if len(raw) > cap:
        req.env[CLOSE] = True
        raise _too_large("The body is larger than that", cap)
    return raw


def _too_large(what: str, cap: int) -> Refused:
    return Refused(
        f"{what}; this server takes at most {cap} bytes (CONNECTOR_SERVER_MAX_BODY_BYTES).",
        type="too_large",
    )


def connection_for(
    req, settings: Settings, environment: Mapping[str, str] | None = None
) -> dict | None:
    """Return the connection of a request: the server's environment, or a tenant's key/base URL.

    ``environment`` is the server's own settings (``env_values()``, read now when not given).
    """
    key = (req.get_header(KEY_HEADER) or "").strip()
    base = (req.get_header(BASE_URL_HEADER) or "").strip()
    if not key and not base:
        return None
    raw: dict[str, Any] = dict(env_values() if environment is None else environment)
    if base:
        if not settings.allowed_hosts:
            raise labelled(
                InvalidInput.of_field(
                    "base_url",
                    f"{BASE_URL_HEADER}: this server takes no per-request `base_url`. Its "
                    "operator can allow some hosts with CONNECTOR_ALLOWED_HOSTS.",
                    "`base_url`: not accepted per request by this server",
                )
            )
        raw.pop("api_key", None)  # the server's own key never goes to a tenant's host
        raw["base_url"] = base
        raw["allowed_hosts"] = list(settings.allowed_hosts)
    if key:
        raw["api_key"] = key
    # The server's organization and project belong with its own key, which this call does not use.
    raw.pop("organization", None)
    raw.pop("project", None)
    return raw


def action(action_id: str) -> Action:
    """Return the action a route names, or refuse the route (404)."""
    try:
        return load_manifest().action(action_id)
    except InvalidInput as exc:
        raise Refused(exc.message, type="unknown_route") from None


# What a proxy says of the client's request: trusted only from the proxies the operator names.
FORWARDING = (
    "HTTP_FORWARDED",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_FOR",
)


def networks(entries: tuple[str, ...]) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Return CONNECTOR_TRUSTED_PROXIES' addresses and networks (``10.0.0.0/8``, ``::1``)."""
    out = []
    for entry in entries:
        try:
            out.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise InvalidInput(
                f"CONNECTOR_TRUSTED_PROXIES: {entry!r} is not an IP address or network."
            ) from None
    return tuple(out)


def trust_forwarding(req, trusted: tuple) -> None:
    """Drop the forwarding headers of a request that did not come from a trusted proxy.

    Falcon reads them for ``forwarded_prefix`` (the Location of an async run, the documents'
    server URL): from anyone else they would let a caller point those at a host of its choice.
    """
    try:
        peer = ipaddress.ip_address((req.remote_addr or "").split("%")[0])
    except ValueError:
        peer = None
    if peer is not None and any(peer in net for net in trusted):
        return
    for key in FORWARDING:
        req.env.pop(key, None)


def absolute_location(req: falcon.Request, path: str) -> str:
    """Return ``path`` as the absolute URL the client reached (Power Automate polls only those).

    Behind a trusted proxy (CONNECTOR_TRUSTED_PROXIES), ``X-Forwarded-Proto`` and
    ``X-Forwarded-Host`` (or ``Forwarded``) name it.
    """
    return req.forwarded_prefix + path
