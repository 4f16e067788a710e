"""Rate limits across two gateway replicas (each its own Envoy and extproc) sharing one Redis: a tenant's
requests per minute hold across both, refused with OpenAI's 429 and x-ratelimit-* headers."""

from __future__ import annotations

import httpx
import openai
import pytest

from extproc.devstack import Stack
from extproc.keys import digest

from .conftest import MODELS, routing_with

KEY = "sk-metered-tenant"
RPM = 4


@pytest.fixture(scope="module")
def gateways(tmp_path_factory, redis_url):
    path = routing_with(tmp_path_factory.mktemp("rate-limits"), {
        "/tenants/metered": {"api_keys_sha256": [digest(KEY)], "rate_limit": {"requests_per_minute": RPM}}})
    stacks = [Stack(routing=path, simulate=list(MODELS), env={"LLM_GATEWAY_LEDGER_URL": redis_url}).start()
              for _ in range(2)]
    yield stacks
    for stack in stacks:
        stack.stop()


def ask(stack: Stack) -> httpx.Response:
    return httpx.post(f"{stack.base_url}/chat/completions", timeout=30, headers={"authorization": f"Bearer {KEY}"},
                      json={"model": "auto", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})


def test_a_tenants_requests_per_minute_hold_across_two_replicas(gateways):
    a, b = gateways
    served_by_a = [ask(a) for _ in range(RPM)]
    assert [r.status_code for r in served_by_a] == [200] * RPM, served_by_a[-1].text
    assert {r.headers["x-ratelimit-limit-requests"] for r in served_by_a} == {str(RPM)}
    remaining = [int(r.headers["x-ratelimit-remaining-requests"]) for r in served_by_a]
    assert remaining == sorted(remaining, reverse=True) and remaining[-1] == 0
    assert all(r.headers["x-ratelimit-reset-requests"].endswith("s") for r in served_by_a)

    # Replica B learns A's count from Redis. Its bound (extproc/ratelimit.py): one chunk (here one
    # request) past the limit before its first sync.
    statuses = []
    for _ in range(RPM + 2):
        r = ask(b)
        statuses.append(r.status_code)
        if r.status_code == 429:
            break
    assert statuses[-1] == 429 and statuses.count(200) <= 1, statuses
    error = r.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert "tenant 'metered'" in error["message"] and set(error) == {"message", "type", "param", "code"}
    assert int(r.headers["retry-after"]) >= 1
    assert (r.headers["x-ratelimit-limit-requests"], r.headers["x-ratelimit-remaining-requests"]) == (str(RPM), "0")

    # And A refuses too; the official SDK sees its RateLimitError.
    client = openai.OpenAI(base_url=a.base_url, api_key=KEY, max_retries=0, timeout=20)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}])
    assert info.value.body["code"] == "rate_limit_exceeded"
    # Other tenants are not limited by it.
    assert httpx.post(f"{b.base_url}/chat/completions", timeout=30, headers=b.auth, json={
        "model": "auto", "messages": [{"role": "user", "content": "hi"}]}).status_code == 200
