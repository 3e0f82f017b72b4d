"""Record real replies of the embedded local model as test fixtures (tests/fixtures/replies/).

Usage: .venv/bin/python scripts/record_replies.py   (needs `bash scripts/setup --local`)

Each case is a form. The connector builds the body it would send (``connector.prepare``), the
body goes to llama-cpp-python's server as is, and the raw reply (JSON, or the SSE text of a
stream) is written with the form, so tests replay exactly what this server answers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import requests

import connector
from connector.transport import local

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "replies"
SYSTEM = {"role": "system", "content": "Reply with JSON only."}
PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
}
BASE = {"model": local.MODEL_ALIAS, "temperature": "0", "seed": "7"}
CASES: dict[str, dict[str, str]] = {
    "local_plain": {"messages": "Say hello in five words.", "max_completion_tokens": "48"},
    "local_stop": {"messages": "Count from 1 to 10, comma-separated.", "stop": "5"},
    "local_length": {
        "messages": "Tell me a long story about a dragon.",
        "max_completion_tokens": "6",
    },
    "local_json": {
        "messages": json.dumps(
            [SYSTEM, {"role": "user", "content": "A JSON object with a key a."}]
        ),
        "response_format": "json_object",
        "max_completion_tokens": "48",
    },
    "local_json_schema": {
        "messages": json.dumps([SYSTEM, {"role": "user", "content": "Bob is 30. As JSON."}]),
        "response_format": json.dumps(PERSON),
        "max_completion_tokens": "48",
    },
    "local_stream": {"messages": "Say hello.", "stream": "true", "max_completion_tokens": "24"},
    "local_stream_length": {
        "messages": "Tell me a long story.",
        "stream": "true",
        "max_completion_tokens": "5",
    },
}


def record(base_url: str, name: str, form: dict[str, str], out: Path = OUT) -> Path:
    """Send one case and write its raw reply into ``out``; return the fixture's path."""
    full = {**BASE, **form}
    conn = {"provider": "local", "base_url": base_url}
    request = connector.prepare("create_chat_completion", full, conn)
    stream = bool(request["body"].get("stream"))
    resp = requests.post(request["url"], json=request["body"], stream=stream, timeout=120)
    resp.raise_for_status()
    fixture = {
        "source": f"llama-cpp-python {local_version()} with SmolLM2-135M-Instruct, recorded by"
        " scripts/record_replies.py",
        "provider": "local",
        "form": full,
        "content_type": resp.headers.get("content-type", "").split(";")[0],
        "body": resp.text,
    }
    path = out / f"{name}.json"
    path.write_text(json.dumps(fixture, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def local_version() -> str:
    """Return the installed llama-cpp-python version."""
    from importlib import metadata

    return metadata.version("llama-cpp-python")


def main() -> int:
    """Start the local server, record every case, stop the server."""
    OUT.mkdir(parents=True, exist_ok=True)
    with local.LocalServer() as server:
        for name, form in CASES.items():
            print(f"wrote {record(server.base_url, name, form).relative_to(OUT.parent.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
