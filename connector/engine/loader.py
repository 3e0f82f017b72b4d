"""Loading the manifest: checked in full once, then compiled from a cache while nothing changed.

The full check (``connector.engine.checks``: pydantic, the example against its schema, hooks, official
enums) costs about 100 ms per process, mostly imports. A manifest whose bytes, and the code and
schemas that check it, passed it before is compiled from the normalized data the check recorded.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import os
from pathlib import Path
from typing import Any

from connector.manifest.paths import MANIFEST_PATH, PACKAGE, SCHEMAS
from connector.manifest.spec import Manifest, ManifestError, build

CACHE_FORMAT = 3


def check_inputs() -> list[Path]:
    """Return the files the full check depends on: all of the package's code, every schema.

    Stamping every module (not a list of the check's own) cannot miss one that a change adds;
    pydantic's version is stamped with the action modules (``_module_stamps``).
    """
    return sorted(PACKAGE.rglob("*.py")) + sorted(SCHEMAS.glob("*.json"))


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ManifestError(f"Cannot read the manifest {path}: {exc.strerror}") from None


def _parse_yaml(raw: bytes, path: Path) -> Any:
    import yaml  # only for the full check: a cached manifest is read as JSON

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(raw.decode("utf-8"), Loader=loader)
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{path.name}: not UTF-8 text: {exc}") from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"{path.name}: not valid YAML: {exc}") from None


def cache_dir() -> Path | None:
    """Return the directory of the checked-manifest cache, or None when it is turned off."""
    value = os.environ.get("CONNECTOR_CACHE_DIR")
    if value is not None:
        value = value.strip()
        return Path(value) if value and value.lower() != "off" else None
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "openai-chat-connector"


def _cache_key(raw: bytes) -> str:
    """Return a digest of the manifest bytes and of the code and files that check it."""
    digest = hashlib.sha256(raw)
    digest.update(f"{CACHE_FORMAT}".encode())
    for path in check_inputs():
        digest.update(_stamp(path).encode())
    return digest.hexdigest()


def _stamp(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return f"{path} missing"
    return f"{path} {st.st_mtime_ns} {st.st_size}"


def _module_stamps(names: list[str]) -> dict[str, str]:
    """Return a stamp of each action module's file, found without importing the module."""
    stamps = {}
    for name in names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        stamps[name] = _stamp(Path(spec.origin)) if spec and spec.origin else "not found"
    return stamps


def _cache_file(path: Path) -> Path | None:
    folder = cache_dir()
    if folder is None:
        return None
    return folder / f"manifest-{hashlib.sha256(str(path).encode()).hexdigest()[:16]}.json"


def _cached_data(file: Path | None, key: str) -> Any:
    """Return the data of a manifest that passed the full check, or None."""
    if file is None:
        return None
    try:
        entry = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("key") != key:
        return None
    modules = entry.get("modules")
    if not isinstance(modules, dict) or modules != _module_stamps(list(modules)):
        return None  # an action module changed: its hooks are checked again
    return entry.get("data")


def _store(file: Path | None, key: str, data: Any, manifest: Manifest) -> None:
    """Record that normalized ``data`` passed the full check; skip what JSON cannot carry."""
    if file is None:
        return
    modules = _module_stamps(_stamped_modules(manifest))
    try:
        entry = {"key": key, "modules": modules, "data": data}
        text = json.dumps(entry, ensure_ascii=False, allow_nan=False)
        if json.loads(text)["data"] != data:  # e.g. YAML dates or number keys: not cached
            return
        file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = file.with_name(f"{file.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, file)  # atomic: a concurrent reader sees the old entry or the new one
    except (OSError, TypeError, ValueError):
        pass  # a read-only or full disk only costs the next process the full check


def _stamped_modules(manifest: Manifest) -> list[str]:
    # pydantic checks the format: another version could accept or fill data differently.
    return ["pydantic", *sorted({a.module for a in manifest.actions if a.module})]


def _checked(raw: bytes, file: Path, key: str) -> Manifest:
    """Check the manifest in full (pydantic, hooks, schemas), record it, return it compiled."""
    from connector.engine.checks import (
        check,  # pydantic and jsonschema: only when the cache has no entry
    )

    data, manifest = check(_parse_yaml(raw, file), file.name)
    _store(_cache_file(file), key, data, manifest)
    return manifest


@functools.cache
def _load(path: str) -> Manifest:
    file = Path(path)
    raw = _read_bytes(file)
    key = _cache_key(raw)
    data = _cached_data(_cache_file(file), key)
    if data is not None:
        try:
            return build(data)
        except (TypeError, KeyError, AttributeError):
            pass  # an entry this code did not write: check again, and overwrite it
    return _checked(raw, file, key)


@functools.lru_cache(maxsize=64)
def _resolved(path: str, cwd: str) -> str:
    return str(Path(cwd, path).resolve())


def load_manifest(path: str | os.PathLike | None = None) -> Manifest:
    """Return the compiled manifest, checked once per process per path (or once per change)."""
    raw = os.fspath(path or os.environ.get("CONNECTOR_MANIFEST") or MANIFEST_PATH)
    # Resolving a path costs more than the rest of a lookup; a relative one depends on the cwd.
    return _load(_resolved(raw, "" if os.path.isabs(raw) else os.getcwd()))


def check_manifest(path: str | os.PathLike | None = None) -> Manifest:
    """Return the manifest after the full check, whatever the cache says."""
    file = Path(path or os.environ.get("CONNECTOR_MANIFEST") or MANIFEST_PATH).resolve()
    raw = _read_bytes(file)
    return _checked(raw, file, _cache_key(raw))
