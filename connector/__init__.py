"""OpenAI Create Chat Completion as a declarative workflow-automation connector.

>>> import connector
>>> out = connector.run("create_chat_completion", {"model": "gpt-4o-mini", "messages": "Hi"})
>>> out["choices"][0]["message"]["content"]
"""

from connector.engine.loader import load_manifest
from connector.engine.runner import make_connection, options, prepare, resolve_connection, run
from connector.errors import (
    ConnectorError,
    InternalError,
    InvalidInput,
    InvalidResponse,
    RequestRejected,
    TemporaryFailure,
)
from connector.transport.connection import Connection
from connector.version import __version__

__all__ = [
    "Connection",
    "ConnectorError",
    "InternalError",
    "InvalidInput",
    "InvalidResponse",
    "RequestRejected",
    "TemporaryFailure",
    "__version__",
    "load_manifest",
    "make_connection",
    "options",
    "prepare",
    "resolve_connection",
    "run",
]
