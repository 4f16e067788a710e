"""SSE decoding at every byte boundary, per the WHATWG event-stream rules, and encoding."""

from __future__ import annotations

import json

import pytest

from extproc.sse import DONE, Event, SSEDecoder, encode

STREAM = ('event: message_start\r\ndata: {"text": "héllo 👋"}\r\n\r\n'
          ': a comment\n'
          'data: line one\ndata: line two\n\n'
          'id: 7\rdata: cr only\r\r'
          'data: [DONE]\n\n').encode()
EXPECTED = [Event('{"text": "héllo 👋"}', "message_start"), Event("line one\nline two"),
            Event("cr only", id="7"), Event("[DONE]", id="7")]


def _feed(pieces: list[bytes]) -> list[Event]:
    decoder, events = SSEDecoder(), []
    for piece in pieces:
        events += decoder.feed(piece)
    return events + decoder.close()


def test_whole_stream():
    assert _feed([STREAM]) == EXPECTED


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7])
def test_every_split_gives_the_same_events(size):
    assert _feed([STREAM[i:i + size] for i in range(0, len(STREAM), size)]) == EXPECTED


def test_every_single_cut_point():
    """Including cuts inside the 4-byte emoji and between CR and LF."""
    for cut in range(1, len(STREAM)):
        assert _feed([STREAM[:cut], STREAM[cut:]]) == EXPECTED, cut


def test_unterminated_event_is_dropped():
    assert _feed([b"data: partial"]) == []


def test_encode_round_trips():
    payload = {"a": "é\nb"}
    raw = encode(payload, event="x")
    assert raw.startswith(b"event: x\n") and raw.endswith(b"\n\n")
    (event,) = SSEDecoder().feed(raw)
    assert json.loads(event.data) == payload and event.event == "x"
    assert DONE == b"data: [DONE]\n\n"
