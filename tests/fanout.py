"""A workflow's fan-out as the server meets it: N calls at once, each on its own connection.

One event loop, one connection per call (as n8n's items or Power Automate's "Apply to each"
arrive), every call with its own message, so that each answer can be checked to be its own.
Also: process peak memory, from /proc, for the server's processes.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Answer:
    status: int
    body: bytes
    seconds: float
    headers: dict[str, str]

    def json(self):
        return json.loads(self.body)


def request(url: str, path: str, body: dict | None, headers: dict[str, str]) -> bytes:
    parts = urlsplit(url)
    data = json.dumps(body).encode() if body is not None else b""
    method = "POST" if body is not None else "GET"
    head = [f"{method} {path} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


async def _one(host: str, port: int, raw: bytes, timeout: float) -> Answer:
    start = time.monotonic()
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        writer.write(raw)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        lines = head.decode("latin-1").split("\r\n")
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(":") for line in lines[1:] if line)
        }
        m = re.match(r"HTTP/1\.[01] (\d+)", lines[0])
        length = int(headers.get("content-length") or 0)
        body = await asyncio.wait_for(reader.readexactly(length), timeout)
        return Answer(int(m.group(1)) if m else 0, body, time.monotonic() - start, headers)
    finally:
        writer.close()


def fan_out(
    url: str,
    path: str,
    bodies: list[dict | None],
    headers: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> tuple[list[Answer | BaseException], float]:
    """Send every body at once (one connection each); return the answers and the wall time."""
    parts = urlsplit(url)
    raws = [request(url, path, b, headers or {}) for b in bodies]

    async def main() -> list:
        return await asyncio.gather(
            *(_one(parts.hostname, parts.port, raw, timeout) for raw in raws),
            return_exceptions=True,
        )

    start = time.monotonic()
    answers = asyncio.run(main())
    return answers, time.monotonic() - start


def chat_forms(count: int, prefix: str = "item") -> list[dict]:
    """Return ``count`` forms, each asking with its own message."""
    return [{"model": "gpt-4o-mini", "messages": f"{prefix} {i}"} for i in range(count)]


def own_answers(answers: list, count: int, prefix: str = "item") -> list[str]:
    """Return what is wrong with the answers of ``chat_forms`` (none: every call got its own)."""
    wrong = []
    for i, a in enumerate(answers[:count]):
        if isinstance(a, BaseException):
            wrong.append(f"{i}: {type(a).__name__}: {a}")
        elif a.status != 200:
            wrong.append(f"{i}: {a.status} {a.body[:200]!r}")
        elif a.json()["choices"][0]["message"]["content"] != f"echo: {prefix} {i}":
            wrong.append(f"{i}: another call's answer")
    return wrong


def rss_mib(pid: int) -> float:
    """Return the resident memory of a process in MiB (now)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def tree_rss_mib(pid: int) -> float:
    """Return the resident memory of a process and its children (a gunicorn master and workers)."""
    total = rss_mib(pid)
    for child in _children(pid):
        total += tree_rss_mib(child)
    return total


def _children(pid: int) -> list[int]:
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return out


class PeakMemory:
    """Sample a process tree's RSS every ``every`` seconds in a thread; ``peak`` the largest."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.pid, self.every, self.peak = pid, every, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, tree_rss_mib(self.pid))
            except OSError:
                return
            self._stop.wait(self.every)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(5)
        return self.peak
