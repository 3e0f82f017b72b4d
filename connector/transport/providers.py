"""Providers: how each kind of server wants its URL, headers and body, and how it words errors.

One class per provider, registered in ``PROVIDERS``; ``manifest.yaml`` gives each a label and a
description for the form and the docs, and its load fails when the two name different providers. Body translation always returns a new dict: the caller's is never touched.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from connector import errors
from connector.errors import ConnectorError, InvalidInput
from connector.redaction import excerpt
from connector.transport.connection import Connection

# Azure's classic routes put the deployment in the path and need ``api-version``.
_AZURE_DEPLOYMENT = re.compile(r"^(?P<root>.*/openai)/deployments/[^/]+$")
# llama-cpp-python answers a request it rejects with 500 "1 validation error:\n ..." and a traceback.
_VALIDATION_ERROR = re.compile(r"^\d+ validation errors?\b")
_TRACEBACK = re.compile(r"\n\s*(Traceback \(most recent call last\)|File \")")
_TEXT_ROLES = frozenset({"system", "developer", "user", "tool"})


class Provider:
    """The OpenAI API itself; each other kind of server is a subclass that says what differs.

    Adding a provider is one subclass here, registered in ``PROVIDERS``, plus its entry (label,
    description) in the manifest's ``providers`` list; the manifest check fails until both exist.
    """

    name = "openai"
    key_header = "Authorization"
    key_required = True
    embedded = False  # the connector starts the server itself (see connector/transport/local.py)
    max_tokens_field = "max_completion_tokens"
    developer_role = "developer"
    stream_usage = True
    json_schema_format = True
    flat_content = False  # the server takes only string content
    drop_nulls = False  # the server rejects explicit nulls

    def __repr__(self) -> str:
        return f"<provider {self.name}>"

    def url(self, connection: Connection, path: str) -> str:
        """Return the full URL for an API path such as ``/chat/completions``."""
        scheme, netloc, base_path, query, _ = urlsplit(connection.base_url.strip())
        base_path = base_path.rstrip("/")
        params = dict(parse_qsl(query, keep_blank_values=True))
        base_path = self._route(connection, base_path, params, path)
        return urlunsplit((scheme, netloc, base_path + path, urlencode(params), ""))

    def _route(self, connection: Connection, base_path: str, params: dict, path: str) -> str:
        """Return the base path for ``path``, adding any query parameters the server needs."""
        return base_path

    def check_key(self, api_key: str | None) -> None:
        """Raise InvalidInput when this provider needs a key and none is set."""
        if self.key_required and not api_key:
            raise InvalidInput.of_field(
                "api_key",
                f"`api_key` is required for provider '{self.name}'. Set OPENAI_API_KEY, or"
                " api_key in the connection. To run without a key, use the embedded local model:"
                " OPENAI_PROVIDER=local (provider 'local', model smollm2); for another key-less"
                " server, provider 'compatible' with its `base_url`.",
                "is required for provider " + self.name,
            )

    def headers(self, api_key: str | None, connection: Connection) -> dict[str, str]:
        """Return the authentication and account headers for this provider."""
        out: dict[str, str] = {}
        if api_key:
            out[self.key_header] = api_key if self.key_header == "api-key" else f"Bearer {api_key}"
        if connection.organization:
            out["OpenAI-Organization"] = connection.organization
        if connection.project:
            out["OpenAI-Project"] = connection.project
        return out

    def body(self, body: dict[str, Any], *, stream: bool) -> dict[str, Any]:
        """Return a copy of the request body in the shape this provider accepts."""
        out = dict(body)
        if stream:
            out["stream"] = True
            if self.stream_usage:
                options = dict(out.get("stream_options") or {})
                options.setdefault("include_usage", True)
                out["stream_options"] = options
        if self.max_tokens_field != "max_completion_tokens" and "max_completion_tokens" in out:
            value = out.pop("max_completion_tokens")
            out.setdefault(self.max_tokens_field, value)
        if isinstance(out.get("messages"), list):
            out["messages"] = [self._message(m) for m in out["messages"]]
        if not self.json_schema_format:
            out["response_format"] = _json_object_format(out.get("response_format"))
            if out["response_format"] is None:
                del out["response_format"]
        if self.drop_nulls:
            out = {k: v for k, v in out.items() if v is not None}
        return out

    def body_field(self, sent: str) -> str:
        """Return the body field that ``body`` sent under the name ``sent`` (the inverse rename)."""
        return "max_completion_tokens" if sent == self.max_tokens_field else sent

    def _message(self, message: Any) -> Any:
        if not isinstance(message, dict):
            return message
        out = message
        if message.get("role") == "developer" and self.developer_role != "developer":
            out = {**out, "role": self.developer_role}
        if self.flat_content:
            content = out.get("content")
            if out.get("role") in _TEXT_ROLES and _all_text_parts(content):
                out = {**out, "content": "\n".join(part["text"] for part in content)}
            elif out.get("role") == "assistant" and out.get("tool_calls") and content is None:
                out = {**out, "content": ""}
        return out

    def error_status(self, status: int, fields: dict[str, Any] | None) -> int:
        """Return the status an error reply stands for (a server may misreport rejections)."""
        return status

    def error_message(self, message: str) -> str:
        """Return the API's error message without any server traceback tail."""
        return _TRACEBACK.split(message, maxsplit=1)[0].strip() or message


def _all_text_parts(content: Any) -> bool:
    return (
        isinstance(content, list)
        and bool(content)
        and all(
            isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
            for p in content
        )
    )


