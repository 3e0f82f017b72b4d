"""The benchmarks' report: a table row, the machine, the Markdown table and the last line.

How a run is judged (``judge``): a full run judges each target, PASS or FAIL (exit status 1
on a miss only with ``--strict``). A ``--quick`` run has too few samples on a shared machine to
judge a target, so it only reports a miss; but a ratio beyond its row's guard, ``MARGIN`` (2)
times worse than the target's limit (``<= 1.2x`` fails beyond 2.4x, ``>= 1.5x`` below 0.75x),
is a gross regression that noise does not explain, and fails the quick run (exit status 1). A
row may set its own guard where its target is no ratio (server_bench.py's p50: at most 2x).
Wrong results fail every run, before any judging (benchmarks/checks.py).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

MARGIN = 2.0  # a --quick run fails a ratio this many times worse than its target's limit


@dataclass
class Row:
    """One line of the table: a measurement, its reference, and the target if there is one."""

    measure: str
    value: float
    unit: str
    reference: str
    reference_value: float
    ratio: float
    target: str = ""
    passed: bool | None = None
    guard: tuple[str, float] | None = None  # (<= or >=, bound): --quick fails beyond it

    def far(self) -> bool:
        """Return whether the ratio is beyond the row's guard (a gross regression)."""
        if self.guard is None:
            return False
        op, bound = self.guard
        return self.ratio > bound if op == "<=" else self.ratio < bound


def guard(op: str, limit: float) -> tuple[str, float]:
    """Return the guard of a ratio target ``op limit``: MARGIN times worse than the limit."""
    return op, limit * MARGIN if op == "<=" else limit / MARGIN


def machine() -> dict[str, str]:
    """Return what the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    info = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "os": platform.platform(),
        "python": platform.python_version(),
    }
    for name in ("openai-chat-connector", "openai", "httpx", "httpx2", "requests", "pydantic"):
        # Only what is installed: the SDK's HTTP client is httpx or, in newer releases, httpx2.
        with contextlib.suppress(metadata.PackageNotFoundError):
            info[name] = metadata.version(name)
    return info


def table(items: list[Row], quick: bool = False) -> str:
    """Return the rows as a Markdown table (``quick``: a smoke run's verdicts and guards)."""
    lines = [
        "| measure | value | reference | ratio | target |",
        "| --- | ---: | --- | ---: | --- |",
    ]
    verdicts = (" met here", " missed here") if quick else (" PASS", " FAIL")
    for r in items:
        verdict = "" if r.passed is None else verdicts[0 if r.passed else 1]
        if quick and r.guard:
            verdict += (
                f" (quick guard: {r.guard[0]} {r.guard[1]:g}x{'; FAILED' if r.far() else ''})"
            )
        lines.append(
            f"| {r.measure} | {_num(r.value)} {r.unit} | {r.reference}: {_num(r.reference_value)}"
            f" {r.unit} | {r.ratio:.2f}x | {r.target}{verdict} |"
        )
    return "\n".join(lines)


def judge(
    items: list[Row], quick: bool, strict: bool, name: Callable[[Row], str]
) -> tuple[str, int]:
    """Return the run's last line and its exit status (see the module's docstring)."""
    missed = [name(r) for r in items if r.passed is False]
    if not quick:
        line = f"FAIL: {'; '.join(missed)}" if missed else "PASS: every target met"
        return line, 1 if missed and strict else 0
    far = [
        f"{name(r)}: {r.ratio:.2f}x (guard: {r.guard[0]} {r.guard[1]:g}x)" for r in items if r.far()
    ]
    if far:
        return (
            f"QUICK smoke run FAILED, a gross regression ({MARGIN:g}x worse than a target's"
            f" limit): {'; '.join(far)}",
            1,
        )
    shown = f"; missed in these few samples: {'; '.join(missed)}" if missed else ""
    line = f"QUICK smoke run: results right, no ratio {MARGIN:g}x worse than its target's limit"
    return f"{line} (run without --quick to judge the targets){shown}", 0


def save(path: str, doc: dict) -> None:
    """Write the run's figures as JSON to ``path`` and say so."""
    Path(path).write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {path}")


def _num(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"
