"""Benchmark the connector against bare ``requests`` and the official ``openai`` SDK.

One run starts the stub server (benchmarks/stub.py) on loopback and measures, side by side:

1. per-run cost: ``connector.run()`` vs ``requests.Session.post`` of a prebuilt body vs the
   SDK's ``chat.completions.create``; same stub, same request, interleaved; median;
2. cold start: a ``python -m connector run`` process vs a minimal SDK script (interleaved);
3. streaming: aggregating a 20,000-chunk stream, connector vs iterating the SDK's stream;
4. peak RSS of those processes;
5. the input rules (benchmarks/form_rules.py): ``build_body`` on Messages text, valid JSON vs
   ``json.loads`` of it, and a host's unescaped insertion (repaired) vs the valid JSON.

Targets are ratios against references measured in the same run, so the machine's speed cancels
out. Usage: ``python benchmarks/bench.py [--quick] [--json FILE] [--strict]`` (needs the
``bench`` extra: ``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import form_rules  # beside this file

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
KEY = "sk-bench-not-a-real-key"
MODEL = "gpt-4o-mini"
TEXT = "Hello!"
EXPECTED = "Hello! How can I assist you today?"
CHUNKS = 20_000

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


# -- the stub ----------------------------------------------------------------------------------


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


# -- 1. per-run cost ---------------------------------------------------------------------------


def per_run(base_url: str, runs: int, warmup: int) -> dict[str, float]:
    """Return the median seconds per call of each client, calls interleaved."""
    import openai
    import requests

    import connector

    connection = {"api_key": KEY, "base_url": base_url}
    form = {"model": MODEL, "messages": TEXT}
    # The bare client posts exactly the bytes the connector sends.
    body = json.dumps(connector.prepare("create_chat_completion", form, connection)["body"])
    data = body.encode()
    session = requests.Session()
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    url = base_url + "/chat/completions"
    client = openai.OpenAI(api_key=KEY, base_url=base_url)
    messages = [{"role": "user", "content": TEXT}]

    def run_connector() -> str:
        out = connector.run("create_chat_completion", form, connection)
        return out["choices"][0]["message"]["content"]

    def run_requests() -> str:
        resp = session.post(url, data=data, headers=headers, timeout=30)
        resp.raise_for_status()
        return resp.json()["choices"][0]["message"]["content"]

    def run_sdk() -> str:
        out = client.chat.completions.create(model=MODEL, messages=messages)
        return out.choices[0].message.content

    calls = {"connector": run_connector, "requests": run_requests, "sdk": run_sdk}
    for name, call in calls.items():
        got = call()
        if got != EXPECTED:
            raise SystemExit(f"{name} returned {got!r}, not the stub's reply")
    return _interleaved(calls, runs, warmup)


def _interleaved(calls: dict, runs: int, warmup: int) -> dict[str, float]:
    """Time each call ``runs`` times, in a new random order every round; return the medians."""
    # Random rather than rotated: in a rotation each client mostly follows the same other one,
    # and what ran just before (its cache misses, its garbage) is charged to the next call.
    order = random.Random(7)
    names = list(calls)
    times: dict[str, list[float]] = {name: [] for name in names}
    clock = time.perf_counter
    for i in range(warmup + runs):
        order.shuffle(names)
        for name in names:
            start = clock()
            calls[name]()
            elapsed = clock() - start
            if i >= warmup:
                times[name].append(elapsed)
    return {name: statistics.median(values) for name, values in times.items()}


# -- 2. cold start and 4. peak RSS -------------------------------------------------------------

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
                "out": out.decode(errors="replace")[-3000:],
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

    def run(
        self, args: list[str], env: dict[str, str], expect: str | None = EXPECTED
    ) -> tuple[float, int]:
        """Run one Python process; return (wall seconds, peak RSS in KiB)."""
        job = {"args": [sys.executable, *args], "env": env, "cwd": str(ROOT)}
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        done = json.loads(self.proc.stdout.readline())
        if done["rc"] != 0:
            raise SystemExit(f"{args[:3]} failed ({done['rc']}): {done['err']}")
        if expect is not None and expect not in done["out"]:
            raise SystemExit(f"{args[:3]} did not print the stub's reply: {done['out'][:300]}")
        return done["seconds"], done["rss_kib"]  # ru_maxrss is in KiB on Linux

    def close(self) -> None:
        """End the launcher (it stops when its stdin closes)."""
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


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
    # What each prints: the stub's reply, or (the dry run, the floor) something else.
    expects = {
        name: None if name in ("dry_run", "requests_floor") else EXPECTED for name in commands
    }
    for name, args in commands.items():  # warm the OS file cache and the manifest cache
        launcher.run(args, env, expects[name])
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
                        results[name].append(launcher.run(CLI_ARGS, first))
                    else:
                        results[name].append(launcher.run(commands[name], env, expects[name]))
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


# -- 3. streaming ------------------------------------------------------------------------------


def streaming(base_url: str, runs: int, chunks: int) -> dict[str, float]:
    """Return the median seconds to read a whole stream of ``chunks`` chunks, per client."""
    import openai
    import requests

    import connector

    connection = {"api_key": KEY, "base_url": base_url}
    form = {"model": MODEL, "messages": TEXT, "stream": "true"}
    client = openai.OpenAI(api_key=KEY, base_url=base_url)
    messages = [{"role": "user", "content": TEXT}]
    session = requests.Session()
    body = json.dumps({"model": MODEL, "messages": messages, "stream": True}).encode()
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    def run_connector() -> str:
        out = connector.run("create_chat_completion", form, connection)
        return out["choices"][0]["message"]["content"]

    def run_sdk() -> str:
        parts = []
        for chunk in client.chat.completions.create(model=MODEL, messages=messages, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
        return "".join(parts)

    def run_requests() -> str:
        # A floor, not a target: read the SSE lines and parse each chunk, nothing more.
        parts = []
        with session.post(
            base_url + "/chat/completions", data=body, headers=headers, stream=True, timeout=60
        ) as resp:
            for line in resp.iter_lines():
                if line.startswith(b"data: ") and line != b"data: [DONE]":
                    chunk = json.loads(line[6:])
                    if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                        parts.append(chunk["choices"][0]["delta"]["content"])
        return "".join(parts)

    calls = {"connector": run_connector, "sdk": run_sdk, "requests": run_requests}
    texts = {name: call() for name, call in calls.items()}
    if len(set(texts.values())) != 1 or len(texts["connector"]) < chunks:
        raise SystemExit("the clients aggregated different texts from the same stream")
    return _interleaved(calls, runs, 0)


# -- report ------------------------------------------------------------------------------------


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


def rule_rows(rules: dict) -> list[Row]:
    """Return the rows of the input rules' cost (form_rules.PAIRS), in microseconds."""
    out = []
    for name, ref in form_rules.PAIRS:
        value, base = rules[name] * 1e6, rules[ref] * 1e6
        out.append(Row(f"build_body, {name}", value, "us", ref, base, value / base))
    return out


