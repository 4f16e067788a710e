"""Every ending of a request has one outcome and one bill (extproc/endings.py), end to end.

The official openai SDK streams through the real Envoy and extproc; the simulators close, cut, reset
or fail the stream. Each test reads the request's ledger row, the budget it was charged to, the
health tracker's counters and the labelled metrics.

Prices are steep (USD per 1M tokens: $2 in, $100 out) so every token shows in the cost.
"""

from __future__ import annotations

import re
import time

import httpx
import openai
import pytest

from extproc import tokens
from extproc.keys import digest

from .conftest import NO_EJECTION, fault, ledger_row, metric, reset_faults, scrape, shipped_routing, stack_with

METERED_KEY = "sk-metered-tenant"   # tenant "metered", whose daily budget the tests read

PRICE_IN, PRICE_OUT = 2.0, 100.0
PROMPT = ("Please tell me everything you know about lighthouses on rocky northern coasts, "
          "their keepers, lamps, foghorns and the ships they guided home through storms")
STREAM_MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5", "gemini": "gemini-3.5-flash-lite"}

METERED = {   # every model at the steep prices; tenant "metered" with a daily budget
    **{f"/models/{model}/price": {"input": PRICE_IN, "output": PRICE_OUT} for model in shipped_routing()["models"]},
    # No ejection during these tests: each one reads the counters of a single failure.
    "/health": NO_EJECTION,
    "/budgets": {"tenants": {"metered": {"daily": 1000}}},
    "/tenants/metered": {"workload": "interactive", "api_keys_sha256": [digest(METERED_KEY)]}}


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    with stack_with(tmp_path_factory, "endings", METERED) as stack:
        yield stack


@pytest.fixture(autouse=True)
def clean(gw):
    reset_faults(gw)
    yield


def client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=METERED_KEY, max_retries=0, timeout=30)


def body(model: str) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": PROMPT}]}


def budget_left(text: str) -> float:
    found = re.search(r'llm_gateway_budget_remaining_usd\{name="metered:daily",scope="tenant"\} (\S+)', text)
    assert found, "no budget gauge for tenant metered"
    return float(found.group(1))


def health(gw, model: str) -> dict:
    return httpx.get(gw.status_url).json()["models"].get(model, {"requests": 0, "failures": 0})


def cost(row) -> float:
    return (row.input_tokens * PRICE_IN + row.output_tokens * PRICE_OUT) / 1e6


def stream_text(stream, limit: int | None = None) -> str:
    text = []
    for i, chunk in enumerate(stream):
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
        if limit is not None and i + 1 >= limit:
            break
    return "".join(text)


class Snapshot:
    """Metrics and health before a request, to read what it changed."""

    def __init__(self, gw, model: str):
        self.gw, self.model = gw, model
        self.metrics = scrape(gw)
        self.health = health(gw, model)

    def after(self):
        deadline = time.monotonic() + 10
        while True:   # spans end just after the ledger row is written
            metrics, now = scrape(self.gw), health(self.gw, self.model)
            if metric(metrics, "llm_gateway_requests_total") > metric(self.metrics, "llm_gateway_requests_total") \
                    or time.monotonic() > deadline:
                return metrics, now
            time.sleep(0.05)

    def delta(self, metrics: str, name: str, **labels) -> float:
        return metric(metrics, name, **labels) - metric(self.metrics, name, **labels)


@pytest.mark.parametrize("provider", list(STREAM_MODELS))
def test_a_client_that_closes_after_a_few_events_pays_for_what_it_was_sent(gw, provider):
    model = STREAM_MODELS[provider]
    fault(gw, provider, chunk_interval_ms=150)
    before = Snapshot(gw, model)
    stream = client(gw).chat.completions.create(**body(model), stream=True)
    request_id = stream.response.headers["x-request-id"]
    received = stream_text(stream, limit=4)
    stream.close()

    row = ledger_row(gw, request_id)
    assert (row.outcome, row.status, row.model) == ("cancelled", 499, model)
    full_answer = f"Hello from {model}. You said: {PROMPT[:117]}..."
    assert tokens.count(received) <= row.output_tokens < tokens.count(full_answer)
    if provider != "anthropic":   # Anthropic reports input tokens up front: its count wins
        assert row.input_tokens == tokens.prompt_tokens(body(model))
    assert row.input_tokens > 0
    assert row.cost_usd == pytest.approx(cost(row), rel=1e-9) and row.cost_usd > 0

    metrics, now = before.after()
    # The budget was charged exactly the bill; the provider is not blamed for the client leaving.
    assert budget_left(before.metrics) - budget_left(metrics) == pytest.approx(row.cost_usd, abs=2e-9)
    assert now["failures"] == before.health["failures"]
    assert before.delta(metrics, "llm_gateway_requests_total", outcome="cancelled", status="499",
                        tenant="metered", workload="interactive", model=model) == 1
    assert before.delta(metrics, "llm_gateway_errors_total") == 0


