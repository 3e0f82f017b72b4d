"""Base-URL policy: table-driven, with a fake resolver."""

from __future__ import annotations

import socket

import pytest

from connector.engine import runner
from connector.engine.runner import make_connection
from connector.errors import InvalidInput
from connector.transport import policy

DNS = {
    "api.openai.com": ["162.159.140.245", "2606:4700::6812:7b0"],
    "myres.openai.azure.com": ["20.43.132.130"],
    "openrouter.ai": ["104.18.2.115"],
    "metadata.google.internal": ["169.254.169.254"],
    "rebind.example.com": ["93.184.216.34", "169.254.169.254"],
    "v6meta.example.com": ["fd00:ec2::254"],
    "mapped.example.com": ["::ffff:169.254.169.254"],
    "lan.example.com": ["192.168.1.10"],
}


@pytest.fixture
def resolver(monkeypatch):
    """Replace DNS with the table above; return the list of names looked up."""
    calls: list[str] = []

    def fake_getaddrinfo(host, port, *args, **kw):
        calls.append(host)
        if host not in DNS:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            (socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
            for a in DNS[host]
        ]

    monkeypatch.setattr(policy.socket, "getaddrinfo", fake_getaddrinfo)
    policy._cache.clear()
    yield calls
    policy._cache.clear()


def check(url, **settings):
    policy.check_base_url(make_connection(base_url=url, **settings))


@pytest.mark.parametrize(
    ("url", "settings"),
    [
        ("https://api.openai.com/v1", {}),
        ("https://API.OpenAI.com/v1/", {}),
        ("https://api.openai.com./v1", {}),
        ("  https://api.openai.com/v1  ", {}),
        ("https://api.openai.com:443/v1", {}),
        ("http://localhost:11434/v1", {}),
        ("http://LOCALHOST:1234/v1", {}),
        ("http://127.0.0.1:8080/v1", {}),
        ("http://127.0.0.5:8080/v1", {}),
        ("http://[::1]:8080/v1", {}),
        ("http://192.168.1.10:11434/v1", {"allow_insecure_http": True}),
        ("http://lan.example.com:8000/v1", {"allow_insecure_http": True}),
        ("https://myres.openai.azure.com/openai/v1", {"allowed_hosts": ("*.openai.azure.com",)}),
        ("https://api.openai.com/v1", {"allowed_hosts": ("API.OPENAI.COM", "openrouter.ai")}),
        ("https://openrouter.ai/api/v1", {"allowed_hosts": ("api.openai.com", "openrouter.ai")}),
        ("http://127.0.0.1:8080/v1", {"allowed_hosts": ("127.0.0.1",)}),
        ("http://[::1]:8080/v1", {"allowed_hosts": ("[::1]",)}),
        ("https://does-not-resolve.invalid/v1", {}),  # left to the transport: connection error
    ],
)
def test_allowed(resolver, url, settings):
    check(url, **settings)


@pytest.mark.parametrize(
    ("url", "settings", "expected"),
    [
        ("", {}, "is empty"),
        ("   ", {}, "is empty"),
        ("http://api.openai.com/v1", {}, "Allow Insecure HTTP"),
        ("http://192.168.1.10:11434/v1", {}, "must use https://"),
        ("http://lan.example.com/v1", {}, "travels unencrypted"),
        ("ftp://api.openai.com/v1", {}, "must start with https://"),
        ("file:///etc/passwd", {}, "must start with https://"),
        ("api.openai.com/v1", {}, "must start with https://"),
        ("localhost:11434/v1", {}, "must start with https://"),
        ("https://user:pass@api.openai.com/v1", {}, "user name or password"),
        ("https://sk-abc@api.openai.com/v1", {}, "API Key field"),
        (
            "https://x.openai.azure.com/openai/deployments/d?api-version=2024-10-21",
            {},
            "API Version",
        ),
        ("https://api.openai.com/v1?", {}, "query"),
        ("https://api.openai.com/v1#top", {}, "fragment"),
        ("https://api.openai.com/v1#", {}, "fragment"),
        ("https:///v1", {}, "no host"),
        ("https://:443/v1", {}, "no host"),
        ("https://api.openai.com:99999/v1", {}, "not a valid URL"),
        ("https://api.openai.com:abc/v1", {}, "not a valid URL"),
        ("https://api.open ai.com/v1", {}, "spaces"),
        ("https://api.openai.com/v1\n", {}, None),  # trailing whitespace is trimmed: allowed
        ("https://api.openai.com/\x00v1", {}, "control characters"),
        ("https://evil.example.com/v1", {"allowed_hosts": ("api.openai.com",)}, "Allowed Hosts"),
        ("https://openai.azure.com/v1", {"allowed_hosts": ("*.openai.azure.com",)}, "not in"),
        ("https://evilopenai.azure.com/v1", {"allowed_hosts": ("*.openai.azure.com",)}, "not in"),
        ("https://api.openai.com.evil.io/v1", {"allowed_hosts": ("api.openai.com",)}, "not in"),
        ("http://localhost:8080/v1", {"allowed_hosts": ("api.openai.com",)}, "not in"),
        ("http://0.0.0.0:8080/v1", {}, "listen address"),
        ("http://[::]:8080/v1", {}, "listen address"),
        ("https://169.254.169.254/latest/meta-data", {}, "cloud-metadata"),
        ("http://169.254.169.254/v1", {"allow_insecure_http": True}, "cloud-metadata"),
        ("https://169.254.1.1/v1", {}, "link-local"),
        ("https://[fe80::1]/v1", {}, "link-local"),
        ("https://[fe80::1%25eth0]/v1", {}, "link-local"),
        ("https://[fd00:ec2::254]/v1", {}, "cloud-metadata"),
        ("https://[::ffff:169.254.169.254]/v1", {}, "cloud-metadata"),
        ("https://100.100.100.200/v1", {}, "cloud-metadata"),
        ("https://metadata.google.internal/v1", {}, "(169.254.169.254)"),
        ("https://rebind.example.com/v1", {}, "(169.254.169.254)"),
        ("https://v6meta.example.com/v1", {}, "(fd00:ec2::254)"),
        ("https://mapped.example.com/v1", {}, "cloud-metadata"),
        (
            "https://metadata.google.internal/v1",
            {"allowed_hosts": ("metadata.google.internal",)},
            "cloud-metadata",
        ),
    ],
)
def test_refused(resolver, url, settings, expected):
    if expected is None:
        check(url, **settings)
        return
    with pytest.raises(InvalidInput) as info:
        check(url, **settings)
    error = runner.labelled(info.value)  # the transport names the field; the engine labels it
    [field] = error.fields
    assert (field["name"], field["label"]) == ("base_url", "Base URL")
    assert expected in field["message"]
    assert error.message == f"Base URL: {field['message']}"
    assert error.to_dict()["type"] == "invalid_input" and error.exit_code == 2


