"""The usage ledger and budget counters: SQLite and a REAL redis-server (never skipped)."""

import asyncio
import time

import pytest

from extproc.accounting import UsageRecord
from extproc.ledger import (LedgerSettings, RedisLedger, SQLiteLedger, nano_to_usd, open_ledger, usd_to_nano)


_counter = iter(range(10**9))
T0 = float(int(time.time()) - 86400)   # Redis drops records older than its retention: use recent times


@pytest.fixture(params=["sqlite", "redis"])
def make_ledger(request, tmp_path):
    """A factory: every call opens another handle on the SAME store (a second replica, or a restart)."""
    made = []
    prefix = f"t{next(_counter)}:"

    def make(**kw):
        if request.param == "sqlite":
            led = SQLiteLedger(str(tmp_path / "ledger.db"), **kw)
        else:
            led = RedisLedger(request.getfixturevalue("redis_url"), key_prefix=prefix, **kw)
        made.append(led)
        return led
    return make


def rec(i, t, **kw):
    base = dict(time=t, request_id=f"r{i}", model="m", provider="p", tenant="acme", surface="web",
                request_class="simple", input_tokens=100, output_tokens=50, cost_usd=0.001 * i, latency_ms=10.0 * i)
    base.update(kw)
    return UsageRecord(**base)


def run(coro):
    return asyncio.run(coro)


def test_append_flush_and_read_a_window(make_ledger):
    async def go():
        led = make_ledger()
        for i in range(10):
            led.append(rec(i, T0 + i))
        got = await led.records(T0 + 2, T0 + 5)      # records() flushes first
        assert [r.request_id for r in got] == ["r2", "r3", "r4"]
        assert got[0] == rec(2, T0 + 2)
        assert len(await led.records()) == 10
        assert await led.spend(tenant="acme", since=T0, until=T0 + 10) == pytest.approx(0.045)
        assert await led.spend(tenant="other") == 0
        assert await led.records(tenant="acme", surface="nope") == []
        await led.close()
    run(go())


def test_batching_writer_flushes_by_itself(make_ledger):
    async def go():
        led = make_ledger(flush_interval=0.01)
        other = make_ledger()             # another replica / reader
        led.append(rec(1, T0))
        assert led._pending                # queued, nothing written yet: append did no I/O
        await asyncio.sleep(0.2)
        assert not led._pending
        assert [r.request_id for r in await other.records()] == ["r1"]
        await led.close()
        await other.close()
    run(go())


def test_none_fields_round_trip(make_ledger):
    async def go():
        led = make_ledger()
        r = UsageRecord(time=T0, request_id="n", model="m", provider="p")
        led.append(r)
        assert await led.records() == [r]
        await led.close()
    run(go())


def test_the_client_api_round_trips(make_ledger):
    async def go():
        led = make_ledger()
        r = rec(1, T0, client_api="anthropic_messages")
        led.append(r)
        assert await led.records() == [r]
        await led.close()
    run(go())


def test_cache_writes_round_trip(make_ledger):
    # the report prices Anthropic's cache-write premium in its baselines from these (accounting.cost_usd)
    async def go():
        led = make_ledger()
        r = rec(1, T0, input_tokens=2000, cache_write_tokens=1500, cache_write_1h_tokens=500)
        led.append(r)
        assert await led.records() == [r]
        await led.close()
    run(go())


