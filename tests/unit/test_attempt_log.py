"""Envoy's upstream log entries as attempt reports, and what the processor does with them."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from envoy.data.accesslog.v3 import accesslog_pb2 as al

from extproc.config import load
from extproc.credentials import Credentials
from extproc.devstack import DEFAULT_ROUTING
from extproc.gateway import Gateway
from extproc.health import HealthTracker
from extproc.server import Processor, attempt_report
from extproc.telemetry import OUTCOME_FROM_LOG, Tracing, tracer_provider
from opentelemetry.sdk.trace import SpanProcessor

NOW = 1_700_000_000.0


def entry(attempt="1", status=None, headers=None, request_id="rid", **flags) -> al.HTTPAccessLogEntry:
    e = al.HTTPAccessLogEntry()
    e.request.request_id = request_id
    e.request.request_headers["x-envoy-attempt-count"] = attempt
    e.common_properties.upstream_cluster = "openai"
    e.common_properties.duration.FromMilliseconds(120)
    if status is not None:
        e.response.response_code.value = status
    for k, v in (headers or {}).items():
        e.response.response_headers[k] = v
    for name, value in flags.items():
        setattr(e.common_properties.response_flags, name, value)
    return e


@pytest.mark.parametrize("log_entry,kind", [
    (entry(status=503), "503"), (entry(status=429), "429"), (entry(status=200), None), (entry(status=400), None),
    (entry(upstream_request_timeout=True), "timeout"), (entry(upstream_remote_reset=True), "reset"),
    (entry(upstream_connection_failure=True), "reset"), (entry(downstream_remote_reset=True), None),
    # The egress listener's 504 when the attempt's own deadline passed: a timeout, not the provider's 504.
    (entry(status=504, headers={"x-llm-attempt-deadline": "passed"}), "timeout"), (entry(status=504), "504"),
])
def test_failure_kinds(log_entry, kind):
    report = attempt_report(log_entry, NOW)
    assert report.kind == kind and report.attempt == 1 and report.duration_ms == 120 and report.cluster == "openai"


def test_retry_after_is_read_only_from_rate_limited_answers():
    assert attempt_report(entry(status=429, headers={"retry-after": "20"}), NOW).retry_after_s == 20
    assert attempt_report(entry(status=503, headers={"retry-after-ms": "1500"}), NOW).retry_after_s == 1.5
    assert attempt_report(entry(status=200, headers={"retry-after": "20"}), NOW).retry_after_s is None
    assert attempt_report(entry(attempt="3", status=429), NOW).attempt == 3


def test_an_unwatched_first_attempts_report_reaches_the_health_tracker():
    clock = [100.0]
    cfg = replace(load(DEFAULT_ROUTING), auth="optional")   # about attempts, not keys
    tracker = HealthTracker(clock=lambda: clock[0], model_providers={m.id: m.provider.name for m in cfg.models.values()})
    gateway = Gateway(cfg, Credentials({}), health=tracker)
    tracing = Tracing(tracer_provider(tracker, environ={}))
    processor = Processor(gateway, tracing)
    headers = {":method": "POST", ":path": "/v1/chat/completions", "content-type": "application/json"}
    exchange = gateway.request_body(headers, json.dumps(
        {"model": "auto", "messages": [{"role": "user", "content": "What is the capital of Peru?"}]}).encode())
    exchange.trail = tracing.start_request({}, "chat", "auto", "", [])
    processor.exchanges[exchange.key] = exchange
    processor._remember(exchange)
    gateway.route(exchange)
    processor._attempt_started(exchange, 1, observed=False)
    exchange.attempts[2] = (exchange.plan.models[1], None)
    processor._attempt_started(exchange, 2)             # Envoy retried: attempt 1 ended, status unknown
    assert tracker.snapshot()["models"]["gpt-4o-mini"]["requests"] == 0
    processor.attempt_ended(attempt_report(entry(status=429, headers={"retry-after": "20"},
                                                 request_id=exchange.key), NOW))
    summary = tracker.snapshot()["models"]["gpt-4o-mini"]
    assert summary["rate_limited"] == 1 and summary["inflight"] == 0
    assert tracker.model_health("gpt-4o").retry_in_s == pytest.approx(20)   # the whole provider pauses


def _processor_keeping_spans():
    """A Processor whose tracing feeds a health tracker and keeps every ended span, with one planned
    chat exchange whose attempt 1 went out unwatched (the router stage sent it, no upstream stage)."""
    ended: list = []

    class Keep(SpanProcessor):
        def on_end(self, span):
            ended.append(span)

    cfg = replace(load(DEFAULT_ROUTING), auth="optional")
    tracker = HealthTracker(clock=lambda: 100.0, model_providers={m.id: m.provider.name for m in cfg.models.values()})
    gateway = Gateway(cfg, Credentials({}), health=tracker)
    processor = Processor(gateway, Tracing(tracer_provider(tracker, Keep(), environ={})))
    headers = {":method": "POST", ":path": "/v1/chat/completions", "content-type": "application/json"}
    exchange = gateway.request_body(headers, json.dumps(
        {"model": "auto", "messages": [{"role": "user", "content": "What is the capital of Peru?"}]}).encode())
    exchange.trail = processor.tracing.start_request({}, "chat", "auto", "", [])
    processor.exchanges[exchange.key] = exchange
    processor._remember(exchange)
    gateway.route(exchange)
    processor._attempt_started(exchange, 1, observed=False)
    exchange.attempts[2] = (exchange.plan.models[1], None)
    return processor, exchange, tracker, ended


@pytest.mark.parametrize("log_first", [False, True])
def test_an_unwatched_attempt_refused_with_a_400_and_retried_says_400_on_its_span(log_first):
    """A context overflow retried on a larger model: attempt 1's 400 is known only to Envoy's upstream
    log. Its span said error.type "failed" (it ended when attempt 2 started, before the log came); it
    says the status, as OpenTelemetry's HTTP conventions have a client span say it, and ends when
    attempt 2 started. Health takes no sample from a refusal, as before. The log may come before or
    after attempt 2 starts."""
    processor, exchange, tracker, ended = _processor_keeping_spans()
    first = exchange.attempts[1][0]
    report = attempt_report(entry(status=400, request_id=exchange.key), NOW)
    if log_first:
        processor.attempt_ended(report)
        assert not [s for s in ended if s.attributes.get("llm.attempt") == 1]   # it may yet be the answer
    processor._attempt_started(exchange, 2)             # Envoy retried: attempt 1 is over
    if not log_first:
        assert not [s for s in ended if s.attributes.get("llm.attempt") == 1]   # waits for the log
        processor.attempt_ended(report)
    [span] = [s for s in ended if s.attributes.get("llm.attempt") == 1]
    assert span.attributes["error.type"] == "400" and span.attributes["http.response.status_code"] == 400
    assert span.attributes[OUTCOME_FROM_LOG] is True
    attempt_2 = exchange.trail.attempts[2]
    assert span.end_time <= attempt_2.span.start_time + 5_000_000   # over when attempt 2 started, not when the log came
    summary = tracker.snapshot()["models"][first.id]
    assert summary["requests"] == 0 and summary["failures"] == 0 and summary["inflight"] == 0


def test_an_unwatched_attempt_whose_log_never_comes_still_ends():
    processor, exchange, tracker, ended = _processor_keeping_spans()
    processor._attempt_started(exchange, 2)
    processor.tracing.end_unreported(exchange.trail)   # the server's fallback, VERDICT_WAIT_S after the end
    [span] = [s for s in ended if s.attributes.get("llm.attempt") == 1]
    assert span.attributes["error.type"] == "failed" and span.attributes[OUTCOME_FROM_LOG] is True
