"""Output shaping: the API's reply made to carry every key path of the action's example.

A later workflow step can always read e.g. ``choices[0].message.content`` or
``usage.prompt_tokens_details.cached_tokens``: keys the API (or a compatible server) left out
are present as null, and keys the API added pass through unchanged.
"""

from __future__ import annotations

from typing import Any

# A skeleton mirrors the example: a dict of sub-skeletons, a one-item list of the item skeleton,
# or None for a leaf (its value passes through; null when missing).
Skeleton = dict[str, Any] | list | None


def skeleton(example: Any) -> Skeleton:
    """Return the key-path skeleton of an example value."""
    if isinstance(example, dict):
        return {k: skeleton(v) for k, v in example.items()}
    if isinstance(example, list) and example and isinstance(example[0], dict):
        return [skeleton(example[0])]
    return None


_skeletons: dict[int, tuple[dict, Skeleton]] = {}


def skeleton_for(example: dict) -> Skeleton:
    """Return the (cached) skeleton of an action's example output."""
    # Keyed by identity (the entry keeps the example alive): the manifest's examples never
    # change, and encoding one to find its key would cost more than the shaping.
    entry = _skeletons.get(id(example))
    if entry is None or entry[0] is not example:
        entry = _skeletons[id(example)] = (example, skeleton(example))
    return entry[1]


def shape(skel: Skeleton, value: Any) -> Any:
    """Return ``value`` with every key path of ``skel`` present, extra keys kept."""
    if isinstance(skel, dict):
        if not isinstance(value, dict):
            if value is not None:
                return value  # an unexpected type passes through rather than being lost
            value = {}
        # Leaves (None) take the value as is: most keys are leaves, and a call each adds up.
        out = {
            key: value.get(key) if sub is None else shape(sub, value.get(key))
            for key, sub in skel.items()
        }
        for key, extra in value.items():
            if key not in out:
                out[key] = extra
        return out
    if isinstance(skel, list):
        if isinstance(value, list):
            return [shape(skel[0], item) for item in value]
        return value
    return value
