"""The manifest: fixtures, the real file's coverage of the seeds and schema, drift and staleness."""

import json
from pathlib import Path

import pytest
from conftest import key_paths

from connector.engine import validation
from connector.engine.loader import load_manifest
from connector.engine.runner import make_connection
from connector.manifest.format import export_schema
from connector.manifest.spec import ManifestError
from connector.transport.connection import Connection
from connector.views import docs

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "manifests"
VALID = sorted((FIXTURES / "valid").glob("*.yaml"))
INVALID = sorted((FIXTURES / "invalid").glob("*.yaml"))
MANIFEST = load_manifest()
CHAT = MANIFEST.action("create_chat_completion")

# The platform page's tables (seed 000): label -> visibility.
SEED_PAGE = {
    "Messages": "basic",
    "Model": "basic",
    "Max Completion Tokens": "advanced",
    "Reasoning Effort": "advanced",
    "Stop": "advanced",
    "Temperature": "advanced",
    "User": "advanced",
}
# The SDK's parameter list (seed 002).
SEED_SDK = [
    "messages", "model", "temperature", "max_completion_tokens", "max_tokens", "stream", "tools",
    "tool_choice", "response_format", "frequency_penalty", "presence_penalty", "seed", "stop", "n",
    "logprobs", "top_logprobs", "reasoning_effort", "store",
]  # fmt: skip
# Every key path of the platform page's Example Output.
SEED_OUTPUT_PATHS = {
    "id", "object", "created", "model", "choices", "choices.index", "choices.message",
    "choices.message.role", "choices.message.content", "choices.message.refusal",
    "choices.message.annotations", "choices.logprobs", "choices.finish_reason", "usage",
    "usage.prompt_tokens", "usage.completion_tokens", "usage.total_tokens",
    "usage.prompt_tokens_details", "usage.prompt_tokens_details.cached_tokens",
    "usage.prompt_tokens_details.audio_tokens", "usage.completion_tokens_details",
    "usage.completion_tokens_details.reasoning_tokens", "usage.completion_tokens_details.audio_tokens",
    "usage.completion_tokens_details.accepted_prediction_tokens",
    "usage.completion_tokens_details.rejected_prediction_tokens", "service_tier", "system_fingerprint",
}  # fmt: skip


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_fixtures_load(path):
    manifest = load_manifest(path)
    assert manifest.actions


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_fixtures_fail_with_their_error(path):
    expected = path.read_text().splitlines()[0].removeprefix("# error: ")
    with pytest.raises(ManifestError) as exc:
        load_manifest(path)
    assert path.name in exc.value.message, "the error names the file"
    assert expected in exc.value.message


def test_the_manifest_is_parsed_once_per_process():
    assert load_manifest() is load_manifest()


@pytest.mark.parametrize(("label", "visibility"), SEED_PAGE.items())
def test_seed_page_parameters_keep_their_label_and_place(label, visibility):
    (param,) = [p for p in CHAT.parameters if p.label == label]
    assert param.visibility == visibility


@pytest.mark.parametrize("name", SEED_SDK)
def test_seed_sdk_parameters_are_all_form_fields(name):
    assert CHAT.param(name).description


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("stop", {"max_items": 4, "input": "list", "single_as_string": True}),
        ("temperature", {"minimum": 0, "maximum": 2}),
        ("top_p", {"minimum": 0, "maximum": 1}),
        ("frequency_penalty", {"minimum": -2, "maximum": 2}),
        ("presence_penalty", {"minimum": -2, "maximum": 2}),
        ("n", {"minimum": 1, "maximum": 128}),
        ("top_logprobs", {"minimum": 0, "maximum": 20}),
        ("safety_identifier", {"max_length": 64}),
        (
            "max_tokens",
            {
                "deprecated": True,
                "replaced_by": "max_completion_tokens",
                "send_as": "max_completion_tokens",
            },
        ),
        ("user", {"deprecated": True, "replaced_by": "safety_identifier"}),
        ("messages", {"required": True, "min_items": 1}),
        ("model", {"required": True}),
    ],
)
def test_constraints_follow_the_seeds_and_schema(name, rule):
    param = CHAT.param(name)
    for key, value in rule.items():
        assert getattr(param, key) == value, key


@pytest.mark.parametrize(
    "name", json.loads(validation.REQUEST_SCHEMA_PATH.read_text(encoding="utf-8"))["properties"]
)
def test_every_official_body_field_can_be_sent(name):
    param = next((p for p in CHAT.parameters if name in (p.name, p.target)), None)
    if param is None:
        # Not a form field: Additional Parameters takes it (a wrong value is the schema's to judge).
        from connector.engine.body import build_body
        from connector.errors import InvalidInput

        form = {"model": "m", "messages": "Hi", "additional_parameters": {name: True}}
        try:
            assert build_body(CHAT, form, make_connection(api_key="k"))[name] is True
        except InvalidInput as exc:
            assert not any("has its own field" in e["message"] for e in exc.fields), exc.fields
    else:
        assert not param.merge


