"""The routing config: providers, the model catalog and routing defaults.

One YAML (or JSON) file, named by ``--config`` or ``LLM_GATEWAY_CONFIG``. It is
validated completely at load: an error names the file, the key path and what is
wrong, and nothing half-loaded is ever used.

    providers:                 # one per Envoy cluster
      NAME:
        api: openai | azure_openai | anthropic | gemini
        cluster: NAME          # Envoy cluster (default: the provider name)
        base_path: /v1         # path prefix on the provider (default per API)
        host: api.example.com  # :authority sent upstream (default: left as is)
        api_key_env: VAR       # the key comes from this environment variable,
        api_key_file: PATH     # or from this file (a mounted Secret); both optional
        options: {...}         # API specific, e.g. azure_openai api_version
        forward_headers: [anthropic-beta]   # client headers this provider receives (default: none);
                               # only names in FORWARDABLE_HEADERS (Envoy's edge allowlist has them)
    models:
      ID:                      # the id clients send as "model"
        provider: NAME
        upstream_model: NAME   # the provider's name (Azure: the deployment); default ID
        endpoints: [chat]      # chat and/or embeddings
        price: {input: 0.15, output: 0.60, cached_input: 0.075}   # USD per 1M tokens
        context_window: 128000
        capabilities: [tools, vision, json, streaming]
        quality: 1..5          # quality tier, higher is better
    routing:
      default_model: ID        # where an alias goes when there are no routing_rules
      aliases: [auto]          # model names that trigger routing
      default_class: NAME      # class when the classifier gives no usable answer (default: the first rule)
      default_workload: interactive
      default_surface: NAME    # default: none (no floor, no allow/deny list)
      pinned_fallback: false   # may a request naming a concrete model fall back? (see policy.py)
      default_output_tokens: 256   # reply size assumed for cost estimates when max_tokens is absent
      attempt_timeout_factor: 2    # an attempt is cut at this multiple of its tier's target latency
      pinned_target_ms: 10000      # a pinned model's target latency, whatever its tier (cut at 2x: 20 s)
      affinity_ttl_s: 600          # a conversation stays on the model that served it this long (0: off)
      affinity_keep: cost          # cost: only while the cached prefix makes it no dearer than a fresh choice;
                                   #   always: every turn that does not escalate (consistency first)
    routing_rules:             # routing classes; the classifier's class name (or score band) picks one
      NAME:                    # seed shape:
        primary: ID            #   one model id or a list, per tier
        secondary: ID
        tertiary: ID
        fallback: ID | [IDs] | CLASS   # models appended as a last tier, or another class's tiers
        # extended shape (instead of primary/secondary/tertiary):
        tiers:
          - {name: primary, models: [ID, ...], target_latency_ms: 1500}
        max_latency_ms: 5000   # the per-attempt target of tiers that set none (else 1500/3000/10000 by position)
        deadline_ms: 20000     # a JSON answer's overall deadline (default: the sum of its attempts' deadlines)
        hedge: true            # interactive work: start the next tier when the first has not answered by its target
        max_cost_per_1k: 0.002 # USD per 1K tokens, estimated before sending
        max_cost_per_request: 0.05
        quality_floor: 1
        min_score: 0.5         # score band: used when the classifier's name is not a class
    workloads:                 # built in: interactive (prefer latency), batch (prefer cost)
      NAME: {prefer: latency | cost, max_cost_per_1k: X, max_cost_per_request: X, deadline_ms: N,
             hedge: {max_extra_attempts: 1},   # or true; never with prefer: cost (batch)
             windows: [{tz: Europe/Berlin, days: [mon, tue], start: "09:00", end: "18:00",
                        prefer: cost, max_cost_per_1k: X}]}
    surfaces:
      NAME: {quality_floor: 4, allow: [IDs], deny: [IDs], max_cost_per_1k: X, max_cost_per_request: X}
    auth:                      # or the shorthand `auth: required`
      mode: required           # required: 401 without a gateway key; optional: no key = anonymous caller
      keys_file: PATH          # the key file (extproc.keys), e.g. a mounted Secret; $LLM_GATEWAY_KEYS_FILE wins
    tenants:                   # a caller is a tenant through its gateway key (never a header)
      NAME: {workload: NAME, surface: NAME,        # the tenant's defaults
             workloads: [NAMES], surfaces: [NAMES], # what else it may choose with x-llm-workload / x-llm-surface
             max_cost_per_1k: X, max_cost_per_request: X,
             rate_limit: {requests_per_minute: N, tokens_per_minute: N,   # the whole tenant, every replica
                          per_key: {requests_per_minute: N, tokens_per_minute: N}},   # each of its keys
             api_keys_sha256: [HEX]}   # keys inline (tests, small setups); the key file is the usual place
    classifier: {...}          # class names and thresholds, validated by extproc.classify
    limits:
      max_body_bytes: 4194304

A document without ``providers`` (the seed shape: only ``routing_rules``) gets
the built-in catalog (``BUILTIN_CATALOG``: providers openai and anthropic and
the well-known model ids gpt-3.5-turbo, gpt-4, claude-haiku, claude-opus), with
the document's own ``models`` merged over it. A document that names its
providers gets exactly its own catalog, nothing hidden.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .providers.base import Target

CONFIG_ENV = "LLM_GATEWAY_CONFIG"

DEFAULT_BASE_PATH = {"openai": "/v1", "azure_openai": "/openai", "anthropic": "/v1", "gemini": "/v1beta"}
ENDPOINTS = ("chat", "embeddings")
CAPABILITIES = ("tools", "vision", "json", "streaming", "files", "audio")
# What a model has when its entry lists none. Audio input is opt-in: few chat models take it.
# files: `file` content parts (PDF documents).
DEFAULT_CAPABILITIES = ("tools", "vision", "json", "streaming", "files")
TIER_NAMES = ("primary", "secondary", "tertiary")
TIER_TARGET_MS = (1500, 3000, 10000)   # default per-attempt target of tier 1, 2, 3 and later
BUILTIN_WORKLOADS = {"interactive": {"prefer": "latency"}, "batch": {"prefer": "cost"}}
PREFER = ("latency", "cost")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01][0-9]|2[0-4]):([0-5][0-9])$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

# Catalog for documents that bring no providers of their own (the seed shape).
# Prices in USD per 1M tokens, as the providers list them (model pages as stored on 2026-11-30).
# The seed's four ids are kept as names, since seed documents use them, and point at models the
# APIs still serve: GPT-3.5 Turbo and GPT-4 were shut down on 2026-10-23 [3P], Claude 3 Haiku and
# Claude 3 Opus retired in 2026; README "Model catalog" says what each name reaches.
BUILTIN_CATALOG: dict[str, Any] = {
    "providers": {
        "openai": {"api": "openai", "host": "api.openai.com", "api_key_env": "OPENAI_API_KEY"},
        "anthropic": {"api": "anthropic", "host": "api.anthropic.com", "api_key_env": "ANTHROPIC_API_KEY"},
    },
    "models": {
        # GPT-4o mini / GPT-4o: deprecated, shut down on 2027-01-14 [3P]; prices [3P] (OpenRouter, Vercel).
        "gpt-3.5-turbo": {"provider": "openai", "upstream_model": "gpt-4o-mini",
                          "price": {"input": 0.15, "output": 0.60, "cached_input": 0.075},
                          "context_window": 128000, "capabilities": ["tools", "json", "streaming"], "quality": 2},
        "gpt-4": {"provider": "openai", "upstream_model": "gpt-4o",
                  "price": {"input": 2.50, "output": 10.00, "cached_input": 1.25},
                  "context_window": 128000, "capabilities": ["tools", "streaming"], "quality": 4},
        # Anthropic models pages haiku-5-5 and opus-5-5 ("Latest"; Haiku 5.5's price is its band for
        # prompts up to 100K tokens, $0.50 / $2.50 above). Haiku 5.5 keeps the seed's claude-haiku
        # fallback under its $0.002 per 1K, which Haiku 4.5 ($1 / $5) is not.
        "claude-haiku": {"provider": "anthropic", "upstream_model": "claude-haiku-5-5",
                         "price": {"input": 0.10, "output": 0.50, "cached_input": 0.01}, "context_window": 1000000,
                         "capabilities": ["tools", "vision", "streaming", "files"], "quality": 2},
        "claude-opus": {"provider": "anthropic", "upstream_model": "claude-opus-5-5",
                        "price": {"input": 4.00, "output": 20.00, "cached_input": 0.20}, "context_window": 1000000,
                        "capabilities": ["tools", "vision", "streaming", "files"], "quality": 5},
    },
}


class ConfigError(ValueError):
    """An invalid routing config; the message names the file and the key path."""


def _prefixed(section: str, exc: ValueError) -> str:
    """'key: problem' from a section's own validator, as 'section.key: problem' (once)."""
    text = str(exc)
    return text if text.startswith(f"{section}.") or text.startswith(f"{section}:") else f"{section}.{text}"


