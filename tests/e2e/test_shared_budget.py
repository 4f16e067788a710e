"""Two gateway processes (each its own Envoy and extproc) share one Redis: together they never let a
budget's spend pass its limit by more than the documented bound (extproc/budgets.py)."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from extproc.devstack import Stack
from extproc.keys import digest
from extproc.ledger import open_ledger

from .conftest import MODELS, routing_with, shipped_routing

SHARED_KEY = "sk-shared-tenant"
BUDGET = 0.02         # USD per day for tenant "shared"
PREMIUM_OUT = 100.0   # USD per 1M output tokens for every chat model: a request costs about $0.001


@pytest.fixture(scope="module")
def gateways(tmp_path_factory, redis_url):
    path = routing_with(tmp_path_factory.mktemp("shared-budget"), {
        **{f"/models/{model_id}/price": {"input": 1.0, "output": PREMIUM_OUT}
           for model_id, model in shipped_routing()["models"].items()
           if "embeddings" not in model.get("endpoints", ["chat"])},
        "/tenants/shared": {"workload": "interactive", "api_keys_sha256": [digest(SHARED_KEY)]},
        "/budgets": {"tenants": {"shared": {"daily": BUDGET}}, "sync_interval_s": 0.2}})
    stacks = [Stack(routing=path, simulate=list(MODELS), env={"LLM_GATEWAY_LEDGER_URL": redis_url}).start()
              for _ in range(2)]
    yield stacks
    for stack in stacks:
        stack.stop()


def hammer(stack: Stack, outcomes: list) -> None:
    """One client: requests until the budget refuses it; records (gateway port, status)."""
    with httpx.Client(timeout=30) as client:
        for _ in range(200):
            r = client.post(f"{stack.base_url}/chat/completions", headers={"authorization": f"Bearer {SHARED_KEY}"}, json={
                "model": "auto", "max_tokens": 20, "messages": [{"role": "user", "content": "spend"}]})
            outcomes.append((stack.listen_port, r.status_code))
            if r.status_code == 429:
                return


def test_two_gateways_sharing_redis_stay_within_the_documented_bound(gateways, redis_url):
    outcomes: list[tuple[int, int]] = []
    threads = [threading.Thread(target=hammer, args=(stack, outcomes)) for stack in gateways for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = [status for _, status in outcomes]
    assert statuses.count(429) == len(threads)            # every client was refused in the end
    assert set(statuses) == {200, 429}
    for stack in gateways:                                 # both gateways spent from the same budget
        assert (stack.listen_port, 200) in outcomes

    async def spent() -> tuple[float, float]:
        """The tenant's records once both gateways have written them (each batches its writes)."""
        ledger = open_ledger(redis_url)
        try:
            records, seen = [], -1
            for _ in range(50):
                records = [r for r in await ledger.records() if r.tenant == "shared"]
                if records and len(records) == seen:
                    break
                seen = len(records)
                await asyncio.sleep(0.2)
            return sum(r.cost_usd for r in records), max(r.cost_usd for r in records)
        finally:
            await ledger.close()

    total, largest = asyncio.run(spent())
    # The bound: limit + replicas x max(one chunk = 1% of the limit, the largest single estimate).
    # An estimate is max_tokens (20) x the output price plus the prompt: about $0.002.
    largest_estimate = 20 * PREMIUM_OUT / 1e6 + 0.0001
    bound = BUDGET + len(gateways) * max(0.01 * BUDGET, largest_estimate)
    print(f"two gateways spent ${total:.4f} of a ${BUDGET} budget (documented bound ${bound:.4f})")
    assert total <= bound, (total, bound)
    assert total >= BUDGET * 0.8                           # and the budget really was used
    assert largest < largest_estimate
