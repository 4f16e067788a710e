"""Spend budgets per tenant and per surface, daily and monthly, across replicas.

Config (the ``budgets:`` section; ``BudgetSettings.from_config``)::

    budgets:
      timezone: Europe/Berlin      # windows are calendar days / months here (default UTC)
      near_fraction: 0.2           # under 20% left: "near", the policy prefers cheaper candidates
      free_tier_model: local-llama # optional: when spent, route here instead of answering 429
      reservation_chunk: 0.01      # fraction of a budget one replica may commit between syncs
      sync_interval_s: 1.0         # background sync with the shared counters
      on_store_error: open         # open: keep serving when the store is down; closed: 503
      tenants:
        acme: {daily: 10, monthly: 200}                 # USD
        trial: {daily: 0.5, free_tier_model: tiny-model}
      surfaces:
        support-bot: {monthly: 1500}

A request is charged to every budget that names its tenant or its surface, in
the window that contains the moment it was reserved.

States (``status``): ``ok``; ``near`` when some budget has less than
``near_fraction`` of its limit left (``remaining`` is small, so the policy,
which reads ``BudgetView.remaining`` and drops candidates whose estimate exceeds
it, is left with the cheaper ones); ``spent`` when some budget has nothing
left: the request is answered 429 in the OpenAI error shape
(``BudgetExceeded``: type ``insufficient_quota``, code ``insufficient_quota``,
``retry-after`` until the window resets), or routed to the free tier model.

The hot path never waits on the network. Each replica (one ``BudgetManager``)
keeps, per counter (budget x window): ``known``, the shared total at its last
sync, and ``unsynced``, the net of its own reservations and settlements since.
``reserve`` decides on ``known + unsynced`` locally; a background task pushes
``unsynced`` to the shared counter and reads the new total back, in one atomic
step (Redis MULTI/EXEC INCRBY, or one SQLite transaction) every
``sync_interval_s`` and as soon as ``unsynced`` passes half a chunk. Only when
a reservation would take ``unsynced`` past one chunk
(``reservation_chunk x limit``) does ``reserve`` wait for a sync first: one
round trip per chunk of spend, not per request.

Overspend bound. A reservation is charged at its estimate when it is made
(``reserve``) and corrected to the actual cost when it ends (``settle``), so
in-flight requests count against the budget. Whatever one replica committed
since its last sync is invisible to the others, and that is at most one chunk
(or one request's estimate, if a single estimate exceeds the chunk: it is only
admitted right after a sync). Every admission also checks
``known + unsynced + estimate <= limit``. Hence, with R replicas sharing the
store, the spend recorded in a window never exceeds::

    limit + R x max(chunk, largest single estimate) + sum over requests in flight of max(0, actual - estimate)

The last term is the estimator's error (cost.py estimates the prompt from its
characters, weighed by script (``cost.text_units``), and the reply as
``max_tokens`` or the configured default, so usually actual <= estimate and
the term is 0). With the defaults (chunk = 1% of the limit) and 4 replicas: at
most 4% over. Two things the bound does not cover, both chosen deliberately:
with ``on_store_error: open`` a replica that cannot reach the store keeps
admitting (availability over the bound; logged);
a replica that crashes with unsettled reservations leaves their estimates in
the counter (the window is overcounted, never undercounted).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import itertools
import logging
import math
import time as _time
import zoneinfo
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import QuotaExceeded, Unavailable
from .ledger import Ledger, nano_to_usd, usd_to_nano
from .periodic import PeriodicSync

log = logging.getLogger(__name__)

PERIODS = ("daily", "monthly")
SCOPES = ("tenants", "surfaces")
OK, NEAR, SPENT, UNLIMITED = "ok", "near", "spent", "unlimited"


class BudgetExceeded(QuotaExceeded):
    """429: the caller's budget is spent, with when it resets and its free tier model."""

    def __init__(self, message: str, *, free_tier_model: str | None = None, retry_after: int | None = None):
        super().__init__(message, headers={"retry-after": str(retry_after)} if retry_after else None)
        self.free_tier_model = free_tier_model


