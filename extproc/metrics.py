"""Prometheus metrics, derived from the same spans that feed the health tracker.

``Metrics`` is a span processor: every ended request span and attempt span
updates the counters and histograms, so a dashboard and a trace never tell
different stories. Scraped at ``GET /metrics`` on the status port.
Names follow Prometheus conventions (base units: seconds, USD; ``_total`` counters).
"""

from __future__ import annotations

from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from . import telemetry

CONTENT_TYPE = CONTENT_TYPE_LATEST

# Latency buckets for LLM calls: from a cached 50 ms answer to a long generation.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2.5, 3, 5, 10, 20, 30, 60, 120)
_TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2.5, 5, 10)


OTHER = "other"   # a label value outside the configured names (bounded cardinality)
NONE = "none"     # no class / surface / tenant / workload applied to the request
# Request labels whose values must be names from the routing config: (span attribute, config attribute).
_NAMED = {"class": (telemetry.CLASS, "classes"), "surface": (telemetry.SURFACE, "surfaces"),
          "tenant": (telemetry.TENANT, "tenants"), "workload": (telemetry.WORKLOAD, "workloads")}


class Metrics(SpanProcessor):
    """Request series carry ``class``, ``surface``, ``tenant`` and ``workload``: only names the routing
    config defines (``other`` for anything else, ``none`` when unset), so a client cannot blow up the
    series count; the names follow hot reloads (``observe_config``)."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.names: dict[str, frozenset[str]] = {k: frozenset() for k in _NAMED}
        labels = ("provider", "model", "class", "surface", "tenant", "workload")
        self.requests = Counter("llm_gateway_requests",
                                "Client requests, by the model that answered, status and outcome (how it ended)",
                                (*labels, "status", "outcome"), registry=r)
        self.duration = Histogram("llm_gateway_request_duration_seconds", "Client request latency, end to end",
                                  labels, buckets=_LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("llm_gateway_time_to_first_token_seconds", "Time to the first response byte",
                              ("provider", "model"), buckets=_TTFT_BUCKETS, registry=r)
        self.tokens = Counter("llm_gateway_tokens", "Tokens, as the provider reported them",
                              ("provider", "model", "direction"), registry=r)
        self.cost = Counter("llm_gateway_cost_usd", "Billed cost in USD (reported or counted usage x catalog prices)",
                            labels, registry=r)
        self.attempts = Counter("llm_gateway_attempts", "Upstream attempts, by outcome (ok or the error type)",
                                ("provider", "model", "outcome"), registry=r)
        self.attempt_duration = Histogram("llm_gateway_attempt_duration_seconds", "Upstream attempt latency",
                                          ("provider", "model"), buckets=_LATENCY_BUCKETS, registry=r)
        self.errors = Counter("llm_gateway_errors", "Failed client requests, by error type (client closes excluded)",
                              ("provider", "model", "type", "class", "surface", "tenant", "workload"), registry=r)
        self.fallbacks = Counter("llm_gateway_fallbacks", "Requests answered by a later attempt than the first",
                                 ("provider", "model"), registry=r)
        self.hedges = Counter("llm_gateway_hedges", "Hedged attempts of interactive requests: started, and won "
                              "(a hedge answered before the attempt it raced)", ("outcome",), registry=r)
        self.hedge_wasted = Counter("llm_gateway_hedge_wasted_cost_usd",
                                    "Prompt cost of hedged attempts that did not answer", registry=r)
        self.ejections = Gauge("llm_gateway_ejected", "1 while a model is ejected by the health tracker",
                               ("model",), registry=r)
        self.ejections_total = Counter("llm_gateway_ejections", "Times a model was ejected", ("model",), registry=r)
        self.inflight = Gauge("llm_gateway_inflight", "Upstream attempts in flight", ("provider", "model"),
                              registry=r)
        self.budget_remaining = Gauge("llm_gateway_budget_remaining_usd", "Budget left in the current window",
                                      ("scope", "name"), registry=r)
        self.budget_fraction = Gauge("llm_gateway_budget_remaining_ratio", "Share of the budget left (0..1)",
                                     ("scope", "name"), registry=r)
        self.config_reloads = Counter("llm_gateway_config_reloads", "Routing config reloads, by result",
                                      ("result",), registry=r)
        self.latency_target = Gauge("llm_gateway_latency_target_seconds",
                                    "Latency target of the first routing tier a model serves in (for alerts)",
                                    ("model",), registry=r)
        # Shadow evaluation (extproc/shadow.py): the served model's verdict against the reference.
        self.shadow_verdicts = Counter("llm_gateway_shadow_verdicts",
                                       "Shadow evaluations of answers served below the premium tier, by verdict "
                                       "(win, tie, loss against the reference model)",
                                       ("class", "surface", "model", "verdict"), registry=r)
        self.shadow_skipped = Counter("llm_gateway_shadow_skipped", "Sampled answers not evaluated, by reason",
                                      ("reason",), registry=r)
        self.shadow_cost = Counter("llm_gateway_shadow_cost_usd", "Spend on shadow evaluation calls "
                                   "(reference and judge; gateway overhead)", registry=r)
        self.shadow_target = Gauge("llm_gateway_shadow_win_or_tie_target",
                                   "A surface's configured cheap-tier win-or-tie target (0..1, for alerts)",
                                   ("surface",), registry=r)

    # ---- span processor -------------------------------------------------------------------------

    def on_start(self, span, parent_context=None) -> None:
        attrs = span.attributes or {}
        if telemetry.ATTEMPT in attrs:
            self.inflight.labels(attrs.get(telemetry.PROVIDER, "?"), attrs.get(telemetry.MODEL_ID, "?")).inc()

    def on_end(self, span: ReadableSpan) -> None:
        attrs = span.attributes or {}
        seconds = (span.end_time - span.start_time) / 1e9 if span.end_time and span.start_time else 0.0
        if telemetry.ATTEMPT in attrs:
            self._attempt(attrs, seconds)
        elif attrs.get(telemetry.REQUEST):
            self._request(attrs, seconds)

    def _attempt(self, attrs, seconds: float) -> None:
        provider, model = attrs.get(telemetry.PROVIDER, "?"), attrs.get(telemetry.MODEL_ID, "?")
        self.inflight.labels(provider, model).dec()
        self.attempts.labels(provider, model, attrs.get("error.type", "ok")).inc()
        if "error.type" not in attrs:
            self.attempt_duration.labels(provider, model).observe(seconds)
            ttft = attrs.get(telemetry.TTFT_MS)
            if ttft is not None:
                self.ttft.labels(provider, model).observe(float(ttft) / 1000)

    def label(self, kind: str, value) -> str:
        """``value`` if the routing config names it (a ``kind`` of _NAMED), else ``other``; ``none`` if unset."""
        if value is None or value == "":
            return NONE
        return value if value in self.names[kind] else OTHER

    def _request(self, attrs, seconds: float) -> None:
        provider = attrs.get(telemetry.PROVIDER, "none")
        model = attrs.get(telemetry.MODEL_ID, "none")
        named = tuple(self.label(kind, attrs.get(attr)) for kind, (attr, _) in _NAMED.items())
        status = str(attrs.get("http.response.status_code", 0))
        outcome = str(attrs.get(telemetry.OUTCOME, "ok" if status.startswith("2") else "error"))
        self.requests.labels(provider, model, *named, status, outcome).inc()
        self.duration.labels(provider, model, *named).observe(seconds)
        if outcome != "cancelled" and ("error.type" in attrs or not status.startswith("2")):
            self.errors.labels(provider, model, str(attrs.get("error.type", status)), *named).inc()
        for direction, key in (("input", "gen_ai.usage.input_tokens"), ("output", "gen_ai.usage.output_tokens")):
            if key in attrs:
                self.tokens.labels(provider, model, direction).inc(int(attrs[key]))
        cost = attrs.get(telemetry.COST_USD)
        if cost:
            self.cost.labels(provider, model, *named).inc(float(cost))
        if int(attrs.get("llm.attempts", 1) or 1) > 1 and status.startswith("2"):
            self.fallbacks.labels(provider, model).inc()
        extra = attrs.get(telemetry.HEDGE_EXTRA)
        if extra:
            self.hedges.labels("started").inc(int(extra))
            if attrs.get(telemetry.HEDGE_WON):
                self.hedges.labels("won").inc()
            self.hedge_wasted.inc(float(attrs.get(telemetry.HEDGE_WASTED_USD, 0.0)))

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    # ---- state that is not a span ---------------------------------------------------------------

    def observe_health(self, snapshot: dict) -> None:
        """Copy ejection state from the health tracker (called at scrape time)."""
        for model, summary in snapshot.get("models", {}).items():
            self.ejections.labels(model).set(1 if summary["ejected"] else 0)

    def observe_config(self, config) -> None:
        """Per-model latency targets and the names labels may take, from the routing config (at start
        and on every reload)."""
        self.names = {kind: frozenset(getattr(config, section, {}) or {}) for kind, (_, section) in _NAMED.items()}
        targets: dict[str, int] = {}
        for rclass in config.classes.values():
            for tier in rclass.tiers:
                for model in tier.models:
                    targets[model.id] = min(targets.get(model.id, tier.target_ms), tier.target_ms)
        self.latency_target.clear()
        for model_id, ms in targets.items():
            self.latency_target.labels(model_id).set(ms / 1000)
        self.shadow_target.clear()
        for surface, target in (config.shadow.targets.items() if getattr(config, "shadow", None) else ()):
            self.shadow_target.labels(surface).set(target)

    def shadow_verdict(self, route_class: str | None, surface: str | None, model: str, verdict: str) -> None:
        """One shadow evaluation's verdict (model ids come from the config: bounded)."""
        self.shadow_verdicts.labels(self.label("class", route_class), self.label("surface", surface), model,
                                    verdict).inc()

    def observe_budgets(self, report) -> None:
        """Budget gauges from (budget, USD left) pairs (called at scrape time)."""
        for budget, left in report:
            labels = (budget.scope, f"{budget.name}:{budget.period}")
            self.budget_remaining.labels(*labels).set(left)
            self.budget_fraction.labels(*labels).set(left / budget.limit_usd if budget.limit_usd else 0.0)

    def ejected(self, scope: str, name: str, reason: str) -> None:
        """The health tracker's ejection hook."""
        if scope == "model":
            self.ejections_total.labels(name).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
