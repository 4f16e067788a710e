"""Live health of every model and provider, fed by the attempt spans.

Every upstream attempt is an OpenTelemetry span (marked by ``telemetry.ATTEMPT``);
``HealthTracker`` is a span processor, so what the operator reads in Jaeger and
what steers traffic are the same events. Per model and per provider it keeps
a sliding window of outcomes (latency, time to first token, failures by kind)
and the number of attempts in flight, and applies ejection rules shaped like
Envoy's outlier detection:

- eject after ``consecutive_failures`` failures in a row, or when the error
  rate over the window exceeds ``max_error_rate`` with at least
  ``min_requests`` in the window;
- stay out for ``base_ejection_s`` times the number of ejections so far,
  capped at ``max_ejection_s``;
- then half-open: ``probe_requests`` attempts may go through; if they all
  succeed the model is healthy again, one failure ejects it again.

A provider's ``retry-after`` (429/503) is a pause, not an ejection: the model
and its whole provider stay out of every plan until then (``retry_in_s`` in
``model_health()``), and the pause does not lengthen later ejections.

The tracker never decides routes: the policy reads ``model_health()`` and
skips ejected, paused or saturated candidates. Slowness (p95 above a tier's target)
is reported, not ejected: the policy demotes slow models for interactive work.

Time comes from the ``clock`` given at construction, so tests drive it.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

from . import telemetry
from .policy import HEALTHY, ModelHealth  # the view the policy reads: policy.py owns it

VIEW_TTL_S = 0.25   # how stale the latency view the policy reads may be

# Failure kinds an attempt can end with (the span's error.type); anything else counts as a failure too.
TIMEOUT, RESET, RATE_LIMITED = "timeout", "reset", "429"


@dataclass(frozen=True)
class HealthSettings:
    window_s: float = 30.0
    min_requests: int = 10
    max_error_rate: float = 0.02
    consecutive_failures: int = 5
    base_ejection_s: float = 30.0
    max_ejection_s: float = 300.0
    probe_requests: int = 3

    @classmethod
    def from_config(cls, mapping: dict[str, Any] | None) -> "HealthSettings":
        """Settings from the routing config's ``health:`` section; ValueError('key: problem') when wrong."""
        if mapping is None:
            return cls()
        if not isinstance(mapping, dict):
            raise ValueError(f"(section): must be a mapping, not {type(mapping).__name__}")
        values: dict[str, Any] = {}
        defaults = cls()
        for key, raw in mapping.items():
            if not hasattr(defaults, key):
                raise ValueError(f"{key}: unknown key (allowed: {', '.join(cls.__dataclass_fields__)})")
            want = type(getattr(defaults, key))
            if isinstance(raw, bool) or not isinstance(raw, (int, float)) or (want is int and not isinstance(raw, int)):
                raise ValueError(f"{key}: must be {'an integer' if want is int else 'a number'}, not {raw!r}")
            if raw < 0 or (raw == 0 and key != "max_error_rate"):
                raise ValueError(f"{key}: must be positive")
            values[key] = want(raw)
        settings = cls(**values)
        if settings.max_error_rate > 1:
            raise ValueError("max_error_rate: must be between 0 and 1")
        if settings.max_ejection_s < settings.base_ejection_s:
            raise ValueError("max_ejection_s: must be >= base_ejection_s")
        return settings


@dataclass
class _Outcome:
    at: float
    ok: bool
    latency_ms: float
    ttft_ms: float | None
    kind: str | None


@dataclass
class _Stats:
    """One model's (or one provider's) window and ejection state."""

    scope: str                    # "model" or "provider"
    name: str
    outcomes: deque[_Outcome] = field(default_factory=deque)
    inflight: int = 0
    consecutive_failures: int = 0
    ejections: int = 0
    ejected_until: float = 0.0
    probes_left: int = 0          # > 0 while half-open
    probe_successes: int = 0
    last_ejection_reason: str = ""
    paused_until: float = 0.0     # the provider's retry-after: nothing goes there before

    _view: tuple[float, float | None, float] = (float("-inf"), None, 0.0)   # (computed at, p95, error rate)

    def latency_view(self, now: float, settings: HealthSettings) -> tuple[float | None, float]:
        """p95 of successful attempts and the error rate, recomputed at most every VIEW_TTL_S: sorting
        the window on every routing decision would cost more than the decision itself."""
        at, p95, error_rate = self._view
        if now - at >= VIEW_TTL_S:
            self.trim(now, settings.window_s)
            latencies = sorted(o.latency_ms for o in self.outcomes if o.ok)
            failures = sum(not o.ok for o in self.outcomes)
            p95 = _pct(latencies, 95)
            error_rate = failures / len(self.outcomes) if self.outcomes else 0.0
            self._view = (now, p95, error_rate)
        return p95, error_rate

    def trim(self, now: float, window: float) -> None:
        while self.outcomes and self.outcomes[0].at < now - window:
            self.outcomes.popleft()

    def summary(self, now: float, settings: HealthSettings) -> dict[str, Any]:
        self.trim(now, settings.window_s)
        latencies = sorted(o.latency_ms for o in self.outcomes if o.ok)
        ttfts = sorted(o.ttft_ms for o in self.outcomes if o.ok and o.ttft_ms is not None)
        total = len(self.outcomes)
        failures = sum(not o.ok for o in self.outcomes)
        return {
            "requests": total,
            "failures": failures,
            "error_rate": failures / total if total else 0.0,
            "timeouts": sum(o.kind == TIMEOUT for o in self.outcomes),
            "rate_limited": sum(o.kind == RATE_LIMITED for o in self.outcomes),
            "resets": sum(o.kind == RESET for o in self.outcomes),
            "latency_ms": {"p50": _pct(latencies, 50), "p95": _pct(latencies, 95), "p99": _pct(latencies, 99)},
            "ttft_ms": {"p50": _pct(ttfts, 50), "p95": _pct(ttfts, 95), "p99": _pct(ttfts, 99)},
            "inflight": self.inflight,
            "ejected": self.ejected_until > now,
            "ejected_for_s": round(self.ejected_until - now, 3) if self.ejected_until > now else None,
            "ejections": self.ejections,
            "paused_for_s": round(self.paused_until - now, 3) if self.paused_until > now else None,
            "half_open": self.probes_left > 0 and self.ejected_until <= now,
            "last_ejection_reason": self.last_ejection_reason,
        }