# ---------------------------------------------------------------------------------------------------------------
# Settings

@dataclass(frozen=True)
class Budget:
    scope: str                 # "tenant" | "surface"
    name: str
    period: str                # "daily" | "monthly"
    limit_usd: float
    free_tier_model: str | None = None

    @property
    def label(self) -> str:
        return f"{self.scope} '{self.name}' {self.period}"


@dataclass(frozen=True)
class BudgetSettings:
    budgets: tuple[Budget, ...] = ()
    timezone: str = "UTC"
    near_fraction: float = 0.2
    free_tier_model: str | None = None
    reservation_chunk: float = 0.01
    sync_interval_s: float = 1.0
    on_store_error: str = "open"
    _index: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        index: dict[tuple[str, str], list[Budget]] = {}
        for b in self.budgets:
            index.setdefault((b.scope, b.name), []).append(b)
        self._index.update(index)

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def applicable(self, tenant: str | None, surface: str | None) -> list[Budget]:
        """The budgets a request from this tenant on this surface is charged to."""
        out: list[Budget] = []
        if tenant is not None:
            out += self._index.get(("tenant", tenant), ())
        if surface is not None:
            out += self._index.get(("surface", surface), ())
        return out

    @classmethod
    def from_config(cls, mapping: Mapping[str, Any] | None, *, models: Collection[str] | None = None
                    ) -> BudgetSettings:
        """Validate the ``budgets:`` section; raises ``ValueError("budgets.key.path: problem")``.

        ``models``, when given, are the catalog's model ids: a ``free_tier_model`` must be one of them.
        """
        if mapping is None:
            return cls()
        if not isinstance(mapping, Mapping):
            raise ValueError(f"budgets: must be a mapping, not {type(mapping).__name__}")
        known = {"timezone", "near_fraction", "free_tier_model", "reservation_chunk", "sync_interval_s",
                 "on_store_error", "tenants", "surfaces"}
        for key in mapping:
            if key not in known:
                raise ValueError(f"budgets.{key}: unknown key (known: {', '.join(sorted(known))})")
        tz = mapping.get("timezone", "UTC")
        if not isinstance(tz, str):
            raise ValueError(f"budgets.timezone: must be an IANA time zone name, not {tz!r}")
        try:
            zoneinfo.ZoneInfo(tz)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"budgets.timezone: unknown time zone {tz!r} (an IANA name such as Europe/Berlin)") \
                from None
        near = _number(mapping, "near_fraction", 0.2, "budgets.near_fraction")
        if not 0 <= near < 1:
            raise ValueError(f"budgets.near_fraction: must be in [0, 1), not {near!r}")
        chunk = _number(mapping, "reservation_chunk", 0.01, "budgets.reservation_chunk")
        if not 0 < chunk <= 1:
            raise ValueError(f"budgets.reservation_chunk: must be in (0, 1] (a fraction of each budget), not {chunk!r}")
        interval = _number(mapping, "sync_interval_s", 1.0, "budgets.sync_interval_s")
        if interval <= 0:
            raise ValueError(f"budgets.sync_interval_s: must be positive, not {interval!r}")
        on_error = mapping.get("on_store_error", "open")
        if on_error not in ("open", "closed"):
            raise ValueError(f"budgets.on_store_error: must be 'open' or 'closed', not {on_error!r}")
        free = _model(mapping.get("free_tier_model"), "budgets.free_tier_model", models)
        budgets: list[Budget] = []
        for section in SCOPES:
            entries = mapping.get(section, {})
            if entries is None:
                continue
            if not isinstance(entries, Mapping):
                raise ValueError(f"budgets.{section}: must be a mapping of names to budgets")
            for name, entry in entries.items():
                path = f"budgets.{section}.{name}"
                if not isinstance(entry, Mapping):
                    raise ValueError(f"{path}: must be a mapping such as {{daily: 10, monthly: 200}}")
                for key in entry:
                    if key not in (*PERIODS, "free_tier_model"):
                        raise ValueError(f"{path}.{key}: unknown key (known: daily, monthly, free_tier_model)")
                if not any(p in entry for p in PERIODS):
                    raise ValueError(f"{path}: give at least one of daily, monthly (USD)")
                entry_free = _model(entry.get("free_tier_model"), f"{path}.free_tier_model", models) or free
                for period in PERIODS:
                    if period in entry:
                        limit = _number(entry, period, 0.0, f"{path}.{period}")
                        if limit < 0:
                            raise ValueError(f"{path}.{period}: must be >= 0 USD, not {limit!r}")
                        budgets.append(Budget(section[:-1], str(name), period, limit, entry_free))
        return cls(tuple(budgets), tz, near, free, chunk, interval, on_error)


