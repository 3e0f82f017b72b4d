"""Tests for the provider table: URLs, headers, body translation, error bodies."""

from __future__ import annotations

import copy

import pytest

from connector.engine.loader import load_manifest
from connector.engine.runner import make_connection
from connector.errors import InvalidInput
from connector.transport import providers

AZURE_DEP = "https://r.openai.azure.com/openai/deployments/dep"
AZURE_V1 = "https://r.openai.azure.com/openai/v1"


def test_the_manifest_lists_exactly_the_registered_providers():
    manifest = load_manifest()
    assert [p.name for p in manifest.providers] == list(providers.PROVIDERS)
    (field,) = [f for f in manifest.connection.fields if f.name == "provider"]
    assert field.enum == list(providers.PROVIDERS)


PROVIDER_LINE = "      input: enum  # its choices are the providers above\n"


@pytest.mark.parametrize(
    ("enum_line", "problem"),
    [
        ("", None),  # left out: filled from `providers`, so the list is said once
        ("      enum: [openai, azure, compatible, local]\n", None),
        ("      enum: [local, openai, compatible, azure]\n", None),
        ("      enum: [openai, azure, local]\n", "must list exactly the providers"),
        ("      enum: [openai, azure, compatible, local, other]\n", "must list exactly"),
    ],
)
def test_the_provider_choices_come_from_the_providers(enum_line, problem):
    import yaml

    from connector.engine.checks import check
    from connector.manifest.paths import MANIFEST_PATH
    from connector.manifest.spec import ManifestError

    text = MANIFEST_PATH.read_text()
    assert text.count(PROVIDER_LINE) == 1
    data = yaml.safe_load(text.replace(PROVIDER_LINE, PROVIDER_LINE + enum_line))
    if problem:
        with pytest.raises(ManifestError, match=problem):
            check(data)
        return
    _, manifest = check(data)
    (field,) = [f for f in manifest.connection.fields if f.name == "provider"]
    assert sorted(field.enum) == sorted(providers.PROVIDERS)


@pytest.mark.parametrize(
    "name, expected",
    [
        ("openai", "openai"),
        (None, "openai"),
        ("", "openai"),
        (" Azure ", "azure"),
        ("LOCAL", "local"),
    ],
)
def test_provider_for(name, expected):
    assert providers.provider_for(name).name == expected


def test_unknown_provider_is_invalid_input():
    with pytest.raises(InvalidInput) as info:
        providers.provider_for("anthropic")
    assert info.value.fields[0]["name"] == "provider"


@pytest.mark.parametrize(
    "provider, base_url, api_version, path, url",
    [
        ("openai", "https://api.openai.com/v1", None, "/chat/completions",
         "https://api.openai.com/v1/chat/completions"),
        ("openai", "https://api.openai.com/v1/", None, "/models", "https://api.openai.com/v1/models"),
        ("compatible", "http://localhost:11434/v1", None, "/chat/completions",
         "http://localhost:11434/v1/chat/completions"),
        ("compatible", "https://gw.example/v1?team=a", None, "/chat/completions",
         "https://gw.example/v1/chat/completions?team=a"),
        ("azure", AZURE_DEP, "2024-10-21", "/chat/completions",
         AZURE_DEP + "/chat/completions?api-version=2024-10-21"),
        ("azure", AZURE_DEP + "/", "2024-10-21", "/chat/completions",
         AZURE_DEP + "/chat/completions?api-version=2024-10-21"),
        ("azure", AZURE_DEP + "?api-version=2024-06-01", None, "/chat/completions",
         AZURE_DEP + "/chat/completions?api-version=2024-06-01"),
        ("azure", AZURE_DEP + "?api-version=2024-06-01", "2024-10-21", "/chat/completions",
         AZURE_DEP + "/chat/completions?api-version=2024-10-21"),
        ("azure", AZURE_DEP, "2024-10-21", "/models",
         "https://r.openai.azure.com/openai/models?api-version=2024-10-21"),
        ("azure", AZURE_V1, None, "/chat/completions", AZURE_V1 + "/chat/completions"),
        ("azure", AZURE_V1 + "/", "preview", "/chat/completions",
         AZURE_V1 + "/chat/completions?api-version=preview"),
    ],
)  # fmt: skip
def test_url(provider, base_url, api_version, path, url):
    connection = make_connection(provider=provider, base_url=base_url, api_version=api_version)
    assert providers.provider_for(provider).url(connection, path) == url


