"""Benchmark queued async runs (scale-out mode) against the sync route, on one machine.

One run starts a real PostgreSQL (tests/pgcluster.py), the stub upstream (benchmarks/stub.py),
two action servers in scale-out mode (``serve --runs-url``, one gunicorn worker each) and two
``python -m connector worker`` processes (8 runs at once each). The same client, 16 threads of
keep-alive connections spread over both servers, then:

- sync: sends ``POST /actions/.../run`` (the reference: the servers run the call themselves);
- async: sends ``POST /actions/.../runs`` (202 once durable) and waits for every run to be done.

Async throughput is runs from the first enqueue to the last completion (the database's own
timestamps); enqueue-to-done is each run's ``updated - created``, its p50 and p99. The ratios
are against the sync route's runs per second and latency in the same run; rounds alternate.
Then each worker's RSS (peak and now). Usage: ``python benchmarks/runs_bench.py [--quick]``.

Every run is checked, in every mode: each ``/run`` answers 200 with the stub's completion; each
``/runs`` answers 202 with an id no other POST got; each such run is one row of its own (the
table grows by exactly the runs posted), done with status 200, claimed once (``attempts`` 1),
its result the stub's completion. A wrong one ends the run (exit status 1), naming the route.
There is no target here, so no ratio guard either: the ratios are only reported.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from checks import expect, short, wrong
from processes import Server, Stub, Worker
from report import machine
from stub import COMPLETION

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
from pgcluster import PgCluster  # noqa: E402  (the tests' cluster: initdb on a free port)

TOKEN = "bench-runs-token"
KEY = "sk-bench-not-a-real-key"
FORM = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello!"}]}
CLIENTS = 16
ACTION = "/actions/create_chat_completion"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _answer(path: str, r, status: int) -> dict:
    """Return the document of a POST's answer; end the run unless it is right for ``path``."""
    if r.status_code != status:
        wrong(f"POST {path}", f"HTTP {r.status_code}, expected {status}: {short(r.text)}")
    doc = r.json()
    if status == 200:
        expect(f"POST {path}", doc, COMPLETION)
    elif not isinstance(doc.get("id"), str):
        wrong(f"POST {path}", f"no run id in {short(doc)}")
    return doc


def _calls(
    urls: list[str], path: str, total: int, status: int
) -> tuple[float, list[float], list[dict]]:
    """POST ``total`` forms from CLIENTS threads over ``urls``; return (wall, latencies, docs).

    Every answer must have ``status`` and its document (_answer), or the run ends.
    """
    import requests

    sessions = [requests.Session() for _ in range(CLIENTS)]
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def one(i: int) -> tuple[float, dict]:
        session = sessions[i % CLIENTS]
        start = time.perf_counter()
        r = session.post(urls[i % len(urls)] + path, json=FORM, headers=headers, timeout=60)
        took = time.perf_counter() - start
        return took, _answer(path, r, status)

    start = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(one, range(total)))
    wall = time.perf_counter() - start
    for s in sessions:
        s.close()
    return wall, [t for t, _ in results], [d for _, d in results]


def sync_round(urls: list[str], total: int) -> dict[str, float]:
    wall, latencies, _ = _calls(urls, f"{ACTION}/run", total, 200)
    return {
        "runs_per_s": total / wall,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
    }


def async_round(urls: list[str], db_url: str, total: int) -> dict[str, float]:
    import psycopg

    with psycopg.connect(db_url, autocommit=True) as conn:
        before = _count(conn)
    wall, posts, docs = _calls(urls, f"{ACTION}/runs", total, 202)
    ids = [d["id"] for d in docs]
    if len(set(ids)) != total:
        wrong(f"POST {ACTION}/runs", f"{total} runs posted, {len(set(ids))} distinct ids")
    with psycopg.connect(db_url, autocommit=True) as conn:
        query = "SELECT count(*) FROM connector_runs WHERE id = ANY(%s)"
        stored = conn.execute(query, (ids,)).fetchone()[0]
        if stored != total:  # a 202 says the run is stored
            wrong(f"POST {ACTION}/runs", f"{total} runs accepted, {stored} of them stored (lost)")
        deadline = time.monotonic() + 300
        query += " AND state = 'done'"
        while conn.execute(query, (ids,)).fetchone()[0] < total:
            if time.monotonic() > deadline:
                wrong(f"async runs ({ACTION}/runs)", "not all done within 300 s")
            time.sleep(0.05)
        rows = conn.execute(
            "SELECT extract(epoch FROM created), extract(epoch FROM updated)"
            " FROM connector_runs WHERE id = ANY(%s)",
            (ids,),
        ).fetchall()
        _check_runs(conn, ids)
        if _count(conn) != before + total:
            wrong(f"POST {ACTION}/runs", f"{total} runs posted, {_count(conn) - before} stored")
    spans = [float(u - c) for c, u in rows]
    first, last = min(float(r[0]) for r in rows), max(float(r[1]) for r in rows)
    return {
        "runs_per_s": total / (last - first),
        "p50_ms": statistics.median(spans) * 1000,
        "p99_ms": _percentile(spans, 0.99) * 1000,
        "post_p50_ms": statistics.median(posts) * 1000,
        "enqueue_per_s": total / wall,
    }


def _count(conn) -> int:
    return conn.execute("SELECT count(*) FROM connector_runs").fetchone()[0]


def _check_runs(conn, ids: list[str]) -> None:
    """End the run unless each id is one run, done once with status 200 and the stub's reply."""
    path = f"async runs ({ACTION}/runs)"
    rows = conn.execute(
        "SELECT id, state, status, attempts, result FROM connector_runs WHERE id = ANY(%s)",
        (ids,),
    ).fetchall()
    if len(rows) != len(ids):
        wrong(path, f"{len(ids)} runs accepted, {len(rows)} found (lost)")
    for run_id, state, status, attempts, result in rows:
        if (state, status, attempts) != ("done", 200, 1):
            wrong(path, f"run {run_id}: {state}, status {status}, claimed {attempts} times")
        expect(f"{path}, run {run_id}", result, COMPLETION)


