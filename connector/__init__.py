"""OpenAI Create Chat Completion as a declarative workflow-automation connector.

>>> import connector
>>> out = connector.run("create_chat_completion", {"model": "gpt-4o-mini", "messages": "Hi"})
>>> out["choices"][0]["message"]["content"]
"""

__version__ = "0.1.0"

import importlib.util as _util
import sys as _sys
from pathlib import Path as _Path


def _checkout_actions() -> None:
    """In a checkout, make ``connector.actions`` the top-level actions/ folder.

    The wheel installs that folder as connector/actions (see setup.py), so one module
    name works in both places and the wheel adds no top-level package.
    """
    here = _Path(__file__).resolve().parent
    folder = here.parent / "actions"
    if (here / "actions").is_dir() or not (folder / "__init__.py").is_file():
        return
    spec = _util.spec_from_file_location(
        __name__ + ".actions", folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    module = _util.module_from_spec(spec)
    _sys.modules[spec.name] = module
    spec.loader.exec_module(module)


_checkout_actions()

from .connection import Connection  # noqa: E402
from .errors import (  # noqa: E402
    ConnectorError,
    InternalError,
    InvalidInput,
    InvalidResponse,
    RequestRejected,
    TemporaryFailure,
)
from .manifest import load_manifest  # noqa: E402
from .runner import options, prepare, resolve_connection, run  # noqa: E402

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
