"""``extproc report``: what routing cost, against sending everything to one premium model.

The counterfactual prices every request's *reported* tokens (input, cached
input, output) at the premium model's catalog price. Assumption, stated in the
output: the premium model would have used the same number of tokens
(tokenizers differ by a few percent between vendors; replies differ more).

Prompt-cache reads (the providers' reported cached input tokens, in the ledger's
``cached_input_tokens``) are shown with their saving: what those tokens would have
cost at the model's full input price less what they cost at its cached-input price
(``price.cached_input``; a model without one is billed in full and saves nothing).

Pure core: ``build_report(records, prices, premium)`` -> ``Report``;
``render_text`` and ``render_html`` turn it into text or one self-contained
HTML page (inline SVG charts generated here: no JavaScript, no network).
The thin shell is ``add_report_command`` / ``run_report``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as _dt
import functools
import html
import math
import os
import sys
import zoneinfo
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .accounting import UsageRecord, cache_read_saving, cost_usd

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(PROJECT_DIR, "config", "routing.yaml")
LEDGER_ENV = "LLM_GATEWAY_LEDGER_URL"   # the same variable extproc serve reads (bookkeeping.py)


# ---------------------------------------------------------------------------------------------------------------
# Aggregation

def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@dataclass
class Group:
    name: str
    requests: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0      # prompt-cache reads, a part of input_tokens
    cache_saving: float = 0.0         # USD those reads saved against the full input price (cache_saving())
    cost: float = 0.0
    counterfactual: float = 0.0
    latencies: list[float] = field(default_factory=list, repr=False)
    ttfts: list[float] = field(default_factory=list, repr=False)
    quality_sum: float = 0.0
    quality_n: int = 0

    def add(self, r: UsageRecord, counterfactual: float, cache_saved: float = 0.0) -> None:
        self.requests += 1
        self.errors += r.is_error
        self.input_tokens += r.input_tokens
        self.output_tokens += r.output_tokens
        self.cached_input_tokens += cached_tokens(r)
        self.cache_saving += cache_saved
        self.cost += r.cost_usd
        self.counterfactual += counterfactual
        if r.latency_ms is not None:
            self.latencies.append(r.latency_ms)
        if r.ttft_ms is not None:
            self.ttfts.append(r.ttft_ms)
        if r.quality is not None:
            self.quality_sum += r.quality
            self.quality_n += 1

    @property
    def savings(self) -> float:
        return self.counterfactual - self.cost

    @property
    def savings_pct(self) -> float | None:
        return 100 * self.savings / self.counterfactual if self.counterfactual else None

    @property
    def cached_share(self) -> float | None:
        """Cache reads as a share of input tokens (0..1), None without input tokens."""
        return self.cached_input_tokens / self.input_tokens if self.input_tokens else None

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def quality(self) -> float | None:
        return self.quality_sum / self.quality_n if self.quality_n else None

    def latency(self, q: float) -> float | None:
        return percentile(self.latencies, q)

    def ttft(self, q: float) -> float | None:
        return percentile(self.ttfts, q)


@dataclass
class Bucket:
    start: float
    cost: float = 0.0
    counterfactual: float = 0.0
    requests: int = 0
    by_model: dict[str, int] = field(default_factory=dict)


@dataclass
class Report:
    premium_model: str
    premium_price: Any
    since: float | None
    until: float | None
    timezone: str
    total: Group
    by_class: dict[str, Group]
    by_model: dict[str, Group]
    by_provider: dict[str, Group]
    by_surface: dict[str, Group]
    by_tenant: dict[str, Group]
    by_endpoint: dict[str, Group]
    timeline: list[Bucket]
    bucket: str                       # "day" or "hour"
    unpriced_models: list[str]        # models in the ledger the catalog does not price (cost kept as recorded)
    # Shadow evaluation (extproc/shadow.py): win/tie/loss of answers served below the premium tier, by
    # dimension ("surface", "class", "model") and name; and each surface's win-or-tie target.
    shadow: dict[str, dict[str, Any]] = field(default_factory=dict)
    shadow_targets: Mapping[str, float] = field(default_factory=dict)
    # The gateway's own spend (the shadow evaluation's calls, ``overhead_tenants``): in the cost with
    # routing, never in the premium-only cost (sending everything to premium evaluates nothing).
    overhead: float = 0.0
    # Models whose records read a prompt cache but whose catalog price has no cached_input: their reads
    # were billed at the full input price, so they save nothing here.
    cache_unpriced: list[str] = field(default_factory=list)
    prices: Mapping[str, Any] = field(default_factory=dict)   # the catalog's prices by model id (config.Price)


# The by-endpoint rows: the endpoint the client called, by its API (a record older than the ledger's
# client_api shows its internal endpoint, chat or embeddings).
ENDPOINT_NAMES = {"openai_chat": "chat", "openai_embeddings": "embeddings", "anthropic_messages": "messages",
                  "openai_responses": "responses"}
# A request refused before any model was chosen (a spent budget, a full queue) is recorded with model
# and provider "none": shown as this, not as a model.
NOT_ROUTED = "(not routed)"
# The shadow evaluation's own calls (``overhead_tenants``) in every table but by-tenant: one row of
# their own, so a model's row compares its traffic's cost with that traffic's premium-only cost (tryout
# 9 M4: judge calls on gpt-4o counted in its cost and not in its baseline gave "saved -204.9%").
SHADOW_ROW = "(shadow evaluation)"


def cached_tokens(r: UsageRecord) -> int:
    """A record's cache-read tokens, bounded by its input tokens (as ``accounting.cost_usd`` bounds them)."""
    return min(max(0, r.input_tokens), max(0, r.cached_input_tokens or 0))


