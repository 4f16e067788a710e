"""Which models a request may go to, in order, and why: the plan.

Pure: ``decide`` takes the config, the request body and headers, a health view,
a budget view, the clock and the classifier's answer, and returns a ``Plan``
(or raises a ``GatewayError``). No I/O, so every rule is tested in microseconds
and ``extproc explain`` replays decisions offline with the same code.

The steps, in order:

1. Who is asking: the ``keys.Caller`` its gateway key named (authenticated
   before, by ``keys.authenticate``; no header names a tenant). Workload:
   ``x-llm-workload``, else the caller's (its tenant's, else
   ``routing.default_workload``). Surface: ``x-llm-surface``, else the
   caller's. An unknown name is a 400; a name the caller's tenant may not
   choose (``tenants.NAME.workloads`` / ``surfaces``) is a 403, so a header
   never lifts a tenant's surface, workload or model limits.
2. Pinned or routed. A concrete model id is pinned: it is the first and, unless
   ``routing.pinned_fallback`` is true, the only candidate. It is held to its
   configured capabilities (a 422 naming the missing one) and its context window
   (OpenAI's 400 ``context_length_exceeded``, counting the client's own max_tokens
   only); its own API decides the parameters it can serve (the translator raises a
   422); the caller's surface (allow/deny, quality floor), cost caps and budget
   still apply. With
   ``pinned_fallback: true`` the fallbacks are the request's routing class
   candidates that pass every filter and are of at least the pinned model's
   quality tier, so a fallback never downgrades; an ejected or saturated pinned
   model is then skipped. An alias (``auto``) or a class name routes.
3. The class: a class named as the model, else the classifier's class name if
   it is a routing class, else the score band (the class with the greatest
   ``min_score`` <= score; with no ``min_score`` anywhere, the classes in file
   order split [0, 1] evenly), else ``routing.default_class``. A surface's
   ``premium_threshold`` first remakes the simple/reasoning choice from the score
   for every request whose class the score decides (``at_threshold``).
4. Filters, per candidate, first failure wins: endpoint not served, denied by
   the surface, capability missing (tools, vision, files, audio, json, streaming as the
   request needs), context too small (estimated prompt + max output tokens, the
   latter clamped to the model's output limit as its translator clamps it),
   below the quality floor (max of class and surface floors), over the cost
   cap per 1K tokens or per request (the tightest of class, workload or its
   active time window, surface and tenant; the reply priced at max_tokens or
   default_output_tokens clamped to the model's output limit), over budget, paused by the
   provider's retry-after (never tried, not even as a last resort), ejected,
   saturated. Then, in attempt order, the provider's translator must be able to
   serve this exact request (``providers.unable``: parameters, ranges,
   features), so a fallback never lands where the request would be refused.
5. Order: within a tier, ``prefer: latency`` (interactive) sorts by current
   p95 in 100 ms buckets (a model without data in the health window counts as
   fast as its tier's fastest peer with data, or as the tier's target when
   none has any), then quality (higher first), then estimated cost; ``prefer: cost``
   (batch) sorts by estimated cost, then quality. Ties keep file order. The
   attempts cascade through the tiers: the first of each tier (primary,
   secondary, tertiary), then the other candidates tier by tier; for
   interactive work, models whose p95 exceeds their tier's target go last
   (demoted).
   At most ``MAX_ATTEMPTS`` candidates (Envoy's route has three try headers).
   If every candidate that passed the other filters is ejected or saturated,
   they are tried anyway (saturated first): a stale health view must not turn
   into a certain failure.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Protocol

from . import affinity, tokens
from .config import TIER_TARGET_MS, Config, Model, RoutingClass, Tier
from .cost import UNLIMITED, BudgetView, input_tokens, output_tokens, prompt_tokens
from .errors import GatewayError, InvalidRequest, ModelNotFound, QuotaExceeded, RateLimited, UnsupportedFeature
from .keys import Caller, PermissionDenied, anonymous
from .providers import (Target, capability_view, default_output, embedding_request_limit, output_limit,
                        prompt_cache_floor, unable)

MAX_ATTEMPTS = 3
# An embeddings estimate this close to a limit (or past it) is counted before it may refuse: the
# estimate (cost.text_units: chars/4 on ASCII) runs about 12% high on English prose (272,844 real
# tokens estimated 306,944 against OpenAI's 300,000), so a refusal rests on the tokenizer's count,
# and a request well under every limit spends no tokenizer time. The estimate can also run low
# (base64, some scripts by up to ~25%): below this, the provider decides.
COUNT_NEAR = 0.75
LATENCY_BUCKET_MS = 100
WORKLOAD_HEADER = "x-llm-workload"
SURFACE_HEADER = "x-llm-surface"
PINNED_TIMEOUT_MS = TIER_TARGET_MS[-1]   # the default of routing.pinned_target_ms


@dataclass(frozen=True, slots=True)
class ModelHealth:
    ejected: bool = False
    saturated: bool = False
    p95_ms: float | None = None
    error_rate: float = 0.0
    inflight: int = 0
    retry_in_s: float | None = None   # the provider asked for no requests for this long (retry-after)


HEALTHY = ModelHealth()


class HealthView(Protocol):
    """The live health snapshot the policy reads (the tracker lives in extproc.health)."""

    def model_health(self, model_id: str) -> ModelHealth: ...


class _NoHealth:
    def model_health(self, model_id: str) -> ModelHealth:
        return HEALTHY


NO_HEALTH: HealthView = _NoHealth()


class Candidate(NamedTuple):
    model: Model
    tier: str
    target_ms: int       # the tier's latency target (attempts are cut at a multiple of it)
    reason: str
    cost: float          # estimated USD for this request


class Dropped(NamedTuple):
    model: str
    tier: str | None
    reason: str


@dataclass(frozen=True)
class Plan:
    models: tuple[Model, ...]   # attempt N goes to models[N-1]
    reason: str                 # why, in one line, for the response headers and spans
    candidates: tuple[Candidate, ...] = ()
    dropped: tuple[Dropped, ...] = ()
    route_class: str | None = None
    score: float | None = None
    workload: str | None = None
    surface: str | None = None
    tenant: str | None = None
    prompt_tokens: int = 0
    output_tokens: int = 0
    pinned: bool = False
    deadline_ms: int | None = None   # the class's or workload's cap on a JSON answer (the tighter one)
    hedge: int = 0                   # extra attempts that may race the first (interactive work only)
    prefer: str = "latency"          # the workload's preference now (a time window may change it)
    affinity: str | None = None      # what conversation affinity did (extproc.affinity), None without a pin

    def headers(self) -> dict[str, str]:
        """Response headers that explain the decision (ASCII, one line each)."""
        out = {"x-llm-route": self.reason, "x-llm-class": self.route_class or "none"}
        if self.score is not None:
            out["x-llm-score"] = f"{self.score:.3f}"
        if self.workload:
            out["x-llm-workload"] = self.workload
        if self.surface:
            out["x-llm-surface"] = self.surface
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason, "class": self.route_class, "score": self.score, "pinned": self.pinned,
            "workload": self.workload, "surface": self.surface, "tenant": self.tenant,
            "estimated_tokens": {"prompt": self.prompt_tokens, "output": self.output_tokens},
            "deadline_ms": self.deadline_ms, "hedge": self.hedge, "affinity": self.affinity,
            "candidates": [{"model": c.model.id, "provider": c.model.provider.name, "tier": c.tier,
                            "target_ms": c.target_ms, "estimated_cost": round(c.cost, 8), "reason": c.reason}
                           for c in self.candidates],
            "dropped": [{"model": d.model, "tier": d.tier, "reason": d.reason} for d in self.dropped],
        }


# ---- the decision ---------------------------------------------------------------------------------

def decide(config: Config, body: dict, endpoint: str, headers: dict[str, str], health: HealthView = NO_HEALTH,
           budgets: BudgetView = UNLIMITED, now: float = 0.0, classification: Any = None,
           caller: Caller | None = None, capability: Callable[[Model], str | None] | None = None,
           pin: Any = None, cache_asked: bool = False, input_counts: list[int] | None = None) -> Plan:
    """The plan for one request from ``caller`` (None: the anonymous caller of ``auth: optional``);
    raises ``GatewayError`` (400, 403, 404, 422, 429) when there is none.

    ``capability(model)`` says why a model's provider cannot serve this exact request, or None, or
    ``ASK_PLANNER`` for the planner's own check (``providers.unable`` on the request's capability
    view, cached), which is also the default. The gateway passes one that translates attempt 1 and
    keeps the translation, so it is not translated twice. ``pin``: the conversation's
    ``affinity.Pin``; ``cache_asked``: the client's request marks a prompt cache itself (Anthropic
    ``cache_control`` on a ``/v1/messages`` request), so Claude prices the pin's prefix as a cache read.
    ``input_counts``: an embeddings request's ``tokens.input_counts`` (a chat request's
    ``[tokens.prompt_tokens]``), when the shell counted them off its event loop (``counts_needed``);
    else they are counted here if an estimate nears a limit."""
    requested = body.get("model")
    tenant, workload, surface = who(config, headers, caller)
    classification = _calibrated(config, classification, surface)
    score = getattr(classification, "score", None)
    if requested in config.models:
        pinned = config.models[requested]
        if endpoint not in pinned.endpoints:
            raise UnsupportedFeature(f"model '{pinned.id}' does not serve /v1/{_PATHS[endpoint]}", param="model")
    elif requested in config.aliases or requested in config.classes:
        pinned = None
    else:
        raise ModelNotFound(f"The model '{requested}' does not exist or you do not have access to it.", param="model")

    if config.classes:
        if requested in config.classes:
            rclass = config.classes[requested]
        else:
            rclass = _class_for(config, classification)
    elif pinned is None or config.pinned_fallback:
        if config.default_model is None:
            if pinned is None:
                raise InvalidRequest(f"model '{requested}' is a routing alias but no routing.default_model "
                                     "is configured", param="model")
            rclass = None
        else:
            rclass = RoutingClass("default", (Tier("primary", (config.models[config.default_model],),
                                                   TIER_TARGET_MS[0]),))
    else:
        rclass = None

    ctx = _Context(config, body, endpoint, tenant, workload, surface, rclass, health, budgets, now)
    ctx.counts = input_counts
    if capability is not None:
        ctx.capability = capability
    class_name = rclass.name if rclass is not None and config.classes else None
    deadline = _min(config.workloads[workload].deadline_ms, rclass.deadline_ms if rclass is not None else None)
    w = config.workloads[workload]
    hedge = 0
    if ctx.prefer == "latency":   # a time window may turn a workload cost-first: no hedging then
        hedge = w.hedge_extra or (1 if rclass is not None and rclass.hedge else 0)
    common = dict(route_class=class_name, score=score, workload=workload, surface=surface, tenant=tenant,
                  prompt_tokens=ctx.tokens_in, output_tokens=ctx.tokens_out,
                  deadline_ms=int(deadline) if deadline is not None else None, hedge=hedge, prefer=ctx.prefer)

    if pinned is not None:
        return _pinned(ctx, config, pinned, rclass, common)

    healthy, unhealthy = ctx.walk(rclass.tiers, quality_at_least=0, skip=None)
    # affinity reorders the candidates that passed every filter but capability, which _choose asks next
    fresh = healthy
    healthy, common["affinity"] = affinity.stick(pin, healthy, class_name, ctx.tokens_in, config.affinity_keep,
                                                  lambda m: prompt_cache_floor(m.target(), cache_asked),
                                                  ctx.left_out() if pin is not None else None)
    chosen = _choose(ctx, healthy, unhealthy)
    if not chosen:
        raise ctx.nothing_fits(rclass)
    common["output_tokens"] = ctx.expected_output(chosen)
    if pin is not None:
        common["affinity"] = affinity.settle(pin, common["affinity"], fresh, chosen, ctx.left_out())
    models = tuple(c.model for c in chosen)
    first = chosen[0]
    if config.classes:
        origin = (f"class '{rclass.name}' named by the client" if requested in config.classes
                  else f"alias '{requested}' -> class '{rclass.name}'")
        score_txt = f" (score {score:.2f})" if score is not None else ""
        reason = f"{origin}{score_txt}, {workload}: {first.model.id} ({first.tier})"
        if affinity.decided(common["affinity"]):   # only where the pin changed the choice (tryout 9 L6)
            reason += ", conversation affinity"
    else:
        reason = f"alias '{requested}' -> default model"
    return Plan(models, reason, tuple(chosen), tuple(ctx.dropped), **common)


def counts_needed(config: Config, body: dict, endpoint: str = "embeddings") -> bool:
    """Whether planning this request may count it with the tokenizer. Chat: the prompt's estimate within
    ``COUNT_NEAR`` of the smallest window of a chat model. Embeddings: an input's estimate within it of
    the smallest window of a model serving embeddings, or the sum within it of the smallest per-request
    cap. The shell counts such bodies off its event loop."""
    if endpoint == "chat":
        # as _Context._prompt_near decides: the prompt plus at least the reply's budget
        windows = [m.context_window for m in config.models.values() if "chat" in m.endpoints]
        need = prompt_tokens(body) + output_tokens(body, config.default_output_tokens)
        return bool(windows) and need >= COUNT_NEAR * min(windows)
    models = [m for m in config.models.values() if "embeddings" in m.endpoints]
    inputs = input_tokens(body)
    windows = [m.context_window for m in models]
    caps = [cap for cap in (embedding_request_limit(m.target()) for m in models) if cap is not None]
    return bool(models) and (max(inputs, default=0) >= COUNT_NEAR * min(windows)
                             or (bool(caps) and sum(inputs) >= COUNT_NEAR * min(caps)))


def _pinned(ctx: "_Context", config: Config, pinned: Model, rclass: RoutingClass | None, common: dict) -> Plan:
    fallback = config.pinned_fallback and rclass is not None
    # A pinned model is held to its configured capabilities like a planned one (a vLLM model without
    # vision got image parts its server refuses); its context window too, as its API would answer.
    why = ctx.check(pinned, context=False, floor=ctx.surface_floor, class_caps=False)
    if why is None:
        why = ctx.overflows(pinned, explicit_only=True)
        if why is not None and not fallback:
            raise ctx.context_exceeded(pinned)
    first: list[Candidate] = []
    last_resort: list[Candidate] = []
    if why is None:
        h = ctx.health.model_health(pinned.id)
        why = ctx.paused(pinned, h)
    if why is None and fallback:
        # With fallbacks, a pinned model that cannot serve the request gives way like any other candidate;
        # alone, its translator's own 422 (raised when attempt 1 is translated) says exactly what to change.
        why = ctx.incapable(pinned)
    if why is None:
        cand = Candidate(pinned, "pinned", config.pinned_target_ms, "pinned: named by the client", ctx.cost(pinned))
        if fallback and (h.ejected or h.saturated):
            ctx.dropped.append(Dropped(pinned.id, "pinned", "unhealthy (ejected)" if h.ejected else "saturated"))
            last_resort.append(cand)
        else:
            first.append(cand)
    else:
        ctx.dropped.append(Dropped(pinned.id, "pinned", why))
        if not fallback:
            raise ctx.nothing_fits(None, pinned=pinned)
    chosen = first
    if fallback:
        healthy, unhealthy = ctx.walk(rclass.tiers, quality_at_least=pinned.quality, skip=pinned.id)
        chosen = _choose(ctx, first + healthy, last_resort + unhealthy)
        if not chosen:
            raise ctx.nothing_fits(rclass, pinned=pinned)
    common["output_tokens"] = ctx.expected_output(chosen)
    reason = "pinned: model named by the client"
    if fallback:
        reason += f", fallback within class '{rclass.name}'"
    return Plan(tuple(c.model for c in chosen), reason, tuple(chosen), tuple(ctx.dropped), pinned=True, **common)


def _choose(ctx: "_Context", healthy: list[Candidate], unhealthy: list[Candidate]) -> list[Candidate]:
    chosen = ctx.capable(healthy)
    if not chosen and unhealthy:
        # Every capable candidate is ejected or saturated: try them anyway, saturated ones first.
        unhealthy.sort(key=lambda c: c.reason.startswith("last resort: unhealthy"))
        chosen = ctx.capable(unhealthy)
        ids = {c.model.id for c in chosen}
        ctx.dropped[:] = [d for d in ctx.dropped if d.model not in ids]
    return chosen


def refusal(config: Config, model: Model, headers: dict[str, str], caller: Caller | None, now: float = 0.0
            ) -> str | None:
    """Why ``caller`` may use ``model`` for no request at all, or None (``/v1/models`` lists it).

    The caller's own rules, as a pinned request meets them (``_Context.caller_refuses``: the surface's
    allow/deny list and quality floor, the workload's (at ``now``, Unix seconds), surface's and
    tenant's cost caps), applied to the request they favour most: one token at the model's cheaper
    price (input or output), so a per-1K cap the cheaper price already passes refuses the model for
    every request. What depends on the request (capabilities, context size, a budget, a cap that a
    prompt-heavy request passes and a reply-heavy one does not) never takes a model off the list.
    Raises what ``who`` raises for a surface or workload header the caller may not choose."""
    tenant, workload, surface = who(config, headers, caller)
    endpoint = "chat" if "chat" in model.endpoints else model.endpoints[0]
    ctx = _Context(config, {}, endpoint, tenant, workload, surface, None, NO_HEALTH, UNLIMITED, now)
    ctx.tokens_in, ctx.tokens_out = 1, 0
    price = min(model.price.input, model.price.output) if endpoint == "chat" else model.price.input
    return ctx.caller_refuses(model, cost=price / 1_000_000)


def who(config: Config, headers: dict[str, str], caller: Caller | None) -> tuple[str | None, str, str | None]:
    """(tenant, workload, surface) of a request: the caller's, or what its headers chose among what the
    caller may choose. Raises InvalidRequest (400) for an unknown name, PermissionDenied (403) for a
    name outside the caller's tenant's lists."""
    caller = caller or anonymous(config)
    asked = headers.get(WORKLOAD_HEADER)
    workload = asked or caller.workload or config.default_workload
    if workload not in config.workloads:
        raise InvalidRequest(f"unknown workload '{workload}' in {WORKLOAD_HEADER} "
                             f"(configured: {', '.join(sorted(config.workloads))})", param=WORKLOAD_HEADER,
                             code="invalid_value")
    if caller.workloads is not None and workload not in caller.workloads:
        raise PermissionDenied(f"tenant '{caller.tenant}' may not choose workload '{workload}' "
                               f"(its workloads: {', '.join(sorted(caller.workloads))})", param=WORKLOAD_HEADER)
    asked = headers.get(SURFACE_HEADER)
    surface = asked or caller.surface
    if surface is not None and surface not in config.surfaces:
        raise InvalidRequest(f"unknown surface '{surface}' in {SURFACE_HEADER} "
                             f"(configured: {', '.join(sorted(config.surfaces)) or 'none'})", param=SURFACE_HEADER,
                             code="invalid_value")
    if caller.surfaces is not None and surface not in caller.surfaces:
        allowed = ", ".join(sorted(s for s in caller.surfaces if s)) or "none"
        raise PermissionDenied(f"tenant '{caller.tenant}' may not choose surface '{surface}' "
                               f"(its surfaces: {allowed})", param=SURFACE_HEADER)
    return caller.tenant, workload, surface


def _calibrated(config: Config, classification: Any, surface: str | None) -> Any:
    """The classification with the surface's own premium_threshold applied (calibration, see
    extproc.calibration): ``at_threshold`` at the surface's cut, or unchanged without one."""
    s = config.surfaces.get(surface) if surface else None
    t = getattr(s, "premium_threshold", None)
    if t is None:
        return classification
    return at_threshold(config, classification, t)


