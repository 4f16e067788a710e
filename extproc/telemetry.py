"""OpenTelemetry: one span per client request, one child span per upstream attempt.

Attribute names follow the OpenTelemetry GenAI semantic conventions
(``gen_ai.*``), plus ``llm.*`` for the routing decision. The request span joins
the trace Envoy started (W3C ``traceparent``). The attempt spans are also what
the health tracker reads (``health.HealthTracker`` is a span processor), so an
operator sees in Jaeger exactly the events that moved traffic.

Prompt and completion text are never recorded.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

# Our own attribute names (the GenAI conventions have no words for routing).
REQUEST = "llm.request"          # marks a request span
ATTEMPT = "llm.attempt"          # attempt number, 1-based; marks an attempt span
ATTEMPT_DEADLINE = "llm.attempt.deadline_ms"   # the attempt's own deadline (its tier's target x attempt_timeout_factor)
PROVIDER = "llm.provider"        # provider name from the routing config
MODEL_ID = "llm.model"           # the gateway's model id
TTFT_MS = "llm.time_to_first_token_ms"
RETRY_AFTER_S = "llm.retry_after_s"   # a provider's retry-after on 429/503
# On an attempt nobody watched end (attempt 1, sent by the router stage): Envoy's upstream log
# reports its outcome to the health tracker, so the span's own (guessed) end does not count.
OUTCOME_FROM_LOG = "llm.attempt.outcome_from_log"
ROUTE_REASON = "llm.route.reason"
PLAN = "llm.route.plan"
CLASS = "llm.route.class"
SCORE = "llm.route.score"
WORKLOAD = "llm.route.workload"
SURFACE = "llm.route.surface"
TENANT = "llm.tenant"
COST_USD = "llm.cost_usd"
OUTCOME = "llm.outcome"          # how the request ended (accounting outcome: ok, cancelled, provider_cut, ...)
HEDGE_EXTRA = "llm.hedge.extra_attempts"    # on a hedged request: attempts started beside or after the first
HEDGE_WON = "llm.hedge.won"                 # a later attempt answered
HEDGE_WASTED_USD = "llm.hedge.wasted_usd"   # the prompt cost of the attempts that did not answer
HEDGE_CANCELLED = "llm.hedge.cancelled"      # on an attempt span: cancelled because another attempt won
CLIENT_LEFT = "llm.client_left"              # on an attempt span: the client left before its first content

# gen_ai.provider.name values from the GenAI conventions, by our API kind.
_GENAI_PROVIDER = {"openai": "openai", "azure_openai": "azure.ai.openai", "anthropic": "anthropic",
                   "gemini": "gcp.gemini"}
_PROPAGATOR = TraceContextTextMapPropagator()


def provider_fault(status: int) -> bool:
    """Whether an HTTP answer (``status``) is its provider's failure: a 5xx or a 429 (overloaded,
    rate limited). Any other 4xx is the request's fault (a prompt over the model's window, a refused
    parameter) even when Envoy retries it on the next tier (envoy.yaml ``llm_context_overflow``), and
    a 1xx-3xx is an answer: neither counts against the provider's health. The one rule for attempt
    spans, the health tracker and Envoy's upstream log (``server.attempt_report``)."""
    return status >= 500 or status == 429