@pytest.mark.parametrize(
    "host", ["2852039166", "0xA9FEA9FE", "169.254.43518", "0251.0376.0251.0376"]
)
def test_numeric_host_forms_are_resolved_then_refused(host):
    # Real getaddrinfo: numeric forms are parsed locally (inet_aton), no DNS is involved.
    policy._cache.clear()
    with pytest.raises(InvalidInput, match="cloud-metadata"):
        check(f"https://{host}/v1")


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080/v1", "https://[::1]/v1", "http://localhost/v1", "https://1.2.3.4/v1"],
)
def test_loopback_and_literal_addresses_need_no_dns(resolver, url):
    check(url)
    assert resolver == []


def test_resolution_is_cached_per_host_for_a_minute(resolver, monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(policy, "_clock", lambda: now[0])
    check("https://api.openai.com/v1")
    check("https://API.openai.com/other")
    assert resolver == ["api.openai.com"]
    now[0] += policy.CACHE_SECONDS + 1
    check("https://api.openai.com/v1")
    assert resolver == ["api.openai.com", "api.openai.com"]


def test_failed_resolution_is_not_cached(resolver):
    check("https://nowhere.invalid/v1")
    check("https://nowhere.invalid/v1")
    assert resolver == ["nowhere.invalid", "nowhere.invalid"]


def test_cache_stays_bounded(resolver, monkeypatch):
    monkeypatch.setattr(policy, "CACHE_SIZE", 3)
    for host in ["api.openai.com", "openrouter.ai", "myres.openai.azure.com", "lan.example.com"]:
        check(f"https://{host}/v1")
    assert len(policy._cache) <= 3


@pytest.mark.parametrize(
    ("host", "entries", "expected"),
    [
        ("api.openai.com", ["api.openai.com"], True),
        ("api.openai.com", ["Api.OpenAI.com."], True),
        ("a.b.openai.azure.com", ["*.openai.azure.com"], True),
        ("openai.azure.com", ["*.openai.azure.com"], False),
        ("xopenai.azure.com", ["*.openai.azure.com"], False),
        ("api.openai.com", [], False),
        ("api.openai.com", ["openai.com"], False),
    ],
)
def test_host_allowed(host, entries, expected):
    assert policy.host_allowed(host, entries) is expected


@pytest.fixture
def counting_server():
    """Return (port, hits) of an HTTP server on loopback that counts the requests it gets."""
    import http.server
    import threading

    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            hits.append(self.path)
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], hits
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_the_address_reached_is_checked_at_connect_time(counting_server, monkeypatch, scheme):
    """A name that resolved to a public address, then to a forbidden one (DNS rebinding)."""
    import ipaddress

    import connector

    port, hits = counting_server
    reached = ipaddress.ip_address("127.0.0.1")
    monkeypatch.setattr(
        "connector.transport.session.is_forbidden", lambda address: address == reached
    )
    conn = {"base_url": f"{scheme}://127.0.0.1:{port}/v1", "api_key": "sk-rebind-0123456789"}
    with pytest.raises(InvalidInput) as exc:
        connector.run("create_chat_completion", {"model": "m", "messages": "Hi"}, conn)
    assert "led to 127.0.0.1, a link-local or cloud-metadata address" in exc.value.message
    assert exc.value.fields[0]["name"] == "base_url"
    assert hits == []  # nothing was sent, not even the headers
