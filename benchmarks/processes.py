"""The benchmarks' child processes: the stub, the action servers and the queue's workers."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


class Stub:
    """The stub server in its own process, so its work does not share the clients' GIL."""

    def __init__(self, chunks: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "stub.py"), "--chunks", str(chunks)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.strip().isdigit():
            self.close()
            raise SystemExit(f"the stub server did not start (said {line!r})")
        self.base_url = f"http://127.0.0.1:{int(line)}/v1"

    def close(self) -> None:
        """Stop the stub: closing its stdin ends it; kill it if it lingers."""
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Service:
    """A ``python ARGS`` process run from the checkout, its stderr in a file; ready once that
    file shows ``ready`` (a pattern; its match is kept in ``self.ready``)."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], ready: str) -> None:
        self.name = name  # what the benchmark's messages call it
        # stderr (one log line per run) goes to a file: a pipe would need a reader thread in
        # this process, the client's, and slow the client down for the server that logs.
        self.log = tempfile.NamedTemporaryFile("w+", prefix="bench-service-")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, *args],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            found = re.search(ready, Path(self.log.name).read_text())
            if found:
                self.ready = found
                return
            time.sleep(0.05)
        said = Path(self.log.name).read_text()[-2000:]
        self.close()
        raise SystemExit(f"{name} ({args}) did not start:\n{said}")

    def close(self) -> None:
        """Stop the process (SIGTERM; SIGKILL after 30 s)."""
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Server(Service):
    """A server process that prints ``listening on URL``; its workers' CPU time and peak RSS."""

    def __init__(self, name: str, args: list[str], env: dict[str, str]) -> None:
        super().__init__(name, args, env, r"listening on http://([\d.]+):(\d+)")
        self.host, self.port = self.ready.group(1), int(self.ready.group(2))

    def workers(self) -> list[str]:
        pid = self.proc.pid
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()

    def workers_cpu_seconds(self) -> float:
        """Return the CPU time (user + system) the workers have used so far."""
        ticks = 0
        for child in self.workers():
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def workers_peak_rss_kib(self) -> list[int]:
        """Return VmHWM (peak resident set) of each worker process, in KiB."""
        out = []
        for child in self.workers():
            for line in Path(f"/proc/{child}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    out.append(int(line.split()[1]))
        return out


class Worker(Service):
    """A ``python -m connector worker`` process (``concurrency`` runs at once; None: its
    default); ready once it says so."""

    def __init__(self, name: str, env: dict[str, str], concurrency: int | None = 8) -> None:
        args = ["-m", "connector", "worker"]
        if concurrency is not None:
            args += ["--concurrency", str(concurrency)]
        super().__init__(name, args, env, '"worker-ready"')

    def rss_kib(self) -> tuple[int, int]:
        """Return (peak, current) resident memory in KiB."""
        fields = dict(
            line.split(":", 1)
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines()
        )
        return int(fields["VmHWM"].split()[0]), int(fields["VmRSS"].split()[0])
