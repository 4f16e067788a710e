"""Hedged requests through the real Envoy when attempts stall past their tier's deadline (issue 12).

`auto` routes to the `simple` class of the shipped config: gpt-4o-mini (OpenAI, target 1.5 s), then
gemini-3.5-flash-lite (Gemini, 3 s), then gpt-4o (OpenAI, 10 s). Interactive work is hedged here: the next
candidate starts beside a running attempt that has no response headers by the first tier's target
(`hedge: true` on the class, here).
"""

from __future__ import annotations

import os
import signal
import time

import httpx
import openai
import pytest

from extproc import envoy_config
from extproc.devstack import Stack

from .conftest import (CLIENT_KEY, MODELS, NO_EJECTION, clear_requests, fault, ledger_rows, reset_faults,
                       routing_with, upstream_requests)

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


def tiers(*pairs):
    return [{"name": f"tier{i}", "models": [model], "target_latency_ms": target}
            for i, (model, target) in enumerate(pairs, 1)]


@pytest.fixture(scope="module")
def hedged_routing(tmp_path_factory):
    return routing_with(tmp_path_factory.mktemp("hedging"), {
        "/health": NO_EJECTION,
        "/routing_rules/simple_queries/hedge": True,   # `auto` for interactive work: hedged
        # A class whose three tiers are three different providers (the shipped `simple` tiers start and
        # end on OpenAI, whose hedge pool endpoint is one): the third tier is a hedge of its own.
        "/routing_rules/three_providers": {"min_score": 0.0, "max_cost_per_request": 0.5, "hedge": True,
                                           "tiers": tiers(("gpt-4o-mini", 1500), ("gemini-3.5-flash-lite", 3000),
                                                          ("claude-sonnet-4-6", 10000))},
        # A configured deadline (2.5 s) below the attempts' own (2 s, then 6 s capped to 2.5 s), hedged or not.
        **{f"/routing_rules/{name}": {"min_score": 0.0, "max_cost_per_request": 0.5, "hedge": hedge, "deadline_ms": 2500,
                                      "tiers": tiers(("gpt-4o-mini", 1000), ("gemini-3.5-flash-lite", 3000))}
           for name, hedge in (("capped", False), ("capped_hedged", True))},
        # Three providers hedged 1 s apart, the request ended by its deadline_ms at 3.5 s: an all-stalled JSON
        # request in seconds (the shipped bound for three_providers is 23.5 s).
        "/routing_rules/three_capped": {"min_score": 0.0, "max_cost_per_request": 0.5, "hedge": True,
                                        "deadline_ms": 3500,
                                        "tiers": tiers(("gpt-4o-mini", 1000), ("gemini-3.5-flash-lite", 1000),
                                                       ("claude-sonnet-4-6", 1000))},
        # Attempts cut at 1 s each, within the request's 2.5 s: the last attempt's own deadline ends it.
        "/routing_rules/short_tiers": {"min_score": 0.0, "max_cost_per_request": 0.5, "tiers": tiers(
            ("gpt-4o-mini", 500), ("gemini-3.5-flash-lite", 500))}})


@pytest.fixture(scope="module")
def hedged(hedged_routing):
    stack = Stack(routing=hedged_routing, simulate=list(MODELS), demo_key=CLIENT_KEY).start()
    yield stack
    stack.stop()


ROUTE_IDLE_S = 5


