"""End-to-end tier, Node-RED: the seed's chain (chat completion, then e-mail) in the real Node-RED.

On loopback, each for real: the embedded llama.cpp model, the action server, an SMTP server
(aiosmtpd) and Node-RED 4.1 (``tests/node-red/``, its own process, settings and user folder),
with the generated package (``hosts/node-red/``) and ``node-red-node-email`` installed in it.
The flow is the package's example (inject, Create Chat Completion, a function, an e-mail) with
the local model and the test's servers filled in, and nodes of the test's own that write what
the chat node gave, its statuses and what a Catch node caught to files. Nothing here skips.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from actionserver import TOKEN
from mailserver import MailServer
from noderedhost import NodeRed
from test_e2e import MODEL, counters

from connector.views import nodered

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "hosts" / "node-red" / nodered.EXAMPLE_FILE
SEED = yaml.safe_load((ROOT / "examples" / "form.yaml").read_text())
ADVANCED = {"temperature": "0.2", "stop": "END,STOP", "max_completion_tokens": "64"}


@pytest.fixture(scope="module")
def smtp():
    with MailServer() as server:
        yield server


@pytest.fixture(scope="module")
def red(tmp_path_factory):
    with NodeRed(tmp_path_factory.mktemp("node-red")) as host:
        yield host
    assert TOKEN not in host.logs()


def recorder(node_id: str, source: str, expression: str, path: Path, **props) -> list[dict]:
    """Return nodes that write ``expression`` of each message from ``source`` to ``path``."""
    write = {"filename": str(path), "filenameType": "str", "appendNewline": True}
    write |= {"createDir": True, "overwriteFile": "false", "encoding": "utf8"}
    node = {"z": "ocr.flow", "x": 0, "y": 0}
    return [
        {"id": f"{node_id}.src", "type": source, **node, **props, "wires": [[f"{node_id}.fn"]]},
        {"id": f"{node_id}.fn", "type": "function", **node, "func": f"msg.payload = JSON.stringify({expression});\nreturn msg;",
         "outputs": 1, "wires": [[f"{node_id}.file"]]},
        {"id": f"{node_id}.file", "type": "file", **node, **write, "wires": []},
    ]  # fmt: skip


def test_flow(folder: Path, server_url: str, smtp: MailServer, **fields: str) -> list[dict]:
    """Return the example flow for here, with recorders of the chat node's output, statuses
    and errors."""
    flow = json.loads(EXAMPLE.read_text())
    nodes = {n["id"]: n for n in flow}
    nodes["ocr.server"] |= {"url": server_url, "credentials": {"token": TOKEN}}
    nodes["ocr.chat"] |= {"model": MODEL, **ADVANCED, **fields}
    nodes["ocr.send"] |= {"server": smtp.host, "port": str(smtp.port)}
    nodes["ocr.chat"]["wires"][0].append("out.fn")
    chat = ["ocr.chat"]
    return [
        *flow,
        *recorder("out", "", "msg.payload", folder / "out.jsonl")[1:],  # wired from the chat
        *recorder("status", "status", "msg.status.text", folder / "status.jsonl", scope=chat),
        *recorder("caught", "catch", "msg.error", folder / "caught.jsonl", scope=chat),
    ]


test_flow.__test__ = False  # a builder, not a test


def lines(path: Path) -> list:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def outcome(folder: Path, timeout: float = 180) -> tuple[list, list, list]:
    """Return what the chat node sent, what the Catch node caught and the node's statuses,
    once the node has set its last status and the message has ended one way or the other
    (given a few seconds more for the files to be written)."""
    files = [folder / f"{name}.jsonl" for name in ("out", "caught", "status")]
    deadline = time.monotonic() + timeout
    while True:
        out, caught, statuses = (lines(path) for path in files)
        if ((out or caught) and len(statuses) >= 2) or time.monotonic() > deadline:
            return out, caught, statuses
        if len(statuses) >= 2:
            deadline = min(deadline, time.monotonic() + 5)
        time.sleep(0.1)


def test_the_example_flow_holds_the_seeds_form():
    nodes = {n["id"]: n for n in json.loads(EXAMPLE.read_text())}
    chat = nodes["ocr.chat"]
    assert chat["type"] == "create-chat-completion"
    assert json.loads(chat["messages"]) == json.loads(SEED["messages"])
    assert {k: chat[k] for k in ("model", "temperature", "stop")} == {
        k: SEED[k] for k in ("model", "temperature", "stop")
    }
    assert "token" not in json.dumps(nodes["ocr.server"])
    assert [nodes[w[0]]["type"] for w in (chat["wires"][0], nodes["ocr.mail"]["wires"][0])] == [
        "function",
        "e-mail",
    ]


def test_node_red_mails_the_reply(red, action_server, smtp, tmp_path):
    smtp.clear()
    before = counters(action_server)
    red.deploy(test_flow(tmp_path, action_server, smtp))
    red.inject("ocr.inject")
    out, caught, statuses = outcome(tmp_path)
    assert (caught, statuses) == ([], ["requesting", "done"])
    (output,) = out
    assert output["object"] == "chat.completion"
    text = output["choices"][0]["message"]["content"]
    assert text.strip(), "the reply is empty: nothing worth mailing was tested"
    messages = smtp.wait(1)
    assert [m["Subject"] for m in messages] == [nodered.MAIL_SUBJECT]
    assert messages[0]["To"] == "ops@example.com"
    assert messages[0].get_content().removesuffix("\n") == text.removesuffix("\n")
    # The Advanced text reached the model: Max Completion Tokens caps the reply.
    assert output["usage"]["completion_tokens"] <= int(ADVANCED["max_completion_tokens"])
    after = counters(action_server)
    assert after["connector_runs_total:ok"] == before.get("connector_runs_total:ok", 0) + 1


def test_node_red_catches_a_refused_form_and_sends_nothing(red, action_server, smtp, tmp_path):
    smtp.clear()
    before = counters(action_server)
    red.deploy(test_flow(tmp_path, action_server, smtp, temperature="hot"))
    red.inject("ocr.inject")
    out, caught, statuses = outcome(tmp_path)
    assert (out, statuses) == ([], ["requesting", "invalid_input"])
    (error,) = caught
    assert "Temperature" in error["message"] and "hot" in error["message"]
    assert error["code"] == "invalid_input"
    assert error["cause"]["fields"][0]["label"] == "Temperature"
    assert error["source"]["type"] == "create-chat-completion"
    assert smtp.wait(1, timeout=2) == []
    after = counters(action_server)
    runs, attempts = "connector_runs_total:invalid_input", "connector_upstream_attempts_total"
    assert after[runs] == before.get(runs, 0) + 1
    assert after.get(attempts, 0) == before.get(attempts, 0)  # nothing sent upstream


def test_node_red_offers_the_models_and_keeps_the_token_out_of_the_flow_file(
    red, action_server, smtp, tmp_path
):
    red.deploy(test_flow(tmp_path, action_server, smtp))
    answer = red.get("/create-chat-completion/options/model?server=ocr.server")
    assert answer.status_code == 200, answer.text
    assert MODEL in [option["value"] for option in answer.json()]
    assert red.get("/create-chat-completion/options/model?server=nope").status_code == 404
    for name in ("flows.json", "flows_cred.json"):
        assert TOKEN not in (red.user / name).read_text()
    assert '"credentials"' not in (red.user / "flows.json").read_text()
    assert TOKEN not in red.get("/flows").text


def test_node_red_loads_the_package_and_lists_its_example(red):
    sets = red.get("/nodes").json()
    ours = [s for s in sets if s["module"] == nodered.PACKAGE]
    assert {t for s in ours for t in s["types"]} == {
        nodered.SERVER_TYPE,
        *(nodered.node_type(a) for a in nodered.load_manifest().actions),
    }
    assert all(s["enabled"] and not s.get("err") for s in ours), ours
    # The editor's Import, Examples menu: each package's examples/ folder.
    assert nodered.PACKAGE in red.get("/library/examples/flows/").json()
    name = Path(nodered.EXAMPLE_FILE).stem
    answer = red.get(f"/library/examples/flows/{nodered.PACKAGE}/{name}")
    assert answer.json() == json.loads(EXAMPLE.read_text())


def test_node_red_lists_the_models(red, action_server, tmp_path):
    flow = json.loads(EXAMPLE.read_text())
    server = next(n for n in flow if n["id"] == "ocr.server")
    server |= {"url": action_server, "credentials": {"token": TOKEN}}
    node = {"z": "ocr.flow", "x": 0, "y": 0}
    models = {"id": "models", "type": "list-models", **node, "name": "", "server": "ocr.server"}
    models["wires"] = [["out.fn"]]
    inject = {"id": "go", "type": "inject", **node, "props": [], "wires": [["models"]]}
    flow = [flow[0], server, inject, models]
    flow += recorder("out", "", "msg.payload", tmp_path / "out.jsonl")[1:]
    flow += recorder(
        "status", "status", "msg.status.text", tmp_path / "status.jsonl", scope=["models"]
    )
    flow += recorder("caught", "catch", "msg.error", tmp_path / "caught.jsonl", scope=["models"])
    red.deploy(flow)
    red.inject("go")
    out, caught, statuses = outcome(tmp_path)
    assert (caught, statuses) == ([], ["requesting", "done"])
    assert out[0]["object"] == "list"
    assert MODEL in [model["id"] for model in out[0]["data"]]
