"""Command line: ``python -m connector run|check|list|describe|options|form-schema|docs|schema|serve|worker|openapi|n8n-node|zapier|node-red``.

stdout carries exactly one JSON document (or a table for humans); messages go to stderr.
The exit code is the error's (``connector.errors.ERROR_TYPES``), 0 on success.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from connector.engine import notices, runner
from connector.engine.loader import check_manifest, load_manifest
from connector.engine.runner import internal_error
from connector.errors import ConnectorError, InvalidInput
from connector.manifest.paths import checkout
from connector.transport.connection import env_values


def _out(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


_line_open = False  # a streamed token left the stderr line unfinished


def _echo(text: str) -> None:
    """Write a streamed token to stderr as it arrives (``--progress``)."""
    global _line_open
    if sys.stderr is None:  # started with stderr closed (2>&-): nothing to echo to
        return
    sys.stderr.write(text)
    sys.stderr.flush()
    _line_open = not text.endswith("\n")


def _err(message: str) -> None:
    global _line_open
    text = message.rstrip() + "\n"
    if _line_open and text.strip():
        text = "\n" + text  # a message starts on a line of its own, after any echoed tokens
    _line_open = False
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):  # AttributeError: sys.stderr is None (2>&-)
        pass  # stderr is for humans: a closed one must not change stdout or the exit code


def _read_mapping(source: str, what: str) -> dict:
    """Read a JSON or YAML object from a file path or '-' (stdin)."""

    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"Cannot read the {what} file {source}: {exc.strerror}.") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidInput(
                f"The {what} file {source} is neither JSON nor YAML: {exc}"
            ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InvalidInput(f"The {what} file {source} must hold an object of field values.")
    return data


def _form(args: argparse.Namespace) -> dict:

    form = _read_mapping(args.input, "input") if args.input else {}
    for item in args.set or ():
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise InvalidInput(f"--set takes NAME=VALUE, got {item!r}.")
        form[name.strip()] = value
    return form


def _connection(args: argparse.Namespace) -> dict | None:
    if not getattr(args, "connection", None):
        return None

    # Settings from the file win; the environment fills what the file leaves out (e.g. the key).
    return {**env_values(), **_read_mapping(args.connection, "connection")}


class _StderrHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        _err(f"warning: {record.getMessage()}")


def cmd_run(args: argparse.Namespace) -> int:

    form, conn = _form(args), _connection(args)
    if args.dry_run:
        # Said on stderr, and in the document's `warnings` for machines.
        told = lambda w: _err(f"warning: {notices.described(w)}")  # noqa: E731
        prepared = runner.prepare(args.action, form, conn, on_warning=told)
        _out(prepared)
        return 0
    output = runner.run(args.action, form, conn, on_token=_echo if args.progress else None)
    if _line_open:
        _err("")
    _out(output)
    return 0


def cmd_check(args: argparse.Namespace) -> int:

    manifest = check_manifest(args.manifest)
    count = sum(len(a.parameters) for a in manifest.actions)
    _err(f"ok: {len(manifest.actions)} actions, {count} parameters, manifest is valid")
    return 0


def cmd_list(args: argparse.Namespace) -> int:

    manifest = load_manifest()
    _out([{"id": a.id, "title": a.title, "description": a.description} for a in manifest.actions])
    return 0


def cmd_describe(args: argparse.Namespace) -> int:
    from connector.views import docs  # a view loads only for its own command

    action = load_manifest().action(args.action)
    if args.json:
        _out(docs.describe(action))
    else:
        sys.stdout.write(docs.table(action))
    return 0


def cmd_options(args: argparse.Namespace) -> int:

    _out(runner.options(args.action, args.field, _connection(args)))
    return 0


def cmd_form_schema(args: argparse.Namespace) -> int:
    from connector.views.formschema import form_schema  # a view loads only for its own command

    _out(form_schema(args.action))
    return 0


def _needs_checkout(command: str) -> Path:
    """Return the source checkout; refuse a developer command in an installed package."""

    root = checkout()
    if root is None:
        raise InvalidInput(
            f"'{command}' is a developer command: it writes or checks the generated files of a"
            " source checkout, and this connector runs from an installed package. Run it in a"
            " clone of the project (python -m connector " + command + ")."
        )
    return root


def _generate(args: argparse.Namespace, write_all, folder: str, what: str, rerun: str) -> int:
    """Write (or with --check, compare) generated files under the checkout's ``folder``."""
    out = Path(args.out or _needs_checkout(args.command) / folder)
    stale = write_all(out, check=args.check)
    if args.check and stale:
        _err("stale: " + ", ".join(stale) + f" (run: python -m connector {rerun})")
        return 1
    _err(f"{what}: up to date" if args.check else f"wrote {what} to {out}")
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    from connector.views import docs  # a view loads only for its own command

    return _generate(args, docs.write_all, "docs", "the docs", "docs")