def cache_saving(r: UsageRecord, price: Any) -> float:
    """USD a record's cache reads saved: its cached tokens at ``price.input`` less the same tokens at
    ``price.cached_input`` (USD per 1M tokens); 0.0 without a price or a cached-input price."""
    return 0.0 if price is None else cache_read_saving(cached_tokens(r), price)

DIMENSIONS = (("endpoint", "by_endpoint"), ("class", "by_class"), ("model", "by_model"),
              ("provider", "by_provider"), ("surface", "by_surface"), ("tenant", "by_tenant"))


def build_report(records: Iterable[UsageRecord], prices: Mapping[str, Any], premium_model: str, *,
                 since: float | None = None, until: float | None = None, timezone: str = "UTC",
                 embedding_models: frozenset[str] = frozenset(),
                 shadow_targets: Mapping[str, float] | None = None,
                 overhead_tenants: Iterable[str] = ()) -> Report:
    """Aggregate ledger records; ``prices`` maps model id -> ``config.Price`` and must price ``premium_model``.

    Embeddings are reported apart (``by_endpoint``) and never count as savings: a premium chat model
    does not embed, so their counterfactual is their own cost. A record is an embedding when its
    ``endpoint`` says so or its model is one of ``embedding_models`` (records older than the field).
    The timeline runs from the first record's bucket to the last one's, empty buckets included; it is
    hourly when the records span two days or less. Shadow verdict records (``extproc.shadow``) are not
    traffic: they are tallied apart (``shadow``); the evaluation's calls are the shadow tenant's traffic.
    ``overhead_tenants`` (the shadow tenant, ``shadow.tenant``): their spend is an overhead of routing, so
    it counts in the cost with routing and not in the premium-only cost (``Report.overhead``), and in
    every table but by-tenant it is one row of its own (``SHADOW_ROW``), so each model's, class's ...
    saving compares that traffic with its own premium-only cost. Every group also sums its cache reads
    and their saving (``cache_saving``, at each record's own model's price)."""
    from . import shadow as shadow_eval
    if premium_model not in prices:
        raise ValueError(f"premium model {premium_model!r} is not in the catalog "
                         f"(known: {', '.join(sorted(prices))})")
    premium = prices[premium_model]
    tz = zoneinfo.ZoneInfo(timezone)
    records = list(records)
    verdicts = [r for r in records if r.outcome == shadow_eval.SHADOW_OUTCOME]
    records = [r for r in records if r.outcome != shadow_eval.SHADOW_OUTCOME]
    shadow = {dim: {(k[0] or "(none)"): t for k, t in sorted(shadow_eval.tally(verdicts, (attr,)).items(),
                                                              key=lambda kv: str(kv[0][0]))}
              for dim, attr in (("surface", "surface"), ("class", "request_class"), ("model", "model"))}
    total = Group("all")
    dims: dict[str, dict[str, Group]] = {attr: {} for _d, attr in DIMENSIONS}
    times = [r.time for r in records]
    lo = min(times) if times else (since or 0.0)
    hi = max(times) if times else (until or 0.0)
    bucket = "hour" if hi - lo <= 2 * 86400 else "day"
    buckets: dict[float, Bucket] = {}

    @functools.lru_cache(maxsize=4096)
    def _start_of(hour: int) -> float:       # records are bucketed by the start of their local hour or day
        local = _dt.datetime.fromtimestamp(hour * 3600, tz)
        return (local if bucket == "hour" else local.replace(hour=0)).timestamp()

    def bucket_start(t: float) -> float:
        # When the zone's offset is a whole number of hours, the UTC hour a record falls in decides its local
        # hour and day (cached: one datetime per hour, not per record); other zones take the slow path.
        return _start_of(int(t // 3600)) if tz_whole_hours else _slow_start(t)

    def _slow_start(t: float) -> float:
        local = _dt.datetime.fromtimestamp(t, tz)
        return (local.replace(minute=0, second=0, microsecond=0) if bucket == "hour"
                else _dt.datetime(local.year, local.month, local.day, tzinfo=tz)).timestamp()

    tz_whole_hours = all(
        (_dt.datetime.fromtimestamp(x, tz).utcoffset() or _dt.timedelta()).total_seconds() % 3600 == 0
        for x in (lo, hi, (lo + hi) / 2))
    overhead_tenants = frozenset(overhead_tenants)
    overhead = 0.0
    cache_unpriced: set[str] = set()
    for r in records:
        endpoint = "embeddings" if r.endpoint == "embeddings" or r.model in embedding_models else "chat"
        cf = cost_usd(r, premium) if endpoint == "chat" else r.cost_usd
        saved = cache_saving(r, prices.get(r.model))
        if cached_tokens(r) and getattr(prices.get(r.model), "cached_input", None) is None:
            cache_unpriced.add(r.model)
        shadow_call = r.tenant in overhead_tenants
        if shadow_call:   # premium-only routing makes no shadow calls (tryout 6 L7)
            cf = 0.0
            overhead += r.cost_usd
        total.add(r, cf, saved)
        # A front door's request is chat inside the gateway; the client's API tells them apart.
        called = ENDPOINT_NAMES.get(r.client_api or "", endpoint)
        model, provider = (NOT_ROUTED, NOT_ROUTED) if r.model == "none" else (r.model, r.provider)
        keys = (("by_endpoint", called), ("by_class", r.request_class), ("by_model", model),
                ("by_provider", provider), ("by_surface", r.surface), ("by_tenant", r.tenant))
        if shadow_call:   # its own row (SHADOW_ROW) everywhere but under its tenant
            keys = tuple((attr, r.tenant if attr == "by_tenant" else SHADOW_ROW) for attr, _k in keys)
        for attr, key in keys:
            key = key or "(none)"
            g = dims[attr].get(key)
            if g is None:
                g = dims[attr][key] = Group(key)
            g.add(r, cf, saved)
        start = bucket_start(r.time)
        b = buckets.get(start)
        if b is None:
            b = buckets[start] = Bucket(start)
        b.cost += r.cost_usd
        b.counterfactual += cf
        b.requests += 1
        b.by_model[r.model] = b.by_model.get(r.model, 0) + 1
    if buckets:   # every bucket between the first and the last, so a chart shows the quiet ones too
        t, last = min(buckets), max(buckets)
        while t < last:
            t = bucket_start(t + (3600 if bucket == "hour" else 86400) + 1800)
            buckets.setdefault(t, Bucket(t))
    ordered = {attr: dict(sorted(groups.items(), key=lambda kv: (-kv[1].cost, -kv[1].requests, kv[0])))
               for attr, groups in dims.items()}
    unpriced = sorted({r.model for r in records} - set(prices))
    return Report(premium_model, premium, since, until, timezone, total, ordered["by_class"], ordered["by_model"],
                  ordered["by_provider"], ordered["by_surface"], ordered["by_tenant"], ordered["by_endpoint"],
                  [buckets[k] for k in sorted(buckets)], bucket, unpriced,
                  shadow if verdicts else {}, dict(shadow_targets or {}), overhead, sorted(cache_unpriced),
                  dict(prices))


# ---------------------------------------------------------------------------------------------------------------
# Text

def _usd(v: float) -> str:
    """Dollars with the sign before the symbol (-$0.0020), and never a negative zero (-$0.0000)."""
    text = f"{abs(v):,.2f}" if round(abs(v), 4) >= 1 else f"{abs(v):,.4f}"
    return ("-$" if v < 0 and text.strip("0.,") else "$") + text


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}%"


def _q(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _period(report: Report) -> str:
    tz = zoneinfo.ZoneInfo(report.timezone)
    fmt = "%Y-%m-%d %H:%M"
    a = "beginning" if report.since is None else _dt.datetime.fromtimestamp(report.since, tz).strftime(fmt)
    b = "now" if report.until is None else _dt.datetime.fromtimestamp(report.until, tz).strftime(fmt)
    return f"{a} .. {b} ({report.timezone})"


_HEAD = ("requests", "cost", "premium-only", "saved", "saved%", "p50 ms", "p95 ms", "p99 ms", "errors", "quality")


def _row(g: Group) -> tuple[str, ...]:
    return (f"{g.requests:,}", _usd(g.cost), _usd(g.counterfactual), _usd(g.savings), _pct(g.savings_pct),
            _ms(g.latency(0.5)), _ms(g.latency(0.95)), _ms(g.latency(0.99)), _pct(100 * g.error_rate),
            _q(g.quality) + (f" (n={g.quality_n})" if g.quality_n else ""))


def _table(title: str, groups: Mapping[str, Group]) -> list[str]:
    rows = [(name, *_row(g)) for name, g in groups.items()]
    head = (title, *_HEAD)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = lambda cells: "  ".join(  # noqa: E731
        (c.ljust(w) if i == 0 else c.rjust(w)) for i, (c, w) in enumerate(zip(cells, widths)))
    return [fmt(head), fmt(tuple("-" * w for w in widths)), *(fmt(r) for r in rows), ""]


def render_text(report: Report) -> str:
    t = report.total
    p = report.premium_price
    lines = [
        f"LLM gateway savings report: {_period(report)}",
        "",
        f"requests            {t.requests:,}   ({t.input_tokens:,} input + {t.output_tokens:,} output tokens)",
        f"cost with routing   {_usd(t.cost)}" + (f"   (of which shadow evaluation, gateway overhead: "
                                                 f"{_usd(report.overhead)})" if report.overhead else ""),
        f"premium-only cost   {_usd(t.counterfactual)}   (everything on {report.premium_model}: "
        f"${p.input:g}/${p.output:g} per 1M input/output tokens, same token counts)",
        f"saved               {_usd(t.savings)}   ({_pct(t.savings_pct)})",
        f"latency ms          p50 {_ms(t.latency(0.5))}   p95 {_ms(t.latency(0.95))}   p99 {_ms(t.latency(0.99))}"
        f"   ttft p50 {_ms(t.ttft(0.5))}   p95 {_ms(t.ttft(0.95))}",
        f"error rate          {_pct(100 * t.error_rate)}   (429 from providers, 5xx, timeouts; client errors excluded)",
        f"quality             {_q(t.quality)}   ({t.quality_n:,} scored requests, 0..1)",
        f"cache reads         {t.cached_input_tokens:,} of {t.input_tokens:,} input tokens "
        f"({_pct(None if t.cached_share is None else 100 * t.cached_share)}), saved {_usd(t.cache_saving)} "
        "against the full input price",
        "",
    ]
    for dim, attr in DIMENSIONS:
        lines += _table(f"by {dim}", getattr(report, attr))
    if report.overhead:
        lines += [f"note: {SHADOW_ROW} rows are the gateway's own judge and reference calls: in the cost with "
                  "routing, not in premium-only; the other rows compare traffic with its own premium-only cost", ""]
    lines += cache_lines(report)
    lines += shadow_lines(report)
    if report.unpriced_models:
        lines.append(f"note: not in the catalog (cost as recorded): {', '.join(report.unpriced_models)}")
    return "\n".join(lines).rstrip() + "\n"


_CACHE_HEAD = ("input tokens", "cache reads", "share", "input $/1M", "cached $/1M", "cache saved")


def _cache_row(report: Report, name: str, g: Group) -> tuple[str, ...]:
    price = report.prices.get(name)
    no_price = price is not None and price.cached_input is None
    return (f"{g.input_tokens:,}", f"{g.cached_input_tokens:,}",
            _pct(None if g.cached_share is None else 100 * g.cached_share),
            f"{price.input:g}" if price is not None else "-",
            ("none" if no_price else f"{price.cached_input:g}") if price is not None else "-",
            "- (no cached price)" if no_price and g.cached_input_tokens else _usd(g.cache_saving))


def cache_rows(report: Report) -> list[tuple[str, ...]]:
    """The prompt-cache table's rows: per model with input tokens (shadow evaluation on its own row),
    (model, input tokens, cache-read tokens, their share of input, input and cached-input price per 1M,
    USD saved), then the total."""
    rows = [(name, *_cache_row(report, name, g)) for name, g in report.by_model.items() if g.input_tokens]
    t = report.total
    rows.append(("total", f"{t.input_tokens:,}", f"{t.cached_input_tokens:,}",
                 _pct(None if t.cached_share is None else 100 * t.cached_share), "", "", _usd(t.cache_saving)))
    return rows


def cache_lines(report: Report) -> list[str]:
    """The prompt-cache section: cache reads by model and their saving (module docstring)."""
    rows = cache_rows(report)
    head = ("prompt cache by model", *_CACHE_HEAD)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    fmt = lambda cells: "  ".join(  # noqa: E731
        (c.ljust(w) if i == 0 else c.rjust(w)) for i, (c, w) in enumerate(zip(cells, widths)))
    lines = [fmt(head), fmt(tuple("-" * w for w in widths)), *(fmt(r) for r in rows)]
    lines.append("  saved = cache-read tokens x (input price - cached-input price) of the model that served them")
    if report.cache_unpriced:
        lines.append(f"  no cached_input price in the catalog (reads billed at the full input price, no saving "
                     f"counted): {', '.join(report.cache_unpriced)}")
    return lines + [""]


def _rate(rates: dict, name: str) -> str:
    r = rates[name]
    return "-" if r["rate"] is None else f"{r['rate']:.2f} [{r['ci'][0]:.2f}-{r['ci'][1]:.2f}]"


def shadow_lines(report: Report) -> list[str]:
    """The shadow evaluation section: per surface, class and model, the served answers' win / tie / loss
    rates against the reference model with 95% Wilson intervals; a surface under its target is flagged."""
    from .shadow import below_target
    if not report.shadow:
        return []
    lines = ["shadow evaluation (answers below the premium tier judged against it; rate [95% CI])"]
    for dim in ("surface", "class", "model"):
        for name, t in report.shadow.get(dim, {}).items():
            r = t.rates()
            target = report.shadow_targets.get(name) if dim == "surface" else None
            flag = ""
            if target is not None:
                flag = f"  target {target:.2f}" + ("  BELOW TARGET" if below_target(t, target) else "")
            lines.append(f"  {dim} {name:<18} {t.n:>5} judged  win {_rate(r, 'win')}  tie {_rate(r, 'tie')}  "
                         f"loss {_rate(r, 'loss')}  win-or-tie {_rate(r, 'win_or_tie')}{flag}")
    return lines + [""]


# ---------------------------------------------------------------------------------------------------------------
# HTML with inline SVG

PALETTE = ("#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#06b6d4", "#ec4899", "#84cc16", "#64748b",
           "#f97316")
ACTUAL, PREMIUM = "#2563eb", "#f59e0b"


def _e(s: Any) -> str:
    return html.escape(str(s), quote=True)


def _nice_max(v: float) -> float:
    if v <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10):
        if v <= m * exp:
            return m * exp
    return 10 * exp


def _axis_usd(v: float) -> str:
    if v >= 1000:
        return f"${v / 1000:g}k"
    return f"${v:g}" if v >= 1 else f"${v:.3g}"


def svg_cost_over_time(report: Report, width: int = 860, height: int = 260) -> str:
    """Cost per day (or hour): with routing (filled) against the premium-only counterfactual (line)."""
    pts = report.timeline
    left, right, top, bottom = 64, 16, 16, 36
    w, h = width - left - right, height - top - bottom
    ymax = _nice_max(max([b.counterfactual for b in pts] + [b.cost for b in pts] + [0.0]))
    tz = zoneinfo.ZoneInfo(report.timezone)
    out = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="cost over time" '
           f'xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif" font-size="11">']
    for i in range(5):
        y = top + h - h * i / 4
        out.append(f'<line x1="{left}" x2="{left + w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        out.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#6b7280">'
                   f'{_e(_axis_usd(ymax * i / 4))}</text>')
    if pts:
        n = len(pts)
        x = (lambda i: left + w / 2) if n == 1 else (lambda i: left + w * i / (n - 1))  # noqa: E731
        y = lambda v: top + h - h * v / ymax  # noqa: E731
        area = " ".join(f"{x(i):.1f},{y(b.cost):.1f}" for i, b in enumerate(pts))
        out.append(f'<polygon points="{x(0):.1f},{top + h} {area} {x(n - 1):.1f},{top + h}" '
                   f'fill="{ACTUAL}" fill-opacity="0.18"/>')
        out.append(f'<polyline points="{area}" fill="none" stroke="{ACTUAL}" stroke-width="2.5"/>')
        cf = " ".join(f"{x(i):.1f},{y(b.counterfactual):.1f}" for i, b in enumerate(pts))
        out.append(f'<polyline points="{cf}" fill="none" stroke="{PREMIUM}" stroke-width="2.5" '
                   f'stroke-dasharray="6 4"/>')
        if n <= 48:   # markers: a single bucket (a one-day report) has no line to draw
            for i, b in enumerate(pts):
                out.append(f'<circle cx="{x(i):.1f}" cy="{y(b.counterfactual):.1f}" r="4" fill="{PREMIUM}">'
                           f'<title>premium-only {_e(_usd(b.counterfactual))}</title></circle>')
                out.append(f'<circle cx="{x(i):.1f}" cy="{y(b.cost):.1f}" r="4" fill="{ACTUAL}">'
                           f'<title>with routing {_e(_usd(b.cost))}</title></circle>')
        step = max(1, math.ceil(n / 10))
        for i in range(0, n, step):
            d = _dt.datetime.fromtimestamp(pts[i].start, tz)
            label = d.strftime("%H:00") if report.bucket == "hour" else d.strftime("%b %d")
            out.append(f'<text x="{x(i):.1f}" y="{top + h + 18}" text-anchor="middle" fill="#6b7280">'
                       f'{_e(label)}</text>')
    out.append(f'<line x1="{left}" x2="{left + w}" y1="{top + h}" y2="{top + h}" stroke="#9ca3af"/>')
    out.append("</svg>")
    return "".join(out)


