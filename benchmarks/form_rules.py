"""The input rules' cost: ``build_body`` on Messages text, strict and repaired, vs ``json.loads``.

``bench.py`` runs it as part 4; alone: ``python benchmarks/form_rules.py [--calls N] [--root DIR]``.
``--root`` measures the connector of another checkout (e.g. ``git archive COMMIT | tar -x``),
for a before/after figure in one sitting; a case that checkout refuses is reported as refused.
Every case must produce its exact body (``expected``): a wrong one ends the run.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

from checks import expect

EXAMPLE = [
    {"role": "developer", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Hello!"},
]
TICKET = 'Pat wrote: "the export to C:\\Reports fails"\nsince Monday.\t(ticket 12)\n'
LONG = (TICKET * 800)[:50_000]
SLOT = "{{t}}"
TEMPLATE = json.dumps(
    [
        {"role": "developer", "content": "You are a helpful assistant."},
        {"role": "user", "content": SLOT},
    ],
    indent=2,
)


def cases() -> dict[str, str]:
    """Return the Messages text of each case: valid JSON (strict) or a host's insertion."""
    return {
        "strict": json.dumps(EXAMPLE, indent=2),
        "strict, 50 KB": TEMPLATE.replace(SLOT, json.dumps(LONG)[1:-1]),
        "repair": TEMPLATE.replace(SLOT, TICKET),
        "repair, 50 KB": TEMPLATE.replace(SLOT, LONG),
    }


def expected() -> dict[str, object]:
    """Return what each case must produce: ``build_body``'s exact body, or ``json.loads``' list."""
    inserted = {"strict": "Hello!", "strict, 50 KB": LONG, "repair": TICKET, "repair, 50 KB": LONG}
    out: dict[str, object] = {}
    for name, text in inserted.items():
        messages = [EXAMPLE[0], {"role": "user", "content": text}]
        out[name] = {"model": "gpt-4o-mini", "messages": messages}
    out["json.loads, strict"] = EXAMPLE
    out["json.loads, strict 50 KB"] = out["strict, 50 KB"]["messages"]
    return out


def measure(calls: int = 2000) -> dict[str, float | None]:
    """Return the median seconds per call of each case, and of json.loads of the strict texts."""
    import logging

    from connector import InvalidInput, make_connection

    # A warning per repaired call would go to stderr: measure the rules, not the terminal.
    logging.getLogger("connector").setLevel(logging.ERROR)
    try:
        from connector.engine.body import build_body
        from connector.engine.loader import load_manifest
    except ImportError:  # --root names a checkout from before the layer folders
        from connector.request import build_body

        from connector.manifest import load_manifest

    action = load_manifest().action("create_chat_completion")
    conn = make_connection(api_key="sk-bench-not-a-real-key")
    texts = cases()
    jobs = {}
    for name, text in texts.items():
        form = {"model": "gpt-4o-mini", "messages": text}
        try:
            build_body(action, form, conn)
        except InvalidInput:
            jobs[name] = None  # this checkout refuses it
            continue
        jobs[name] = lambda f=form: build_body(action, f, conn)
    jobs["json.loads, strict"] = lambda t=texts["strict"]: json.loads(t)
    jobs["json.loads, strict 50 KB"] = lambda t=texts["strict, 50 KB"]: json.loads(t)
    samples: dict[str, list[float]] = {name: [] for name, job in jobs.items() if job}
    want = expected()
    order = list(samples)
    clock = time.perf_counter
    for i in range(calls):
        random.shuffle(order)  # interleaved, so a slow moment of the machine hits every case
        for name in order:
            n = 1 if "50 KB" in name else 20
            start = clock()
            for _ in range(n):
                got = jobs[name]()
            took = clock() - start
            if got != want[name]:  # checked once the clock has stopped: the exact body
                expect(f"input rules, {name} (round {i + 1})", got, want[name])
            if i >= calls // 20:  # the first 5% warm up
                samples[name].append(took / n)
    return {name: (statistics.median(samples[name]) if jobs[name] else None) for name in jobs}


# (measure, reference): each ratio is against a reference measured in the same run.
PAIRS = [
    ("strict", "json.loads, strict"),
    ("strict, 50 KB", "json.loads, strict 50 KB"),
    ("repair", "strict"),
    ("repair, 50 KB", "strict, 50 KB"),
]


def report(result: dict[str, float | None]) -> list[str]:
    """Return one line per pair: build_body's time, its reference's, and the ratio."""
    lines = []
    for name, ref in PAIRS:
        value, base = result.get(name), result.get(ref)
        if value is None or base is None:
            lines.append(f"build_body, {name}: refused by this checkout")
            continue
        lines.append(
            f"build_body, {name}: {value * 1e6:,.1f} us | {ref}: {base * 1e6:,.1f} us"
            f" | {value / base:.2f}x"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=2000, help="rounds of every case (default 2000)")
    p.add_argument("--root", help="the checkout whose connector to measure")
    args = p.parse_args(argv)
    if args.root:
        # An editable install maps `connector` to this checkout ahead of sys.path: drop it.
        sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in repr(f)]
        sys.path.insert(0, str(Path(args.root).resolve()))
    import connector

    print(f"connector from {Path(connector.__file__).parent}")
    print("\n".join(report(measure(args.calls))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