def cmd_schema(args: argparse.Namespace) -> int:
    from connector.manifest.format import export_schema  # pydantic loads only to export the schema

    path = _needs_checkout("schema") / "schemas" / "manifest.schema.json"
    text = json.dumps(export_schema(), indent=2) + "\n"
    if args.check:
        if not path.is_file() or path.read_text() != text:
            _err(f"stale: {path.name} (run: python -m connector schema)")
            return 1
        _err("manifest schema is up to date")
        return 0
    path.write_text(text)
    _err(f"wrote {path}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    try:
        from connector.server.serving import serve  # falcon and gunicorn load only to serve
        from connector.server.settings import Settings, read_tokens  # only to serve
    except ImportError as exc:
        raise InvalidInput.missing_extra("The action server", "server", exc) from None

    tokens = read_tokens(os.environ, args.token_file)
    picked = {k: getattr(args, k) for k in ("runs_db", "runs_url", "concurrency")}
    settings = Settings.from_env(tokens=tokens, auth=not args.no_auth, **picked)
    serve(settings, host=args.host, port=args.port, workers=args.workers)
    return 0


def cmd_openapi(args: argparse.Namespace) -> int:
    from connector.views.apidocs import text, write_all  # a view loads only for its own command

    if not (args.write or args.check):
        sys.stdout.write(text("swagger.json" if args.swagger2 else "openapi.json"))
        return 0
    return _generate(args, write_all, "docs", "the OpenAPI documents", "openapi --write")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors become invalid_input documents (exit 2)."""

    def error(self, message: str):

        raise InvalidInput(f"{self.prog}: {message}. See --help.")


PROG = "chat-connector"  # the installed command; ``python -m connector`` passes its own name


def _run_args(r: argparse.ArgumentParser) -> None:
    r.add_argument("action")
    r.add_argument("--input", metavar="FILE|-", help="form values as a JSON or YAML object")
    r.add_argument("--set", metavar="NAME=VALUE", action="append", help="one form value (repeat)")
    r.add_argument("--connection", metavar="FILE", help="connection settings (JSON or YAML)")
    r.add_argument("--dry-run", action="store_true", help="print the request; send nothing")
    r.add_argument("--progress", action="store_true", help="echo streamed tokens to stderr")
    r.set_defaults(func=cmd_run)


# The generated host packages: command -> (its view module, its folder under hosts/, what it is).
HOSTS = {
    "n8n-node": ("n8nnode", "n8n", "the n8n community-node package"),
    "zapier": ("zapierapp", "zapier", "the Zapier integration"),
    "node-red": ("nodered", "node-red", "the Node-RED node package"),
}


def cmd_host(args: argparse.Namespace) -> int:
    module, folder, what = HOSTS[args.command]
    # A view loads only for its own command.
    write_all = __import__(f"connector.views.{module}", fromlist=["_"]).write_all
    return _generate(args, write_all, f"hosts/{folder}", what, args.command)


def _host_args(h: argparse.ArgumentParser) -> None:
    h.add_argument("--out", help="folder to write (default: the checkout's one under hosts/)")
    h.add_argument("--check", action="store_true", help="fail if the package is stale")
    h.set_defaults(func=cmd_host)


def _check_args(c: argparse.ArgumentParser) -> None:
    c.add_argument("--manifest", metavar="FILE", help="another manifest file to validate")
    c.set_defaults(func=cmd_check)


def _list_args(x: argparse.ArgumentParser) -> None:
    x.set_defaults(func=cmd_list)


def _describe_args(d: argparse.ArgumentParser) -> None:
    d.add_argument("action")
    d.add_argument("--json", action="store_true", help="machine-readable")
    d.set_defaults(func=cmd_describe)


def _options_args(o: argparse.ArgumentParser) -> None:
    o.add_argument("action")
    o.add_argument("field")
    o.add_argument("--connection", metavar="FILE", help="connection settings (JSON or YAML)")
    o.set_defaults(func=cmd_options)


def _form_schema_args(f: argparse.ArgumentParser) -> None:
    f.add_argument("action")
    f.set_defaults(func=cmd_form_schema)


def _docs_args(g: argparse.ArgumentParser) -> None:
    g.add_argument("--out", help="folder to write (default: the checkout's docs/)")
    g.add_argument("--check", action="store_true", help="fail if the pages are stale")
    g.set_defaults(func=cmd_docs)


def _schema_args(s: argparse.ArgumentParser) -> None:
    s.add_argument("--check", action="store_true", help="fail if the file is stale")
    s.set_defaults(func=cmd_schema)


def _serve_args(v: argparse.ArgumentParser) -> None:
    v.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    v.add_argument("--port", type=int, default=8080, help="port (default 8080; 0 picks one)")
    v.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    v.add_argument("--concurrency", type=int, help="runs in flight per worker (default 1024)")
    v.add_argument("--token-file", metavar="FILE", help="bearer tokens, one a line")
    v.add_argument("--runs-db", metavar="PATH", help="SQLite file of async runs")
    v.add_argument("--runs-url", metavar="URL", help="PostgreSQL queue of async runs")
    v.add_argument("--no-auth", action="store_true", help="no token (loopback only)")
    v.set_defaults(func=cmd_serve)


def _openapi_args(a: argparse.ArgumentParser) -> None:
    a.add_argument("--swagger2", action="store_true", help="OpenAPI 2.0 with the x-ms extensions")
    a.add_argument(
        "--write",
        action="store_true",
        help="write docs/openapi.json, swagger.json, apiProperties.json",
    )
    a.add_argument("--check", action="store_true", help="fail if the written files are stale")
    a.add_argument("--out", help="folder to write (default: the checkout's docs/)")
    a.set_defaults(func=cmd_openapi)


def _lazy(module: str):
    return lambda p: __import__(f"connector.{module}", fromlist=["add_args"]).add_args(p)


# Each command: its help line and what adds its arguments.
COMMANDS = {
    "run": ("run an action and print its output as JSON", _run_args),
    "check": ("validate the manifest", _check_args),
    "list": ("list the actions", _list_args),
    "describe": ("an action's parameters, Basic and Advanced", _describe_args),
    "options": ("dropdown options for a field, e.g. model", _options_args),
    "form-schema": ("an action's form as JSON Schema plus a UI schema", _form_schema_args),
    "docs": ("write one Markdown page per action under docs/ (checkout)", _docs_args),
    "schema": ("export schemas/manifest.schema.json from the models (checkout)", _schema_args),
    "serve": ("run the action server (HTTP, JSON; see docs/server.md)", _serve_args),
    "worker": ("run queued async runs (CONNECTOR_RUNS_URL)", _lazy("server.worker")),
    "openapi": ("print the server's OpenAPI 3.1 document (or Swagger 2.0)", _openapi_args),
    **{
        c: (f"write {what} to hosts/{folder}/ (checkout)", _host_args)
        for c, (_, folder, what) in HOSTS.items()
    },
}


def parser(prog: str = PROG, only: str | None = None) -> argparse.ArgumentParser:
    """Return the argument parser; with ``only`` a known command, just that command's part.

    A process runs one command: building the ten others would cost a cold start about 2 ms.
    """
    p = _Parser(prog=prog, description="OpenAI Create Chat Completion connector.")
    sub = p.add_subparsers(dest="command", required=True)
    for name, (text, add) in COMMANDS.items():
        if only not in COMMANDS or name == only:
            add(sub.add_parser(name, help=text))
    return p


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    """Run the command line; return the exit code."""
    logger = logging.getLogger("connector")
    if not logger.handlers:
        logger.addHandler(_StderrHandler())
        logger.setLevel(logging.WARNING)
        logger.propagate = False

    try:
        given = sys.argv[1:] if argv is None else argv
        args = parser(prog, given[0] if given else None).parse_args(given)
        return args.func(args)
    except ConnectorError as exc:
        _out({"error": exc.to_dict()})
        _err(f"error ({exc.type}): {exc.message}")  # whole: a JSON error's caret line too
        return exc.exit_code
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except Exception as exc:  # a bug; still one JSON document on stdout, without the key
        err = internal_error(exc, [env_values().get("api_key")])
        _out({"error": err.to_dict()})
        _err(f"error (internal): {err.message}")
        return 1
