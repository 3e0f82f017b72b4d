"""Base-URL policy: where the connector may send the key.

Checked before every run (``check_base_url``): http(s) only, https unless the host is loopback
or the connection allows insecure http, no credentials/query/fragment in the URL, the host on
the connection's ``allowed_hosts`` list when one is set, and never a link-local or
cloud-metadata address, whatever the name resolves to.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import threading
import time
from urllib.parse import urlsplit

from connector.errors import InvalidInput
from connector.transport.connection import Connection

CACHE_SECONDS = 60.0
CACHE_SIZE = 1024
LOOPBACK_NAMES = frozenset({"localhost"})

# Addresses that reach the machine's own cloud metadata service or link-local neighbours.
# An instance's metadata service hands out credentials; a key must never be sent there.
FORBIDDEN_NETWORKS = tuple(
    ipaddress.ip_network(net)
    for net in (
        "169.254.0.0/16",  # IPv4 link-local; AWS, GCP, Azure and OCI metadata (169.254.169.254)
        "fe80::/10",  # IPv6 link-local
        "fd00:ec2::254/128",  # AWS metadata over IPv6
        "100.100.100.200/32",  # Alibaba Cloud metadata
    )
)

_clock = time.monotonic  # replaced in tests
_cache: dict[str, tuple[float, tuple[str, ...]]] = {}
_cache_lock = threading.Lock()

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def check_base_url(connection: Connection) -> None:
    """Raise ``InvalidInput`` naming `base_url` when the connection must not be used."""
    problem = base_url_problem(connection)
    if problem:
        raise InvalidInput.of_field("base_url", f"`base_url`: {problem}", problem)


def base_url_problem(connection: Connection) -> str | None:
    """Return what is wrong with the connection's base URL and how to fix it, or None."""
    problem, host, port = _url_problem(
        (connection.base_url or "").strip(),
        connection.allow_insecure_http,
        tuple(connection.allowed_hosts or ()),
    )
    if problem or host is None:
        return problem
    for address in _resolve(host, port):
        if is_forbidden(address):
            return (
                f"points at {host} ({address}), a link-local or cloud-metadata address; the key is "
                "never sent there. Use the API's public host name."
            )
    return None


@functools.lru_cache(maxsize=256)
def _url_problem(
    url: str, allow_insecure_http: bool, allowed_hosts: tuple[str, ...]
) -> tuple[str | None, str | None, int | None]:
    """Return (problem, host name left to resolve, port): all but the DNS lookup, cached."""
    if not url:
        return "is empty. Enter the API root, e.g. https://api.openai.com/v1.", None, None
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        return "contains spaces or control characters. Remove them.", None, None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        return (
            f"is not a valid URL ({error}). Use a form like https://api.openai.com/v1.",
            None,
            None,
        )
    if parts.scheme not in ("http", "https"):
        problem = (
            f"must start with https:// (got {url!r}). Use a form like https://api.openai.com/v1."
        )
        return problem, None, None
    if "@" in parts.netloc:
        return (
            "must not contain a user name or password (user:pass@host). "
            "Remove them and put the key in the `api_key` field.",
            None,
            None,
        )
    if parts.query or url.endswith("?"):
        return (
            "must not contain a query (?...). Remove it; for Azure OpenAI, set the "
            "`api_version` field instead of ?api-version=.",
            None,
            None,
        )
    if parts.fragment or "#" in url:
        return "must not contain a fragment (#...). Remove it.", None, None
    host = (parts.hostname or "").rstrip(".")
    if not host:
        return "has no host name. Use a form like https://api.openai.com/v1.", None, None
    literal = _literal_address(host)
    if allowed_hosts and not host_allowed(host, allowed_hosts):
        allowed = ", ".join(allowed_hosts)
        return (
            f"names the host {host!r}, which is not in `allowed_hosts` ({allowed}). "
            "Use one of those hosts, or ask the administrator to add it.",
            None,
            None,
        )
    if literal is not None and literal.is_unspecified:
        problem = f"names {host}, which is a listen address, not a destination. Use 127.0.0.1."
        return problem, None, None
    if parts.scheme == "http" and not allow_insecure_http and not is_loopback(host):
        return (
            f"must use https:// for {host}: over plain http the key travels unencrypted. "
            "Use https, or turn on `allow_insecure_http` for a server on a trusted network.",
            None,
            None,
        )
    if literal is not None and is_forbidden(literal):
        return (
            f"points at {host}, a link-local or cloud-metadata address; the key is never "
            "sent there. Use the API's public host name.",
            None,
            None,
        )
    if literal is not None or host.lower() in LOOPBACK_NAMES:
        return None, None, None
    return None, host, port


