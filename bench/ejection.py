"""Time from a provider's failure onset to its ejection, and what clients saw meanwhile.

Open loop at 50 req/s of `model: "auto"` (primary: gpt-4o-mini on the OpenAI simulator) through the
whole gateway; after a warm-up the primary starts failing 20% of requests with 503. Reports the time
until the status API shows the primary ejected, the client success rate and the added latency of the
requests that fell back. Run: `python -m bench.ejection` (about 15 s).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time

import httpx

from extproc.devstack import Stack

RATE = 50            # requests per second
WARMUP_S = 3.0
FAULTY_S = 6.0


async def main() -> dict:
    stack = Stack(simulate=["openai", "azure_openai", "anthropic", "gemini", "vllm"]).start()
    try:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=200)) as client:
            results: list[tuple[float, int, str, float]] = []   # (sent at, status, attempts, latency)

            async def one(at: float) -> None:
                started = time.monotonic()
                r = await client.post(f"{stack.base_url}/chat/completions", headers=stack.auth, json={
                    "model": "auto", "messages": [{"role": "user", "content": "What is the capital of France?"}]})
                results.append((at, r.status_code, r.headers.get("x-llm-attempts", "?"), time.monotonic() - started))

            t0 = time.monotonic()
            onset = t0 + WARMUP_S
            ejected_at = None
            tasks = []
            i = 0
            faulty = False
            while time.monotonic() < onset + FAULTY_S:
                at = t0 + i / RATE
                await asyncio.sleep(max(0.0, at - time.monotonic()))
                if not faulty and time.monotonic() >= onset:
                    await client.put(f"{stack.sim_url('openai')}/_sim/faults", json={"status": 503, "rate": 0.2})
                    onset, faulty = time.monotonic(), True
                tasks.append(asyncio.create_task(one(at - t0)))
                if faulty and ejected_at is None and i % 5 == 0:
                    status = (await client.get(stack.status_url)).json()["models"].get("gpt-4o-mini", {})
                    if status.get("ejected"):
                        ejected_at = time.monotonic()
                        reason = status.get("last_ejection_reason")
                i += 1
            await asyncio.gather(*tasks)
    finally:
        stack.stop()
    ok = sum(1 for _, s, _, _ in results if s == 200)
    normal = [lat for at, s, a, lat in results if a == "1" and s == 200]
    fell_back = [lat for at, s, a, lat in results if a not in ("1", "?") and s == 200]
    return {
        "requests": len(results), "success_rate": ok / len(results),
        "onset_to_ejection_s": None if ejected_at is None else round(ejected_at - onset, 3),
        "ejection_reason": reason if ejected_at else None,
        "fallbacks": len(fell_back),
        "latency_ms_p50": {"first_attempt": round(statistics.median(normal) * 1000, 2) if normal else None,
                           "fell_back": round(statistics.median(fell_back) * 1000, 2) if fell_back else None},
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main()), indent=1))
