"""Rate limits per tenant and per key: requests and tokens per minute, shared across replicas.

Config (``tenants.NAME.rate_limit``, a key file entry's ``requests_per_minute`` /
``tokens_per_minute``)::

    tenants:
      helpdesk:
        rate_limit:
          requests_per_minute: 600        # the whole tenant, all its keys, all replicas
          tokens_per_minute: 1000000
          per_key: {requests_per_minute: 300}   # each of its keys (a key file entry may set its own)

A request counts 1 against each ``requests`` limit (every request to a model
endpoint, requests refused as invalid included, counted before its body is read:
OpenAI counts unsuccessful requests too) and its estimated tokens
(prompt estimate + ``max_tokens`` or ``routing.default_output_tokens``, clamped to the
output limit of the plan's models as their translators clamp it, as OpenAI counts before it
knows the answer) against each ``tokens`` limit; when it ends,
the estimate is replaced by the provider's reported usage (0 if it failed).

``/v1/messages/count_tokens`` counts 1 against the same ``requests_per_minute``
values in a window of its own (``pool="count_tokens"``: separate counters), as
Anthropic's token-counting page says its limits and message creation's are
"separate and independent": an agent that counts before each turn keeps its whole
message rate, and a flood of counts is still bounded (the gateway tokenizes them).

The window is a sliding window counter over calendar minutes: usage now is
``previous minute x (1 - elapsed fraction) + current minute``, which smooths the
burst a fixed window allows at its boundary, with two counters per limit. Over
a limit: 429 ``rate_limit_exceeded`` with ``retry-after`` (seconds until the
request would fit) and OpenAI's headers on every answer:
``x-ratelimit-limit-requests``, ``x-ratelimit-remaining-requests``,
``x-ratelimit-reset-requests`` (a duration such as ``1s``, ``6m0s``, ``120ms``:
the time for the used part to be replenished at the limit's rate) and the same
three for ``-tokens``; with several limits of a kind, the one with the least left.

Sharing across replicas works like the spend budgets (``budgets.py``): the
counters live in the ledger's store (Redis with many replicas; SQLite with
one) through its atomic ``add_counters``; each replica decides on its last view
of the shared total plus its own unsynced count, pushes and re-reads every
``SYNC_INTERVAL_S``, and syncs before an admission that would take its unsynced
count past one chunk (``CHUNK_FRACTION`` of the limit, at least 1). Hence, with
R replicas, a minute admits at most ``limit + R x chunk`` (small limits: chunk 1,
so at most one request per replica over). A store that fails leaves each
replica deciding on its own counts (logged), like ``budgets.on_store_error: open``.

The arithmetic at the top is pure (``now`` is passed in); ``RateLimiter`` is the shell.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time as _time
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import RateLimited
from .periodic import PeriodicSync

log = logging.getLogger(__name__)

WINDOW_S = 60
KINDS = ("requests", "tokens")
CHUNK_FRACTION = 0.02
SYNC_INTERVAL_S = 0.5


# ---- pure -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Limit:
    scope: str          # "tenant" | "key"
    name: str
    kind: str           # "requests" | "tokens"
    per_minute: int
    pool: str = ""      # "": model requests; "count_tokens": its own window under the same values

    def counter(self, minute: int) -> str:
        pool = f"{self.pool}:" if self.pool else ""
        return f"ratelimit:{self.scope}:{self.name}:{pool}{self.kind}:{minute}"

    @property
    def chunk(self) -> int:
        return max(1, int(self.per_minute * CHUNK_FRACTION))

    @property
    def label(self) -> str:
        unit = "RPM" if self.kind == "requests" else "TPM"
        pool = f" for {self.pool}" if self.pool else ""
        return f"{self.scope} '{self.name}' on {self.kind} per min ({unit}){pool}"


def limits_for(config: Any, caller: Any, pool: str = "") -> list[Limit]:
    """The limits a request from ``caller`` (keys.Caller) counts against, in ``pool``'s counters."""
    out: list[Limit] = []
    if caller is None or caller.tenant is None:
        return out
    tenant = config.tenants.get(caller.tenant)
    rl = tenant.rate_limit if tenant is not None else None
    if rl is not None:
        for kind in KINDS:
            value = getattr(rl, f"{kind}_per_minute")
            if value:
                out.append(Limit("tenant", caller.tenant, kind, value, pool))
    if caller.key_id is not None:
        for kind in KINDS:
            value = getattr(caller, f"{kind}_per_minute")
            if value:
                out.append(Limit("key", caller.key_id, kind, value, pool))
    return out