@pytest.fixture(scope="module")
def hedged_quick_idle(hedged_routing):
    """The hedged stack with the routes' stream idle timeout (shipped: 120 s) at 5 s, so a test of what
    ends an all-stalled stream takes seconds, not minutes."""
    original = envoy_config.load

    def load(path=envoy_config.DEFAULT_PATH):
        config = original(path)
        found = []

        def shorten(node):
            if isinstance(node, dict):
                if node.get("idle_timeout") == "120s" and ("cluster" in node or "inline_cluster_specifier_plugin" in node):
                    node["idle_timeout"] = f"{ROUTE_IDLE_S}s"   # a route action's, not a connection's
                    found.append(node)
                for value in node.values():
                    shorten(value)
            elif isinstance(node, list):
                for value in node:
                    shorten(value)
        shorten(config)
        assert found, "no route with the shipped 120 s idle timeout"
        return config
    patch = pytest.MonkeyPatch()
    patch.setattr(envoy_config, "load", load)
    try:
        stack = Stack(routing=hedged_routing, simulate=list(MODELS), demo_key=CLIENT_KEY).start()
    finally:
        patch.undo()
    yield stack
    stack.stop()


@pytest.fixture(autouse=True)
def clean(hedged):
    reset_faults(hedged)
    clear_requests(hedged)


def ask(gw, model: str = "auto", stream: bool = False, timeout: float = 60):
    client = openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=timeout)
    raw = client.chat.completions.with_raw_response.create(model=model, messages=QUESTION, stream=stream)
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    else:
        text = raw.parse().choices[0].message.content
    return raw, text


def envoy_alive(gw) -> bool:
    """Envoy never died (the dev stack would have restarted it)."""
    return gw.envoy_restarts == 0 and gw._envoy.poll() is None


@pytest.mark.parametrize("stream", [True, False])
def test_a_primary_past_its_deadline_while_the_hedge_is_pending_is_answered_by_the_hedge(hedged, stream):
    """Issue 12 (C1): attempt 1 past its 3 s deadline while the hedge (started at 1.5 s) still waits.
    Envoy 1.40 segfaulted on the stream when attempt 1's deadline gave a 504 with the hedge in flight."""
    gw = hedged
    fault(gw, "openai", latency_ms=4000)
    fault(gw, "gemini", latency_ms=1700)
    started = time.monotonic()
    raw, text = ask(gw, stream=stream)
    elapsed = time.monotonic() - started
    # The hedge started at the primary's 1.5 s target and answered 1.7 s later: the first response wins.
    assert raw.status_code == 200 and raw.headers["x-llm-provider"] == "gemini", raw.headers
    # x-llm-route keeps the decision (the plan's first choice) and says who answered (tryout 5 P5)
    assert raw.headers["x-llm-route"].endswith("; answered by gemini-3.5-flash-lite (attempt 2, hedged)"), raw.headers
    assert text.endswith("You said: What is the capital of France?")
    assert 3.1 < elapsed < 4.0, elapsed
    assert envoy_alive(gw), f"Envoy died; see {gw.workdir}/stack.log"
    # ... and the stack still serves.
    fault(gw, "openai")
    raw, _ = ask(gw, stream=stream)
    assert raw.status_code == 200 and raw.headers["x-llm-provider"] == "openai"


@pytest.mark.parametrize("stream", [False, True])
def test_a_hedged_plan_still_reaches_its_third_tier(hedged, stream):
    """Issue 12 (H1): the hedge used to take the only retry, so with the first two tiers stalled a hedged
    request got 504 at 7.5 s where an unhedged one was served by its third tier. Every distinct candidate
    now gets its attempt, each started at the first tier's target after the one before."""
    gw = hedged
    fault(gw, "openai", latency_ms=25000)
    fault(gw, "gemini", latency_ms=25000)
    started = time.monotonic()
    raw, text = ask(gw, model="three_providers", stream=stream)
    elapsed = time.monotonic() - started
    assert raw.status_code == 200 and raw.headers["x-llm-provider"] == "anthropic", raw.headers
    assert raw.headers["x-llm-model"] == "claude-sonnet-4-6" and raw.headers["x-llm-attempts"] == "3"
    assert text.endswith("You said: What is the capital of France?")
    assert 2.9 < elapsed < 4.5, elapsed   # hedges at 1.5 s and 3 s; sequential would take 3 + 6 s
    assert len(upstream_requests(gw, "anthropic")) == 1
    assert envoy_alive(gw)


