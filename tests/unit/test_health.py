"""Health tracker: windows, percentiles, ejection rules, growing ejection time, half-open probing, in-flight."""

from __future__ import annotations

import json

import pytest
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from extproc.health import HealthSettings, HealthTracker
from extproc.telemetry import OUTCOME_FROM_LOG, Tracing, provider_fault


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def tracker(clock, **settings) -> HealthTracker:
    return HealthTracker(HealthSettings(**settings), clock=clock, max_inflight={"m": 2})


def test_unknown_models_are_healthy(clock):
    h = tracker(clock).model_health("never-seen")
    assert not h.ejected and not h.saturated and h.p95_ms is None


def test_percentiles_over_the_window(clock):
    t = tracker(clock, window_s=10)
    for ms in range(1, 101):
        t.record("m", "p", ok=True, latency_ms=float(ms))
    summary = t.snapshot()["models"]["m"]
    assert summary["latency_ms"] == {"p50": 50.0, "p95": 95.0, "p99": 99.0}
    assert t.model_health("m").p95_ms == 95.0
    clock.now += 11
    assert t.snapshot()["models"]["m"]["requests"] == 0  # slid out of the window


def test_consecutive_failures_eject(clock):
    t = tracker(clock, consecutive_failures=3, min_requests=1000)
    for _ in range(2):
        t.record("m", "p", ok=False, latency_ms=1, kind="500")
    assert not t.model_health("m").ejected
    t.record("m", "p", ok=False, latency_ms=1, kind="reset")
    assert t.model_health("m").ejected
    assert t.snapshot()["models"]["m"]["last_ejection_reason"] == "3 consecutive failures"
    assert t.snapshot()["providers"]["p"]["ejected"]


def test_error_rate_ejects_only_over_the_minimum_volume(clock):
    t = tracker(clock, consecutive_failures=100, min_requests=20, max_error_rate=0.02)
    t.record("m", "p", ok=False, latency_ms=1, kind="429")
    for _ in range(10):
        t.record("m", "p", ok=True, latency_ms=1)
    assert not t.model_health("m").ejected      # 1 of 11: too few requests to judge
    for _ in range(8):
        t.record("m", "p", ok=True, latency_ms=1)
    t.record("m", "p", ok=False, latency_ms=1, kind="500")  # 2 of 20 = 10% > 2%
    assert t.model_health("m").ejected
    assert "error rate" in t.snapshot()["models"]["m"]["last_ejection_reason"]


def test_ejection_time_grows_and_is_capped(clock):
    t = tracker(clock, consecutive_failures=1, base_ejection_s=10, max_ejection_s=25, probe_requests=1)
    durations = []
    for _ in range(4):
        t.record("m", "p", ok=False, latency_ms=1, kind="500")
        durations.append(t.snapshot()["models"]["m"]["ejected_for_s"])
        clock.now += 100  # past the ejection: half-open; the next failure (a failed probe) re-ejects
    assert durations == [10, 20, 25, 25]


def test_half_open_probes_then_full_return(clock):
    t = tracker(clock, consecutive_failures=1, base_ejection_s=5, probe_requests=2)
    t.record("m", "p", ok=False, latency_ms=1, kind="timeout")
    assert t.model_health("m").ejected
    clock.now += 6
    assert not t.model_health("m").ejected and t.snapshot()["models"]["m"]["half_open"]
    t.record("m", "p", ok=True, latency_ms=1)
    assert t.snapshot()["models"]["m"]["half_open"]
    t.record("m", "p", ok=True, latency_ms=1)
    summary = t.snapshot()["models"]["m"]
    assert not summary["half_open"] and not summary["ejected"]


def test_a_failed_probe_ejects_again(clock):
    t = tracker(clock, consecutive_failures=1, base_ejection_s=5, probe_requests=3)
    t.record("m", "p", ok=False, latency_ms=1, kind="500")
    clock.now += 6
    t.record("m", "p", ok=False, latency_ms=1, kind="500")
    assert t.model_health("m").ejected and t.snapshot()["models"]["m"]["ejections"] == 2


