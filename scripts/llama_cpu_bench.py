"""Compare llama.cpp builds on this CPU: prompt and generation tokens/s with the local model.

Usage:
  .venv/bin/python scripts/llama_cpu_bench.py                 # the installed llama_cpp
  .venv/bin/python scripts/llama_cpu_bench.py A.whl B.whl ... # each wheel, side by side

Each candidate runs in its own process (a wheel is unpacked and put first on the path), with
the same model, prompt and token counts; the CPU and each build's features are printed with the
figures, so a figure always says where it came from. One thread, and tokens per second of the
process's own CPU time beside wall time: on a shared machine, waiting for a core (and OpenMP
threads spinning while they wait for each other) swamps wall time, not CPU time.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

PROMPT_TOKENS = 256
GEN_TOKENS = 128
REPEATS = 3
THREADS = 1


def measure() -> dict:
    """Time prompt evaluation and greedy generation with the installed llama_cpp."""
    import llama_cpp

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from connector.transport.local import model_path

    llm = llama_cpp.Llama(
        str(model_path()), n_ctx=1024, n_threads=THREADS, n_threads_batch=THREADS, verbose=False
    )
    words = "The quick brown fox jumps over the lazy dog while the connector waits. " * 40
    prompt = llm.tokenize(words.encode())[:PROMPT_TOKENS]
    rates: dict[str, list[float]] = {}

    def timed(name: str, tokens: int, work) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        work()
        rates.setdefault(name, []).append(tokens / (time.perf_counter() - wall))
        rates.setdefault(name + "_cpu", []).append(tokens / (time.process_time() - cpu))

    def generate() -> None:
        for count, _token in enumerate(llm.generate([], temp=0.0, reset=False), start=1):
            if count >= GEN_TOKENS:
                break

    for _ in range(REPEATS):
        llm.reset()
        timed("prompt", len(prompt), lambda: llm.eval(prompt))
        timed("generation", GEN_TOKENS, generate)
    result = {name: statistics.median(values) for name, values in rates.items()}
    return {"features": llama_cpp.llama_print_system_info().decode().strip(), **result}


def cpu_name() -> str:
    """Return the CPU's model name (lscpu's 'Model name')."""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def compare(wheels: list[Path]) -> None:
    """Measure each wheel in a child process and print one line per wheel."""
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores; {THREADS} threads;", end=" ")
    print(f"{PROMPT_TOKENS} prompt tokens, {GEN_TOKENS} generated, median of {REPEATS}")
    for wheel in wheels:
        with tempfile.TemporaryDirectory() as site:
            with zipfile.ZipFile(wheel) as archive:
                archive.extractall(site)
            env = {**os.environ, "PYTHONPATH": site}
            proc = subprocess.run(
                [sys.executable, __file__, "--child"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
        if proc.returncode != 0:  # e.g. SIGILL: a build this CPU cannot run
            print(f"{wheel}: failed with exit status {proc.returncode}: {proc.stderr[-300:]}")
            continue
        report(str(wheel), json.loads(proc.stdout.splitlines()[-1]))


def report(name: str, result: dict) -> None:
    """Print one candidate's figures."""
    print(
        f"{name}: tokens per CPU-second: prompt {result['prompt_cpu']:.0f}, generation"
        f" {result['generation_cpu']:.0f}; per wall-second: prompt {result['prompt']:.0f},"
        f" generation {result['generation']:.0f}; {result['features']}"
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        print(json.dumps(measure()))
    elif sys.argv[1:]:
        compare([Path(p) for p in sys.argv[1:]])
    else:
        print(f"CPU: {cpu_name()}")
        report("installed llama_cpp", measure())
