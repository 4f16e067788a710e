"""endings.py: one outcome and one bill per ending; tokens.py: the shipped tokenizer."""

from __future__ import annotations

import pytest

from extproc import endings, tokens
from extproc.providers.base import Usage


def classify(**kw):
    base = dict(status=200, provider_answered=True, end_of_stream=False, ending=None, cancelled=False,
                gateway_error=False, idle_s=0.0, stall_s=10.0)
    return endings.classify(**{**base, **kw})


@pytest.mark.parametrize("kw,outcome,status,failure,bill", [
    (dict(end_of_stream=True, ending="completed"), "ok", 200, None, "usage"),
    (dict(end_of_stream=True), "ok", 200, None, "usage"),                        # a JSON answer
    (dict(ending="completed"), "ok", 200, None, "usage"),                        # client left after [DONE]
    (dict(), "cancelled", 499, None, "partial"),                                 # client closed mid-stream
    (dict(cancelled=True), "provider_cut", 502, "cut", "partial"),               # upstream reset mid-stream
    (dict(cancelled=True, idle_s=12.0), "timeout", 504, "timeout", "partial"),   # stalled, then cut
    (dict(end_of_stream=True, ending="cut"), "provider_cut", 502, "cut", "partial"),   # closed, no terminal event
    (dict(end_of_stream=True, ending="error_event"), "stream_error", 502, "error_event", "partial"),
    (dict(ending="error_event"), "stream_error", 502, "error_event", "partial"),
    (dict(status=None), "cancelled", 499, None, "prompt"),                       # closed before the answer
    (dict(status=None, cancelled=True), "upstream_error", 502, "reset", "none"),
    (dict(status=503, end_of_stream=True), "upstream_error", 503, None, "none"),
    (dict(status=429, end_of_stream=True), "rate_limited", 429, None, "none"),
    (dict(status=504, provider_answered=False), "timeout", 504, "timeout", "prompt"),
    (dict(gateway_error=True), "gateway_error", 500, None, "partial"),
])
def test_every_ending_has_one_outcome_and_one_bill(kw, outcome, status, failure, bill):
    ending = classify(**kw)
    assert (ending.outcome, ending.status, ending.failure, ending.bill) == (outcome, status, failure, bill)


def test_the_providers_usage_wins_when_the_answer_completed():
    usage = endings.bill(classify(end_of_stream=True, ending="completed"), Usage(10, 20, 4),
                         prompt=lambda: 999, delivered=lambda: 999)
    assert (usage.input_tokens, usage.output_tokens, usage.cached_input_tokens) == (10, 20, 4)


def test_an_unfinished_answer_keeps_partial_counts_and_counts_the_rest():
    cut = classify(cancelled=True)
    # Anthropic reported its input up front and 1 output token so far: input kept, output counted.
    usage = endings.bill(cut, Usage(input_tokens=40, output_tokens=1), prompt=lambda: 999, delivered=lambda: 17)
    assert (usage.input_tokens, usage.output_tokens) == (40, 17)
    usage = endings.bill(cut, None, prompt=lambda: 33, delivered=lambda: 5)
    assert (usage.input_tokens, usage.output_tokens) == (33, 5)
    usage = endings.bill(classify(status=None), None, prompt=lambda: 33, delivered=lambda: 5)
    assert (usage.input_tokens, usage.output_tokens) == (33, 0)
    assert endings.bill(classify(status=500, end_of_stream=True), Usage(1, 1), lambda: 1, lambda: 1) is None


def test_delivered_text_reads_content_and_tool_calls_from_openai_chunks():
    sse = (b'data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}\n\n'
           b'data: {"choices":[{"index":0,"delta":{"content":"Hello "}}]}\n\n'
           b'data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"name":"f","arguments":"{}"}}]}}]}\n\n'
           b'data: {"choices":[{"index":0,"delta":{"content":"wor')   # cut mid-event: not delivered whole
    assert endings.delivered_text(sse) == "Hello f{}"


def test_the_shipped_tokenizer_is_o200k_base():
    # Token ids of o200k_base (GPT-4o's tokenizer) for a known phrase.
    assert tokens.encoding().encode_ordinary("Hello world") == [13225, 2375]
    assert tokens.count("") == 0
    body = {"messages": [{"role": "user", "content": "Hello world"}]}
    # 3 per message + role + content + 3 priming (OpenAI's cookbook recipe).
    assert tokens.prompt_tokens(body) == 3 + tokens.count("user") + 2 + 3
    assert tokens.prompt_tokens({"input": ["Hello world", "Hello"]}) == 3


def test_envoys_access_log_decides_who_ended_an_unclear_stream():
    from envoy.data.accesslog.v3.accesslog_pb2 import ResponseFlags

    from extproc.access_log import verdict

    assert verdict(ResponseFlags(downstream_connection_termination=True)) == endings.CLIENT_CLOSED
    assert verdict(ResponseFlags(upstream_protocol_error=True)) == endings.UPSTREAM_RESET
    assert verdict(ResponseFlags(upstream_connection_termination=True)) == endings.UPSTREAM_RESET
    assert verdict(ResponseFlags(stream_idle_timeout=True)) == endings.TIMED_OUT
    assert verdict(ResponseFlags(no_route_found=True)) is None
    # Envoy's word wins over how the gRPC stream ended.
    assert classify(cancelled=False, envoy=endings.UPSTREAM_RESET).outcome == "provider_cut"
    assert classify(cancelled=True, envoy=endings.CLIENT_CLOSED).outcome == "cancelled"
    assert classify(cancelled=True, envoy=endings.TIMED_OUT).outcome == "timeout"
    assert endings.unclear(status=200, end_of_stream=False, ending=None, gateway_error=False)
    assert not endings.unclear(status=200, end_of_stream=False, ending="completed", gateway_error=False)
    assert not endings.unclear(status=502, end_of_stream=False, ending=None, gateway_error=False)


def test_verdicts_meet_their_settlement_whichever_comes_first():
    import asyncio

    from extproc.access_log import Verdicts

    async def go():
        v = Verdicts()
        v.note("a", endings.CLIENT_CLOSED)                  # the log entry came first
        assert await v.wait("a", 1.0) == endings.CLIENT_CLOSED
        waiting = asyncio.create_task(v.wait("b", 1.0))   # the settlement came first
        await asyncio.sleep(0)
        v.note("b", endings.UPSTREAM_RESET)
        assert await waiting == endings.UPSTREAM_RESET
        assert await v.wait("c", 0.05) is None             # no entry: fall back
    asyncio.run(go())
