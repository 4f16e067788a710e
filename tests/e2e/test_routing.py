"""The shipped routing config, end to end through Envoy: classes, workloads, surfaces, tenants, cost caps,
pinning, and a clear error when nothing fits. Every decision is visible in the response headers."""

from __future__ import annotations

import httpx

from .conftest import AUTH

SIMPLE = "What is the capital of France?"
REASONING = ("Janet has 3 times as many marbles as Tom. Together they have 48 marbles, and Janet gives 6 to "
             "Tom. How many more marbles does Janet have than Tom now? Show your reasoning step by step.")


def ask(gateway, content, model="auto", **headers) -> httpx.Response:
    return httpx.post(f"{gateway.base_url}/chat/completions", headers={**AUTH, **headers}, timeout=30,
                      json={"model": model, "messages": [{"role": "user", "content": content}]})


# Each class's primary tier (config/routing.yaml). Which model of the tier answers depends on live
# latency (interactive work takes the fastest), so the tests name the tier, not one model.
SIMPLE_PRIMARY = {"gpt-4o-mini", "azure-gpt-4o-mini", "llama-3.1-8b-instruct"}
REASONING_PRIMARY = {"gpt-4o", "claude-sonnet-4-6"}


def test_a_simple_question_and_a_reasoning_prompt_land_on_different_models(gateway):
    simple, hard = ask(gateway, SIMPLE), ask(gateway, REASONING)
    assert simple.headers["x-llm-class"] == "simple_queries" and simple.headers["x-llm-model"] in SIMPLE_PRIMARY
    assert hard.headers["x-llm-class"] == "complex_reasoning" and hard.headers["x-llm-model"] in REASONING_PRIMARY
    assert float(hard.headers["x-llm-score"]) > float(simple.headers["x-llm-score"])
    assert "alias 'auto' -> class 'complex_reasoning'" in hard.headers["x-llm-route"]
    assert simple.headers["x-llm-workload"] == "interactive"


def test_the_support_surface_never_lands_below_its_quality_floor(gateway):
    r = ask(gateway, SIMPLE, **{"x-llm-surface": "support"})
    assert r.headers["x-llm-surface"] == "support"
    assert r.headers["x-llm-model"] in REASONING_PRIMARY     # quality 5; the floor is 4


def test_a_tenant_is_recognised_by_its_api_key(gateway):
    r = ask(gateway, SIMPLE, authorization="Bearer sk-helpdesk-demo")     # helpdesk -> surface support
    assert r.headers["x-llm-surface"] == "support" and r.headers["x-llm-model"] in REASONING_PRIMARY


def test_batch_work_takes_the_cheapest_model_meeting_the_floor(gateway):
    r = ask(gateway, SIMPLE, **{"x-llm-workload": "batch"})
    assert (r.headers["x-llm-workload"], r.headers["x-llm-model"]) == ("batch", "llama-3.1-8b-instruct")


def test_the_drafts_surface_cost_cap_keeps_reasoning_off_premium_models(gateway):
    r = ask(gateway, REASONING, **{"x-llm-surface": "drafts"})
    assert r.headers["x-llm-class"] == "complex_reasoning"
    assert r.headers["x-llm-model"] not in REASONING_PRIMARY   # premium models are over max_cost_per_1k 0.002


def test_a_named_model_is_pinned(gateway):
    r = ask(gateway, REASONING, model="gpt-4o-mini")
    assert r.headers["x-llm-model"] == "gpt-4o-mini" and r.headers["x-llm-route"].startswith("pinned")


def test_unknown_routing_headers_are_rejected(gateway):
    r = ask(gateway, SIMPLE, **{"x-llm-surface": "no-such-surface"})
    assert r.status_code == 400 and "no-such-surface" in r.json()["error"]["message"]


def test_nothing_fits_is_a_422_that_says_why(gateway):
    r = httpx.post(f"{gateway.base_url}/chat/completions", headers={"x-llm-surface": "support", **AUTH}, timeout=30, json={
        "model": "auto", "max_tokens": 500_000, "messages": [{"role": "user", "content": SIMPLE}]})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "no_model_available"
    assert error["message"].startswith("no model satisfies") and "tokens" in error["message"]