def test_a_ledger_written_before_client_api_opens_and_reads_it_as_unknown(tmp_path):
    """Schema migration: the column is added on open; old rows read None (the report shows their endpoint)."""
    import sqlite3
    path = str(tmp_path / "old.db")
    old = sqlite3.connect(path)
    old.executescript("""CREATE TABLE usage (request_id TEXT PRIMARY KEY, time REAL NOT NULL, tenant TEXT,
        surface TEXT, class TEXT, workload TEXT, model TEXT NOT NULL, provider TEXT NOT NULL,
        input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0,
        cached_input_tokens INTEGER NOT NULL DEFAULT 0, cost_usd REAL NOT NULL DEFAULT 0, latency_ms REAL,
        ttft_ms REAL, attempts INTEGER NOT NULL DEFAULT 1, outcome TEXT NOT NULL, status INTEGER NOT NULL,
        quality REAL, quality_source TEXT, endpoint TEXT NOT NULL DEFAULT 'chat');
        INSERT INTO usage (request_id, time, model, provider, outcome, status) VALUES ('old', 100, 'm', 'p', 'ok', 200);""")
    old.commit()
    old.close()

    async def go():
        led = SQLiteLedger(path)
        led.append(rec(2, 200.0, client_api="openai_responses"))
        got = {r.request_id: (r.client_api, r.cache_write_tokens) for r in await led.records()}
        await led.close()
        return got
    assert run(go()) == {"old": (None, 0), "r2": ("openai_responses", 0)}


def test_attach_quality(make_ledger):
    async def go():
        led = make_ledger()
        led.append(rec(1, T0))
        got = await led.attach_quality("r1", 0.9, "thumbs")     # finds the record still in the queue
        assert (got.request_id, got.quality, got.quality_source, got.model) == ("r1", 0.9, "thumbs", "m")
        assert await led.attach_quality("unknown", 1.0, "x") is None
        assert await led.attach_quality("r1", 0.2, "evaluator") is not None   # last write wins
        led.append(rec(1, T0, cost_usd=5.0))                                # re-append keeps the feedback
        [r] = await led.records()
        assert (r.quality, r.quality_source, r.cost_usd) == (0.2, "evaluator", 5.0)
        await led.close()
    run(go())


def test_counters_are_atomic_across_handles(make_ledger):
    async def go():
        a, b = make_ledger(), make_ledger()
        exp = {"k": time.time() + 3600}

        async def hammer(led):
            for _ in range(100):
                await led.add_counters({"k": usd_to_nano(0.01), "j": 1}, {**exp, "j": time.time() + 3600})
        await asyncio.gather(hammer(a), hammer(b), hammer(a), hammer(b))
        got = await b.get_counters(["k", "j", "missing"])
        assert got == {"k": usd_to_nano(4.0), "j": 400, "missing": 0}
        assert nano_to_usd(got["k"]) == 4.0          # integer nano-USD: exact
        assert (await a.add_counters({"k": -usd_to_nano(1.0)}, exp))["k"] == usd_to_nano(3.0)
        await a.close()
        await b.close()
    run(go())


def test_sqlite_ledger_survives_a_restart(tmp_path):
    path = str(tmp_path / "ledger.db")

    async def first():
        led = SQLiteLedger(path)
        for i in range(5):
            led.append(rec(i, 100.0 + i))
        await led.add_counters({"tenant:acme:daily:2025-01-01": 1234}, {"tenant:acme:daily:2025-01-01": 4e9})
        await led.close()             # close flushes the queue

    async def second():
        led = SQLiteLedger(path)
        assert [r.request_id for r in await led.records()] == [f"r{i}" for i in range(5)]
        assert await led.get_counters(["tenant:acme:daily:2025-01-01"]) == {"tenant:acme:daily:2025-01-01": 1234}
        assert await led.attach_quality("r3", 1.0, "user") is not None
        await led.close()
    run(first())
    run(second())
    mode = __import__("sqlite3").connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_sqlite_writes_happen_off_the_event_loop_thread(tmp_path):
    import threading

    async def go():
        led = SQLiteLedger(str(tmp_path / "x.db"))
        seen = []
        orig = led._transaction
        led._transaction = lambda fn: (seen.append(threading.current_thread().name), orig(fn))[1]
        led.append(rec(1, 1.0))
        await led.flush()
        assert seen and all(n.startswith("ledger-sqlite") for n in seen)
        await led.close()
    run(go())


def test_expired_counters_are_dropped_in_sqlite(tmp_path):
    async def go():
        led = SQLiteLedger(str(tmp_path / "x.db"))
        await led.add_counters({"old": 5}, {"old": time.time() - 10})
        await led.add_counters({"new": 5}, {"new": time.time() + 100})
        assert await led.get_counters(["old", "new"]) == {"old": 0, "new": 5}
        await led.close()
    run(go())


