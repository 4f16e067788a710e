"""Streams that fail before any content reached the client (issue 12; tryout 6 H3, H4), end to end.

The official SDKs (openai on chat and /v1/responses, anthropic on /v1/messages) stream through the
real Envoy and extproc; the simulators fail the stream the way each provider does:

- an error event before any content (OpenAI's ``{"error": ...}`` frame after the role-only chunk,
  Anthropic's ``overloaded_error`` after ``message_start``, Gemini's error object): on a held stream
  (latency-first, a fallback in the plan) nothing has reached the client, so the next tier answers;
- a connection reset right after the provider's response headers: on a held stream the next tier
  answers; otherwise, when the reset came while Envoy still held the headers, the client gets a 502
  ``provider_cut`` in its own API's shape, without retry-after (it was never "over capacity").

Every stream's headers are held until its first content (pinned and batch ones too, issue 12's last
gap), so a reset before content is always that 502, never a 200 with an empty body, and a batch stream
falls to its next tier like a latency-first one. Where the gateway's plan is spent (that 502, its
deadline 504, a provider's 5xx after a fallback) it answers ``x-should-retry: false``: the official SDKs,
with their default ``max_retries=2``, then call once, not three times (``extproc/client_retry.py``).

Classes of this stack's own, named as the model (a class name routes like ``auto``), put one provider
first and another second, so each test knows who fails and who answers.
"""

from __future__ import annotations


import anthropic
import httpx
import httpx2   # the anthropic SDK's own HTTP client (a fork of httpx): its errors are its own classes
import openai
import pytest


from .conftest import (AUTH, CLIENT_KEY, NO_EJECTION, clear_requests, fault, ledger_row, metric, reset_faults, scrape,
                       stack_with, upstream_requests, wait_for)

QUESTION = "What is the capital of Peru?"


def tiers(first: str, second: str) -> dict:
    return {"tiers": [{"name": "primary", "models": [first], "target_latency_ms": 1500},
                      {"name": "secondary", "models": [second], "target_latency_ms": 3000}]}


CLASSES = {"openai_first": tiers("gpt-4o-mini", "gemini-3.5-flash-lite"),
           "claude_first": tiers("claude-haiku-4-5", "gemini-3.5-flash-lite"),
           "gemini_first": tiers("gemini-3.5-flash-lite", "gpt-4o-mini"),
           "openai_then_claude": tiers("gpt-4o-mini", "claude-haiku-4-5"),
           # Each attempt cut at 2 x 150 ms: the gateway's deadline 504 comes within a second.
           "quick": {"tiers": [{"name": "primary", "models": ["gpt-4o-mini"], "target_latency_ms": 150},
                               {"name": "secondary", "models": ["gemini-3.5-flash-lite"], "target_latency_ms": 150}]}}
BATCH = {"x-llm-workload": "batch"}   # prefer: cost; the demo tenant may choose it


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    # Batch work without the shipped business-hours cost window, which keeps Gemini out of its plans by day.
    # A pinned model's attempt deadline of 2 x 400 ms, so a first token later than it comes within the test.
    changes = {"/health": NO_EJECTION, "/workloads/batch": {"prefer": "cost"}, "/routing/pinned_target_ms": 400,
               **{f"/routing_rules/{name}": spec for name, spec in CLASSES.items()}}
    with stack_with(tmp_path_factory, "stream_failures", changes) as stack:
        yield stack


@pytest.fixture(autouse=True)
def clean(gw):
    reset_faults(gw)
    clear_requests(gw)


SDK_DEFAULT = object()   # the SDK's own max_retries (2): what an unchanged client does


def gpt(gw, retries=0) -> openai.OpenAI:
    extra = {} if retries is SDK_DEFAULT else {"max_retries": retries}
    return openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, timeout=30, **extra)


def claude(gw, retries=0) -> anthropic.Anthropic:
    extra = {} if retries is SDK_DEFAULT else {"max_retries": retries}
    return anthropic.Anthropic(base_url=gw.base_url.removesuffix("/v1"), api_key=CLIENT_KEY, timeout=30, **extra)


