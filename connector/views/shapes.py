"""The JSON shapes of the server's own answers, shared by its OpenAPI and Swagger documents.

The error object, a started run, a prepared request, options, the action list, and the headers
a tenant and a poll use. The form and output of each action come from the manifest instead.
"""

from __future__ import annotations

from connector.errors import ERROR_TYPES

KEY_HEADER = "X-OpenAI-Api-Key"
BASE_URL_HEADER = "X-OpenAI-Base-Url"
# An async run's own headers: a retried POST (both stores), and a result pushed (scale-out mode).
IDEMPOTENCY_HEADER = "Idempotency-Key"
CALLBACK_HEADER = "X-Callback-Url"
RUN_HEADERS = {
    IDEMPOTENCY_HEADER: "The same key (from the same token, tenant key and Base URL, while the"
    " run is kept) answers for the same run and starts nothing new: 202 while it runs, then its"
    " result; the same key with another body is a 422.",
    CALLBACK_HEADER: "Scale-out mode only: an https URL that receives a POST of the result,"
    " signed with HMAC-SHA256 in X-Connector-Signature.",
}

# The run's warnings (JSON: a list of warnings) on /run, /dry-run and the async run's result.
WARNINGS_HEADER = "X-Connector-Warnings"
WARNINGS_HEADERS = {
    WARNINGS_HEADER: (
        "string",
        "Sent only when the run had warnings (a form repaired, a reply cut at the token limit, a"
        ' parameter dropped, ...): a JSON list of {"kind", "message"}, with "name" and "label"'
        " for a field's; the output itself is unchanged.",
    )
}

# An error's field problems, and the warnings of text read leniently (line and column: JSON text).
FIELD_NOTES = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["name", "message"],
        "properties": {
            "name": {"type": "string"},
            "label": {"type": "string"},
            "kind": {"type": "string", "description": "A warning's kind (docs/output.md)."},
            "message": {"type": "string", "description": "Without the label (its own key)."},
            "path": {"type": "string"},
            "line": {"type": "integer"},
            "column": {"type": "integer"},
        },
    },
}
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message", "retryable"],
            "properties": {
                "type": {"type": "string", "enum": list(ERROR_TYPES)},
                "message": {"type": "string"},
                "retryable": {"type": "boolean"},
                "status": {"type": ["integer", "null"], "description": "The API's HTTP status."},
                "code": {"type": ["string", "integer", "null"]},
                "param": {"type": ["string", "null"]},
                "request_id": {"type": ["string", "null"]},
                "attempts": {"type": ["integer", "null"]},
                "retry_after": {"type": ["number", "null"]},
                "body": {"type": ["string", "null"], "description": "The raw reply, capped."},
                "partial": {
                    "description": "What arrived before a failure, or the output a check rejected."
                },
                "fields": FIELD_NOTES,
                "warnings": FIELD_NOTES,
            },
        }
    },
}
ACCEPTED = {
    "type": "object",
    "required": ["id", "state", "location"],
    "properties": {
        **{k: {"type": "string"} for k in ("id", "action", "location")},
        # "queued" only in scale-out mode (CONNECTOR_RUNS_URL), which also says the attempts.
        "state": {"type": "string", "enum": ["queued", "running"]},
        "attempts": {"type": "integer", "description": "Workers that took the run up so far."},
    },
}
PREPARED = {
    "type": "object",
    "required": ["method", "url", "headers"],
    "properties": {
        "method": {"type": "string"},
        "url": {"type": "string"},
        "headers": {"type": "object", "additionalProperties": {"type": "string"}},
        "body": {"type": ["object", "null"]},
        "warnings": FIELD_NOTES,
    },
}
OPTIONS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["value", "label"],
        "properties": {"value": {"type": "string"}, "label": {"type": "string"}},
    },
}
ACTIONS = {
    "type": "array",
    "items": {
        "type": "object",
        "required": ["id", "title", "description"],
        "properties": {k: {"type": "string"} for k in ("id", "title", "description")},
    },
}
OBJECT = {"type": "object"}
HEALTH = {
    "type": "object",
    "required": ["status", "parts"],
    "properties": {
        "status": {"type": "string", "enum": ["ok", "unavailable"]},
        "parts": {
            "type": "object",
            "description": "Each part's readiness: `ok`, or what is wrong (never a secret).",
            "properties": {"runs": {"type": "string"}, "connection": {"type": "string"}},
            "additionalProperties": {"type": "string"},
        },
    },
}
POLL_HEADERS = {
    "Location": ("string", "The absolute URL to poll."),
    "Retry-After": ("integer", "Seconds until the next poll."),
}