def rows(run: dict, cold: dict, stream: dict, chunks: int) -> list[Row]:
    """Return the table rows, with the targets of issues 7 and 13."""
    us, ms, mib = 1e6, 1e3, 1 / 1024
    sdk_ms, python_mib = cold["sdk"]["seconds"] * ms, cold["python"]["rss_kib"] * mib
    rate = {name: chunks / seconds for name, seconds in stream.items()}
    per_run, streamed = "per run: connector.run()", f"stream {chunks:,} chunks: connector"
    specs = [  # measure, unit, value, reference, its value, target: (<= or >=, ratio) or None
        (per_run, "us", run["connector"] * us, "bare requests", run["requests"] * us, ("<=", 1.2)),
        (per_run, "us", run["connector"] * us, "openai SDK", run["sdk"] * us, ("<=", 0.8)),
        ("cold start: CLI process", "ms", cold["connector"]["seconds"] * ms, "SDK script process",
         sdk_ms, ("<=", 0.5)),
        ("cold start: CLI process", "ms", cold["connector"]["seconds"] * ms,
         "bare requests script process", cold["requests_script"]["seconds"] * ms, None),
        ("cold start: CLI, empty manifest cache", "ms", cold["connector_first"]["seconds"] * ms,
         "SDK script process", sdk_ms, None),
        ("cold start: bare `python -c print()`", "ms", cold["python"]["seconds"] * ms,
         "SDK script process", sdk_ms, None),
        ("cold start: CLI --dry-run", "ms", cold["dry_run"]["seconds"] * ms,
         FLOOR, cold["requests_floor"]["seconds"] * ms,
         ("<=", 1.3)),
        (streamed, "chunks/s", rate["connector"], "openai SDK stream", rate["sdk"], (">=", 1.5)),
        (streamed, "chunks/s", rate["connector"], "bare requests + json.loads", rate["requests"],
         None),
        ("peak RSS: CLI process", "MiB", cold["connector"]["rss_kib"] * mib, "bare python",
         python_mib, None),
        ("peak RSS: SDK script", "MiB", cold["sdk"]["rss_kib"] * mib, "bare python", python_mib,
         None),
    ]  # fmt: skip
    paired = {  # rows whose ratio is the median of back-to-back pairs (see cold_start)
        ("cold start: CLI process", "bare requests script process"): "connector/requests_script",
        ("cold start: CLI --dry-run", FLOOR): "dry_run/requests_floor",
    }
    out = []
    for measure, unit, value, reference, ref_value, target in specs:
        pair = paired.get((measure, reference))
        ratio = cold["paired"][pair] if pair else value / ref_value
        passed = None
        if target is not None:
            passed = ratio <= target[1] if target[0] == "<=" else ratio >= target[1]
        label = f"{target[0]} {target[1]}x" if target else ""
        out.append(Row(measure, value, unit, reference, ref_value, ratio, label, passed))
    return out


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


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON; return 1 on a miss with --strict."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small counts, for a CI smoke run")
    p.add_argument("--runs", type=int, help="per-run calls per client (default 1000; quick 200)")
    p.add_argument("--cold", type=int, help="cold-start processes per kind (default 25; quick 2)")
    p.add_argument("--streams", type=int, help="streams per client (default 5; quick 1)")
    p.add_argument("--chunks", type=int, default=CHUNKS, help="chunks per stream (20,000)")
    p.add_argument(
        "--json", metavar="FILE", help="results file (default: results.json here, full runs only)"
    )
    p.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = p.parse_args(argv)
    runs = args.runs or (200 if args.quick else 1000)
    cold_runs = args.cold or (2 if args.quick else 25)
    streams = args.streams or (1 if args.quick else 5)
    rule_calls = 200 if args.quick else 2000

    for name in ("openai", "connector"):
        if importlib.util.find_spec(name) is None:
            raise SystemExit(f"{name} is not installed: pip install -e '.[bench]'")
    launcher = Launcher()  # first, while this process is small
    info = machine()
    print(" | ".join(f"{k}: {v}" for k, v in info.items()), flush=True)
    started = time.perf_counter()
    stub = Stub(args.chunks)
    try:
        print(f"1/4 per-run cost: {runs} interleaved calls per client ...", flush=True)
        run = per_run(stub.base_url, runs, warmup=max(10, runs // 20))
        print(f"2/4 cold start and peak RSS: {cold_runs} processes per kind ...", flush=True)
        cold = cold_start(launcher, stub.base_url, cold_runs)
        print(f"3/4 streaming {args.chunks:,} chunks: {streams} streams per client ...", flush=True)
        stream = streaming(stub.base_url, streams, args.chunks)
        print(f"4/4 input rules: {rule_calls} interleaved rounds of build_body ...", flush=True)
        rules = form_rules.measure(rule_calls)
    finally:
        launcher.close()
        stub.close()
    items = rows(run, cold, stream, args.chunks) + rule_rows(rules)
    print()
    print(table(items, args.quick))
    missed = [r.measure + " vs " + r.reference for r in items if r.passed is False]
    took = time.perf_counter() - started
    print(f"\n{verdict(missed, args.quick)} ({took:.0f} s)")
    path = args.json or (None if args.quick else str(HERE / "results.json"))
    if path:
        doc = {
            "machine": info,
            "counts": {"runs": runs, "cold": cold_runs, "streams": streams, "chunks": args.chunks},
            "seconds": {"per_run": run, "cold_start": cold, "stream": stream, "rules": rules},
            "rows": [asdict(r) for r in items],
            "passed": not missed,
        }
        Path(path).write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {path}")
    return 1 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
