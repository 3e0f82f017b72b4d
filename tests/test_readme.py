"""The README's and the docs pages' examples run as written, and print what the pages say.

The offline commands (dry runs, a form the rules reject, describe) run in the fast tier; the
README's Python block runs in the live tier, against the local model it names. Every relative
link in the README and the docs pages points to a file (and a heading) that exists.
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
from connector.errors import ERROR_TYPES

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
# The pages whose commands run: the README and every page under docs/.
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# The pages whose links must resolve: those, and the benchmark history they link to.
LINKED = [*PAGES, ROOT / "benchmarks" / "history.md"]


def blocks(text: str) -> list[tuple[str, str]]:
    """Return (language, text) for each fenced block of a page."""
    return re.findall(r"^```(\w*)\n(.*?)^```", text, flags=re.M | re.S)


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


def offline_examples() -> list[tuple[str, str, object]]:
    """Return (page, command, the JSON block after it or None) for each command sending nothing."""
    found = []
    for page in PAGES:
        found += page_examples(page.relative_to(ROOT).as_posix(), blocks(page.read_text()))
    return found


def page_examples(page: str, found_blocks: list[tuple[str, str]]) -> list[tuple[str, str, object]]:
    found = []
    for i, (lang, text) in enumerate(found_blocks):
        if lang != "bash":
            continue
        after = found_blocks[i + 1] if i + 1 < len(found_blocks) else ("", "")
        expected = json.loads(after[1]) if after[0] == "json" else None
        for command in commands(text):
            words = shlex.split(command, comments=True)
            if "connector" not in words or words[words.index("connector") - 1] != "-m":
                continue
            rejected = isinstance(expected, dict) and "invalid_input" in json.dumps(expected)
            if "--dry-run" in words or "describe" in words or rejected:
                found.append((page, command, expected))
    return found


EXAMPLES = offline_examples()


@pytest.mark.parametrize(
    ("page", "at_least"),
    [("README.md", 2), ("docs/input-rules.md", 1), ("docs/errors.md", 1)],
)
def test_the_pages_have_offline_examples(page, at_least):
    # The parser still finds them where they are written.
    assert sum(1 for p, _, _ in EXAMPLES if p == page) >= at_least


@pytest.mark.parametrize(
    ("page", "command", "expected"), EXAMPLES, ids=[f"{p}: {c[:50]}" for p, c, _ in EXAMPLES]
)
def test_a_documented_command_runs_as_written(page, command, expected):
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


def test_the_local_backend_page_gives_the_build_flags_scripts_setup_uses():
    flags = (ROOT / "scripts" / "llama-cmake-args").read_text().strip()
    assert f'CMAKE_ARGS="{flags}"' in (ROOT / "docs" / "local-backend.md").read_text()


def exit_table(text: str) -> dict[int, set[str]]:
    """Return {exit code: its types} from the page's `| exit | meaning | types |` table."""
    table = text.split("| exit | meaning | types |\n| --- | --- | --- |\n", 1)[1]
    rows = [line.strip("|").split("|") for line in table.split("\n\n", 1)[0].splitlines()]
    return {
        int(code): {t.strip() for t in types.split(",") if t.strip()} for code, _, types in rows
    }


DOCUMENTED_EXITS = exit_table((ROOT / "docs" / "errors.md").read_text())


@pytest.mark.parametrize("code", [0, 1, 2, 3, 4, 5])
def test_the_exit_code_table_lists_the_types_errors_py_gives_that_code(code):
    wanted = {n for n, t in ERROR_TYPES.items() if not t.server_only and t.cls.exit_code == code}
    assert DOCUMENTED_EXITS.get(code) == wanted


def test_the_exit_code_table_has_no_other_code():
    assert set(DOCUMENTED_EXITS) == {0, 1, 2, 3, 4, 5}


def slug(heading: str) -> str:
    """Return GitHub's anchor for a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
    return {slug(h) for h in re.findall(r"^#+ (.*)$", text, flags=re.M)}


def relative_links() -> list[tuple[str, str]]:
    """Return (page, link) for every relative link or image of the linked pages."""
    found = []
    for page in LINKED:
        text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.M | re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if not re.match(r"[a-z]+:", target):
                found.append((page.relative_to(ROOT).as_posix(), target))
    return found


LINKS = relative_links()


@pytest.mark.parametrize("page", sorted(p.name for p in (ROOT / "docs").glob("*.md")))
def test_the_readme_lists_every_docs_page(page):
    assert f"](docs/{page})" in README


def test_the_pages_have_links():
    assert len(LINKS) >= 30  # the parser still finds them


@pytest.mark.parametrize(("page", "link"), LINKS, ids=[f"{p} -> {t}" for p, t in LINKS])
def test_a_relative_link_points_to_what_exists(page, link):
    path, _, anchor = link.partition("#")
    target = (ROOT / page).parent / path if path else ROOT / page
    assert target.exists(), f"{page}: {link} points to no file"
    if anchor:
        assert anchor in anchors(target), f"{page}: {link} points to no heading"


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
    lines = proc.stdout.splitlines()
    assert lines[-1] == promised
    # The model that ran, and a stream's usage: unknown, not 0.
    assert "smollm2-135m-instruct None" in lines
    assert "'truncated'" in lines[-2]  # on_warning heard the cut reply


def keyless_commands(name: str) -> list[str]:
    """Return the README's commands that run key-less (OPENAI_PROVIDER=local) and call ``name``."""
    found = []
    for lang, text in blocks(README):
        if lang == "bash":
            found += [c for c in commands(text) if "OPENAI_PROVIDER=local" in c and name in c]
    return found


def test_the_readme_shows_the_keyless_path_first():
    use = README.split("## Use\n", 1)[1]
    for part in ("### CLI", "### Python", "### Server"):
        section = use.split(part, 1)[1]
        assert section.index("local") < section.index("OPENAI_API_KEY"), part
    assert keyless_commands("connector run") and keyless_commands("connector serve")


@pytest.mark.live
@pytest.mark.parametrize("command", keyless_commands("connector run"))
def test_a_keyless_cli_example_runs_on_the_local_model(command):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env |= {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"}
    proc = subprocess.run(
        ["bash", "-c", command], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    if "--dry-run" not in command:
        assert doc["model"] == "smollm2-135m-instruct" and doc["choices"][0]["message"]["content"]


@pytest.mark.live
def test_the_keyless_server_example_runs_on_the_local_model():
    (serve,) = keyless_commands("connector serve")
    (block,) = [t for lang, t in blocks(README) if lang == "bash" and serve in commands(t)]
    (curl,) = [c for c in commands(block) if c.startswith("curl")]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CONNECTOR_"))}
    env |= {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"}
    server = subprocess.Popen(
        ["bash", "-c", serve.replace("--port 8080", "--port 0")],
        env=env, cwd=ROOT, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        said = []
        for line in server.stderr:
            said.append(line)
            found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if found:
                break
        assert found, "".join(said)
        port = found.group(1)
        proc = subprocess.run(
            ["bash", "-c", curl.replace(":8080/", f":{port}/").replace("curl -i", "curl -s -i")],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
    head, _, body = proc.stdout.replace("\r\n", "\n").partition("\n\n")
    assert head.startswith("HTTP/1.1 200"), proc.stdout
    assert json.loads(body)["model"] == "smollm2-135m-instruct"
