"""The runner: a form and a connection in, the example-shaped output (or a ConnectorError) out."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

from connector.engine import notices, plan
from connector.engine.body import build_body
from connector.engine.echo import Echo
from connector.engine.forms import Notes, invalid
from connector.engine.hooks import hook
from connector.engine.loader import load_manifest
from connector.engine.output import shape
from connector.errors import (
    ConnectorError,
    InternalError,
    InvalidInput,
    RequestRejected,
)
from connector.manifest.spec import Action
from connector.redaction import redact, secret_values
from connector.transport.connection import Connection, env_values
from connector.transport.policy import check_base_url
from connector.transport.providers import provider_for

log = logging.getLogger("connector")

UNSUPPORTED_CODES = frozenset({"unsupported_parameter", "unsupported_value"})
_LOCAL_PLACEHOLDER = "http://127.0.0.1:0/v1"  # dry-run only: the port is chosen at start


def labelled(exc: ConnectorError) -> ConnectorError:
    """Return ``exc`` with the connection's form labels where the transport named fields."""
    if isinstance(exc, InvalidInput):
        return exc.labelled(plan.connection_labels(load_manifest()))
    return exc


RESOLVED_SIZE = 64


def resolve_connection(
    connection: Connection | Mapping[str, Any] | None = None, *, require_key: bool = True
) -> Connection:
    """Return a Connection from a Connection, a mapping of form values, or the environment.

    ``require_key=False`` accepts a missing API key (a dry run sends nothing, so needs none).
    """
    if isinstance(connection, Connection):
        return connection
    raw = env_values() if connection is None else connection
    if not isinstance(raw, Mapping):
        raise InvalidInput(
            f"The connection must be an object of settings, not {type(raw).__name__}."
        )
    # A worker passes the same settings run after run: coerce them once. The value's type is in
    # the key because 1, 1.0 and True are equal keys but not equally valid settings. The
    # compiled manifest keeps them, so a reloaded manifest starts afresh.
    resolved = load_manifest().connections
    try:
        key = tuple((k, type(v), v) for k, v in raw.items())
        conn = resolved.get(key)
    except TypeError:  # a list or dict value: not hashable, coerced every time
        key, conn = None, None
    if conn is None:
        conn = _connection(raw)
        if key is not None:
            if len(resolved) >= RESOLVED_SIZE:
                resolved.clear()
            resolved[key] = conn
    if require_key:
        _check_key(conn)
    return conn


def _connection(raw: Mapping[str, Any]) -> Connection:
    manifest = load_manifest()
    form, defaults = plan.connection_form(manifest), plan.connection_defaults(manifest)
    values, errors = form.coerce(raw, max_chars=100_000, max_depth=8)
    if errors:
        secrets = [str(raw.get(p.name) or "") for p in manifest.connection.fields if p.secret]
        raise invalid(errors, "connection").redacted(secrets)
    if "allowed_hosts" in values:
        values["allowed_hosts"] = tuple(h.lower() for h in values["allowed_hosts"])
    if "base_url" in values:
        values["base_url"] = values["base_url"].rstrip("/")
    return Connection(**{**defaults, **values})


def make_connection(**settings: Any) -> Connection:
    """Return a Connection of ``settings``, already typed, with the manifest's defaults for the rest.

    Nothing is coerced or checked here (``resolve_connection`` does that for form text).
    """
    return Connection(**{**plan.connection_defaults(load_manifest()), **settings})


def _check_key(conn: Connection) -> None:
    try:
        provider_for(conn.provider).check_key(conn.api_key)
    except InvalidInput as exc:  # resolve_connection is called on its own too (worker, server)
        raise labelled(exc) from None


def _endpoint(conn: Connection, *, start: bool) -> Connection:
    """Point a `local` connection at the embedded server (started on first use)."""
    if not provider_for(conn.provider).embedded:
        return conn
    if conn.base_url != plan.connection_defaults(load_manifest())["base_url"]:
        return conn
    if not start:
        return conn._replace(base_url=_LOCAL_PLACEHOLDER)
    from connector.transport import local  # llama.cpp's server: only for the local provider
    from connector.transport.registry import transport_for  # requests: only when a call is sent

    server = local.shared_server()
    conn = conn._replace(base_url=server.base_url)
    # A failed request asks the server whether it died, so a crash is named, not retried.
    transport_for(conn).peer_check = server.crash_error
    return conn


def _prepare(
    action_id: str, form: Mapping[str, Any] | None, connection: Any, start: bool, notes: Notes
):
    action = load_manifest().action(action_id)
    try:
        conn = resolve_connection(connection, require_key=start)
    except InvalidInput as bad_connection:
        _raise_with_form_problems(bad_connection, action, form)
    body = build_body(action, form or {}, conn, notes)
    conn = _endpoint(conn, start=start)
    check_base_url(conn)
    return action, conn, body


