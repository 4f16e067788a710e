"""``/v1/messages/count_tokens`` with a large body is tokenized off the processor's event loop (tryout 6 M2:
8 clients sending 4 MB bodies took helpdesk's chat requests from p50 28 ms to 2.46 s, since every other
stream waited while one body was tokenized)."""

from __future__ import annotations

import asyncio
import json
import threading
from dataclasses import replace

import pytest

from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from extproc.config import load
from extproc.credentials import Credentials
from extproc.devstack import DEFAULT_ROUTING
from extproc.gateway import Answer, Gateway
from extproc.server import COUNT_OFF_LOOP_BYTES, MAX_QUEUE_WAIT_S, Processor
from extproc.telemetry import Tracing, tracer_provider


def _messages(body: bytes, path: str = "/v1/messages/count_tokens"):
    headers = pb.HttpHeaders(headers=base_pb2.HeaderMap(headers=[
        base_pb2.HeaderValue(key=k, raw_value=v.encode()) for k, v in (
            (":method", "POST"), (":path", path), ("content-type", "application/json"))]))

    async def stream():
        yield pb.ProcessingRequest(request_headers=headers)
        yield pb.ProcessingRequest(request_body=pb.HttpBody(body=body, end_of_stream=True))
    return stream()


def test_a_large_count_tokens_body_leaves_the_event_loop_free():
    cfg = replace(load(DEFAULT_ROUTING), auth="optional")   # about the event loop, not keys
    gateway = Gateway(cfg, Credentials({}))
    processor = Processor(gateway, Tracing(tracer_provider(environ={})))
    tokenizing = threading.Event()
    others_ran = threading.Event()

    def slow_count(headers, raw, caller=None):
        # Stands for the tokenizer's 0.15-0.35 s on a 4 MB body: it finishes once another coroutine on the
        # processor's loop has run (or gives up after 5 s, when the loop was blocked by this very call).
        tokenizing.set()
        return Answer(200, json.dumps({"others_ran": others_ran.wait(5)}).encode())

    gateway.count_tokens = slow_count
    body = json.dumps({"model": "claude-haiku-4-5", "messages": [
        {"role": "user", "content": "word " * (COUNT_OFF_LOOP_BYTES // 5 + 1)}]}).encode()

    async def other_request():
        while not tokenizing.is_set():
            await asyncio.sleep(0.005)
        others_ran.set()          # another stream's work, done while the body is being counted

    async def run():
        other = asyncio.create_task(other_request())
        out = [r async for r in processor._router(_messages(body), {})]
        await other
        return out

    responses = asyncio.run(run())
    kinds = [r.WhichOneof("response") for r in responses]
    assert kinds[-1] == "immediate_response", kinds
    assert json.loads(responses[-1].immediate_response.body) == {"others_ran": True}
    # Envoy is asked to wait longer than its 200 ms message timeout for this answer (else a 503).
    assert any(r.HasField("override_message_timeout") and r.override_message_timeout.seconds == MAX_QUEUE_WAIT_S
               for r in responses), responses


def _counted_off_loop(raw: bytes, path: str) -> tuple[list[bool], list, list]:
    """Route ``raw`` on ``path`` through the router stage with a tokenizer that waits until another
    coroutine has run: (whether each count saw the event loop free, the input_counts each plan got,
    the stage's responses). A count on the event loop never sees it free."""
    cfg = replace(load(DEFAULT_ROUTING), auth="optional")
    gateway = Gateway(cfg, Credentials({}))
    processor = Processor(gateway, Tracing(tracer_provider(environ={})))
    tokenizing, others_ran = threading.Event(), threading.Event()
    seen: list[bool] = []
    real = gateway.input_counts

    def slow_counts(raw, endpoint="embeddings", path=None):
        tokenizing.set()
        seen.append(others_ran.wait(5))
        return real(raw, endpoint, path)

    gateway.input_counts = slow_counts
    planned = []
    request_body = gateway.request_body

    def spy(headers, raw, **kw):
        planned.append(kw.get("input_counts"))
        return request_body(headers, raw, **kw)

    gateway.request_body = spy

    async def other_request():
        for _ in range(1000):    # at most 5 s: without counting off the loop, nothing sets it
            if tokenizing.is_set():
                others_ran.set()
                return
            await asyncio.sleep(0.005)

    async def run():
        other = asyncio.create_task(other_request())
        out = [r async for r in processor._router(_messages(raw, path), {})]
        await other
        return out

    return seen, planned, asyncio.run(run())


def test_a_large_embeddings_body_is_counted_off_the_event_loop():
    """Review 7 finding 2: an embeddings estimate near a limit is counted with the tokenizer before it may
    refuse (0.04-0.2 s for 300k tokens, measured); a large body is counted in a worker thread, and the
    plan uses those counts."""
    # English prose: chars/4 says over 8,191 tokens, the tokenizer about 6,750 (each of two inputs): served, not refused
    prose = "The board asked the operations team to compare three proposals for a second depot. " * 450
    body = json.dumps({"model": "text-embedding-3-small", "input": [prose, prose]}).encode()
    assert len(body) >= COUNT_OFF_LOOP_BYTES
    seen, planned, responses = _counted_off_loop(body, "/v1/embeddings")
    assert seen == [True], seen
    assert planned and planned[0] and all(n < 8191 for n in planned[0]), planned
    kinds = [r.WhichOneof("response") for r in responses]
    assert kinds[-1] == "request_body", (kinds, responses[-1])
    assert any(r.HasField("override_message_timeout") for r in responses), responses


def test_a_large_embeddings_body_is_parsed_and_validated_once(monkeypatch):
    """The worker thread that counts a large embeddings body's inputs parses and checks it; the planner
    takes that body (``request_body(parsed=...)``) rather than parsing the same megabytes again."""
    from extproc import validate
    cfg = replace(load(DEFAULT_ROUTING), auth="optional")
    gateway = Gateway(cfg, Credentials({}))
    processor = Processor(gateway, Tracing(tracer_provider(environ={})))
    parses: list[int] = []
    real = validate.parse

    def counted(raw, *args, **kwargs):
        parses.append(len(raw))
        return real(raw, *args, **kwargs)

    monkeypatch.setattr(validate, "parse", counted)
    prose = "The board asked the operations team to compare three proposals for a second depot. " * 450
    body = json.dumps({"model": "text-embedding-3-small", "input": [prose, prose]}).encode()
    assert len(body) >= COUNT_OFF_LOOP_BYTES

    async def run():
        return [r async for r in processor._router(_messages(body, "/v1/embeddings"), {})]

    responses = asyncio.run(run())
    assert responses[-1].WhichOneof("response") == "request_body", responses[-1]
    assert parses == [len(body)], parses


@pytest.mark.parametrize("path", ["/v1/messages", "/v1/chat/completions"])
def test_a_large_chat_body_near_a_window_is_counted_off_the_event_loop(path):
    """Review 8 finding 2: near a window a chat prompt is counted before it may refuse; a front door's body
    (in its own API) was counted inside the planner, on the event loop (a 3 MB /v1/messages body near a 1M
    window: 146 ms). Both doors' large bodies are parsed and counted in a worker thread; the plan uses it."""
    prose = "The board asked the operations team to compare three proposals for a second depot. " * 5000
    body = {"model": "claude-sonnet-4-6", "max_tokens": 100, "messages": [{"role": "user", "content": prose}]}
    raw = json.dumps(body).encode()
    assert len(raw) >= COUNT_OFF_LOOP_BYTES
    seen, planned, responses = _counted_off_loop(raw, path)
    assert seen == [True], seen
    assert planned and planned[0] and 70_000 < planned[0][0] < 80_000, planned   # counted: ~75,000 tokens
    assert [r.WhichOneof("response") for r in responses][-1] == "request_body", responses[-1]
