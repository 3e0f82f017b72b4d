"""The benchmark's reference: a bare WSGI app that forwards the body to the stub, on the same
gunicorn settings as the action server (``connector.server.serving.gunicorn_options``).

``python benchmarks/forward.py STUB_BASE_URL WORKERS CONCURRENCY [--through-app]`` prints
``listening on URL`` on stderr, like ``python -m connector serve``. With ``--through-app`` it
serves the action server's own app with ``runner.run`` replaced by the same bare forward, which
measures what the server layer (Falcon, auth, caps, metrics, the log line) costs by itself.
"""

from __future__ import annotations

import sys
import threading

import requests

from connector.server.app import Settings
from connector.server.serving import _log_to_stderr, gunicorn_options, run_gunicorn


def forwarding_app(target: str):
    """Return a WSGI app that POSTs each request body to ``target`` and returns the reply."""
    local = threading.local()

    def app(environ, start_response):
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        reply = session.post(target, data=body, headers={"Content-Type": "application/json"})
        data = reply.content
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
        start_response(f"{reply.status_code} OK", headers)
        return [data]

    return app


def app_with_forwarding_runner(target: str, settings: Settings):
    """Return the action server's app whose runner only forwards the form to ``target``."""
    import json

    from connector.engine import runner
    from connector.server import app as server

    local = threading.local()

    def forward(action_id, form=None, connection=None, **kw):
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        data = json.dumps(form).encode()
        reply = session.post(target, data=data, headers={"Content-Type": "application/json"})
        if kw.get("on_attempts"):
            kw["on_attempts"](1)  # as the runner tells the server
        return json.loads(reply.content)

    runner.run = forward
    return server.create_app(settings)


if __name__ == "__main__":
    base_url, workers, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    settings = Settings.from_env(concurrency=concurrency)
    options = gunicorn_options(settings, port=0, workers=workers)
    options["proc_name"] = "forward-bench"
    target = base_url + "/chat/completions"
    if "--through-app" in sys.argv:
        # The same log line per run as `serve` writes.
        options["post_worker_init"] = lambda worker: _log_to_stderr()
        run_gunicorn(options, lambda: app_with_forwarding_runner(target, settings))
    else:
        run_gunicorn(options, lambda: forwarding_app(target))
