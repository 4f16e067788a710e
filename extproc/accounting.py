"""What a request cost, and the record the usage ledger keeps of it.

Pure: prices and usage in, dollars and records out; no clock (``time`` is
passed in), no I/O.

Cost follows the providers' own billing: catalog prices are USD per 1M tokens
(``config.Price``); ``Usage.input_tokens`` *includes* the cached ones (OpenAI's
``prompt_tokens`` with ``prompt_tokens_details.cached_tokens``; the Anthropic
and Gemini translators report it the same way), so the cached part is billed at
``price.cached_input`` and only the rest at ``price.input``. A model whose price
lists no ``cached_input`` bills cached tokens at the full input price: the
catalog does not know of a discount, so none is assumed.

The quality signal (item 6): an application or an automated evaluator scores a
past request by its ``x-request-id``::

    POST /v1/feedback   {"request_id": "...", "score": 0.8, "source": "thumbs"}

``parse_feedback`` validates that body (scores are in [0, 1]: a thumbs up/down
is 1/0, five stars are stars/5) and the ledger's ``attach_quality`` stores it.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, fields
from typing import Any

from .errors import InvalidRequest

# Outcomes of one request, from the client's point of view.
OK = "ok"                    # 2xx answer
CLIENT_ERROR = "client_error"  # 4xx other than 429 (bad input, unsupported feature, unknown model)
RATE_LIMITED = "rate_limited"  # 429 from a provider
BUDGET_REFUSED = "budget_refused"  # 429 from the gateway: the budget is spent
UPSTREAM_ERROR = "upstream_error"  # 5xx other than 504
TIMEOUT = "timeout"          # 504, or a stream that stalled
CANCELLED = "cancelled"      # the client went away before the answer ended (recorded with status 499)
PROVIDER_CUT = "provider_cut"  # the provider's stream stopped mid-way: no terminal event, or an upstream reset
STREAM_ERROR = "stream_error"  # the provider's stream ended in an error event
GATEWAY_ERROR = "gateway_error"  # the gateway itself failed the request
IN_FLIGHT = "in_flight"      # provisional: written when the request is routed, replaced when it settles
INTERRUPTED = "interrupted"  # an in_flight record found after a restart: extproc died with the request open
HEDGE_CANCELLED = "hedge_cancelled"  # a hedged attempt cancelled because another won: its prompt is billed
OUTCOMES = (OK, CLIENT_ERROR, RATE_LIMITED, BUDGET_REFUSED, UPSTREAM_ERROR, TIMEOUT, CANCELLED, PROVIDER_CUT,
            STREAM_ERROR, GATEWAY_ERROR, IN_FLIGHT, INTERRUPTED, HEDGE_CANCELLED)
ERROR_OUTCOMES = frozenset({RATE_LIMITED, UPSTREAM_ERROR, TIMEOUT, PROVIDER_CUT, STREAM_ERROR, GATEWAY_ERROR,
                            INTERRUPTED})
"""Outcomes that count as the gateway's or a provider's failure in error rates (client mistakes do not)."""

USD_PER_MILLION = 1_000_000

# The client APIs a record names (as spans' llm.client_api does), by the request path that speaks each.
CLIENT_APIS = {"/v1/chat/completions": "openai_chat", "/v1/embeddings": "openai_embeddings",
               "/v1/messages": "anthropic_messages", "/v1/responses": "openai_responses"}


def client_api_of(path: str) -> str | None:
    """The client API of a request path (``CLIENT_APIS``; the query is ignored), or None."""
    return CLIENT_APIS.get(path.split("?", 1)[0])


# Anthropic bills a prompt-cache write above the input price: 1.25x for the default 5-minute lifetime, 2x
# for a 1-hour one (its prompt caching pricing); the extra share of the input price per written token.
CACHE_WRITE_PREMIUM_5M = 0.25
CACHE_WRITE_PREMIUM_1H = 1.0


def cost_usd(usage: Any, price: Any) -> float:
    """USD for one request from the provider's reported usage and the catalog price.

    ``usage``: anything with ``input_tokens``, ``output_tokens``,
    ``cached_input_tokens`` and optionally ``cache_write_tokens`` / ``cache_write_1h_tokens``
    (``providers.base.Usage``: parts of ``input_tokens``); ``price``: a ``config.Price`` (USD per 1M
    tokens, ``cached_input`` None = no discount). Cache writes cost the input price plus Anthropic's
    premium (``CACHE_WRITE_PREMIUM_*``); only Anthropic reports them.
    """
    tokens_in = max(0, int(usage.input_tokens or 0))
    cached = min(tokens_in, max(0, int(getattr(usage, "cached_input_tokens", 0) or 0)))
    tokens_out = max(0, int(usage.output_tokens or 0))
    written = min(tokens_in - cached, max(0, int(getattr(usage, "cache_write_tokens", 0) or 0)))
    written_1h = min(written, max(0, int(getattr(usage, "cache_write_1h_tokens", 0) or 0)))
    premium = ((written - written_1h) * CACHE_WRITE_PREMIUM_5M + written_1h * CACHE_WRITE_PREMIUM_1H) * price.input
    cached_price = price.input if price.cached_input is None else price.cached_input
    return ((tokens_in - cached) * price.input + cached * cached_price + tokens_out * price.output
            + premium) / USD_PER_MILLION


def cache_read_saving(cached_tokens: int, price: Any) -> float:
    """USD ``cached_tokens`` prompt-cache reads save against ``price.input`` (a ``config.Price``): billed at
    ``price.cached_input`` instead; 0.0 where the price has none (the read is billed in full)."""
    if price.cached_input is None:
        return 0.0
    return max(0, cached_tokens) * (price.input - price.cached_input) / USD_PER_MILLION


def outcome_for_status(status: int, *, cancelled: bool = False, budget_refused: bool = False) -> str:
    """The ledger outcome of a request the client saw answered with ``status``."""
    if cancelled:
        return CANCELLED
    if budget_refused:
        return BUDGET_REFUSED
    if 200 <= status < 400:
        return OK
    if status == 429:
        return RATE_LIMITED
    if status == 504:
        return TIMEOUT
    if 400 <= status < 500:
        return CLIENT_ERROR
    return UPSTREAM_ERROR


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One request, as the usage ledger keeps it.

    ``time`` is unix seconds when the request arrived; ``request_class`` is the
    routing class (stored and shown as ``class``). Tokens are what the provider
    reported (0 when it reported none, e.g. a failed attempt). ``quality`` is
    None until feedback arrives (``Ledger.attach_quality``).
    """

    time: float
    request_id: str
    model: str
    provider: str
    tenant: str | None = None
    surface: str | None = None
    request_class: str | None = None
    workload: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_usd: float = 0.0
    latency_ms: float | None = None
    ttft_ms: float | None = None
    attempts: int = 1
    outcome: str = OK
    status: int = 200
    quality: float | None = None
    quality_source: str | None = None
    endpoint: str = "chat"        # "chat" | "embeddings": reported apart (an embedding is no chat saving)
    # The API the client spoke (CLIENT_APIS): a front door's request is chat inside the gateway, and
    # the report shows it apart. None: a record written before the ledger kept it.
    client_api: str | None = None
    # Of input_tokens: written to the provider's prompt cache (Anthropic), and of those with a 1-hour
    # lifetime: billed above the input price (cost_usd), so the report's baselines price them alike.
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0

    @property
    def is_error(self) -> bool:
        return self.outcome in ERROR_OUTCOMES

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def to_dict(self) -> dict[str, Any]:
        """A flat mapping with ``class`` for ``request_class``: the ledger's and the report's field names."""
        d = asdict(self)
        d["class"] = d.pop("request_class")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> UsageRecord:
        d = dict(d)
        if "class" in d:
            d["request_class"] = d.pop("class")
        names = _FIELDS
        return cls(**{k: v for k, v in d.items() if k in names})

    def with_quality(self, score: float, source: str | None) -> UsageRecord:
        return _replace(self, quality=score, quality_source=source)


