"""Fallback tiers through the real Envoy: failures cascade to the next tier's provider, translated afresh.

`auto` routes to the `simple` class of the shipped config, one attempt per tier: gpt-4o-mini (OpenAI
API), then gemini-3.5-flash-lite (Gemini API), then gpt-4o (OpenAI API). This stack never ejects (its health rules are
off), so each test sees the plain cascade; ejection has its own stack in test_ejection.py.
"""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest
import yaml

from .conftest import (AUTH, CLIENT_KEY, MODELS, NO_EJECTION, clear_requests, fault, metric, reset_faults, scrape,
                       stack_with, upstream_requests, wait_for)


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    with stack_with(tmp_path_factory, "fallback", {"/health": NO_EJECTION}) as stack:
        yield stack


@pytest.fixture(autouse=True)
def clean(gw):
    reset_faults(gw)
    clear_requests(gw)


def ask(gw, stream: bool = False):
    client = openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=30)
    return client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "What is the capital of Peru?"}], stream=stream)


# What an OpenAI client gets for a provider's failure: the gateway's words for the situation.
PROVIDER_ERRORS = {400: (400, "invalid_request_error", "upstream_invalid_request"),
                   404: (404, "invalid_request_error", "model_not_found"),
                   413: (413, "invalid_request_error", "request_too_large"),
                   422: (422, "invalid_request_error", "upstream_invalid_request"),
                   500: (502, "upstream_error", "bad_gateway"),
                   502: (502, "upstream_error", "bad_gateway"),
                   503: (503, "server_error", "service_unavailable"),
                   504: (504, "timeout_error", "gateway_timeout"),
                   529: (503, "server_error", "service_unavailable")}


