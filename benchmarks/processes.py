"""The benchmarks' child processes: the stub server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


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