def test_azure_deployment_url_needs_an_api_version():
    connection = make_connection(provider="azure", base_url=AZURE_DEP)
    with pytest.raises(InvalidInput) as info:
        providers.PROVIDERS["azure"].url(connection, "/chat/completions")
    assert "api_version" in info.value.message
    assert info.value.fields[0]["name"] == "api_version"


@pytest.mark.parametrize(
    "provider, key, org, project, expected",
    [
        ("openai", "sk-1", None, None, {"Authorization": "Bearer sk-1"}),
        ("openai", "sk-1", "org-1", "proj_1",
         {"Authorization": "Bearer sk-1", "OpenAI-Organization": "org-1", "OpenAI-Project": "proj_1"}),
        ("azure", "az-key", None, None, {"api-key": "az-key"}),
        ("compatible", None, None, None, {}),
        ("compatible", "or-key", None, None, {"Authorization": "Bearer or-key"}),
        ("local", None, None, None, {}),
    ],
)  # fmt: skip
def test_headers(provider, key, org, project, expected):
    connection = make_connection(provider=provider, organization=org, project=project)
    assert providers.provider_for(provider).headers(key, connection) == expected


LOCAL = "smollm2-135m-instruct"  # the model the local server runs, as its GET /models names it
MESSAGES = [
    {"role": "developer", "content": "Be brief."},
    {"role": "user", "content": "Hi"},
]
SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "answer", "strict": True, "schema": {"type": "object"}},
}


@pytest.mark.parametrize(
    "provider, body, stream, expected",
    [
        ("openai", {"model": "m", "messages": MESSAGES, "max_completion_tokens": 5}, False,
         {"model": "m", "messages": MESSAGES, "max_completion_tokens": 5}),
        ("openai", {"model": "m"}, True,
         {"model": "m", "stream": True, "stream_options": {"include_usage": True}}),
        ("openai", {"model": "m", "stream_options": {"include_obfuscation": False}}, True,
         {"model": "m", "stream": True,
          "stream_options": {"include_obfuscation": False, "include_usage": True}}),
        ("openai", {"model": "m", "stream_options": {"include_usage": False}}, True,
         {"model": "m", "stream": True, "stream_options": {"include_usage": False}}),
        ("azure", {"model": "m", "messages": MESSAGES}, False, {"model": "m", "messages": MESSAGES}),
        ("compatible", {"model": "m", "messages": MESSAGES, "max_completion_tokens": 5}, False,
         {"model": "m", "max_tokens": 5,
          "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]}),
        ("compatible", {"model": "m", "max_completion_tokens": 5, "max_tokens": 9}, False,
         {"model": "m", "max_tokens": 9}),
        ("compatible", {"model": "m", "response_format": SCHEMA_FORMAT}, True,
         {"model": "m", "response_format": SCHEMA_FORMAT, "stream": True,
          "stream_options": {"include_usage": True}}),
        # The local server runs one model, whatever the form says: its name is sent, and echoed.
        ("local", {"model": "m", "response_format": SCHEMA_FORMAT}, False,
         {"model": LOCAL, "response_format": {"type": "json_object", "schema": {"type": "object"}}}),
        ("local", {"model": "m", "response_format": {"type": "text"}}, False,
         {"model": LOCAL, "response_format": {"type": "text"}}),
        ("local", {"model": "gpt-4o-mini"}, False, {"model": LOCAL}),
    ],
)  # fmt: skip
def test_body_translation(provider, body, stream, expected):
    before = copy.deepcopy(body)
    assert providers.provider_for(provider).body(body, stream=stream) == expected
    assert body == before  # the caller's dict is untouched


@pytest.mark.parametrize(
    "data, expected",
    [
        (
            {"error": {"message": "Unsupported parameter: 'temperature'", "type": "invalid_request_error",
                       "param": "temperature", "code": "unsupported_parameter"}},
            {"message": "Unsupported parameter: 'temperature'", "type": "invalid_request_error",
             "param": "temperature", "code": "unsupported_parameter"},
        ),
        (  # OpenRouter: numeric code, extra metadata
            {"error": {"code": 402, "message": "Insufficient credits", "metadata": {}}},
            {"message": "Insufficient credits", "type": None, "param": None, "code": 402},
        ),
        (  # vLLM: flat
            {"object": "error", "message": "max_tokens too large", "type": "BadRequestError",
             "param": None, "code": 400},
            {"message": "max_tokens too large", "type": "BadRequestError", "param": None, "code": 400},
        ),
        (  # flat without "object"
            {"message": "model not found"},
            {"message": "model not found", "type": None, "param": None, "code": None},
        ),
        (  # Ollama native
            {"error": "model 'x' not found"},
            {"message": "model 'x' not found", "type": None, "param": None, "code": None},
        ),
        (  # FastAPI validation (llama-cpp-python)
            {"detail": [{"loc": ["body", "messages", 0, "role"], "msg": "field required"}]},
            {"message": "messages.0.role: field required", "type": None, "param": None, "code": None},
        ),
        ({"detail": "Not Found"}, {"message": "Not Found", "type": None, "param": None, "code": None}),
        (  # Azure: nested innererror, status inside
            {"error": {"code": "content_filter", "message": "filtered", "param": "prompt", "status": 400}},
            {"message": "filtered", "type": None, "param": "prompt", "code": "content_filter"},
        ),
        (
            {"error": {"message": "", "code": True}},
            {"message": "no message given", "type": None, "param": None, "code": None},
        ),
        ({"id": "x", "choices": []}, None),
        ([{"error": "x"}], None),
        ("text", None),
        (None, None),
    ],
)  # fmt: skip
def test_read_error(data, expected):
    assert providers.read_error(data) == expected


PARTS = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
IMAGE = [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "x"}}]
CALLS = [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]


