"""Accounting and secrets at the edges, end to end: a key in the query string never reaches the stack log
or the spans (L1), an attempt cut by its tier's deadline is billed its prompt (M3), count_tokens (in a window
of its own) and invalid requests count against the tenant's request rate (M2), the simulators stop at max_tokens (L3)."""

from __future__ import annotations

import json
import re

import anthropic
import httpx
import openai
import pytest


from .conftest import AUTH, CLIENT_KEY, NO_EJECTION, fault, ledger_rows, reset_faults, scrape, stack_with, wait_for
from .otlp_receiver import attributes

SIMPLE = [{"role": "user", "content": "What is the capital of France?"}]
QUERY_SECRET = "sk-sent-in-the-query-string-0123456789"


def _log(stack) -> str:
    return (stack.workdir / "stack.log").read_text(errors="replace")


def test_a_key_in_the_query_string_reaches_no_log_and_no_span(gateway, otlp):
    """L1: Envoy's access log and its span's http.url recorded the path with its query, so a client that
    put its key in the URL (Gemini's ``?key=`` style) left it in the stack log, for refused requests
    (routed ones log the rewritten path)."""
    root = f"http://127.0.0.1:{gateway.listen_port}"
    chat = {"model": "gpt-4o-mini", "messages": SIMPLE}
    sent = [
        # the key only in the query: refused (401) before any routing
        ("/v1/chat/completions", {}, chat, 401),
        # a known caller, an unknown URL: refused (404)
        ("/v1/nope", AUTH, chat, 404),
        # routed ones too (Claude Code's ?beta=true beside it)
        ("/v1/chat/completions", AUTH, chat, 200),
        ("/v1/messages", AUTH, {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": SIMPLE}, 200),
    ]
    ids = []
    for path, headers, body, status in sent:
        r = httpx.post(f"{root}{path}?beta=true&key={QUERY_SECRET}", headers=headers, json=body, timeout=20)
        assert r.status_code == status, (path, r.text)
        assert QUERY_SECRET not in r.text
        ids.append((path, r.headers["x-request-id"]))
    # Envoy writes each access log line when its request ends; wait for all four.
    lines = wait_for(lambda: [line for line in _log(gateway).splitlines() if any(f"id={i}" in line for _p, i in ids)]
                     if all(f"id={i}" in _log(gateway) for _p, i in ids) else None, what="the access log lines")
    assert len(lines) == len(ids)
    assert QUERY_SECRET not in _log(gateway)
    assert all("?" not in line.split('"')[1] for line in lines), lines   # the path is logged, its query is not
    assert any('"POST /v1/chat/completions" 401' in line for line in lines), lines
    # Envoy's ingress spans still say which path was asked, without the query.
    urls = otlp.wait_for(lambda spans: [attributes(s).get("http.url") for svc, s in spans
                                        if svc == "llm-gateway-envoy"
                                        and attributes(s).get("guid:x-request-id") in {i for _p, i in ids}]
                         if len([1 for svc, s in spans if svc == "llm-gateway-envoy"
                                 and attributes(s).get("guid:x-request-id") in {i for _p, i in ids}]) >= len(ids)
                         else None)
    assert "/v1/chat/completions" in urls and "/v1/nope" in urls, urls
    assert QUERY_SECRET.encode() not in otlp.raw()


# ---- M3: an attempt cut by its tier's deadline bills its prompt ----------------------------------------

BUDGET = 100.0   # USD a day for the demo tenant: big enough never to refuse, read back from the metrics
RPM = 6          # nightly's requests per minute in this module's stack (M2)


@pytest.fixture(scope="module")
def tiers(tmp_path_factory):
    """The shipped tiers (primary 1.5 s target, cut at 3 s), no ejection, a daily budget to charge, and
    nightly limited to a few requests a minute."""
    with stack_with(tmp_path_factory, "edges", {
            "/health": NO_EJECTION, "/budgets": {"timezone": "UTC", "tenants": {"demo": {"daily": BUDGET}}},
            "/tenants/nightly/rate_limit": {"requests_per_minute": RPM}}) as stack:
        yield stack


def _spent(stack) -> float:
    left = re.search(r'llm_gateway_budget_remaining_usd\{name="demo:daily",scope="tenant"\} (\S+)', scrape(stack))
    return BUDGET - float(left.group(1))


@pytest.mark.parametrize("stream", [False, True])
def test_an_attempt_cut_at_its_tiers_deadline_is_billed_its_prompt(tiers, stream):
    """M3: gpt-4o-mini (attempt 1) holds the answer (JSON) or the first token (stream) past its tier's
    deadline (3 s); the gateway cuts it and the next attempt answers. The provider had the whole prompt:
    attempt 1 gets its own record (``<id>/1``, its model, outcome timeout, 504), billed its prompt, and
    the budget is charged both. Before, only the answering attempt was billed: the cut one was free."""
    reset_faults(tiers)
    fault(tiers, "openai", **{"ttft_ms" if stream else "latency_ms": 4500}, count=1)
    before = _spent(tiers)
    client = openai.OpenAI(base_url=tiers.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=30)
    raw = client.chat.completions.with_raw_response.create(
        model="auto", stream=stream, messages=[{"role": "user", "content": "What is the capital of Peru?"}])
    if stream:
        assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    else:
        assert raw.parse().choices[0].message.content
    assert raw.headers["x-llm-attempts"] == "2" and raw.headers["x-llm-model"] != "gpt-4o-mini", raw.headers
    request_id = raw.headers["x-request-id"]
    rows = ledger_rows(tiers, request_id, 2)
    cut, own = rows[f"{request_id}/1"], rows[request_id]
    assert (cut.model, cut.provider, cut.outcome, cut.status) == ("gpt-4o-mini", "openai", "timeout", 504), cut
    assert cut.input_tokens > 0 and cut.output_tokens == 0 and cut.cost_usd > 0, cut
    assert (own.model, own.outcome) == (raw.headers["x-llm-model"], "ok"), own
    assert len(rows) == 2, rows   # recorded once
    # Both bills reach the tenant's budget (the counters settle off the answer's path).
    wait_for(lambda: abs(_spent(tiers) - before - (cut.cost_usd + own.cost_usd)) < 1e-9, 10,
             "the budget charged both attempts")


def test_an_attempt_the_provider_refused_is_not_billed(tiers):
    """The other half of the rule: attempt 1 refused with a 503 (providers bill no error) gets no record."""
    reset_faults(tiers)
    fault(tiers, "openai", status=503, count=1)
    client = openai.OpenAI(base_url=tiers.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=30)
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "What is the capital of Peru?"}])
    assert raw.headers["x-llm-attempts"] == "2", raw.headers
    request_id = raw.headers["x-request-id"]
    rows = ledger_rows(tiers, request_id, 1)
    assert set(rows) == {request_id} and rows[request_id].outcome == "ok", rows