def test_a_provider_failing_while_the_other_hedges_are_pending_leaves_them_to_answer(hedged):
    """A 5xx from one attempt once every candidate has started (no retry left) while the others still
    run: the client gets the answer that comes, and Envoy stays up."""
    gw = hedged
    fault(gw, "openai", latency_ms=3500, status=500)
    fault(gw, "gemini", latency_ms=25000)
    fault(gw, "anthropic", latency_ms=1500)
    raw, _ = ask(gw, model="three_providers", stream=True)
    assert raw.status_code == 200 and raw.headers["x-llm-provider"] == "anthropic", raw.headers
    assert envoy_alive(gw), f"Envoy died; see {gw.workdir}/stack.log"
    # Only the attempt the answer beat bills its prompt (gemini, cancelled); the one OpenAI refused with
    # a 500 bills nothing, as providers do not bill refused requests (tryout 5: it was charged too).
    request_id = raw.headers["x-request-id"]
    rows = ledger_rows(gw, request_id, 2)
    assert rows[f"{request_id}/2"].outcome == "hedge_cancelled" and rows[f"{request_id}/2"].cost_usd > 0, rows
    assert f"{request_id}/1" not in rows, rows


THREE = {"gpt-4o-mini": "openai", "gemini-3.5-flash-lite": "gemini", "claude-sonnet-4-6": "anthropic"}


@pytest.mark.parametrize("stream", [False, True])
def test_attempt_1_answering_after_the_hedges_started_is_translated_and_billed_as_its_own(hedged, stream):
    """Issue 12 (N1): every provider answers in 5 s, so attempt 1 (started at 0 s) answers first, after the
    hedges (started at 1.5 s and 3 s). Envoy's response x-envoy-attempt-count then says 3 (attempts started):
    the answer was read with the third provider's rules (empty content, a malformed-stream error),
    labelled and billed as the third model, and the real answerer recorded hedge_cancelled.
    (Which provider is attempt 1 depends on the health window: OpenAI at 5 s is demoted for latency
    after the first run, and the plan then starts on Gemini. The route header names it.)"""
    gw = hedged
    for provider in THREE.values():
        fault(gw, provider, latency_ms=5000)
    started = time.monotonic()
    raw, text = ask(gw, model="three_providers", stream=stream)
    elapsed = time.monotonic() - started
    assert raw.status_code == 200, raw.headers
    first = raw.headers["x-llm-route"].rsplit(": ", 1)[1].split(" (")[0]   # "...: <model> (tier1)"
    assert first in THREE, raw.headers
    got = (raw.headers["x-llm-provider"], raw.headers["x-llm-model"])
    assert got == (THREE[first], first), (raw.headers, elapsed, text)
    # The simulator names the model that wrote the answer: attempt 1's, whole, at 5 s (a hedge's comes at 6.5 s).
    assert text == f"Hello from {first}. You said: What is the capital of France?", text
    assert 4.9 < elapsed < 6.4, elapsed
    assert "x-llm-egress" not in raw.headers and "x-envoy-attempt-count" not in raw.headers
    # All three were sent the prompt: the answer is billed to attempt 1's model, the two hedges are the losers.
    request_id = raw.headers["x-request-id"]
    started_attempts = int(raw.headers["x-llm-attempts"])   # 3, or 2 when a demoted OpenAI is not hedged
    assert started_attempts >= 2, raw.headers
    rows = ledger_rows(gw, request_id, started_attempts)
    answer = rows[request_id]
    assert (answer.model, answer.provider, answer.status, answer.outcome) == (first, THREE[first], 200, "ok"), answer
    assert answer.output_tokens > 0, answer
    losers = {r.model: (r.request_id.rsplit("/", 1)[1], r.outcome) for r in rows.values() if r is not answer}
    assert first not in losers and set(losers) <= set(THREE), losers
    assert sorted(losers.values()) == [(str(n), "hedge_cancelled") for n in range(2, started_attempts + 1)], losers
    assert envoy_alive(gw)