def _model_colors(report: Report) -> dict[str, str]:
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(report.by_model)}


def svg_model_mix(report: Report, width: int = 420, height: int = 150) -> str:
    """Two stacked 100% bars: share of requests and share of cost per model."""
    colors = _model_colors(report)
    left, bar_w = 84, width - 84 - 16
    out = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="model mix" '
           f'xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif" font-size="12">']
    t = report.total
    for row, (label, value, whole) in enumerate((("requests", lambda g: g.requests, t.requests),
                                                 ("cost", lambda g: g.cost, t.cost))):
        y = 14 + row * 58
        out.append(f'<text x="{left - 8}" y="{y + 24}" text-anchor="end" fill="#374151">{label}</text>')
        x = float(left)
        for m, g in report.by_model.items():
            share = value(g) / whole if whole else 0.0
            if share <= 0:
                continue
            seg = bar_w * share
            out.append(f'<rect x="{x:.1f}" y="{y}" width="{seg:.1f}" height="36" fill="{colors[m]}">'
                       f'<title>{_e(m)}: {share:.1%}</title></rect>')
            if seg > 34:
                out.append(f'<text x="{x + seg / 2:.1f}" y="{y + 23}" text-anchor="middle" fill="#fff" '
                           f'font-weight="600">{share:.0%}</text>')
            x += seg
    out.append("</svg>")
    return "".join(out)