def _number(mapping: Mapping[str, Any], key: str, default: float, path: str) -> float:
    v = mapping.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{path}: must be a number, not {v!r}")
    return float(v)


def _model(v: Any, path: str, models: Collection[str] | None) -> str | None:
    if v is None:
        return None
    if not isinstance(v, str) or not v:
        raise ValueError(f"{path}: must be a model id")
    if models is not None and v not in models:
        raise ValueError(f"{path}: unknown model {v!r}")
    return v


# ---------------------------------------------------------------------------------------------------------------
# Windows

def window(period: str, now: float, tz: _dt.tzinfo) -> tuple[str, float, float]:
    """(window id, start, end) in unix seconds of the calendar day or month containing ``now`` in ``tz``."""
    local = _dt.datetime.fromtimestamp(now, tz)
    if period == "daily":
        start = _dt.datetime(local.year, local.month, local.day, tzinfo=tz)
        nxt = start.date() + _dt.timedelta(days=1)
        end = _dt.datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz)   # wall-clock midnight: DST-safe
        wid = start.strftime("%Y-%m-%d")
    elif period == "monthly":
        start = _dt.datetime(local.year, local.month, 1, tzinfo=tz)
        end = _dt.datetime(local.year + (local.month == 12), local.month % 12 + 1, 1, tzinfo=tz)
        wid = start.strftime("%Y-%m")
    else:
        raise ValueError(f"unknown period {period!r}")
    return wid, start.timestamp(), end.timestamp()


def counter_key(budget: Budget, window_id: str) -> str:
    return f"{budget.scope}:{budget.name}:{budget.period}:{window_id}"


# ---------------------------------------------------------------------------------------------------------------
# The manager

@dataclass
class _Counter:
    limit: int               # nano-USD
    chunk: int               # nano-USD a replica may commit between syncs
    start: float
    end: float
    known: int = 0           # the shared total at the last sync
    unsynced: int = 0        # this replica's net deltas since
    flushing: int = 0        # deltas in a sync that has not answered yet

    @property
    def total(self) -> int:
        return self.known + self.flushing + self.unsynced


@dataclass
class Reservation:
    """What ``reserve`` charged; hand it to ``settle`` when the request ends."""

    id: int
    keys: tuple[str, ...]
    amount: int               # nano-USD charged at reservation
    free_tier: bool = False
    settled: bool = False

    @property
    def amount_usd(self) -> float:
        return nano_to_usd(self.amount)