def threshold_moves(config: Config, classification: Any) -> bool:
    """Whether a premium_threshold decides this request's class: the score chooses the class of every
    request the classifier names simple or reasoning, and of every other kind (code, tool_use,
    long_context, vision, structured_output) that has no routing class of its own, whose class the score
    band would otherwise give; a kind the config gives a class of its own keeps it. Needs both the
    simple and the reasoning class names (``classifier.classes``) to be routing classes."""
    if getattr(classification, "score", None) is None or not dataclasses.is_dataclass(classification):
        return False
    names = getattr(config.classifier, "classes", None) or {}
    simple, reasoning = names.get("simple", "simple_queries"), names.get("reasoning", "complex_reasoning")
    if simple not in config.classes or reasoning not in config.classes:
        return False
    return classification.name in (simple, reasoning) or classification.name not in config.classes


def at_threshold(config: Config, classification: Any, t: float) -> Any:
    """The classification with its class remade from the score at cut ``t`` (0..1): the reasoning class
    when score >= t, else the simple class, for a request ``threshold_moves``; others unchanged."""
    if not threshold_moves(config, classification):
        return classification
    names = getattr(config.classifier, "classes", None) or {}
    simple, reasoning = names.get("simple", "simple_queries"), names.get("reasoning", "complex_reasoning")
    name = reasoning if classification.score >= t else simple
    return classification if name == classification.name else dataclasses.replace(classification, name=name)


