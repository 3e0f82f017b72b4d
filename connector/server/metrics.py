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

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from connector.server.batches import Batcher

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

    def render(self) -> tuple[str, bytes]:
        """Return (content type, Prometheus text) for every worker of this machine."""
        self.flush()
        if os.environ.get(MULTIPROC_ENV):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return CONTENT_TYPE_LATEST, generate_latest(registry)
        return CONTENT_TYPE_LATEST, generate_latest(self.registry)
