"""Measure the embedded local backend: start-up and per-call latency, as `scripts/demo` calls it.

Usage: .venv/bin/python scripts/local_latency.py [CALLS]   (needs `bash scripts/setup --local`)
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time

import connector
from connector.transport import local

# The platform page's example messages, as the manifest declares them.
MESSAGES = json.dumps(
    connector.load_manifest().action("create_chat_completion").param("messages").example
)


def main(calls: int) -> None:
    """Print start-up time, then in-process and CLI per-call latency (median, max)."""
    with local.LocalServer() as server:
        print(f"server start-up: {server.startup_seconds:.2f} s")
        conn = {"provider": "local", "base_url": server.base_url}
        form = {"model": local.MODEL_ALIAS, "messages": MESSAGES, "max_completion_tokens": "64"}
        seconds, tokens = [], []
        for _ in range(calls):
            began = time.perf_counter()
            out = connector.run("create_chat_completion", form, conn)
            seconds.append(time.perf_counter() - began)
            tokens.append(out["usage"]["completion_tokens"])
        report("connector.run()", seconds, tokens)
        env = {"OPENAI_PROVIDER": "local", local.BASE_URL_ENV: server.base_url}
        cli = [sys.executable, "-m", "connector", "run", "create_chat_completion"]
        cli += [f"--set={k}={v}" for k, v in form.items()]
        seconds, tokens = [], []
        for _ in range(calls):
            began = time.perf_counter()
            proc = subprocess.run(cli, env=env, capture_output=True, text=True, check=True)
            seconds.append(time.perf_counter() - began)
            tokens.append(json.loads(proc.stdout)["usage"]["completion_tokens"])
        report("CLI process (server running)", seconds, tokens)


def report(what: str, seconds: list[float], tokens: list[int]) -> None:
    """Print the median and the slowest call, and the median reply length."""
    print(
        f"{what}: median {statistics.median(seconds) * 1000:.0f} ms,"
        f" max {max(seconds) * 1000:.0f} ms over {len(seconds)} calls,"
        f" median {statistics.median(tokens):.0f} completion tokens"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
