"""OpenAI Create Chat Completion as a declarative workflow-automation connector.

>>> import connector
>>> out = connector.run("create_chat_completion", {"model": "gpt-4o-mini", "messages": "Hi"})
>>> out["choices"][0]["message"]["content"]
"""

from .connection import Connection
from .errors import (
    ConnectorError,
    InternalError,
    InvalidInput,
    InvalidResponse,
    RequestRejected,
    TemporaryFailure,
)
from .manifest import load_manifest
from .runner import options, prepare, resolve_connection, run

__all__ = [
    "Connection",
    "ConnectorError",
    "InternalError",
    "InvalidInput",
    "InvalidResponse",
    "RequestRejected",
    "TemporaryFailure",
    "load_manifest",
    "options",
    "prepare",
    "resolve_connection",
    "run",
]