@dataclass(frozen=True)
class BudgetStatus:
    state: str                      # ok | near | spent | unlimited
    remaining_usd: float | None     # the least left in any applicable budget
    budget: Budget | None = None    # the budget that decided the state
    used_usd: float = 0.0
    window_start: float | None = None
    window_end: float | None = None
    timezone: str = "UTC"

    @property
    def free_tier_model(self) -> str | None:
        return self.budget.free_tier_model if self.budget else None

    def error(self, now: float, estimate: float | None = None) -> BudgetExceeded:
        """The 429 a spent (or too small) budget answers with."""
        b = self.budget
        assert b is not None and self.window_end is not None and self.window_start is not None
        tz = zoneinfo.ZoneInfo(self.timezone)
        start = _dt.datetime.fromtimestamp(self.window_start, tz).strftime("%Y-%m-%d %H:%M")
        end = _dt.datetime.fromtimestamp(self.window_end, tz).strftime("%Y-%m-%d %H:%M")
        if estimate is not None and (self.remaining_usd or 0) > 0:
            what = (f"this request's estimated cost ${estimate:.4f} exceeds the ${self.remaining_usd:.4f} left in "
                    f"the {b.period} budget of ${_usd(b.limit_usd)} for {b.scope} '{b.name}'")
        else:
            what = (f"the {b.period} budget of ${_usd(b.limit_usd)} for {b.scope} '{b.name}' is spent "
                    f"(${_usd(self.used_usd)} used since {start})")
        return BudgetExceeded(f"Budget exceeded: {what}; it resets at {end} {self.timezone}.",
                              free_tier_model=b.free_tier_model,
                              retry_after=max(1, math.ceil(self.window_end - now)))


def _usd(amount: float) -> str:
    """Dollars with cents, and as many more places (up to six) as a small amount needs: a $0.004
    budget read "$0.00 ... ($0.00 used)" with cents only (tryout 7)."""
    cents = f"{amount:.2f}"
    if abs(amount - float(cents)) < 5e-7:
        return cents
    return f"{amount:.6f}".rstrip("0")


