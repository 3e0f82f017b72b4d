"""Per-process memos on the run path: the same answers as computing afresh, never stale."""

from __future__ import annotations

import socket

import pytest

from connector.engine import runner
from connector.engine.body import build_body
from connector.engine.loader import load_manifest
from connector.engine.runner import make_connection
from connector.errors import InvalidInput
from connector.transport import http, policy
from connector.transport.connection import Connection

BASE = {"api_key": "sk-test", "base_url": "http://127.0.0.1:9/v1"}
CHAT = load_manifest().action("create_chat_completion")


def outcome(call):
    """Return the result of ``call`` or the message of the InvalidInput it raises."""
    try:
        return call()
    except InvalidInput as exc:
        return exc.message


def test_the_same_settings_give_the_same_connection():
    first = runner.resolve_connection(dict(BASE))
    assert runner.resolve_connection(dict(BASE)) is first
    assert runner.resolve_connection({**BASE, "max_retries": "3"}).max_retries == 3


def afresh(raw):
    """Return the connection for ``raw`` computed without the memo, key check included."""
    conn = runner._connection(raw)
    runner._check_key(conn)
    return conn


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ({"max_retries": 1}, {"max_retries": True}),  # equal keys, but True is no count
        ({"max_retries": True}, {"max_retries": 1}),
        ({"timeout": 1}, {"timeout": 1.0}),
        ({"allow_insecure_http": True}, {"allow_insecure_http": 1}),
        ({"provider": "openai"}, {"provider": "compatible"}),
        ({}, {"api_key": ""}),
    ],
)
def test_a_memo_never_answers_for_other_settings(first, then):
    outcome(lambda: runner.resolve_connection({**BASE, **first}))
    fresh = typed(outcome(lambda: afresh({**BASE, **then})))
    assert typed(outcome(lambda: runner.resolve_connection({**BASE, **then}))) == fresh


def typed(result):
    """Return a Connection as (type, value) pairs: 1 and 1.0 are equal, but not the same setting."""
    if isinstance(result, Connection):
        return [(type(v), v) for v in result]
    return result


def test_unhashable_settings_are_coerced_every_time():
    raw = {**BASE, "allowed_hosts": ["127.0.0.1"]}
    assert runner.resolve_connection(raw) == runner.resolve_connection(raw)
    assert runner.resolve_connection(raw).allowed_hosts == ("127.0.0.1",)


def test_the_connection_memo_stays_bounded():
    for i in range(runner.RESOLVED_SIZE * 2):
        runner.resolve_connection({**BASE, "timeout": str(i + 1)})
    assert len(load_manifest().connections) <= runner.RESOLVED_SIZE


def test_a_cached_url_check_still_resolves_the_name_each_time(monkeypatch):
    answers = iter(["93.184.216.34", "169.254.169.254"])  # a rebind to the metadata address

    def fake_getaddrinfo(host, port, *args, **kw):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(policy.socket, "getaddrinfo", fake_getaddrinfo)
    policy._cache.clear()
    conn = make_connection(base_url="https://rebind.example.com/v1")
    policy.check_base_url(conn)
    policy._cache.clear()  # the resolution expires; the URL's own checks stay cached
    with pytest.raises(InvalidInput, match="cloud-metadata"):
        policy.check_base_url(conn)
    policy._cache.clear()


def test_a_url_that_cannot_be_built_is_refused_every_time():
    conn = make_connection(
        api_key="k", provider="azure", base_url="https://r.openai.azure.com/openai/deployments/d"
    )
    transport = http.Transport(conn)
    for _ in range(2):
        with pytest.raises(InvalidInput, match="`api_version`"):
            transport.prepare("POST", "/chat/completions", {"model": "m"})


def test_the_body_follows_the_parameter_order_whatever_the_form_order():
    form = {"temperature": "0.5", "seed": "7", "messages": "Hi", "model": "gpt-4o-mini"}
    body = build_body(CHAT, dict(reversed(form.items())), make_connection(api_key="k"))
    order = [p.target for p in CHAT.parameters]
    assert list(body) == sorted(body, key=order.index), body
