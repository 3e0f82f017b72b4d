"""A slow, rate-limited Chat Completions upstream on loopback (asyncio), for fan-out tests.

Each admitted call is answered after ``delay`` seconds with a chat.completion whose content
echoes the last message (so every caller can check it got its own answer). With ``rate``, a
token bucket of ``burst`` requests refilling at ``rate`` a second admits calls as the API
does: beyond it, 429 ``rate_limit_exceeded`` at once, with OpenAI's ``x-ratelimit-*`` headers
and ``retry-after-ms`` (every reply carries the ``x-ratelimit-*`` headers, as OpenAI's do).
Thousands of connections cost it little: one event loop, no thread per call.

``GET /stats`` answers {"admitted", "refused", "in_flight", "max_in_flight"}; ``POST /reset``
zeroes them and fills the bucket. Run on its own:
``python tests/upstream.py --delay 5 [--rate 10 --burst 10]`` prints the port, serves until
stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import threading
import time
from dataclasses import dataclass, field


def reset_text(seconds: float) -> str:
    """Return a wait as OpenAI writes it: ``20ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{max(1, math.ceil(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:.0f}s" if minutes else f"{rest:.3g}s"


@dataclass
class Bucket:
    """The upstream's request budget: ``burst`` requests, refilled at ``rate`` a second."""

    rate: float
    burst: float
    level: float = 0.0
    at: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.level = self.burst

    def take(self) -> bool:
        now = time.monotonic()
        self.level = min(self.burst, self.level + (now - self.at) * self.rate)
        self.at = now
        if self.level >= 1:
            self.level -= 1
            return True
        return False

    def headers(self) -> dict[str, str]:
        left = max(0.0, self.level)
        out = {
            "x-ratelimit-limit-requests": f"{self.burst:g}",
            "x-ratelimit-remaining-requests": str(int(left)),
            "x-ratelimit-reset-requests": reset_text((self.burst - left) / self.rate),
        }
        return out


class Upstream:
    """The server's state: delay, bucket, counters."""

    def __init__(self, delay: float, rate: float = 0.0, burst: float = 0.0) -> None:
        self.delay = delay
        self.rate, self.burst = rate, burst or rate
        self.bucket = Bucket(rate, self.burst) if rate else None
        self.stats = {"admitted": 0, "refused": 0, "in_flight": 0, "max_in_flight": 0}
        self.port = 0

    def reset(self) -> None:
        self.bucket = Bucket(self.rate, self.burst) if self.rate else None
        self.stats = dict.fromkeys(self.stats, 0)

    async def answer(self, method: str, path: str, body: bytes) -> tuple[int, dict, bytes]:
        if path.endswith("/stats"):
            return 200, {}, json.dumps(self.stats).encode()
        if path.endswith("/reset"):
            self.reset()
            return 200, {}, b"{}"
        if method == "GET" and path.endswith("/models"):
            return 200, {}, json.dumps({"object": "list", "data": [{"id": "gpt-4o-mini"}]}).encode()
        if not path.endswith("/chat/completions"):
            return 404, {}, b'{"error": {"message": "not found", "type": "invalid_request_error"}}'
        if self.bucket is not None and not self.bucket.take():
            self.stats["refused"] += 1
            wait = (1 - self.bucket.level) / self.rate
            headers = {**self.bucket.headers(), "retry-after-ms": str(math.ceil(wait * 1000))}
            error = {
                "message": "Rate limit reached for requests. Please try again later.",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
            return 429, headers, json.dumps({"error": error}).encode()
        headers = self.bucket.headers() if self.bucket is not None else {}
        self.stats["admitted"] += 1
        self.stats["in_flight"] += 1
        self.stats["max_in_flight"] = max(self.stats["max_in_flight"], self.stats["in_flight"])
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.stats["in_flight"] -= 1
        return 200, headers, json.dumps(completion(body)).encode()

    async def serve_connection(self, reader, writer) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip()
                    for k, _, v in (line.partition(":") for line in lines[1:] if line)
                }
                body = await reader.readexactly(int(headers.get("content-length") or 0))
                status, extra, payload = await self.answer(method, path, body)
                writer.write(_reply(status, extra, payload))
                await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ValueError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def completion(body: bytes) -> dict:
    """Return a chat.completion whose content echoes the request's last message."""
    try:
        messages = json.loads(body).get("messages") or [{}]
        said = messages[-1].get("content") or ""
    except (ValueError, AttributeError, TypeError):
        said = ""
    text = said if isinstance(said, str) else json.dumps(said)
    return {
        "id": "chatcmpl-upstream",
        "object": "chat.completion",
        "created": 1901345026,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f"echo: {text}", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
    }


def _reply(status: int, headers: dict[str, str], body: bytes) -> bytes:
    reason = {200: "OK", 404: "Not Found", 429: "Too Many Requests"}[status]
    lines = [f"HTTP/1.1 {status} {reason}", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines += [f"Content-Length: {len(body)}", "x-request-id: req_upstream", "", ""]
    return "\r\n".join(lines).encode() + body


class Running:
    """An upstream served by an event loop in a thread of this process."""

    def __init__(self, delay: float, rate: float = 0.0, burst: float = 0.0) -> None:
        self.upstream = Upstream(delay, rate, burst)
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def start() -> None:
            self.server = await asyncio.start_server(
                self.upstream.serve_connection, "127.0.0.1", 0, backlog=4096
            )
            self.upstream.port = self.server.sockets[0].getsockname()[1]
            ready.set()

        self.thread = threading.Thread(target=self._run, args=(start,), daemon=True)
        self.thread.start()
        ready.wait(10)
        self.base_url = f"http://127.0.0.1:{self.upstream.port}/v1"

    def _run(self, start) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(start())
        self.loop.run_forever()

    @property
    def stats(self) -> dict[str, int]:
        return dict(self.upstream.stats)

    def reset(self) -> None:
        self.loop.call_soon_threadsafe(self.upstream.reset)

    def close(self) -> None:
        """Stop serving: close the listener, end every connection's task, stop the loop."""

        async def shutdown() -> None:
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


def main() -> int:
    """Serve until stdin closes; print the port first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=0.0, help="requests a second (0: no limit)")
    parser.add_argument("--burst", type=float, default=0.0, help="bucket size (default: rate)")
    args = parser.parse_args()
    running = Running(args.delay, args.rate, args.burst)
    sys.stdout.write(f"{running.upstream.port}\n")
    sys.stdout.flush()
    sys.stdin.read()
    running.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