def idle_round(urls: list[str], db_url: str, total: int) -> dict[str, float]:
    """One run at a time, each waited for: the queue's own latency, no backlog."""
    import psycopg
    import requests

    headers = {"Authorization": f"Bearer {TOKEN}"}
    spans, syncs = [], []
    with requests.Session() as session, psycopg.connect(db_url, autocommit=True) as conn:
        for i in range(total):
            start = time.perf_counter()
            r = session.post(urls[i % 2] + f"{ACTION}/run", json=FORM, headers=headers, timeout=60)
            syncs.append(time.perf_counter() - start)
            _answer(f"{ACTION}/run", r, 200)
            r = session.post(urls[i % 2] + f"{ACTION}/runs", json=FORM, headers=headers, timeout=60)
            run_id = _answer(f"{ACTION}/runs", r, 202)["id"]
            query = "SELECT extract(epoch FROM updated - created) FROM connector_runs"
            query += " WHERE id = %s AND state = 'done'"
            while (row := conn.execute(query, (run_id,)).fetchone()) is None:
                time.sleep(0.002)
            spans.append(float(row[0]))
            _check_runs(conn, [run_id])
    return {
        "p50_ms": statistics.median(spans) * 1000,
        "sync_p50_ms": statistics.median(syncs) * 1000,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="one short round each, for CI")
    p.add_argument("--runs", type=int, help="runs per round (default 1000; quick 200)")
    p.add_argument("--rounds", type=int, help="rounds of each (default 3; quick 1)")
    p.add_argument("--json", help="write the figures to this file")
    args = p.parse_args(argv)
    total = args.runs or (200 if args.quick else 1000)
    rounds = args.rounds or (1 if args.quick else 3)

    cluster = PgCluster().start()
    stub = Stub(chunks=0)
    parts: list = []
    try:
        db_url = cluster.database()
        env = {
            "OPENAI_API_KEY": KEY,
            "OPENAI_BASE_URL": stub.base_url,
            "CONNECTOR_RUNS_URL": db_url,
            "CONNECTOR_SERVER_TOKENS": TOKEN,
            "PROMETHEUS_MULTIPROC_DIR": "",
        }
        serve = ["-m", "connector", "serve", "--port", "0", "--workers", "1"]
        servers = [
            Server(f"server {i + 1}", [*serve, "--concurrency", "16"], env) for i in range(2)
        ]
        parts += servers
        workers = [Worker(f"worker {i + 1}", env) for i in range(2)]
        parts += workers
        urls = [f"http://{s.host}:{s.port}" for s in servers]
        sync_round(urls, CLIENTS * 4)  # warm-up: imports, pools, the manifest
        async_round(urls, db_url, CLIENTS * 4)
        sync, queued = [], []
        for _ in range(rounds):
            sync.append(sync_round(urls, total))
            queued.append(async_round(urls, db_url, total))
        idle = idle_round(urls, db_url, 20 if args.quick else 100)
        rss = [w.rss_kib() for w in workers]
    finally:
        for part in reversed(parts):
            part.close()
        stub.close()
        cluster.stop()

    def med(rows: list[dict], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    figures = {
        "machine": machine(),
        "runs_per_round": total,
        "rounds": rounds,
        "sync": {k: med(sync, k) for k in sync[0]},
        "async": {k: med(queued, k) for k in queued[0]},
        "idle": idle,
        "worker_rss_kib": [{"peak": peak, "now": now} for peak, now in rss],
    }
    s, a = figures["sync"], figures["async"]
    print(f"CPU: {figures['machine'].get('cpu', '?')}; {total} runs a round, {rounds} rounds")
    print("| measure | async (2 servers, 2 workers) | sync route (same servers) | ratio |")
    print("| --- | ---: | ---: | ---: |")
    print(
        f"| runs/s | {a['runs_per_s']:.0f} | {s['runs_per_s']:.0f} | {a['runs_per_s'] / s['runs_per_s']:.2f}x |"
    )
    print(
        f"| p50 ms (async: enqueue to done) | {a['p50_ms']:.1f} | {s['p50_ms']:.1f} | {a['p50_ms'] / s['p50_ms']:.2f}x |"
    )
    print(
        f"| p99 ms (async: enqueue to done) | {a['p99_ms']:.1f} | {s['p99_ms']:.1f} | {a['p99_ms'] / s['p99_ms']:.2f}x |"
    )
    print(
        f"| POST p50 ms (async: until the 202) | {a['post_p50_ms']:.1f} | {s['p50_ms']:.1f} | {a['post_p50_ms'] / s['p50_ms']:.2f}x |"
    )
    print(
        f"| POSTs/s (async: 202s; sync: 200s) | {a['enqueue_per_s']:.0f} | {s['runs_per_s']:.0f} | {a['enqueue_per_s'] / s['runs_per_s']:.2f}x |"
    )
    i = figures["idle"]
    print(
        f"| p50 ms, one run at a time | {i['p50_ms']:.1f} | {i['sync_p50_ms']:.1f} | {i['p50_ms'] / i['sync_p50_ms']:.2f}x |"
    )
    for i, (peak, now) in enumerate(rss):
        print(f"worker {i + 1} RSS: peak {peak / 1024:.0f} MiB, now {now / 1024:.0f} MiB")
    print(
        "results right: every /run answered 200 with the completion; every /runs run was stored"
        " once and done once, status 200, with the completion (no target: ratios only reported)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
