"""The I/O shell around accounting: budgets before a request, the ledger after it, feedback.

``accounting`` (records and cost), ``budgets`` (reservations) and ``ledger``
(storage) are pure or self-contained; this module is what the server calls at
the three moments that matter:

- ``admit``: after the plan is made, before routing. A spent budget answers
  429 (or the request goes to the budget's free tier model); otherwise the
  first candidate's estimated cost is reserved. Rate limits (``rates``, per
  tenant and key) count the request first.
- ``settle``: when the router stage's stream ends, whichever way. The usage
  record goes to the ledger and the reservation is corrected to the actual cost.
- ``feedback``: ``POST /v1/feedback`` attaches a quality score to a past request.

The ledger URL comes from the routing config's ``ledger.url``, or from
``LLM_GATEWAY_LEDGER_URL`` (a Kubernetes manifest sets it to a volume path or a
Redis URL without touching the routing config).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import replace

from .accounting import make_record, parse_feedback
from .budgets import SPENT, BudgetManager, Reservation
from .config import Config
from .errors import NotFound
from .ledger import Ledger, open_ledger
from .ratelimit import Admission, RateLimiter
from .report import LEDGER_ENV

log = logging.getLogger("extproc.bookkeeping")


class Bookkeeping:
    def __init__(self, config: Config, environ: dict[str, str] | None = None):
        env = os.environ if environ is None else environ
        settings = config.ledger
        if env.get(LEDGER_ENV):
            settings = replace(settings, url=env[LEDGER_ENV])
        self.ledger: Ledger = open_ledger(settings)
        self.budgets = BudgetManager(config.budgets, self.ledger)
        self.rates = RateLimiter(self.ledger)    # its counters share the ledger's store, like the budgets'

    async def start(self) -> None:
        await self.budgets.start()
        await self.rates.start()

    async def close(self) -> None:
        await self.rates.close()
        await self.budgets.close()
        await self.ledger.close()

    def reconfigure(self, config: Config) -> None:
        """A reloaded routing config: new budget limits take effect at once (the ledger stays)."""
        self.budgets.settings = config.budgets

    def free_tier(self, tenant: str | None, surface: str | None) -> str | None:
        """The model a spent budget sends its requests to instead of refusing them, if any."""
        status = self.budgets.status(tenant, surface)
        return status.free_tier_model if status.state == SPENT else None

    async def admit(self, tenant: str | None, surface: str | None, estimated_cost: float,
                    free_tier: bool = False) -> Reservation:
        """Reserve the estimate, or raise ``BudgetExceeded`` (429) when a budget cannot take it."""
        status = self.budgets.status(tenant, surface)
        if status.state == SPENT and not free_tier:
            raise status.error(time.time())
        return await self.budgets.reserve(tenant, surface, estimated_cost, free_tier=free_tier)

    def settle(self, reservation: Reservation | None, *, request_id: str, model, usage, status: int,
               started: float, latency_ms: float, ttft_ms: float | None, attempts: int, plan,
               rate: Admission | None = None) -> float:
        """Record the finished request and correct its reservation (and its rate limit token count);
        returns its cost in USD."""
        record = make_record(
            time=started, request_id=request_id, model=model.id if model else "none",
            provider=model.provider.name if model else "none", usage=usage, price=model.price if model else None,
            status=status, latency_ms=latency_ms, ttft_ms=ttft_ms, attempts=attempts,
            tenant=plan.tenant, surface=plan.surface, request_class=plan.route_class, workload=plan.workload)
        try:
            self.ledger.append(record)
        except RuntimeError:   # closed during shutdown: the request still settles its budget
            log.warning("usage ledger closed; record for %s not kept", request_id)
        if reservation is not None:
            self.budgets.settle(reservation, record.cost_usd)
        self.rates.settle(rate, record.input_tokens + record.output_tokens)
        return record.cost_usd

    async def feedback(self, raw: bytes, tenant: str | None = None) -> bytes:
        """Attach a quality score to a past request of ``tenant`` (the caller's; None: the anonymous
        caller's requests); raises InvalidRequest (400) / NotFound (404). Another tenant's request
        answers exactly like an unknown id, so feedback reveals nothing about it."""
        fb = parse_feedback(raw)
        record = await self.ledger.attach_quality(fb.request_id, fb.score, fb.source, tenant=tenant)
        if record is None:
            raise NotFound(f"no request with id '{fb.request_id}' in the usage ledger", param="request_id")
        return json.dumps({"request_id": fb.request_id, "score": fb.score, "source": fb.source,
                           "model": record.model, "class": record.request_class}).encode()
