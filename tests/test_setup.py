"""The set-up scripts say what they do, show a failing step's output, and print no warning.

The first set-up runs for real on a fresh clone of this checkout's commit (`bash scripts/setup`,
no --local, so nothing is compiled: about a minute), in the e2e tier. The stage helpers
(scripts/stages.sh) run in the fast tier, with commands that take a second.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def machine_index_folders() -> list[str]:
    """The file:// package indexes of this machine's own pip configuration (not the project's).

    pip warns "Location '<index>/<name>/' is ignored" for each package an index folder lacks:
    such notices come from the machine (here /root/.config/pip/pip.conf lists two folders),
    so they are the only warnings the test lets through, and only for these folders.
    """
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip
    folders = []
    for line in listing.splitlines():
        key, _, value = line.partition("=")
        if key.endswith(("index-url", "find-links")):
            folders += [v for v in value.strip("'\"").split() if v.startswith("file:")]
    return folders


def warnings_in(text: str, folders: list[str]) -> list[str]:
    indexes = "|".join(map(re.escape, folders))
    notice = re.compile(
        rf"WARNING: Location '(?:{indexes})/[^/']+/' is ignored: it is neither a file nor a directory\."
    )
    return [
        line
        for line in text.splitlines()
        if "warning" in line.lower() and not (folders and notice.fullmatch(line.strip()))
    ]


@pytest.mark.parametrize(
    ("line", "folders", "kept"),
    [
        ("WARNING: Location 'file:///opt/pypi/simple/six/' is ignored: it is neither a file nor a directory.", ["file:///opt/pypi/simple"], False),
        ("WARNING: Location 'file:///elsewhere/six/' is ignored: it is neither a file nor a directory.", ["file:///opt/pypi/simple"], True),
        ("WARNING: Location 'file:///opt/pypi/simple/six/' is ignored: it is neither a file nor a directory.", [], True),
        ("  BuildBackendWarning: Editable installation.", ["file:///opt/pypi/simple"], True),
        ("setup: updating pip in .venv", ["file:///opt/pypi/simple"], False),
    ],
)  # fmt: skip
def test_only_the_machines_index_notices_are_let_through(line, folders, kept):
    assert warnings_in(line, folders) == ([line] if kept else [])


def stages(script: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Run a bash snippet with scripts/stages.sh sourced and the log in tmp_path."""
    prelude = f"set -euo pipefail; source {ROOT / 'scripts' / 'stages.sh'}; STAGE_NAME=t; "
    prelude += f"STAGE_LOG={tmp_path / 'setup.log'}; "
    return subprocess.run(
        ["bash", "-c", prelude + script],
        capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", **env},
    )  # fmt: skip


def test_a_failing_step_prints_its_output_and_where_the_log_is(tmp_path):
    # The output differs from the command's text, which the failure line quotes.
    proc = stages("logged bash -c 'echo error-$((6*7)) >&2; exit 3'; echo not-reached", tmp_path)
    assert proc.returncode == 3
    assert "t: failed (exit 3): bash -c" in proc.stderr
    assert "error-42" in proc.stderr
    assert str(tmp_path / "setup.log") in proc.stderr
    assert "not-reached" not in proc.stdout


def test_a_passing_step_prints_nothing(tmp_path):
    proc = stages("logged bash -c 'echo chatter; echo noise >&2'", tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert "chatter" in (tmp_path / "setup.log").read_text()


def test_a_long_step_has_a_heartbeat_with_the_build_step(tmp_path):
    proc = stages(
        "heartbeat 'compiling x' bash -c 'echo \"[ 3/10] Building CXX\"; sleep 2.5'",
        tmp_path, STAGE_HEARTBEAT="1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^t:   compiling x: \d+s so far, build step \[3/10\]$", proc.stderr, re.M)


def test_a_long_step_that_fails_fails_the_script(tmp_path):
    proc = stages("heartbeat 'compiling x' bash -c 'exit 4'; echo not-reached", tmp_path)
    assert proc.returncode == 4
    assert "not-reached" not in proc.stdout


@pytest.fixture(scope="module")
def first_setup(tmp_path_factory) -> dict:
    clone = tmp_path_factory.mktemp("setup") / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    first = subprocess.run(
        ["bash", "scripts/setup"], cwd=clone, capture_output=True, text=True, timeout=1200
    )
    again = subprocess.run(
        ["bash", "scripts/setup"], cwd=clone, capture_output=True, text=True, timeout=120
    )
    log = clone / ".venv" / "setup.log"
    return {"first": first, "again": again, "log": log.read_text() if log.exists() else ""}


@pytest.mark.e2e
def test_the_first_setup_succeeds(first_setup):
    proc = first_setup["first"]
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""  # the stage lines go to stderr
    assert "$ .venv/bin/pip install" in first_setup["log"]


@pytest.mark.e2e
@pytest.mark.parametrize(
    "stage",
    [
        "setup: creating .venv (a few seconds, once)",
        "setup: updating pip in .venv",
        "setup: installing the connector (editable) with its dev,server dependencies",
        "setup: done in ",
    ],
)
def test_the_first_setup_says_each_stage(first_setup, stage):
    lines = first_setup["first"].stderr.splitlines()
    assert any(line.startswith(stage) for line in lines), lines


@pytest.mark.e2e
@pytest.mark.parametrize("where", ["terminal", "pip's log"])
def test_the_first_setup_prints_no_warning(first_setup, where):
    # pip's log too: a warning there would be hidden from the terminal, not gone.
    text = first_setup["first"].stderr if where == "terminal" else first_setup["log"]
    assert warnings_in(text, machine_index_folders()) == []


@pytest.mark.e2e
def test_a_second_setup_prints_nothing(first_setup):
    proc = first_setup["again"]
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