def test_spans_feed_the_tracker_and_count_in_flight(clock):
    t = tracker(clock, consecutive_failures=2)
    tracing = Tracing(_provider_with(t))
    one = tracing.start_request({}, "chat", "m", "pinned", ["m"])
    two = tracing.start_request({}, "chat", "m", "pinned", ["m"])
    tracing.start_attempt(one, 1, "chat", api="anthropic", provider="p", model="m", upstream_model="m-1",
                          observed=False)
    tracing.start_attempt(two, 1, "chat", api="anthropic", provider="p", model="m", upstream_model="m-1",
                          observed=False)
    assert t.model_health("m").inflight == 2 and t.model_health("m").saturated     # max_inflight 2
    # Envoy retried request one: its attempt 2 starts, so attempt 1 failed (unwatched: status unknown).
    tracing.start_attempt(one, 2, "chat", api="anthropic", provider="p", model="m", upstream_model="m-1")
    tracing.attempt_status(one, 2, 200)
    tracing.answered(one, 2, 200)
    tracing.first_byte(one)
    tracing.finish(one, status=200, response_model="m-1", input_tokens=5, output_tokens=7)
    tracing.answered(two, 1, 200)
    tracing.finish(two, status=200, response_model="m-1", input_tokens=5, output_tokens=7)
    tracing.end_unreported(one)   # no upstream log came for attempt 1: the server's fallback ends its span
    summary = t.snapshot()["models"]["m"]
    # Request one's attempt 1 ended unwatched: its span leaves the in-flight count, and its outcome
    # is Envoy's upstream log's to report (with the real status), so it is not guessed here.
    assert summary["requests"] == 2 and summary["failures"] == 0 and summary["inflight"] == 0
    assert summary["ttft_ms"]["p50"] is not None
    t.record("m", "p", ok=False, latency_ms=3, kind="429", retry_after_s=2)   # the log's report
    summary = t.snapshot()["models"]["m"]
    assert summary["requests"] == 3 and summary["rate_limited"] == 1 and summary["inflight"] == 0


def test_an_unwatched_attempt_is_left_to_envoys_upstream_log(clock):
    """Attempt 1 runs without the upstream stage: its span ends with a guessed kind (a timeout if it
    lasted the per-try timeout) but does not count; Envoy's upstream log reports the real outcome."""
    t = tracker(clock, consecutive_failures=10)
    tracing, exporter = _tracing_keeping_spans(t)
    trail = tracing.start_request({}, "chat", "m", "pinned", ["m"])
    tracing.start_attempt(trail, 1, "chat", api="openai", provider="p", model="m", upstream_model="m",
                          observed=False)
    tracing.start_attempt(trail, 2, "chat", api="openai", provider="p", model="m", upstream_model="m",
                          per_try_timeout_ms=0)
    tracing.start_attempt(trail, 3, "chat", api="openai", provider="p", model="m", upstream_model="m",
                          per_try_timeout_ms=60_000)
    tracing.finish(trail, status=503, response_model=None, input_tokens=None, output_tokens=None)
    first = next(s for s in exporter if s.attributes.get("llm.attempt") == 1)
    assert first.attributes["error.type"] == "timeout" and first.attributes[OUTCOME_FROM_LOG] is True
    summary = t.snapshot()["models"]["m"]
    assert summary["failures"] == 2 and summary["inflight"] == 0


def test_a_closed_attempt_without_status_is_a_reset_or_timeout(clock):
    t = tracker(clock, consecutive_failures=10)
    tracing = Tracing(_provider_with(t))
    trail = tracing.start_request({}, "chat", "m", "pinned", ["m"])
    tracing.start_attempt(trail, 1, "chat", api="openai", provider="p", model="m", upstream_model="m")
    tracing.attempt_closed(trail, 1, per_try_timeout_ms=0)
    tracing.start_attempt(trail, 2, "chat", api="openai", provider="p", model="m", upstream_model="m")
    tracing.attempt_closed(trail, 2, per_try_timeout_ms=60_000)
    summary = t.snapshot()["models"]["m"]
    assert summary["timeouts"] == 1 and summary["resets"] == 1


