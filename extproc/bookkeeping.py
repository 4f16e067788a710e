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

import asyncio
import json
import logging
import math
import os
import time
from dataclasses import replace

from .accounting import HEDGE_CANCELLED, IN_FLIGHT, UsageRecord, client_api_of, make_record, parse_feedback
from .budgets import SPENT, BudgetManager, Reservation
from .config import Config
from .errors import NotFound, QuotaExceeded
from .ledger import Ledger, open_ledger
from .providers.base import Usage
from .ratelimit import Admission, RateLimiter
from .report import LEDGER_ENV

log = logging.getLogger("extproc.bookkeeping")
COMMIT_TIMEOUT_S = 1.0   # the longest an answer's end waits for its record to be written


class Bookkeeping:
    def __init__(self, config: Config, environ: dict[str, str] | None = None):
        env = os.environ if environ is None else environ
        settings = config.ledger
        if env.get(LEDGER_ENV):
            settings = replace(settings, url=env[LEDGER_ENV])
        self.ledger: Ledger = open_ledger(settings)
        self.budgets = BudgetManager(config.budgets, self.ledger)
        self.rates = RateLimiter(self.ledger)    # its counters share the ledger's store, like the budgets'
        self._tasks: set[asyncio.Task] = set()   # budget reconciliations a reload started

    async def start(self) -> None:
        await self.budgets.start()
        await self.rates.start()

    async def close(self) -> None:
        await self.rates.close()
        await self.budgets.close()
        await self.ledger.close()

    def reconfigure(self, config: Config) -> None:
        """A reloaded routing config: new budget limits take effect at once, spent amounts kept (the
        ledger stays). A budget the reload adds starts from what its window already spent, as the
        ledger shows (as after a restart), not from zero; with shared counters (Redis) from what
        they hold."""
        added = set(config.budgets.budgets) - set(self.budgets.settings.budgets)
        self.budgets.reconfigure(config.budgets)
        if added and self.ledger.single_owner:
            task = asyncio.get_running_loop().create_task(
                self.budgets.reconcile(self.ledger, time.time(), only=added))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def free_tier(self, tenant: str | None, surface: str | None) -> str | None:
        """The model a spent budget sends its requests to instead of refusing them, if any."""
        status = self.budgets.status(tenant, surface)
        return status.free_tier_model if status.state == SPENT else None

    def quota_error(self, exc: QuotaExceeded, tenant: str | None, surface: str | None) -> QuotaExceeded:
        """The policy found no candidate within the budget: the same 429 a pinned request gets
        (``BudgetStatus.error``: which budget is spent, when it resets, ``retry-after`` until then),
        when a spent budget is known."""
        status = self.budgets.status(tenant, surface)
        if exc.headers.get("retry-after") or status.budget is None or status.window_end is None:
            return exc
        if status.state == SPENT and status.window_start is not None:
            return status.error(time.time())
        retry = max(1, math.ceil(status.window_end - time.time()))
        return QuotaExceeded(exc.message, headers={**exc.headers, "retry-after": str(retry)})

    def spent(self, tenant: str | None, surface: str | None) -> bool:
        return self.budgets.status(tenant, surface).state == SPENT

    async def admit(self, tenant: str | None, surface: str | None, estimated_cost: float,
                    free_tier: bool = False) -> Reservation:
        """Reserve the estimate, or raise ``BudgetExceeded`` (429) when a budget cannot take it."""
        status = self.budgets.status(tenant, surface)
        if status.state == SPENT and not free_tier:
            raise status.error(time.time())
        return await self.budgets.reserve(tenant, surface, estimated_cost, free_tier=free_tier)

    def open(self, exchange) -> None:
        """The request was routed: an ``in_flight`` record, billed the prompt estimate of its first
        candidate, stands for it until ``settle`` replaces it (same request id). If this process dies
        first, that record is what is left (``recover`` marks it ``interrupted``)."""
        plan = exchange.plan
        model = plan.models[0] if plan.models else None
        usage = Usage(input_tokens=plan.prompt_tokens)
        record = make_record(
            time=exchange.started, request_id=exchange.key, model=model.id if model else "none",
            provider=model.provider.name if model else "none", usage=usage, price=model.price if model else None,
            status=0, attempts=1, tenant=plan.tenant, surface=plan.surface, request_class=plan.route_class,
            workload=plan.workload, outcome=IN_FLIGHT, endpoint=exchange.endpoint,
            client_api=client_api_of(exchange.path))
        self._append(record)

    def settle(self, reservation: Reservation | None, *, request_id: str, model, usage, status: int,
               started: float, latency_ms: float, ttft_ms: float | None, attempts: int, plan,
               outcome: str | None = None, endpoint: str = "chat", rate: Admission | None = None,
               client_api: str | None = None) -> UsageRecord:
        """Record the ended request (``outcome`` from ``endings.classify``) and correct its reservation
        (and its rate limit token count) to the bill (``usage``, see endings.py); returns the record."""
        record = make_record(
            time=started, request_id=request_id, model=model.id if model else "none",
            provider=model.provider.name if model else "none", usage=usage, price=model.price if model else None,
            status=status, latency_ms=latency_ms, ttft_ms=ttft_ms, attempts=attempts, outcome=outcome,
            tenant=plan.tenant, surface=plan.surface, request_class=plan.route_class, workload=plan.workload,
            endpoint=endpoint, client_api=client_api)
        self._append(record)
        if reservation is not None:
            self.budgets.settle(reservation, record.cost_usd)
        self.rates.settle(rate, record.input_tokens + record.output_tokens)
        return record

    def losers(self, reservation: Reservation | None, *, request_id: str, losers, prompt_tokens: int,
               started: float, plan, endpoint: str, client_api: str | None = None, outcome: str | None = None,
               status: int | None = None) -> float:
        """The attempts of a hedged request that ended without the answer (``losers``: (number, model)):
        each was sent the whole prompt and bills it, so each gets its record (``<request id>/<attempt>``)
        and its cost goes to the request's budget. ``outcome``/``status``: ``hedge_cancelled``/0 (beaten
        by another attempt) unless given (nobody answered: the request's own, e.g. ``timeout``/504).
        Returns their cost."""
        total = 0.0
        for number, model in losers:
            record = make_record(
                time=started, request_id=f"{request_id}/{number}", model=model.id, provider=model.provider.name,
                usage=Usage(input_tokens=prompt_tokens), price=model.price, status=status or 0, attempts=number,
                outcome=outcome or HEDGE_CANCELLED, tenant=plan.tenant, surface=plan.surface, request_class=plan.route_class,
                workload=plan.workload, endpoint=endpoint, client_api=client_api)
            self._append(record)
            total += record.cost_usd
        if reservation is not None and total:
            self.budgets.charge(reservation, total)
        return total

    def refused(self, *, request_id: str, status: int, outcome: str | None, started: float, endpoint: str,
                tenant: str | None, surface: str | None, workload: str | None, request_class: str | None,
                client_api: str | None = None) -> None:
        """A request the gateway refused after knowing who it was for (a spent budget, a full queue):
        its record, billed nothing."""
        self._append(make_record(time=started, request_id=request_id or f"refused-{started}", model="none",
                                 provider="none", usage=None, price=None, status=status, outcome=outcome,
                                 attempts=0, tenant=tenant, surface=surface, request_class=request_class,
                                 workload=workload, endpoint=endpoint, client_api=client_api))

    async def commit(self, timeout_s: float = COMMIT_TIMEOUT_S) -> bool:
        """Wait until the records appended so far are written (one write for every request waiting
        at once). False when the store did not answer in ``timeout_s``: the records stay queued and
        the background writer retries; the answer is not held longer than that."""
        try:
            await asyncio.wait_for(asyncio.shield(self.ledger.flush()), timeout_s)
            return True
        except Exception:   # noqa: BLE001 - a slow or failed store must not fail the answer
            log.warning("usage ledger: commit did not finish in %.1fs; the record stays queued", timeout_s)
            return False

    async def recover(self) -> int:
        """After a crash: mark the ``in_flight`` records the previous run left as ``interrupted``, and
        set the budget counters to what the ledger says was spent in their windows (the records are
        written before an answer ends; the counters sync only every ``sync_interval_s``, so a crash
        can leave them behind). Only for a store one process owns (SQLite). Returns how many records
        were interrupted."""
        now = time.time()
        interrupted = await self.ledger.mark_interrupted(before=now)
        if self.ledger.single_owner:   # shared counters (Redis) belong to every replica: left as they are
            await self.budgets.reconcile(self.ledger, now)
        return interrupted

    def _append(self, record: UsageRecord) -> None:
        try:
            self.ledger.append(record)
        except RuntimeError:   # closed during shutdown: the request still settles its budget
            log.warning("usage ledger closed; record for %s not kept", record.request_id)

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
