"""Budgets: settings, windows, ok -> near -> spent, the 429, the free tier, and the overspend bound across
two managers sharing one store (a REAL redis-server, and one SQLite file)."""

import asyncio
import datetime as dt
import json
import random
import zoneinfo

import pytest

from extproc.budgets import (NEAR, OK, SPENT, UNLIMITED, BudgetExceeded, BudgetManager, BudgetSettings, window)
from extproc.cost import BudgetView
from extproc.errors import Unavailable
from extproc.ledger import RedisLedger, SQLiteLedger, nano_to_usd


BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
# Today 15:00 in Berlin: counters expire a day after their window by the real clock, so the fake one stays near it.
TODAY = dt.datetime.now(BERLIN).date()
NOW = dt.datetime(TODAY.year, TODAY.month, TODAY.day, 15, 0, tzinfo=BERLIN).timestamp()
TOMORROW = TODAY + dt.timedelta(days=1)


def run(coro):
    return asyncio.run(coro)


def settings(**over):
    base = {"timezone": "Europe/Berlin", "near_fraction": 0.2, "reservation_chunk": 0.01,
            "tenants": {"acme": {"daily": 10, "monthly": 100}, "trial": {"daily": 1, "free_tier_model": "tiny"}},
            "surfaces": {"support": {"monthly": 50}}}
    base.update(over)
    return BudgetSettings.from_config(base, models={"tiny", "big", "small"})


# -- settings ----------------------------------------------------------------------------------------------------

def test_from_config():
    s = settings(free_tier_model="small")
    assert s.timezone == "Europe/Berlin" and s.near_fraction == 0.2
    assert [(b.scope, b.name, b.period, b.limit_usd, b.free_tier_model) for b in s.budgets] == [
        ("tenant", "acme", "daily", 10.0, "small"), ("tenant", "acme", "monthly", 100.0, "small"),
        ("tenant", "trial", "daily", 1.0, "tiny"), ("surface", "support", "monthly", 50.0, "small")]
    assert [b.period for b in s.applicable("acme", "support")] == ["daily", "monthly", "monthly"]
    assert s.applicable(None, None) == [] and s.applicable("nobody", "nowhere") == []
    assert BudgetSettings.from_config(None).budgets == ()


@pytest.mark.parametrize("bad, message", [
    ([], "budgets: must be a mapping"),
    ({"tenant": {}}, "budgets.tenant: unknown key"),
    ({"timezone": "Mars/Olympus"}, "budgets.timezone: unknown time zone"),
    ({"near_fraction": 1.5}, r"budgets.near_fraction: must be in \[0, 1\)"),
    ({"reservation_chunk": 0}, "budgets.reservation_chunk: must be in"),
    ({"sync_interval_s": -1}, "budgets.sync_interval_s: must be positive"),
    ({"on_store_error": "maybe"}, "budgets.on_store_error: must be 'open' or 'closed'"),
    ({"free_tier_model": "nope"}, "budgets.free_tier_model: unknown model 'nope'"),
    ({"tenants": []}, "budgets.tenants: must be a mapping"),
    ({"tenants": {"a": 10}}, "budgets.tenants.a: must be a mapping"),
    ({"tenants": {"a": {}}}, "budgets.tenants.a: give at least one of daily, monthly"),
    ({"tenants": {"a": {"weekly": 1}}}, "budgets.tenants.a.weekly: unknown key"),
    ({"surfaces": {"s": {"daily": "lots"}}}, "budgets.surfaces.s.daily: must be a number"),
    ({"surfaces": {"s": {"daily": -1}}}, "budgets.surfaces.s.daily: must be >= 0"),
    ({"tenants": {"a": {"daily": 1, "free_tier_model": "x"}}}, "budgets.tenants.a.free_tier_model: unknown model"),
])
def test_from_config_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        BudgetSettings.from_config(bad, models={"tiny"})


def test_windows_follow_the_configured_zone_and_dst():
    berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    # 2025-03-30 is the spring-forward day in Berlin: 23 hours long
    t = dt.datetime(2025, 3, 30, 12, 0, tzinfo=berlin).timestamp()
    wid, start, end = window("daily", t, berlin)
    assert wid == "2025-03-30" and end - start == 23 * 3600
    assert dt.datetime.fromtimestamp(start, berlin).hour == 0
    # 23:30 UTC on Mar 14 is already Mar 15 in Berlin
    late = dt.datetime(2025, 3, 14, 23, 30, tzinfo=dt.timezone.utc).timestamp()
    assert window("daily", late, berlin)[0] == "2025-03-15"
    assert window("daily", late, zoneinfo.ZoneInfo("UTC"))[0] == "2025-03-14"
    wid, start, end = window("monthly", dt.datetime(2025, 12, 31, 23, 0, tzinfo=berlin).timestamp(), berlin)
    assert wid == "2025-12" and dt.datetime.fromtimestamp(end, berlin) == dt.datetime(2026, 1, 1, tzinfo=berlin)