def usage(previous: float, current: float, now: float) -> float:
    """The sliding window's count at ``now``: the previous minute weighted by the part still in the window."""
    elapsed = (now % WINDOW_S) / WINDOW_S
    return previous * (1.0 - elapsed) + current


def wait_s(limit: int, previous: float, current: float, amount: float, now: float) -> float | None:
    """Seconds until ``amount`` more fits under ``limit`` (0: now); None when it never fits (amount > limit)."""
    if amount > limit:
        return None
    elapsed = now % WINDOW_S
    if usage(previous, current, now) + amount <= limit:
        return 0.0
    room = limit - current - amount
    if room >= 0 and previous > 0:
        # Within this minute, as the previous minute's share decays: previous x (1 - t/60) <= room.
        return max(0.0, (1.0 - room / previous) * WINDOW_S - elapsed)
    # Next minute: this minute becomes the previous one and decays from there.
    until_next = WINDOW_S - elapsed
    if current <= limit - amount:
        return until_next
    return until_next + (1.0 - (limit - amount) / current) * WINDOW_S


def duration(seconds: float) -> str:
    """A duration as OpenAI writes its x-ratelimit-reset-* headers: ``120ms``, ``1s``, ``6m0s``, ``1m30.5s``."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{int(minutes)}m{text}" if minutes else text


def headers_for(states: list[tuple[Limit, float]]) -> dict[str, str]:
    """OpenAI's x-ratelimit-* headers from (limit, usage after this request) pairs."""
    out: dict[str, str] = {}
    for kind in KINDS:
        mine = [(lim, used) for lim, used in states if lim.kind == kind]
        if not mine:
            continue
        lim, used = min(mine, key=lambda s: s[0].per_minute - s[1])
        out[f"x-ratelimit-limit-{kind}"] = str(lim.per_minute)
        out[f"x-ratelimit-remaining-{kind}"] = str(max(0, math.floor(lim.per_minute - used)))
        out[f"x-ratelimit-reset-{kind}"] = duration(max(0.0, used) / lim.per_minute * WINDOW_S)
    return out


def refusal(limit: Limit, used: float, amount: float, wait: float | None, headers: dict[str, str]) -> RateLimited:
    """The 429 for a request that does not fit ``limit`` (OpenAI's wording and headers)."""
    if wait is None:
        message = (f"Request too large for {limit.label}: Limit {limit.per_minute}, Requested {amount:g}. "
                   f"Send fewer tokens (max_tokens counts).")
        retry = WINDOW_S
    else:
        message = (f"Rate limit reached for {limit.label}: Limit {limit.per_minute}, Used {math.ceil(used)}, "
                   f"Requested {amount:g}. Please try again in {duration(wait)}.")
        retry = max(1, math.ceil(wait))
    return RateLimited(message, headers={**headers, "retry-after": str(retry)})


# ---- the shell ------------------------------------------------------------------------------------

@dataclass
class _Counter:
    known: int = 0        # the shared total at the last sync
    unsynced: int = 0     # this replica's deltas since
    flushing: int = 0     # deltas in a sync that has not answered yet
    expires: float = 0.0

    @property
    def total(self) -> int:
        return self.known + self.flushing + self.unsynced


