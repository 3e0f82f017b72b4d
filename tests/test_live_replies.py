"""Live tier: each recorded case, sent to the local server again, still gives an output that
the official response schema and the official SDK accept (so the fixtures can be re-recorded)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from openai.types.chat import ChatCompletion
from test_output import CHAT, OFFICIAL, _run

from connector.engine.output import allow_example_nulls
from connector.transport import local

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import record_replies

pytestmark = pytest.mark.live


@pytest.fixture(scope="module")
def base_url():
    """Start a local server for this module (fail, not skip, when it cannot start)."""
    with local.LocalServer() as server:
        yield server.base_url


@pytest.mark.parametrize("name", sorted(record_replies.CASES))
def test_a_recorded_case_replays_as_an_official_reply(base_url, tmp_path, name):
    path = record_replies.record(base_url, name, record_replies.CASES[name], tmp_path)
    out = _run(path)
    declared = (
        CHAT.output.schema_
    )  # the manifest allows usage null: a stream the server left uncounted
    validator = Draft202012Validator(allow_example_nulls(OFFICIAL, CHAT.output.example, declared))
    assert not list(validator.iter_errors(out))
    assert ChatCompletion.model_validate(out).choices[0].message.role == "assistant"