def stream(gw, door: str, model: str, headers: dict[str, str] | None = None,
           retries=0) -> tuple[dict[str, str], str]:
    """One streamed answer through ``door`` with its official SDK: (response headers, the text). The SDKs
    raise on an error event, so a return means the client saw none."""
    extra = headers or {}
    if door == "messages":
        with claude(gw, retries).messages.with_streaming_response.create(
                model=model, max_tokens=200, stream=True, messages=[{"role": "user", "content": QUESTION}],
                extra_headers=extra) as raw:
            text = "".join(e.delta.text for e in raw.parse() if e.type == "content_block_delta"
                           and e.delta.type == "text_delta")
            return dict(raw.headers), text
    if door == "responses":
        with gpt(gw, retries).responses.with_streaming_response.create(model=model, input=QUESTION, stream=True,
                                                                        extra_headers=extra) as raw:
            text = "".join(e.delta for e in raw.parse() if e.type == "response.output_text.delta")
            return dict(raw.headers), text
    with gpt(gw, retries).chat.completions.with_streaming_response.create(
            model=model, stream=True, messages=[{"role": "user", "content": QUESTION}], extra_headers=extra) as raw:
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
        return dict(raw.headers), text


def attempts(gw, model: str, outcome: str) -> float:
    return metric(scrape(gw), "llm_gateway_attempts_total", model=model, outcome=outcome)


# ---- H4: an error event before any content, on a held stream --------------------------------------

# (class, provider that fails, events it sends first, its model, the status its event stands for,
#  the provider that answers instead)
ERROR_FIRST = [
    # OpenAI's error frame after the role-only chunk (server_error: a 500)
    ("openai_first", "openai", 1, "gpt-4o-mini", "500", "gemini"),
    # Anthropic's overloaded_error right after message_start: its usual overload (529)
    ("claude_first", "anthropic", 1, "claude-haiku-4-5", "529", "gemini"),
    # Gemini's error object (code 503) as the first event
    ("gemini_first", "gemini", 0, "gemini-3.5-flash-lite", "503", "openai"),
]


@pytest.mark.parametrize("door", ["chat", "messages", "responses"])
@pytest.mark.parametrize("cls, failing, after, failing_model, status, answering", ERROR_FIRST,
                         ids=[c[0] for c in ERROR_FIRST])
def test_an_error_event_before_content_is_answered_by_the_next_tier(gw, door, cls, failing, after, failing_model,
                                                                   status, answering):
    fault(gw, failing, error_event_after=after)
    before = attempts(gw, failing_model, status)
    headers, text = stream(gw, door, cls)
    assert headers["x-llm-provider"] == answering and headers["x-llm-attempts"] == "2"
    assert text.endswith(f"You said: {QUESTION}")
    assert len(upstream_requests(gw, failing)) == 1 and len(upstream_requests(gw, answering)) == 1
    # The failed attempt counts against its provider with the status its event stood for ...
    wait_for(lambda: attempts(gw, failing_model, status) == before + 1, 10, f"{failing_model}'s {status} attempt")
    # ... and the request's one ledger row names the answer, after two attempts.
    row = ledger_row(gw, headers["x-request-id"])
    assert (row.outcome, row.status, row.provider, row.attempts) == ("ok", 200, answering, 2)


def test_an_error_event_on_the_last_attempt_reaches_the_client(gw):
    """Nothing to hand over to (a pinned model, one candidate): the client gets the provider's error."""
    fault(gw, "anthropic", error_event_after=1)
    with pytest.raises(anthropic.APIStatusError) as caught:
        stream(gw, "messages", "claude-haiku-4-5")
    assert caught.value.body["error"]["type"] == "overloaded_error"
    assert len(upstream_requests(gw, "anthropic")) == 1 and upstream_requests(gw, "gemini") == []


def test_a_reset_before_content_on_a_held_stream_is_answered_by_the_next_tier(gw):
    """H3 (c): the provider resets after its headers and role frame; the upstream stage still held the
    headers, so Envoy's router retries the reset on the next tier (as it always did: a guard)."""
    fault(gw, "openai", disconnect_after=1)
    headers, text = stream(gw, "chat", "openai_first")
    assert headers["x-llm-provider"] == "gemini" and headers["x-llm-attempts"] == "2"
    assert text.endswith(f"You said: {QUESTION}")


