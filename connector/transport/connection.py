"""Connection settings: where and how to call the API.

The fields are declared in ``manifest.yaml`` (``connection.fields``); a test keeps this
dataclass and the manifest in step. Values arrive as form text, a JSON/YAML file, or the
environment, and are coerced by the same input rules as action parameters.
"""

from __future__ import annotations

import os
from typing import NamedTuple

OPENAI_BASE_URL = "https://api.openai.com/v1"

# Environment variables the CLI and ``run()`` read when no connection is given.
ENV_VARS = {
    "api_key": "OPENAI_API_KEY",
    "base_url": "OPENAI_BASE_URL",
    "organization": "OPENAI_ORG_ID",
    "project": "OPENAI_PROJECT_ID",
    "timeout": "OPENAI_TIMEOUT",
    "max_retries": "OPENAI_MAX_RETRIES",
    "provider": "OPENAI_PROVIDER",
}


class Connection(NamedTuple):
    """Validated connection settings; ``repr`` never shows the key.

    A NamedTuple, not a dataclass: importing dataclasses (and inspect with it) would cost every
    cold start about 4 ms (benchmarks/bench.py).
    """

    api_key: str | None = None
    base_url: str = OPENAI_BASE_URL
    organization: str | None = None
    project: str | None = None
    provider: str = "openai"
    api_version: str | None = None
    timeout: float = 600.0
    connect_timeout: float = 10.0
    max_duration: float = 900.0
    max_retries: int = 2
    max_retry_wait: float = 120.0
    drop_unsupported_params: bool = False
    allow_insecure_http: bool = False
    allowed_hosts: tuple[str, ...] = ()
    max_input_chars: int = 1_000_000
    max_json_depth: int = 64
    max_response_bytes: int = 32 * 1024 * 1024
    max_sse_line_bytes: int = 1024 * 1024

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in any output."""
        # The key as given and as sent (stripped): either may come back in a reply.
        return (self.api_key, self.api_key.strip()) if self.api_key else ()

    def key(self) -> tuple:
        """Identity used to share one HTTP session per connection in a process."""
        return tuple(self)

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{k}={v!r}" for k, v in zip(self._fields, self, strict=True) if k != "api_key"
        )
        return f"Connection({shown})"


def env_values(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Return the connection fields set in the environment (as text)."""
    environ = os.environ if environ is None else environ
    return {name: environ[var] for name, var in ENV_VARS.items() if environ.get(var, "").strip()}