def test_pending_queue_is_bounded(tmp_path):
    led = SQLiteLedger(str(tmp_path / "x.db"), max_pending=3)
    for i in range(5):
        led.append(rec(i, float(i)))         # no running loop: only queued
    assert [r.request_id for r in led._pending] == ["r2", "r3", "r4"] and led.dropped == 2
    run(led.close())


def test_settings_and_open_ledger(tmp_path, redis_url):
    assert LedgerSettings.from_config(None).url == "sqlite://ledger.db"
    s = LedgerSettings.from_config({"url": redis_url, "key_prefix": "x:", "flush_interval_ms": 20})
    assert (s.url, s.key_prefix, s.flush_interval_ms) == (redis_url, "x:", 20.0)
    for bad, msg in [([], "ledger: must be a mapping"), ({"urll": "x"}, "ledger.urll: unknown key"),
                     ({"url": ""}, "ledger.url:"), ({"retention_days": 0}, "ledger.retention_days:"),
                     ({"flush_interval_ms": "fast"}, "ledger.flush_interval_ms:")]:
        with pytest.raises(ValueError, match=msg):
            LedgerSettings.from_config(bad)
    a = open_ledger(f"sqlite://{tmp_path}/a.db")
    b = open_ledger(str(tmp_path / "b.db"))
    c = open_ledger(redis_url)
    assert isinstance(a, SQLiteLedger) and a.path == f"{tmp_path}/a.db"
    assert isinstance(b, SQLiteLedger) and isinstance(c, RedisLedger)
    for led in (a, b, c):
        run(led.close())


def test_a_restart_marks_the_dead_processs_open_records_interrupted(make_ledger):
    now = time.time()

    async def go():
        a, other = make_ledger(), None
        if isinstance(a, RedisLedger):   # Redis: open records are scoped by instance (the pod's host name)
            await a.close()
            a = RedisLedger(a.url, key_prefix=a.prefix, instance="pod-a")
            other = RedisLedger(a.url, key_prefix=a.prefix, instance="pod-b")
        a.append(rec(1, now - 5, outcome="in_flight", status=0))    # open when the process died
        a.append(rec(2, now - 5, outcome="in_flight", status=0))
        a.append(rec(2, now - 5, outcome="ok", status=200))         # settled: replaces the open one
        a.append(rec(3, now - 4000, outcome="in_flight", status=0))  # long dead
        await a.flush()
        if other is not None:
            other.append(rec(4, now - 5, outcome="in_flight", status=0))   # another replica's, live
            await other.flush()
            await other.close()
        await a.close()
        restarted = (make_ledger() if other is None else
                     RedisLedger(a.url, key_prefix=a.prefix, instance="pod-a"))
        assert await restarted.mark_interrupted(before=now) == 2
        got = {r.request_id: (r.outcome, r.status) for r in await restarted.records()}
        assert got["r1"] == ("interrupted", 502) and got["r3"] == ("interrupted", 502)
        assert got["r2"] == ("ok", 200)
        if other is not None:
            assert got["r4"] == ("in_flight", 0)
        assert await restarted.mark_interrupted(before=now) == 0
        await restarted.close()
    run(go())


def test_a_shadow_score_record_keeps_its_score_beside_the_requests_feedback(make_ledger):
    """A shadow verdict is a record of its own (``<id>/shadow``, source ``shadow``) born with its score;
    the request's own record keeps the client's /v1/feedback score."""
    async def go():
        led = make_ledger()
        led.append(rec(1, T0))
        led.append(rec(1, T0, request_id="r1/shadow", cost_usd=0.0, quality=0.0, quality_source="shadow",
                       outcome="shadow_eval", tenant="gateway"))
        assert await led.attach_quality("r1", 0.9, "thumbs") is not None
        got = {r.request_id: r for r in await led.records()}
        assert (got["r1/shadow"].quality, got["r1/shadow"].quality_source) == (0.0, "shadow")
        assert (got["r1"].quality, got["r1"].quality_source) == (0.9, "thumbs")
        await led.close()
    run(go())
