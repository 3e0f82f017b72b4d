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
out. Every timed call and process is checked: the reply's content, a stream's whole text, the
printed output and exit status, the exact body; a wrong result ends any run (exit status 1). A
full run judges the targets (PASS or FAIL; exit status 1 on a miss only with ``--strict``). A
``--quick`` run only reports them, but fails on a ratio 2x worse than its target's limit
(benchmarks/report.py). Usage: ``python benchmarks/bench.py [--quick] [--json FILE] [--strict]``
(needs the ``bench`` extra: ``pip install -e '.[bench]'``).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from dataclasses import asdict
from pathlib import Path

import form_rules  # beside this file, as the modules below
from checks import wrong
from clients import per_run, streaming
from coldstart import FLOOR, Launcher, cold_start
from processes import Stub
from report import Row, guard, judge, machine, save, table

HERE = Path(__file__).resolve().parent
CHUNKS = 20_000


def rule_rows(rules: dict) -> list[Row]:
    """Return the rows of the input rules' cost (form_rules.PAIRS), in microseconds."""
    out = []
    for name, ref in form_rules.PAIRS:
        if rules[name] is None:
            wrong(f"input rules, {name}", "build_body refused it")
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
        passed = bound = None
        if target is not None:
            passed = ratio <= target[1] if target[0] == "<=" else ratio >= target[1]
            bound = guard(*target)
        label = f"{target[0]} {target[1]}x" if target else ""
        out.append(Row(measure, value, unit, reference, ref_value, ratio, label, passed, bound))
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON; return the exit status (judge)."""
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
    line, status = judge(items, args.quick, args.strict, lambda r: f"{r.measure} vs {r.reference}")
    took = time.perf_counter() - started
    print(f"\n{line} ({took:.0f} s)")
    path = args.json or (None if args.quick else str(HERE / "results.json"))
    if path:
        doc = {
            "machine": info,
            "counts": {"runs": runs, "cold": cold_runs, "streams": streams, "chunks": args.chunks},
            "seconds": {"per_run": run, "cold_start": cold, "stream": stream, "rules": rules},
            "rows": [asdict(r) for r in items],
            "passed": all(r.passed is not False for r in items),
        }
        save(path, doc)
    return status


if __name__ == "__main__":
    sys.exit(main())
