"""The ``on_token`` echo of a streamed run: never the key, and a failing echo costs nothing."""

from __future__ import annotations

from collections.abc import Callable

from connector.engine import notices
from connector.redaction import redact, secret_values


class Echo:
    """``on_token`` made safe: never echoes the key, and its first failure only turns it off."""

    def __init__(self, on_token: Callable[[str], None], secrets) -> None:
        self._on_token = on_token
        self._secrets = tuple(secrets)
        self._keys = secret_values(secrets)
        self._pending = ""  # held back: it could be the start of a key split across tokens
        self._failed = False

    def __call__(self, text: str) -> None:
        if self._failed:
            return
        if not self._keys:
            self._emit(text)
            return
        pending = redact(self._pending + text, self._keys)
        hold = _key_prefix_at_end(pending, self._keys)
        self._pending = pending[len(pending) - hold :]
        if len(pending) > hold:
            self._emit(pending[: len(pending) - hold])

    def flush(self) -> None:
        """Echo what was held back: the reply is over, so no key can complete it any more."""
        if self._pending and not self._failed:
            self._emit(self._pending)
        self._pending = ""

    def _emit(self, text: str) -> None:
        try:
            self._on_token(text)
        except Exception as exc:  # a progress echo (e.g. a closed stderr) must not cost the reply
            self._failed = True
            reason = redact(f"{type(exc).__name__}: {exc}", self._secrets)
            notices.warn(
                "echo_stopped", f"progress echo stopped ({reason}); the completion carries on."
            )


def _key_prefix_at_end(text: str, keys: list[str]) -> int:
    """Return the length of the longest end of ``text`` that begins some key."""
    longest = 0
    for key in keys:
        i = text.find(key[0], max(0, len(text) - len(key) + 1))
        while i != -1:
            if key.startswith(text[i:]):
                longest = max(longest, len(text) - i)
                break
            i = text.find(key[0], i + 1)
    return longest