class BudgetManager:
    """One replica's view of the shared budget counters; implements ``cost.BudgetView``.

    ``store`` is the ledger (SQLite or Redis) whose ``add_counters`` is the atomic shared counter.
    Call ``await start()`` once (first sync and the background task) and ``await close()`` at shutdown.
    """

    def __init__(self, settings: BudgetSettings, store: Ledger, *, clock: Callable[[], float] = _time.time):
        self.settings = settings
        self.store = store
        self.clock = clock
        self._tz = settings.tz
        self._counters: dict[str, _Counter] = {}
        self._ids = itertools.count(1)
        self._sync_lock: asyncio.Lock | None = None
        self._loop = PeriodicSync(self.sync, lambda: self.settings.sync_interval_s, "budget")
        self.store_ok = True
        self.syncs = 0

    def reconfigure(self, settings: BudgetSettings) -> None:
        """New budget settings (hot reload) apply at once: each current window's counter takes its
        budget's new limit and chunk; what was spent (and reserved) in it is kept."""
        self.settings = settings
        self._tz = settings.tz
        now = self.clock()
        for b in settings.budgets:
            wid, _start, _end = window(b.period, now, self._tz)
            c = self._counters.get(counter_key(b, wid))
            if c is not None:
                c.limit = usd_to_nano(b.limit_usd)
                c.chunk = max(1, round(c.limit * settings.reservation_chunk))

    # -- BudgetView --------------------------------------------------------------------------------------------
    def remaining(self, tenant: str | None, surface: str | None) -> float | None:
        """USD this tenant/surface pair may still spend now (the least over its budgets); None = no budget."""
        return self.status(tenant, surface).remaining_usd

    def status(self, tenant: str | None, surface: str | None) -> BudgetStatus:
        """ok / near / spent / unlimited, from local state only (no I/O)."""
        now = self.clock()
        worst: tuple[float, Budget, _Counter] | None = None
        least: float | None = None
        for b in self.settings.applicable(tenant, surface):
            c = self._counter(b, now)
            left = nano_to_usd(c.limit - c.total)
            least = left if least is None else min(least, left)
            fraction = left / b.limit_usd if b.limit_usd > 0 else (1.0 if left > 0 else -1.0)
            if worst is None or fraction < worst[0]:
                worst = (fraction, b, c)
        if worst is None:
            return BudgetStatus(UNLIMITED, None, timezone=self.settings.timezone)
        fraction, b, c = worst
        state = SPENT if c.total >= c.limit else NEAR if fraction < self.settings.near_fraction else OK
        return BudgetStatus(state, max(0.0, least if least is not None else 0.0), b, nano_to_usd(c.total),
                            c.start, c.end, self.settings.timezone)

    def report(self) -> list[tuple[Budget, float]]:
        """Every budget with the USD left in its current window (for the metrics gauges)."""
        now = self.clock()
        out = []
        for b in self.settings.budgets:
            c = self._counter(b, now)
            out.append((b, max(0.0, nano_to_usd(c.limit - c.total))))
        return out

    # -- reserve / settle --------------------------------------------------------------------------------------
    async def reserve(self, tenant: str | None, surface: str | None, estimated_cost: float, *,
                      free_tier: bool = False) -> Reservation:
        """Charge ``estimated_cost`` USD to every applicable budget, or raise ``BudgetExceeded`` (429).

        ``free_tier=True`` charges without checking: the caller already rerouted a spent budget to its free
        tier model, whose (usually zero) cost is still recorded. Waits for a sync only when this replica's
        unsynced spend would pass one chunk (see the module docstring).
        """
        budgets = self.settings.applicable(tenant, surface)
        if not budgets:
            return Reservation(next(self._ids), (), 0, free_tier)
        amount = max(0, usd_to_nano(estimated_cost))
        for attempt in (0, 1):
            now = self.clock()
            counters = [(b, *self._counter_key(b, now)) for b in budgets]
            if not free_tier:
                # Only a spent budget refuses. An estimate is an upper bound (the reply's max_tokens), so
                # one larger than what is left must not refuse a request the rest would pay for: it is
                # charged, and settle() corrects it to the bill (the overspend bound counts one estimate).
                for b, _key, c in counters:
                    if c.total >= c.limit:
                        raise self._status_of(b, c).error(now)
            # Past one chunk of unsynced spend, sync first. With nothing unsynced, one estimate larger than
            # the chunk is admitted alone (the bound's "largest single estimate").
            over_chunk = any(c.unsynced != 0 and c.unsynced + amount > c.chunk for _b, _k, c in counters)
            if attempt == 0 and over_chunk:
                if not await self.sync() and self.settings.on_store_error == "closed":
                    raise Unavailable("budget store unreachable; refusing budgeted requests "
                                      "(budgets.on_store_error: closed)")
                continue
            break
        for _b, _key, c in counters:
            c.unsynced += amount
        self._maybe_wake(c for _b, _k, c in counters)
        return Reservation(next(self._ids), tuple(k for _b, k, _c in counters), amount, free_tier)

    def settle(self, reservation: Reservation, actual_cost: float) -> None:
        """The request ended and cost ``actual_cost`` USD (0 if it failed): replace the estimate with it."""
        if reservation.settled:
            return
        reservation.settled = True
        delta = max(0, usd_to_nano(actual_cost)) - reservation.amount
        if not delta:
            return
        touched = []
        for key in reservation.keys:
            c = self._counters.get(key)
            if c is None:     # window rolled over and was pruned: the counter lives on in the store
                c = self._counters[key] = _Counter(0, 0, 0.0, 0.0)
            c.unsynced += delta
            touched.append(c)
        self._maybe_wake(touched)

    def charge(self, reservation: Reservation, extra_usd: float) -> None:
        """Add ``extra_usd`` to the budgets a reservation was charged to (a hedged request's losing
        attempts), after or before its settle."""
        delta = max(0, usd_to_nano(extra_usd))
        touched = []
        for key in reservation.keys:
            c = self._counters.get(key)
            if c is None:
                c = self._counters[key] = _Counter(0, 0, 0.0, 0.0)
            c.unsynced += delta
            touched.append(c)
        self._maybe_wake(touched)

    def release(self, reservation: Reservation) -> None:
        """The request never reached a provider: give the estimate back."""
        self.settle(reservation, 0.0)

    # -- sync --------------------------------------------------------------------------------------------------
    async def sync(self) -> bool:
        """Push this replica's unsynced deltas and read every counter's shared total, atomically; False if
        the store failed (the deltas stay unsynced and are pushed next time)."""
        if self._sync_lock is None:
            self._sync_lock = asyncio.Lock()
        async with self._sync_lock:
            now = self.clock()
            for b in self.settings.budgets:          # every current window is known, even before traffic
                self._counter(b, now)
            deltas: dict[str, int] = {}
            expires: dict[str, float] = {}
            for key, c in self._counters.items():
                c.flushing, c.unsynced = c.unsynced, 0
                deltas[key] = c.flushing
                expires[key] = c.end + 86400 if c.end else 0.0
            try:
                totals = await self.store.add_counters(deltas, expires)
            except Exception:
                for c in self._counters.values():
                    c.unsynced += c.flushing
                    c.flushing = 0
                if self.store_ok:
                    log.exception("budget store unreachable; deciding on local state "
                                  "(budgets.on_store_error: %s)", self.settings.on_store_error)
                self.store_ok = False
                return False
            for key, c in list(self._counters.items()):
                c.known = totals.get(key, c.known + c.flushing)
                c.flushing = 0
                if c.end < now - 3600 and c.unsynced == 0:
                    del self._counters[key]          # a past window, fully pushed
            self.store_ok = True
            self.syncs += 1
            return True

    async def reconcile(self, ledger: Ledger, now: float, only: set[Budget] | None = None) -> None:
        """Make every current window's counter equal the spend the usage records show (call with no
        request in flight, at startup): the records survive a crash, unsynced counter deltas do not.
        ``only``: just these budgets (one a reload added, which no request has reserved against yet)."""
        await self.sync()
        for b in self.settings.budgets:
            if only is not None and b not in only:
                continue
            key, c = self._counter_key(b, now)
            spent = usd_to_nano(await ledger.spend(since=c.start, until=c.end,
                                                   **{b.scope: b.name}))
            if spent != c.total:
                c.unsynced += spent - c.total
        await self.sync()

    async def start(self) -> None:
        """First sync (so a restarted replica knows today's spend) and the periodic background sync."""
        await self.sync()
        self._loop.start()

    async def close(self) -> None:
        """Stop the background sync and push what is left."""
        await self._loop.close()
        await self.sync()

    def _maybe_wake(self, counters: Any) -> None:
        if any(c.unsynced * 2 >= c.chunk for c in counters):
            self._loop.wake()

    # -- helpers -----------------------------------------------------------------------------------------------
    def _counter_key(self, b: Budget, now: float) -> tuple[str, _Counter]:
        wid, start, end = window(b.period, now, self._tz)
        key = counter_key(b, wid)
        c = self._counters.get(key)
        if c is None or c.end == 0.0:
            limit = usd_to_nano(b.limit_usd)
            fresh = _Counter(limit, max(1, round(limit * self.settings.reservation_chunk)), start, end)
            if c is not None:    # placeholder made by settle() after pruning
                fresh.unsynced, fresh.known = c.unsynced, c.known
            c = self._counters[key] = fresh
        return key, c

    def _counter(self, b: Budget, now: float) -> _Counter:
        return self._counter_key(b, now)[1]

    def _status_of(self, b: Budget, c: _Counter) -> BudgetStatus:
        left = nano_to_usd(c.limit - c.total)
        return BudgetStatus(SPENT if left <= 0 else NEAR, max(0.0, left), b, nano_to_usd(c.total), c.start, c.end,
                            self.settings.timezone)