@dataclass(frozen=True)
class Provider:
    name: str
    api: str
    cluster: str
    base_path: str
    host: str | None = None
    api_key_env: str | None = None
    api_key_file: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    max_inflight: int | None = None   # attempts in flight to this provider before it counts as saturated
    forward_headers: tuple[str, ...] = ()   # client headers passed on to this provider


# Client headers a provider may be configured to receive. Envoy's edge allowlist (envoy/envoy.yaml,
# llm_edge_allowlist) lets exactly these through besides the gateway's own; a test keeps them equal.
FORWARDABLE_HEADERS = ("anthropic-beta", "openai-beta")


@dataclass(frozen=True)
class Price:
    input: float = 0.0          # USD per 1M input tokens
    output: float = 0.0         # USD per 1M output tokens
    cached_input: float | None = None


@dataclass(frozen=True)
class Model:
    id: str
    provider: Provider
    upstream_model: str
    endpoints: tuple[str, ...] = ("chat",)
    price: Price = Price()
    context_window: int = 128_000
    capabilities: frozenset[str] = frozenset(DEFAULT_CAPABILITIES)
    quality: int = 3
    max_inflight: int | None = None   # attempts in flight before new requests take the next candidate

    def target(self) -> Target:
        p = self.provider
        return Target(model=self.id, upstream_model=self.upstream_model, provider=p.name, api=p.api,
                      base_path=p.base_path, options=p.options)


@dataclass(frozen=True)
class Tier:
    name: str
    models: tuple[Model, ...]
    target_ms: int              # latency target: slower models are demoted; attempts are cut at a multiple