# ---- H3: a reset right after the provider's headers, on a pinned stream ----------------------------

# (door, pinned model, provider): chat to Claude and /v1/responses to Claude go out on Anthropic's
# /v1/messages path, /v1/messages to OpenAI on OpenAI's chat path.
CUT = [("chat", "claude-haiku-4-5", "anthropic"), ("chat", "gpt-4o-mini", "openai"),
       ("messages", "gpt-4o-mini", "openai"), ("messages", "claude-haiku-4-5", "anthropic"),
       ("responses", "claude-haiku-4-5", "anthropic")]
PATHS = {"chat": "/chat/completions", "messages": "/messages", "responses": "/responses"}


def cut_request(gw, door: str, model: str) -> httpx.Response | None:
    """One pinned stream whose provider resets right after its headers: Envoy's own reply when the reset
    came while the headers were held, else None (the client got a 200, then a cut)."""
    body = {"model": model, "stream": True}
    if door == "responses":
        body["input"] = QUESTION
    else:
        body.update(messages=[{"role": "user", "content": QUESTION}], **({"max_tokens": 50} if door == "messages" else {}))
    try:
        with httpx.stream("POST", gw.base_url + PATHS[door], json=body, headers=AUTH, timeout=20) as r:
            r.read()
            if r.status_code != 200:
                return r
    except httpx.RemoteProtocolError:
        pass   # a 200 whose body was cut: the headers had gone out before the reset
    return None


def envoys_replies(gw, door: str, model: str, provider: str, after: int, tries: int = 6) -> list[httpx.Response]:
    """Envoy's replies to ``tries`` pinned streams whose provider resets after ``after`` events of no content
    (0: right after its headers; 1: after OpenAI's role chunk or Anthropic's message_start). Each must be a
    reply: the upstream stage holds the headers until the first content, so none reaches the client as
    a 200 (it used to, in about 1 of 3 resets right after the headers, and nearly always after a frame)."""
    fault(gw, provider, disconnect_after=after)
    replies = [cut_request(gw, door, model) for _ in range(tries)]
    assert None not in replies, f"{replies.count(None)} of {tries} resets reached the client as a 200, then a cut"
    return replies


@pytest.mark.parametrize("after", [0, 1])
@pytest.mark.parametrize("door, model, provider", CUT, ids=[f"{d}-{m}" for d, m, _ in CUT])
def test_a_provider_reset_before_any_content_is_always_a_502_in_the_clients_shape(gw, door, model, provider, after):
    for reply in envoys_replies(gw, door, model, provider, after):
        check_cut_reply(gw, door, provider, reply)


def check_cut_reply(gw, door: str, provider: str, reply: httpx.Response) -> None:
    assert reply.status_code == 502, reply.text
    assert "retry-after" not in reply.headers                # the provider failed: not "come back in 1 s"
    assert reply.headers["x-should-retry"] == "false"        # the plan is spent: SDKs do not call again
    assert not [h for h in reply.headers if h.startswith("x-envoy-")]   # Envoy's attempt count stays home
    # The client's status is the one the request's ledger row gives the cut (the client read 503). The
    # outcome depends on whether the router stage had read the provider's 200 before the reset came
    # (endings.py: provider_cut, prompt billed) or not (upstream_error, nothing billed).
    row = ledger_row(gw, reply.headers["x-request-id"])
    assert (row.status, row.provider) == (502, provider) and row.outcome in ("provider_cut", "upstream_error")
    error = reply.json()
    if door == "messages":   # Anthropic's shape, whatever API the provider speaks
        assert error["type"] == "error" and error["error"]["type"] == "api_error"
        assert "cut the stream" in error["error"]["message"]
    else:                    # OpenAI's, even when the provider was Anthropic
        assert set(error) == {"error"}
        assert error["error"]["type"] == "upstream_error" and error["error"]["code"] == "provider_cut"
        assert "cut the stream" in error["error"]["message"] and set(error["error"]) == {
            "message", "type", "param", "code"}


# The SDKs with their default settings (max_retries=2), as an unchanged client has them. Before
# x-should-retry, each retried the 502: up to three provider calls, each billed (README).