def _raise_with_form_problems(bad_connection: InvalidInput, action: Action, form) -> NoReturn:
    """Raise the connection's problem together with the form's, so one fix round suffices."""
    try:
        build_body(action, form or {}, make_connection(), Notes())
    except InvalidInput as bad_form:
        also = f" Also, {bad_form.message[0].lower()}{bad_form.message[1:]}"
        fields = [*(bad_connection.fields or []), *(bad_form.fields or [])]
        raise bad_connection.replace(message=bad_connection.message + also, fields=fields) from None
    raise bad_connection from None


def prepare(
    action_id: str,
    form: Mapping[str, Any] | None = None,
    connection: Any = None,
    *,
    on_warning: Callable[[dict], None] | None = None,
) -> dict:
    """Return the request ``{method, url, headers, body}`` that ``run`` would send, key redacted.

    ``warnings`` lists the run's warnings, when there are any (what the input rules read
    leniently, a deprecated field, ...); each is also told to ``on_warning`` as for ``run``.
    """
    conn = None
    notes = Notes()
    heard: list[dict] = []
    known = _Known()
    target = on_warning or notices.listener()  # else only the document says them

    def told(warning: dict) -> None:
        heard.append(warning)
        if target is not None:
            target(warning)

    try:
        with notices.heard(_listener(told, known)):
            action, conn, body = _prepare(action_id, form, connection, False, notes)
            known.learn(action, conn)
            for warning in notes.warnings:
                notices.tell(warning)
        from connector.transport.registry import transport_for  # requests: only when a call is sent

        stream = bool(body and body.get("stream"))
        prepared = transport_for(conn).prepare(action.method, action.path, body, stream=stream)
        if heard:
            prepared = {**prepared, "warnings": heard}
        return redact(prepared, conn.secrets)
    except ConnectorError as exc:
        raise labelled(exc).redacted(conn.secrets if conn else ()) from None


class _Known:
    """What a run's listener learns once the form is read: the key, and the form's labels."""

    def __init__(self) -> None:
        self.secrets: tuple[str, ...] = ()
        self.labels: dict[str, str] = {}

    def learn(self, action: Action, conn: Connection) -> None:
        self.secrets = conn.secrets
        self.labels = {p.name: p.label for p in action.parameters}


def _listener(on_warning: Callable[[dict], None] | None, known: _Known):
    """Return the listener of a run's warnings: ``on_warning``, else the caller's, else the log.

    An action's hook names a field by its name: the listener adds its label. No warning ever
    holds the key.
    """
    target = on_warning or notices.listener()

    def told(warning: dict) -> None:
        if "label" not in warning and warning.get("name") in known.labels:
            warning = {"name": warning["name"], "label": known.labels[warning["name"]], **warning}
        if known.secrets:
            warning = redact(warning, known.secrets)
        if target is None:
            log.warning("%s", notices.described(warning))
        else:
            target(warning)

    return told


def run(
    action_id: str,
    form: Mapping[str, Any] | None = None,
    connection: Connection | Mapping[str, Any] | None = None,
    *,
    on_token: Callable[[str], None] | None = None,
    on_attempts: Callable[[int], None] | None = None,
    on_warning: Callable[[dict], None] | None = None,
) -> dict:
    """Run an action and return its example-shaped output; raise a ConnectorError on failure.

    ``on_attempts(n)`` is told how many HTTP requests the reply took (retries included); a
    failure carries that number in the error's ``attempts``. ``on_warning(warning)`` is told
    each warning (``{"kind", "message"}``, and ``name`` and ``label`` for a field's; see
    ``notices``), which else go to the ``connector`` logger. The output is the same either way.
    """
    known = _Known()
    with notices.heard(_listener(on_warning, known)):
        return _run(action_id, form, connection, on_token, on_attempts, known)


