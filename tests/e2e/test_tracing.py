"""Spans reach an OTLP receiver: Envoy's and the processor's in one trace, GenAI attributes, no prompt text."""

from __future__ import annotations

import time

from .conftest import MODELS, fault
from .otlp_receiver import attributes

SECRET_PROMPT = "the launch code is swordfish-8841"


def test_one_trace_with_envoy_request_and_attempt_spans(gateway, client, otlp):
    since = time.time_ns()
    raw = client.chat.completions.with_raw_response.create(
        model=MODELS["anthropic"], messages=[{"role": "user", "content": SECRET_PROMPT}])
    assert raw.status_code == 200

    def complete(spans):
        ours = [(svc, s) for svc, s in spans if attributes(s).get("gen_ai.request.model") == MODELS["anthropic"]
                and attributes(s).get("llm.request") and s.start_time_unix_nano >= since]
        if not ours:
            return None
        trace_id = ours[-1][1].trace_id
        same = [(svc, s) for svc, s in spans if s.trace_id == trace_id]
        envoy_ids = {s.span_id for svc, s in same if svc == "llm-gateway-envoy"}
        # Envoy exports its spans in batches: wait for the one the processor's request span hangs under.
        requests = [s for svc, s in same if svc == "llm-gateway-extproc" and attributes(s).get("llm.request")]
        if requests and any("llm.attempt" in attributes(s) for _, s in same) and (
                requests[0].parent_span_id in envoy_ids):
            return same
        return None

    spans = otlp.wait_for(complete)
    by_kind = {}
    for service, span in spans:
        attrs = attributes(span)
        if attrs.get("llm.request"):
            by_kind["request"] = (span, attrs)
        elif "llm.attempt" in attrs:
            by_kind["attempt"] = (span, attrs)
    request, req_attrs = by_kind["request"]
    attempt, att_attrs = by_kind["attempt"]
    assert attempt.parent_span_id == request.span_id
    envoy_ids = {s.span_id for svc, s in spans if svc == "llm-gateway-envoy"}
    assert request.parent_span_id in envoy_ids      # the processor's span hangs under Envoy's
    assert req_attrs["gen_ai.operation.name"] == "chat"
    assert req_attrs["llm.provider"] == "anthropic" and req_attrs["llm.model"] == MODELS["anthropic"]
    assert req_attrs["http.response.status_code"] == 200
    assert att_attrs["gen_ai.provider.name"] == "anthropic"
    assert att_attrs["gen_ai.request.model"] == "claude-haiku-4-5"
    assert att_attrs["gen_ai.response.model"] == "claude-haiku-4-5"
    assert att_attrs["gen_ai.usage.input_tokens"] > 0 and att_attrs["gen_ai.usage.output_tokens"] > 0
    assert att_attrs["llm.attempt"] == 1 and att_attrs["http.response.status_code"] == 200
    assert att_attrs["llm.time_to_first_token_ms"] > 0
    assert "error.type" not in att_attrs
    assert SECRET_PROMPT.encode() not in otlp.raw()     # no prompt text by default
    assert b"sim-anthropic-key" not in otlp.raw() and b"sk-client" not in otlp.raw()


def test_retried_attempts_are_failed_spans(gateway, client, otlp):
    # Every primary-tier provider fails once, so attempt 1 (a primary) gets a 503 and attempt 2 (the
    # secondary tier's leader) answers. Attempt 1 is rewritten by the router stage and no stage watches
    # its answer: Envoy's upstream log reports it, and its span waits for that report (telemetry
    # ``attempt_reported``), so it says the provider's status, not "failed".
    # (A pinned model is not retried at all: Envoy would only call the same provider again.)
    for provider in ("openai", "azure_openai", "vllm"):
        fault(gateway, provider, status=503, count=1)
    since = time.time_ns()
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "retry me"}])
    assert raw.headers["x-llm-attempts"] == "2"
    answered_by = raw.headers["x-llm-model"]

    def attempts(spans):
        mine = [(s.trace_id, attributes(s)) for _, s in spans if s.start_time_unix_nano >= since
                and "llm.attempt" in attributes(s)]
        by_trace: dict = {}
        for tid, attrs in mine:
            by_trace.setdefault(tid, {})[attrs["llm.attempt"]] = attrs
        complete = [found for found in by_trace.values()
                    if set(found) == {1, 2} and found[2].get("llm.model") == answered_by]
        return complete[-1] if complete else None

    found = otlp.wait_for(attempts)
    assert found[1]["error.type"] == "503" and found[1]["http.response.status_code"] == 503
    assert "error.type" not in found[2] and found[2]["http.response.status_code"] == 200