def test_the_openai_sdk_reads_a_reset_as_a_provider_failure_and_calls_once(gw):
    fault(gw, "openai", disconnect_after=1)
    with pytest.raises(openai.APIStatusError) as caught:
        stream(gw, "chat", "gpt-4o-mini", retries=SDK_DEFAULT)
    exc = caught.value
    assert exc.status_code == 502 and exc.code == "provider_cut" and exc.type == "upstream_error"
    assert "retry-after" not in exc.response.headers and exc.response.headers["x-should-retry"] == "false"
    assert len(upstream_requests(gw, "openai")) == 1


def test_the_anthropic_sdk_reads_a_reset_in_anthropics_shape_and_calls_once(gw):
    fault(gw, "openai", disconnect_after=1)
    with pytest.raises(anthropic.APIStatusError) as caught:
        stream(gw, "messages", "gpt-4o-mini", retries=SDK_DEFAULT)
    exc = caught.value
    assert exc.status_code == 502 and exc.body["type"] == "error" and exc.body["error"]["type"] == "api_error"
    assert "retry-after" not in exc.response.headers and exc.response.headers["x-should-retry"] == "false"
    assert len(upstream_requests(gw, "openai")) == 1


def test_a_held_stream_whose_every_tier_resets_is_a_502_provider_cut(gw):
    """Every tier resets before content: the last reset, with no retry left, is Envoy's own reply (the
    upstream stage held the headers), the provider's failure in the client's shape, not over capacity."""
    # Each after its first event, which is no content: OpenAI's role chunk, Anthropic's message_start.
    fault(gw, "openai", disconnect_after=1)
    fault(gw, "anthropic", disconnect_after=1)
    with pytest.raises(openai.APIStatusError) as caught:
        stream(gw, "chat", "openai_then_claude")
    assert caught.value.status_code == 502 and caught.value.code == "provider_cut"
    assert "retry-after" not in caught.value.response.headers
    assert caught.value.response.headers["x-should-retry"] == "false"   # both tiers were tried
    assert len(upstream_requests(gw, "openai")) == 1 and len(upstream_requests(gw, "anthropic")) == 1


# ---- batch streams: the next tier answers a failure before content ---------------------------------

@pytest.mark.parametrize("door", ["chat", "messages"])
@pytest.mark.parametrize("failure", [{"error_event_after": 1}, {"disconnect_after": 1}], ids=["error-event", "reset"])
def test_a_batch_stream_falls_to_its_next_tier_on_a_failure_before_content(gw, door, failure):
    """Batch work (prefer: cost) has later tiers too: OpenAI's error frame, or a reset, after its role chunk
    (no content yet) goes to the next tier, as on a latency-first stream. It used to reach the client: a
    200 with the error event, or a 200 with a cut body."""
    fault(gw, "openai", **failure)
    headers, text = stream(gw, door, "openai_first", headers=BATCH)
    assert headers["x-llm-provider"] == "gemini" and headers["x-llm-attempts"] == "2"
    assert text.endswith(f"You said: {QUESTION}")
    assert len(upstream_requests(gw, "openai")) == 1 and len(upstream_requests(gw, "gemini")) == 1
    row = ledger_row(gw, headers["x-request-id"])
    assert (row.outcome, row.status, row.provider, row.attempts, row.workload) == ("ok", 200, "gemini", 2, "batch")


def test_a_batch_stream_with_content_first_is_not_held_back(gw):
    """The hold ends at the first content: a healthy batch stream reaches the client as its provider sends
    it, whole, from its first tier."""
    headers, text = stream(gw, "chat", "openai_first", headers=BATCH)
    assert headers["x-llm-provider"] == "openai" and headers["x-llm-attempts"] == "1"
    assert text.endswith(f"You said: {QUESTION}")


def test_a_pinned_stream_slow_to_its_first_content_is_let_go_not_cut(gw):
    """Held past its attempt's deadline (800 ms here) without content, a stream with nowhere to fall back
    to goes on as it is: the client gets the whole answer, late. Held longer, Envoy's per-try timeout (the
    deadline + 0.5 s, running until its router has the headers) would have cut it with a 504."""
    fault(gw, "openai", ttft_ms=2000)
    headers, text = stream(gw, "chat", "gpt-4o-mini")
    assert headers["x-llm-provider"] == "openai" and headers["x-llm-attempts"] == "1"
    assert text.endswith(f"You said: {QUESTION}")
    assert len(upstream_requests(gw, "openai")) == 1


