"""The in-process clients timed side by side: per-run cost and streaming (bench.py parts 1, 3).

Each client (the connector, bare ``requests``, the ``openai`` SDK) makes the same call to the
same stub; the calls are interleaved in random order and the medians returned. Every call's
result is checked (the reply's content, or a stream's whole text): a wrong one ends the run.
"""

from __future__ import annotations

import json
import random
import statistics
import time

from checks import expect
from stub import stream_text

KEY = "sk-bench-not-a-real-key"
MODEL = "gpt-4o-mini"
TEXT = "Hello!"
EXPECTED = "Hello! How can I assist you today?"


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
    return _interleaved("per run", calls, EXPECTED, runs, warmup)


def _interleaved(part: str, calls: dict, want: str, runs: int, warmup: int) -> dict[str, float]:
    """Time each call ``runs`` times, in a new random order every round; return the medians.

    Every call's result must equal ``want`` (checked once its clock has stopped): else the run
    ends, naming ``part`` and the client.
    """
    for name, call in calls.items():  # one untimed call each first: a wrong client says so
        expect(f"{part}, {name}", call(), want)
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
            got = calls[name]()
            elapsed = clock() - start
            if got != want:
                expect(f"{part}, {name} (call {i + 1})", got, want)
            if i >= warmup:
                times[name].append(elapsed)
    return {name: statistics.median(values) for name, values in times.items()}


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
    # Each client must aggregate the text of every chunk, in order.
    return _interleaved(f"stream {chunks:,} chunks", calls, stream_text(chunks), runs, 0)