@pytest.mark.parametrize(
    "message, local, compatible",
    [
        ({"role": "user", "content": PARTS}, {"role": "user", "content": "a\nb"}, None),
        ({"role": "developer", "content": PARTS}, {"role": "system", "content": "a\nb"},
         {"role": "system", "content": PARTS}),
        ({"role": "tool", "tool_call_id": "c", "content": PARTS},
         {"role": "tool", "tool_call_id": "c", "content": "a\nb"}, None),
        ({"role": "user", "content": IMAGE}, None, None),  # images cannot be flattened
        ({"role": "user", "content": []}, None, None),
        ({"role": "assistant", "content": None, "tool_calls": CALLS},
         {"role": "assistant", "content": "", "tool_calls": CALLS}, None),
        ({"role": "assistant", "tool_calls": CALLS},
         {"role": "assistant", "content": "", "tool_calls": CALLS}, None),
        ({"role": "assistant", "content": PARTS}, None, None),
    ],
)  # fmt: skip
def test_local_flattens_message_content(message, local, compatible):
    before = copy.deepcopy(message)
    for name, expected in (("local", local), ("compatible", compatible), ("openai", None)):
        body = providers.provider_for(name).body({"messages": [message]}, stream=False)
        assert body["messages"] == [expected or message]
    assert message == before


def test_local_drops_nulls():
    body = {"model": "m", "temperature": None, "stop": None, "n": 1}
    assert providers.PROVIDERS["local"].body(body, stream=False) == {"model": LOCAL, "n": 1}
    assert providers.PROVIDERS["compatible"].body(body, stream=False) == body


VALIDATION = (
    "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'messages', 0, 'role')}"
    '\n\n  File "/x/llama_cpp/server/app.py", line 376, in create_chat_completion\n    POST /v1'
)


@pytest.mark.parametrize(
    "provider, status, message, expected",
    [
        ("local", 500, VALIDATION, 400),
        ("local", 500, "2 validation errors:\n...", 400),
        ("local", 500, "CUDA out of memory", 500),
        ("local", 503, VALIDATION, 503),
        ("compatible", 500, VALIDATION, 500),
        ("openai", 500, VALIDATION, 500),
    ],
)
def test_error_status(provider, status, message, expected):
    fields = {"message": message, "type": None, "param": None, "code": None}
    assert providers.provider_for(provider).error_status(status, fields) == expected
    assert providers.provider_for(provider).error_status(status, None) == status


@pytest.mark.parametrize(
    "message, expected",
    [
        (
            VALIDATION,
            "1 validation error:\n  {'type': 'literal_error', 'loc': ('body', 'messages', 0, 'role')}",
        ),
        ("boom\nTraceback (most recent call last):\n  x", "boom"),
        ("plain", "plain"),
        ('\n  File "x"', '\n  File "x"'),  # nothing would be left: keep it all
    ],
)
def test_error_message_drops_tracebacks(message, expected):
    assert providers.PROVIDERS["local"].error_message(message) == expected


@pytest.mark.parametrize(
    ("provider", "sent", "field"),
    [
        ("openai", "max_completion_tokens", "max_completion_tokens"),
        ("openai", "temperature", "temperature"),
        ("compatible", "max_tokens", "max_completion_tokens"),
        ("local", "max_tokens", "max_completion_tokens"),
        ("compatible", "temperature", "temperature"),
    ],
)
def test_body_field_undoes_the_providers_rename(provider, sent, field):
    assert providers.provider_for(provider).body_field(sent) == field