@pytest.mark.parametrize("provider", list(STREAM_MODELS))
def test_a_stream_the_provider_cuts_is_a_failure_billed_for_what_was_delivered(gw, provider):
    model = STREAM_MODELS[provider]
    fault(gw, provider, chunk_interval_ms=40, disconnect_after=6)
    before = Snapshot(gw, model)
    stream = client(gw).chat.completions.create(**body(model), stream=True)
    request_id = stream.response.headers["x-request-id"]
    received = []
    with pytest.raises(openai.APIError):
        for chunk in stream:
            received += [c.delta.content or "" for c in chunk.choices]

    row = ledger_row(gw, request_id)
    assert (row.outcome, row.status) == ("provider_cut", 502)
    assert row.output_tokens >= tokens.count("".join(received)) > 0
    assert row.cost_usd == pytest.approx(cost(row), rel=1e-9) and row.input_tokens > 0

    metrics, now = before.after()
    assert now["failures"] == before.health["failures"] + 1
    assert budget_left(before.metrics) - budget_left(metrics) == pytest.approx(row.cost_usd, abs=2e-9)
    assert before.delta(metrics, "llm_gateway_attempts_total", model=model, outcome="cut") == 1
    assert before.delta(metrics, "llm_gateway_requests_total", outcome="provider_cut", tenant="metered") == 1


@pytest.mark.parametrize("provider", list(STREAM_MODELS))
def test_a_stream_that_ends_in_an_error_event_is_not_a_success(gw, provider):
    model = STREAM_MODELS[provider]
    fault(gw, provider, error_event_after=5)
    before = Snapshot(gw, model)
    stream = client(gw).chat.completions.create(**body(model), stream=True)
    request_id = stream.response.headers["x-request-id"]
    with pytest.raises(openai.APIError):   # the SDK raises on an error event
        stream_text(stream)

    row = ledger_row(gw, request_id)
    assert (row.outcome, row.status) == ("stream_error", 502)
    assert row.output_tokens > 0 and row.cost_usd == pytest.approx(cost(row), rel=1e-9)
    metrics, now = before.after()
    assert now["failures"] == before.health["failures"] + 1
    assert before.delta(metrics, "llm_gateway_attempts_total", model=model, outcome="error_event") == 1
    assert before.delta(metrics, "llm_gateway_requests_total", outcome="stream_error") == 1


def test_a_reset_before_the_answer_counts_against_the_provider_and_the_retry_answers(gw):
    fault(gw, "openai", reset=True, count=1)
    before = Snapshot(gw, "gpt-4o-mini")
    raw = client(gw).chat.completions.with_raw_response.create(   # auto: gpt-4o-mini (OpenAI) first
        model="auto", messages=[{"role": "user", "content": "What is the capital of Peru?"}])
    answer = raw.parse()
    assert raw.headers["x-llm-provider"] != "openai"
    row = ledger_row(gw, raw.headers["x-request-id"])
    assert (row.outcome, row.status, row.attempts) == ("ok", 200, 2)
    # The answer's own usage wins when the provider reported it.
    assert (row.input_tokens, row.output_tokens) == (answer.usage.prompt_tokens, answer.usage.completion_tokens)
    metrics, now = before.after()
    assert now["failures"] == before.health["failures"] + 1
    assert before.delta(metrics, "llm_gateway_attempts_total", outcome="ok") >= 1


def test_a_completed_stream_is_billed_from_the_providers_usage(gw):
    before = Snapshot(gw, "claude-haiku-4-5")
    stream = client(gw).chat.completions.create(**body("claude-haiku-4-5"), stream=True,
                                                stream_options={"include_usage": True})
    request_id = stream.response.headers["x-request-id"]
    usage = [chunk.usage for chunk in stream if chunk.usage is not None][-1]
    row = ledger_row(gw, request_id)
    assert (row.outcome, row.status) == ("ok", 200)
    assert (row.input_tokens, row.output_tokens) == (usage.prompt_tokens, usage.completion_tokens)
    metrics, now = before.after()
    assert now["failures"] == before.health["failures"]
    klass = row.request_class
    assert klass and before.delta(metrics, "llm_gateway_requests_total", outcome="ok", **{"class": klass}) == 1


@pytest.fixture(scope="module")
def hedged(tmp_path_factory):
    with stack_with(tmp_path_factory, "hedged-endings", {**METERED, "/workloads/interactive/hedge": True}) as stack:
        yield stack


def test_a_hedged_attempt_that_lost_has_its_own_record_and_bill(hedged):
    gw = hedged
    fault(gw, "openai", latency_ms=6000, count=1)     # the primary answers far too late: the hedge wins
    fault(gw, "gemini", latency_ms=300, count=1)
    before = budget_left(scrape(gw))
    question = {"model": "auto", "messages": [{"role": "user", "content": "What is the capital of Peru?"}]}
    raw = client(gw).chat.completions.with_raw_response.create(**question)
    raw.parse()
    assert raw.headers["x-llm-provider"] == "gemini" and raw.headers["x-llm-attempts"] == "2"
    request_id = raw.headers["x-request-id"]
    answer, loser = ledger_row(gw, request_id), ledger_row(gw, f"{request_id}/1")
    assert (answer.outcome, answer.provider, answer.attempts) == ("ok", "gemini", 2)
    # The loser was sent the whole prompt and bills it; it delivered nothing.
    assert (loser.outcome, loser.model, loser.output_tokens) == ("hedge_cancelled", "gpt-4o-mini", 0)
    assert loser.input_tokens == tokens.prompt_tokens(question) and loser.cost_usd == pytest.approx(cost(loser))
    # The budget pays for both.
    assert before - budget_left(scrape(gw)) == pytest.approx(answer.cost_usd + loser.cost_usd, abs=2e-9)