def _class_for(config: Config, classification: Any) -> RoutingClass:
    if classification is not None:
        named = config.classes.get(getattr(classification, "name", None))
        if named is not None:
            return named
        score = getattr(classification, "score", None)
        if score is not None:
            banded = [c for c in config.classes.values() if c.min_score is not None]
            if banded:
                fits = [c for c in banded if c.min_score <= score]
                if fits:
                    return max(fits, key=lambda c: c.min_score)
            else:
                ordered = list(config.classes.values())
                return ordered[min(len(ordered) - 1, max(0, int(score * len(ordered))))]
    return config.classes[config.default_class]


def _min(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


# A capability hook's answer meaning "ask the planner's own check" (the gateway's hook, after attempt 1).
ASK_PLANNER = "\x00ask the planner"

# (id(model), capability view as JSON) -> (model, why it cannot serve, or None); see _Context._unable_on_view
_CAPABILITY_CACHE: dict[tuple[int, str], tuple[Model, str | None]] = {}
_CAPABILITY_CACHE_MAX = 4096


class _Context:
    """Everything the filters need about one request, computed once."""

    def __init__(self, config: Config, body: dict, endpoint: str, tenant: str | None, workload: str,
                 surface: str | None, rclass: RoutingClass | None, health: HealthView, budgets: BudgetView,
                 now: float):
        self.endpoint = endpoint
        self.health = health
        self.dropped: list[Dropped] = []
        self.kinds: set[str] = set()
        self.tokens_in = prompt_tokens(body)
        # embeddings: each input's estimate, since a model's window applies to each input (cost.input_tokens)
        self.inputs = input_tokens(body) if endpoint == "embeddings" else None
        # counted with the tokenizer once an estimate nears a limit: embeddings, tokens.input_counts; chat,
        # [tokens.prompt_tokens] (one prompt)
        self.counts: list[int] | None = None
        self.tokens_out = output_tokens(body, config.default_output_tokens) if endpoint == "chat" else 0
        self.explicit_out = output_tokens(body, 0) if endpoint == "chat" else 0   # 0: the client set no cap
        self.needs = _needs(body) if endpoint == "chat" else frozenset()
        w = config.workloads[workload]
        prefer, w_cap = w.prefer, w.max_cost_per_1k
        for window in w.windows:
            if window.contains(now):
                prefer = window.prefer or prefer
                w_cap = _min(w_cap, window.max_cost_per_1k)
                break
        self.prefer = prefer
        s = config.surfaces.get(surface) if surface else None
        t = config.tenants.get(tenant) if tenant else None
        self.surface = s
        self.surface_floor = s.quality_floor if s else 1
        self.class_floor = rclass.quality_floor if rclass else 1
        caller_1k = _min(w_cap, s.max_cost_per_1k if s else None, t.max_cost_per_1k if t else None)
        caller_req = _min(w.max_cost_per_request, s.max_cost_per_request if s else None,
                          t.max_cost_per_request if t else None)
        self.caller_caps = (caller_1k, caller_req)
        self.class_caps = (_min(caller_1k, rclass.max_cost_per_1k if rclass else None),
                           _min(caller_req, rclass.max_cost_per_request if rclass else None))
        self.budget = budgets.remaining(tenant, surface)
        self.surface_name = surface
        self.body = body
        self.retry_in_s: float | None = None   # the soonest a paused candidate takes requests again
        self.least_need: int | None = None     # the smallest prompt + reply a model's window was too small for
        self._unable: dict[str, str | None] = {}
        self.capability: Callable[[Model], str | None] = self._unable_on_view
        self._view: tuple[dict, str] | None = None

    def _unable_on_view(self, m: Model) -> str | None:
        """``providers.unable`` asked on the request's capability view, remembered per (model, view).

        The view (message text cut to outlines, every other field as sent) answers every capability
        question as the body does (providers.capability_view), and requests of one product share it
        (same fields, roles, parts and parameters), so most answers come from the cache instead of a
        translation (7-14 us each for a 2 KB request)."""
        if self._view is None:
            view = capability_view(self.body) if self.endpoint == "chat" else self.body
            self._view = (view, f"{self.endpoint}\x00{json.dumps(view, ensure_ascii=False)}")
        view, key = self._view
        hit = _CAPABILITY_CACHE.get((id(m), key))
        if hit is not None and hit[0] is m:     # the same Model object: a reloaded config has new ones
            return hit[1]
        why = unable(m.target(), view, self.endpoint)
        if len(_CAPABILITY_CACHE) >= _CAPABILITY_CACHE_MAX:
            _CAPABILITY_CACHE.clear()           # bounded; the shapes in use come back at once
        _CAPABILITY_CACHE[(id(m), key)] = (m, why)
        return why

    def paused(self, m: Model, h: ModelHealth) -> str | None:
        """Why ``m`` is out while its provider's retry-after runs, or None."""
        if h.retry_in_s is None:
            return None
        self.retry_in_s = h.retry_in_s if self.retry_in_s is None else min(self.retry_in_s, h.retry_in_s)
        return self._kind("paused", f"rate limited by the provider: retry after {h.retry_in_s:.1f} s")

    def incapable(self, m: Model) -> str | None:
        """Why ``m``'s provider API cannot serve this exact request (its translator says), or None."""
        if m.id not in self._unable:
            try:
                why = self.capability(m)
                if why is ASK_PLANNER:
                    why = self._unable_on_view(m)
                self._unable[m.id] = why
            except InvalidRequest as exc:   # a form this provider's API refuses (e.g. an image URL kind)
                self._unable[m.id] = exc.message
        why = self._unable[m.id]
        return None if why is None else self._kind("unable", f"cannot serve this request: {why}")

    def left_out(self) -> dict[str, str]:
        """Why each model dropped so far was left out of the plan (model id -> reason), for affinity's note."""
        return {d.model: d.reason for d in self.dropped}

    def capable(self, ordered: list[Candidate]) -> list[Candidate]:
        """The first MAX_ATTEMPTS candidates, in order, whose provider can serve the request.

        Asked in attempt order and only until the plan is full: a translation costs more than
        the other filters together, and candidates past the limit would not be tried anyway."""
        chosen: list[Candidate] = []
        for i, c in enumerate(ordered):
            if len(chosen) == MAX_ATTEMPTS:
                self.dropped.extend(Dropped(x.model.id, x.tier, f"not needed: attempt limit {MAX_ATTEMPTS}")
                                    for x in ordered[i:])
                break
            why = self.incapable(c.model)
            if why is None:
                chosen.append(c)
            else:
                self.dropped.append(Dropped(c.model.id, c.tier, why))
        return chosen

    def output_of(self, m: Model) -> int:
        """The reply tokens ``m`` is expected to bill: the client's cap (else the config's
        default_output_tokens) clamped to ``m``'s output limit, as its translator clamps max_tokens
        (a model never writes more). Cost caps, budgets and rate limits count this, not the raw cap."""
        limit, _default = _output_rules(m)
        return min(self.tokens_out, limit) if limit is not None else self.tokens_out

    def expected_output(self, chosen: list[Candidate]) -> int:
        """The reply tokens a plan reserves against rate limits: the most any of its attempts may bill."""
        return max((self.output_of(c.model) for c in chosen), default=self.tokens_out)

    def cost(self, m: Model) -> float:
        return (self.tokens_in * m.price.input + self.output_of(m) * m.price.output) / 1_000_000

    def caller_refuses(self, m: Model, cost: float | None = None) -> str | None:
        """Why the caller's own rules refuse ``m`` whatever the request, or None: the surface's
        allow/deny list and quality floor, the caller's cost caps and budget; not the class's rules,
        nor capabilities or context, which depend on the request (a pinned request is checked for
        those too, in ``_pinned``)."""
        return self.check(m, capabilities=False, context=False, floor=self.surface_floor, class_caps=False,
                          cost=cost)

    def check(self, m: Model, *, capabilities: bool = True, context: bool = True, floor: int = 1,
              class_caps: bool = True, cost: float | None = None) -> str | None:
        """Why ``m`` cannot take this request, or None. Records the kind of failure for the 422 message."""
        if self.endpoint not in m.endpoints:
            return self._kind("endpoint", f"does not serve /v1/{_PATHS[self.endpoint]}")
        s = self.surface
        if s is not None and (m.id in s.deny or (s.allow is not None and m.id not in s.allow)):
            return self._kind("deny", f"denied by surface '{s.name}'")
        if capabilities and self.needs and not self.needs <= m.capabilities:
            return self._kind("capability", f"capability missing: {', '.join(sorted(self.needs - m.capabilities))}")
        if context:
            why = self.overflows(m)
            if why is not None:
                return why
        if m.quality < floor:
            return self._kind("floor", f"below quality floor {floor} (quality {m.quality})")
        if cost is None:
            cost = self.cost(m)
        cap_1k, cap_req = self.class_caps if class_caps else self.caller_caps
        if cap_1k is not None:
            total = self.tokens_in + self.output_of(m)
            per_1k = cost * 1000 / total if total else 0.0
            if per_1k > cap_1k:
                return self._kind("cost_1k", f"over cost cap: ${per_1k:.6f}/1K > max_cost_per_1k {cap_1k:g}")
        if cap_req is not None and cost > cap_req:
            return self._kind("cost_req", f"over cost cap: ${cost:.6f} > max_cost_per_request {cap_req:g}")
        if self.budget is not None and cost > self.budget:
            return self._kind("budget", f"over budget: ${cost:.6f} > ${self.budget:.6f} remaining")
        return None

    def output_for(self, m: Model, *, explicit_only: bool = False) -> int:
        """The reply's token budget on ``m`` for its context window: the client's cap, else what its
        translator must send (Anthropic: ``max_tokens``), and for routing at least the default reply
        estimate; clamped to the model's output limit as its translator clamps it."""
        limit, default = _output_rules(m)
        out = self.explicit_out
        if not out:
            # No cap from the client: what the translator sends anyway (Anthropic's required max_tokens,
            # which Anthropic counts toward the window), and for routing at least the usual reply size.
            out = default if explicit_only else max(self.tokens_out, default)
        return min(out, limit) if limit is not None else out

    def overflows(self, m: Model, *, explicit_only: bool = False) -> str | None:
        """Why the estimated prompt plus the reply's budget cannot fit ``m``'s context window, or None.
        Embeddings: why an input does not fit the window, or the inputs together exceed the API's cap
        on one request (OpenAI: 300,000 tokens summed)."""
        if self.inputs is not None:
            at, largest = self._largest_input(m.context_window)
            if largest > m.context_window:
                return self._kind("context", f"context too small: input[{at}] has {largest} tokens (counted) "
                                             f"> {m.context_window}")
            cap = embedding_request_limit(m.target())
            total = self._inputs_total(cap) if cap is not None else 0
            if cap is not None and total > cap:
                return self._kind("context", f"request too large: {total} tokens (counted) summed over the "
                                             f"inputs > {cap} per request")
            return None
        out = self.output_for(m, explicit_only=explicit_only)
        prompt, counted = self._prompt_near(m.context_window, out)
        need = prompt + out
        if need <= m.context_window:
            return None
        self.least_need = need if self.least_need is None else min(self.least_need, need)
        return self._kind("context", f"context too small: {'' if counted else '~'}{need} tokens"
                                     f"{' (counted)' if counted else ''} > {m.context_window}")

    def context_exceeded(self, m: Model) -> InvalidRequest:
        """OpenAI's own answer to a prompt (plus max_tokens) over the model's window: 400
        ``context_length_exceeded`` on ``messages``, with its wording (the prompt as the tokenizer counts it
        near the window, else as estimated). Embeddings: the same code on the input that does not fit, or OpenAI's 400
        ``max_tokens_per_request`` when the inputs together exceed its per-request cap."""
        if self.inputs is not None:
            at, largest = self._largest_input(m.context_window)
            if largest > m.context_window:
                return InvalidRequest(f"This model's maximum context length is {m.context_window} tokens per input. "
                                      f"However, input[{at}] resulted in {largest} tokens. Please reduce the "
                                      "length of that input.", param=f"input[{at}]", code="context_length_exceeded")
            cap = embedding_request_limit(m.target()) or 0
            return InvalidRequest(f"Requested {self._inputs_total(cap)} tokens, max {cap} tokens per request. "
                                  "Please send fewer inputs per request.", param="input", code="max_tokens_per_request")
        out = self.output_for(m, explicit_only=True)
        prompt, _ = self._prompt_near(m.context_window, out)
        if out:
            text = (f"This model's maximum context length is {m.context_window} tokens. However, you requested "
                    f"{prompt + out} tokens ({prompt} in the messages, {out} in the completion). "
                    "Please reduce the length of the messages or completion.")
        else:
            text = (f"This model's maximum context length is {m.context_window} tokens. However, your messages "
                    f"resulted in {prompt} tokens. Please reduce the length of the messages.")
        return InvalidRequest(text, param="messages", code="context_length_exceeded")

    def _counted(self) -> list[int]:
        if self.counts is None:
            self.counts = tokens.input_counts(self.body)
        return self.counts

    def _prompt_near(self, window: int, out: int) -> tuple[int, bool]:
        """(the chat prompt's tokens, whether counted): the estimate, or the tokenizer's count once the
        estimate plus ``out`` comes within ``COUNT_NEAR`` of ``window``. The estimate runs about 15% high on
        English prose, so near a window it alone would refuse prompts the API serves (a 104,000-token
        prompt estimated at 130,000 was a false 400 on a 128K model); only a count refuses there."""
        if self.tokens_in + out < COUNT_NEAR * window:
            return self.tokens_in, False
        if self.counts is None:
            self.counts = [tokens.prompt_tokens(self.body)]
        return self.counts[0], True

    def _largest_input(self, window: int) -> tuple[int, int]:
        """(index, tokens) of the largest embeddings input: its estimate, or its count once the
        estimate comes within ``COUNT_NEAR`` of ``window``."""
        inputs = self.inputs or []
        if max(inputs, default=0) >= COUNT_NEAR * window:
            inputs = self._counted()
        largest = max(inputs, default=0)
        return (inputs.index(largest) if inputs else 0), largest

    def _inputs_total(self, cap: int) -> int:
        """The embeddings inputs' tokens summed: the estimate, or the count once it nears ``cap``."""
        return sum(self._counted()) if self.tokens_in >= COUNT_NEAR * cap else self.tokens_in

    def _kind(self, kind: str, text: str) -> str:
        self.kinds.add(kind)
        return text

    def walk(self, tiers: tuple[Tier, ...], quality_at_least: int, skip: str | None
             ) -> tuple[list[Candidate], list[Candidate]]:
        """Healthy candidates in attempt order, and the ejected/saturated ones kept as a last resort.

        Attempt order cascades through the tiers: the best candidate of each tier first
        (primary, secondary, tertiary), then the other candidates of each tier, then, for
        latency-preferring work, the models whose p95 is above their tier's target (demoted)."""
        floor = max(self.surface_floor, self.class_floor, quality_at_least)
        by_latency = self.prefer == "latency"
        leaders: list[Candidate] = []
        others: list[Candidate] = []
        slow: list[Candidate] = []
        unhealthy: list[Candidate] = []
        for tier in tiers:
            ranked = []
            for m in tier.models:
                if m.id == skip:
                    continue
                cost = self.cost(m)
                why = self.check(m, floor=floor, cost=cost)
                if why is not None:
                    self.dropped.append(Dropped(m.id, tier.name, why))
                    continue
                h = self.health.model_health(m.id)
                why = self.paused(m, h)
                if why is not None:   # the provider said not before then: not even a last resort
                    self.dropped.append(Dropped(m.id, tier.name, why))
                    continue
                if h.ejected or h.saturated:
                    why = "unhealthy (ejected)" if h.ejected else "saturated"
                    self.dropped.append(Dropped(m.id, tier.name, why))
                    unhealthy.append(Candidate(m, tier.name, tier.target_ms, f"last resort: {why}", cost))
                    continue
                ranked.append((m, cost, h.p95_ms))
            # A model without data in the window counts as fast as the fastest peer of its tier with data
            # (as its tier's target when none has any), so quality and cost decide between them. Counted
            # as meeting the target, a model whose samples had expired (after an ejection, or while a peer
            # led) sorted after every peer with data and never got traffic back (tryout 7: helpdesk stayed
            # on a model 46% dearer after a brief fault).
            known = [p95 for _, _, p95 in ranked if p95 is not None]
            unknown_p95 = min(known, default=tier.target_ms)

            def key(r):
                m, cost, p95 = r
                p95 = unknown_p95 if p95 is None else p95
                return (int(p95 // LATENCY_BUCKET_MS), -m.quality, cost) if by_latency else (cost, -m.quality)
            ranked.sort(key=key)
            place = leaders
            for m, cost, p95 in ranked:
                if by_latency and p95 is not None and p95 > tier.target_ms:
                    slow.append(Candidate(m, tier.name, tier.target_ms,
                                          f"{tier.name} tier, demoted: p95 {p95:.0f} ms above the "
                                          f"{tier.target_ms} ms target, est ${cost:.6f}", cost))
                    continue
                if by_latency:
                    why = (f"{tier.name} tier, fastest first: p95 {'unknown' if p95 is None else f'{p95:.0f} ms'}, "
                           f"quality {m.quality}, est ${cost:.6f}")
                else:
                    why = f"{tier.name} tier, cheapest first: est ${cost:.6f}, quality {m.quality}"
                place.append(Candidate(m, tier.name, tier.target_ms, why, cost))
                place = others
        return leaders + others + slow, unhealthy

    def nothing_fits(self, rclass: RoutingClass | None, pinned: Model | None = None) -> GatewayError:
        parts = []
        kinds = self.kinds
        if "endpoint" in kinds:
            parts.append(f"serves /v1/{_PATHS[self.endpoint]}")
        if "capability" in kinds:
            parts.append(f"supports {', '.join(sorted(self.needs))}")
        if "context" in kinds:
            if self.inputs is not None:
                parts.append(f"fits inputs of up to ~{max(self.inputs, default=0)} tokens "
                             f"(~{self.tokens_in} in all)")
            else:
                parts.append(f"fits ~{self.least_need or self.tokens_in} tokens")
        if "deny" in kinds:
            parts.append(f"surface '{self.surface_name}' allow/deny list")
        if "floor" in kinds:
            if self.surface is not None and self.surface_floor >= self.class_floor:
                parts.append(f"surface '{self.surface_name}' quality floor {self.surface_floor}")
            else:
                parts.append(f"class '{rclass.name if rclass else '?'}' quality floor {self.class_floor}")
        cap_1k, cap_req = self.class_caps if rclass is not None else self.caller_caps
        if "cost_1k" in kinds:
            parts.append(f"max_cost_per_1k {cap_1k:g}")
        if "cost_req" in kinds:
            parts.append(f"max_cost_per_request {cap_req:g}")
        if "budget" in kinds:
            parts.append(f"the remaining budget ${self.budget:.6f}")
        if "unable" in kinds:
            parts.append("can serve these parameters")
        what = " and ".join(parts) or "the routing rules"
        where = f"pinned model '{pinned.id}'" if pinned is not None and rclass is None else (
            f"class '{rclass.name}'" if rclass is not None else "the request")
        detail = "; ".join(f"{d.model}: {d.reason}" for d in self.dropped[:6])
        more = f"; {len(self.dropped) - 6} more" if len(self.dropped) > 6 else ""
        message = f"no model satisfies {what} ({where}: {detail}{more})"
        if "budget" in kinds and "paused" not in kinds:
            # A candidate dropped "over budget" passed every other rule (the budget is checked last), so
            # the budget is why none is left, whatever dropped the others (a surface's floor took the
            # cheap tiers): a quota answer (429), not a request to change. The server serves it from
            # the money left, or names the spent budget and when it resets.
            return QuotaExceeded(f"the remaining budget ${self.budget:.6f} is below the estimate of every model "
                                 f"that meets the other rules ({where}: {detail}{more})")
        if "paused" in kinds:
            # A provider asked for a pause, and waiting for it is what would let the request through.
            wait = max(1, math.ceil(self.retry_in_s or 0))
            return RateLimited(f"rate limited by the provider; retry after {wait} s ({where}: {detail}{more})",
                               headers={"retry-after": str(wait)})
        return UnsupportedFeature(message, param="model", code="no_model_available")


def _output_rules(m: Model) -> tuple[int | None, int]:
    """(output limit, default reply budget) of ``m``'s translator (``providers.output_limit`` /
    ``default_output``), cached by what they read: the policy asks for every candidate of every request."""
    options = m.provider.options
    key = (m.provider.api, m.upstream_model, options.get("max_output_tokens"), options.get("default_max_tokens"))
    try:
        return _output_rules_of(*key)
    except TypeError:   # an unhashable option value: ask without the cache
        target = m.target()
        return output_limit(target), default_output(target)


@functools.lru_cache(maxsize=4096)
def _output_rules_of(api: str, upstream_model: str, max_output: Any, default_max: Any) -> tuple[int | None, int]:
    options = {k: v for k, v in (("max_output_tokens", max_output), ("default_max_tokens", default_max))
               if v is not None}
    target = Target(model=upstream_model, upstream_model=upstream_model, provider="", api=api, options=options)
    return output_limit(target), default_output(target)


def _needs(body: dict) -> frozenset[str]:
    needs = []
    if body.get("tools") or body.get("functions"):
        needs.append("tools")
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        needs.append("json")
    if body.get("stream") is True:
        needs.append("streaming")
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, list):
                kinds = {p.get("type") for p in content if isinstance(p, dict)}
                if "image_url" in kinds:
                    needs.append("vision")
                if "input_audio" in kinds:
                    needs.append("audio")
                if "file" in kinds:
                    needs.append("files")
    return frozenset(needs)


_PATHS = {"chat": "chat/completions", "embeddings": "embeddings"}
