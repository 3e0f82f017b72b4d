"""The README's examples run as written, and print what the README says they print.

The offline commands (dry runs, a form the rules reject, describe) run in the fast tier; the
Python block runs in the live tier, against the local model it names.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import connector

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```(\w*)\n(.*?)^```", README, flags=re.M | re.S)


def commands(block: str) -> list[str]:
    """Split a shell block into its commands (continued lines and quoted newlines joined)."""
    out, pending = [], ""
    for line in block.splitlines(keepends=True):
        pending += line
        try:
            shlex.split(pending, comments=True)
        except ValueError:  # a quote is still open
            continue
        if not pending.rstrip().endswith("\\"):
            if pending.strip() and not pending.lstrip().startswith("#"):
                out.append(pending.strip())
            pending = ""
    return out


def offline_examples() -> list[tuple[str, object]]:
    """Return (command, the JSON block after it or None) for each README command sending nothing."""
    found = []
    for i, (lang, text) in enumerate(BLOCKS):
        if lang != "bash":
            continue
        after = BLOCKS[i + 1] if i + 1 < len(BLOCKS) else ("", "")
        expected = json.loads(after[1]) if after[0] == "json" else None
        for command in commands(text):
            words = shlex.split(command, comments=True)
            if "connector" not in words or words[words.index("connector") - 1] != "-m":
                continue
            rejected = isinstance(expected, dict) and "invalid_input" in json.dumps(expected)
            if "--dry-run" in words or "describe" in words or rejected:
                found.append((command, expected))
    return found


EXAMPLES = offline_examples()


def test_the_readme_has_offline_examples():
    assert len(EXAMPLES) >= 4  # the parser still finds them


@pytest.mark.parametrize(("command", "expected"), EXAMPLES, ids=[c[:60] for c, _ in EXAMPLES])
def test_a_readme_command_runs_as_written(command, expected):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    # `python` as the README writes it is the project's .venv/bin/python.
    env |= {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"}
    env |= {"OPENAI_API_KEY": "sk-readme-example"}  # README: `export OPENAI_API_KEY=sk-...`
    proc = subprocess.run(
        ["bash", "-c", command], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    rejected = isinstance(expected, dict) and "error" in expected
    assert proc.returncode == (2 if rejected else 0), proc.stderr
    if "describe" in command:
        return
    doc = json.loads(proc.stdout)
    if expected is not None:
        assert expected in (doc, doc.get("body"))


def test_the_example_form_is_the_platform_pages_example():
    form = yaml.safe_load((ROOT / "examples" / "form.yaml").read_text())
    example = connector.load_manifest().action("create_chat_completion").param("messages").example
    assert json.loads(form["messages"]) == example


def test_the_readme_gives_the_build_flags_scripts_setup_uses():
    flags = (ROOT / "scripts" / "llama-cmake-args").read_text().strip()
    assert f'CMAKE_ARGS="{flags}"' in README


@pytest.mark.live
def test_the_python_block_runs_as_written():
    # The block the README says this test runs (other Python blocks are fragments).
    marker = "`tests/test_readme.py` runs this block as written"
    (block,) = re.findall(
        re.escape(marker) + r"[^\n]*\n```python\n(.*?)^```", README, flags=re.M | re.S
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    proc = subprocess.run(
        [sys.executable, "-c", block], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    promised = re.search(r"print\(error.*# (.*)$", block, flags=re.M).group(1)
    assert proc.stdout.splitlines()[-1] == promised
