"""Prometheus metrics of the action server (prometheus_client).

Under several gunicorn workers, ``PROMETHEUS_MULTIPROC_DIR`` (set by ``serving.py``) makes
every worker write its samples to that folder, and ``/metrics`` on any worker reports them all.

A finished run is only queued by the request thread (``batches.Batcher``); one thread of the
worker adds the queued runs to the metrics every ``FLUSH_SECONDS`` (and ``render`` adds them
first). Every update of a prometheus_client value takes a lock; on a busy worker, where request
threads hand the GIL to each other all the time, those locks cost about ten times what they
cost in a quiet process.
"""

from __future__ import annotations

import math
import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from connector.server.batches import Batcher
from connector.transport import pacing

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
FLUSH_SECONDS = 0.1  # how stale another worker's runs may be in /metrics
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)


class Metrics:
    """Runs by action and outcome, their latency, upstream attempts, and 503s for a full worker."""

    def __init__(self) -> None:
        # Each app has a registry of its own, so that tests can create several apps.
        self.registry = CollectorRegistry()
        self.runs = Counter(
            "connector_runs",
            "Runs by action and outcome (ok, or the error type).",
            ["action", "outcome"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "connector_run_seconds",
            "Duration of runs, by action.",
            ["action"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.attempts = Counter(
            "connector_upstream_attempts",
            "HTTP requests sent to the API, retries included, by action.",
            ["action"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "connector_overloaded",
            "Requests answered 503 because every run slot of the worker was busy.",
            registry=self.registry,
        )
        self.upstream = _upstream_gauges(self.registry)
        self._children: dict[tuple[str, str], tuple] = {}
        self._runs = Batcher(self._add, FLUSH_SECONDS, "connector-metrics")

    def observe(self, action: str, outcome: str, seconds: float, attempts: int) -> None:
        """Count one finished run (in the metrics within ``FLUSH_SECONDS``)."""
        self._runs.add((action, outcome, seconds, attempts))

    def flush(self) -> None:
        """Add the queued runs to the metrics."""
        self._runs.flush()

    def close(self) -> None:
        """Stop the flushing thread, after adding what is queued (a worker's exit)."""
        self._runs.close()

    def _add(self, runs: list[tuple[str, str, float, int]]) -> None:
        for action, outcome, seconds, attempts in runs:
            children = self._children.get((action, outcome))
            if children is None:  # labels() costs more than the update: look each pair up once
                children = self._children[action, outcome] = (
                    self.runs.labels(action, outcome),
                    self.seconds.labels(action),
                    self.attempts.labels(action),
                )
            children[0].inc()
            children[1].observe(seconds)
            if attempts:
                children[2].inc(attempts)

    def pacing(self) -> None:
        """Set the upstream gauges from this worker's pacers (one per upstream and key)."""
        for upstream, digest, pacer in pacing.pacers():
            for name, value in pacer.state().items():
                if name in self.upstream and math.isfinite(value):
                    self.upstream[name].labels(upstream, digest).set(value)

    def render(self) -> tuple[str, bytes]:
        """Return (content type, Prometheus text) for every worker of this machine."""
        self.flush()
        self.pacing()
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return CONTENT_TYPE_LATEST, generate_latest(registry)
        return CONTENT_TYPE_LATEST, generate_latest(self.registry)


# The pacers' state (transport/pacing.py), by upstream and key digest (never the key), as of
# the last scrape of each worker: waiting and in-flight calls add up over the workers.
_UPSTREAM = {
    "waiting": ("connector_upstream_calls_waiting", "Calls waiting for a turn.", "livesum"),
    "in_flight": ("connector_upstream_calls_in_flight", "Calls sent, not yet answered.", "livesum"),
    "window": ("connector_upstream_window", "Calls the pacer lets be in flight.", "liveall"),
    "requests_left": (
        "connector_upstream_requests_left",
        "Requests left in the upstream's budget, as its headers and the calls since tell.",
        "liveall",
    ),
    "tokens_left": (
        "connector_upstream_tokens_left",
        "Tokens left in the upstream's budget, as its headers and the calls since tell.",
        "liveall",
    ),
    "refused": (
        "connector_upstream_refused",
        "429s the upstream answered (rate limit).",
        "livesum",
    ),
}


def _upstream_gauges(registry: CollectorRegistry) -> dict[str, Gauge]:
    return {
        key: Gauge(name, doc, ["upstream", "key"], registry=registry, multiprocess_mode=mode)
        for key, (name, doc, mode) in _UPSTREAM.items()
    }
