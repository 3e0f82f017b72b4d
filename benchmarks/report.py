"""The benchmarks' report: a table row, the machine, the Markdown table and the last line."""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path


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
    """Return the rows as a Markdown table (``quick``: a smoke run's verdicts, not a judgement)."""
    lines = [
        "| measure | value | reference | ratio | target |",
        "| --- | ---: | --- | ---: | --- |",
    ]
    verdicts = (" met here", " missed here") if quick else (" PASS", " FAIL")
    for r in items:
        verdict = "" if r.passed is None else verdicts[0 if r.passed else 1]
        lines.append(
            f"| {r.measure} | {_num(r.value)} {r.unit} | {r.reference}: {_num(r.reference_value)}"
            f" {r.unit} | {r.ratio:.2f}x | {r.target}{verdict} |"
        )
    return "\n".join(lines)


def verdict(missed: list[str], quick: bool) -> str:
    """Return the run's last line: PASS or FAIL, or for --quick what its few samples showed."""
    if quick:  # a smoke run: too few samples on a shared machine to pass or fail a target
        shown = f"; missed in these few samples: {'; '.join(missed)}" if missed else ""
        return f"QUICK smoke run (run without --quick to judge the targets){shown}"
    return f"FAIL: {'; '.join(missed)}" if missed else "PASS: every target met"


def _num(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"