def test_a_context_overflow_400_retried_on_the_next_tier_is_no_failure_of_its_provider(clock):
    """Envoy retries a provider's context-length 400 on a larger window (envoy.yaml llm_context_overflow):
    the upstream stage saw that attempt's 400, then the next attempt started. A 4xx other than 429 is
    the request's fault, as Envoy's upstream log already says: five such requests leave the model in."""
    t = HealthTracker(HealthSettings(consecutive_failures=5, min_requests=5), clock=clock)
    tracing, exporter = _tracing_keeping_spans(t)
    for _ in range(5):
        trail = tracing.start_request({}, "chat", "auto", "auto", ["small", "mid", "large"])
        tracing.start_attempt(trail, 1, "chat", api="openai", provider="p", model="small", upstream_model="s",
                              observed=False)
        tracing.start_attempt(trail, 2, "chat", api="openai", provider="q", model="mid", upstream_model="m")
        tracing.attempt_status(trail, 2, 400)     # the upstream stage saw the window's 400
        tracing.attempt_closed(trail, 2, per_try_timeout_ms=60_000)
        tracing.start_attempt(trail, 3, "chat", api="openai", provider="r", model="large", upstream_model="l")
        tracing.answered(trail, 3, 200)
        tracing.finish(trail, status=200, response_model="l", input_tokens=5, output_tokens=7)
    mid = t.model_health("mid")
    assert not mid.ejected and mid.error_rate == 0.0
    assert t.snapshot()["models"]["mid"]["failures"] == 0
    spans = [s for s in exporter if s.attributes.get("llm.attempt") == 2]
    assert len(spans) == 5 and all("error.type" not in s.attributes for s in spans)
    assert all(s.attributes["http.response.status_code"] == 400 for s in spans)


@pytest.mark.parametrize("status,fault", [(400, False), (404, False), (413, False), (422, False), (429, True),
                                          (200, False), (500, True), (503, True), (529, True)])
def test_one_rule_says_which_answers_are_the_providers_failure(status, fault):
    assert provider_fault(status) is fault


@pytest.mark.parametrize("mapping,error", [
    ({"window": 3}, "window: unknown key"),
    ({"min_requests": 2.5}, "min_requests: must be an integer"),
    ({"max_error_rate": 2}, "max_error_rate: must be between 0 and 1"),
    ({"base_ejection_s": 0}, "base_ejection_s: must be positive"),
    ({"base_ejection_s": 60, "max_ejection_s": 30}, "max_ejection_s: must be >= base_ejection_s"),
])
def test_settings_errors(mapping, error):
    with pytest.raises(ValueError, match=error):
        HealthSettings.from_config(mapping)


def _provider_with(processor) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(processor)
    return provider


def _tracing_keeping_spans(t) -> tuple[Tracing, list]:
    """Tracing that feeds health tracker ``t`` and keeps every ended span in the returned list."""
    ended: list = []

    class Keep(SpanProcessor):
        def on_end(self, span):
            ended.append(span)

    provider = _provider_with(t)
    provider.add_span_processor(Keep())
    return Tracing(provider), ended



def test_retry_after_keeps_traffic_away_until_then(clock):
    t = tracker(clock, consecutive_failures=100)
    t = HealthTracker(t.settings, clock=clock, model_providers={"m": "p", "sibling": "p", "other": "q"})
    t.record("m", "p", ok=False, latency_ms=1, kind="429", retry_after_s=7)
    health = t.model_health("m")
    assert health.retry_in_s == pytest.approx(7) and not health.ejected
    # The whole provider pauses: a sibling model with no history of its own is out too, others are not.
    assert t.model_health("sibling").retry_in_s == pytest.approx(7)
    assert t.model_health("other").retry_in_s is None
    assert t.snapshot()["models"]["m"]["last_ejection_reason"] == "rate limited: retry-after 7s"
    assert t.snapshot()["models"]["m"]["ejections"] == 0
    assert t.snapshot()["providers"]["p"]["paused_for_s"] == pytest.approx(7)
    clock.now += 7.5
    assert t.model_health("m").retry_in_s is None and t.model_health("sibling").retry_in_s is None


def test_retry_after_forms():
    from extproc import retry_after
    now = 1_700_000_000.0
    assert retry_after.from_headers({"retry-after": "3"}, now) == 3.0
    assert retry_after.from_headers({"retry-after-ms": "1500", "retry-after": "9"}, now) == 1.5
    date = "Tue, 14 Nov 2023 22:13:40 GMT"   # now + 20 s, RFC 9110's HTTP-date form
    assert retry_after.from_headers({"retry-after": date}, now) == pytest.approx(20)
    resets = {"anthropic-ratelimit-requests-reset": "2023-11-14T22:13:25Z",
              "anthropic-ratelimit-tokens-reset": "2023-11-14T22:13:30Z"}
    assert retry_after.from_headers(resets, now) == pytest.approx(10)   # when both limits have room again
    assert retry_after.from_headers({"retry-after": "soon"}, now) is None
    assert retry_after.from_headers({}, now) is None
    gemini = {"error": {"code": 429, "status": "RESOURCE_EXHAUSTED", "details": [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "46.5s"}]}}
    assert retry_after.from_gemini_body(json.dumps(gemini).encode()) == 46.5
    assert retry_after.from_gemini_body(b"not json") is None