# -- one manager -------------------------------------------------------------------------------------------------

class CountingStore:
    """Wraps a ledger, counting round trips: the hot path must not make any."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0

    async def add_counters(self, deltas, expires):
        self.calls += 1
        return await self.inner.add_counters(deltas, expires)

    async def get_counters(self, keys):
        self.calls += 1
        return await self.inner.get_counters(keys)


def test_tenant_is_downgraded_then_refused(tmp_path):
    """ok -> near (remaining shrinks, so the policy keeps only cheaper candidates) -> spent (429)."""
    async def go():
        led = SQLiteLedger(str(tmp_path / "l.db"))
        m = BudgetManager(settings(), led, clock=lambda: NOW)
        await m.start()
        view: BudgetView = m       # implements the policy's protocol (structurally)
        assert view.remaining("acme", None) == 10.0
        assert m.status("acme", None).state == OK and m.remaining("acme", None) == 10.0
        assert m.remaining("nobody", None) is None and m.status(None, None).state == UNLIMITED

        def cheapest_affordable(candidates):
            """What the policy does with BudgetView.remaining: drop candidates costing more than is left."""
            left = m.remaining("acme", None)
            return [name for name, cost in candidates if left is None or cost <= left]

        candidates = [("big", 1.50), ("small", 0.05)]
        assert cheapest_affordable(candidates) == ["big", "small"]
        for _ in range(5):                                      # $8.50 of $10 spent
            m.settle(await m.reserve("acme", None, 2.0), 1.70)
        st = m.status("acme", None)
        assert st.state == NEAR and st.remaining_usd == pytest.approx(1.50)
        m.settle(await m.reserve("acme", None, 0.2), 0.2)       # $8.70: $1.30 left
        assert cheapest_affordable(candidates) == ["small"]     # downgraded: the premium candidate no longer fits
        # An estimate over what is left (an upper bound: max_tokens) is not refused while money is left:
        # it is charged, and the bill replaces it.
        big = await m.reserve("acme", None, 1.50)
        assert m.status("acme", None).state == SPENT            # in flight, the estimate counts
        m.settle(big, 1.30)                                     # exactly spent
        st = m.status("acme", None)
        assert st.state == SPENT and st.remaining_usd == 0.0 and m.remaining("acme", None) == 0.0
        with pytest.raises(BudgetExceeded) as e:
            await m.reserve("acme", None, 0.0001)
        err = e.value
        assert err.status == 429 and err.free_tier_model is None
        body = json.loads(err.body())
        assert body == {"error": {
            "message": "Budget exceeded: the daily budget of $10.00 for tenant 'acme' is spent ($10.00 used since "
                       f"{TODAY} 00:00); it resets at {TOMORROW} 00:00 Europe/Berlin.",
            "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}}
        midnight = dt.datetime(TOMORROW.year, TOMORROW.month, TOMORROW.day, tzinfo=BERLIN).timestamp()
        assert err.headers == {"retry-after": str(int(midnight - NOW))}    # 15:00 -> midnight
        assert m.status("acme", "support").state == SPENT       # the tightest budget decides
        await m.close()
        await led.close()
    run(go())


def test_spent_budget_routes_to_the_free_tier(tmp_path):
    async def go():
        led = SQLiteLedger(str(tmp_path / "l.db"))
        m = BudgetManager(settings(), led, clock=lambda: NOW)
        m.settle(await m.reserve("trial", None, 1.0), 1.0)
        st = m.status("trial", None)
        assert st.state == SPENT and st.free_tier_model == "tiny"
        with pytest.raises(BudgetExceeded) as e:
            await m.reserve("trial", None, 0.01)
        assert e.value.free_tier_model == "tiny"                 # the caller reroutes instead of answering 429
        r = await m.reserve("trial", None, 0.0, free_tier=True)  # the free tier's cost is still recorded
        m.settle(r, 0.0)
        await led.close()
    run(go())


def test_settle_replaces_the_estimate_and_release_refunds(tmp_path):
    async def go():
        led = SQLiteLedger(str(tmp_path / "l.db"))
        m = BudgetManager(settings(), led, clock=lambda: NOW)
        r = await m.reserve("acme", "support", 0.50)
        assert m.remaining("acme", None) == pytest.approx(9.50)   # in flight counts
        m.settle(r, 0.20)
        m.settle(r, 5.00)                                         # a second settle is ignored
        assert m.remaining("acme", None) == pytest.approx(9.80)
        m.release(await m.reserve("acme", None, 3.0))
        assert m.remaining("acme", None) == pytest.approx(9.80)
        await m.sync()
        assert m.status("acme", "support").used_usd == pytest.approx(0.20)
        await led.close()
    run(go())


def test_hot_path_makes_no_round_trip_within_a_chunk(tmp_path):
    async def go():
        led = SQLiteLedger(str(tmp_path / "l.db"))
        store = CountingStore(led)
        m = BudgetManager(settings(), store, clock=lambda: NOW)   # chunk = 1% of $10 = $0.10 (daily)
        await m.sync()
        store.calls = 0
        for _ in range(9):
            m.settle(await m.reserve("acme", None, 0.01), 0.01)    # $0.09 < one chunk
        assert store.calls == 0
        m.settle(await m.reserve("acme", None, 0.02), 0.02)        # would pass the chunk: one sync first
        assert store.calls == 1
        await led.close()
    run(go())


def test_restart_keeps_the_spend(tmp_path):
    path = str(tmp_path / "l.db")

    async def first():
        led = SQLiteLedger(path)
        m = BudgetManager(settings(), led, clock=lambda: NOW)
        await m.start()
        m.settle(await m.reserve("acme", None, 4.0), 3.0)
        await m.close()
        await led.close()

    async def second():
        led = SQLiteLedger(path)
        m = BudgetManager(settings(), led, clock=lambda: NOW)
        await m.start()
        assert m.remaining("acme", None) == pytest.approx(7.0)
        assert m.status("acme", None).used_usd == pytest.approx(3.0)
        await m.close()
        await led.close()
    run(first())
    run(second())


def test_store_down_open_and_closed(tmp_path):
    class Down:
        async def add_counters(self, *a):
            raise ConnectionError("down")

    async def go(mode):
        m = BudgetManager(settings(on_store_error=mode), Down(), clock=lambda: NOW)
        assert not await m.sync() and not m.store_ok
        m.settle(await m.reserve("acme", None, 0.09), 0.09)
        if mode == "open":
            m.settle(await m.reserve("acme", None, 0.09), 0.09)      # admitted on local state
            assert m.remaining("acme", None) == pytest.approx(9.82)
        else:
            with pytest.raises(Unavailable):
                await m.reserve("acme", None, 0.09)
    run(go("open"))
    run(go("closed"))


# -- two gateway processes, one store -------------------------------------------------------------------------------

LIMIT = 10.0
CHUNK = 0.01            # 1% of $10: $0.10 per replica between syncs
REPLICAS = 2
BOUND = REPLICAS * CHUNK * LIMIT   # documented: R x max(chunk, largest estimate) + estimate error (0 here)


async def _drive_two_managers(make_store):
    """Many concurrent reserve/settle on two managers until both refuse; return (admitted actual spend, stores)."""
    s = BudgetSettings.from_config({"reservation_chunk": CHUNK, "sync_interval_s": 0.005,
                                    "tenants": {"acme": {"daily": LIMIT}}})
    stores = [make_store(), make_store()]
    managers = [BudgetManager(s, st) for st in stores]
    for m in managers:
        await m.start()
    rng = random.Random(7)
    spent = [0.0]
    refused = [0]

    async def client(m):
        while refused[0] < 200:
            est = rng.uniform(0.001, 0.05)          # every estimate below one chunk ($0.10)
            try:
                r = await m.reserve("acme", None, est)
            except BudgetExceeded:
                refused[0] += 1
                await asyncio.sleep(0.001)
                continue
            await asyncio.sleep(rng.uniform(0, 0.004))   # the request in flight
            actual = est * rng.uniform(0.3, 1.0)       # cost.py over-estimates (max_tokens as the reply)
            m.settle(r, actual)
            spent[0] += actual
    await asyncio.gather(*(client(m) for m in managers for _ in range(16)))
    for m in managers:
        await m.close()
    counters = await stores[0].get_counters(list(managers[0]._counters))
    return spent[0], nano_to_usd(sum(counters.values())), managers, stores


def _check(spent, counted):
    assert spent <= LIMIT + BOUND, f"overspent: ${spent:.4f} > ${LIMIT} + bound ${BOUND}"
    assert spent >= LIMIT * 0.95, f"budget under-used: ${spent:.4f}"     # and it is not refusing early
    assert counted == pytest.approx(spent, abs=1e-6)                   # the shared counter agrees, to the nano-USD


def test_two_managers_sharing_redis_stay_within_the_bound(redis_url):
    async def go():
        prefix = f"budget{random.random()}:"
        spent, counted, managers, stores = await _drive_two_managers(
            lambda: RedisLedger(redis_url, key_prefix=prefix))
        _check(spent, counted)
        assert all(m.syncs > 5 for m in managers)
        for st in stores:
            await st.close()
        return spent
    run(go())


def test_two_managers_sharing_one_sqlite_file_stay_within_the_bound(tmp_path):
    async def go():
        spent, counted, _m, stores = await _drive_two_managers(lambda: SQLiteLedger(str(tmp_path / "shared.db")))
        _check(spent, counted)
        for st in stores:
            await st.close()
    run(go())


def test_a_reload_applies_new_limits_at_once_and_keeps_what_was_spent(tmp_path):
    async def go():
        led = SQLiteLedger(str(tmp_path / "l.db"))
        m = BudgetManager(settings(), led, clock=lambda: NOW)
        await m.start()
        m.settle(await m.reserve("acme", None, 10.0), 10.0)     # the daily $10 is spent
        assert m.status("acme", None).state == SPENT
        with pytest.raises(BudgetExceeded):
            await m.reserve("acme", None, 0.01)
        m.reconfigure(settings(tenants={"acme": {"daily": 25}}))
        st = m.status("acme", None)
        assert (st.state, st.remaining_usd, st.used_usd) == (OK, pytest.approx(15.0), pytest.approx(10.0))
        m.settle(await m.reserve("acme", None, 1.0), 1.0)
        await m.close()
        await led.close()
    run(go())


def test_reconcile_sets_the_counters_to_what_the_ledger_recorded(tmp_path):
    from extproc.accounting import UsageRecord

    async def go():
        led = SQLiteLedger(str(tmp_path / "l.db"))
        for i, cost in enumerate((1.25, 2.5)):    # written before a crash; the counters never synced
            led.append(UsageRecord(time=NOW - 60, request_id=f"r{i}", model="big", provider="p", tenant="acme",
                                   cost_usd=cost))
        led.append(UsageRecord(time=NOW - 86400 * 40, request_id="old", model="big", provider="p", tenant="acme",
                               cost_usd=99.0))   # another month: not this window's spend
        await led.flush()
        m = BudgetManager(settings(), led, clock=lambda: NOW)
        await m.start()
        assert m.status("acme", None).used_usd == 0.0
        await m.reconcile(led, NOW)
        assert m.remaining("acme", None) == pytest.approx(10 - 3.75)
        assert (await led.get_counters([k for k in m._counters if k.startswith("tenant:acme:daily")])) \
            == {k: 3_750_000_000 for k in m._counters if k.startswith("tenant:acme:daily")}
        await m.close()
        await led.close()
    run(go())


def test_a_budget_a_reload_adds_starts_from_what_its_window_already_spent(tmp_path):
    """Measured: a budget added by hot reload counted from zero, then, after a restart, from the whole
    day's spend. It must start from the ledger's spend at once, as a restart would."""
    import time as _time

    import yaml

    from extproc.accounting import UsageRecord
    from extproc.bookkeeping import Bookkeeping
    from extproc.config import parse
    from extproc.devstack import DEFAULT_ROUTING

    data = yaml.safe_load(DEFAULT_ROUTING.read_text())
    data["ledger"] = {"url": f"sqlite://{tmp_path / 'ledger.db'}"}
    data.pop("budgets", None)
    before = parse(data)
    data["budgets"] = {"tenants": {"acme": {"daily": 1.0}}}
    after = parse(data)

    async def go():
        books = Bookkeeping(before, environ={})
        await books.start()
        books.ledger.append(UsageRecord(time=_time.time() - 1, request_id="r0", model="gpt-4o", provider="openai",
                                        tenant="acme", cost_usd=0.6))
        await books.ledger.flush()
        books.reconfigure(after)
        await asyncio.gather(*books._tasks)
        assert books.budgets.remaining("acme", None) == pytest.approx(0.4)
        await books.close()
    run(go())


def test_a_small_budget_reads_with_the_places_it_needs():
    from extproc.budgets import _usd
    assert [_usd(x) for x in (10, 0.004, 0.00018, 1.5, 0.0)] == ["10.00", "0.004", "0.00018", "1.50", "0.00"]
