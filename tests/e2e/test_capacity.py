"""Queue depth limits: at max_inflight, interactive requests take the next candidate; background
requests wait in a bounded queue, with a timeout, instead of piling onto a saturated model."""

from __future__ import annotations

import copy
import threading
import time

import httpx
import pytest

from extproc import envoy_config

from .conftest import AUTH, NO_EJECTION, fault, reset_faults, stack_with


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    with stack_with(tmp_path_factory, "capacity", {
            "/models/llama-3.1-8b-instruct/max_inflight": 1,
            "/routing_rules/local_only": {"tiers": [{"name": "primary", "models": ["llama-3.1-8b-instruct"]}]},
            "/workloads/batch": {"prefer": "cost", "queue": {"timeout_ms": 1500, "size": 1}}}) as stack:
        yield stack


def ask(gw, model: str, workload: str, results: list, started: float) -> None:
    response = httpx.post(f"{gw.base_url}/chat/completions", timeout=30, headers={"x-llm-workload": workload, **AUTH},
                          json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
    results.append((time.monotonic() - started, response))


def concurrently(gw, *calls) -> list:
    """Start (model, workload) requests 0.25 s apart, so each sees the previous one in flight."""
    results: list = []
    started = time.monotonic()
    threads = []
    for model, workload in calls:
        threads.append(threading.Thread(target=ask, args=(gw, model, workload, results, started)))
        threads[-1].start()
        time.sleep(0.25)
    for t in threads:
        t.join()
    return sorted(results, key=lambda r: r[0])


def test_background_work_waits_in_a_bounded_queue(gw):
    fault(gw, "vllm", latency_ms=800)
    results = concurrently(gw, ("local_only", "batch"), ("local_only", "batch"), ("local_only", "batch"))
    statuses = sorted(r.status_code for _, r in results)
    assert statuses == [200, 200, 503], [(t, r.status_code, r.text[:120]) for t, r in results]
    full = next(r for _, r in results if r.status_code == 503)
    assert full.json()["error"]["code"] == "queue_full"
    waited = [t for t, r in results if r.status_code == 200]
    assert waited[-1] > 1.4        # the queued one started only when the first finished (0.8 s each)
    reset_faults(gw, "vllm")


def test_the_queue_times_out(gw):
    fault(gw, "vllm", latency_ms=2500)
    results = concurrently(gw, ("local_only", "batch"), ("local_only", "batch"))
    by_status = {r.status_code: (t, r) for t, r in results}
    assert set(by_status) == {200, 503}
    elapsed, timed_out = by_status[503]
    assert timed_out.json()["error"]["code"] == "queue_timeout"
    assert 1.5 < elapsed < 2.5                       # 0.25 s start offset + 1.5 s queue timeout
    reset_faults(gw, "vllm")


def test_a_saturated_model_is_skipped_for_the_next_candidate_without_waiting(gw):
    fault(gw, "vllm", latency_ms=800)
    results = concurrently(gw, ("llama-3.1-8b-instruct", "batch"), ("auto", "batch"))
    pinned = next(r for _, r in results if r.request.content.find(b'"llama-3.1-8b-instruct"') >= 0)
    routed_elapsed, routed = next((t, r) for t, r in results if r is not pinned)
    assert pinned.headers["x-llm-model"] == "llama-3.1-8b-instruct"
    # The cheapest model for batch work is llama, but it is full: the next cheapest answers at once.
    assert routed.status_code == 200 and routed.headers["x-llm-model"] != "llama-3.1-8b-instruct"
    assert routed_elapsed < 0.8
    reset_faults(gw, "vllm")


# ---- a provider cluster's circuit breaker ------------------------------------------------------------

@pytest.fixture(scope="module")
def narrow(tmp_path_factory):
    """The shipped Envoy config with the routed ``openai`` cluster's circuit breaker cut to one request
    in flight and one pending (the shipped clusters share one thresholds map: replaced, not edited)."""
    original = envoy_config.load

    def load(path=envoy_config.DEFAULT_PATH):
        config = original(path)
        cluster = next(c for c in config["static_resources"]["clusters"] if c["name"] == "openai")
        breakers = copy.deepcopy(cluster["circuit_breakers"])
        breakers["thresholds"][0].update(max_requests=1, max_pending_requests=1)
        cluster["circuit_breakers"] = breakers
        return config
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(envoy_config, "load", load)
        stack = stack_with(tmp_path_factory, "narrow-breaker", {"/health": NO_EJECTION}).start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.mark.parametrize("door", ["chat", "messages"])
def test_a_provider_clusters_overflow_is_503_over_capacity_with_retry_after(narrow, door):
    """Envoy's own overflow (``upstream_reset_before_response_started{overflow}``: the routed cluster's
    breaker) is the gateway's capacity, not a provider's cut: 503 and retry-after, never 502."""
    fault(narrow, "openai", latency_ms=1500)
    path, body = {"chat": ("/chat/completions", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
                  "messages": ("/messages", {"model": "gpt-4o-mini", "max_tokens": 16,
                                             "messages": [{"role": "user", "content": "hi"}]})}[door]
    results: list[httpx.Response] = []

    def one():
        results.append(httpx.post(f"{narrow.base_url}{path}", timeout=30, headers=AUTH, json=body))
    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    reset_faults(narrow)
    statuses = sorted(r.status_code for r in results)
    assert 200 in statuses and 503 in statuses and set(statuses) <= {200, 503}, statuses   # never 502
    for r in results:
        if r.status_code != 503:
            continue
        assert r.headers["retry-after"] == "1", r.headers
        error = r.json()
        if door == "messages":
            assert error["type"] == "error" and error["error"]["type"] == "overloaded_error", error
        else:
            assert error["error"]["code"] == "service_unavailable" and "over capacity" in error["error"]["message"]
            assert "overflow" in error["error"]["message"]    # Envoy's detail names the breaker