def test_enum_parameters_match_the_official_schema():
    for p in CHAT.parameters:
        if p.input == "enum":
            assert sorted(p.enum) == sorted(validation.official_enum(p.target)), p.name


def test_model_options_come_from_list_models():
    options = CHAT.param("model").options
    assert options.action == "list_models" and options.free_text


def test_no_defaults_are_injected():
    assert all(p.default is None for a in MANIFEST.actions for p in a.parameters)


def test_example_output_has_every_seed_key_path_and_adds_up():
    example = CHAT.output.example
    assert key_paths(example) == SEED_OUTPUT_PATHS
    usage = example["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


# The Python type each manifest type stands for in the Connection class.
CONNECTION_TYPES = {"string": "str", "number": "float", "integer": "int", "boolean": "bool",
                    "array": "tuple[str, ...]"}  # fmt: skip


def test_connection_fields_match_the_connection_class():
    declared = {f.name: f for f in MANIFEST.connection.fields}
    assert set(Connection._fields) == set(declared)
    assert Connection._field_defaults == {}  # the manifest's defaults are the only ones
    for name in Connection._fields:
        spec = declared[name]
        optional = " | None" if spec.default is None and spec.type != "array" else ""
        annotation = Connection.__annotations__[name].__forward_arg__  # NamedTuple wraps the text
        assert annotation == CONNECTION_TYPES[spec.type] + optional, name
    assert [f.name for f in MANIFEST.connection.fields if f.secret] == ["api_key"]


def test_manifest_schema_has_not_drifted():
    committed = json.loads((ROOT / "schemas" / "manifest.schema.json").read_text())
    assert committed == export_schema(), "run: python -m connector schema"


def test_manifest_file_satisfies_the_exported_schema():
    import yaml
    from jsonschema import Draft202012Validator

    data = yaml.safe_load((ROOT / "manifest.yaml").read_text())
    errors = list(Draft202012Validator(export_schema()).iter_errors(data))
    assert not errors, errors[0].message


@pytest.mark.parametrize("name", sorted(docs.pages()))
def test_generated_docs_are_fresh(name):
    committed = ROOT / "docs" / name
    assert committed.is_file() and committed.read_text() == docs.pages()[name], (
        "run: python -m connector docs"
    )


@pytest.mark.parametrize(
    ("page", "part"), [(page, part) for page, parts in docs.parts().items() for part in parts]
)
def test_generated_parts_of_hand_written_pages_are_fresh(page, part):
    committed = (ROOT / "docs" / page).read_text()
    assert docs.splice(committed, part, docs.parts()[page][part]) == committed, (
        "run: python -m connector docs"
    )


START, END = docs.PART_START.format(name="t"), docs.PART_END


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"prose\n{START}\nold\n{END}\nmore", f"prose\n{START}\nnew\n{END}\nmore"),
        (f"{START}\n{END}", f"{START}\nnew\n{END}"),
        (f"a\n{START}\nold\n{END}\nb\n{END}", f"a\n{START}\nnew\n{END}\nb\n{END}"),
    ],
)
def test_splice_replaces_only_the_generated_part(text, expected):
    assert docs.splice(text, "t", "new\n") == expected


@pytest.mark.parametrize("text", ["no marks", f"{START}\nno end", f"{END} before {START}\n"])
def test_splice_refuses_a_page_without_its_marks(text):
    with pytest.raises(ValueError, match="marks of its generated part 't'"):
        docs.splice(text, "t", "new\n")


def test_write_all_rewrites_the_generated_part_and_keeps_the_prose(tmp_path):
    for name in docs.parts():
        page = (ROOT / "docs" / name).read_text()
        (tmp_path / name).write_text(page.replace("| `internal` | 500 |", "| `internal` | 599 |"))
    assert set(docs.parts()) <= set(docs.write_all(tmp_path, check=True))
    docs.write_all(tmp_path)
    assert docs.write_all(tmp_path, check=True) == []
    for name in docs.parts():
        assert (tmp_path / name).read_text() == (ROOT / "docs" / name).read_text()


def test_chat_page_reads_like_the_platform_page():
    page = (ROOT / "docs" / "create_chat_completion.md").read_text()
    order = ["# Create Chat Completion", "## Basic Parameters", "| Messages |", "| Model |",
             "## Advanced Parameters", "| Max Completion Tokens |", "| Reasoning Effort |", "| Stop |",
             "| Temperature |", "| User |", "## Example Output", "## Errors"]  # fmt: skip
    positions = [page.index(s) for s in order]
    assert positions == sorted(positions)
    assert "from `0` to `2`" in page and "Up to 4 items" in page