def test_every_stalled_hedged_attempt_is_recorded_once_with_its_own_model(hedged):
    """Tryout 5 P2: every attempt of a hedged JSON request stalls, so its deadline ends it with a 504. The
    ledger had one record, billed to the last attempt's model; the two others, also sent the whole prompt,
    had none (a won race records each loser). One rule now: each attempt sent the prompt that ended without
    an answer has one record with its own model, billed its prompt: the last the request's own, the others
    ``<id>/<attempt>``, all ``timeout``/504."""
    gw = hedged
    for provider in THREE.values():
        fault(gw, provider, latency_ms=25000)
    response, elapsed = gateway_deadline(gw, "three_capped")
    assert response.status_code == 504, response.text
    assert response.json()["error"]["code"] == "gateway_timeout"
    assert 3.4 < elapsed < 6, elapsed
    for provider in THREE.values():   # each provider was sent the prompt
        assert len(upstream_requests(gw, provider)) == 1, provider
    request_id = response.headers["x-request-id"]
    rows = ledger_rows(gw, request_id, 3)
    assert sorted(rows) == sorted([request_id, f"{request_id}/1", f"{request_id}/2"]), rows
    assert sorted(r.model for r in rows.values()) == sorted(THREE), rows   # each model once
    assert {(r.outcome, r.status) for r in rows.values()} == {("timeout", 504)}, rows
    for row in rows.values():
        assert row.input_tokens > 0 and row.cost_usd > 0 and row.output_tokens == 0, row
    assert rows[request_id].attempts == 3, rows[request_id]
    assert envoy_alive(gw)


def gateway_deadline(gw, model: str, stream: bool = False) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    with httpx.Client(timeout=60) as client:
        response = client.post(f"{gw.base_url}/chat/completions", headers={"authorization": f"Bearer {CLIENT_KEY}"},
                               json={"model": model, "messages": QUESTION, "stream": stream})
    return response, time.monotonic() - started


@pytest.mark.parametrize("model, stream, words, at", [
    # the last attempt cut at its own deadline by its egress listener (1 s + 1 s)
    ("short_tiers", False, "deadline for attempt 2 passed: gemini-3.5-flash-lite", 2.0),
    ("short_tiers", True, "deadline for attempt 2 passed: gemini-3.5-flash-lite", 2.0),
    # the configured deadline_ms, by Envoy's router, unhedged and hedged (two attempts in flight)
    ("capped", False, "its deadline_ms of 2500 ms", 2.5),
    ("capped_hedged", False, "its deadline_ms of 2500 ms", 2.5)])
def test_a_passed_gateway_deadline_reads_the_same_on_every_path(hedged, model, stream, words, at):
    """Issue 12 (M3): one body for a gateway deadline, saying which one passed, with the usual provenance
    (it was "provider returned HTTP 504 without an OpenAI error body", "upstream request timeout", or
    type gateway_error / code response_timeout without any x-llm-* header)."""
    gw = hedged
    fault(gw, "openai", latency_ms=25000)
    fault(gw, "gemini", latency_ms=25000)
    response, elapsed = gateway_deadline(gw, model, stream)
    assert response.status_code == 504, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("timeout_error", "gateway_timeout", None), error
    assert error["message"].startswith("The gateway's deadline") and words in error["message"], error
    assert response.headers["x-llm-class"] == model and "x-llm-route" in response.headers, response.headers
    assert "x-llm-attempt-deadline" not in response.headers
    assert at - 0.1 < elapsed < at + 1.5, elapsed
    assert envoy_alive(gw)


