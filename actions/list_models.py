"""List Models: the API's list, and dropdown options for the Model field built from it."""

from __future__ import annotations

import re
from typing import Any

from connector.errors import InvalidResponse

# Model families that cannot take a chat completion; everything else is offered first.
_NOT_CHAT = re.compile(
    r"embedding|whisper|tts|dall-e|gpt-image|moderation|transcribe|davinci|babbage|sora|"
    r"realtime|computer-use|codex-mini|search-api",
    re.IGNORECASE,
)


def finish(output: dict, body: dict | None) -> dict:
    """Check the list has the shape the dropdown needs."""
    if not isinstance(output.get("data"), list):
        raise InvalidResponse("The model list has no 'data' array.", partial=output)
    return output


def is_chat_model(model_id: str) -> bool:
    """Return True when a model ID looks usable with Create Chat Completion."""
    return not _NOT_CHAT.search(model_id)


def options(output: dict[str, Any]) -> list[dict[str, str]]:
    """Return `[{value, label}]` for a dropdown: chat models first, newest first, then the rest."""
    models = [m for m in output.get("data") or [] if isinstance(m, dict) and m.get("id")]
    models.sort(key=lambda m: (not is_chat_model(m["id"]), -(m.get("created") or 0), m["id"]))
    out = []
    for m in models:
        owner = m.get("owned_by")
        label = m["id"] if not owner or owner in ("system", "openai") else f"{m['id']} ({owner})"
        out.append({"value": m["id"], "label": label})
    return out
