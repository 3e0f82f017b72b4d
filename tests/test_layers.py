"""The house's rules: each layer imports only the layers below it, and no module imports in a circle.

The layers, from the bottom: ``errors``, ``redaction`` and ``version`` (the one root exception,
redaction policy and version), ``manifest`` (the card), ``transport``, ``engine`` (with the action
modules), ``views``, ``server``, and on top the CLI and the facade (``connector/__init__.py``). Function-level imports count as imports, and each says
in a comment why it waits (start-up time, or a package that only one path needs).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "connector"
# What each layer may import besides itself.
GROUND = {"errors", "redaction", "version"}  # the root exception, the redaction policy, the version
ALLOWED = {
    "errors": {"redaction"},
    "redaction": set(),
    "version": set(),
    "manifest": GROUND,
    "transport": GROUND,
    "engine": {*GROUND, "manifest", "transport", "actions"},
    "actions": {*GROUND, "engine", "transport"},
    "views": {*GROUND, "manifest", "transport", "engine"},
    "server": {*GROUND, "manifest", "transport", "engine", "views"},
    "top": {*GROUND, "manifest", "transport", "engine", "actions", "views", "server"},
}


def layer(module: str) -> str:
    """Return the layer of a module of the package (``connector.engine.forms``: engine)."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("cli", "__main__"):
        return "top"
    return parts[1]


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, range, bool]]:
    """Return (module imported, its lines, inside a function) for each of the package's imports."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    up = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*up, base] if base else up)
                # ``from connector.engine import runner`` imports the module connector.engine.runner
                targets = [
                    f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base
                    for a in child.names
                ]
            for target in targets:
                if target == "connector" or target.startswith("connector."):
                    found.append((target, range(child.lineno, child.end_lineno + 1), nested))
            visit(child, inner)

    visit(tree, False)
    return found


def _is_module(dotted: str) -> bool:
    rel = Path(*dotted.split("."))
    return (PACKAGE.parent / rel).with_suffix(".py").is_file() or (PACKAGE.parent / rel).is_dir()


def graph() -> dict[str, set[str]]:
    """Return module -> the package's modules it imports, function-level imports included."""
    # connector/actions links to the top-level actions/ folder: rglob does not follow it.
    files = [*PACKAGE.rglob("*.py"), *(PACKAGE / "actions").glob("*.py")]
    # ``from connector import X`` with X no module is an import of the facade (the top layer).
    return {_module_name(p): {t for t, _, _ in imports(p)} - {_module_name(p)} for p in files}


def problems(edges: dict[str, set[str]]) -> list[str]:
    """Return each forbidden import and each import circle of a module graph."""
    found = [
        f"{a} ({layer(a)}) imports {b} ({layer(b)})"
        for a, targets in sorted(edges.items())
        for b in sorted(targets)
        if layer(b) != layer(a) and layer(b) not in ALLOWED[layer(a)]
    ]
    return found + [" -> ".join(c) for c in circles(edges)]


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Return the import circles (strongly connected parts of more than one module, or a self loop)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                part.append(w)
                if w == v:
                    break
            if len(part) > 1 or v in edges.get(v, ()):
                out.append(sorted(part))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return out


def test_the_house_keeps_its_rules():
    assert problems(graph()) == []


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (("connector.transport.http", "connector.engine.runner"), "(transport) imports"),
        (("connector.manifest.spec", "connector.engine.forms"), "(manifest) imports"),
        (("connector.engine.runner", "connector.server.app"), "(engine) imports"),
        (("connector.engine.forms", "connector.views.docs"), "(engine) imports"),
        (("connector.errors", "connector.manifest.spec"), "(errors) imports"),
        (("connector.transport.http", "connector"), "(transport) imports connector (top)"),
        (("connector.engine.hooks", "connector.engine.runner"), "connector.engine.hooks -> "),
    ],
)
def test_a_forbidden_import_or_a_circle_is_caught(extra, expected):
    edges = {k: set(v) for k, v in graph().items()}
    edges[extra[0]].add(extra[1])
    assert any(expected in p for p in problems(edges)), problems(edges)


def test_the_layers_are_the_folders():
    assert {layer(m) for m in graph()} == set(ALLOWED)


def _lazy_imports_without_a_reason() -> list[str]:
    bare = []
    for path in sorted({*PACKAGE.rglob("*.py"), *(PACKAGE / "actions").glob("*.py")}):
        lines = path.read_text(encoding="utf-8").splitlines()
        for target, span, nested in imports(path):
            said = [lines[n - 1] for n in span] + [
                lines[span[0] - 2].strip() if span[0] > 1 else ""
            ]
            if nested and not any("#" in text for text in said):
                bare.append(f"{path.relative_to(PACKAGE.parent)}:{span[0]}: {target}")
    return bare


def test_each_function_level_import_says_why_it_waits():
    assert _lazy_imports_without_a_reason() == []


MAX_LINES = 400
ROOT = PACKAGE.parent


def _long_modules(limit: int = MAX_LINES) -> list[str]:
    """Return the hand-written modules of at least ``limit`` lines (generated hosts/ aside)."""
    folders = {"connector": ("*.py", "*.js"), "actions": ("*.py",), "benchmarks": ("*.py",),
               "scripts": ("*",)}  # fmt: skip
    found = []
    for folder, patterns in folders.items():
        for pattern in patterns:
            for path in (ROOT / folder).rglob(pattern):
                if path.is_file() and "__pycache__" not in path.parts and not path.is_symlink():
                    lines = len(path.read_text(encoding="utf-8", errors="replace").splitlines())
                    if lines >= limit:
                        found.append(f"{path.relative_to(ROOT)}: {lines} lines")
    return sorted(found)


def test_no_module_reaches_400_lines():
    assert _long_modules() == []


def test_a_long_module_is_seen():
    assert "connector/transport/http.py" in " ".join(_long_modules(limit=300))