def _run(action_id, form, connection, on_token, on_attempts, known: _Known) -> dict:
    conn = None
    notes = Notes()
    try:
        action, conn, body = _prepare(action_id, form, connection, True, notes)
        known.learn(action, conn)
        for warning in notes.warnings:
            notices.tell(warning)
        from connector.transport.registry import transport_for  # requests: only when a call is sent

        if on_token is not None and not (body and body.get("stream")):
            notices.warn(
                "no_stream",
                "Tokens are echoed only for a streamed reply: set Stream (stream=true) to see"
                " them as they arrive. This reply comes whole.",
            )
        echo = Echo(on_token, conn.secrets) if on_token is not None else None
        try:
            reply = _send(transport_for(conn), action, body, conn, echo)
        finally:
            if echo is not None:
                echo.flush()
        if on_attempts is not None:
            on_attempts(reply.attempts)
        try:
            output = shape(plan.output_template(action), reply.data)
            finish = hook(action, "finish")
            if finish is not None:
                output = finish(output, body or {})
        except ConnectorError as exc:  # the reply came back but failed a check: say which one
            raise exc.replace(
                status=exc.status or reply.status,
                request_id=exc.request_id or reply.request_id,
                attempts=exc.attempts or reply.attempts,
            ) from None
        return _without_keys(output, conn.secrets)
    except ConnectorError as exc:
        raise labelled(exc).redacted(conn.secrets if conn else _raw_secrets(connection)) from None
    except Exception as exc:  # a bug: keep the class, message and place, never the key
        raise internal_error(exc, conn.secrets if conn else _raw_secrets(connection)) from None


def _without_keys(output: dict, secrets) -> dict:
    """Return the output with any key the server echoed back replaced by ``***``."""
    keys = secret_values(secrets)
    if not keys:
        return output
    import json

    text = json.dumps(output)  # keys are plain ASCII: JSON escaping leaves them as they are
    if not any(k in text for k in keys):
        return output
    notices.warn("key_echoed", "The reply contained the API key; it was replaced by ***.")
    return redact(output, keys)


def internal_error(exc: BaseException, secrets) -> InternalError:
    """Return an InternalError naming the exception and where it was raised, secrets removed."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    # Chained from None: the original exception may hold the key in its args or locals.
    return InternalError(f"Internal error: {type(exc).__name__}: {exc}{where}").redacted(secrets)


def _raw_secrets(connection: Any) -> list[str]:
    if isinstance(connection, Mapping):
        return [str(connection.get("api_key") or "")]
    return [env_values().get("api_key", "")]


def _send(transport, action: Action, body: dict | None, conn: Connection, on_token):
    stream = bool(body and body.get("stream"))
    aggregator = hook(action, "stream_aggregator") if stream else None
    if stream and aggregator is None:
        raise InvalidInput(
            f"{action.title} cannot stream: its action module defines no stream_aggregator."
        )
    kw = {"stream": stream, "on_token": on_token, "aggregator": aggregator}
    try:
        return transport.send(action.method, action.path, body, **kw)
    except RequestRejected as exc:
        if body is None or exc.code not in UNSUPPORTED_CODES or not exc.param:
            raise
            # The error names the field as sent, which the provider may have renamed (max_tokens).
        sent = re.split(r"[.\[]", str(exc.param), maxsplit=1)[0]
        field = sent if sent in body else provider_for(conn.provider).body_field(sent)
        param = _param_for(action, field)
        label = f"{param.label} ({field})" if param else field
        model = body.get("model")
        required = {p.target for p in action.parameters if p.required}
        if conn.drop_unsupported_params and field in body and field not in required:
            about = {"name": param.name, "label": param.label} if param else {"name": field}
            notices.warn(
                "dropped",
                f"The model '{model}' rejected {label}; sent again without it"
                " (Drop Unsupported Parameters).",
                **about,
            )
            retry = {k: v for k, v in body.items() if k != field}
            try:
                reply = transport.send(action.method, action.path, retry, **kw)
            except ConnectorError as again:  # count the rejected send too
                raise again.replace(attempts=(again.attempts or 1) + (exc.attempts or 1)) from None
            return reply._replace(attempts=reply.attempts + (exc.attempts or 1))
        what = "this value of" if exc.code == "unsupported_value" else ""
        message = (
            f"The model '{model}' does not accept {what + ' ' if what else ''}{label}: "
            f"{exc.message} Fix: clear the {param.label if param else field} field"
            f"{' or pick a supported value' if what else ''}, or turn on Drop Unsupported "
            "Parameters in the connection."
        )
        raise exc.replace(message=message) from None


def _param_for(action: Action, field: str):
    for p in action.parameters:
        if p.target == field and not p.send_as:
            return p
    return None


def options(
    action_id: str,
    field: str,
    connection: Any = None,
    *,
    on_attempts: Callable[[int], None] | None = None,
) -> list[dict[str, str]]:
    """Return dropdown options ``[{value, label}]`` for a field that declares ``options``."""
    action = load_manifest().action(action_id)
    param = next((p for p in action.parameters if p.name == field), None)
    if param is None or param.options is None:
        raise InvalidInput(f"{action.title}: field '{field}' has no dropdown options.")
    source = load_manifest().action(param.options.action)
    output = run(source.id, {}, connection, on_attempts=on_attempts)
    to_options = hook(source, "options")
    if to_options is not None:
        return to_options(output)
    key = param.options.value
    return [{"value": item[key], "label": item[key]} for item in output.get("data") or []]
