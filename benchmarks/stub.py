"""A stub Chat Completions server on loopback for the benchmark: fast, threaded, keep-alive.

``POST .../chat/completions`` answers the platform page's example response; with
``"stream": true`` it answers a stream of ``STREAM_CHUNKS`` content chunks (plus a usage chunk
when ``stream_options.include_usage`` asks for one) in chunked transfer encoding, one event per
HTTP chunk, as the API does. Every reply is built once at start-up, so the server costs the
clients being measured as little as possible.

Run on its own: ``python benchmarks/stub.py [--chunks N]`` prints ``PORT`` on the first line of
stdout and serves until stdin closes or the process is ended.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STREAM_CHUNKS = 20_000
MAX_BODY = 1024 * 1024

# The example response of the platform page (seeds/000), as the API sends it.
COMPLETION = {
    "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
    "object": "chat.completion",
    "created": 1901345026,
    "model": "gpt-4o-mini-2024-07-18",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Hello! How can I assist you today?",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 29,
        "completion_tokens": 20,
        "total_tokens": 49,
        "prompt_tokens_details": {"cached_tokens": 2, "audio_tokens": 2},
        "completion_tokens_details": {
            "reasoning_tokens": 2,
            "audio_tokens": 2,
            "accepted_prediction_tokens": 2,
            "rejected_prediction_tokens": 1,
        },
    },
    "service_tier": "default",
    "system_fingerprint": None,
}
NOT_FOUND = b'{"error": {"message": "not found", "type": "invalid_request_error"}}'
_WORDS = ("Hello", "!", " How", " can", " I", " assist", " you", " today", "?")


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None) -> dict:
    return {
        "id": COMPLETION["id"],
        "object": "chat.completion.chunk",
        "created": COMPLETION["created"],
        "model": COMPLETION["model"],
        "service_tier": "default",
        "system_fingerprint": "fp_f7d56a8a2c",
        "choices": []
        if usage
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": usage,
    }


def stream_text(chunks: int) -> str:
    """Return the text a client must aggregate from a stream of ``chunks`` content chunks."""
    return "".join(_WORDS[i % len(_WORDS)] for i in range(chunks))


def stream_events(chunks: int, *, usage: bool) -> list[bytes]:
    """Return the SSE events of a streamed reply with ``chunks`` content chunks."""
    events = [_chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [_chunk({"content": _WORDS[i % len(_WORDS)]}) for i in range(chunks)]
    events.append(_chunk({}, finish="stop"))
    if usage:
        counts = {"prompt_tokens": 29, "completion_tokens": chunks, "total_tokens": chunks + 29}
        events.append(_chunk({}, usage=counts))
    out = [b"data: " + json.dumps(e, separators=(",", ":")).encode() + b"\n\n" for e in events]
    return [*out, b"data: [DONE]\n\n"]


def chunked(events: list[bytes]) -> bytes:
    """Return the events as a chunked transfer-encoded body, one event per HTTP chunk."""
    return b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the API
    disable_nagle_algorithm = True  # with Nagle, a reply in two writes waits ~40 ms for an ACK
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, MAX_BODY))
        if not self.path.endswith("/chat/completions"):
            self.wfile.write(self.server.not_found)
            return
        # A cheap look instead of json.loads: the server's cost is not what is measured.
        compact = body.replace(b" ", b"")
        if b'"stream":true' in compact:
            usage = b'"include_usage":true' in compact
            self.wfile.write(self.server.stream_usage if usage else self.server.stream_plain)
            return
        self.wfile.write(self.server.completion)

    def log_message(self, format: str, *args) -> None:
        pass


def _reply(status: str, content_type: str, body: bytes, *, chunked: bool = False) -> bytes:
    """Return a whole HTTP reply, written with one call so no Nagle wait splits it."""
    length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}"
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n{length}\r\n"
        "x-request-id: req_bench\r\n\r\n"
    )
    return head.encode() + body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, chunks: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        sse = "text/event-stream; charset=utf-8"
        self.completion = _reply("200 OK", "application/json", json.dumps(COMPLETION).encode())
        self.not_found = _reply("404 Not Found", "application/json", NOT_FOUND)
        usage, plain = (chunked(stream_events(chunks, usage=u)) for u in (True, False))
        self.stream_usage = _reply("200 OK", sse, usage, chunked=True)
        self.stream_plain = _reply("200 OK", sse, plain, chunked=True)


def start(chunks: int = STREAM_CHUNKS) -> tuple[_Server, threading.Thread]:
    """Start the stub in a thread of this process; return the server and its thread."""
    server = _Server(chunks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, thread


def main() -> int:
    """Serve until stdin closes; print the port first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=STREAM_CHUNKS)
    args = parser.parse_args()
    server, _ = start(args.chunks)
    sys.stdout.write(f"{server.server_address[1]}\n")
    sys.stdout.flush()
    sys.stdin.read()  # the parent closes stdin (or dies): stop
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
