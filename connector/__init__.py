"""OpenAI Create Chat Completion as a declarative workflow-automation connector.

>>> import connector
>>> out = connector.run("create_chat_completion", {"model": "gpt-4o-mini", "messages": "Hi"})
>>> out["choices"][0]["message"]["content"]
"""

__version__ = "0.1.0"

from .connection import Connection
from .errors import (
    ConnectorError,
    InternalError,
    InvalidInput,
    InvalidResponse,
    RequestRejected,
    TemporaryFailure,
)
from .loader import load_manifest
from .runner import options, prepare, resolve_connection, run

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
    "options",
    "prepare",
    "resolve_connection",
    "run",
]
