"""Incremental Server-Sent Events decoding and encoding.

Follows the WHATWG HTML "event stream" interpretation: lines end in LF, CRLF
or CR; a blank line dispatches the event; ``data`` lines join with LF; lines
starting with ``:`` are comments. Bytes may arrive split anywhere (mid-line,
mid-UTF-8 character), so the decoder buffers bytes and only decodes whole lines.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass
class Event:
    data: str
    event: str = "message"
    id: str | None = None


class SSEDecoder:
    def __init__(self) -> None:
        self._buf = b""
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None

    def feed(self, chunk: bytes) -> list[Event]:
        """Add bytes; return the events completed by them."""
        self._buf += chunk
        events: list[Event] = []
        while True:
            cut, skip = _line_end(self._buf)
            if cut < 0:
                break
            raw, self._buf = self._buf[:cut], self._buf[cut + skip:]
            event = self._line(raw.decode("utf-8", errors="replace"))
            if event is not None:
                events.append(event)
        return events

    def close(self) -> list[Event]:
        """End of stream: per the spec an event without its closing blank line is discarded."""
        self._buf = b""
        return []

    def _line(self, line: str) -> Event | None:
        if line == "":
            if not self._data and not self._event:
                return None
            event = Event("\n".join(self._data), self._event or "message", self._id)
            self._data, self._event = [], ""
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            self._id = value
        return None


def _line_end(buf: bytes) -> tuple[int, int]:
    """Index of the first line terminator in ``buf`` and its length, or (-1, 0)."""
    lf = buf.find(b"\n")
    cr = buf.find(b"\r")
    if cr < 0:
        return lf, 1
    if lf >= 0 and lf < cr:
        return lf, 1
    if cr + 1 < len(buf):
        return cr, 2 if buf[cr + 1:cr + 2] == b"\n" else 1
    # A CR as the last byte may be half of a CRLF split across chunks: wait for more.
    return -1, 0


def encode(data: Any, event: str | None = None) -> bytes:
    """One SSE event; ``data`` is JSON-encoded unless it is already a string."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return (head + "".join(f"data: {line}\n" for line in text.split("\n")) + "\n").encode()


DONE = b"data: [DONE]\n\n"
