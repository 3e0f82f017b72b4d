"""Request validation side by side: the connector, jsonschema-rs alone, and jsonschema.

For each body (the seed form's body, one with tools and a JSON Schema response format, and an
invalid one) it prints the median microseconds per check of each validator, measured in the same
run, and for the invalid body the error paths and wording each one reports.

    python benchmarks/validators.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from connector.engine import validation
from connector.engine.body import build_body
from connector.engine.loader import load_manifest

CHAT = load_manifest().action("create_chat_completion")
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
FORMAT = {
    "type": "json_schema",
    "json_schema": {
        "name": "person",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["name", "age"],
            "additionalProperties": False,
        },
    },
}
INVALID = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "bot", "content": "x"}, {"role": "tool", "content": "x"}],
    "temperature": "hot",
    "tools": [{"type": "function", "function": {"name": "bad name!"}}],
}


def bodies() -> dict[str, dict[str, Any]]:
    """Return the measured bodies: the seed example's, one with tools, and an invalid one."""
    seed = {p.name: p.example for p in CHAT.parameters if p.required}
    seed = build_body(CHAT, seed, _conn())
    rich = {**seed, "tools": TOOLS, "tool_choice": "auto", "response_format": FORMAT}
    return {"seed body": seed, "tools + response_format": rich, "invalid body": INVALID}


def _conn():
    from connector.engine.runner import make_connection

    return make_connection(api_key="k")


def _median_us(call, runs: int) -> float:
    for _ in range(min(runs, 200)):
        call()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def validators() -> dict[str, Any]:
    """Return a yes/no check per validator, each built once."""
    import jsonschema
    import jsonschema_rs

    schema = json.loads(validation.REQUEST_SCHEMA_PATH.read_text(encoding="utf-8"))
    rs = jsonschema_rs.validator_for(schema)
    py = jsonschema.Draft202012Validator(schema)
    return {
        "connector validate_request": validation.validate_request,
        "jsonschema-rs is_valid": rs.is_valid,
        "jsonschema is_valid": py.is_valid,
    }


def rs_errors(body: Any) -> list[str]:
    """Return jsonschema-rs's errors as ``path: message``."""
    import jsonschema_rs

    schema = json.loads(validation.REQUEST_SCHEMA_PATH.read_text(encoding="utf-8"))
    out = []
    for e in jsonschema_rs.validator_for(schema).iter_errors(body):
        path = ".".join(str(p) for p in e.instance_path) or "(root)"
        out.append(f"{path}: {e.message}")
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the timing table and the error wording of each validator."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=2000)
    args = p.parse_args(argv)
    checks = validators()
    print("| body | " + " | ".join(f"{name} (µs)" for name in checks) + " |")
    print("| --- |" + " --- |" * len(checks))
    for label, body in bodies().items():
        cells = [f"{_median_us(lambda c=c, b=body: c(b), args.runs):.1f}" for c in checks.values()]
        print(f"| {label} | " + " | ".join(cells) + " |")
    print("\nErrors for the invalid body:")
    print("- connector (validation.py on jsonschema):")
    for problem in validation.validate_request(INVALID):
        print(f"    {problem}")
    print("- jsonschema-rs:")
    for line in rs_errors(INVALID):
        print(f"    {line[:160]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