def svg_savings(report: Report, width: int = 420, height: int | None = None) -> str:
    """Per class: premium-only cost (light bar) against the cost with routing (dark bar), with % saved."""
    groups = list(report.by_class.items())[:8]
    row_h = 46
    height = height or 20 + row_h * max(1, len(groups))
    # The label column fits the longest class name (about 7.2 px a character at 12 px), never clipped.
    left, right = 16 + math.ceil(7.2 * max([len(n) for n, _g in groups] + [6])), 70
    w = width - left - right
    vmax = _nice_max(max([g.counterfactual for _n, g in groups] + [g.cost for _n, g in groups] + [0.0]))
    out = [f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="savings by class" '
           f'xmlns="http://www.w3.org/2000/svg" font-family="system-ui, sans-serif" font-size="12">']
    for i, (name, g) in enumerate(groups):
        y = 10 + i * row_h
        out.append(f'<text x="{left - 8}" y="{y + 20}" text-anchor="end" fill="#374151">{_e(name)}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{w * g.counterfactual / vmax:.1f}" height="14" '
                   f'fill="{PREMIUM}" fill-opacity="0.55"><title>premium-only {_e(_usd(g.counterfactual))}'
                   f'</title></rect>')
        out.append(f'<rect x="{left}" y="{y + 16}" width="{max(1.0, w * g.cost / vmax):.1f}" height="14" '
                   f'fill="{ACTUAL}"><title>with routing {_e(_usd(g.cost))}</title></rect>')
        out.append(f'<text x="{width - right + 6}" y="{y + 20}" fill="#065f46" font-weight="600">'
                   f'{_e(_pct(g.savings_pct))}</text>')
    out.append("</svg>")
    return "".join(out)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f8fafc;color:#111827}
