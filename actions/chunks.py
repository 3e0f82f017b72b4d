"""Chat streaming: ``chat.completion.chunk`` events collected into one ``chat.completion``.

The chat action's ``stream_aggregator`` hook. Every text is kept as a list of parts joined once
at the end, so aggregation is linear in the size of the reply.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Chunk keys aggregated by hand; other keys pass through, the last non-null value winning.
_TOP_HANDLED = frozenset({"object", "choices", "usage", "obfuscation", "error"})
_CHOICE_HANDLED = frozenset({"index", "delta", "logprobs", "finish_reason"})
# Fields of a tool call or audio fragment that name it rather than grow with each fragment.
_FIRST_WINS = frozenset({"id", "type", "name", "index"})


class _Choice:
    """The parts of one choice collected so far."""

    def __init__(self, index: Any) -> None:
        self.index = index
        self.role: str | None = None
        self.content: list[str] | None = None
        self.refusal: list[str] | None = None
        self.tool_calls: dict[Any, dict[str, Any]] = {}
        self.extra_delta: dict[str, Any] = {}
        self.logprobs: dict[str, list | None] | None = None
        self.finish_reason: Any = None
        self.extra: dict[str, Any] = {}

    def add(self, choice: dict[str, Any]) -> str | None:
        """Add one chunk's choice; return its new content text, if any."""
        delta = choice.get("delta") or {}
        text = None
        for key, value in delta.items() if isinstance(delta, dict) else ():
            if value is None:
                continue
            if key == "role":
                self.role = self.role or value
            elif key == "content" and isinstance(value, str):
                self.content = self.content if self.content is not None else []
                self.content.append(value)
                text = value
            elif key == "refusal" and isinstance(value, str):
                self.refusal = self.refusal if self.refusal is not None else []
                self.refusal.append(value)
            elif key == "tool_calls" and isinstance(value, list):
                for fragment in value:
                    if isinstance(fragment, dict):
                        self._tool_call(fragment)
            else:
                _merge_field(self.extra_delta, key, value)
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict):
            self.logprobs = self.logprobs or {"content": None, "refusal": None}
            for key in ("content", "refusal"):
                tokens = logprobs.get(key)
                if isinstance(tokens, list):
                    if self.logprobs[key] is None:
                        self.logprobs[key] = []
                    self.logprobs[key].extend(tokens)
        if choice.get("finish_reason") is not None:
            self.finish_reason = choice["finish_reason"]
        for key, value in choice.items():
            if key not in _CHOICE_HANDLED and value is not None:
                self.extra[key] = value
        return text

    def _tool_call(self, fragment: dict[str, Any]) -> None:
        index = fragment.get("index")
        if index is None:
            # Some servers omit the index: a new id starts a new call, else the last one grows.
            last = next(reversed(self.tool_calls), None)
            new_id = fragment.get("id")
            if last is None or (new_id and new_id != self.tool_calls[last].get("id")):
                index = len(self.tool_calls)
            else:
                index = last
        call = self.tool_calls.setdefault(index, {})
        for key, value in fragment.items():
            if key != "index" and value is not None:
                _merge_field(call, key, value)

    def result(self) -> dict[str, Any]:
        """Return this choice in the shape of a non-streamed reply."""
        message: dict[str, Any] = {
            "role": self.role or "assistant",
            "content": None if self.content is None else "".join(self.content),
            "refusal": None if self.refusal is None else "".join(self.refusal),
        }
        if self.tool_calls:
            message["tool_calls"] = [
                _finish(call) for _, call in sorted(self.tool_calls.items(), key=_index_order)
            ]
        for key, value in self.extra_delta.items():
            message.setdefault(key, _finish(value))
        out = {
            "index": self.index,
            "message": message,
            "logprobs": self.logprobs,
            "finish_reason": self.finish_reason,
        }
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out


class _Parts(list):
    """Text fragments of one field, joined when the result is built."""


def _merge_field(target: dict[str, Any], key: str, value: Any) -> None:
    """Merge one delta field: names and ids keep their first value, texts grow, lists extend."""
    current = target.get(key)
    if isinstance(value, str):
        if key in _FIRST_WINS:
            if not target.get(key):
                target[key] = value
        elif isinstance(current, _Parts):
            current.append(value)
        else:
            target[key] = _Parts([value])
    elif isinstance(value, dict):
        if not isinstance(current, dict):
            current = target[key] = {}
        for sub_key, sub_value in value.items():
            if sub_value is not None:
                _merge_field(current, sub_key, sub_value)
    elif isinstance(value, list) and isinstance(current, list) and not isinstance(current, _Parts):
        current.extend(value)
    elif isinstance(value, list):
        target[key] = list(value)
    else:
        target[key] = value


def _finish(value: Any) -> Any:
    """Return a merged field with its text parts joined."""
    if isinstance(value, _Parts):
        return "".join(value)
    if isinstance(value, dict):
        return {k: _finish(v) for k, v in value.items()}
    return value


def _index_order(item: tuple[Any, Any]) -> tuple[int, Any]:
    key = item[0]
    return (0, key) if isinstance(key, int) else (1, str(key))


class Aggregator:
    """Collect ``chat.completion.chunk`` objects into one ``chat.completion`` dict."""

    def __init__(self, on_token: Callable[[str], None] | None = None) -> None:
        self.on_token = on_token
        self.top: dict[str, Any] = {}
        self.choices: dict[Any, _Choice] = {}
        self.usage: Any = None
        self.chunks = 0

    def add(self, chunk: dict[str, Any]) -> None:
        """Add one parsed chunk."""
        self.chunks += 1
        for key, value in chunk.items():
            # Azure's first chunk has empty id and model: later ones fill them.
            if key not in _TOP_HANDLED and value is not None and value != "":
                self.top[key] = value
        if chunk.get("usage") is not None:
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            state = self.choices.get(index)
            if state is None:
                state = self.choices[index] = _Choice(index)
            text = state.add(choice)
            # Only the first choice is echoed: with n > 1 interleaved tokens would be noise.
            if text and self.on_token is not None and index == 0:
                self.on_token(text)

    def result(self) -> dict[str, Any]:
        """Return the aggregated completion (also usable as the partial reply of a cut stream)."""
        out: dict[str, Any] = {}
        for key in ("id", "created", "model"):
            if key in self.top:
                out[key] = self.top[key]
        out["object"] = "chat.completion"
        out["choices"] = [c.result() for _, c in sorted(self.choices.items(), key=_index_order)]
        if self.usage is not None:
            out["usage"] = self.usage
        for key, value in self.top.items():
            out.setdefault(key, value)
        return out
