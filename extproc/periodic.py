"""A background task that runs a sync every few seconds, or at once when woken, until closed.

The budget and rate-limit counters both push their local deltas to the shared store this way
(``budgets.BudgetManager``, ``ratelimit.RateLimiter``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

log = logging.getLogger(__name__)


class PeriodicSync:
    """Call ``sync()`` every ``interval_s()`` seconds, or as soon as ``wake()`` is called, from
    ``start()`` until ``close()``; a failed sync is logged and the loop goes on."""

    def __init__(self, sync: Callable[[], Awaitable[object]], interval_s: Callable[[], float], what: str):
        self._sync = sync
        self._interval_s = interval_s
        self._what = what
        self._task: asyncio.Task | None = None
        self._wake: asyncio.Event | None = None
        self._closing = False

    def start(self) -> None:
        """Start the loop (in the running event loop); a second call does nothing."""
        if self._task is None:
            self._closing = False
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(self._run())

    def wake(self) -> None:
        """Sync now rather than at the next interval (nothing before ``start()``)."""
        if self._wake is not None:
            self._wake.set()

    async def close(self) -> None:
        """Stop the loop; the caller pushes what is left with a last sync of its own."""
        if self._task is None:
            return
        # A flag as well as cancel(): wait_for() in 3.11 swallows a cancel that lands as the wake
        # event fires (a sync asked for just before close), and the loop would run on.
        self._closing = True
        self.wake()
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), self._interval_s())
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            if self._closing:
                return
            try:
                await self._sync()
            except Exception:   # never let the loop die
                log.exception("%s sync failed", self._what)
