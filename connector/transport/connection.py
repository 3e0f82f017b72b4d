"""Connection settings: where and how to call the API.

The fields, their labels, rules and defaults are declared in ``manifest.yaml``
(``connection.fields``); this is their typed form, which the engine builds (``make_connection``
and ``resolve_connection`` fill the manifest's defaults), and a test keeps the two in step.
Values arrive as form text, a JSON/YAML file, or the environment, and are coerced by the same
input rules as action parameters.
"""

from __future__ import annotations

import os
from typing import NamedTuple

# Environment variables the CLI and ``run()`` read when no connection is given.
ENV_VARS = {
    "api_key": "OPENAI_API_KEY",
    "base_url": "OPENAI_BASE_URL",
    "organization": "OPENAI_ORG_ID",
    "project": "OPENAI_PROJECT_ID",
    "timeout": "OPENAI_TIMEOUT",
    "max_retries": "OPENAI_MAX_RETRIES",
    "provider": "OPENAI_PROVIDER",
    "max_input_chars": "OPENAI_MAX_INPUT_CHARS",
}


class Connection(NamedTuple):
    """Validated connection settings; ``repr`` never shows the key.

    No field has a default here: the manifest's are the only ones. A NamedTuple, not a
    dataclass: importing dataclasses (and inspect with it) would cost every cold start about
    4 ms (benchmarks/bench.py).
    """

    api_key: str | None
    base_url: str
    organization: str | None
    project: str | None
    provider: str
    api_version: str | None
    timeout: float
    connect_timeout: float
    max_duration: float
    max_retries: int
    max_retry_wait: float
    drop_unsupported_params: bool
    allow_insecure_http: bool
    allowed_hosts: tuple[str, ...]
    max_input_chars: int
    max_json_depth: int
    max_response_bytes: int
    max_sse_line_bytes: int

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
