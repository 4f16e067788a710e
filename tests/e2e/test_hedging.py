"""Hedged requests through the real Envoy when attempts stall past their tier's deadline (issue 12).

`auto` routes to the `simple` class of the shipped config: gpt-4o-mini (OpenAI, target 1.5 s), then
gemini-3.5-flash-lite (Gemini, 3 s), then gpt-4o (OpenAI, 10 s). Interactive work is hedged here: the next
candidate starts beside a running attempt that has no response headers by the first tier's target.
"""

from __future__ import annotations

import time

import httpx
import openai
import pytest
import yaml

from extproc.devstack import DEFAULT_ROUTING, Stack

from .conftest import CLIENT_KEY, MODELS, upstream_requests

QUESTION = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def hedged(tmp_path_factory):
    config = yaml.safe_load(DEFAULT_ROUTING.read_text())
    config["health"] = {"consecutive_failures": 1000, "max_error_rate": 1.0}
    config["workloads"]["interactive"]["hedge"] = True
    # A class whose three tiers are three different providers (the shipped `simple` tiers start and
    # end on OpenAI, whose hedge pool endpoint is one): the third tier is a hedge of its own.
    config["routing_rules"]["three_providers"] = {
        "min_score": 0.0, "max_cost_per_request": 0.5, "tiers": [
            {"name": "primary", "models": ["gpt-4o-mini"], "target_latency_ms": 1500},
            {"name": "secondary", "models": ["gemini-3.5-flash-lite"], "target_latency_ms": 3000},
            {"name": "tertiary", "models": ["claude-sonnet-4-6"], "target_latency_ms": 10000}]}
    config["routing_rules"]["capped"] = {
        "min_score": 0.0, "max_cost_per_request": 0.5, "deadline_ms": 2500, "tiers": [
            {"name": "primary", "models": ["gpt-4o-mini"], "target_latency_ms": 1500},
            {"name": "secondary", "models": ["gemini-3.5-flash-lite"], "target_latency_ms": 3000}]}
    path = tmp_path_factory.mktemp("hedging") / "routing.yaml"
    path.write_text(yaml.safe_dump(config))
    stack = Stack(routing=path, simulate=list(MODELS), demo_key=CLIENT_KEY).start()
    yield stack
    stack.stop()


@pytest.fixture(autouse=True)
def clean(hedged):
    for name in hedged.simulators:
        httpx.delete(f"{hedged.sim_url(name)}/_sim/faults")
        httpx.delete(f"{hedged.sim_url(name)}/_sim/requests")


def fault(gw, provider: str, **fields) -> None:
    assert httpx.put(f"{gw.sim_url(provider)}/_sim/faults", json=fields).status_code == 200


def ask(gw, model: str = "auto", stream: bool = False, timeout: float = 60):
    client = openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=timeout)
    raw = client.chat.completions.with_raw_response.create(model=model, messages=QUESTION, stream=stream)
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    else:
        text = raw.parse().choices[0].message.content
    return raw, text


def envoy_alive(gw) -> bool:
    return all(p.poll() is None for p in gw.processes)


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