_FIELDS = frozenset(f.name for f in fields(UsageRecord))


def _replace(record: UsageRecord, **changes: Any) -> UsageRecord:
    d = {f: getattr(record, f) for f in _FIELDS}
    d.update(changes)
    return UsageRecord(**d)


def make_record(*, time: float, request_id: str, model: str, provider: str, usage: Any | None, price: Any | None,
                status: int, latency_ms: float | None = None, ttft_ms: float | None = None, attempts: int = 1,
                tenant: str | None = None, surface: str | None = None, request_class: str | None = None,
                workload: str | None = None, cancelled: bool = False, budget_refused: bool = False,
                outcome: str | None = None, endpoint: str = "chat", client_api: str | None = None) -> UsageRecord:
    """The record for one finished request: cost from ``usage`` x ``price`` (0 when either is missing).

    ``outcome`` (``endings.classify``) wins over the one read from ``status``."""
    cost = cost_usd(usage, price) if usage is not None and price is not None else 0.0
    return UsageRecord(
        time=time, request_id=request_id, model=model, provider=provider, tenant=tenant, surface=surface,
        request_class=request_class, workload=workload,
        input_tokens=int(usage.input_tokens) if usage is not None else 0,
        output_tokens=int(usage.output_tokens) if usage is not None else 0,
        cached_input_tokens=int(getattr(usage, "cached_input_tokens", 0) or 0) if usage is not None else 0,
        cost_usd=cost, latency_ms=latency_ms, ttft_ms=ttft_ms, attempts=attempts,
        outcome=outcome or outcome_for_status(status, cancelled=cancelled, budget_refused=budget_refused),
        status=status, endpoint=endpoint, client_api=client_api,
        cache_write_tokens=int(getattr(usage, "cache_write_tokens", 0) or 0) if usage is not None else 0,
        cache_write_1h_tokens=int(getattr(usage, "cache_write_1h_tokens", 0) or 0) if usage is not None else 0)