def request_url_problem(url: str, connection: Connection, *, has_key: bool) -> str | None:
    """Return why the transport must not send to a built request URL, or None.

    The recheck at send time, for callers of the transport that skip ``check_base_url``: the
    scheme and host, plain http only without a key (or on loopback, or when allowed), and the
    allowed hosts. ``check_base_url`` is the full rule the facade applies first.
    """
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        return f"`base_url` must be an http(s) URL with a host, got {url!r}."
    insecure = parts.scheme == "http" and not connection.allow_insecure_http
    if insecure and has_key and not is_loopback(host):
        return (
            f"`base_url` uses plain http to {host}, which would send the API key unencrypted;"
            " use https, or set `allow_insecure_http`."
        )
    if connection.allowed_hosts and not host_allowed(host, connection.allowed_hosts):
        return f"`base_url` names {host}, which is not in `allowed_hosts`."
    return None


def host_allowed(host: str, allowed_hosts: tuple[str, ...] | list[str]) -> bool:
    """Return True when ``host`` matches an entry exactly or a ``*.`` wildcard's subdomain."""
    host = host.lower().rstrip(".")
    for entry in allowed_hosts:
        entry = entry.strip().lower().rstrip(".")
        if entry.startswith("*."):
            if host.endswith(entry[1:]):
                return True
        elif host == entry.strip("[]"):
            return True
    return False


def is_loopback(host: str) -> bool:
    """Return True for localhost and literal loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    address = _literal_address(host)
    return address is not None and _unmapped(address).is_loopback


def is_forbidden(address: Address) -> bool:
    """Return True for link-local and cloud-metadata addresses."""
    address = _unmapped(address)
    return any(address in net for net in FORBIDDEN_NETWORKS if net.version == address.version)


@functools.lru_cache(maxsize=1024)
def _literal_address(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None


def _unmapped(address: Address) -> Address:
    # ::ffff:169.254.169.254 reaches the same place as 169.254.169.254.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _resolve(host: str, port: int | None) -> list[Address]:
    """Return every address ``host`` resolves to, cached briefly; [] when it does not resolve.

    A name that does not resolve passes: DNS failures are often transient, and the transport
    then reports a retryable ``connection`` error naming the host, which is the right signal;
    refusing here would turn a resolver hiccup into "fix your form" (exit 2). It cannot reach a
    forbidden address without resolving, and the next run checks again (failures are not
    cached). This check gives a clear error before anything is sent; the transport checks the
    address each connection actually reaches as well, so DNS rebinding in between is caught.
    """
    key = host.lower()
    now = _clock()
    with _cache_lock:
        cached = _cache.get(key)
    if cached and cached[0] > now:
        texts = cached[1]
    else:
        try:
            infos = socket.getaddrinfo(host, port or 443, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return []
        texts = tuple(dict.fromkeys(str(info[4][0]) for info in infos))
        with _cache_lock:
            if len(_cache) >= CACHE_SIZE:
                _cache.clear()  # many tenants' hosts: start over rather than grow without bound
            _cache[key] = (now + CACHE_SECONDS, texts)
    addresses = (_literal_address(text) for text in texts)
    return [a for a in addresses if a is not None]
