"""Per-request CPU of extproc's pure parts, in-process (no gRPC, no Envoy): what each step costs in microseconds.

    PYTHONPATH=. python -m bench.costs

Complements the py-spy profile (bench/profile.py): the profile says which share
of extproc's CPU each part takes under load; this says what one call costs, so
suggestions can be ranked against the per-stream (~350 us) and per-message
(~60-70 us) gRPC costs of DESIGN.md. Health is measured with a filled window,
as it is in production after a few seconds of traffic.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

from extproc import config as routing_config
from extproc.gateway import Gateway
from extproc.health import HealthTracker

from .mock import ANTHROPIC_JSON, ANTHROPIC_SSE_CHUNK, ANTHROPIC_SSE_FIRST
from .scenarios import BY_NAME

ROUTING = Path(__file__).resolve().parent / "routing.yaml"


def timeit(fn, n: int = 2000) -> float:
    """Median of 5 batches, microseconds per call."""
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        runs.append((time.perf_counter() - start) / n * 1e6)
    return sorted(runs)[2]


def filled(outcomes: int) -> HealthTracker:
    clock = [0.0]
    tracker = HealthTracker(clock=lambda: clock[0])
    for i in range(outcomes):
        clock[0] = i * tracker.settings.window_s / max(1, outcomes)
        tracker.record("gpt-4o-mini", "openai", ok=True, latency_ms=random.random() * 5)
        tracker.record("claude-haiku-4-5", "anthropic", ok=True, latency_ms=random.random() * 5)
    return tracker


def main() -> None:
    cfg = routing_config.load(ROUTING)
    headers = {":path": "/v1/chat/completions", ":method": "POST", "content-type": "application/json"}
    rows = []
    for name in ("passthrough", "translated"):
        body = BY_NAME[name].body()
        for label, health in (("no health data", None), ("health window: 30 s at 200 req/s", filled(6000)),
                              ("health window: 30 s at 1,000 req/s", filled(30000))):
            gw = Gateway(cfg, health=health) if health is not None else Gateway(cfg)
            n = 2000 if health is None else 50
            rows.append((f"{name}: request_body (parse, validate, plan, translate attempt 1), {label}",
                         timeit(lambda: gw.request_body(headers, body), n)))
        gw = Gateway(cfg)
        ex = gw.request_body(headers, body)
        rows.append((f"{name}: route + attempt(1) rewrite", timeit(lambda: (gw.route(ex), gw.attempt(ex, 1)))))
    tracker = filled(6000)
    rows.append(("HealthTracker.model_health, 6,000 outcomes in the window", timeit(
        lambda: tracker.model_health("gpt-4o-mini"), 50)))
    # Streaming translation: one Anthropic content event -> one OpenAI chunk.
    gw = Gateway(cfg)
    ex = gw.request_body(headers, BY_NAME["stream_translated"].body())
    gw.attempt(ex, 1)
    gw.response_headers(ex, {":status": "200", "x-envoy-attempt-count": "1", "x-envoy-upstream-service-time": "1",
                             "content-type": "text/event-stream"})
    gw.response_body(ex, ANTHROPIC_SSE_FIRST, False)
    event = ANTHROPIC_SSE_CHUNK % 1234567890123
    rows.append(("stream: one Anthropic text delta -> OpenAI chunk", timeit(lambda: gw.response_body(ex, event, False))))
    ex2 = gw.request_body(headers, BY_NAME["translated"].body())
    gw.attempt(ex2, 1)
    gw.response_headers(ex2, {":status": "200", "x-envoy-attempt-count": "1", "x-envoy-upstream-service-time": "1"})
    rows.append(("JSON: Anthropic message -> OpenAI completion", timeit(lambda: ex2.translator.response(ANTHROPIC_JSON))))
    body = BY_NAME["passthrough"].body()
    rows.append(("json.loads of the 200-byte request body", timeit(lambda: json.loads(body))))
    try:
        import orjson
        rows.append(("orjson.loads of the same body", timeit(lambda: orjson.loads(body))))
    except ImportError:
        pass
    rows += telemetry_rows()
    width = max(len(r[0]) for r in rows)
    for label, us in rows:
        print(f"{label:{width}s} {us:9.1f} us")


def telemetry_rows() -> list[tuple[str, float]]:
    from extproc.telemetry import Tracing, tracer_provider
    tracing = Tracing(tracer_provider(HealthTracker()))
    headers = {":path": "/v1/chat/completions"}

    def spans():
        trail = tracing.start_request(headers, "chat", "gpt-4o-mini", "pinned", ["gpt-4o-mini"])
        tracing.start_attempt(trail, 1, "chat", api="openai", provider="openai", model="gpt-4o-mini",
                              upstream_model="gpt-4o-mini")
        tracing.attempt_status(trail, 1, 200)
        tracing.attempt_closed(trail, 1, None)
        tracing.finish(trail, status=200, error=None, response_model="gpt-4o-mini", input_tokens=10, output_tokens=20)
    try:
        return [("telemetry: request span + attempt span, start to end (health fed)", timeit(spans))]
    except TypeError as exc:   # the telemetry API is being changed; report rather than fail
        return [(f"telemetry: not measured ({exc})", float("nan"))]


if __name__ == "__main__":
    main()