def _json_object_format(fmt: Any) -> Any:
    """Return llama.cpp's form of a json_schema response format: json_object with a schema."""
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return fmt
    spec = fmt.get("json_schema") or {}
    out: dict[str, Any] = {"type": "json_object"}
    if isinstance(spec, dict) and isinstance(spec.get("schema"), dict):
        out["schema"] = spec["schema"]
    return out


class OpenAI(Provider):
    """The OpenAI API."""


class Azure(Provider):
    """Azure OpenAI: the ``api-key`` header; classic deployment routes need ``api-version``."""

    name = "azure"
    key_header = "api-key"

    def _route(self, connection: Connection, base_path: str, params: dict, path: str) -> str:
        deployment = _AZURE_DEPLOYMENT.match(base_path)
        if connection.api_version:
            params["api-version"] = connection.api_version
        if deployment and "api-version" not in params:
            raise InvalidInput.of_field(
                "api_version",
                "Azure deployment URLs need an `api_version` (for example 2024-10-21); set"
                " api_version in the connection, or use the v1 base URL"
                " https://RESOURCE.openai.azure.com/openai/v1.",
                "required",
            )
        # The model list is per resource, not per deployment.
        if deployment and path.rstrip("/") == "/models":
            return deployment["root"]
        return base_path


class Compatible(Provider):
    """Any OpenAI-compatible server: the key is optional, older field and role names."""

    name = "compatible"
    key_required = False
    max_tokens_field = "max_tokens"
    developer_role = "system"


class Local(Compatible):
    """The embedded llama-cpp-python server (as probed on 0.3.36).

    json_schema as json_object + schema, string content only, no nulls; its validation errors
    arrive as HTTP 500; it ignores stream_options (no usage chunk).
    """

    name = "local"
    embedded = True
    json_schema_format = False
    flat_content = True
    drop_nulls = True
    # The one model it serves (its --model_alias): sent in place of the form's, which the server
    # would echo back as the model that answered whatever it was (gpt-4o-mini, smollm2).
    model = "smollm2-135m-instruct"

    def body(self, body: dict[str, Any], *, stream: bool) -> dict[str, Any]:
        out = super().body(body, stream=stream)
        if "model" in out:
            out["model"] = self.model
        return out

    def error_status(self, status: int, fields: dict[str, Any] | None) -> int:
        message = (fields or {}).get("message") or ""
        if status == 500 and _VALIDATION_ERROR.match(message):
            return 400
        return status


# The one registry of providers: the manifest's list is checked against it when it loads.
PROVIDERS: dict[str, Provider] = {cls.name: cls() for cls in (OpenAI, Azure, Compatible, Local)}


def provider_for(name: str | None) -> Provider:
    """Return the provider called ``name`` (``openai`` when empty)."""
    key = (name or "openai").strip().lower()
    if key not in PROVIDERS:
        raise InvalidInput.of_field(
            "provider",
            f"Unknown provider {name!r}; choose one of {', '.join(PROVIDERS)}.",
            "unknown provider",
        )
    return PROVIDERS[key]


def read_error(data: Any) -> dict[str, Any] | None:
    """Return {message, type, param, code} from an error body in any known shape, else None.

    Understood: OpenAI/Azure ``{"error": {...}}``; OpenRouter's numeric ``code``; vLLM's flat
    ``{"object": "error", "message": ...}``; ``{"error": "text"}``; FastAPI's ``{"detail": ...}``.
    """
    if not isinstance(data, dict):
        return None
    inner = data.get("error")
    if isinstance(inner, str) and inner.strip():
        return {"message": inner.strip(), "type": None, "param": None, "code": None}
    if isinstance(inner, dict):
        source = inner
    elif data.get("object") == "error" or (
        isinstance(data.get("message"), str) and "choices" not in data
    ):
        source = data
    elif "detail" in data:
        return {"message": _detail_text(data["detail"]), "type": None, "param": None, "code": None}
    else:
        return None
    message = source.get("message")
    if not isinstance(message, str) or not message.strip():
        message = str(message) if message not in (None, "") else "no message given"
    code = source.get("code")
    if not isinstance(code, str | int) or isinstance(code, bool):
        code = None
    return {
        "message": message.strip(),
        "type": _text_or_none(source.get("type")),
        "param": _text_or_none(source.get("param")),
        "code": code,
    }


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _detail_text(detail: Any) -> str:
    """Return FastAPI's ``detail`` (a text, or a list of validation errors) as one line."""
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                parts.append(f"{where}: {item.get('msg')}" if where else str(item.get("msg")))
            else:
                parts.append(str(item))
        return "; ".join(parts) or "no message given"
    return str(detail)


def event_error(
    payload: Any,
    partial: dict[str, Any] | None,
    *,
    in_stream: bool = False,
    request_id: str | None = None,
    body: bytes | None = None,
) -> ConnectorError:
    """Return the error for an API error reported inside a 200 reply (a body or a stream event)."""
    fields = read_error(payload) or {
        "message": excerpt(json.dumps(payload), 200),
        "type": None,
        "param": None,
        "code": None,
    }
    code = fields["code"]
    details = ", ".join(f"{k}: {fields[k]}" for k in ("type", "code", "param") if fields[k])
    message = "The API reported an error in the reply: " + fields["message"]
    if details:
        message += f" ({details})"
    if request_id:
        message += f" (request id: {request_id})"
    return errors.error_for_status(
        None,
        message,
        in_stream=in_stream,
        code=code,
        param=fields["param"],
        partial=partial,
        request_id=request_id,
        body=body,
    )
