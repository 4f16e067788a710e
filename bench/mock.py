"""A fast loopback mock upstream: OpenAI chat and Anthropic Messages, JSON and SSE.

The bench must measure the gateway, not the upstream, so this server is kept
as cheap as Python allows: a raw asyncio ``Protocol`` (uvloop when installed),
HTTP/1.1 keep-alive, TCP_NODELAY, canned bodies and no JSON parsing of the
request (the API is chosen by path, streaming by a byte search for
``"stream": true``).

Every content chunk of a stream carries its emission time (``time.monotonic_ns``,
system-wide on Linux) in its text, ``t<ns> ``, so a client on the same machine
measures each chunk's latency through whatever sits in between; translation
keeps the text, so the stamp survives OpenAI<->Anthropic conversion.

One process serves several ports; each port has its own knobs, set with
``POST /_mock/config`` on that port (JSON with any of the fields of ``Knobs``):

- ``chunks``: content events per stream (default 50)
- ``interval_ms``: pause between stream events (0: written back to back)
- ``fail_every``: answer every Nth request with a 503 (0: never); deterministic,
  so 5 means exactly 20% and never 5 failures in a row (outlier detection stays quiet)

``GET /_mock/stats`` returns the port's request and failure counts.

Run: ``python -m bench.mock 18001 18002`` (prints "ready" when listening).
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from dataclasses import asdict, dataclass

JSON_HEADERS = b"content-type: application/json\r\n"
SSE_HEADERS = b"content-type: text/event-stream\r\ncache-control: no-cache\r\n"


@dataclass
class Knobs:
    chunks: int = 50
    interval_ms: float = 0.0
    fail_every: int = 0


@dataclass
class Stats:
    requests: int = 0
    failures: int = 0


# ---- canned bodies --------------------------------------------------------------------------------

OPENAI_JSON = json.dumps({
    "id": "chatcmpl-mock0000000000000000000000", "object": "chat.completion", "created": 1700000000,
    "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_mock",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello from the mock upstream. " * 4,
                                         "refusal": None}, "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 20, "completion_tokens": 28, "total_tokens": 48},
}, separators=(",", ":")).encode()

ANTHROPIC_JSON = json.dumps({
    "id": "msg_mock000000000000000000", "type": "message", "role": "assistant", "model": "claude-haiku-4-5-20251001",
    "content": [{"type": "text", "text": "Hello from the mock upstream. " * 4}],
    "stop_reason": "end_turn", "stop_sequence": None, "usage": {"input_tokens": 20, "output_tokens": 28},
}, separators=(",", ":")).encode()

OPENAI_ERROR = json.dumps({"error": {"message": "mock: overloaded", "type": "server_error", "param": None,
                                     "code": None}}).encode()

_OAI_PREFIX = (b'data: {"id":"chatcmpl-mock","object":"chat.completion.chunk","created":1700000000,'
               b'"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,')
OPENAI_SSE_FIRST = _OAI_PREFIX + b'"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n'
OPENAI_SSE_CHUNK = _OAI_PREFIX + b'"delta":{"content":"t%d "},"finish_reason":null}]}\n\n'
OPENAI_SSE_LAST = (_OAI_PREFIX + b'"delta":{},"finish_reason":"stop"}],'
                   b'"usage":{"prompt_tokens":20,"completion_tokens":%d,"total_tokens":%d}}\n\ndata: [DONE]\n\n')

ANTHROPIC_SSE_FIRST = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_mock","type":"message",'
    b'"role":"assistant","model":"claude-haiku-4-5-20251001","content":[],"stop_reason":null,'
    b'"stop_sequence":null,"usage":{"input_tokens":20,"output_tokens":1}}}\n\n'
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"text","text":""}}\n\n')
ANTHROPIC_SSE_CHUNK = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
                       b'"delta":{"type":"text_delta","text":"t%d "}}\n\n')
ANTHROPIC_SSE_LAST = (
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn",'
    b'"stop_sequence":null},"usage":{"output_tokens":%d}}\n\n'
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n')


def _response(status: bytes, headers: bytes, body: bytes) -> bytes:
    return b"HTTP/1.1 %s\r\n%scontent-length: %d\r\n\r\n%s" % (status, headers, len(body), body)


def _dechunk(buffer: bytes, at: int) -> tuple[bytes | None, int]:
    """A chunked request body starting at ``at``: (body, end offset), or (None, 0) while incomplete."""
    parts = []
    while True:
        eol = buffer.find(b"\r\n", at)
        if eol < 0:
            return None, 0
        size = int(buffer[at:eol].split(b";")[0], 16)
        if len(buffer) < eol + 2 + size + 2:
            return None, 0
        if size == 0:
            return b"".join(parts), eol + 4
        parts.append(buffer[eol + 2:eol + 2 + size])
        at = eol + 2 + size + 2


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


# ---- the server -----------------------------------------------------------------------------------

class MockProtocol(asyncio.Protocol):
    def __init__(self, knobs: Knobs, stats: Stats):
        self.knobs, self.stats = knobs, stats
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.busy: asyncio.Task | None = None   # a paced stream being written; later requests wait

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.busy is None:
            self._serve_buffered()

    def _serve_buffered(self) -> None:
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end]
            lower = head.lower()
            if b"transfer-encoding: chunked" in lower:
                body, used = _dechunk(self.buffer, end + 4)
                if body is None:
                    return
            else:
                at = lower.find(b"content-length:")
                length = int(lower[at + 15:lower.find(b"\r\n", at) % (len(lower) + 1)]) if at >= 0 else 0
                if len(self.buffer) < end + 4 + length:
                    return
                body, used = self.buffer[end + 4:end + 4 + length], end + 4 + length
            self.buffer = self.buffer[used:]
            line = head[:head.find(b"\r\n")] if b"\r\n" in head else head
            method, _, rest = line.partition(b" ")
            path = rest.partition(b" ")[0].partition(b"?")[0]
            if self._handle(method, path, body):
                return   # a paced stream took over; it resumes the buffer when done

    def _handle(self, method: bytes, path: bytes, body: bytes) -> bool:
        write = self.transport.write
        if path.startswith(b"/_mock/"):
            if path == b"/_mock/config" and method == b"POST":
                for k, v in json.loads(body or b"{}").items():
                    setattr(self.knobs, k, type(getattr(self.knobs, k))(v))
            out = asdict(self.knobs) if path == b"/_mock/config" else asdict(self.stats)
            write(_response(b"200 OK", JSON_HEADERS, json.dumps(out).encode()))
            return False
        self.stats.requests += 1
        knobs = self.knobs
        if knobs.fail_every and self.stats.requests % knobs.fail_every == 0:
            self.stats.failures += 1
            write(_response(b"503 Service Unavailable", JSON_HEADERS, OPENAI_ERROR))
            return False
        anthropic = path == b"/v1/messages"
        if b'"stream":true' not in body and b'"stream": true' not in body:
            write(_response(b"200 OK", JSON_HEADERS, ANTHROPIC_JSON if anthropic else OPENAI_JSON))
            return False
        first, chunk, last = ((ANTHROPIC_SSE_FIRST, ANTHROPIC_SSE_CHUNK, ANTHROPIC_SSE_LAST) if anthropic
                              else (OPENAI_SSE_FIRST, OPENAI_SSE_CHUNK, OPENAI_SSE_LAST))
        n = knobs.chunks
        tail = last % (n, n + 20) if not anthropic else last % n
        write(b"HTTP/1.1 200 OK\r\n" + SSE_HEADERS + b"transfer-encoding: chunked\r\n\r\n" + _chunk(first))
        if knobs.interval_ms <= 0:
            # One write per event, back to back: the kernel and Envoy decide how they coalesce.
            for _ in range(n):
                write(_chunk(chunk % time.monotonic_ns()))
            write(_chunk(tail) + b"0\r\n\r\n")
            return False
        self.busy = asyncio.get_running_loop().create_task(self._paced(chunk, tail, n, knobs.interval_ms / 1000))
        return True

    async def _paced(self, chunk: bytes, tail: bytes, n: int, interval: float) -> None:
        write = self.transport.write
        for _ in range(n):
            await asyncio.sleep(interval)
            if self.transport.is_closing():
                return
            write(_chunk(chunk % time.monotonic_ns()))
        write(_chunk(tail) + b"0\r\n\r\n")
        self.busy = None
        self._serve_buffered()


async def serve(ports: list[int]) -> None:
    loop = asyncio.get_running_loop()
    servers = []
    for port in ports:
        knobs, stats = Knobs(), Stats()
        servers.append(await loop.create_server(lambda k=knobs, s=stats: MockProtocol(k, s), "127.0.0.1", port,
                                                backlog=4096, reuse_address=True))
    print("ready", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


def main(argv: list[str]) -> None:
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(serve([int(p) for p in argv]))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main(sys.argv[1:])
