"""The built wheel works on its own: manifest and schemas travel inside it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "connector" / "server" / "static"


@pytest.fixture(scope="module")
def unpacked_wheel(tmp_path_factory) -> Path:
    """Build the wheel (no dependencies) and unpack it, as pip would into site-packages.

    It is built from a copy of the checkout: setuptools keeps a build/ folder in the source
    tree, whose stale files (of a module since deleted) would otherwise go into the wheel.
    """
    out = tmp_path_factory.mktemp("wheel")
    source = out / "source"
    skip = (".git", ".venv", "build", "node_modules", "*.egg-info", "__pycache__", ".*_cache")
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*skip))
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(source)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    # setuptools warns of data folders missing from the packages configuration.
    assert "absent from the `packages` configuration" not in build.stdout + build.stderr
    (wheel,) = out.glob("*.whl")
    site = out / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


@pytest.mark.parametrize(
    "path",
    [
        "connector/card/manifest.yaml",
        "connector/card/schemas/create_chat_completion.request.schema.json",
        "connector/card/schemas/create_chat_completion.response.schema.json",
        "connector/actions/create_chat_completion.py",
        # The form page and all its assets, as in the checkout.
        *(f"connector/server/static/{p.name}" for p in sorted(STATIC.iterdir())),
    ],
)
def test_the_wheel_carries(unpacked_wheel, path):
    assert (unpacked_wheel / path).is_file()


def test_the_wheel_installs_only_the_connector_package(unpacked_wheel):
    top = {p.name for p in unpacked_wheel.iterdir() if not p.name.endswith(".dist-info")}
    assert top == {"connector"}  # no top-level `actions` to clash with other projects


# -I: neither the checkout (the cwd) nor PYTHONPATH is on the path; the wheel goes first.
SCRIPT = """
import sys
sys.path.insert(0, sys.argv.pop(1))
import connector.manifest.paths as p
print(p.MANIFEST_PATH.resolve(), p.checkout(), file=sys.stderr)
from connector.cli import main
sys.exit(main())
"""


def test_the_installed_package_runs_outside_the_checkout(unpacked_wheel, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CONNECTOR_"))}
    env |= {"OPENAI_API_KEY": "sk-wheel-test", "CONNECTOR_CACHE_DIR": "off"}
    proc = subprocess.run(
        [sys.executable, "-I", "-c", SCRIPT, str(unpacked_wheel), "run", "create_chat_completion",
         "--set", "model=gpt-4o-mini", "--set", "messages=Hello!", "--dry-run"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    card = unpacked_wheel / "connector" / "card"
    assert proc.stderr.splitlines()[0] == f"{card / 'manifest.yaml'} None"  # a file, no checkout
    assert json.loads(proc.stdout)["body"]["messages"] == [{"role": "user", "content": "Hello!"}]


@pytest.mark.parametrize("command", ["docs", "schema", "openapi", "n8n-node", "zapier", "node-red"])
def test_developer_commands_explain_themselves_outside_a_checkout(
    unpacked_wheel, tmp_path, command
):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CONNECTOR_"))}
    proc = subprocess.run(
        [sys.executable, "-I", "-c", SCRIPT, str(unpacked_wheel), command, "--check"],
        env=env | {"CONNECTOR_CACHE_DIR": "off"}, cwd=tmp_path, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert f"'{command}' is a developer command" in json.loads(proc.stdout)["error"]["message"]