@dataclass(frozen=True)
class RoutingClass:
    name: str
    tiers: tuple[Tier, ...]
    max_cost_per_1k: float | None = None
    max_cost_per_request: float | None = None
    quality_floor: int = 1
    min_score: float | None = None
    deadline_ms: int | None = None   # a JSON answer's overall deadline; None: the sum of its attempts'
    hedge: bool = False              # hedge its interactive requests (the workload says how many extra attempts)


@dataclass(frozen=True)
class TimeWindow:
    """Local times (in ``tz``) when a workload's preferences change, e.g. peak hours."""

    tz: zoneinfo.ZoneInfo
    days: frozenset[int]        # 0 = Monday
    start: int                  # minutes after local midnight
    end: int                    # exclusive; end < start spans midnight
    prefer: str | None = None
    max_cost_per_1k: float | None = None

    def contains(self, now: float) -> bool:
        local = _dt.datetime.fromtimestamp(now, self.tz)
        minute = local.hour * 60 + local.minute
        if self.start <= self.end:
            return local.weekday() in self.days and self.start <= minute < self.end
        # Spans midnight: the part after midnight belongs to the previous day's window.
        if minute >= self.start:
            return local.weekday() in self.days
        return minute < self.end and (local.weekday() - 1) % 7 in self.days


@dataclass(frozen=True)
class Workload:
    name: str
    prefer: str = "latency"     # latency: fastest within the floor; cost: cheapest meeting the floor
    max_cost_per_1k: float | None = None
    max_cost_per_request: float | None = None
    windows: tuple[TimeWindow, ...] = ()
    queue_timeout_ms: int | None = None   # wait this long for capacity when every candidate is saturated
    queue_size: int = 100                 # at most this many requests waiting at once
    deadline_ms: int | None = None        # a JSON answer's overall deadline; None: the sum of its attempts'
    hedge_extra: int = 0                  # hedged attempts that may race the first (0: no hedging)


@dataclass(frozen=True)
class Surface:
    name: str
    quality_floor: int = 1
    allow: frozenset[str] | None = None    # None: every model
    deny: frozenset[str] = frozenset()
    max_cost_per_1k: float | None = None
    max_cost_per_request: float | None = None
    premium_threshold: float | None = None   # calibration: this surface's classifier score cut (0..1)


@dataclass(frozen=True)
class RateLimit:
    """Requests and tokens (prompt + output, estimated then corrected) per minute; None = unlimited."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    per_key: "RateLimit | None" = None   # the limit of each of the tenant's keys


@dataclass(frozen=True)
class Tenant:
    name: str
    workload: str | None = None
    surface: str | None = None
    max_cost_per_1k: float | None = None
    max_cost_per_request: float | None = None
    workloads: tuple[str, ...] = ()     # chosen by x-llm-workload besides its own (validated at load)
    surfaces: tuple[str, ...] = ()      # chosen by x-llm-surface besides its own
    rate_limit: RateLimit | None = None


@dataclass(frozen=True)
class Config:
    providers: dict[str, Provider]
    models: dict[str, Model]
    default_model: str | None
    aliases: frozenset[str]
    max_body_bytes: int = 4 * 1024 * 1024
    source: str = "<memory>"
    classes: dict[str, RoutingClass] = field(default_factory=dict)
    default_class: str | None = None
    workloads: dict[str, Workload] = field(default_factory=lambda: {
        n: Workload(n, **spec) for n, spec in BUILTIN_WORKLOADS.items()})
    default_workload: str = "interactive"
    surfaces: dict[str, Surface] = field(default_factory=dict)
    default_surface: str | None = None
    tenants: dict[str, Tenant] = field(default_factory=dict)
    tenant_keys: dict[str, str] = field(default_factory=dict)   # sha256(bearer token) hex -> tenant
    pinned_fallback: bool = False
    default_output_tokens: int = 256
    attempt_timeout_factor: float = 2.0   # an attempt is cut at this multiple of its tier's latency target
    pinned_target_ms: int = TIER_TARGET_MS[-1]   # a pinned model's target (one candidate: the patient tier's)
    affinity_ttl_s: float = 600.0   # conversation affinity (extproc.affinity); 0 turns it off
    affinity_keep: str = "cost"     # extproc.affinity.KEEP: when a pin outweighs a fresh choice
    classifier: Any = None      # classify.ClassifierSettings
    classifier_spec: dict[str, Any] = field(default_factory=dict)
    health: Any = None          # health.HealthSettings: ejection rules
    budgets: Any = None         # budgets.BudgetSettings
    ledger: Any = None          # ledger.LedgerSettings
    auth: str = "required"      # required | optional (extproc.keys)
    keys_file: str | None = None
    shadow: Any = None          # shadow.ShadowSettings: shadow evaluation (None: off)

    def tenant_for_key(self, token: str) -> str | None:
        return self.tenant_keys.get(hashlib.sha256(token.encode()).hexdigest()) if self.tenant_keys else None


def load(path: str | os.PathLike[str]) -> Config:
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return loads(text, path)


def loads(text: str, path: str) -> Config:
    """Parse a config file's text; ``path`` names the file in errors and decides JSON (``.json``) or YAML."""
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {'JSON' if path.endswith('.json') else 'YAML'}: {exc}") from None
    return parse(data, source=path)


