"""Fallback tiers through the real Envoy: failures cascade to the next tier's provider, translated afresh.

`auto` routes to the `simple` class of the shipped config, one attempt per tier: gpt-4o-mini (OpenAI
API), then gemini-2.0-flash (Gemini API), then gpt-4o (OpenAI API). This stack never ejects (its health rules are
off), so each test sees the plain cascade; ejection has its own stack in test_ejection.py.
"""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest
import yaml

from extproc.devstack import DEFAULT_ROUTING, Stack

from .conftest import AUTH, CLIENT_KEY, MODELS, upstream_requests


def stack_with(tmp_path_factory, name: str, health: dict) -> Stack:
    config = yaml.safe_load(DEFAULT_ROUTING.read_text())
    config["health"] = health
    path = tmp_path_factory.mktemp(name) / "routing.yaml"
    path.write_text(yaml.safe_dump(config))
    return Stack(routing=path, simulate=list(MODELS), demo_key=CLIENT_KEY).start()


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    stack = stack_with(tmp_path_factory, "fallback", {"consecutive_failures": 1000, "max_error_rate": 1.0})
    yield stack
    stack.stop()


@pytest.fixture(autouse=True)
def clean(gw):
    for name in gw.simulators:
        httpx.delete(f"{gw.sim_url(name)}/_sim/faults")
        httpx.delete(f"{gw.sim_url(name)}/_sim/requests")


def fault(gw, provider: str, **fields) -> None:
    assert httpx.put(f"{gw.sim_url(provider)}/_sim/faults", json=fields).status_code == 200


def ask(gw, stream: bool = False):
    client = openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=30)
    return client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "What is the capital of Peru?"}], stream=stream)


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
    assert raw.headers["x-llm-provider"] == "gemini" and raw.headers["x-llm-model"] == "gemini-2.0-flash"
    assert raw.headers["x-llm-attempts"] == "2"
    assert completion.choices[0].message.content.endswith("You said: What is the capital of Peru?")
    (primary,) = upstream_requests(gw, "openai")
    assert primary["body"]["model"] == "gpt-4o-mini" and "messages" in primary["body"]
    (secondary,) = upstream_requests(gw, "gemini")
    # The secondary got its own API shape and key, built from the original body, not the primary's translation.
    assert secondary["path"] == "/v1beta/models/gemini-2.0-flash:generateContent"
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
    # One attempt per tier: gpt-4o-mini (primary), gemini-2.0-flash (secondary), gpt-4o (tertiary).
    assert [r["body"]["model"] for r in upstream_requests(gw, "openai")] == ["gpt-4o-mini", "gpt-4o"]
    assert len(upstream_requests(gw, "gemini")) == 1


def test_all_tiers_stalled_is_a_504_at_the_deadline(gw):
    for provider in ("openai", "gemini"):
        fault(gw, provider, stall=True)
    started = time.monotonic()
    response = httpx.post(f"{gw.base_url}/chat/completions", timeout=30, headers=AUTH, json={
        "model": "auto", "messages": [{"role": "user", "content": "anyone?"}]})
    elapsed = time.monotonic() - started
    assert response.status_code == 504, response.text
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    assert elapsed < 3 * 3.0 + 1.5, elapsed             # three attempts of 3 s, plus slack


def test_request_state_is_released_on_every_path(gw):
    status = httpx.get(gw.status_url).json()
    assert status["active_requests"] == 0
    assert all(m["inflight"] == 0 for m in status["models"].values()), json.dumps(status)[:2000]
