"""The pooled ``requests`` session whose connections refuse link-local and metadata peers."""

from __future__ import annotations

import ipaddress
import os
from typing import Any

import requests
import urllib3
from requests.adapters import HTTPAdapter

from connector.transport.policy import is_forbidden

# Idle connections kept per host; 200 concurrent runs reuse them without waiting on the pool.
POOL_MAXSIZE = 200


class ForbiddenPeer(Exception):
    """A connection reached a link-local or cloud-metadata address (not an OSError: no retry)."""

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{host} connected to {address}")
        self.host, self.address = host, address


def _checked(sock, host: str):
    # The policy checked the name before sending; this checks the address actually reached, so
    # a DNS answer that changed in between (rebinding) cannot carry the key to metadata services.
    try:
        address = ipaddress.ip_address(sock.getpeername()[0].split("%")[0])
    except (OSError, ValueError, IndexError):
        return sock
    if is_forbidden(address):
        sock.close()
        raise ForbiddenPeer(host, str(address))
    return sock


class _GuardedHTTPConnection(urllib3.connection.HTTPConnection):
    def _new_conn(self):
        return _checked(super()._new_conn(), self.host)


class _GuardedHTTPSConnection(urllib3.connection.HTTPSConnection):
    def _new_conn(self):
        return _checked(super()._new_conn(), self.host)


class _GuardedHTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _GuardedHTTPConnection


class _GuardedHTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _GuardedHTTPSConnection


class _GuardedAdapter(HTTPAdapter):
    """An adapter whose connections refuse forbidden peer addresses."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _GuardedHTTPPool,
            "https": _GuardedHTTPSPool,
        }


def environment_settings(url: str) -> dict[str, Any]:
    """Return the proxies and CA bundle the environment sets for ``url``, as requests reads them."""
    verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    return {"proxies": requests.utils.get_environ_proxies(url), "verify": verify}


def new_session() -> requests.Session:
    session = requests.Session()
    # requests would scan the whole environment for proxy settings on every request (tens of
    # microseconds); the transport reads them once per URL instead (environment_settings).
    # Netrc, the other thing trust_env brings, must stay off anyway: the key is passed explicitly.
    session.trust_env = False
    # max_retries=0: the loop in Transport.send is the only retry layer.
    adapter = _GuardedAdapter(pool_connections=4, pool_maxsize=POOL_MAXSIZE, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session