def test_attempt_1_answering_after_the_hedges_started_reaches_the_messages_door_as_an_anthropic_message(hedged):
    """Issue 12 (N1), Anthropic's front door: the body was a raw OpenAI chat.completion object (attempt 1's
    OpenAI JSON handed on as if attempt 3's, whose provider speaks the door's own API)."""
    import anthropic

    gw = hedged
    for provider in THREE.values():
        fault(gw, provider, latency_ms=5000)
    client = anthropic.Anthropic(base_url=gw.base_url.removesuffix("/v1"), api_key=CLIENT_KEY, max_retries=0,
                                 timeout=60)
    raw = client.messages.with_raw_response.create(model="three_providers", max_tokens=50, messages=QUESTION)
    message = raw.parse()
    first = raw.headers["x-llm-route"].rsplit(": ", 1)[1].split(" (")[0]
    assert (raw.headers["x-llm-provider"], raw.headers["x-llm-model"]) == (THREE[first], first), raw.headers
    assert message.type == "message" and message.role == "assistant", message
    assert message.content[0].text == f"Hello from {first}. You said: What is the capital of France?", message
    assert envoy_alive(gw)


def test_a_hedged_stream_with_every_candidate_stalled_gets_the_gateways_deadline_body(hedged_quick_idle):
    """Tryout 4 N2: every hedged candidate stalls before its headers, so the route's idle timeout (120 s)
    ends the stream (5 s here). Its 504 was {"error":{"message":"stream timeout","type":"timeout_error"},"type":"error"}
    (no code, no param, a stray top-level type) with no x-llm-route / -class / -model provenance.
    (The 120 s bound itself is unchanged: README, Hedging, "Bound".)"""
    gw = hedged_quick_idle
    for provider in THREE.values():
        fault(gw, provider, latency_ms=60000)
    started = time.monotonic()
    with httpx.Client(timeout=60) as client:
        response = client.post(f"{gw.base_url}/chat/completions", headers={"authorization": f"Bearer {CLIENT_KEY}"},
                               json={"model": "three_providers", "messages": QUESTION, "stream": True})
    elapsed = time.monotonic() - started
    assert response.status_code == 504, response.text
    body = response.json()
    assert list(body) == ["error"], body
    error = body["error"]
    assert (error["type"], error["code"], error["param"]) == ("timeout_error", "gateway_timeout", None), error
    assert error["message"].startswith("The gateway's deadline") and "idle timeout" in error["message"], error
    assert response.headers["x-llm-class"] == "three_providers" and "x-llm-route" in response.headers
    assert ROUTE_IDLE_S - 0.5 < elapsed < ROUTE_IDLE_S + 10, elapsed
    assert envoy_alive(gw)


@pytest.mark.parametrize("model", ["short_tiers", "capped_hedged"])
def test_a_passed_gateway_deadline_on_the_messages_door_is_in_anthropics_shape(hedged, model):
    gw = hedged
    fault(gw, "openai", latency_ms=25000)
    fault(gw, "gemini", latency_ms=25000)
    response = httpx.post(f"{gw.base_url.removesuffix('/v1')}/v1/messages", timeout=60,
                          headers={"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"},
                          json={"model": model, "max_tokens": 50, "messages": QUESTION})
    assert response.status_code == 504, response.text
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == "timeout_error", body
    assert body["error"]["message"].startswith("The gateway's deadline"), body
    assert response.headers["x-llm-class"] == model


def test_the_dev_stack_restarts_an_envoy_that_died(tmp_path):
    """`make run` supervised only extproc: after Envoy's crash every request was refused until restarted."""
    with Stack(simulate=list(MODELS), demo_key=CLIENT_KEY) as gw:
        dead = gw.envoy_pid
        os.kill(dead, signal.SIGKILL)

        def served() -> bool:
            try:
                return httpx.post(f"{gw.base_url}/chat/completions", headers=gw.auth, timeout=5,
                                  json={"model": "gpt-4o-mini", "messages": QUESTION}).status_code == 200
            except httpx.HTTPError:
                return False

        deadline = time.monotonic() + 30
        while not served():
            assert time.monotonic() < deadline, f"no Envoy again within 30 s; see {gw.workdir}/stack.log"
            time.sleep(0.2)
        assert gw.envoy_restarts == 1 and gw.envoy_pid != dead