@pytest.mark.parametrize(
    ("line", "changed", "name", "expected"),
    [
        ("      default: 600\n", "      default: 42\n", "timeout", 42.0),
        ("      default: 2\n", "      default: 5\n", "max_retries", 5),
    ],
)
def test_connection_defaults_apply_from_the_manifest(
    tmp_path, monkeypatch, line, changed, name, expected
):
    from connector.engine import runner

    text = (ROOT / "manifest.yaml").read_text()
    assert text.count(line) == 1
    (tmp_path / "manifest.yaml").write_text(text.replace(line, changed))
    monkeypatch.setenv("CONNECTOR_MANIFEST", str(tmp_path / "manifest.yaml"))
    conn = runner.resolve_connection({"api_key": "k"})
    value = getattr(conn, name)
    assert value == expected and type(value) is type(expected)


def test_every_way_to_a_connection_has_the_manifest_s_defaults():
    from connector.engine import runner

    resolved = runner.resolve_connection({}, require_key=False)
    made = runner.make_connection()
    assert [(type(v), v) for v in resolved] == [(type(v), v) for v in made]
    assert made._replace(allowed_hosts=(), api_key=None) == made  # None or () when undeclared
    assert (made.base_url, made.timeout, made.max_retries) == (
        "https://api.openai.com/v1",
        600.0,
        2,
    )


def test_the_version_is_declared_once():
    """connector/version.py is the one declaration: pyproject.toml reads it, the manifest has none."""
    import tomllib
    from importlib import metadata

    import yaml

    import connector
    from connector.engine.checks import check

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    attr = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["dynamic"]
    assert attr["version"] == {"attr": "connector.version.__version__"}
    declared = [p for p in (ROOT / "connector").rglob("*.py") if "__version__ = " in p.read_text()]
    assert [p.name for p in declared] == ["version.py"]
    assert metadata.version("openai-chat-connector") == connector.__version__
    assert "version" not in yaml.safe_load((ROOT / "manifest.yaml").read_text())["connector"]
    with pytest.raises(ManifestError, match="version"):  # the format refuses a second one
        minimal = yaml.safe_load((FIXTURES / "valid" / "minimal.yaml").read_text())
        check({**minimal, "connector": {**minimal["connector"], "version": "1.0.0"}})


def _transport_texts() -> list[tuple[str, int, str]]:
    """Return the string constants of the transport's code (docstrings left out)."""
    import ast

    texts = []
    for path in sorted((ROOT / "connector" / "transport").glob("*.py")):
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            is_text = isinstance(node, ast.Constant) and isinstance(node.value, str)
            if is_text and id(node) not in docstrings:
                texts.append((path.name, node.lineno, node.value))
    return texts


def test_the_transport_names_connection_fields_by_name_never_by_label():
    """Labels are the manifest's; the transport writes `name`, the engine puts the label in."""
    import re

    labels = {f.name: f.label for f in MANIFEST.connection.fields}
    texts = _transport_texts()
    named = {m for _, _, text in texts for m in re.findall(r"(?<!`)`([a-z_]+)`(?!`)", text)}
    other = {"partial", "local"}  # an error field and a package extra, left as they are
    assert named and named <= set(labels) | other, named - set(labels) - other
    written = [(f, n, label) for f, n, text in texts for label in labels.values() if label in text]
    assert written == []


@pytest.mark.parametrize(
    ("settings", "label"),
    [
        ({"api_key": "sk-abc def"}, "API Key"),
        ({"api_key": "sk-test", "organization": "org 1"}, "Organization ID"),
        ({"api_key": "sk-test", "base_url": "https://x.example/v1?a=1"}, "Base URL"),
        ({"provider": "azure", "base_url": "https://r.openai.azure.com/openai/deployments/d"},
         "API Key"),
        ({"api_key": "k", "provider": "azure",
          "base_url": "https://r.openai.azure.com/openai/deployments/d"}, "API Version"),
    ],
)  # fmt: skip
def test_the_transport_s_errors_reach_the_user_with_the_manifest_s_labels(settings, label):
    from connector.engine import runner
    from connector.errors import InvalidInput

    form = {"model": "gpt-4o-mini", "messages": "Hi"}
    with pytest.raises(InvalidInput) as info:
        runner.run("create_chat_completion", form, settings)  # each fails before sending
    [field] = info.value.fields
    assert field["label"] == label and label in info.value.message, info.value.message
    assert "`" not in info.value.message


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda fields: fields[:-1], "missing: max_sse_line_bytes."),
        (lambda fields: [f for f in fields if f["name"] != "timeout"], "missing: timeout."),
        (lambda fields: [*fields, {**fields[-1], "name": "max_widgets", "label": "Max Widgets"}],
         "not a setting: max_widgets."),
    ],
)  # fmt: skip
def test_a_connection_form_without_every_setting_is_a_manifest_error(
    tmp_path, monkeypatch, change, words
):
    import yaml

    from connector.engine import runner

    data = yaml.safe_load((ROOT / "manifest.yaml").read_text())
    data["connection"]["fields"] = change(data["connection"]["fields"])
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    monkeypatch.setenv("CONNECTOR_MANIFEST", str(tmp_path / "manifest.yaml"))
    with pytest.raises(ManifestError, match=r"connection\.fields must declare each") as info:
        runner.make_connection(api_key="k")
    assert info.value.message.endswith(words)