@dataclass
class Admission:
    """What ``admit`` counted; ``settle`` it with the actual tokens when the request ends."""

    tokens: int = 0                                      # the estimate counted against tokens limits
    token_counters: tuple[str, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    settled: bool = False


class RateLimiter:
    """One replica's view of the shared rate limit counters, in ``store`` (a ``ledger.Ledger``).

    ``await start()`` once, ``await close()`` at shutdown."""

    def __init__(self, store: Any, *, clock: Callable[[], float] = _time.time,
                 sync_interval_s: float = SYNC_INTERVAL_S):
        self.store = store
        self.clock = clock
        self.sync_interval_s = sync_interval_s
        self._counters: dict[str, _Counter] = {}
        self._lock: asyncio.Lock | None = None
        self._loop = PeriodicSync(self.sync, lambda: self.sync_interval_s, "rate limit")
        self.store_ok = True

    async def admit(self, config: Any, caller: Any, tokens: int, kinds: tuple[str, ...] = KINDS,
                    pool: str = "") -> Admission:
        """Count one request of about ``tokens`` tokens, or raise ``RateLimited`` (429) with its headers.
        ``kinds``: the limits counted (``("requests",)``: the request alone, before its tokens are known;
        ``("tokens",)``: its tokens, the request having been counted); ``pool``: whose counters
        (``"count_tokens"``: that endpoint's own window, see the module docstring)."""
        limits = [lim for lim in limits_for(config, caller, pool) if lim.kind in kinds]
        if not limits:
            return Admission()
        for attempt in (0, 1):
            now = self.clock()
            minute = int(now // WINDOW_S)
            states = []
            for lim in limits:
                amount = 1 if lim.kind == "requests" else tokens
                previous = self._counter(lim.counter(minute - 1), minute - 1)
                current = self._counter(lim.counter(minute), minute)
                states.append((lim, amount, previous, current))
            for lim, amount, previous, current in states:
                used = usage(previous.total, current.total, now)
                if used + amount > lim.per_minute:
                    wait = wait_s(lim.per_minute, previous.total, current.total, amount, now)
                    headers = headers_for([(s[0], usage(s[2].total, s[3].total, now)) for s in states])
                    raise refusal(lim, used, amount, wait, headers)
            over_chunk = any(c.unsynced != 0 and c.unsynced + amount > lim.chunk
                             for lim, amount, _p, c in states)
            if attempt == 0 and over_chunk:
                await self.sync()
                continue
            break
        for lim, amount, _previous, current in states:
            current.unsynced += amount
        self._maybe_wake([(lim, c) for lim, _a, _p, c in states])
        headers = headers_for([(lim, usage(p.total, c.total, now)) for lim, _a, p, c in states])
        return Admission(tokens, tuple(lim.counter(minute) for lim in limits if lim.kind == "tokens"), headers)

    def settle(self, admission: Admission | None, actual_tokens: int | None) -> None:
        """The request ended having used ``actual_tokens`` (None or 0: none): correct the estimate."""
        if admission is None or admission.settled or not admission.token_counters:
            return
        admission.settled = True
        delta = max(0, int(actual_tokens or 0)) - admission.tokens
        if delta:
            for key in admission.token_counters:
                self._counters.setdefault(key, _Counter()).unsynced += delta

    async def sync(self) -> bool:
        """Push this replica's deltas and read back the shared totals (one atomic store call)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if not self._counters:
                return True
            deltas, expires = {}, {}
            for key, c in self._counters.items():
                c.flushing, c.unsynced = c.flushing + c.unsynced, 0
                deltas[key], expires[key] = c.flushing, c.expires
            try:
                totals = await self.store.add_counters(deltas, expires)
            except Exception:
                for c in self._counters.values():
                    c.unsynced += c.flushing
                    c.flushing = 0
                if self.store_ok:
                    log.exception("rate limit store unreachable; deciding on this replica's counts")
                self.store_ok = False
                return False
            now_minute = int(self.clock() // WINDOW_S)
            for key, c in list(self._counters.items()):
                c.known = totals.get(key, c.known + c.flushing)
                c.flushing = 0
                if c.expires and c.expires < (now_minute - 1) * WINDOW_S and c.unsynced == 0:
                    del self._counters[key]     # a window that no longer counts
            self.store_ok = True
            return True

    async def start(self) -> None:
        self._loop.start()

    async def close(self) -> None:
        await self._loop.close()
        await self.sync()

    def _maybe_wake(self, pairs: list[tuple[Limit, _Counter]]) -> None:
        if any(c.unsynced * 2 >= lim.chunk for lim, c in pairs):
            self._loop.wake()

    def _counter(self, key: str, minute: int) -> _Counter:
        c = self._counters.get(key)
        if c is None:
            c = self._counters[key] = _Counter()
        if not c.expires:
            c.expires = (minute + 2) * WINDOW_S     # the minute after it still reads it as "previous"
        return c
