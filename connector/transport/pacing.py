"""Pacing to the upstream's rate limits: one ``Pacer`` per upstream and key, shared by a process.

Every call of a process to the same upstream with the same key takes a turn from one pacer
(``pacer_for``), whichever thread or server worker thread it runs on. A turn is given when
- the upstream's request and token budgets, as its ``x-ratelimit-*`` headers last told them
  and counted down locally since, hold the call (a call's tokens are estimated from its body);
- no ``retry-after`` / ``retry-after-ms`` pause is running;
- fewer calls are in flight than the window: it starts small and doubles every
  ``RAMP_INTERVAL`` until the first 429 (a slow start: a fan-out learns the limit from a few
  refusals, not from a hundred), then halves on a 429 ``rate_limit_exceeded`` (once per round
  trip) and grows by one per success (AIMD, as TCP does).
Waiting calls are served first come, first served (a call refused once goes first), and never
wait past their run's deadline: then they fail ``rate_limited`` with the wait they needed.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from typing import Any

from connector.errors import TemporaryFailure
from connector.transport.replies import retry_after_of

INITIAL_WINDOW = 8.0  # calls in flight to an upstream not heard from yet
RAMP_INTERVAL = 0.05  # seconds between doublings of the window until the first 429
MAX_WINDOW = 65536.0
PER_MINUTE = 60.0  # a budget whose reset time is not given refills over a minute (OpenAI's RPM)
IDLE_RESTART = 10.0  # seconds idle (nothing in flight) after which a slow start begins again
CHARS_PER_TOKEN = 4  # the usual estimate for English text
MAX_PACERS = 1024  # idle pacers past this many are forgotten, oldest first

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def duration(text: str | None) -> float | None:
    """Return seconds from OpenAI's reset format (``1s``, ``6m0s``, ``20ms``) or a number."""
    if not text:
        return None
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(a + b for a, b in parts) != text:
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(amount) * scale[unit] for amount, unit in parts)


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


class Budget:
    """One budget of the upstream (requests or tokens), as a bucket that refills at ``rate``.

    Unknown (``level`` infinite) until a reply states it. ``taken`` counts what this process
    sent, so a reply's ``remaining`` (true when the upstream admitted the call) is brought up to
    now by taking off what was sent since.
    """

    __slots__ = ("at", "level", "limit", "rate", "seen", "taken")

    def __init__(self) -> None:
        self.limit: float | None = None
        self.level = math.inf
        self.rate = 0.0  # per second
        self.at = 0.0
        self.taken = 0.0
        self.seen = -math.inf  # when the call of the newest reply taken in was sent

    def available(self, now: float) -> float:
        if self.level == math.inf:
            return math.inf
        level = self.level + self.rate * max(0.0, now - self.at)
        return min(level, self.limit) if self.limit else level

    def take(self, amount: float, now: float) -> float:
        """Count ``amount`` as sent now; return the running total (the mark of this call)."""
        if self.level != math.inf:
            self.level, self.at = self.available(now) - amount, now
        self.taken += amount
        return self.taken

    def delay(self, amount: float, now: float) -> float:
        """Return the seconds until ``amount`` is available (0: now)."""
        if self.limit:
            amount = min(amount, self.limit)  # a call larger than the budget goes when it is full
        short = amount - self.available(now)
        if short <= 0:
            return 0.0
        return short / self.rate if self.rate > 0 else math.inf

    def observe(
        self, limit: float | None, remaining: float, reset: float | None, mark: float, sent: float
    ) -> None:
        """Take in a reply's ``limit``, ``remaining`` and ``reset`` for a call sent at ``sent``.

        A reply to a call sent before the newest one taken in is older news: it is passed over.
        """
        if sent < self.seen:
            return
        self.seen = sent
        if limit:
            self.limit = limit
        top = self.limit or max(remaining, 1.0)
        if reset is not None and reset > 0 and remaining < top:
            # ``remaining`` is a whole number, rounded down: up to one more may be refilled
            # already, so the rate may be as low as this (the slower reading is the safe one).
            spent = top - remaining
            self.rate = max(spent - 1, spent / 2) / reset
        elif self.rate <= 0:
            self.rate = top / PER_MINUTE
        self.level, self.at = remaining - (self.taken - mark), sent