main{max-width:940px;margin:0 auto;padding:28px 24px 40px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:15px;margin:0 0 10px;color:#374151}
.sub{color:#6b7280;font-size:13px;margin-bottom:20px}
.kpis{display:grid;grid-template-columns:repeat(4,1fr);gap:12px;margin-bottom:16px}
.kpi{background:#fff;border:1px solid #e5e7eb;border-radius:10px;padding:12px 14px}
.kpi .v{font-size:19px;font-weight:700;white-space:nowrap}.kpi .l{font-size:12px;color:#6b7280}
.kpi.good .v{color:#047857}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:10px;padding:14px 16px;margin-bottom:16px}
.row{display:grid;grid-template-columns:1fr 1fr;gap:16px}
.legend{font-size:12px;color:#374151;display:flex;flex-wrap:wrap;gap:6px 14px;margin-top:6px}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:5px;vertical-align:-1px}
table{border-collapse:collapse;width:100%;font-size:12.5px}
th,td{padding:5px 8px;border-bottom:1px solid #f1f5f9;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left;white-space:normal;overflow-wrap:anywhere}th{color:#6b7280;font-weight:600}
.note{font-size:12px;color:#6b7280}
"""


def _legend(items: Iterable[tuple[str, str]], dashed: set[str] = frozenset()) -> str:
    return '<div class="legend">' + "".join(
        f'<span><span class="sw" style="background:{c}"></span>{_e(n)}</span>' for n, c in items) + "</div>"


def _html_table(title: str, groups: Mapping[str, Group]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in (title, *_HEAD))
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in (name, *_row(g))) + "</tr>"
                   for name, g in groups.items())
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(report: Report, title: str = "LLM gateway savings report") -> str:
    t = report.total
    p = report.premium_price
    colors = _model_colors(report)
    kpis = [
        ("cost with routing", _usd(t.cost), ""),
        (f"premium-only ({report.premium_model})", _usd(t.counterfactual), ""),
        ("saved", f"{_usd(t.savings)} · {_pct(t.savings_pct)}", "good"),
        ("requests", f"{t.requests:,}", ""),
        ("latency p50 / p95", f"{_ms(t.latency(0.5))} / {_ms(t.latency(0.95))} ms", ""),
        ("latency p99", f"{_ms(t.latency(0.99))} ms", ""),
        ("error rate", _pct(100 * t.error_rate), ""),
        ("quality (0..1)", f"{_q(t.quality)}" + (f" · n={t.quality_n:,}" if t.quality_n else ""), ""),
        ("cache reads · share of input", f"{t.cached_input_tokens:,} · "
                                         f"{_pct(None if t.cached_share is None else 100 * t.cached_share)}", ""),
        ("saved by cache reads", _usd(t.cache_saving), "good"),
    ]
    tables = "".join(f'<div class="card"><h2>By {dim}</h2>{_html_table(dim, getattr(report, attr))}</div>'
                     for dim, attr in DIMENSIONS)
    cache_head = "".join(f"<th>{_e(h)}</th>" for h in ("model", *_CACHE_HEAD))
    cache_body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in cache_rows(report))
    cache_note = ("Saved = cache-read tokens x (input price - cached-input price) of the model that served them."
                  + (f" No cached_input price in the catalog (reads billed at the full input price, no saving "
                     f"counted): {', '.join(report.cache_unpriced)}." if report.cache_unpriced else ""))
    tables += (f'<div class="card"><h2>Prompt cache reads by model</h2><table><thead><tr>{cache_head}</tr></thead>'
               f'<tbody>{cache_body}</tbody></table><p class="note">{_e(cache_note)}</p></div>')
    note = (f"Premium-only prices every request's reported tokens at {report.premium_model}'s catalog price "
            f"(${p.input:g} input / ${p.output:g} output per 1M tokens), assuming the same token counts. "
            f"Error rate counts provider 429s, 5xx and timeouts, not client errors.")
    if report.unpriced_models:
        note += f" Not in the catalog (cost as recorded): {', '.join(report.unpriced_models)}."
    if report.overhead:
        note += (f" {SHADOW_ROW} rows are the gateway's own judge and reference calls: in the cost with routing, "
                 "not in premium-only.")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>
<body><main>
<h1>{_e(title)}</h1>
<div class="sub">{_e(_period(report))}</div>
<div class="kpis">{"".join(f'<div class="kpi {cls}"><div class="v">{_e(v)}</div><div class="l">{_e(lbl)}</div></div>'
                            for lbl, v, cls in kpis)}</div>
<div class="card"><h2>Cost per {report.bucket}: with routing vs premium-only</h2>{svg_cost_over_time(report)}
{_legend([("with routing", ACTUAL), (f"premium-only ({report.premium_model})", PREMIUM)])}</div>
<div class="row">
<div class="card"><h2>Model mix</h2>{svg_model_mix(report)}{_legend(colors.items())}</div>
<div class="card"><h2>Savings by class</h2>{svg_savings(report)}
{_legend([("premium-only", PREMIUM), ("with routing", ACTUAL)])}</div>
</div>
{tables}
<p class="note">{_e(note)}</p>
</main></body></html>
"""


# ---------------------------------------------------------------------------------------------------------------
# Command line

def _parse_time(text: str, tz: zoneinfo.ZoneInfo) -> float:
    try:
        d = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date: {text!r} (YYYY-MM-DD or an ISO 8601 time)") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=tz)
    return d.timestamp()


def add_report_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``extproc report`` on the CLI's subparsers; the handler is ``run_report(args) -> int``."""
    p = subparsers.add_parser("report", help="savings report: cost with routing vs everything on one premium model")
    p.add_argument("--config", default=os.environ.get("LLM_GATEWAY_CONFIG"),
                   help="routing config with the model catalog (default: $LLM_GATEWAY_CONFIG, else the "
                        "project's config/routing.yaml, as `make run` uses)")
    p.add_argument("--ledger", default=os.environ.get(LEDGER_ENV),
                   help=f"usage ledger: a SQLite path, sqlite://PATH or redis://HOST:PORT/DB "
                        f"(default: ${LEDGER_ENV}, else where `extproc serve` and `make run` keep it: the "
                        f"config's ledger.url, relative paths taken from the project directory)")
    p.add_argument("--premium", help="the model to compare against (default: the catalog's most expensive chat model)")
    p.add_argument("--since", help="start, YYYY-MM-DD or ISO time (default: 30 days before --until)")
    p.add_argument("--until", help="end, exclusive (default: now)")
    p.add_argument("--tz", default="UTC", help="time zone for dates and daily buckets (default UTC)")
    p.add_argument("--html", metavar="FILE", help="also write a one-page HTML report with charts to FILE")
    p.add_argument("--propose", action="store_true",
                   help="from the shadow evaluations, propose a quality_floor per surface with a win-or-tie target "
                        "(README: Closing the loop)")
    p.add_argument("--apply", action="store_true",
                   help="with --propose: write the proposals into --config (only if it sets "
                        "shadow.apply_thresholds: true; the gateway reloads it)")
    p.set_defaults(handler=run_report)
    return p


def run_report(args: argparse.Namespace) -> int:
    from . import config as routing_config
    from .ledger import LedgerSettings, open_ledger

    if not args.config:
        args.config = str(DEFAULT_CONFIG)
    try:
        cfg = routing_config.load(args.config)
        tz = zoneinfo.ZoneInfo(args.tz)
    except Exception as exc:  # noqa: BLE001 - shown to the operator as is
        print(f"extproc report: {exc}", file=sys.stderr)
        return 2
    prices = {mid: m.price for mid, m in cfg.models.items()}
    premium = args.premium or max((m for m in cfg.models.values() if "chat" in m.endpoints),
                                  key=lambda m: m.price.input + m.price.output).id
    url = args.ledger or default_ledger_url(args.config)
    try:
        until = _parse_time(args.until, tz) if args.until else _dt.datetime.now(tz).timestamp()
        since = _parse_time(args.since, tz) if args.since else until - 30 * 86400
    except argparse.ArgumentTypeError as exc:
        print(f"extproc report: {exc}", file=sys.stderr)
        return 2
    if since >= until:   # a future --since (or one after --until): the period would read backwards
        fmt = lambda t: _dt.datetime.fromtimestamp(t, tz).strftime("%Y-%m-%d %H:%M")  # noqa: E731
        print(f"extproc report: --since {fmt(since)} is not before "
              f"{'--until ' + fmt(until) if args.until else 'now (' + fmt(until) + ')'} ({args.tz}): "
              "no period to report", file=sys.stderr)
        return 2

    async def read() -> list[UsageRecord]:
        ledger = open_ledger(LedgerSettings(url=url))
        try:
            return await ledger.records(since, until)
        finally:
            await ledger.close()

    try:
        records = asyncio.run(read())
        embedding_models = frozenset(mid for mid, m in cfg.models.items() if "chat" not in m.endpoints)
        report = build_report(records, prices, premium, since=since, until=until, timezone=args.tz,
                              embedding_models=embedding_models,
                              shadow_targets=cfg.shadow.targets if cfg.shadow is not None else None,
                              overhead_tenants=(cfg.shadow.tenant,) if cfg.shadow is not None else ())
    except Exception as exc:  # noqa: BLE001
        print(f"extproc report: {exc}", file=sys.stderr)
        return 1
    print(f"ledger: {url}")
    if getattr(args, "propose", False):
        return _propose(args, cfg, report)
    sys.stdout.write(render_text(report))
    if args.html:
        with open(args.html, "w", encoding="utf-8") as f:
            f.write(render_html(report))
        print(f"wrote {args.html}")
    return 0


def proposals(cfg: Any, report: Report) -> dict[str, tuple[int, int, str]]:
    """Per surface with a shadow target: (current quality_floor, proposed floor, why), from
    ``shadow.propose_floor`` over the report's shadow tally of that surface."""
    from .shadow import Tally, propose_floor
    out = {}
    for name, target in (cfg.shadow.targets.items() if cfg.shadow is not None else ()):
        surface = cfg.surfaces.get(name)
        if surface is None:
            continue
        # The premium a surface can reach: the best chat model its allow/deny list and its per-1K cost
        # cap leave it (a floor above that would refuse every request of the surface).
        premium = max((m.quality for m in cfg.models.values() if "chat" in m.endpoints and usable(surface, m)),
                      default=surface.quality_floor)
        t = report.shadow.get("surface", {}).get(name, Tally())
        floor, why = propose_floor(t, target, surface.quality_floor, premium)
        out[name] = (surface.quality_floor, floor, why)
    return out


def usable(surface: Any, model: Any) -> bool:
    """Whether any request of ``surface`` could go to ``model``: allowed, not denied, and not over the
    surface's max_cost_per_1k at both its input and its output price (USD per 1M tokens)."""
    if model.id in surface.deny or (surface.allow is not None and model.id not in surface.allow):
        return False
    cap = surface.max_cost_per_1k
    return cap is None or min(model.price.input, model.price.output) / 1000 <= cap


def _propose(args: argparse.Namespace, cfg: Any, report: Report) -> int:
    from . import config as routing_config
    from .shadow import set_quality_floors
    found = proposals(cfg, report)
    if not found:
        print("extproc report --propose: no surface has a shadow.targets entry in the config", file=sys.stderr)
        return 2
    for name, (old, new, why) in found.items():
        print(f"surface {name}: quality_floor {old} -> {new}  ({why})" if new != old
              else f"surface {name}: keep quality_floor {old}  ({why})")
    changes = {name: new for name, (old, new, _why) in found.items() if new != old}
    if not args.apply:
        if changes:
            print("to apply: edit surfaces.<name>.quality_floor in the config, or run with --apply "
                  "(needs shadow.apply_thresholds: true); check it first with `extproc explain --jsonl ... --compare`")
        return 0
    if not cfg.shadow.apply_thresholds:
        print(f"extproc report --apply: {args.config} does not opt in (shadow.apply_thresholds: true); nothing written",
              file=sys.stderr)
        return 2
    if changes:
        try:
            with open(args.config, encoding="utf-8") as f:
                text = set_quality_floors(f.read(), changes)
            routing_config.loads(text, args.config)    # still a valid config, or nothing is written
        except (OSError, ValueError) as exc:           # ConfigError is a ValueError
            print(f"extproc report --apply: {exc}; nothing written", file=sys.stderr)
            return 1
        with open(args.config, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {len(changes)} quality_floor change(s) to {args.config} (the gateway reloads it)")
    return 0


def default_ledger_url(config_path: str | os.PathLike) -> str:
    """Where ``serve`` (run from the project directory, as ``make run`` runs it) keeps the ledger for this
    config: its ``ledger.url``, else ``sqlite://ledger.db``; a relative SQLite path is made absolute
    against the project directory, so ``report`` finds it from anywhere."""
    url = _ledger_url_from(str(config_path)) or "sqlite://ledger.db"
    if url.startswith(("redis://", "rediss://", "unix://")):
        return url
    path = url[len("sqlite://"):] if url.startswith("sqlite://") else url
    return f"sqlite://{path if os.path.isabs(path) else os.path.join(PROJECT_DIR, path)}"


def _ledger_url_from(config_path: str) -> str | None:
    """``ledger.url`` from the routing config file, read raw (the section is optional)."""
    try:
        import yaml

        with open(config_path, encoding="utf-8") as f:
            doc = yaml.safe_load(f) or {}
        url = (doc.get("ledger") or {}).get("url")
        return url if isinstance(url, str) else None
    except Exception:  # noqa: BLE001 - the caller reports the missing ledger
        return None