def tracer_provider(*processors: SpanProcessor, environ: dict[str, str] | None = None) -> TracerProvider:
    """A provider feeding ``processors`` (health, metrics) and, when the standard
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``..._TRACES_ENDPOINT``) is set, an OTLP
    exporter: gRPC by default, HTTP with ``OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf``."""
    env = os.environ if environ is None else environ
    provider = TracerProvider(resource=Resource.create(
        {"service.name": env.get("OTEL_SERVICE_NAME", "llm-gateway-extproc")}))
    for p in processors:
        provider.add_span_processor(p)
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or env.get("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        if protocol.startswith("http"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


@dataclass
class Attempt:
    number: int
    span: trace.Span
    started_ns: int
    status: int | None = None
    observed: bool = True    # False: no upstream stage watched it (attempt 1), so its status may be unknown
    from_log: bool = False   # its span ended without a status: Envoy's upstream log reports the outcome
    concurrent: bool = False  # a hedged attempt: it raced the others, and a loser is cancelled, not failed
    deadline_ms: int | None = None   # its own tier's deadline (a failure lasting it is a timeout)
    failure: str | None = None       # how it failed (error.type: a status, timeout, reset), once it did
    # Over while nobody watched it end (attempt 1, a later attempt started or answered): the span waits for
    # Envoy's upstream log, which has its real status, and ends at this time (wall clock; monotonic).
    superseded_ns: int | None = None
    superseded_mono_ns: int | None = None
    refused: int | None = None       # the log's refusal status (4xx but 429), come before it was superseded
    # Its stream closed while its headers were held: a provider reset or the client leaving, which only
    # Envoy's upstream log tells apart (attempt_reported / attempt_left end it; "reset" if no log comes)
    unsettled: bool = False

    @property
    def awaits_log(self) -> bool:
        """Nobody watched it end and no status came: only Envoy's upstream log can say how it ended."""
        return not self.observed and self.status is None


@dataclass
class Trail:
    """The spans of one exchange."""

    request: trace.Span
    attempts: dict[int, Attempt] = field(default_factory=dict)
    answered: int | None = None
    started_ns: int = field(default_factory=time.monotonic_ns)
    first_byte_ns: int | None = None      # monotonic, like started_ns

    @property
    def ttft_ms(self) -> float | None:
        """Time from the request reaching the gateway to the first byte of its answer."""
        return None if self.first_byte_ns is None else (self.first_byte_ns - self.started_ns) / 1e6


class Tracing:
    def __init__(self, provider: TracerProvider):
        self.provider = provider
        self.tracer = provider.get_tracer("extproc")

    def start_request(self, carrier: dict[str, str], operation: str, requested_model: str, reason: str,
                      plan: list[str], decision: dict[str, str | float] | None = None) -> Trail:
        """``carrier``: where the W3C trace context is (Envoy's gRPC metadata, or the request headers)."""
        parent = _PROPAGATOR.extract(carrier)
        attributes = {REQUEST: True, "gen_ai.operation.name": operation, "gen_ai.request.model": requested_model,
                      ROUTE_REASON: reason, PLAN: plan}
        attributes.update({k: v for k, v in (decision or {}).items() if v is not None})
        span = self.tracer.start_span(f"gateway {operation}", context=parent, kind=SpanKind.SERVER,
                                      attributes=attributes)
        return Trail(span)

    def start_attempt(self, trail: Trail, number: int, operation: str, *, api: str, provider: str, model: str,
                      upstream_model: str, per_try_timeout_ms: int | None = None, observed: bool = True,
                      concurrent: bool = False) -> None:
        # Envoy starts attempt N only when the earlier ones failed: close those still open (attempt 1
        # runs without the upstream stage, so nothing else reports how it ended). Unless the request
        # is hedged (``concurrent``): then the earlier attempt is still running, racing this one.
        for earlier in trail.attempts.values():
            if not concurrent and earlier.number <= number and earlier.span.is_recording():
                self._over(earlier, per_try_timeout_ms)
        context = trace.set_span_in_context(trail.request)
        span = self.tracer.start_span(f"{operation} {upstream_model}", context=context, kind=SpanKind.CLIENT,
                                      attributes={
                                          "gen_ai.operation.name": operation,
                                          "gen_ai.provider.name": _GENAI_PROVIDER.get(api, api),
                                          "gen_ai.request.model": upstream_model,
                                          PROVIDER: provider, MODEL_ID: model, ATTEMPT: number,
                                          **({ATTEMPT_DEADLINE: per_try_timeout_ms} if per_try_timeout_ms else {})})
        trail.attempts[number] = Attempt(number, span, time.monotonic_ns(), observed=observed, concurrent=concurrent,
                                         deadline_ms=per_try_timeout_ms)

    def watch(self, trail: Trail, number: int) -> None:
        """An upstream stage watches this attempt (it reports its status and end like any retry)."""
        attempt = trail.attempts.get(number)
        if attempt is not None:
            attempt.observed = True

    def attempt_status(self, trail: Trail, number: int, status: int, retry_after_s: float | None = None) -> None:
        attempt = trail.attempts.get(number)
        if attempt is not None and attempt.span.is_recording():
            attempt.status = status
            attempt.span.set_attribute("http.response.status_code", status)
            if retry_after_s is not None:
                attempt.span.set_attribute(RETRY_AFTER_S, retry_after_s)

    def attempt_reported(self, trail: Trail, number: int, status: int | None, kind: str | None,
                         retry_after_s: float | None) -> bool:
        """Envoy's upstream log says how an unwatched attempt ended. If its span is still open, it
        ends now with that outcome (and reports it, like any watched attempt): True. False when the
        span already ended (its outcome is then the caller's to report).

        ``kind`` None with a 4xx ``status`` (not 429) is a refusal, the request's own fault (a context
        overflow retried on a larger model): no failure of the provider, so no health sample (as when
        the span ended before the log came), but its span says the status as its ``error.type`` (the
        OpenTelemetry HTTP conventions for a client span) rather than "failed". A refusal reported
        before a later attempt showed this one over is kept (it may yet be the answer) until then."""
        attempt = trail.attempts.get(number)
        if attempt is None or not attempt.span.is_recording():
            return False
        if kind is None:
            if status is None or status < 400 or attempt.observed:
                return False
            attempt.refused = status
            if attempt.superseded_ns is not None:
                self._refused(attempt)
            return True
        attempt.observed = True
        if status is not None:
            self.attempt_status(trail, number, status, retry_after_s)
        elif retry_after_s is not None:
            attempt.span.set_attribute(RETRY_AFTER_S, retry_after_s)
        self._fail(attempt, kind)
        return True

    def attempt_cancelled(self, trail: Trail, number: int) -> bool:
        """A hedged attempt lost the race: Envoy reset it because another attempt answered. Its span
        ends without an error, marked ``llm.hedge.cancelled``, which the health tracker skips: no
        failure of its provider. False if the span had already ended."""
        return self._end_unblamed(trail, number, HEDGE_CANCELLED)

    @staticmethod
    def status_of(trail: Trail, number: int) -> int | None:
        """The status the attempt's provider answered with, if any came yet."""
        attempt = trail.attempts.get(number)
        return attempt.status if attempt is not None else None

    def attempt_left(self, trail: Trail, number: int) -> bool:
        """The client left while the attempt's headers were held: its span ends without an error, marked
        ``llm.client_left``, which the health tracker skips (nothing to hold against the provider). False
        if the span had already ended."""
        return self._end_unblamed(trail, number, CLIENT_LEFT)

    @staticmethod
    def _end_unblamed(trail: Trail, number: int, mark: str) -> bool:
        """End an attempt's span without an error, marked ``mark`` (one the health tracker skips);
        False if it had already ended."""
        attempt = trail.attempts.get(number)
        if attempt is None or not attempt.span.is_recording():
            return False
        attempt.span.set_attribute(mark, True)
        attempt.span.end()
        return True

    def attempt_unsettled(self, trail: Trail, number: int) -> None:
        """The attempt is over but only Envoy's upstream log can say how (``attempt_reported`` or
        ``attempt_left`` then ends its span); ``end_unreported`` ends it if no log comes."""
        attempt = trail.attempts.get(number)
        if attempt is not None and attempt.span.is_recording():
            attempt.unsettled = True
            if attempt.superseded_ns is None:
                attempt.superseded_ns, attempt.superseded_mono_ns = time.time_ns(), time.monotonic_ns()

    def attempt_closed(self, trail: Trail, number: int, per_try_timeout_ms: int | None) -> None:
        """Envoy closed the upstream stage's stream: the attempt is over. Unless the router
        stage took it as the answer, it failed: by status, or by reset / timeout."""
        attempt = trail.attempts.get(number)
        if attempt is None or trail.answered == number or not attempt.span.is_recording():
            return
        if attempt.status is not None and not provider_fault(attempt.status):
            return  # a final answer whose headers the router stage has not seen yet: it ends the span
        if attempt.concurrent and attempt.status is None:
            return  # a hedge reset, maybe because another won: answered() or finish() says which
        self._fail(attempt, _failure_kind(attempt, per_try_timeout_ms))

    def _over(self, attempt: Attempt, per_try_timeout_ms: int | None) -> None:
        """A later attempt started or answered: ``attempt`` is over. Ended now by what is known (its
        status, or a timeout: it lasted its deadline), or, when only Envoy's upstream log can say
        (``awaits_log``: it would read "failed"), kept open for it (``attempt_reported``), with the time
        it was over as its end (``end_unreported`` is the fallback when no log comes)."""
        if attempt.unsettled:
            return     # kept open for Envoy's upstream log (attempt_unsettled)
        kind = _failure_kind(attempt, per_try_timeout_ms)
        if not attempt.awaits_log or kind != "failed":
            self._end(attempt, kind)   # a timeout ends now, as the tier-deadline billing reads it at settle
            return
        if attempt.superseded_ns is None:
            attempt.superseded_ns, attempt.superseded_mono_ns = time.time_ns(), time.monotonic_ns()
        if attempt.refused is not None:
            self._refused(attempt)

    def _refused(self, attempt: Attempt) -> None:
        attempt.observed = True
        attempt.status = attempt.refused
        attempt.span.set_attribute("http.response.status_code", attempt.refused)
        attempt.span.set_attribute(OUTCOME_FROM_LOG, True)   # the health tracker takes no sample (a refusal)
        attempt.from_log = True
        self._fail(attempt, str(attempt.refused))

    def awaiting_log(self, trail: Trail) -> bool:
        """Some attempt of the trail is over but its span waits for Envoy's upstream log."""
        return any(a.superseded_ns is not None and a.span.is_recording() for a in trail.attempts.values())

    def end_unreported(self, trail: Trail) -> None:
        """The fallback when Envoy's upstream log never reported an attempt that was over: it ends as
        before the log could say ("failed", or "timeout" when it lasted its deadline)."""
        for attempt in trail.attempts.values():
            if attempt.superseded_ns is not None and attempt.span.is_recording():
                self._end(attempt, "reset" if attempt.unsettled else _failure_kind(attempt, None))

    def answered(self, trail: Trail, number: int, status: int, per_try_timeout_ms: int | None = None,
                 retry_after_s: float | None = None) -> None:
        trail.answered = number
        self.attempt_status(trail, number, status, retry_after_s)
        won = not provider_fault(status)
        for n, attempt in trail.attempts.items():
            if n == number or not attempt.span.is_recording():
                continue
            if won and attempt.concurrent and (attempt.status is None or attempt.status < 400):
                self.attempt_cancelled(trail, n)   # a hedge still racing: Envoy resets it now
            elif n < number:                       # attempts before this one failed (or were refused)
                self._over(attempt, per_try_timeout_ms)

    def hedged(self, trail: Trail, answered: int | None, wasted_usd: float) -> None:
        """A hedged request's outcome, on its span: extra attempts, whether one of them won, waste."""
        request = trail.request
        request.set_attribute(HEDGE_EXTRA, max(0, len(trail.attempts) - 1))
        request.set_attribute(HEDGE_WON, bool(answered and answered > 1))
        request.set_attribute(HEDGE_WASTED_USD, wasted_usd)

    def first_byte(self, trail: Trail) -> None:
        if trail.first_byte_ns is None:
            trail.first_byte_ns = time.monotonic_ns()

    def finish(self, trail: Trail, *, status: int | None, response_model: str | None, input_tokens: int | None,
               output_tokens: int | None, error: str | None = None, provider: str | None = None,
               model: str | None = None, cost_usd: float | None = None, outcome: str | None = None) -> None:
        """The router stage's stream ended: end the answering attempt, any stragglers, and the request."""
        attempt = trail.attempts.get(trail.answered) if trail.answered is not None else None
        if attempt is not None and attempt.span.is_recording():
            span = attempt.span
            if trail.first_byte_ns is not None:
                span.set_attribute(TTFT_MS, (trail.first_byte_ns - attempt.started_ns) / 1e6)
            if response_model:
                span.set_attribute("gen_ai.response.model", response_model)
            if input_tokens is not None:
                span.set_attribute("gen_ai.usage.input_tokens", input_tokens)
                span.set_attribute("gen_ai.usage.output_tokens", output_tokens or 0)
            failed = error or (status is not None and provider_fault(status))
            if failed:
                self._fail(attempt, error or str(status))
            else:
                span.end()
        won = attempt is not None and not (error or (status is not None and provider_fault(status)))
        for other in trail.attempts.values():
            if other.span.is_recording():
                if won and other.concurrent:
                    self.attempt_cancelled(trail, other.number)   # a hedge loser: no failure of its provider
                else:
                    self._over(other, None)
        request = trail.request
        request.set_attribute("llm.attempts", len(trail.attempts))
        if provider:
            request.set_attribute(PROVIDER, provider)
            request.set_attribute(MODEL_ID, model or "")
        if response_model:
            request.set_attribute("gen_ai.response.model", response_model)
        if cost_usd is not None:
            request.set_attribute(COST_USD, cost_usd)
        if outcome is not None:
            request.set_attribute(OUTCOME, outcome)
        if status is not None:
            request.set_attribute("http.response.status_code", status)
        if input_tokens is not None:
            request.set_attribute("gen_ai.usage.input_tokens", input_tokens)
            request.set_attribute("gen_ai.usage.output_tokens", output_tokens or 0)
        if error or (status is not None and status >= 500):
            request.set_attribute("error.type", error or str(status))
            request.set_status(Status(StatusCode.ERROR))
        request.end()

    @classmethod
    def _end(cls, attempt: Attempt, kind: str | None) -> None:
        """End an attempt that did not answer: failed (``kind``), or, ``None``, refused with a status
        that is the request's fault (``provider_fault``): its span ends without an error."""
        if kind is None:
            attempt.span.end(end_time=attempt.superseded_ns)
        else:
            cls._fail(attempt, kind)

    @staticmethod
    def _fail(attempt: Attempt, kind: str) -> None:
        """End a failed attempt's span with its error type."""
        if not attempt.observed and attempt.status is None:
            attempt.span.set_attribute(OUTCOME_FROM_LOG, True)
            attempt.from_log = True
        attempt.failure = kind
        attempt.span.set_attribute("error.type", kind)
        attempt.span.set_status(Status(StatusCode.ERROR, kind))
        attempt.span.end(end_time=attempt.superseded_ns)   # when it was over, if its log came later


def _failure_kind(attempt: Attempt, per_try_timeout_ms: int | None) -> str | None:
    """How an attempt that did not answer ended: its status if one was seen (None when that status
    is no failure of the provider, ``provider_fault``), else a timeout if it lasted the whole per-try
    timeout, else a reset (watched, no status came) or "failed" (not watched: 5xx, 429 or reset)."""
    if attempt.status is not None:
        return str(attempt.status) if provider_fault(attempt.status) else None
    elapsed_ms = ((attempt.superseded_mono_ns or time.monotonic_ns()) - attempt.started_ns) / 1e6
    if attempt.deadline_ms is not None:
        per_try_timeout_ms = attempt.deadline_ms
    if per_try_timeout_ms is not None and elapsed_ms >= per_try_timeout_ms * 0.95:
        return "timeout"
    return "reset" if attempt.observed else "failed"