# ---- M2: count_tokens and invalid requests count against the request rate ---------------------------

def test_count_tokens_and_invalid_requests_count_against_the_tenants_request_rate(tiers):
    """M2: 125 count_tokens calls went through a 120 RPM limit (no headers, no 429) and bad-JSON 400s did not
    count, so a tenant could make the gateway parse and tokenize 4 MB bodies without bound. Every request to
    a model endpoint now counts one request (not tokens) before its body is read, as OpenAI counts
    unsuccessful requests too; count_tokens' body is bounded like every endpoint's (413).

    count_tokens counts in a window of its own under the same requests_per_minute: Anthropic limits token
    counting and message creation separately ("usage of one does not count against the limits of the
    other"). Counting in the message window halved an agent's message rate when it counted each turn;
    now a spent count_tokens window leaves /v1/messages served, and each window is still bounded."""
    root = f"http://127.0.0.1:{tiers.listen_port}"
    nightly = {"authorization": "Bearer sk-nightly-demo", "content-type": "application/json"}
    count = {"model": "claude-haiku-4-5", "messages": SIMPLE}
    remaining = []
    for _ in range(2):   # invalid JSON: 400, counted in the message window
        r = httpx.post(f"{root}/v1/chat/completions", headers=nightly, content=b"{not json", timeout=20)
        assert r.status_code == 400, r.text
        remaining.append(int(r.headers["x-ratelimit-remaining-requests"]))
    assert remaining == [RPM - 1, RPM - 2], remaining
    counted = []
    for _ in range(RPM):   # count_tokens: 200, counted in its own window (requests only: no token headers)
        r = httpx.post(f"{root}/v1/messages/count_tokens", headers=nightly, json=count, timeout=20)
        assert r.status_code == 200 and r.json()["input_tokens"] > 0, r.text
        assert r.headers["x-ratelimit-limit-requests"] == str(RPM) and "x-ratelimit-limit-tokens" not in r.headers
        counted.append(int(r.headers["x-ratelimit-remaining-requests"]))
    assert counted == list(range(RPM - 1, -1, -1)), counted
    # The count window is spent: count_tokens gets Anthropic's 429 on its door, before any parsing.
    r = httpx.post(f"{root}/v1/messages/count_tokens", headers=nightly, json=count, timeout=20)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1, r.text
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "rate_limit_error", r.text
    assert "for count_tokens" in r.json()["error"]["message"], r.text
    # ... and messages are still served, from a message window the counts did not touch.
    claude = anthropic.Anthropic(base_url=f"{root}", api_key="sk-nightly-demo", max_retries=0, timeout=20)
    raw = claude.messages.with_raw_response.create(model="auto", max_tokens=16, messages=SIMPLE)
    assert raw.parse().content[0].text, raw.http_response.text
    assert raw.headers["x-ratelimit-remaining-requests"] == str(RPM - 3), raw.headers
    # The message window is bounded too: spend it, then chat gets OpenAI's 429.
    for left in range(RPM - 4, -1, -1):
        r = httpx.post(f"{root}/v1/chat/completions", headers=nightly, content=b"{not json", timeout=20)
        assert r.status_code == 400 and r.headers["x-ratelimit-remaining-requests"] == str(left), r.text
    r = httpx.post(f"{root}/v1/chat/completions", headers=nightly, content=b"{not json", timeout=20)
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded", r.text
    # Another tenant is not held back by nightly's count.
    r = httpx.post(f"{root}/v1/messages/count_tokens", headers=AUTH, json=count, timeout=20)
    assert r.status_code == 200, r.text
    # A body past limits.max_body_bytes (4 MiB) is refused like on every endpoint, whole or chunked.
    big = json.dumps({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "a" * (5 << 20)}]})
    r = httpx.post(f"{root}/v1/messages/count_tokens", headers={**AUTH, "content-type": "application/json"}, content=big,
                   timeout=30)
    assert r.status_code == 413, r.text
    r = httpx.post(f"{root}/v1/messages/count_tokens", headers={**AUTH, "content-type": "application/json"},
                   content=iter([big.encode()]), timeout=30)
    assert r.status_code == 413, r.text


