"""A second, independent linter (Redocly CLI, from tests/redocly/) passes both API documents.

The documents are the generated files in docs/ (the server serves the same text, which the
staleness check and test_server_app hold it to). Each finding the linter once made is put back
and seen to be caught, so a linter that stopped reading the files would fail here.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.server

ROOT = Path(__file__).resolve().parent.parent
LINTER = ROOT / "tests" / "redocly"
REDOCLY = LINTER / "node_modules" / ".bin" / "redocly"
# The one accepted finding, with its reason, in tests/redocly/.redocly.lint-ignore.yaml.
IGNORED = {"openapi.json": 1, "swagger.json": 0}


def _lint(path: Path) -> dict:
    assert REDOCLY.exists(), "run bash scripts/setup-npm tests/redocly"
    proc = subprocess.run(
        [str(REDOCLY), "lint", "--config", str(LINTER / "redocly.yaml"), "--format=json", str(path)],
        capture_output=True, text=True, timeout=120, cwd=LINTER,
    )  # fmt: skip
    report = json.loads(proc.stdout)
    assert (proc.returncode != 0) == (report["totals"]["errors"] > 0), proc.stderr
    return report


@pytest.mark.parametrize("name", sorted(IGNORED))
def test_the_document_has_no_finding(name):
    report = _lint(ROOT / "docs" / name)
    found = [(p["ruleId"], p["location"][0]["pointer"]) for p in report["problems"]]
    assert found == []
    assert report["totals"]["ignored"] == IGNORED[name]


def _drop(key):
    return lambda doc: doc.pop(key)


def _drop_info(key):
    return lambda doc: doc["info"].pop(key)


def _duplicate_operation_id(doc):
    methods = {"get", "post", "put", "patch", "delete"}
    ops = [op for item in doc["paths"].values() for k, op in item.items() if k in methods]
    ops[1]["operationId"] = ops[0]["operationId"]


@pytest.mark.parametrize(
    ("name", "breaker", "rule"),
    [
        ("openapi.json", _drop("servers"), "no-empty-servers"),
        ("openapi.json", _drop_info("license"), "info-license"),
        ("openapi.json", _duplicate_operation_id, "operation-operationId-unique"),
        ("swagger.json", _drop_info("license"), "info-license"),
        ("swagger.json", _duplicate_operation_id, "operation-operationId-unique"),
    ],
)
def test_a_broken_document_is_caught(tmp_path, name, breaker, rule):
    doc = json.loads((ROOT / "docs" / name).read_text(encoding="utf-8"))
    breaker(doc)
    path = tmp_path / name
    path.write_text(json.dumps(doc), encoding="utf-8")
    assert rule in {p["ruleId"] for p in _lint(path)["problems"]}
