"""The checked-manifest cache: a hit skips only the full check; any change is a miss."""

from __future__ import annotations

import json
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest

from connector.engine import checks, loader
from connector.engine.loader import check_manifest, load_manifest
from connector.manifest import format, paths, spec
from connector.manifest.spec import Compiled, ManifestError

ROOT = Path(__file__).resolve().parent.parent
MINIMAL = Path(__file__).parent / "fixtures" / "manifests" / "valid" / "minimal.yaml"
HOOKS = """
def shout(value):
    return value.upper()
"""
WITH_HOOKS = """
connector: {id: t, title: T, description: d}
providers:
  - {name: openai, label: OpenAI, description: d}
  - {name: azure, label: Azure, description: d}
  - {name: compatible, label: C, description: d}
  - {name: local, label: L, description: d}
connection:
  fields:
    - {name: provider, label: Provider, description: d, type: string, input: enum,
       enum: [openai, azure, compatible, local], visibility: basic}
actions:
  - id: echo
    title: Echo
    description: d
    method: POST
    path: /echo
    module: cache_test_hooks
    parameters:
      - {name: text, label: Text, description: d, type: string, input: text,
         transform: shout, example: hi}
    output:
      schema: {type: object}
      example: {ok: true}
"""


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """Point the cache at an empty folder; count full checks; forget loaded manifests."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("CONNECTOR_CACHE_DIR", str(folder))
    full = []
    real = checks.check
    monkeypatch.setattr(checks, "check", lambda *args: full.append(1) or real(*args))
    loader._load.cache_clear()
    yield folder, full
    loader._load.cache_clear()


def load_fresh(path):
    """Load as a new process would: nothing remembered in memory."""
    loader._load.cache_clear()
    return load_manifest(path)


def copy(tmp_path, text, name="manifest.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_second_process_skips_the_full_check_and_gets_the_same_manifest(cache, tmp_path):
    folder, full = cache
    path = copy(tmp_path, MINIMAL.read_text())
    first = load_fresh(path)
    second = load_fresh(path)
    assert full == [1]
    assert _data(second) == _data(first) and second is not first
    assert len(list(folder.glob("manifest-*.json"))) == 1


@pytest.mark.parametrize(
    "change",
    [
        lambda text: text.replace("title: Demo", "title: Demo 2"),
        lambda text: text + "\n# a comment changes the bytes too\n",
    ],
    ids=["value", "comment"],
)
def test_a_changed_manifest_is_checked_again(cache, tmp_path, change):
    _, full = cache
    path = copy(tmp_path, MINIMAL.read_text())
    load_fresh(path)
    path.write_text(change(MINIMAL.read_text()), encoding="utf-8")
    load_fresh(path)
    assert full == [1, 1]


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (lambda text: text.replace("title: Demo", "title: [Demo]"), "title"),
        (lambda text: text + "\nextra_key: 1\n", "extra_key"),
        (lambda text: text.replace("connector:", "connector: [", 1), "not valid YAML"),
    ],
    ids=["bad-value", "extra-key", "not-yaml"],
)
def test_a_manifest_broken_after_a_cached_load_still_fails_clearly(
    cache, tmp_path, broken, expected
):
    path = copy(tmp_path, MINIMAL.read_text())
    load_fresh(path)
    path.write_text(broken(MINIMAL.read_text()), encoding="utf-8")
    with pytest.raises(ManifestError) as exc:
        load_fresh(path)
    assert expected in exc.value.message and path.name in exc.value.message


def test_an_invalid_manifest_is_never_cached(cache, tmp_path):
    folder, _ = cache
    bad = ROOT / "tests" / "fixtures" / "manifests" / "invalid" / "output_example_mismatch.yaml"
    path = copy(tmp_path, bad.read_text())
    for _ in range(2):
        with pytest.raises(ManifestError, match="example does not match schema"):
            load_fresh(path)
    assert not list(folder.glob("manifest-*.json"))


@pytest.mark.parametrize(
    "entry",
    ["not json", "[]", '{"key": "other", "modules": {}, "data": {}}', '{"key": null}'],
)
def test_a_damaged_or_foreign_cache_entry_is_ignored(cache, tmp_path, entry):
    folder, full = cache
    path = copy(tmp_path, MINIMAL.read_text())
    load_fresh(path)
    (cache_file,) = folder.glob("manifest-*.json")
    cache_file.write_text(entry)
    assert load_fresh(path).actions
    assert full == [1, 1]


def test_a_changed_action_module_is_checked_again(cache, tmp_path, monkeypatch):
    _, full = cache
    monkeypatch.syspath_prepend(str(tmp_path))
    hooks = tmp_path / "cache_test_hooks.py"
    hooks.write_text(HOOKS)
    path = copy(tmp_path, WITH_HOOKS)
    load_fresh(path)
    load_fresh(path)
    assert full == [1]
    hooks.write_text(HOOKS.replace("shout", "whisper"))  # the transform is gone
    sys.modules.pop("cache_test_hooks", None)
    with pytest.raises(ManifestError, match="has no 'shout'"):
        load_fresh(path)


def test_a_changed_checking_input_is_checked_again(cache, tmp_path, monkeypatch):
    _, full = cache
    schema = tmp_path / "schema.json"
    schema.write_text("{}")
    real = loader.check_inputs
    monkeypatch.setattr(loader, "check_inputs", lambda: [*real(), schema])
    path = copy(tmp_path, MINIMAL.read_text())
    load_fresh(path)
    schema.write_text('{"changed": true}')
    load_fresh(path)
    assert full == [1, 1]


@pytest.mark.parametrize(
    "path",
    [
        *(
            paths.PACKAGE / "engine" / f"{name}.py"
            for name in ("checks", "forms", "hooks", "loader")
        ),
        *(paths.PACKAGE / "engine" / f"{name}.py" for name in ("output", "validation")),
        *(paths.PACKAGE / "manifest" / f"{name}.py" for name in ("format", "spec", "values")),
        paths.PACKAGE / "transport" / "providers.py",
        *sorted(paths.SCHEMAS.glob("*.json")),
    ],
    ids=lambda p: f"{p.parent.name}/{p.name}",
)
def test_the_cache_key_covers_each_file_the_check_reads(path):
    assert path in loader.check_inputs()


@pytest.mark.parametrize("setting", ["off", "", "  "])
def test_the_cache_can_be_turned_off(tmp_path, monkeypatch, setting):
    monkeypatch.setenv("CONNECTOR_CACHE_DIR", setting)
    assert loader.cache_dir() is None
    assert load_fresh(copy(tmp_path, MINIMAL.read_text())).actions


def test_an_unwritable_cache_only_costs_the_full_check(cache, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("CONNECTOR_CACHE_DIR", str(blocker / "cache"))  # parent is a file
    _, full = cache
    path = copy(tmp_path, MINIMAL.read_text())
    load_fresh(path)
    load_fresh(path)
    assert full == [1, 1]


def test_the_default_cache_is_under_the_user_cache_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("CONNECTOR_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert loader.cache_dir() == tmp_path / "openai-chat-connector"


def test_check_manifest_always_runs_the_full_check(cache, tmp_path):
    _, full = cache
    path = copy(tmp_path, MINIMAL.read_text())
    load_fresh(path)
    check_manifest(path)
    check_manifest(path)
    assert full == [1, 1, 1]


def test_a_cached_entry_holds_the_parsed_data(cache, tmp_path):
    folder, _ = cache
    path = copy(tmp_path, MINIMAL.read_text())
    load_fresh(path)
    (cache_file,) = folder.glob("manifest-*.json")
    entry = json.loads(cache_file.read_text())
    assert set(entry) == {"key", "modules", "data"}
    assert entry["data"]["connector"]["title"] == "Demo"


def test_a_warm_run_imports_no_yaml_jsonschema_or_pydantic(tmp_path):
    """The cold-start path of a valid request: the cache replaces YAML and pydantic, the fast
    check jsonschema, and no module on it needs dataclasses (about 4 ms to import)."""
    code = (
        "import sys, connector\n"
        "connector.prepare('create_chat_completion', {'model': 'gpt-4o-mini', 'messages': 'Hi'},"
        " {'api_key': 'sk-test'})\n"
        "names = ('yaml', 'jsonschema', 'pydantic', 'dataclasses')\n"
        "print(sorted(m for m in names if m in sys.modules))\n"
    )
    env = {"CONNECTOR_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    runs = [
        subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True
        )
        for _ in range(2)
    ]
    assert [r.returncode for r in runs] == [0, 0], runs[-1].stderr
    full_check = json.loads(runs[0].stdout.replace("'", '"'))
    assert full_check == ["dataclasses", "jsonschema", "pydantic", "yaml"]
    assert runs[1].stdout.strip() == "[]"


def _shape(annotation):
    """Return a type as names, a model and its compiled class alike (a Literal as its values')."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return type(args[0]).__name__
    if origin in (types.UnionType, typing.Union):
        return frozenset(_shape(a) for a in args)
    if origin is not None:
        return (origin.__name__, tuple(_shape(a) for a in args))
    return getattr(annotation, "__name__", repr(annotation))


@pytest.mark.parametrize("name", sorted(format.MODELS))
def test_each_compiled_class_has_exactly_its_models_fields_and_types(name):
    """The format is declared once, by the models: a compiled field added, lost or retyped fails."""
    model, compiled = format.MODELS[name], getattr(spec, name)
    hints = typing.get_type_hints(compiled)
    assert {f: _shape(hints[f]) for f in compiled._fields} == {
        f: _shape(info.annotation) for f, info in model.model_fields.items()
    }


def _data(value):
    """Return a compiled object as the data it was built from (keys sorted)."""
    if isinstance(value, Compiled):
        return {name: _data(getattr(value, name)) for name in sorted(value._fields)}
    if isinstance(value, list):
        return [_data(v) for v in value]
    if isinstance(value, dict):
        return {k: _data(value[k]) for k in sorted(value)}
    return value


@pytest.mark.parametrize("path", [ROOT / "manifest.yaml", MINIMAL])
def test_the_compiled_manifest_keeps_every_checked_value(path):
    import yaml

    data, compiled = checks.check(yaml.safe_load(path.read_text()), path.name)
    assert _data(compiled) == _data(data)
    assert _data(compiled)["connector"]["title"] == data["connector"]["title"]  # not empty


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"action": "a", "value": "id"}, "missing or unknown fields ['free_text']"),
        ({"action": "a", "value": "id", "free_text": True, "x": 1}, "fields ['x']"),
    ],
)
def test_a_compiled_object_takes_exactly_its_fields(data, problem):
    with pytest.raises(TypeError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        spec.Options(**data)


def test_a_compiled_object_is_read_only():
    action = load_manifest().action("create_chat_completion")
    with pytest.raises(AttributeError, match="read-only"):
        action.id = "other"