def parse(data: Any, source: str = "<memory>") -> Config:
    return _Parser(source).config(data)


class _Parser:
    """Walks the document keeping the key path, so every error can say where it is."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, what: str) -> ConfigError:
        return ConfigError(f"{self.source}: {where}: {what}")

    def mapping(self, value: Any, where: str, allowed: tuple[str, ...] | None = None) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(where, f"must be a mapping, not {type(value).__name__}")
        if allowed is not None:
            unknown = sorted(set(value) - set(allowed))
            if unknown:
                raise self.fail(f"{where}.{unknown[0]}" if where else unknown[0],
                                f"unknown key (allowed: {', '.join(allowed)})")
        return value

    def string(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(where, "must be a non-empty string")
        return value

    def number(self, value: Any, where: str, minimum: float = 0.0) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(where, f"must be a number, not {value!r}")
        if value < minimum:
            raise self.fail(where, f"must be >= {minimum}")
        return float(value)

    def integer(self, value: Any, where: str, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"must be an integer, not {value!r}")
        if value < minimum:
            raise self.fail(where, f"must be >= {minimum}")
        return value

    def boolean(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(where, f"must be true or false, not {value!r}")
        return value

    def strings(self, value: Any, where: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(where, "must be a list of non-empty strings")
        return tuple(value)

    def names(self, value: Any, where: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
        for v in self.strings(value, where):
            if v not in allowed:
                raise self.fail(where, f"unknown value {v!r} (allowed: {', '.join(allowed)})")
        return tuple(value)

    def optional_number(self, spec: dict[str, Any], key: str, where: str) -> float | None:
        return None if spec.get(key) is None else self.number(spec[key], f"{where}.{key}")

    def config(self, data: Any) -> Config:
        top = self.mapping(data, "(top level)", ("providers", "models", "routing", "limits", "routing_rules",
                                                 "workloads", "surfaces", "tenants", "classifier", "health",
                                                 "budgets", "ledger", "auth", "shadow"))
        if "providers" not in top:
            # The seed shape: routing rules only. The built-in catalog fills in, the file's models win.
            top = {**top, "providers": BUILTIN_CATALOG["providers"],
                   "models": {**BUILTIN_CATALOG["models"], **self.mapping(top.get("models"), "models")}}
        providers = {name: self.provider(name, spec)
                     for name, spec in self.mapping(top.get("providers"), "providers").items()}
        if not providers:
            raise self.fail("providers", "at least one provider is required")
        models = {mid: self.model(mid, spec, providers)
                  for mid, spec in self.mapping(top.get("models"), "models").items()}
        if not models:
            raise self.fail("models", "at least one model is required")
        routing = self.mapping(top.get("routing"), "routing", (
            "default_model", "aliases", "default_class", "default_workload", "default_surface", "pinned_fallback",
            "default_output_tokens", "attempt_timeout_factor", "pinned_target_ms", "affinity_ttl_s",
            "affinity_keep"))
        default = routing.get("default_model")
        if default is not None:
            default = self.string(default, "routing.default_model")
            if default not in models:
                raise self.fail("routing.default_model", f"unknown model {default!r}")
        aliases = frozenset(self.strings(routing.get("aliases", ["auto"]), "routing.aliases"))
        clash = aliases & set(models)
        if clash:
            raise self.fail("routing.aliases", f"alias {sorted(clash)[0]!r} is also a model id")
        limits = self.mapping(top.get("limits"), "limits", ("max_body_bytes",))
        max_body = self.integer(limits.get("max_body_bytes", 4 * 1024 * 1024), "limits.max_body_bytes", 1024)

        classes = self.classes(self.mapping(top.get("routing_rules"), "routing_rules"), models, aliases)
        default_class = routing.get("default_class")
        if default_class is not None:
            default_class = self.string(default_class, "routing.default_class")
            if default_class not in classes:
                raise self.fail("routing.default_class", f"unknown routing class {default_class!r}")
        elif classes:
            default_class = next(iter(classes))
        workloads = {n: Workload(n, **spec) for n, spec in BUILTIN_WORKLOADS.items()}
        for name, spec in self.mapping(top.get("workloads"), "workloads").items():
            workloads[name] = self.workload(name, spec)
        surfaces = {name: self.surface(name, spec, models)
                    for name, spec in self.mapping(top.get("surfaces"), "surfaces").items()}
        default_workload = self.string(routing.get("default_workload", "interactive"), "routing.default_workload")
        if default_workload not in workloads:
            raise self.fail("routing.default_workload", f"unknown workload {default_workload!r}")
        default_surface = routing.get("default_surface")
        if default_surface is not None and self.string(default_surface, "routing.default_surface") not in surfaces:
            raise self.fail("routing.default_surface", f"unknown surface {default_surface!r}")
        tenants: dict[str, Tenant] = {}
        tenant_keys: dict[str, str] = {}
        for name, spec in self.mapping(top.get("tenants"), "tenants").items():
            tenants[name] = self.tenant(name, spec, workloads, surfaces, tenant_keys)
        auth, keys_file = self.auth(top.get("auth"))
        pinned_fallback = routing.get("pinned_fallback", False)
        if not isinstance(pinned_fallback, bool):
            raise self.fail("routing.pinned_fallback", f"must be true or false, not {pinned_fallback!r}")
        affinity_keep = routing.get("affinity_keep", "cost")
        if affinity_keep not in ("cost", "always"):
            raise self.fail("routing.affinity_keep", f"must be 'cost' or 'always', not {affinity_keep!r}")
        classifier_spec = self.mapping(top.get("classifier"), "classifier")
        return Config(providers=providers, models=models, default_model=default, aliases=aliases,
                      max_body_bytes=max_body, source=self.source, classes=classes, default_class=default_class,
                      workloads=workloads, default_workload=default_workload, surfaces=surfaces,
                      default_surface=default_surface, tenants=tenants, tenant_keys=tenant_keys,
                      pinned_fallback=pinned_fallback,
                      default_output_tokens=self.integer(routing.get("default_output_tokens", 256),
                                                         "routing.default_output_tokens", 1),
                      attempt_timeout_factor=self.number(routing.get("attempt_timeout_factor", 2.0),
                                                         "routing.attempt_timeout_factor", 1.0),
                      pinned_target_ms=self.integer(routing.get("pinned_target_ms", TIER_TARGET_MS[-1]),
                                                    "routing.pinned_target_ms", 1),
                      affinity_ttl_s=self.number(routing.get("affinity_ttl_s", 600.0), "routing.affinity_ttl_s", 0.0),
                      affinity_keep=affinity_keep,
                      classifier=self.classifier(classifier_spec if "classifier" in top else None),
                      classifier_spec=classifier_spec, health=self.health(top.get("health")),
                      budgets=self.budgets(top.get("budgets"), models), ledger=self.ledger(top.get("ledger")),
                      auth=auth, keys_file=keys_file, shadow=self.shadow(top.get("shadow"), models))

    def shadow(self, spec: Any, models: dict[str, Model]) -> Any:
        """shadow.ShadowSettings (shadow evaluation: sampling rates, judge, targets)."""
        from .shadow import ShadowSettings
        try:
            return ShadowSettings.from_config(spec, models)
        except ValueError as exc:
            raise ConfigError(f"{self.source}: {_prefixed('shadow', exc)}") from None

    def auth(self, spec: Any) -> tuple[str, str | None]:
        """(mode, key file) from ``auth: required`` or ``auth: {mode: ..., keys_file: ...}``."""
        from .keys import AUTH_MODES
        if spec is None or isinstance(spec, str):
            spec = {"mode": spec or "required"}
        spec = self.mapping(spec, "auth", ("mode", "keys_file"))
        mode = spec.get("mode", "required")
        if mode not in AUTH_MODES:
            raise self.fail("auth.mode" if "mode" in spec else "auth", f"must be one of {', '.join(AUTH_MODES)}, "
                                                                       f"not {mode!r}")
        keys_file = spec.get("keys_file")
        return mode, None if keys_file is None else self.string(keys_file, "auth.keys_file")

    def rate_limit(self, spec: Any, where: str, per_key: bool = True) -> RateLimit | None:
        if spec is None:
            return None
        allowed = ("requests_per_minute", "tokens_per_minute") + (("per_key",) if per_key else ())
        spec = self.mapping(spec, where, allowed)
        values = {k: None if spec.get(k) is None else self.integer(spec[k], f"{where}.{k}", 1)
                  for k in ("requests_per_minute", "tokens_per_minute")}
        inner = self.rate_limit(spec.get("per_key"), f"{where}.per_key", per_key=False) if per_key else None
        return RateLimit(**values, per_key=inner)

    def budgets(self, spec: Any, models: dict[str, Model]) -> Any:
        """budgets.BudgetSettings (spend limits per tenant and surface), validated by that module."""
        from .budgets import BudgetSettings
        try:
            return BudgetSettings.from_config(spec, models=models)
        except ValueError as exc:
            raise ConfigError(f"{self.source}: {_prefixed('budgets', exc)}") from None

    def ledger(self, spec: Any) -> Any:
        """ledger.LedgerSettings (where usage records and budget counters live)."""
        from .ledger import LedgerSettings
        try:
            return LedgerSettings.from_config(spec)
        except ValueError as exc:
            raise ConfigError(f"{self.source}: {_prefixed('ledger', exc)}") from None

    def health(self, spec: Any) -> Any:
        """Settings for extproc.health (ejection rules), validated by that module."""
        from .health import HealthSettings   # here, not at the top: health imports the policy, which imports us
        try:
            return HealthSettings.from_config(spec)
        except ValueError as exc:
            key, _, problem = str(exc).partition(": ")
            raise self.fail("health" if key == "(section)" else f"health.{key}", problem) from None

    def classifier(self, spec: dict[str, Any] | None) -> Any:
        """Settings for extproc.classify (class names, thresholds, kind), validated by that module."""
        from . import classify   # here, not at the top: classify loads its model weights
        try:
            return classify.ClassifierSettings.from_config(spec)
        except ValueError as exc:
            raise ConfigError(f"{self.source}: classifier.{exc}") from None

    # ---- routing classes ----------------------------------------------------------------------

    _CLASS_KEYS = ("primary", "secondary", "tertiary", "fallback", "tiers", "max_latency_ms", "max_cost_per_1k",
                   "max_cost_per_request", "quality_floor", "min_score", "deadline_ms", "hedge")

    def classes(self, rules: dict[str, Any], models: dict[str, Model],
                aliases: frozenset[str]) -> dict[str, RoutingClass]:
        for name, spec in rules.items():
            self.mapping(spec, f"routing_rules.{name}", self._CLASS_KEYS)
            if name in models or name in aliases:
                raise self.fail(f"routing_rules.{name}", "a routing class cannot share its name with a model or alias")
        resolved: dict[str, tuple[Tier, ...]] = {}

        def tiers_of(name: str, chain: tuple[str, ...]) -> tuple[Tier, ...]:
            if name in chain:
                cycle = " -> ".join((*chain[chain.index(name):], name))
                raise self.fail(f"routing_rules.{chain[-1]}.fallback", f"cycle in fallbacks: {cycle}")
            if name not in resolved:
                resolved[name] = self.class_tiers(name, rules[name], models, rules,
                                                  lambda other: tiers_of(other, (*chain, name)))
            return resolved[name]

        out: dict[str, RoutingClass] = {}
        for name, spec in rules.items():
            where = f"routing_rules.{name}"
            min_score = self.optional_number(spec, "min_score", where)
            if min_score is not None and min_score > 1:
                raise self.fail(f"{where}.min_score", "must be between 0 and 1")
            out[name] = RoutingClass(
                name=name, tiers=tiers_of(name, ()),
                max_cost_per_1k=self.optional_number(spec, "max_cost_per_1k", where),
                max_cost_per_request=self.optional_number(spec, "max_cost_per_request", where),
                quality_floor=self.integer(spec.get("quality_floor", 1), f"{where}.quality_floor", 1),
                min_score=min_score,
                deadline_ms=None if spec.get("deadline_ms") is None
                else self.integer(spec["deadline_ms"], f"{where}.deadline_ms", 1),
                hedge=self.boolean(spec.get("hedge", False), f"{where}.hedge"))
        return out

    def class_tiers(self, name: str, spec: dict[str, Any], models: dict[str, Model], rules: dict[str, Any],
                    fallback_class) -> tuple[Tier, ...]:
        where = f"routing_rules.{name}"
        max_latency = spec.get("max_latency_ms")
        if max_latency is not None:
            max_latency = self.integer(max_latency, f"{where}.max_latency_ms", 1)
        raw: list[tuple[str, str, Any, Any]] = []   # (tier name, key path, models spec, target spec)
        if "tiers" in spec:
            named = [k for k in TIER_NAMES if k in spec]
            if named:
                raise self.fail(f"{where}.{named[0]}", "give either tiers or primary/secondary/tertiary, not both")
            tiers = spec["tiers"]
            if not isinstance(tiers, list) or not tiers:
                raise self.fail(f"{where}.tiers", "must be a non-empty list of tiers")
            for i, tier in enumerate(tiers):
                tw = f"{where}.tiers[{i}]"
                tier = self.mapping(tier, tw, ("name", "models", "target_latency_ms"))
                tname = self.string(tier.get("name", TIER_NAMES[i] if i < 3 else f"tier{i + 1}"), f"{tw}.name")
                raw.append((tname, f"{tw}.models", tier.get("models"), (tier.get("target_latency_ms"), tw)))
        else:
            for key in TIER_NAMES:
                if key in spec:
                    raw.append((key, f"{where}.{key}", spec[key], (None, None)))
            if not raw and "fallback" not in spec:
                raise self.fail(where, "a routing class needs tiers (or primary/secondary/tertiary)")
        out: list[Tier] = []
        seen: set[str] = set()
        for i, (tname, mwhere, mspec, (target, twhere)) in enumerate(raw):
            ids = self.model_ids(mspec, mwhere, models)
            default_target = max_latency or TIER_TARGET_MS[min(i, len(TIER_TARGET_MS) - 1)]
            if target is None:
                target = default_target
            else:
                target = self.integer(target, f"{twhere}.target_latency_ms", 1)
                if max_latency is not None and target > max_latency:
                    raise self.fail(f"{twhere}.target_latency_ms",
                                    f"{target} exceeds the class's max_latency_ms {max_latency}")
            out.append(Tier(tname, tuple(models[m] for m in ids if not (m in seen or seen.add(m))), target))
        fallback = spec.get("fallback")
        if fallback is not None:
            fwhere = f"{where}.fallback"
            if isinstance(fallback, str) and fallback in rules:
                for tier in fallback_class(fallback):
                    kept = tuple(m for m in tier.models if not (m.id in seen or seen.add(m.id)))
                    if kept:
                        name_ = tier.name if "/" in tier.name else f"{fallback}/{tier.name}"
                        out.append(Tier(name_, kept, tier.target_ms))
            else:
                ids = self.model_ids(fallback, fwhere, models, classes=True)
                i = len(out)
                target = max_latency or TIER_TARGET_MS[min(i, len(TIER_TARGET_MS) - 1)]
                kept = tuple(models[m] for m in ids if not (m in seen or seen.add(m)))
                if kept:
                    out.append(Tier("fallback", kept, target))
        if not out:
            raise self.fail(where, "no candidate models")
        return tuple(out)

    def model_ids(self, value: Any, where: str, models: dict[str, Model], classes: bool = False) -> tuple[str, ...]:
        ids = (value,) if isinstance(value, str) else value
        if ids is None or (isinstance(ids, list) and not ids):
            raise self.fail(where, "a tier needs at least one candidate model")
        ids = self.strings(list(ids) if isinstance(ids, (list, tuple)) else ids, where)
        for mid in ids:
            if mid not in models:
                kind = "model or routing class" if classes else "model"
                raise self.fail(where, f"unknown {kind} {mid!r}")
        return ids

    # ---- workloads, surfaces, tenants ---------------------------------------------------------

    def workload(self, name: str, spec: Any) -> Workload:
        where = f"workloads.{name}"
        spec = self.mapping(spec, where, ("prefer", "max_cost_per_1k", "max_cost_per_request", "windows", "queue",
                                          "deadline_ms", "hedge"))
        base = BUILTIN_WORKLOADS.get(name, {})
        prefer = spec.get("prefer", base.get("prefer"))
        if prefer not in PREFER:
            raise self.fail(f"{where}.prefer", f"must be one of {', '.join(PREFER)}, not {prefer!r}")
        windows = spec.get("windows", [])
        if not isinstance(windows, list):
            raise self.fail(f"{where}.windows", "must be a list")
        queue = self.mapping(spec.get("queue"), f"{where}.queue", ("timeout_ms", "size"))
        return Workload(name=name, prefer=prefer,
                        max_cost_per_1k=self.optional_number(spec, "max_cost_per_1k", where),
                        max_cost_per_request=self.optional_number(spec, "max_cost_per_request", where),
                        windows=tuple(self.window(w, f"{where}.windows[{i}]") for i, w in enumerate(windows)),
                        queue_timeout_ms=None if "timeout_ms" not in queue
                        else self.integer(queue["timeout_ms"], f"{where}.queue.timeout_ms", 1),
                        queue_size=self.integer(queue.get("size", 100), f"{where}.queue.size", 1),
                        deadline_ms=None if spec.get("deadline_ms") is None
                        else self.integer(spec["deadline_ms"], f"{where}.deadline_ms", 1),
                        hedge_extra=self.hedge(spec.get("hedge"), prefer, f"{where}.hedge"))

    def hedge(self, value: Any, prefer: str, where: str) -> int:
        """``hedge: true`` (one extra attempt) or ``{max_extra_attempts: N}``; never for cost-first work."""
        if value is None or value is False:
            return 0
        if value is True:
            extra = 1
        else:
            spec = self.mapping(value, where, ("max_extra_attempts",))
            extra = self.integer(spec.get("max_extra_attempts", 1), f"{where}.max_extra_attempts", 1)
            if extra > 2:
                raise self.fail(f"{where}.max_extra_attempts", "at most 2 (a plan has three attempts)")
        if prefer != "latency":
            raise self.fail(where, "hedging spends extra attempts to cut latency: only for prefer: latency "
                                   "(interactive) work, never batch")
        return extra

    def window(self, spec: Any, where: str) -> TimeWindow:
        spec = self.mapping(spec, where, ("tz", "days", "start", "end", "prefer", "max_cost_per_1k"))
        tz_name = self.string(spec.get("tz", "UTC"), f"{where}.tz")
        try:
            tz = zoneinfo.ZoneInfo(tz_name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise self.fail(f"{where}.tz", f"unknown time zone {tz_name!r}") from None
        days = self.names(spec.get("days", list(DAYS)), f"{where}.days", DAYS)
        bounds = []
        for key in ("start", "end"):
            value = spec.get(key)
            match = _HHMM.match(value) if isinstance(value, str) else None
            if not match:
                raise self.fail(f"{where}.{key}", f"must be a time like \"09:00\", not {value!r}")
            bounds.append(int(match[1]) * 60 + int(match[2]))
        prefer = spec.get("prefer")
        if prefer is not None and prefer not in PREFER:
            raise self.fail(f"{where}.prefer", f"must be one of {', '.join(PREFER)}, not {prefer!r}")
        return TimeWindow(tz=tz, days=frozenset(DAYS.index(d) for d in days), start=bounds[0], end=bounds[1],
                          prefer=prefer, max_cost_per_1k=self.optional_number(spec, "max_cost_per_1k", where))

    def surface(self, name: str, spec: Any, models: dict[str, Model]) -> Surface:
        where = f"surfaces.{name}"
        spec = self.mapping(spec, where, ("quality_floor", "allow", "deny", "max_cost_per_1k", "max_cost_per_request",
                                          "premium_threshold"))
        allow = None if spec.get("allow") is None else frozenset(self.model_ids(spec["allow"], f"{where}.allow", models))
        deny = frozenset(self.model_ids(spec["deny"], f"{where}.deny", models)) if spec.get("deny") else frozenset()
        return Surface(name=name, quality_floor=self.integer(spec.get("quality_floor", 1), f"{where}.quality_floor", 1),
                       allow=allow, deny=deny,
                       max_cost_per_1k=self.optional_number(spec, "max_cost_per_1k", where),
                       max_cost_per_request=self.optional_number(spec, "max_cost_per_request", where),
                       premium_threshold=self._threshold(spec.get("premium_threshold"), f"{where}.premium_threshold"))

    def _threshold(self, value: Any, where: str) -> float | None:
        if value is None:
            return None
        t = self.number(value, where, 0.0)
        if t > 1.0:
            raise self.fail(where, f"must be a number in [0, 1], got {value!r}")
        return t

    def tenant(self, name: str, spec: Any, workloads: dict[str, Workload], surfaces: dict[str, Surface],
               keys: dict[str, str]) -> Tenant:
        where = f"tenants.{name}"
        spec = self.mapping(spec, where, ("api_keys_sha256", "workload", "surface", "max_cost_per_1k",
                                          "max_cost_per_request", "workloads", "surfaces", "rate_limit"))
        for i, digest in enumerate(self.strings(spec.get("api_keys_sha256", []), f"{where}.api_keys_sha256")):
            if not _SHA256.match(digest):
                raise self.fail(f"{where}.api_keys_sha256[{i}]",
                                "must be the lowercase hex sha256 of the key (never the key itself)")
            if digest in keys:
                raise self.fail(f"{where}.api_keys_sha256[{i}]", f"key already belongs to tenant {keys[digest]!r}")
            keys[digest] = name
        workload, surface = spec.get("workload"), spec.get("surface")
        if workload is not None and workload not in workloads:
            raise self.fail(f"{where}.workload", f"unknown workload {workload!r}")
        if surface is not None and surface not in surfaces:
            raise self.fail(f"{where}.surface", f"unknown surface {surface!r}")
        choices = {}
        for key, known in (("workloads", workloads), ("surfaces", surfaces)):
            names = self.strings(spec.get(key, []), f"{where}.{key}")
            for i, n in enumerate(names):
                if n not in known:
                    raise self.fail(f"{where}.{key}[{i}]", f"unknown {key[:-1]} {n!r}")
            choices[key] = names
        return Tenant(name=name, workload=workload, surface=surface,
                      max_cost_per_1k=self.optional_number(spec, "max_cost_per_1k", where),
                      max_cost_per_request=self.optional_number(spec, "max_cost_per_request", where),
                      rate_limit=self.rate_limit(spec.get("rate_limit"), f"{where}.rate_limit"), **choices)

    def provider(self, name: str, spec: Any) -> Provider:
        where = f"providers.{name}"
        spec = self.mapping(spec, where, ("api", "cluster", "base_path", "host", "api_key_env", "api_key_file",
                                          "options", "max_inflight", "forward_headers"))
        api = spec.get("api")
        if api not in DEFAULT_BASE_PATH:
            raise self.fail(f"{where}.api", f"must be one of {', '.join(DEFAULT_BASE_PATH)}, not {api!r}")
        options = self.mapping(spec.get("options"), f"{where}.options")
        if api == "azure_openai" and "api_version" not in options:
            raise self.fail(f"{where}.options.api_version", "is required for azure_openai")
        optional = {k: self.string(spec[k], f"{where}.{k}") for k in ("host", "api_key_env", "api_key_file")
                    if spec.get(k) is not None}
        base_path = self.string(spec.get("base_path", DEFAULT_BASE_PATH[api]), f"{where}.base_path").rstrip("/")
        limit = spec.get("max_inflight")
        forward = spec.get("forward_headers") or []
        if not isinstance(forward, list) or any(not isinstance(h, str) or h.lower() not in FORWARDABLE_HEADERS
                                                for h in forward):
            raise self.fail(f"{where}.forward_headers", f"must be a list of {', '.join(FORWARDABLE_HEADERS)}")
        return Provider(name=name, api=api, cluster=self.string(spec.get("cluster", name), f"{where}.cluster"),
                        base_path=base_path, options=options, forward_headers=tuple(h.lower() for h in forward),
                        max_inflight=None if limit is None else self.integer(limit, f"{where}.max_inflight", 1),
                        **optional)

    def model(self, mid: str, spec: Any, providers: dict[str, Provider]) -> Model:
        where = f"models.{mid}"
        spec = self.mapping(spec, where, ("provider", "upstream_model", "endpoints", "price", "context_window",
                                          "capabilities", "quality", "max_inflight"))
        pname = self.string(spec.get("provider"), f"{where}.provider")
        if pname not in providers:
            raise self.fail(f"{where}.provider", f"unknown provider {pname!r}")
        price = self.mapping(spec.get("price"), f"{where}.price", ("input", "output", "cached_input"))
        cached = price.get("cached_input")
        return Model(
            id=mid,
            provider=providers[pname],
            upstream_model=self.string(spec.get("upstream_model", mid), f"{where}.upstream_model"),
            endpoints=self.names(spec.get("endpoints", ["chat"]), f"{where}.endpoints", ENDPOINTS),
            price=Price(input=self.number(price.get("input", 0), f"{where}.price.input"),
                        output=self.number(price.get("output", 0), f"{where}.price.output"),
                        cached_input=None if cached is None else self.number(cached, f"{where}.price.cached_input")),
            context_window=self.integer(spec.get("context_window", 128_000), f"{where}.context_window", 1),
            capabilities=frozenset(self.names(spec.get("capabilities", list(DEFAULT_CAPABILITIES)),
                                              f"{where}.capabilities", CAPABILITIES)),
            quality=self.integer(spec.get("quality", 3), f"{where}.quality", 1),
            max_inflight=None if spec.get("max_inflight") is None
            else self.integer(spec["max_inflight"], f"{where}.max_inflight", 1),
        )