@pytest.mark.parametrize("stream", [False, True])
def test_a_pinned_models_error_reads_the_same_whichever_provider_said_it(gw, stream):
    """Anthropic's error types and Gemini's status names reached OpenAI clients as the code
    ("overloaded_error", "UNAVAILABLE", "INTERNAL"), OpenAI's own type ("server_error") replaced ours:
    one situation, five codes. Every provider's error body is in its API's own shape (simulators)."""
    seen = {}
    for status, expected in PROVIDER_ERRORS.items():
        for provider, model in MODELS.items():
            fault(gw, provider, status=status, count=1)
            response = httpx.post(f"{gw.base_url}/chat/completions", timeout=30, headers=AUTH, json={
                "model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
            error = response.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}
            seen[status, provider] = (response.status_code, error["type"], error["code"])
            assert error["message"] and not error["message"].startswith("{"), error
            # A success in between, so Envoy's outlier detection (5 consecutive 5xx) never ejects the host.
            assert httpx.post(f"{gw.base_url}/chat/completions", timeout=30, headers=AUTH, json={
                "model": model, "messages": [{"role": "user", "content": "hi"}]}).status_code == 200
    assert {k: v for k, v in seen.items() if v != PROVIDER_ERRORS[k[0]]} == {}


def test_an_overloaded_provider_mid_stream_reads_the_same_from_anthropic_and_gemini(gw):
    """The error event after a 200: Anthropic's overloaded_error and Gemini's UNAVAILABLE went out as
    the code; both now read as a 503 before the stream would (server_error, service_unavailable)."""
    last = {}
    for provider in ("anthropic", "gemini"):
        fault(gw, provider, error_event_after=2, count=1)
        with httpx.stream("POST", f"{gw.base_url}/chat/completions", timeout=30, headers=AUTH, json={
                "model": MODELS[provider], "stream": True,
                "messages": [{"role": "user", "content": "Count to ten, slowly"}]}) as response:
            assert response.status_code == 200
            events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
        assert "[DONE]" not in events
        last[provider] = json.loads(events[-1])["error"]
    assert {p: (e["type"], e["code"]) for p, e in last.items()} == {
        "anthropic": ("server_error", "service_unavailable"), "gemini": ("server_error", "service_unavailable")}
    assert all(set(e) == {"message", "type", "param", "code"} and e["message"] for e in last.values())


def test_the_plan_cascades_across_provider_apis(gw):
    raw = ask(gw)
    assert raw.headers["x-llm-provider"] == "openai" and raw.headers["x-llm-attempts"] == "1"
    assert raw.headers["x-llm-class"] == "simple_queries"


@pytest.mark.parametrize("fault_fields,kind", [
    ({"status": 500}, "500"), ({"status": 503}, "503"), ({"status": 429, "retry_after": 0}, "429"),
    ({"reset": True}, "reset"), ({"stall": True}, "stall")])
def test_primary_failure_is_answered_by_the_secondary_in_its_own_api(gw, fault_fields, kind):
    fault(gw, "openai", count=1, **fault_fields)
    started = time.monotonic()
    raw = ask(gw)
    elapsed = time.monotonic() - started
    completion = raw.parse()
    assert raw.headers["x-llm-provider"] == "gemini" and raw.headers["x-llm-model"] == "gemini-3.5-flash-lite"
    assert raw.headers["x-llm-attempts"] == "2"
    assert completion.choices[0].message.content.endswith("You said: What is the capital of Peru?")
    (primary,) = upstream_requests(gw, "openai")
    assert primary["body"]["model"] == "gpt-4o-mini" and "messages" in primary["body"]
    (secondary,) = upstream_requests(gw, "gemini")
    # The secondary got its own API shape and key, built from the original body, not the primary's translation.
    assert secondary["path"] == "/v1beta/models/gemini-3.5-flash-lite:generateContent"
    assert "contents" in secondary["body"] and "messages" not in secondary["body"]
    assert "model" not in secondary["body"]
    headers = {k.lower(): v for k, v in secondary["headers"].items()}
    assert headers["x-goog-api-key"] == "sim-gemini-key"
    assert "authorization" not in headers and "x-llm-try-1" not in headers
    if kind == "stall":   # cut at the primary tier's 1.5 s target x attempt_timeout_factor 2
        assert 2.8 < elapsed < 6, elapsed
    else:
        assert elapsed < 2, elapsed


def test_streams_fall_back_before_the_first_byte(gw):
    fault(gw, "openai", count=1, status=503)
    raw = ask(gw, stream=True)
    assert raw.headers["x-llm-provider"] == "gemini"
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert text.endswith("You said: What is the capital of Peru?")


def test_a_stream_is_not_retried_after_its_first_byte(gw):
    """A provider dropping its connection mid-stream: Envoy cannot retry once bytes reached the client,
    so the client gets the tokens already sent and then a truncated body (no [DONE]), never a hang."""
    # Paced, so the first events certainly reached the client before the drop (a drop while Envoy
    # still holds the response headers is retried on the next tier, as if nothing had started).
    fault(gw, "openai", disconnect_after=3, chunk_interval_ms=150)
    events = []
    started = time.monotonic()
    with pytest.raises(httpx.RemoteProtocolError):   # the chunked body ends without its last chunk
        with httpx.stream("POST", f"{gw.base_url}/chat/completions", timeout=30, headers=AUTH, json={
                "model": "auto", "stream": True, "messages": [{"role": "user", "content": "one two three four"}]}) as r:
            assert r.status_code == 200 and r.headers["x-llm-provider"] == "openai"
            for line in r.iter_lines():
                if line.startswith("data: "):
                    events.append(line)
    assert time.monotonic() - started < 10             # no hang
    assert events and "[DONE]" not in events[-1]        # the tokens already sent arrived, and no false end
    assert json.loads(events[0][len("data: "):])["choices"][0]["delta"]["role"] == "assistant"
    assert upstream_requests(gw, "gemini") == []        # nothing was retried elsewhere


def test_all_tiers_down_is_one_clear_error_within_the_deadline(gw):
    for provider in ("openai", "gemini"):
        fault(gw, provider, status=503)
    started = time.monotonic()
    response = httpx.post(f"{gw.base_url}/chat/completions", timeout=30, headers=AUTH, json={
        "model": "auto", "messages": [{"role": "user", "content": "anyone?"}]})
    assert time.monotonic() - started < 2
    assert response.status_code == 503
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert response.headers["x-llm-attempts"] == "3"
    # One attempt per tier: gpt-4o-mini (primary), gemini-3.5-flash-lite (secondary), gpt-4o (tertiary).
    assert [r["body"]["model"] for r in upstream_requests(gw, "openai")] == ["gpt-4o-mini", "gpt-4o"]
    assert len(upstream_requests(gw, "gemini")) == 1


def test_all_tiers_stalled_is_a_504_at_the_deadline(gw):
    for provider in ("openai", "gemini"):
        fault(gw, provider, stall=True)
    started = time.monotonic()
    response = httpx.post(f"{gw.base_url}/chat/completions", timeout=60, headers=AUTH, json={
        "model": "auto", "messages": [{"role": "user", "content": "anyone?"}]})
    elapsed = time.monotonic() - started
    assert response.status_code == 504, response.text
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    # Each tier cut at its own deadline (1.5, 3 and 10 s targets x 2), in sequence: their sum bounds it.
    assert 3 + 6 + 20 - 0.5 < elapsed < 3 + 6 + 20 + 0.5 + 2.0, elapsed
    assert [r["body"]["model"] for r in upstream_requests(gw, "openai")] == ["gpt-4o-mini", "gpt-4o"]


def test_request_state_is_released_on_every_path(gw):
    status = httpx.get(gw.status_url).json()
    assert status["active_requests"] == 0
    assert all(m["inflight"] == 0 for m in status["models"].values()), json.dumps(status)[:2000]


# ---- retry-after, capable plans: a stack of their own (a provider's pause outlives a test) ----------

def paused_for(stack, provider: str):
    return httpx.get(stack.status_url).json()["providers"].get(provider, {}).get("paused_for_s")


@pytest.fixture(scope="module")
def rich(tmp_path_factory):
    """The shipped config plus azure-gpt-4o, an OpenAI-API model of the tertiary tier priced above
    claude-sonnet-4-6, so it comes after it in a plan."""
    with stack_with(tmp_path_factory, "rich", {
            "/health": NO_EJECTION,
            "/models/azure-gpt-4o": {"provider": "azure_openai", "upstream_model": "gpt-4o", "quality": 5,
                                     "price": {"input": 5.0, "output": 20.0}, "context_window": 128000},
            "/routing_rules/simple_queries/tiers/2/models/-": "azure-gpt-4o"}) as stack:
        yield stack


@pytest.fixture
def clean_rich(rich):
    reset_faults(rich)
    clear_requests(rich)
    yield rich
    for provider in rich.simulators:   # leave no pause behind for the next test
        wait_for(lambda: paused_for(rich, provider) is None, 30, f"{provider}'s pause to end")


def test_a_retry_to_a_paused_provider_is_refused_with_a_clean_openai_error(clean_rich):
    """Plan gpt-4o-mini (openai) -> gemini -> gpt-4o (openai): attempt 1 gets a 429 with retry-after, the
    secondary fails, and attempt 3 would go back to openai: the upstream stage refuses it instead.
    First of this stack's tests: with no latency history yet, the plan is in file order."""
    gw = clean_rich
    fault(gw, "openai", status=429, retry_after=4, count=1)
    fault(gw, "gemini", status=503, latency_ms=200)    # time for attempt 1's report to arrive
    response = httpx.post(f"{gw.base_url}/chat/completions", timeout=30, headers=AUTH, json={
        "model": "auto", "messages": [{"role": "user", "content": "What is the capital of Peru?"}]})
    assert response.status_code == 429 and 1 <= int(response.headers["retry-after"]) <= 4
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "rate_limit_error"
    assert not error["message"].startswith("{") and "retry after" in error["message"]
    assert response.headers["x-llm-attempts"] == "2"
    assert len(upstream_requests(gw, "openai")) == 1 and len(upstream_requests(gw, "gemini")) == 1


def test_a_pinned_429_is_answered_at_once_with_its_retry_after(clean_rich):
    gw = clean_rich
    fault(gw, "anthropic", status=429, retry_after=3)
    started = time.monotonic()
    response = httpx.post(f"{gw.base_url}/chat/completions", timeout=30, headers=AUTH, json={
        "model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}]})
    assert time.monotonic() - started < 2
    assert response.status_code == 429 and response.headers["retry-after"] == "3"
    error = response.json()["error"]
    # Anthropic's own words for it ("rate_limit_error") are not the code: the gateway's is, as for the next.
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert not error["message"].startswith("{")
    assert len(upstream_requests(gw, "anthropic")) == 1        # Envoy did not retry the same provider
    # The pause is learned: the next pinned request is answered by the gateway, the provider left alone.
    wait_for(lambda: paused_for(gw, "anthropic"), 5, "the pause to be learned")
    again = httpx.post(f"{gw.base_url}/chat/completions", timeout=30, headers=AUTH, json={
        "model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}]})
    assert again.status_code == 429 and 1 <= int(again.headers["retry-after"]) <= 3
    assert (again.json()["error"]["type"], again.json()["error"]["code"]) == (error["type"], error["code"])
    assert len(upstream_requests(gw, "anthropic")) == 1


def test_a_first_attempts_retry_after_keeps_its_provider_out_of_later_plans(clean_rich):
    """Attempt 1 goes out from the router stage unwatched: Envoy's upstream log is what reports its 429."""
    gw = clean_rich
    fault(gw, "openai", status=429, retry_after=4, count=1)
    first = ask(gw)
    assert first.headers["x-llm-provider"] == "gemini" and first.headers["x-llm-attempts"] == "2"
    wait_for(lambda: paused_for(gw, "openai"), 5, "openai's retry-after to be learned")
    for _ in range(3):
        later = ask(gw)
        assert later.headers["x-llm-provider"] != "openai" and later.headers["x-llm-attempts"] == "1"
    assert len(upstream_requests(gw, "openai")) == 1          # only the call that got the 429


def test_a_capable_fallback_answers_where_an_incapable_one_was_chosen_before(clean_rich):
    """Support surface (quality >= 4): gpt-4o, then claude-sonnet-4-6, then azure-gpt-4o. With temperature
    1.5 Anthropic's range (0..1) rules claude-sonnet-4-6 out, so the fallback is azure-gpt-4o."""
    gw = clean_rich
    explain = httpx.post(f"{gw.base_url}/chat/completions", timeout=30, headers={**AUTH, "x-llm-surface": "support"},
                         json={"model": "auto", "temperature": 1.5,
                               "messages": [{"role": "user", "content": "What is the capital of Peru?"}]})
    assert explain.status_code == 200 and explain.headers["x-llm-model"] == "gpt-4o"
    fault(gw, "openai", status=503, count=1)
    response = httpx.post(f"{gw.base_url}/chat/completions", timeout=30, headers={**AUTH, "x-llm-surface": "support"},
                          json={"model": "auto", "temperature": 1.5,
                                "messages": [{"role": "user", "content": "What is the capital of Peru?"}]})
    assert response.status_code == 200, response.text
    assert response.headers["x-llm-model"] == "azure-gpt-4o" and response.headers["x-llm-attempts"] == "2"
    assert upstream_requests(gw, "anthropic") == []
    (call,) = upstream_requests(gw, "azure_openai")
    assert call["body"]["temperature"] == 1.5


# ---- deadlines -------------------------------------------------------------------------------------

def test_a_stalled_primary_stream_is_answered_by_the_secondary_and_its_timeout_is_recorded(gw):
    """No headers from the primary: cut at its per-try deadline (1.5 s target x 2), then the secondary
    answers, and attempt 1 is recorded as a timeout (a cumulative counter: the status API's window
    forgets earlier tests' timeouts while this one runs)."""
    def timeouts():
        return metric(scrape(gw), "llm_gateway_attempts_total", provider="openai", outcome="timeout")
    before = timeouts()
    fault(gw, "openai", stall=True, count=1)
    started = time.monotonic()
    raw = ask(gw, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    elapsed = time.monotonic() - started
    assert raw.headers["x-llm-provider"] == "gemini" and raw.headers["x-llm-attempts"] == "2"
    assert text.endswith("You said: What is the capital of Peru?")
    assert 2.8 < elapsed < 3.0 + 3.0, elapsed     # the primary's deadline plus the secondary's (generous)
    wait_for(lambda: timeouts() == before + 1, 5, "attempt 1's timeout to be recorded")


@pytest.fixture(scope="module")
def short_deadline(tmp_path_factory):
    """Interactive work with a 2 s deadline: far below the old fixed 300 s, and below a long stream."""
    with stack_with(tmp_path_factory, "deadline",
                    {"/health": NO_EJECTION, "/workloads/interactive/deadline_ms": 2000}) as stack:
        yield stack


def test_a_healthy_stream_outlives_the_deadline_that_bounds_json_answers(short_deadline):
    gw = short_deadline
    reset_faults(gw)
    prompt = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen"
    fault(gw, "openai", chunk_interval_ms=250)      # ~20 events, one every 250 ms: about 5 s of tokens
    started = time.monotonic()
    events = []
    with httpx.stream("POST", f"{gw.base_url}/chat/completions", timeout=30, headers=AUTH, json={
            "model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": prompt}]}) as r:
        assert r.status_code == 200
        events = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert time.monotonic() - started > 3.0          # well past the 2 s deadline
    assert events[-1] == "data: [DONE]"               # and it ended on its own, whole
    # The same deadline bounds a JSON answer: a provider slower than it gets a 504 at the deadline.
    fault(gw, "openai", latency_ms=4000)
    started = time.monotonic()
    response = httpx.post(f"{gw.base_url}/chat/completions", timeout=30, headers=AUTH, json={
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]})
    elapsed = time.monotonic() - started
    assert response.status_code == 504 and 1.9 < elapsed < 3.5, (response.status_code, elapsed)
    error = response.json()["error"]
    assert error["code"] and set(error) == {"message", "type", "param", "code"}


# ---- hedging ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hedged(tmp_path_factory):
    """Interactive work hedged (one extra attempt): the primary tier's target is 1.5 s."""
    with stack_with(tmp_path_factory, "hedged",
                    {"/health": NO_EJECTION, "/workloads/interactive/hedge": True}) as stack:
        yield stack


@pytest.mark.parametrize("stream", [False, True])
def test_a_hedge_is_won_by_the_faster_tier_and_the_loser_is_cancelled_and_billed(hedged, stream):
    gw = hedged
    reset_faults(gw)
    clear_requests(gw)
    before = httpx.get(gw.status_url).json()["providers"].get("openai", {})
    won = metric(scrape(gw), "llm_gateway_hedges_total", outcome="won")
    wasted = metric(scrape(gw), "llm_gateway_hedge_wasted_cost_usd_total")
    fault(gw, "openai", latency_ms=6000, count=1)     # the primary answers, but far too late
    fault(gw, "gemini", latency_ms=300, count=1)
    started = time.monotonic()
    raw = ask(gw, stream=stream)
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    else:
        text = raw.parse().choices[0].message.content
    elapsed = time.monotonic() - started
    assert raw.headers["x-llm-provider"] == "gemini" and raw.headers["x-llm-attempts"] == "2"
    assert text.endswith("You said: What is the capital of Peru?")
    # The hedge started at the primary's 1.5 s target; the secondary took 0.3 s: well before 6 s.
    assert 1.4 < elapsed < 1.5 + 0.3 + 1.1, elapsed   # sequential fallback would take 3 s + 0.3 s
    (primary,) = upstream_requests(gw, "openai")
    assert primary["body"]["model"] == "gpt-4o-mini"
    (secondary,) = upstream_requests(gw, "gemini")
    assert "contents" in secondary["body"]               # translated for its own API, from the original body
    for record in (primary, secondary):   # nothing of the gateway's own reaches a provider (issue 16)
        assert not [h for h in record["headers"] if h.lower().startswith(("x-llm-", "x-envoy-"))], record["headers"]
    # The loser was cancelled (Envoy reset it once the hedge answered, long before its 6 s answer): it
    # leaves the in-flight count but is no failure of its provider; its prompt cost is hedge waste.
    wait_for(lambda: httpx.get(gw.status_url).json()["providers"]["openai"]["inflight"] == 0, 5,
             "the losing attempt's end")
    after = httpx.get(gw.status_url).json()["providers"]["openai"]
    assert (after["failures"], after["timeouts"]) == (before.get("failures", 0), before.get("timeouts", 0))
    assert time.monotonic() - started < 6
    assert metric(scrape(gw), "llm_gateway_hedges_total", outcome="won") == won + 1
    assert metric(scrape(gw), "llm_gateway_hedge_wasted_cost_usd_total") > wasted


def test_a_pool_endpoint_forwards_only_requests_translated_for_its_provider(hedged):
    """Should the pool ever pick the wrong endpoint, a request (and its key) still never reaches another provider."""
    gw = hedged
    clear_requests(gw, "gemini")
    local = yaml.safe_load((gw.workdir / "envoy.yaml").read_text())
    (port,) = [lst["address"]["socket_address"]["port_value"] for lst in local["static_resources"]["listeners"]
               if lst["name"] == "egress_gemini"]
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    wrong = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, timeout=10,
                       headers={"x-llm-for": "openai", "authorization": "Bearer sim-openai-key"})
    assert wrong.status_code == 502 and wrong.json()["error"]["code"] == "misrouted"
    assert upstream_requests(gw, "gemini") == []


def test_a_primary_stream_without_a_first_token_by_its_deadline_is_answered_by_the_secondary(gw):
    """The primary sends its headers and role frame at once, then no token for 8 s. The per-try timeout
    stops at headers, but the upstream stage holds them until the first token: the deadline (1.5 s target
    x 2) is a first-token deadline, and the secondary answers."""
    fault(gw, "openai", ttft_ms=8000, count=1)
    started = time.monotonic()
    raw = ask(gw, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    elapsed = time.monotonic() - started
    assert raw.headers["x-llm-provider"] == "gemini" and raw.headers["x-llm-attempts"] == "2"
    assert text.endswith("You said: What is the capital of Peru?")
    assert 2.8 < elapsed < 3.0 + 3.0, elapsed
    (primary,) = upstream_requests(gw, "openai")
    assert primary["body"]["stream"] is True


def attempt_outcomes(gw) -> dict[tuple[str, str], float]:
    """The attempt counter (one per upstream attempt, from its span), by (model, outcome)."""
    text = scrape(gw)
    out: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        if line.startswith("llm_gateway_attempts_total{"):
            labels = dict(part.split("=", 1) for part in line[line.index("{") + 1:line.index("}")].split(","))
            key = (labels["model"].strip('"'), labels["outcome"].strip('"'))
            out[key] = out.get(key, 0) + float(line.rsplit(" ", 1)[1])
    return out


@pytest.mark.parametrize("stream", [False, True])
def test_a_slower_secondary_answers_within_its_own_deadline_not_the_primarys(gw, stream):
    """Per-tier deadlines (issue 12): the primary (1.5 s target, cut at 3 s) misses its deadline; the
    secondary (3 s target, cut at 6 s) takes 4.5 s, longer than the primary's deadline but within its
    own, and answers. JSON: 4.5 s to the whole answer; stream: headers at once, first token at 4.5 s.
    With one per-try timeout for every attempt (the old way) the secondary was cut at 3 s too and the
    tertiary (gpt-4o) answered as attempt 3. Either secondary model may lead its tier (a slow answer
    demotes gemini for a while), so both are that slow."""
    slow = "ttft_ms" if stream else "latency_ms"
    fault(gw, "openai", **{slow: 8000}, count=1)
    for provider in ("gemini", "anthropic"):
        fault(gw, provider, **{slow: 4500}, count=1)
    before = attempt_outcomes(gw)
    started = time.monotonic()
    raw = ask(gw, stream=stream)
    text = ("".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices) if stream
            else raw.parse().choices[0].message.content)
    elapsed = time.monotonic() - started
    secondary = raw.headers["x-llm-model"]
    assert secondary in ("gemini-3.5-flash-lite", "claude-haiku-4-5") and raw.headers["x-llm-attempts"] == "2"
    assert text.endswith("You said: What is the capital of Peru?")
    assert 3.0 + 4.5 - 0.3 < elapsed < 3.0 + 4.5 + 3.0, elapsed   # the primary's deadline, then the secondary
    assert [r["body"]["model"] for r in upstream_requests(gw, "openai")] == ["gpt-4o-mini"]   # no attempt 3
    # The attempt records: the primary's attempt a timeout at its deadline, the secondary's ok.
    def delta(key):
        return attempt_outcomes(gw).get(key, 0) - before.get(key, 0)
    wait_for(lambda: delta(("gpt-4o-mini", "timeout")) == 1 and delta((secondary, "ok")) == 1, 5,
             "the attempts' outcomes")


def test_a_stream_whose_first_token_comes_in_time_flows_through_the_held_stage(gw):
    fault(gw, "openai", ttft_ms=800, chunk_interval_ms=20, count=1)
    raw = ask(gw, stream=True)
    chunks = [c for c in raw.parse() if c.choices]
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert raw.headers["x-llm-provider"] == "openai" and raw.headers["x-llm-attempts"] == "1"
    assert text.endswith("You said: What is the capital of Peru?") and len(chunks) > 5
