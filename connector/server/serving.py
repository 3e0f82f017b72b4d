"""``python -m connector serve``: the action server on gunicorn (gthread workers).

Each worker runs up to ``concurrency`` runs at once, with more threads than that (for requests
being read, health, metrics, and 503 answers past the cap), and a time limit on reading each
request (``frontdoor``). SIGTERM stops accepting, lets in-flight requests and async runs
finish (up to ``drain_seconds``), then exits.
"""

from __future__ import annotations

import atexit
import ipaddress
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from connector.errors import InvalidInput
from connector.server import frontdoor
from connector.server.app import create_app
from connector.server.batches import Batcher
from connector.server.health import startup_warning
from connector.server.settings import Settings
from connector.transport.connection import env_values

# Per worker, beyond the run slots: requests still being read (a stalled client holds one for
# up to read_timeout), health, metrics and 503 answers.
EXTRA_THREADS = 256
log = logging.getLogger("connector.server")


def is_loopback(host: str) -> bool:
    """Return True when ``host`` is a loopback address or ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_auth(settings: Settings, host: str) -> None:
    """Refuse to start without a token, unless auth is off and the server is on loopback."""
    if settings.auth and not settings.tokens:
        raise InvalidInput(
            "No server token: set CONNECTOR_SERVER_TOKENS (comma-separated) or "
            "CONNECTOR_SERVER_TOKEN_FILE, or pass --token-file; or --no-auth on loopback."
        )
    if not settings.auth and not is_loopback(host):
        raise InvalidInput(f"--no-auth is only allowed on loopback, not on {host}.")


class _BatchedLog(logging.Handler):
    """A worker's log lines, written to a stream in batches by one thread (``batches.Batcher``).

    A stream handler in the request thread would hold its lock across the write, and a queue
    read by a writer thread wakes that thread for every line: on a busy worker either way costs
    a hand-over of the GIL per run.
    """

    def __init__(self, stream: Any, interval: float = 0.1) -> None:
        super().__init__()
        self.stream = stream
        self._lines = Batcher(self._write, interval, "connector-log")

    def handle(self, record: logging.LogRecord) -> bool:
        # The handler's lock guards nothing here: queuing a line needs none.
        if self.filter(record):
            self.emit(record)
        return True

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.add(self.format(record))
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Write the lines collected so far."""
        self._lines.flush()

    def close(self) -> None:
        """Stop the writer after it wrote every line."""
        self._lines.close()
        super().close()

    def _write(self, lines: list[str]) -> None:
        try:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed stderr must not stop the worker
            pass


_handler: _BatchedLog | None = None


def _log_to_stderr() -> None:
    """Send the worker's log lines (one per run) to stderr, in batches (``_BatchedLog``)."""
    global _handler
    logger = logging.getLogger("connector.server")
    if logger.handlers:
        return
    _handler = _BatchedLog(sys.stderr)
    _handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(_handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _flush_log() -> None:
    """Write the lines still held (a worker's last act)."""
    global _handler
    if _handler is not None:
        _handler.close()
        _handler = None


def gunicorn_options(
    settings: Settings, *, host: str = "127.0.0.1", port: int = 8080, workers: int = 1
) -> dict[str, Any]:
    """Return the gunicorn settings of the server (the benchmark's bare app uses them too)."""

    def when_ready(server: Any) -> None:
        # One line with the address, so that `--port 0` is usable (tests, supervisors).
        for listener in server.LISTENERS:
            sys.stderr.write(f"listening on {listener}\n")
        sys.stderr.flush()

    return {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers,
        "worker_class": "connector.server.frontdoor.FrontDoorWorker",
        "threads": settings.concurrency + EXTRA_THREADS,
        # Connections a worker holds: its threads' and as many kept alive between requests.
        "worker_connections": 2 * (settings.concurrency + EXTRA_THREADS),
        "backlog": 4096,
        # gunicorn's own trust of X-Forwarded-Proto (wsgi.url_scheme): the same proxies as the app's.
        "forwarded_allow_ips": ",".join(settings.trusted_proxies),
        "graceful_timeout": int(settings.drain_seconds) + 5,
        "timeout": 60,  # gthread workers heartbeat from their main loop; long runs are fine
        # Idle keep-alive connections live longer than a load balancer's or a client pool's idle
        # time (60 s is common): closing first races their next request on it (a reset).
        "keepalive": 75,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "when_ready": when_ready,
        "proc_name": "connector-server",
    }


def run_gunicorn(options: dict[str, Any], load: Callable[[], Any]) -> None:
    """Run gunicorn with ``options``; each worker calls ``load()`` for its WSGI app."""
    from gunicorn.app.base import BaseApplication

    class Application(BaseApplication):
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self):
            return load()

    Application().run()


def serve(
    settings: Settings, *, host: str = "127.0.0.1", port: int = 8080, workers: int = 1
) -> None:
    """Run the server until it is stopped (SIGTERM or SIGINT)."""
    check_auth(settings, host)
    warning = startup_warning(env_values())
    if warning:
        sys.stderr.write(warning + "\n")
    # Read by the workers, which fork from this process.
    frontdoor.READ_TIMEOUT = settings.read_timeout
    # Several workers report one set of metrics through files in this folder.
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        folder = tempfile.mkdtemp(prefix="connector-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
        master = os.getpid()  # workers inherit atexit handlers: only the master removes it
        atexit.register(lambda: os.getpid() == master and shutil.rmtree(folder, True))

    def worker_exit(server: Any, worker: Any) -> None:
        scheduler = getattr(getattr(worker, "wsgi", None), "scheduler", None)
        left = scheduler.drain() if scheduler is not None else 0
        if left:
            log.warning('{"event": "drain", "interrupted_runs": %d}', left)
        _flush_log()
        if left:
            # The runs still going were marked interrupted; exiting normally would wait for
            # their threads (the interpreter joins them), past the drain time.
            logging.shutdown()
            os._exit(0)

    def child_exit(server: Any, worker: Any) -> None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)

    options = gunicorn_options(settings, host=host, port=port, workers=workers)
    options.update(
        worker_exit=worker_exit,
        child_exit=child_exit,
        post_worker_init=lambda worker: _log_to_stderr(),
    )
    run_gunicorn(options, lambda: create_app(settings))
