"""End-to-end tier: the platform page's workflow (chat completion, then email), run for real.

Run with ``pytest -m e2e``. On loopback, each for real: the embedded llama.cpp model, the
action server (``python -m connector serve``), an SMTP server (aiosmtpd), a webhook receiver,
and n8n 2.8.4 (installed by scripts/setup-n8n). The example workflows in examples/n8n/ are
imported as they ship, with only their Settings node and credentials filled in for this
machine. Nothing here skips: a part that cannot start fails the tier.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from actionserver import TOKEN
from faultserver import FaultServer
from mailserver import MailServer
from n8nhost import N8n

from connector.engine.loader import load_manifest
from connector.transport import local
from connector.views import n8nnode

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
MODEL = local.MODEL_ALIAS
PROMPT = "Write one short sentence about the sea."
# Past the model's 2048-token context: the model server rejects it (400), an upstream error.
TOO_LONG = "hello " * 3000
SUBJECT = "Chat completion (e2e)"
TO = "ops@example.com"


def form(**changes: str) -> dict:
    """Return the Create Chat Completion form the workflows send, as a web form's text."""
    return {
        "model": MODEL,
        "messages": PROMPT,
        "max_completion_tokens": "48",
        "temperature": "0",
        **changes,
    }


@pytest.fixture(scope="session")
def model_env(local_backend) -> dict[str, str]:
    """The environment that points the connector at the local model."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    return env | {"OPENAI_PROVIDER": "local", local.BASE_URL_ENV: local_backend.base_url}


@pytest.fixture(scope="session")
def smtp():
    with MailServer() as server:
        yield server


@pytest.fixture
def mail(smtp):
    """The SMTP server, emptied for this test."""
    smtp.clear()
    return smtp


@pytest.fixture(scope="session")
def webhook():
    """A loopback HTTP server that records what is posted to it, like a chat webhook."""
    with FaultServer(recorder=True) as server:
        yield server


@pytest.fixture(scope="session")
def n8n_package(tmp_path_factory) -> Path:
    """The n8n node as npm publishes it: hosts/n8n/ built (scripts/build-n8n-node: lint, build,
    skipped when current), packed by `npm pack` and unpacked, away from its build tools."""
    build = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-n8n-node")], capture_output=True, text=True
    )
    assert build.returncode == 0, build.stderr[-3000:]
    folder = tmp_path_factory.mktemp("n8n-package")
    subprocess.run(
        ["npm", "pack", "--ignore-scripts", "--pack-destination", str(folder)],
        cwd=ROOT / "hosts" / "n8n", capture_output=True, check=True,
    )  # fmt: skip
    (tarball,) = folder.glob("*.tgz")
    subprocess.run(["tar", "-xzf", str(tarball), "-C", str(folder)], check=True)
    return folder / "package"


def with_credentials(host: N8n, smtp: MailServer, action_server: str) -> N8n:
    """Import the example credentials into an n8n, filled in for here."""
    credentials = json.loads((EXAMPLES / "n8n" / "credentials.json").read_text())
    filled = {
        "httpBearerAuth": {"token": TOKEN},
        "openAiChatConnectorApi": {"url": action_server, "token": TOKEN},
        "smtp": {"host": smtp.host, "port": smtp.port},
    }
    for credential in credentials:
        credential["data"] |= filled[credential["type"]]
    host.import_credentials(credentials)
    return host


@pytest.fixture(scope="session")
def n8n(tmp_path_factory, smtp, action_server, n8n_package):
    """n8n with its own user folder, the connector's generated node (the built dist/ of its
    package, loaded as a custom extension) and the example credentials filled in for here."""
    host = N8n(tmp_path_factory.mktemp("n8n"))
    host.env["N8N_CUSTOM_EXTENSIONS"] = str(n8n_package / "dist")
    return with_credentials(host, smtp, action_server)


@pytest.fixture(scope="session")
def n8n_installed(tmp_path_factory, smtp, action_server, n8n_package):
    """n8n with the node installed as docs/n8n.md says, with `npm install` of the package in
    n8n's nodes folder (here the packed tarball: the package is not published)."""
    host = N8n(tmp_path_factory.mktemp("n8n-installed"))
    nodes = host.folder / ".n8n" / "nodes"
    nodes.mkdir(parents=True)
    (tarball,) = n8n_package.parent.glob("*.tgz")
    # n8n-workflow, the peer dependency, is n8n's own: npm need not (and, offline, cannot) add it.
    install = ["npm", "install", "--offline", "--ignore-scripts", "--legacy-peer-deps"]
    proc = subprocess.run(
        [*install, "--no-audit", "--no-fund", str(tarball)],
        cwd=nodes, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return with_credentials(host, smtp, action_server)


def workflow(name: str, workflow_id: str | None = None, **settings) -> dict:
    """Load an example workflow with values of its Settings node replaced."""
    doc = json.loads((EXAMPLES / "n8n" / f"{name}.json").read_text())
    if workflow_id:
        doc["id"] = workflow_id
        doc["name"] += f" ({workflow_id})"
    node = next(n for n in doc["nodes"] if n["name"] == "Settings")
    assignments = node["parameters"]["assignments"]["assignments"]
    unknown = set(settings) - {a["name"] for a in assignments}
    assert not unknown, f"{name} has no setting {unknown}"
    for item in assignments:
        if item["name"] in settings:
            value = settings[item["name"]]
            item["value"] = json.dumps(value) if item["type"] == "object" else value
    return doc


def run_workflow(n8n: N8n, doc: dict):
    n8n.import_workflow(doc)
    result = n8n.execute(doc["id"])
    assert TOKEN not in result.stdout and TOKEN not in result.stderr
    return result


def content(output: dict) -> str:
    return output["choices"][0]["message"]["content"]


def body_of(message) -> str:
    """Return a mail's text; SMTP ends it with a line break the reply may not have had."""
    return message.get_content().removesuffix("\n")


def assert_one_mail(mail: MailServer, text: str) -> None:
    messages = mail.wait(1)
    assert len(messages) == 1, [m["Subject"] for m in messages]
    assert messages[0]["Subject"] == SUBJECT
    assert messages[0]["To"] == TO
    assert text.strip(), "the reply is empty: nothing worth mailing was tested"
    assert body_of(messages[0]) == text.removesuffix("\n")


# -- Python: examples/python/chat_to_email.py ----------------------------------------------


def run_example(model_env: dict, smtp_port: int, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(EXAMPLES / "python" / "chat_to_email.py")]
    command += ["--to", TO, "--subject", SUBJECT, "--smtp-host", "127.0.0.1"]
    command += ["--smtp-port", str(smtp_port), "--model", MODEL, *args]
    return subprocess.run(
        command, env=model_env, cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_python_example_mails_the_reply(model_env, mail):
    proc = run_example(model_env, mail.port, "--set", "max_completion_tokens=48", PROMPT)
    assert proc.returncode == 0, proc.stderr
    sent = json.loads(proc.stdout)
    assert sent["subject"] == SUBJECT
    assert_one_mail(mail, sent["content"])


@pytest.mark.parametrize(
    ("args", "code", "error_type"),
    [
        (("--set", "temperature=hot", PROMPT), 2, "invalid_input"),
        ((TOO_LONG,), 3, "bad_request"),
    ],
    ids=["invalid-form", "upstream-rejects"],
)
def test_python_example_failure_sends_no_mail(model_env, mail, args, code, error_type):
    proc = run_example(model_env, mail.port, *args)
    assert proc.returncode == code, proc.stderr
    assert json.loads(proc.stdout)["error"]["type"] == error_type
    assert "Traceback" not in proc.stderr
    assert mail.wait(1, timeout=1) == []


def test_python_example_says_when_the_mail_server_is_down(model_env):
    nothing_there = local.free_port()
    proc = run_example(model_env, nothing_there, "--set", "max_completion_tokens=16", PROMPT)
    assert proc.returncode == 6, proc.stderr
    error = json.loads(proc.stdout)["error"]
    assert error["type"] == "mail"
    assert error["content"]  # the reply is not lost
    assert "Traceback" not in proc.stderr


# -- n8n: examples/n8n/*.json --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "node", "reply"),
    [
        ("chat-to-email", "Create Chat Completion", lambda out: out),
        ("chat-to-email-async", "Get Run", lambda out: out["body"]),
    ],
    ids=["sync", "async"],
)
def test_n8n_workflow_mails_the_reply(n8n, action_server, mail, name, node, reply):
    doc = workflow(name, server_url=action_server, form=form(), to=TO, subject=SUBJECT)
    result = run_workflow(n8n, doc)
    assert result.ok, result.stdout[-3000:]
    output = reply(result.output(node)[0])
    assert output["object"] == "chat.completion"
    assert_one_mail(mail, content(output))


def test_n8n_async_workflow_polls_until_done(n8n, action_server, mail):
    # A longer reply, so the first poll finds the run still going (202) and waits Retry-After.
    long_form = form(max_completion_tokens="400", messages="Tell a long story about a ship.")
    doc = workflow(
        "chat-to-email-async",
        "ChatToEmailAsyncLong",
        server_url=action_server,
        form=long_form,
        to=TO,
        subject=SUBJECT,
    )
    result = run_workflow(n8n, doc)
    assert result.ok, result.stdout[-3000:]
    assert result.ran("Get Run") >= 2
    assert result.ran("Wait Retry-After") == result.ran("Get Run") - 1
    assert_one_mail(mail, content(result.output("Get Run")[0]["body"]))


def test_n8n_workflow_posts_the_reply_to_a_chat_webhook(n8n, action_server, webhook):
    hook = webhook.scenario("ok")
    # The recorder answers 200 on its chat path, as a webhook does; any path would do for n8n.
    url = hook.base_url + "/chat/completions"
    doc = workflow("chat-to-webhook", server_url=action_server, form=form(), webhook_url=url)
    result = run_workflow(n8n, doc)
    assert result.ok, result.stdout[-3000:]
    posted = hook.requests
    assert len(posted) == 1
    assert posted[0].method == "POST"
    assert posted[0].header("content-type").startswith("application/json")
    # Slack and Teams incoming webhooks take {"text": ...}.
    assert posted[0].json == {"text": content(result.output("Create Chat Completion")[0])}


SYNC = ("Create Chat Completion",)
ASYNC = ("Start Run",)  # the async route checks the form before it answers 202


@pytest.mark.parametrize(
    ("name", "workflow_id", "bad_form", "nodes", "status", "error_type"),
    [
        ("chat-to-email", "BadFormSync", form(temperature="hot"), SYNC, 422, "invalid_input"),
        ("chat-to-email", "UpstreamSync", form(messages=TOO_LONG), SYNC, 400, "bad_request"),
        ("chat-to-email-async", "BadFormAsync", form(temperature="hot"), ASYNC, 422, "invalid_input"),
        ("chat-to-email-async", "UpstreamAsync", form(messages=TOO_LONG), ("Get Run",), 400, "bad_request"),
    ],
    ids=["sync-invalid-form", "sync-upstream-rejects", "async-invalid-form", "async-upstream-rejects"],
)  # fmt: skip
def test_n8n_failed_step_fails_the_run_and_sends_no_mail(
    n8n, action_server, mail, name, workflow_id, bad_form, nodes, status, error_type
):
    doc = workflow(name, workflow_id, server_url=action_server, form=bad_form, to=TO)
    result = run_workflow(n8n, doc)
    assert result.code != 0
    assert result.data["status"] == "error"
    error = result.error
    assert error["node"]["name"] in nodes
    assert error["httpCode"] == str(status)
    # n8n keeps the connector's error object, so a workflow's error branch can read its type.
    assert f'\\"type\\": \\"{error_type}\\"' in error["messages"][0]
    assert result.ran("Send Email") == 0
    assert mail.wait(1, timeout=1) == []


# -- n8n: the connector's own node (hosts/n8n/, generated by python -m connector n8n-node) -----

NODE = "Create Chat Completion"
# The node's Advanced Parameters that are number fields (max_completion_tokens, ...).
NUMBER_FIELDS = {
    option["name"]
    for prop in n8nnode.node_spec(load_manifest())["description"]["properties"]
    if prop["name"] == "advanced"
    for option in prop["options"]
    if option["type"] == "number"
}


def node_workflow(workflow_id: str, mail_step: bool = True, **parameters) -> dict:
    """Load examples/n8n/chat-to-email-node.json with the node's parameters replaced."""
    doc = workflow("chat-to-email-node", workflow_id, to=TO, subject=SUBJECT)
    node = next(n for n in doc["nodes"] if n["name"] == NODE)
    node["parameters"] |= parameters
    if not mail_step:
        doc["nodes"] = [n for n in doc["nodes"] if n["name"] != "Send Email"]
        del doc["connections"][NODE]
    return doc


def node_form(**changes: str) -> dict:
    """Return the node's parameters for form(): Basic ones on top, the rest in ``advanced``, a
    number field's value as a number (as the editor stores it)."""
    values = form(**changes)
    basic = {k: values.pop(k) for k in ("model", "messages")}
    for name in set(values) & NUMBER_FIELDS:
        values[name] = int(values[name])
    return {"action": "create_chat_completion", **basic, "advanced": values}


def counters(url: str) -> dict[str, float]:
    """Return the action server's counters for Create Chat Completion, by name and outcome."""
    text = requests.get(url + "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).text
    found: dict[str, float] = {}
    pattern = (
        r'^(connector_\w+_total)\{action="create_chat_completion"(?:,outcome="(\w+)")?\} (\S+)'
    )
    for name, outcome, value in re.findall(pattern, text, re.MULTILINE):
        key = f"{name}:{outcome}" if outcome else name
        found[key] = found.get(key, 0) + float(value)
    return found


@pytest.mark.parametrize("wait", [False, True], ids=["sync", "wait-for-async-run"])
def test_n8n_node_mails_the_reply(n8n, action_server, mail, wait):
    ids = {False: "NodeSync", True: "NodeAsync"}
    doc = node_workflow(ids[wait], **node_form(), options={"waitForAsyncRun": wait})
    result = run_workflow(n8n, doc)
    assert result.ok, result.stdout[-3000:]
    output = result.output(NODE)[0]
    assert output["object"] == "chat.completion"
    assert_one_mail(mail, content(output))


@pytest.mark.parametrize(
    ("workflow_id", "changes", "status", "error_type", "message", "upstream"),
    [
        ("NodeBadForm", {"temperature": "hot"}, 422, "invalid_input", "Temperature", 0),
        ("NodeUpstream", {"messages": TOO_LONG}, 400, "bad_request", "", 1),
    ],
    ids=["invalid-form", "upstream-rejects"],
)
def test_n8n_node_failure_fails_the_node_and_sends_no_mail(
    n8n, action_server, mail, workflow_id, changes, status, error_type, message, upstream
):
    before = counters(action_server)
    result = run_workflow(n8n, node_workflow(workflow_id, **node_form(**changes)))
    after = counters(action_server)
    assert result.code != 0
    assert result.data["status"] == "error"
    error = result.error
    assert error["node"]["name"] == NODE
    assert error["httpCode"] == str(status)
    assert message in error["message"]
    assert f"Type: {error_type}." in error["description"]
    assert "Request id: " in error["description"]
    assert result.ran("Send Email") == 0
    assert mail.wait(1, timeout=1) == []
    # The server saw the call; a bad form sent nothing upstream.
    outcome = f"connector_runs_total:{error_type}"
    assert after.get(outcome, 0) == before.get(outcome, 0) + 1
    attempts = "connector_upstream_attempts_total"
    assert (after.get(attempts, 0) - before.get(attempts, 0) >= 1) == bool(upstream)


def test_n8n_node_shows_the_runs_warnings_as_execution_hints(n8n, action_server):
    # Two quotes of inserted text, repaired: the server's X-Connector-Warnings, as n8n's hints.
    messages = '[{"role": "user", "content": "Say "hi" in one word."}]'
    doc = node_workflow("NodeHints", mail_step=False, **node_form(messages=messages))
    result = run_workflow(n8n, doc)
    assert result.ok, result.stdout[-3000:]
    hints = result.data["data"]["resultData"]["runData"][NODE][-1].get("hints") or []
    said = [h["message"] for h in hints if h["message"].startswith("Item 0: Messages: ")]
    assert len(said) == 2, hints  # (the local model's reply may be cut too: a third)
    assert all(m.startswith("Item 0: Messages: line 1, column ") for m in said)
    assert all(h["type"] == "warning" for h in hints)
    assert "warnings" not in result.output(NODE)[0]  # the output keeps the API's shape


def test_n8n_runs_the_node_installed_with_npm_in_its_nodes_folder(n8n_installed, mail):
    doc = node_workflow("NodeInstalled", **node_form())
    node = next(n for n in doc["nodes"] if n["name"] == NODE)
    node["type"] = f"{n8nnode.PACKAGE}.{n8nnode.NODE}"  # as n8n names an installed package's
    result = run_workflow(n8n_installed, doc)
    assert result.ok, result.stdout[-3000:]
    assert_one_mail(mail, content(result.output(NODE)[0]))


def test_n8n_node_continue_on_fail_gives_the_error_document(n8n, action_server):
    doc = node_workflow("NodeContinue", mail_step=False, **node_form(temperature="hot"))
    next(n for n in doc["nodes"] if n["name"] == NODE)["onError"] = "continueRegularOutput"
    result = run_workflow(n8n, doc)
    assert result.ok, result.stdout[-3000:]
    error = result.output(NODE)[0]["error"]
    assert error["type"] == "invalid_input"
    assert "Temperature" in error["message"]


def test_n8n_node_wait_for_async_run_polls_as_retry_after_says(n8n, action_server, mail):
    # The server answers 202 with Retry-After: 2; a one-second budget cannot wait for a poll.
    long_form = node_form(max_completion_tokens="400", messages="Tell a long story about a ship.")
    options = {"waitForAsyncRun": True, "timeout": 1}
    result = run_workflow(n8n, node_workflow("NodeAsyncTimeout", **long_form, options=options))
    assert result.data["status"] == "error"
    assert result.error["node"]["name"] == NODE
    assert re.search(
        r"The run http://\S+/runs/[0-9a-f]{32} was still running", result.error["message"]
    )
    assert mail.wait(1, timeout=1) == []


LOAD_OPTIONS = """
const {OpenAiChatConnector} = require(process.argv[1]);
const [url, token] = [process.argv[2], process.argv[3]];
// What n8n gives a loadOptions method: the credential, and a request helper that applies its
// authenticate rule (here: the bearer header) and answers like n8n's with returnFullResponse.
const context = {
  getNode: () => ({name: 'Create Chat Completion', type: 'CUSTOM.openAiChatConnector'}),
  getCredentials: async () => ({url: url + '/', token}),
  helpers: {
    async httpRequestWithAuthentication(name, options) {
      if (name !== 'openAiChatConnectorApi') throw new Error('credential ' + name);
      const response = await fetch(options.url, {
        method: options.method, headers: {Authorization: 'Bearer ' + token},
      });
      return {statusCode: response.status, headers: Object.fromEntries(response.headers),
              body: await response.json()};
    },
  },
};
const node = new OpenAiChatConnector();
node.methods.loadOptions.optionsCreateChatCompletionModel.call(context).then(
  (options) => console.log(JSON.stringify(options)),
  (error) => { console.log(JSON.stringify({message: error.message, description: error.description})); process.exit(1); },
);
"""


@pytest.mark.parametrize(
    ("token", "code"), [(TOKEN, 0), ("not-the-token", 1)], ids=["ok", "bad-token"]
)
def test_n8n_node_model_options_come_from_the_server(action_server, n8n_package, token, code):
    node_file = (
        n8n_package / "dist" / "nodes" / "OpenAiChatConnector" / "OpenAiChatConnector.node.js"
    )
    env = {**os.environ, "NODE_PATH": str(ROOT / "tests" / "n8n" / "node_modules")}
    proc = subprocess.run(
        ["node", "-e", LOAD_OPTIONS, str(node_file), action_server, token],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == code, proc.stderr
    result = json.loads(proc.stdout)
    if code == 0:
        assert MODEL in [o["value"] for o in result]  # the label is the hook's (id and owner)
        assert all(o["name"].startswith(o["value"]) for o in result)
    else:
        assert "token" in result["message"] and "Type: unauthorized." in result["description"]
    assert token not in proc.stdout


LOADERS = """
const {PackageDirectoryLoader, CustomDirectoryLoader} = require('n8n-core');
(async () => {
  const found = {};
  for (const [Loader, folder] of [[PackageDirectoryLoader, process.argv[1]], [CustomDirectoryLoader, process.argv[2]]]) {
    const loader = new Loader(folder);
    await loader.loadAll();
    found[Loader.name] = {
      nodes: Object.keys(loader.nodeTypes).map((name) => `${loader.packageName}.${name}`),
      credentials: Object.keys(loader.known.credentials),
    };
  }
  console.log(JSON.stringify(found));
})().catch((error) => { console.error(error); process.exit(1); });
"""


def test_n8n_loads_the_node_as_a_community_package_and_as_a_custom_extension(n8n_package):
    # n8n's own loaders (n8n-core): the one of installed community packages reads package.json
    # (its dist/ paths); the one of custom folders finds the built files.
    env = {**os.environ, "NODE_PATH": str(ROOT / "tests" / "n8n" / "node_modules")}
    proc = subprocess.run(
        ["node", "-e", LOADERS, str(n8n_package), str(n8n_package / "dist")],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == {
        "PackageDirectoryLoader": {
            "nodes": ["n8n-nodes-openai-chat-connector.openAiChatConnector"],
            "credentials": ["openAiChatConnectorApi"],
        },
        "CustomDirectoryLoader": {
            "nodes": ["CUSTOM.openAiChatConnector"],
            "credentials": ["openAiChatConnectorApi"],
        },
    }