def processor_streams(gw) -> int:
    """gRPC streams open from Envoy to the processor now (Envoy's admin stats), access log streams included."""
    stats = httpx.get(f"http://127.0.0.1:{gw.admin_port}/stats?filter=^cluster.extproc.upstream_rq_active$").text
    return int(stats.split(":")[1])


def test_a_held_stream_costs_one_processor_stream_once_its_content_flows(gw):
    """After the first content the hold stage has nothing left to do and closes its gRPC stream: it stayed
    open for the whole stream, two processor streams per client stream, half what the processor cluster's
    circuit breaker admits."""
    idle = processor_streams(gw)
    # A stream of several seconds, its first content within its attempt's deadline (800 ms: it is let go
    # at the deadline otherwise, which closes the stage's stream too).
    fault(gw, "openai", chunk_interval_ms=500)
    with gpt(gw).chat.completions.with_streaming_response.create(
            model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": QUESTION}]) as raw:
        chunks = raw.parse().__iter__()
        while not next(c.choices[0].delta.content for c in chunks if c.choices):   # the first content
            pass
        # The router stage's stream stays (it translates the rest); the hold stage's has closed.
        wait_for(lambda: processor_streams(gw) == idle + 1, 2, "the hold stage's stream to close")
        rest = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert rest.endswith("Peru?")


# ---- x-should-retry: what an unchanged SDK client calls again -------------------------------------

def test_the_gateways_deadline_504_is_not_retried_by_the_sdks(gw):
    """Both tiers answer too late: each attempt is cut at its deadline and was sent the prompt. The SDK's
    default retries would run the whole plan twice more; the gateway says not to."""
    for provider in ("openai", "gemini"):
        fault(gw, provider, latency_ms=1500)
    with pytest.raises(openai.APIStatusError) as caught:
        gpt(gw, SDK_DEFAULT).chat.completions.create(model="quick", messages=[{"role": "user", "content": QUESTION}])
    assert caught.value.status_code == 504 and caught.value.code == "gateway_timeout"
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(upstream_requests(gw, "openai")) == 1 and len(upstream_requests(gw, "gemini")) == 1


def test_a_provider_5xx_after_the_fallback_is_not_retried_by_the_sdks(gw):
    for provider in ("openai", "gemini"):
        fault(gw, provider, status=500)
    with pytest.raises(anthropic.APIStatusError) as caught:
        claude(gw, SDK_DEFAULT).messages.create(model="openai_first", max_tokens=50,
                                                messages=[{"role": "user", "content": QUESTION}])
    assert caught.value.status_code == 502 and caught.value.response.headers["x-llm-attempts"] == "2"
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert len(upstream_requests(gw, "openai")) == 1 and len(upstream_requests(gw, "gemini")) == 1


def test_a_single_attempts_5xx_is_left_to_the_sdks_own_rules(gw):
    """A pinned model's 500: the gateway retried nothing and the provider billed nothing, so the SDK's own
    retry is the only one (the same calls as against the provider itself)."""
    fault(gw, "openai", status=500)
    with pytest.raises(openai.APIStatusError) as caught:
        gpt(gw, SDK_DEFAULT).chat.completions.create(model="gpt-4o-mini",
                                                     messages=[{"role": "user", "content": QUESTION}])
    assert caught.value.status_code == 502 and "x-should-retry" not in caught.value.response.headers
    assert len(upstream_requests(gw, "openai")) == 3


def test_a_rate_limit_with_retry_after_stays_retryable(gw):
    """A 429 says when to come back: the SDKs wait for it and retry (no x-should-retry: false). vLLM's
    model, pinned, so its pause touches no other test."""
    fault(gw, "vllm", status=429, retry_after=1, count=1)
    with pytest.raises(openai.RateLimitError) as caught:
        gpt(gw).chat.completions.create(model="llama-3.1-8b-instruct", messages=[{"role": "user", "content": QUESTION}])
    assert caught.value.response.headers["retry-after"] == "1"
    assert "x-should-retry" not in caught.value.response.headers
