"""A small asyncio HTTP/1.1 client for the measurements wrk cannot make.

- ``open_loop``: a fixed offered load (requests/s). Sends are scheduled at
  t0 + i/rate whatever happened before, and latency is measured from the
  scheduled time, so a slow server shows up as queueing instead of as a
  politely slower sender (no coordinated omission).
- ``streams``: sequential streams (c=1) timing the first content token and the
  latency of every chunk, from the emission stamp the mock writes into each
  chunk's text (``t<monotonic ns>``, see bench/mock.py).
- ``hold_streams``: many concurrent slow streams, to load memory.

Raw asyncio streams and a few lines of HTTP/1.1 parsing keep the client's own
cost small; it is the same client for every target, so it cancels out of the
"added" numbers.
"""

from __future__ import annotations

import asyncio
import re
import time

STAMP = re.compile(rb"t(\d{9,}) ")


def request_bytes(port: int, body: bytes, api_key: str = "sk-bench", path: str = "/v1/chat/completions") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n"
            f"authorization: Bearer {api_key}\r\ncontent-length: {len(body)}\r\n\r\n").encode() + body


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> "Connection":
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        return cls(reader, writer)

    def close(self) -> None:
        self.writer.close()

    async def request(self, raw: bytes, chunks: list | None = None) -> tuple[int, bytes]:
        """Send ``raw``, read the whole response. With ``chunks``, append (arrival ns, data) per body chunk."""
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        if b"transfer-encoding: chunked" in lower:
            parts = []
            while True:
                size = int((await self.reader.readline()).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readline()
                    break
                data = (await self.reader.readexactly(size + 2))[:-2]
                if chunks is not None:
                    chunks.append((time.monotonic_ns(), data))
                parts.append(data)
            return status, b"".join(parts)
        at = lower.find(b"content-length:")
        length = int(lower[at + 15:lower.find(b"\r\n", at)]) if at >= 0 else 0
        return status, await self.reader.readexactly(length)


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * (len(s) - 1))))]


async def open_loop(port: int, body: bytes, *, rate: float, seconds: float, api_key: str = "sk-bench",
                    timeout: float = 10.0) -> dict:
    raw = request_bytes(port, body, api_key)
    idle: list[Connection] = []
    latencies: list[float] = []
    errors = 0
    lag_max = 0.0

    async def one(scheduled: float) -> None:
        nonlocal errors
        conn = idle.pop() if idle else None
        try:
            conn = conn or await Connection.open(port)
            status, _ = await asyncio.wait_for(conn.request(raw), timeout)
            latencies.append((time.perf_counter() - scheduled) * 1000)
            if status != 200:
                errors += 1
            idle.append(conn)
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
            errors += 1
            if conn is not None:
                conn.close()

    total = int(rate * seconds)
    tasks = []
    t0 = time.perf_counter() + 0.05
    for i in range(total):
        scheduled = t0 + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        lag_max = max(lag_max, time.perf_counter() - scheduled)
        tasks.append(asyncio.ensure_future(one(scheduled)))
    await asyncio.gather(*tasks)
    for c in idle:
        c.close()
    return {"offered_rps": rate, "requests": total, "errors": errors, "sender_lag_max_ms": lag_max * 1000,
            "p50_ms": percentile(latencies, 50), "p99_ms": percentile(latencies, 99),
            "p999_ms": percentile(latencies, 99.9), "max_ms": max(latencies) if latencies else None}


async def streams(port: int, body: bytes, *, count: int, api_key: str = "sk-bench") -> dict:
    """``count`` sequential streams: TTFT (send -> first stamped chunk) and per-chunk latency (emission -> arrival)."""
    raw = request_bytes(port, body, api_key)
    conn = await Connection.open(port)
    ttft, per_chunk, counts, errors = [], [], [], 0
    try:
        for _ in range(count):
            chunks: list[tuple[int, bytes]] = []
            sent = time.monotonic_ns()
            status, _ = await conn.request(raw, chunks)
            if status != 200:
                errors += 1
                continue
            stamps = [(arrival, int(m.group(1))) for arrival, data in chunks for m in STAMP.finditer(data)]
            if not stamps:
                errors += 1
                continue
            ttft.append((stamps[0][0] - sent) / 1e6)
            per_chunk += [(arrival - emitted) / 1e6 for arrival, emitted in stamps[1:]]
            counts.append(len(stamps))
    finally:
        conn.close()
    return {"streams": count, "errors": errors, "chunks_per_stream": percentile(counts, 50),
            "ttft_p50_ms": percentile(ttft, 50), "ttft_p99_ms": percentile(ttft, 99),
            "chunk_p50_ms": percentile(per_chunk, 50), "chunk_p99_ms": percentile(per_chunk, 99)}


async def hold_streams(port: int, body: bytes, *, count: int, api_key: str = "sk-bench",
                       during=None, ramp_s: float = 0.0) -> dict:
    """``count`` concurrent streams, opened evenly over ``ramp_s``; ``during`` (an async callable) runs meanwhile."""
    raw = request_bytes(port, body, api_key)
    ok = errors = 0

    async def one() -> None:
        nonlocal ok, errors
        try:
            conn = await Connection.open(port)
            try:
                status, _ = await asyncio.wait_for(conn.request(raw), 120)
                ok, errors = (ok + 1, errors) if status == 200 else (ok, errors + 1)
            finally:
                conn.close()
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError):
            errors += 1

    async def opener() -> list:
        tasks = []
        for i in range(count):
            tasks.append(asyncio.ensure_future(one()))
            if ramp_s:
                await asyncio.sleep(ramp_s / count)
        return tasks

    opening = asyncio.ensure_future(opener())
    extra = await during() if during is not None else None
    tasks = await opening
    await asyncio.gather(*tasks)
    return {"streams": count, "ok": ok, "errors": errors, "during": extra}