# ---------------------------------------------------------------------------------------------------------------
# The quality signal

FEEDBACK_PATH = "/v1/feedback"
_SOURCE = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")


@dataclass(frozen=True, slots=True)
class Feedback:
    request_id: str
    score: float          # 0 (bad) .. 1 (good)
    source: str           # who scored: "user", "thumbs", "evaluator:groundedness", ...


def parse_feedback(body: bytes | str | dict) -> Feedback:
    """Validate a ``POST /v1/feedback`` body; raises ``InvalidRequest`` (400) naming the field."""
    if isinstance(body, (bytes, str)):
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise InvalidRequest("feedback body is not valid JSON", code="invalid_json") from None
    else:
        data = body
    if not isinstance(data, dict):
        raise InvalidRequest("feedback body must be a JSON object", code="invalid_type")
    rid = data.get("request_id")
    if not isinstance(rid, str) or not rid or len(rid) > 200:
        raise InvalidRequest("'request_id' must be the x-request-id of a past request", param="request_id")
    score = data.get("score")
    if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score) \
            or not 0.0 <= score <= 1.0:
        # The codes OpenAI's field checks use (extproc/validate.py): the type, else the side of the range.
        code = ("invalid_type" if isinstance(score, bool) or not isinstance(score, (int, float)) else
                "decimal_below_min_value" if score < 0 else "decimal_above_max_value" if score > 1 else
                "invalid_value")
        raise InvalidRequest("'score' must be a number from 0 (bad) to 1 (good)", param="score", code=code)
    source = data.get("source", "user")
    if not isinstance(source, str) or not _SOURCE.match(source):
        raise InvalidRequest("'source' must be 1-64 characters of letters, digits, '_', '.', ':' or '-'",
                             param="source")
    return Feedback(rid, float(score), source)
