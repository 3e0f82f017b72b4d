"""The server's settings: from the environment (``CONNECTOR_SERVER_*``) and the command line.

The tokens come from ``CONNECTOR_SERVER_TOKENS`` or a token file, never from the command line,
where other users of the machine could read them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from connector.errors import InvalidInput

TOKENS_ENV = "CONNECTOR_SERVER_TOKENS"
TOKEN_FILE_ENV = "CONNECTOR_SERVER_TOKEN_FILE"


@dataclass(frozen=True)
class Settings:
    """The server's settings; ``from_env`` reads ``CONNECTOR_*`` variables."""

    tokens: tuple[str, ...] = field(default=(), repr=False)
    auth: bool = True
    runs_db: str = ".connector-runs.sqlite3"
    runs_url: str = field(default="", repr=False)  # PostgreSQL: queued runs (queued.py)
    run_retention: float = 86400.0  # seconds a finished async run stays readable
    heartbeat: float = 2.0  # seconds between a worker's heartbeats for its async runs
    max_queued: int = 10000  # async runs waiting for a slot (SQLite mode); more get 503
    runs_pool_size: int = 10  # PostgreSQL connections per worker process (scale-out mode)
    max_body_bytes: int = 4 * 1024 * 1024
    max_json_depth: int = 64
    # Runs in flight per worker (sync and async); more get 503. Sized from measurement on 2
    # cores (docs/fan-out.md): 1,000 slow calls at once stay under 200 MiB for the server.
    concurrency: int = 1024
    read_timeout: float = 30.0  # seconds a client has to send a request's headers and body
    max_sessions: int = 256  # pooled upstream sessions kept (one per tenant key), LRU
    busy_retry_after: int = 2  # Retry-After of a 503 when every slot is busy
    poll_after: int = 2  # Retry-After of a 202 while an async run is running
    drain_seconds: float = 30.0  # SIGTERM: how long in-flight runs may take to finish
    allowed_hosts: tuple[str, ...] = ()  # hosts a per-request Base URL may name (none: refused)
    trusted_proxies: tuple[str, ...] = ()  # addresses whose X-Forwarded-* headers are believed

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Return settings from the environment, then ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {"tokens": read_tokens(env)}
        if env.get("CONNECTOR_RUNS_DB"):
            values["runs_db"] = env["CONNECTOR_RUNS_DB"]
        if env.get("CONNECTOR_ALLOWED_HOSTS"):
            values["allowed_hosts"] = _split(env["CONNECTOR_ALLOWED_HOSTS"])
        if env.get("CONNECTOR_TRUSTED_PROXIES"):
            values["trusted_proxies"] = _split(env["CONNECTOR_TRUSTED_PROXIES"])
        for name, var in (
            ("runs_url", "CONNECTOR_RUNS_URL"),
            ("run_retention", "CONNECTOR_RUN_RETENTION"),
            ("concurrency", "CONNECTOR_SERVER_CONCURRENCY"),
            ("max_body_bytes", "CONNECTOR_SERVER_MAX_BODY_BYTES"),
            ("drain_seconds", "CONNECTOR_SERVER_DRAIN_SECONDS"),
            ("heartbeat", "CONNECTOR_RUN_HEARTBEAT"),
            ("read_timeout", "CONNECTOR_SERVER_READ_TIMEOUT"),
            ("max_sessions", "CONNECTOR_MAX_SESSIONS"),
            ("max_queued", "CONNECTOR_RUN_QUEUE_MAX"),
            ("runs_pool_size", "CONNECTOR_RUNS_POOL_SIZE"),
        ):
            if env.get(var):
                kind = type(getattr(cls, name))
                values[name] = kind(float(env[var])) if kind is int else kind(env[var])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


def _split(text: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def read_tokens(env: Mapping[str, str], token_file: str | None = None) -> tuple[str, ...]:
    """Return the bearer tokens from CONNECTOR_SERVER_TOKENS and a token file (one a line)."""
    tokens = list(_split(env.get(TOKENS_ENV, "")))
    path = token_file or env.get(TOKEN_FILE_ENV)
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                tokens += [line.strip() for line in f if line.strip() and line[0] != "#"]
        except OSError as exc:
            raise InvalidInput(f"Cannot read the token file {path}: {exc.strerror}.") from None
    return tuple(tokens)