def _pct(sorted_values: list[float], p: float) -> float | None:
    if not sorted_values:
        return None
    rank = max(0, math.ceil(p / 100 * len(sorted_values)) - 1)
    return sorted_values[rank]


class HealthTracker(SpanProcessor):
    """Span processor that turns attempt spans into health, and answers the policy's questions."""

    def __init__(self, settings: HealthSettings | None = None, clock: Callable[[], float] = time.monotonic,
                 max_inflight: dict[str, int] | None = None,
                 on_eject: Callable[[str, str, str], None] | None = None,
                 provider_limits: dict[str, tuple[str, int]] | None = None,
                 model_providers: dict[str, str] | None = None):
        self.settings = settings or HealthSettings()
        self.clock = clock
        self.on_eject = on_eject   # (scope, name, reason), e.g. a metrics counter
        self.max_inflight = dict(max_inflight or {})   # model id -> limit
        self.provider_limits = dict(provider_limits or {})   # model id -> (its provider, the provider's limit)
        self.model_providers = dict(model_providers or {})   # model id -> its provider (for provider pauses)
        self._models: dict[str, _Stats] = {}
        self._providers: dict[str, _Stats] = {}
        self._lock = threading.Lock()  # spans may end on exporter threads

    # ---- span processor -------------------------------------------------------------------------

    def on_start(self, span, parent_context=None) -> None:
        if telemetry.ATTEMPT not in (span.attributes or {}):
            return
        model, provider = _keys(span.attributes)
        with self._lock:
            for stats in self._stats(model, provider):
                stats.inflight += 1

    def on_end(self, span: ReadableSpan) -> None:
        if telemetry.ATTEMPT not in (span.attributes or {}):
            return
        attrs = span.attributes or {}
        model, provider = _keys(attrs)
        if attrs.get(telemetry.OUTCOME_FROM_LOG) or attrs.get(telemetry.HEDGE_CANCELLED) or attrs.get(
                telemetry.CLIENT_LEFT):
            # A hedge that lost the race was cancelled by the gateway, or the client left before the
            # first content: no outcome of its provider (its latency is censored, so it is no latency
            # sample either).
            # Nobody watched this attempt end (attempt 1): Envoy's upstream log reports its outcome
            # (``record``) with the real status and failure kind. Here it only leaves the in-flight count.
            with self._lock:
                for stats in self._stats(model, provider):
                    stats.inflight = max(0, stats.inflight - 1)
            return
        kind = attrs.get("error.type")
        if kind is not None and kind.isdigit() and not telemetry.provider_fault(int(kind)):
            kind = None   # a status that is the request's fault (a 4xx but 429): an answer, not a failure
        latency_ms = (span.end_time - span.start_time) / 1e6 if span.end_time and span.start_time else 0.0
        ttft = attrs.get(telemetry.TTFT_MS)
        self.record(model, provider, ok=kind is None, latency_ms=latency_ms,
                    ttft_ms=float(ttft) if ttft is not None else None, kind=kind, started=False,
                    retry_after_s=attrs.get(telemetry.RETRY_AFTER_S))

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    # ---- the model ------------------------------------------------------------------------------

    def record(self, model: str, provider: str, *, ok: bool, latency_ms: float, ttft_ms: float | None = None,
               kind: str | None = None, started: bool = True, retry_after_s: float | None = None) -> None:
        """One finished attempt. ``started`` False means on_start already counted it in flight."""
        now = self.clock()
        outcome = _Outcome(now, ok, latency_ms, ttft_ms, kind)
        with self._lock:
            for stats in self._stats(model, provider):
                if not started:
                    stats.inflight = max(0, stats.inflight - 1)
                stats.outcomes.append(outcome)
                stats.trim(now, self.settings.window_s)
                self._judge(stats, ok, kind, now)
            if retry_after_s:
                self._pause(model, provider, float(retry_after_s), now)

    def pause(self, model: str, provider: str, retry_after_s: float) -> None:
        """The provider said when to come back (``retry_after_s`` from now): the model and its provider
        stay out of every plan until then. Not an ejection: it does not lengthen the next one."""
        with self._lock:
            self._pause(model, provider, retry_after_s, self.clock())

    def _pause(self, model: str, provider: str, retry_after_s: float, now: float) -> None:
        until = now + min(retry_after_s, self.settings.max_ejection_s)
        for stats in self._stats(model, provider):
            if until > stats.paused_until:
                stats.paused_until = until
                stats.last_ejection_reason = f"rate limited: retry-after {retry_after_s:g}s"

    def _judge(self, stats: _Stats, ok: bool, kind: str | None, now: float) -> None:
        s = self.settings
        if ok:
            stats.consecutive_failures = 0
            if stats.probes_left > 0 and stats.ejected_until <= now:
                stats.probe_successes += 1
                if stats.probe_successes >= s.probe_requests:
                    stats.probes_left, stats.probe_successes = 0, 0
                    # Back in full: the failures that ejected it are history (they would re-eject it on
                    # the error-rate rule); its latencies still tell the policy how fast it is.
                    stats.outcomes = deque(o for o in stats.outcomes if o.ok)
            return
        stats.consecutive_failures += 1
        if stats.ejected_until > now:
            return
        if stats.probes_left > 0:
            self._eject(stats, now, f"probe failed ({kind or 'error'})")
            return
        total = len(stats.outcomes)
        failures = sum(not o.ok for o in stats.outcomes)
        if stats.consecutive_failures >= s.consecutive_failures:
            self._eject(stats, now, f"{stats.consecutive_failures} consecutive failures")
        elif total >= s.min_requests and failures / total > s.max_error_rate:
            self._eject(stats, now, f"error rate {failures / total:.1%} over {total} requests")

    def _eject(self, stats: _Stats, now: float, reason: str) -> None:
        s = self.settings
        stats.ejections += 1
        stats.ejected_until = now + min(s.base_ejection_s * stats.ejections, s.max_ejection_s)
        stats.probes_left, stats.probe_successes = s.probe_requests, 0
        stats.consecutive_failures = 0
        stats.last_ejection_reason = reason
        if self.on_eject is not None:
            self.on_eject(stats.scope, stats.name, reason)

    def _stats(self, model: str, provider: str) -> tuple[_Stats, _Stats]:
        if model not in self._models:
            self._models[model] = _Stats("model", model)
        if provider not in self._providers:
            self._providers[provider] = _Stats("provider", provider)
        return self._models[model], self._providers[provider]

    # ---- what the policy and the status API read ------------------------------------------------

    def model_health(self, model_id: str) -> ModelHealth:
        """The policy asks this for every candidate of every request: it must stay cheap."""
        with self._lock:
            now = self.clock()
            provider, provider_limit = self.provider_limits.get(model_id, ("", None))
            pstats = self._providers.get(provider or self.model_providers.get(model_id, ""))
            provider_full = provider_limit is not None and pstats is not None and pstats.inflight >= provider_limit
            stats = self._models.get(model_id)
            paused_until = max(stats.paused_until if stats else 0.0, pstats.paused_until if pstats else 0.0)
            retry_in_s = paused_until - now if paused_until > now else None
            if stats is None:
                if retry_in_s is not None or provider_full:
                    return ModelHealth(saturated=provider_full, retry_in_s=retry_in_s)
                return HEALTHY
            ejected = stats.ejected_until > now
            if not ejected and stats.probes_left > 0:
                # Half-open: only as many attempts in flight as probes remain.
                ejected = stats.inflight >= stats.probes_left - stats.probe_successes
            limit = self.max_inflight.get(model_id)
            saturated = provider_full or (limit is not None and stats.inflight >= limit)
            p95_ms, error_rate = stats.latency_view(now, self.settings)
            return ModelHealth(ejected=ejected, saturated=saturated, p95_ms=p95_ms, error_rate=error_rate,
                               inflight=stats.inflight, retry_in_s=retry_in_s)

    def snapshot(self) -> dict[str, Any]:
        """Everything, for the status API: per model and per provider."""
        with self._lock:
            now = self.clock()
            return {"window_s": self.settings.window_s,
                    "models": {k: v.summary(now, self.settings) for k, v in sorted(self._models.items())},
                    "providers": {k: v.summary(now, self.settings) for k, v in sorted(self._providers.items())}}

    def inflight_total(self) -> int:
        with self._lock:
            return sum(s.inflight for s in self._providers.values())


def _keys(attrs: Any) -> tuple[str, str]:
    attrs = attrs or {}
    return str(attrs.get(telemetry.MODEL_ID, "?")), str(attrs.get(telemetry.PROVIDER, "?"))
