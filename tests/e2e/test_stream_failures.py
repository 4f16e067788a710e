"""Streams that fail before any content reached the client (issue 12; tryout 6 H3, H4), end to end.

The official SDKs (openai on chat and /v1/responses, anthropic on /v1/messages) stream through the
real Envoy and extproc; the simulators fail the stream the way each provider does:

- an error event before any content (OpenAI's ``{"error": ...}`` frame after the role-only chunk,
  Anthropic's ``overloaded_error`` after ``message_start``, Gemini's error object): on a held stream
  (latency-first, a fallback in the plan) nothing has reached the client, so the next tier answers;
- a connection reset right after the provider's response headers: on a held stream the next tier
  answers; otherwise, when the reset came while Envoy still held the headers, the client gets a 502
  ``provider_cut`` in its own API's shape, without retry-after (it was never "over capacity").

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
           "openai_then_claude": tiers("gpt-4o-mini", "claude-haiku-4-5")}


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    changes = {"/health": NO_EJECTION, **{f"/routing_rules/{name}": spec for name, spec in CLASSES.items()}}
    with stack_with(tmp_path_factory, "stream_failures", changes) as stack:
        yield stack


@pytest.fixture(autouse=True)
def clean(gw):
    reset_faults(gw)
    clear_requests(gw)


def gpt(gw, retries: int = 0) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=retries, timeout=30)


def claude(gw) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gw.base_url.removesuffix("/v1"), api_key=CLIENT_KEY, max_retries=0,
                               timeout=30)


def stream(gw, door: str, model: str) -> tuple[dict[str, str], str]:
    """One streamed answer through ``door`` with its official SDK: (response headers, the text). The SDKs
    raise on an error event, so a return means the client saw none."""
    if door == "messages":
        with claude(gw).messages.with_streaming_response.create(
                model=model, max_tokens=200, stream=True, messages=[{"role": "user", "content": QUESTION}]) as raw:
            text = "".join(e.delta.text for e in raw.parse() if e.type == "content_block_delta"
                           and e.delta.type == "text_delta")
            return dict(raw.headers), text
    if door == "responses":
        with gpt(gw).responses.with_streaming_response.create(model=model, input=QUESTION, stream=True) as raw:
            text = "".join(e.delta for e in raw.parse() if e.type == "response.output_text.delta")
            return dict(raw.headers), text
    with gpt(gw).chat.completions.with_streaming_response.create(
            model=model, stream=True, messages=[{"role": "user", "content": QUESTION}]) as raw:
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


# ---- H3: a reset right after the provider's headers, on a stream that is not held ------------------

# (door, pinned model, provider): chat to Claude and /v1/responses to Claude go out on Anthropic's
# /v1/messages path, /v1/messages to OpenAI on OpenAI's chat path.
CUT = [("chat", "claude-haiku-4-5", "anthropic"), ("chat", "gpt-4o-mini", "openai"),
       ("messages", "gpt-4o-mini", "openai"), ("messages", "claude-haiku-4-5", "anthropic"),
       ("responses", "claude-haiku-4-5", "anthropic")]
PATHS = {"chat": "/chat/completions", "messages": "/messages", "responses": "/responses"}


def cut_request(gw, door: str, model: str) -> httpx.Response | None:
    """One pinned stream whose provider resets right after its headers: Envoy's own reply when the reset
    came while the router stage held the headers, else None (the client got a 200, then a cut)."""
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


def envoys_reply(gw, door: str, model: str, provider: str) -> httpx.Response:
    """Envoy's reply to a reset that came before any byte reached the client. Which side of the race a
    reset lands on is the machine's (about 5 of 6 here): a few tries find it."""
    fault(gw, provider, disconnect_after=0)
    for _ in range(12):
        reply = cut_request(gw, door, model)
        if reply is not None:
            return reply
    raise AssertionError("twelve resets, and each came after the headers reached the client")


@pytest.mark.parametrize("door, model, provider", CUT, ids=[f"{d}-{m}" for d, m, _ in CUT])
def test_a_provider_reset_before_any_byte_is_a_502_in_the_clients_shape(gw, door, model, provider):
    reply = envoys_reply(gw, door, model, provider)
    assert reply.status_code == 502, reply.text
    assert "retry-after" not in reply.headers                # the provider failed: not "come back in 1 s"
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


def test_the_openai_sdk_reads_a_reset_as_a_provider_failure_not_over_capacity(gw):
    fault(gw, "openai", disconnect_after=0)
    for _ in range(12):
        try:
            with gpt(gw).chat.completions.with_streaming_response.create(
                    model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": QUESTION}]) as raw:
                list(raw.parse())
        except openai.APIStatusError as exc:
            assert exc.status_code == 502 and exc.code == "provider_cut" and exc.type == "upstream_error"
            assert "retry-after" not in exc.response.headers
            return
        except (httpx.RemoteProtocolError, openai.APIConnectionError):
            continue   # the headers went out before the reset: a 200, then a cut body
    raise AssertionError("no reset came before the headers reached the client")


def test_the_anthropic_sdk_reads_a_reset_in_anthropics_shape(gw):
    fault(gw, "openai", disconnect_after=0)
    for _ in range(12):
        try:
            stream(gw, "messages", "gpt-4o-mini")
        except anthropic.APIStatusError as exc:
            assert exc.status_code == 502 and exc.body["type"] == "error"
            assert exc.body["error"]["type"] == "api_error"
            assert "retry-after" not in exc.response.headers
            return
        except (httpx2.RemoteProtocolError, anthropic.APIConnectionError):
            continue   # the headers went out before the reset (a cut body: httpx2's error, not httpx's)
    raise AssertionError("no reset came before the headers reached the client")


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
    assert len(upstream_requests(gw, "openai")) == 1 and len(upstream_requests(gw, "anthropic")) == 1
