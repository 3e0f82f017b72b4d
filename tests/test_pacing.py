"""The pacer's rules on a fake clock: the upstream's headers in, the wait and the window out."""

from __future__ import annotations

import math
import threading
import time

import pytest

from connector.errors import ConnectorError
from connector.transport import pacing
from connector.transport.pacing import INITIAL_WINDOW, RAMP_INTERVAL, Pacer

OPENAI_EMPTY = {  # 10 a second, none left: the bucket is full again in 1 s
    "x-ratelimit-limit-requests": "10",
    "x-ratelimit-remaining-requests": "0",
    "x-ratelimit-reset-requests": "1s",
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pacer() -> tuple[Pacer, Clock]:
    clock = Clock()
    return Pacer("test", clock=clock), clock


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("20ms", 0.02),
        ("6m0s", 360.0),
        ("1h2m3.5s", 3723.5),
        ("0.5", 0.5),
        ("2.344s", 2.344),
        ("", None),
        (None, None),
        ("soon", None),
        ("5x", None),
    ],
)
def test_reset_durations(text, seconds):
    got = pacing.duration(text)
    assert got == (pytest.approx(seconds) if seconds is not None else None)


# (headers of one reply to a call sent now, status, then: wait for the next call, its tokens)
CASES = [
    ("no headers: nothing known, send", {}, 200, 0, 0.0),
    ("requests left", {**OPENAI_EMPTY, "x-ratelimit-remaining-requests": "5"}, 200, 0, 0.0),
    # 0 left, refilled in 1 s: 9 a second read safely (the remaining count is rounded down)
    ("no request left", OPENAI_EMPTY, 200, 0, 1 / 9),
    (
        "no token left for a 100-token call",
        {
            "x-ratelimit-limit-tokens": "1000",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-tokens": "1s",
        },
        200,
        100,
        100 / 999,
    ),
    (
        "tokens left for a small call",
        {
            "x-ratelimit-limit-tokens": "1000",
            "x-ratelimit-remaining-tokens": "500",
            "x-ratelimit-reset-tokens": "1s",
        },
        200,
        100,
        0.0,
    ),
    ("retry-after-ms pauses", {"retry-after-ms": "250"}, 429, 0, 0.25),
    ("retry-after pauses", {"retry-after": "2"}, 429, 0, 2.0),
    ("a quota 429 pauses nothing", {}, 429, 0, 0.0),
    (
        "no reset given: the limit refills over a minute",
        {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0"},
        200,
        0,
        1.0,
    ),
    (
        "Azure's remaining count without limit or reset",
        {"x-ratelimit-remaining-requests": "0"},
        200,
        0,
        60.0,
    ),
]


@pytest.mark.parametrize(
    ("name", "headers", "status", "tokens", "wait"), CASES, ids=[c[0] for c in CASES]
)
def test_headers_to_wait(name, headers, status, tokens, wait):
    p, clock = pacer()
    turn = p.begin(tokens, clock())
    code = "quota_exceeded" if "quota" in name else "rate_limited"
    p.observe(turn, status, headers, code if status == 429 else None, clock())
    assert p.delay(tokens, clock()) == pytest.approx(wait, abs=1e-6)


def test_budget_counts_calls_sent_since_the_reply():
    p, clock = pacer()
    first = p.begin(0, clock())
    others = [p.begin(0, clock()) for _ in range(3)]  # sent after it, before its reply
    headers = {**OPENAI_EMPTY, "x-ratelimit-remaining-requests": "5"}
    p.observe(first, 200, headers, None, clock())
    assert p.requests.available(clock()) == pytest.approx(2)  # 5 then, 3 of them taken since
    for turn in others:
        p.observe(turn, 200, {}, None, clock())
    clock.now += 0.5  # refills at 4.5 a second: (10 - 0 - 1)... read from 5 left in 1 s
    assert p.requests.available(clock()) == pytest.approx(2 + 0.5 * 4)


def test_an_older_reply_does_not_override_a_newer_one():
    p, clock = pacer()
    old = p.begin(0, clock())
    clock.now += 0.1
    new = p.begin(0, clock())
    p.observe(new, 429, OPENAI_EMPTY, "rate_limited", clock())
    p.observe(old, 200, {**OPENAI_EMPTY, "x-ratelimit-remaining-requests": "9"}, None, clock())
    assert p.requests.available(clock()) == pytest.approx(0)


@pytest.mark.parametrize(
    ("elapsed", "window"),
    [
        (0.0, INITIAL_WINDOW),
        (RAMP_INTERVAL, 2 * INITIAL_WINDOW),
        (3 * RAMP_INTERVAL, 8 * INITIAL_WINDOW),
    ],
)
def test_slow_start_doubles_the_window(elapsed, window):
    p, clock = pacer()
    p.begin(0, clock())  # the fan-out starts
    assert p.current_window(clock()) == INITIAL_WINDOW
    clock.now += elapsed
    assert p.current_window(clock()) == pytest.approx(window)


def test_a_full_window_waits_for_the_next_doubling():
    p, clock = pacer()
    for _ in range(int(INITIAL_WINDOW)):
        p.begin(0, clock())
    assert p.delay(0, clock()) == pytest.approx(
        RAMP_INTERVAL * math.log2((INITIAL_WINDOW + 1) / INITIAL_WINDOW)
    )


def test_aimd_halves_on_429_once_per_round_trip_and_grows_by_one():
    p, clock = pacer()
    turns = [p.begin(0, clock()) for _ in range(8)]
    clock.now += 0.01
    p.observe(turns[0], 429, {}, "rate_limited", clock())
    assert (p.ramping, p.window) == (False, 4.0)  # min(window, in flight 8) / 2
    p.observe(turns[1], 429, {}, "rate_limited", clock())  # sent before the decrease: no second
    assert p.window == 4.0
    p.observe(turns[2], 200, {}, None, clock())
    assert p.window == 5.0
    assert p.delay(0, clock()) == math.inf  # 5 in flight, window 5: wait for a call to end
    clock.now += 0.01
    late = p.begin(0, clock())
    p.observe(late, 429, {}, "rate_limited", clock())  # sent after the decrease: halves again
    assert p.window == pytest.approx(2.5)  # min(window 5, in flight 5 + this one) / 2


def test_a_refused_call_is_not_held_by_the_pause_it_waited_out():
    p, clock = pacer()
    turn = p.begin(0, clock())
    p.observe(turn, 429, {"retry-after-ms": "500"}, "rate_limited", clock())
    assert p.delay(0, clock()) == pytest.approx(0.5)
    assert p.delay(0, clock(), paused=False) == 0.0


def test_a_wait_past_the_deadline_fails_at_once_with_the_wait_needed():
    p, clock = pacer()
    turn = p.begin(0, clock())
    p.observe(turn, 429, {"retry-after": "30"}, "rate_limited", clock())
    with pytest.raises(ConnectorError) as info:
        p.acquire(0, deadline=clock() + 5)
    assert info.value.type == "rate_limited"
    assert "30.0 s more" in info.value.message and info.value.retry_after == pytest.approx(30)


def test_waiters_are_served_in_order_and_a_refused_call_first():
    p = Pacer("test")
    p.window, p.ramping = 1.0, False
    held = p.acquire(0, time.monotonic() + 10)
    order: list[str] = []

    def call(name: str, first: bool = False) -> None:
        p.acquire(0, time.monotonic() + 10, first=first).done(200)
        order.append(name)

    threads = []
    for name, first in (("a", False), ("b", False), ("refused", True)):
        threads.append(threading.Thread(target=call, args=(name, first)))
        threads[-1].start()
        while len(p._queue) < len(threads):
            time.sleep(0.001)
    held.done(200)
    for t in threads:
        t.join(5)
    assert order[0] == "refused" and sorted(order) == ["a", "b", "refused"]


def test_token_cost_reads_the_body():
    body = {
        "model": "m",
        "messages": [{"role": "user", "content": "x" * 400}],
        "max_completion_tokens": 50,
    }
    data = b"x" * 400
    assert pacing.token_cost(data, body) == 100 + 50
    assert pacing.token_cost(None, None) == 0


def test_one_pacer_per_upstream_and_key_never_named_by_the_key():
    a = pacing.pacer_for("https://api.example/v1", "sk-secret-1")
    assert pacing.pacer_for("https://api.example/v1", "sk-secret-1") is a
    assert pacing.pacer_for("https://api.example/v1", "sk-secret-2") is not a
    assert pacing.pacer_for("https://other.example/v1", "sk-secret-1") is not a
    assert "sk-secret" not in a.name and pacing.key_digest("sk-secret-1") in a.name
