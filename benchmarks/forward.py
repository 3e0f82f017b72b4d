"""The benchmark's reference: a bare WSGI app that forwards the body to the stub, on the same
gunicorn settings as the action server (``connector.serving.gunicorn_options``).

``python benchmarks/forward.py STUB_BASE_URL WORKERS CONCURRENCY`` prints ``listening on URL``
on stderr, like ``python -m connector serve``.
"""

from __future__ import annotations

import sys
import threading

import requests

from connector.server import Settings
from connector.serving import gunicorn_options, run_gunicorn


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


if __name__ == "__main__":
    base_url, workers, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    options = gunicorn_options(Settings(concurrency=concurrency), port=0, workers=workers)
    options["proc_name"] = "forward-bench"
    run_gunicorn(options, lambda: forwarding_app(base_url + "/chat/completions"))
