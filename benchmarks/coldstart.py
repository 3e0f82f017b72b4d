"""Cold start and peak RSS of whole processes (bench.py parts 2 and 4).

``python -m connector run`` against a minimal SDK script and a bare ``requests`` script making
the same call, and its ``--dry-run`` against ``python -c "import requests, json"``. Every
process must exit 0 and print what it must (``check``), or the run ends.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from checks import expect, printed_content, short, wrong
from clients import EXPECTED, KEY, MODEL, TEXT

ROOT = Path(__file__).resolve().parent.parent

# The same call as the CLI run below, the way the SDK's quickstart makes it.
SDK_SCRIPT = f"""
from openai import OpenAI
client = OpenAI()
completion = client.chat.completions.create(
    model={MODEL!r}, messages=[{{"role": "user", "content": {TEXT!r}}}]
)
print(completion.model_dump_json(indent=2))
"""
# The same call with bare requests: the least any Python client of the API does in a process.
REQUESTS_SCRIPT = f"""
import json, os, requests
reply = requests.post(
    os.environ["OPENAI_BASE_URL"] + "/chat/completions",
    json={{"model": {MODEL!r}, "messages": [{{"role": "user", "content": {TEXT!r}}}]}},
    headers={{"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"]}},
)
print(json.dumps(reply.json(), indent=2))
"""
CLI_ARGS = ["-m", "connector", "run", "create_chat_completion"]
CLI_ARGS += ["--set", f"model={MODEL}", "--set", f"messages={TEXT}"]


# Processes are started by this small launcher, not by the benchmark: a child's peak RSS counts
# the memory of the process it was forked from, and the benchmark holds the SDK and the connector.
LAUNCHER = """
import json, os, subprocess, sys, tempfile, time
for line in sys.stdin:
    job = json.loads(line)
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(job["args"], env=job["env"], cwd=job["cwd"],
                                stdout=subprocess.PIPE, stderr=err)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: Popen must not wait
        err.seek(0)
        done = {"seconds": seconds, "rss_kib": usage.ru_maxrss, "rc": proc.returncode,
                "out": out.decode(errors="replace")[-10000:],
                "err": err.read().decode(errors="replace")[-3000:]}
    sys.stdout.write(json.dumps(done) + "\\n")
    sys.stdout.flush()
"""


class Launcher:
    """A small process that starts the measured processes and reports time and peak RSS."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(self, name: str, args: list[str], env: dict[str, str]) -> tuple[float, int]:
        """Run one Python process, check what it printed; return (wall s, peak RSS in KiB)."""
        job = {"args": [sys.executable, *args], "env": env, "cwd": str(ROOT)}
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        done = json.loads(self.proc.stdout.readline())
        check(name, done["rc"], done["out"], done["err"])
        return done["seconds"], done["rss_kib"]  # ru_maxrss is in KiB on Linux

    def close(self) -> None:
        """End the launcher (it stops when its stdin closes)."""
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


# What the dry run must print as the request's body: the form's model and message, nothing more.
DRY_BODY = {"model": MODEL, "messages": [{"role": "user", "content": TEXT}]}
# The processes that make the call print a chat completion; its content must be the stub's.
REPLIES = ("connector", "connector_first", "sdk", "requests_script")


def check(name: str, rc: int, out: str, err: str) -> None:
    """End the run unless process ``name`` exited 0 and printed what it must (whole stdout)."""
    path = f"cold start, {name}"
    if rc != 0:
        wrong(path, f"exited with {rc}: {short(err[-1000:], 1000)}")
    if name.startswith(("connector", "dry_run")) and (KEY in out or KEY in err):
        wrong(path, "printed the API key")
    if name in REPLIES:
        expect(path, printed_content(path, out), EXPECTED)
    elif name == "python":
        expect(path, out, EXPECTED + "\n")
    elif name == "dry_run":
        try:
            body = json.loads(out)["body"]
        except (ValueError, KeyError, TypeError):
            wrong(path, f"did not print a dry run's request: {short(out)}")
        expect(path, body, DRY_BODY)
    else:  # the floor only imports
        expect(path, out, "")


FLOOR = '`python -c "import requests, json"`'  # issue 13: what any client of the API imports
# Cold starts measured in pairs: (measure, its reference).
PAIRS = (("connector", "requests_script"), ("dry_run", "requests_floor"))


def cold_start(launcher: Launcher, base_url: str, runs: int) -> dict[str, Any]:
    """Return median wall time and peak RSS of the CLI, the SDK script and bare Python."""
    import compileall

    # Bytecode as after `pip install` (the SDK's is there): with PYTHONDONTWRITEBYTECODE set,
    # an edited source would otherwise be compiled again by every process.
    for folder in ("connector", "actions"):
        compileall.compile_dir(ROOT / folder, quiet=1)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CONNECTOR_"))}
    env.update(OPENAI_API_KEY=KEY, OPENAI_BASE_URL=base_url)
    commands = {
        "connector": CLI_ARGS,
        "sdk": ["-c", SDK_SCRIPT],
        "requests_script": ["-c", REQUESTS_SCRIPT],
        "python": ["-c", f"print({EXPECTED!r})"],
        # Issue 13's floor: a dry run (nothing sent) against importing what any client needs.
        "dry_run": [*CLI_ARGS, "--dry-run"],
        "requests_floor": ["-c", "import requests, json"],
    }
    for name, args in commands.items():  # warm the OS file cache and the manifest cache
        launcher.run(name, args, env)
    # A measure and its reference run back to back (in either order), and their ratio is the
    # median of the pairs' ratios: the load of other processes, which drifts, cancels out.
    units = [(m, r) for m, r in PAIRS] + [("sdk",), ("python",), ("connector_first",)]
    results: dict[str, list[tuple[float, int]]] = {n: [] for unit in units for n in unit}
    order = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="connector-bench-") as uncached:
        for _ in range(runs):
            order.shuffle(units)
            for unit in units:
                for name in order.sample(unit, len(unit)):
                    if name == "connector_first":  # a new machine: the manifest cache is empty
                        first = {**env, "CONNECTOR_CACHE_DIR": tempfile.mkdtemp(dir=uncached)}
                        results[name].append(launcher.run(name, CLI_ARGS, first))
                    else:
                        results[name].append(launcher.run(name, commands[name], env))
    out: dict[str, Any] = {
        name: {
            "seconds": statistics.median(t for t, _ in values),
            "rss_kib": statistics.median(r for _, r in values),
        }
        for name, values in results.items()
    }
    out["paired"] = {
        f"{m}/{r}": statistics.median(
            x[0] / y[0] for x, y in zip(results[m], results[r], strict=True)
        )
        for m, r in PAIRS
    }
    return out