class Turn:
    """A call's turn to send; ``done`` gives it back with what the reply said."""

    __slots__ = ("pacer", "request_mark", "sent", "token_mark", "tokens")

    def __init__(self, pacer: Pacer, sent: float, tokens: float) -> None:
        self.pacer, self.sent, self.tokens = pacer, sent, tokens
        self.request_mark = pacer.requests.take(1, sent)
        self.token_mark = pacer.tokens.take(tokens, sent)

    def done(
        self, status: int | None = None, headers: Mapping[str, str] | None = None, code: Any = None
    ) -> None:
        """End the turn: ``status`` and ``headers`` of the reply, ``code`` its error code."""
        self.pacer.finish(self, status, headers, code)


class _Waiter:
    __slots__ = ("event", "tokens")

    def __init__(self, tokens: float) -> None:
        self.tokens = tokens
        self.event = threading.Event()


class Pacer:
    """The turns of one upstream and key: budgets, pause, window, and the calls waiting."""

    def __init__(self, name: str = "", *, clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self.clock = clock
        self.requests = Budget()
        self.tokens = Budget()
        self.paused_until = 0.0
        self.ramping = True
        self.ramp_from: float | None = None
        self.window = INITIAL_WINDOW
        self.decreased_at = -math.inf
        self.in_flight = 0
        self.refused = 0  # 429s the upstream answered (rate_limit_exceeded)
        self.last_end = -math.inf
        self._lock = threading.Lock()
        self._queue: deque[_Waiter] = deque()

    # -- the rules, on an explicit clock (tests drive them with a fake one) -------------------

    def current_window(self, now: float) -> float:
        if not self.ramping:
            return self.window
        if self.ramp_from is None or (
            self.in_flight == 0 and now - max(self.last_end, self.ramp_from) > IDLE_RESTART
        ):
            self.ramp_from = now  # a new fan-out after a quiet spell starts slowly again
        doublings = (now - self.ramp_from) / RAMP_INTERVAL
        return min(MAX_WINDOW, INITIAL_WINDOW * 2 ** min(doublings, 16.0))

    def delay(self, tokens: float, now: float, *, paused: bool = True) -> float:
        """Return the seconds before a call of ``tokens`` may be sent (0: now; inf: at a call's end).

        ``paused=False``: the call has waited out the pause itself (a refused call's retry).
        """
        wait = max(
            self.paused_until - now if paused else 0.0,
            self.requests.delay(1, now),
            self.tokens.delay(tokens, now),
        )
        if wait > 0:
            return wait
        if self.in_flight < self.current_window(now):
            return 0.0
        if not self.ramping:
            return math.inf
        # The window doubles every RAMP_INTERVAL: when will it pass in_flight?
        target = math.log2((self.in_flight + 1) / INITIAL_WINDOW) * RAMP_INTERVAL
        return max(1e-3, (self.ramp_from or now) + target - now)

    def begin(self, tokens: float, now: float) -> Turn:
        self.in_flight += 1
        return Turn(self, now, tokens)

    def observe(
        self,
        turn: Turn,
        status: int | None,
        headers: Mapping[str, str] | None,
        code: Any,
        now: float,
    ) -> None:
        """Take in what a reply said: budgets, a pause, and the window (AIMD)."""
        self.in_flight -= 1
        self.last_end = now
        if headers:
            self._budgets(turn, headers)
        if status == 429 and code != "quota_exceeded":
            self.refused += 1
            pause = retry_after_of(headers, time.time())
            if pause:
                self.paused_until = max(self.paused_until, now + pause)
            if turn.sent > self.decreased_at:  # one decrease per round trip
                base = self.current_window(now) if self.ramping else self.window
                self.window = max(1.0, min(base, self.in_flight + 1.0) / 2)
                self.decreased_at = now
            self.ramping = False
        elif status is not None and status < 400 and not self.ramping:
            self.window = min(MAX_WINDOW, self.window + 1.0)

    def _budgets(self, turn: Turn, headers: Mapping[str, str]) -> None:
        for budget, kind, mark in (
            (self.requests, "requests", turn.request_mark),
            (self.tokens, "tokens", turn.token_mark),
        ):
            remaining = _number(headers.get(f"x-ratelimit-remaining-{kind}"))
            if remaining is None:
                continue
            limit = _number(headers.get(f"x-ratelimit-limit-{kind}"))
            reset = duration(headers.get(f"x-ratelimit-reset-{kind}"))
            budget.observe(limit, remaining, reset, mark, turn.sent)

    def pause(self, seconds: float) -> None:
        """Hold every call of this pacer for ``seconds`` (a 429 that named no wait)."""
        with self._lock:
            self.paused_until = max(self.paused_until, self.clock() + seconds)

    # -- waiting for a turn ---------------------------------------------------------------------

    def acquire(self, tokens: float, deadline: float, *, first: bool = False) -> Turn:
        """Wait for a turn (first come, first served; ``first``: ahead of the others).

        ``deadline`` is on the pacer's clock. A turn that cannot come before it raises
        ``rate_limited`` at once, with the wait it would have needed. A ``first`` call (a
        refused one, which waited out the upstream's pause itself) is not held by the pause.
        """
        paused = not first
        with self._lock:
            now = self.clock()
            if not self._queue and self.delay(tokens, now, paused=paused) == 0:
                return self.begin(tokens, now)
            waiter = _Waiter(tokens)
            self._queue.appendleft(waiter) if first else self._queue.append(waiter)
        while True:
            with self._lock:
                now = self.clock()
                head = self._queue[0] is waiter
                wait = self.delay(tokens, now, paused=paused) if head else math.inf
                if wait == 0:
                    self._queue.popleft()
                    turn = self.begin(tokens, now)
                    self._wake()
                    return turn
                if now >= deadline or (wait != math.inf and now + wait > deadline):
                    self._queue.remove(waiter)
                    self._wake()
                    raise self._late(wait, deadline - now)
            waiter.event.wait(max(0.0, min(wait, deadline - now)))
            waiter.event.clear()

    def finish(
        self, turn: Turn, status: int | None, headers: Mapping[str, str] | None, code: Any
    ) -> None:
        with self._lock:
            self.observe(turn, status, headers, code, self.clock())
            self._wake()

    def _wake(self) -> None:
        if self._queue:
            self._queue[0].event.set()

    def _late(self, wait: float, left: float) -> TemporaryFailure:
        need = (
            "a turn after the calls ahead of it or in flight"
            if wait == math.inf
            else f"{wait:.1f} s more"
        )
        return TemporaryFailure(
            f"The upstream's rate limit left no turn for this call before max_duration: it "
            f"would have needed {need} (with {max(left, 0):.1f} s left). Send fewer calls at "
            "once, or raise max_duration.",
            type="rate_limited",
            retry_after=None if wait == math.inf else round(wait, 3),
        )

    def state(self) -> dict[str, float]:
        """Return what /metrics shows: calls waiting and in flight, the window, the budgets."""
        with self._lock:
            now = self.clock()
            return {
                "waiting": len(self._queue),
                "in_flight": self.in_flight,
                "window": self.current_window(now),
                "requests_left": self.requests.available(now),
                "tokens_left": self.tokens.available(now),
                "refused": self.refused,
            }


def token_cost(data: bytes | None, body: Mapping[str, Any] | None) -> float:
    """Estimate a call's tokens: its body's characters, plus the completion it may take."""
    if not data:
        return 0.0
    most = (body or {}).get("max_completion_tokens") or (body or {}).get("max_tokens") or 0
    return len(data) / CHARS_PER_TOKEN + (most if isinstance(most, int) else 0)


# -- one pacer per upstream and key, in a process ------------------------------------------------

_PACERS: OrderedDict[tuple[str, str], Pacer] = OrderedDict()
_LOCK = threading.Lock()


def key_digest(key: str | None) -> str:
    """Return the name of a key in metrics: a digest, never the key."""
    return hashlib.sha256((key or "").encode()).hexdigest()[:12] if key else "none"


def pacer_for(upstream: str, key: str | None) -> Pacer:
    """Return the process's pacer for ``upstream`` (its root URL) and ``key``."""
    name = (upstream, key_digest(key))
    with _LOCK:
        pacer = _PACERS.get(name)
        if pacer is None:
            pacer = _PACERS[name] = Pacer(f"{upstream} {name[1]}")
            _forget_idle()
        else:
            _PACERS.move_to_end(name)
    return pacer


def _forget_idle() -> None:
    extra = len(_PACERS) - MAX_PACERS
    for name in list(_PACERS)[: max(extra, 0) * 2]:
        if extra <= 0:
            return
        pacer = _PACERS[name]
        if pacer.in_flight == 0 and not pacer._queue:
            del _PACERS[name]
            extra -= 1


def forget() -> None:
    """Forget every pacer (tests start each from nothing)."""
    with _LOCK:
        _PACERS.clear()


def pacers() -> list[tuple[str, str, Pacer]]:
    """Return (upstream, key digest, pacer) for every pacer of the process."""
    with _LOCK:
        return [(upstream, digest, p) for (upstream, digest), p in _PACERS.items()]
