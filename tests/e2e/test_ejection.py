"""The health tracker steers live traffic: ejection after failures, half-open probes, latency demotion.

Its own gateway with quick health rules: 3 consecutive failures eject for 2 s, 2 probes bring a
model back. `auto` goes to gpt-4o-mini (OpenAI) first and gemini-3.5-flash-lite (Gemini) second; when
gpt-4o-mini is out, the primary tier's next model, azure-gpt-4o-mini, leads instead.
"""

from __future__ import annotations

import time

import httpx
import pytest

from .conftest import CLIENT_KEY, fault, reset_faults, stack_with

HEALTH = {"consecutive_failures": 3, "min_requests": 1000, "base_ejection_s": 2, "max_ejection_s": 10,
          "probe_requests": 2, "window_s": 8}


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    with stack_with(tmp_path_factory, "ejection", {"/health": HEALTH}) as stack:
        yield stack


def ask(gw, **headers) -> httpx.Response:
    response = httpx.post(f"{gw.base_url}/chat/completions", timeout=30,
                          headers={"authorization": f"Bearer {CLIENT_KEY}", **headers},
                          json={"model": "auto", "messages": [{"role": "user", "content": "Is it raining?"}]})
    assert response.status_code == 200, response.text
    return response


def model_status(gw, model: str) -> dict:
    return httpx.get(gw.status_url).json()["models"].get(model, {})


def status_when(gw, model: str, condition, timeout: float = 10.0) -> dict:
    """The model's status once ``condition(status)`` holds (or at the deadline): attempts reach the
    health tracker through Envoy's upstream log, which can land just after the client's answer."""
    deadline = time.monotonic() + timeout
    while not condition(status := model_status(gw, model)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return status


def test_sustained_failures_eject_then_a_probe_brings_the_model_back(gw):
    assert ask(gw).headers["x-llm-provider"] == "openai"
    fault(gw, "openai", status=500)
    for _ in range(3):   # each is answered by the secondary after the primary's failure
        r = ask(gw)
        assert (r.headers["x-llm-provider"], r.headers["x-llm-attempts"]) == ("gemini", "2")
    status = status_when(gw, "gpt-4o-mini", lambda s: s.get("ejected"))
    assert status["ejected"] and status["last_ejection_reason"] == "3 consecutive failures"
    # Ejected: later requests skip it before any attempt is wasted: the primary tier's next model, first try.
    before = len(httpx.get(f"{gw.sim_url('openai')}/_sim/requests").json())
    r = ask(gw)
    assert (r.headers["x-llm-provider"], r.headers["x-llm-attempts"]) == ("azure_openai", "1")
    assert len(httpx.get(f"{gw.sim_url('openai')}/_sim/requests").json()) == before

    reset_faults(gw, "openai")   # the primary recovers
    time.sleep(2.2)                # the ejection time passes: half-open
    assert model_status(gw, "gpt-4o-mini")["half_open"]
    for _ in range(2):             # the probes succeed...
        assert ask(gw).headers["x-llm-provider"] == "openai"
    status = model_status(gw, "gpt-4o-mini")
    assert not status["ejected"] and not status["half_open"]   # ...and traffic is back in full
    assert ask(gw).headers["x-llm-provider"] == "openai"


def test_a_primary_slower_than_its_target_is_demoted_for_interactive_traffic(gw):
    # 1.7 s: above the primary tier's 1.5 s target, below the 3 s cut, so the attempts succeed slowly.
    fault(gw, "openai", latency_ms=1700)
    started = time.monotonic()
    assert ask(gw).headers["x-llm-provider"] == "openai"      # slow, but it answers
    assert time.monotonic() - started > 1.7
    slow = status_when(gw, "gpt-4o-mini", lambda s: ((s.get("latency_ms") or {}).get("p95") or 0) > 1500)
    assert slow["latency_ms"]["p95"] > 1500
    r = ask(gw)
    assert (r.headers["x-llm-model"], r.headers["x-llm-attempts"]) == ("azure-gpt-4o-mini", "1")
    assert "azure-gpt-4o-mini (primary)" in r.headers["x-llm-route"]
    # Batch work does not trade cost for latency: a slow model stays where its price puts it.
    batch = ask(gw, **{"x-llm-workload": "batch"})
    assert batch.headers["x-llm-workload"] == "batch"
    reset_faults(gw, "openai")
