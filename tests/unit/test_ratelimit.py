"""Rate limits: the sliding window arithmetic, OpenAI's headers, and limiters sharing one store."""

from __future__ import annotations

import asyncio
import time

import pytest

from extproc import errors
from extproc.config import parse
from extproc.keys import KeyEntry, caller
from extproc.ledger import open_ledger
from extproc.ratelimit import Limit, RateLimiter, duration, headers_for, limits_for, usage, wait_s

T0 = 1_700_000_040.0     # the start of a minute, for the pure arithmetic
assert T0 % 60 == 0


def this_minute() -> float:
    """The start of the current minute: the stores expire counters by the real clock, so a limiter's
    fake clock must stay near it."""
    return float(int(time.time()) // 60 * 60)

CONFIG = parse({
    "providers": {"a": {"api": "openai"}}, "models": {"m": {"provider": "a"}}, "routing": {"default_model": "m"},
    "tenants": {"acme": {"rate_limit": {"requests_per_minute": 3, "tokens_per_minute": 1000,
                                        "per_key": {"requests_per_minute": 2}}},
                "free": {}},
}, source="t.yaml")


def who(tenant="acme", key="k1", **entry):
    return caller(CONFIG, KeyEntry(id=key, tenant=tenant, sha256="0" * 64, **entry))


def test_the_sliding_window_weights_the_previous_minute_by_what_is_left_of_it():
    assert usage(60, 0, T0) == 60 and usage(60, 10, T0 + 15) == 55 and usage(60, 10, T0 + 59.999) == pytest.approx(10.001)
    assert wait_s(100, 0, 10, 1, T0) == 0
    assert wait_s(100, 0, 10, 101, T0) is None                     # never fits: larger than the limit
    assert wait_s(100, 100, 0, 1, T0) == pytest.approx(0.6)        # 1% of the previous minute must pass
    assert wait_s(100, 0, 100, 1, T0 + 30) == pytest.approx(30 + 0.6)   # wait for the next minute, then decay
    assert wait_s(100, 50, 100, 1, T0 + 30) == pytest.approx(30.6)


def test_durations_and_headers_read_like_openais():
    assert [duration(s) for s in (0, 0.012, 1, 6 * 60, 90.5)] == ["0s", "12ms", "1s", "6m0s", "1m30.5s"]
    h = headers_for([(Limit("tenant", "a", "requests", 10), 4), (Limit("key", "k", "requests", 5), 4),
                     (Limit("tenant", "a", "tokens", 1000), 250)])
    assert h == {"x-ratelimit-limit-requests": "5", "x-ratelimit-remaining-requests": "1",
                 "x-ratelimit-reset-requests": "48s", "x-ratelimit-limit-tokens": "1000",
                 "x-ratelimit-remaining-tokens": "750", "x-ratelimit-reset-tokens": "15s"}


def test_limits_come_from_the_tenant_and_its_key():
    assert {(l.scope, l.kind, l.per_minute) for l in limits_for(CONFIG, who())} == {
        ("tenant", "requests", 3), ("tenant", "tokens", 1000), ("key", "requests", 2)}
    own = limits_for(CONFIG, who(key="k2", requests_per_minute=1, tokens_per_minute=50))
    assert {(l.scope, l.kind, l.per_minute) for l in own if l.scope == "key"} == {("key", "requests", 1),
                                                                                   ("key", "tokens", 50)}
    assert limits_for(CONFIG, who(tenant="free")) == [] and limits_for(CONFIG, None) == []
    with pytest.raises(Exception, match="tenants.x.rate_limit.requests_per_minute: must be >= 1"):
        parse({"providers": {"a": {"api": "openai"}}, "models": {"m": {"provider": "a"}},
               "tenants": {"x": {"rate_limit": {"requests_per_minute": 0}}}})


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_requests_are_refused_with_openais_429_and_headers_then_admitted_again(tmp_path):
    async def run():
        ledger = open_ledger(str(tmp_path / "l.db"))
        clock = Clock(this_minute() + 1)
        rl = RateLimiter(ledger, clock=clock)
        try:
            first = await rl.admit(CONFIG, who(), 10)
            assert first.headers["x-ratelimit-remaining-requests"] == "1"      # the key's limit: 2
            assert first.headers["x-ratelimit-limit-tokens"] == "1000"
            await rl.admit(CONFIG, who(), 10)
            with pytest.raises(errors.RateLimited) as info:
                await rl.admit(CONFIG, who(), 10)
            exc = info.value
            assert (exc.status, exc.type, exc.code) == (429, "rate_limit_error", "rate_limit_exceeded")
            assert "key 'k1' on requests per min (RPM): Limit 2, Used 2" in exc.message
            assert exc.headers["x-ratelimit-remaining-requests"] == "0" and int(exc.headers["retry-after"]) >= 59
            await rl.admit(CONFIG, who(key="k2"), 10)          # another key of the tenant: the tenant's 3rd
            with pytest.raises(errors.RateLimited, match="tenant 'acme'"):
                await rl.admit(CONFIG, who(key="k3"), 10)
            clock.now += 120                                    # two minutes later: all forgotten
            assert (await rl.admit(CONFIG, who(), 10)).headers["x-ratelimit-remaining-requests"] == "1"
        finally:
            await rl.close()
            await ledger.close()
    asyncio.run(run())


def test_tokens_are_estimated_then_corrected_to_the_reported_usage(tmp_path):
    async def run():
        ledger = open_ledger(str(tmp_path / "l.db"))
        clock = Clock(this_minute() + 1)
        rl = RateLimiter(ledger, clock=clock)
        try:
            big = await rl.admit(CONFIG, who(key="a"), 900)
            with pytest.raises(errors.RateLimited, match="tokens per min"):
                await rl.admit(CONFIG, who(key="b"), 200)
            rl.settle(big, 100)                                 # it used far fewer than estimated
            ok = await rl.admit(CONFIG, who(key="b"), 200)
            assert ok.headers["x-ratelimit-remaining-tokens"] == "700"
            with pytest.raises(errors.RateLimited, match="Request too large"):
                await rl.admit(CONFIG, who(key="c"), 5000)
        finally:
            await rl.close()
            await ledger.close()
    asyncio.run(run())


def test_two_replicas_on_one_redis_admit_at_most_one_chunk_each_over_the_limit(redis_url):
    async def run():
        stores = [open_ledger(redis_url), open_ledger(redis_url)]
        clock = Clock(this_minute() + 1)
        a, b = (RateLimiter(s, clock=clock) for s in stores)
        config = parse({"providers": {"a": {"api": "openai"}}, "models": {"m": {"provider": "a"}},
                        "tenants": {"big": {"rate_limit": {"requests_per_minute": 100}}}})
        big = caller(config, KeyEntry(id="b1", tenant="big", sha256="0" * 64))
        admitted = 0
        try:
            for i in range(300):                               # alternate replicas, no background sync
                try:
                    await (a if i % 2 else b).admit(config, big, 1)
                    admitted += 1
                except errors.RateLimited:
                    pass
            chunk = 2                                          # 2% of 100
            assert 100 <= admitted <= 100 + 2 * chunk, admitted
        finally:
            for limiter, store in ((a, stores[0]), (b, stores[1])):
                await limiter.close()
                await store.close()
    asyncio.run(run())


def test_a_request_counted_alone_then_its_tokens_counts_once_of_each(tmp_path):
    """M2: the request is counted before its body is read (``kinds=("requests",)``: count_tokens and
    invalid requests stop there), its tokens once it is planned (``kinds=("tokens",)``)."""
    async def run():
        ledger = open_ledger(str(tmp_path / "l.db"))
        rl = RateLimiter(ledger, clock=Clock(this_minute() + 1))
        try:
            request = await rl.admit(CONFIG, who(), 0, kinds=("requests",))
            assert request.headers["x-ratelimit-remaining-requests"] == "1"      # the key's limit: 2
            assert not any("tokens" in h for h in request.headers) and not request.token_counters
            tokens = await rl.admit(CONFIG, who(), 900, kinds=("tokens",))
            assert tokens.headers["x-ratelimit-remaining-tokens"] == "100"
            assert not any("requests" in h for h in tokens.headers)
            await rl.admit(CONFIG, who(), 0, kinds=("requests",))               # the 2nd request
            with pytest.raises(errors.RateLimited, match="requests per min"):
                await rl.admit(CONFIG, who(), 0, kinds=("requests",))
            # The spent token limit does not refuse a request that counts no tokens (count_tokens).
            with pytest.raises(errors.RateLimited, match="tokens per min"):
                await rl.admit(CONFIG, who(key="k2"), 200, kinds=("tokens",))
            assert (await rl.admit(CONFIG, who(key="k2"), 0, kinds=("requests",))).headers
        finally:
            await rl.close()
            await ledger.close()
    asyncio.run(run())


def test_count_tokens_counts_in_a_window_of_its_own_under_the_same_limits(tmp_path):
    """Review 7 finding 5: count_tokens spent the tenant's message requests, so an agent counting before
    each turn halved its message rate. Anthropic limits token counting and message creation separately;
    the ``count_tokens`` pool has its own counters under the same requests_per_minute values."""
    async def run():
        ledger = open_ledger(str(tmp_path / "l.db"))
        rl = RateLimiter(ledger, clock=Clock(this_minute() + 1))
        try:
            for left in ("1", "0"):                                             # the key's limit: 2
                counted = await rl.admit(CONFIG, who(), 0, kinds=("requests",), pool="count_tokens")
                assert counted.headers["x-ratelimit-remaining-requests"] == left
            with pytest.raises(errors.RateLimited, match="requests per min .*for count_tokens"):
                await rl.admit(CONFIG, who(), 0, kinds=("requests",), pool="count_tokens")
            # The message window was not touched: both of the key's requests are still there.
            for left in ("1", "0"):
                message = await rl.admit(CONFIG, who(), 0, kinds=("requests",))
                assert message.headers["x-ratelimit-remaining-requests"] == left
            with pytest.raises(errors.RateLimited, match=r"requests per min \(RPM\): "):
                await rl.admit(CONFIG, who(), 0, kinds=("requests",))
            assert {lim.counter(7) for lim in limits_for(CONFIG, who(), "count_tokens")}.isdisjoint(
                {lim.counter(7) for lim in limits_for(CONFIG, who())})
        finally:
            await rl.close()
            await ledger.close()
    asyncio.run(run())
