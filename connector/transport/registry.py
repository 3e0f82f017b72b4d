"""The process's transports: one per connection, the most recently used kept (an LRU).

A tenant's key is a connection of its own: past ``limit_sessions`` transports, the least
recently used one is dropped and its pool closed, so a server that meets thousands of keys
keeps a bounded number of sessions and a flat memory.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from connector.transport.connection import Connection
from connector.transport.http import Transport

_TRANSPORTS: OrderedDict[tuple, Transport] = OrderedDict()
_LOCK = threading.Lock()
DEFAULT_MAX_SESSIONS = 256
_MAX_SESSIONS = DEFAULT_MAX_SESSIONS


def limit_sessions(count: int) -> None:
    """Keep at most ``count`` transports (pooled sessions) in this process."""
    global _MAX_SESSIONS
    _MAX_SESSIONS = max(1, int(count))


def transport_for(connection: Connection) -> Transport:
    """Return the process-wide Transport for this connection (one requests.Session each, reused)."""
    key = connection.key()
    dropped: list[Transport] = []
    with _LOCK:  # held for the lookup only, never during I/O
        transport = _TRANSPORTS.get(key)
        if transport is None:
            transport = _TRANSPORTS[key] = Transport(connection)
            while len(_TRANSPORTS) > _MAX_SESSIONS:
                dropped.append(_TRANSPORTS.popitem(last=False)[1])
        else:
            _TRANSPORTS.move_to_end(key)
    for old in dropped:
        old.close()
    return transport


def close_all() -> None:
    """Close and forget every transport of the process."""
    with _LOCK:
        transports = list(_TRANSPORTS.values())
        _TRANSPORTS.clear()
    for transport in transports:
        transport.close()