# ---- L3: answers stop at max_tokens ------------------------------------------------------------------

@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-haiku-4-5", "gemini-3.5-flash-lite"])
def test_an_answer_stops_at_max_tokens_on_every_door(gateway, model):
    """L3: the simulators reported 9 to 11 output tokens for max_tokens 5, and a Responses answer over
    max_output_tokens said ``completed``: tests of budgets and estimates ran on usage no real API reports.
    Every door now gets at most the cap, ended as its API ends a capped answer."""
    client = openai.OpenAI(base_url=gateway.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=20)
    long = [{"role": "user", "content": "Tell me everything about the history of Peru, please."}]
    chat = client.chat.completions.create(model=model, max_tokens=5, messages=long)
    assert chat.choices[0].finish_reason == "length" and 0 < chat.usage.completion_tokens <= 5, chat.usage
    response = client.responses.create(model=model, max_output_tokens=16, input=long[0]["content"] * 3)
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    assert 0 < response.usage.output_tokens <= 16, response.usage
    messages = httpx.post(f"http://127.0.0.1:{gateway.listen_port}/v1/messages", headers=AUTH, timeout=20,
                          json={"model": model, "max_tokens": 5, "messages": long}).json()
    assert messages["stop_reason"] == "max_tokens" and 0 < messages["usage"]["output_tokens"] <= 5, messages


# ---- L9: "(after decompression)" only for a compressed body ------------------------------------------

def test_a_413_says_after_decompression_only_for_a_compressed_body(gateway):
    """L9: an uncompressed 10 MB body's 413 (Envoy's own: the body as sent is over the listener's buffer
    limit) said "(after decompression)". Only a compressed body is measured after decompression (by the
    processor, which inflates it): its 413 says so; every other 413 does not."""
    import gzip
    root = f"http://127.0.0.1:{gateway.listen_port}"
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a" * (10 << 20)}]}).encode()
    plain = {**AUTH, "content-type": "application/json"}
    for path in ("/v1/chat/completions", "/v1/responses", "/v1/messages", "/v1/embeddings"):
        for content in (body, iter([body[i:i + (1 << 20)] for i in range(0, len(body), 1 << 20)])):   # whole, chunked
            r = httpx.post(root + path, headers=plain, content=content, timeout=30)
            assert r.status_code == 413, (path, r.text)
            assert "larger than the gateway's limit of 4194304 bytes" in r.text and "decompression" not in r.text, \
                (path, r.text)
    r = httpx.post(root + "/v1/chat/completions", headers={**plain, "content-encoding": "gzip"},
                   content=gzip.compress(body), timeout=30)
    assert r.status_code == 413 and "4194304 bytes (after decompression)" in r.json()["error"]["message"], r.text
