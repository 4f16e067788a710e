"""Hedging off and on, in the same run: a primary that stalls 2 s on 30% of requests.

    PYTHONPATH=. .venv/bin/python bench/hedge.py [--n 100] [--concurrency 4]

One dev stack (simulators, extproc, Envoy): the primary tier is gpt-4o-mini (OpenAI API, the
simulator waits 2 s before answering 30% of its requests), the secondary gemini-3.5-flash-lite. Two
workloads route the same class: ``interactive`` (no hedging: a slow answer is waited for, up to
the 3 s per-try cut) and ``interactive_hedged`` (``hedge: true``: at the primary's 1.5 s target the
secondary is started beside it, the first answer wins). Requests of both modes are interleaved.
Latency demotion is switched off (a 10 ms health window) so both modes face the same slow primary.
Prints p50/p99 end to end and the extra spend: the hedge losers' prompt cost over the answers' cost.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from extproc.devstack import DEFAULT_ROUTING, Stack

MODES = ("interactive", "interactive_hedged")


def config_path() -> Path:
    config = yaml.safe_load(DEFAULT_ROUTING.read_text())
    config["health"] = {"window_s": 0.01, "consecutive_failures": 1_000_000, "max_error_rate": 1.0}
    config["workloads"]["interactive_hedged"] = {"prefer": "latency", "hedge": True}
    config["tenants"]["demo"]["workloads"] = [*MODES, "batch"]   # the stack's demo key may choose both modes
    config["routing_rules"]["simple_queries"]["tiers"] = [
        {"name": "primary", "models": ["gpt-4o-mini"], "target_latency_ms": 1500},
        {"name": "secondary", "models": ["gemini-3.5-flash-lite"], "target_latency_ms": 3000}]
    path = Path(tempfile.mkdtemp(prefix="bench-hedge-")) / "routing.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def metric(stack: Stack, name: str, label: str = "") -> float:
    text = httpx.get(stack.status_url.replace("/status", "/metrics")).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and label in line)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def run(n: int, concurrency: int) -> dict:
    stack = Stack(routing=config_path(), simulate=["openai", "gemini", "azure_openai", "anthropic", "vllm"]).start()
    try:
        httpx.put(f"{stack.sim_url('openai')}/_sim/faults", json={"latency_ms": 2000, "rate": 0.3})
        client = httpx.Client(timeout=30)

        def one(mode: str) -> tuple[str, float, int, str]:
            started = time.monotonic()
            r = client.post(f"{stack.base_url}/chat/completions", headers={**stack.auth, "x-llm-workload": mode}, json={
                "model": "auto", "messages": [{"role": "user", "content": "What is the capital of Peru?"}]})
            return mode, time.monotonic() - started, r.status_code, r.headers.get("x-llm-provider", "")

        results: dict[str, list] = {m: [] for m in MODES}
        cost: dict[str, float] = {}
        # Cost per mode: the ledger's per-workload cost is not exposed, so each mode runs its half
        # in turn, interleaved in blocks, and the cost counter is read around each block.
        spent = {m: 0.0 for m in MODES}
        wasted = 0.0
        block = max(concurrency * 5, 10)
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            for start in range(0, n, block):
                for mode in MODES:
                    before = metric(stack, "llm_gateway_cost_usd_total")
                    w0 = metric(stack, "llm_gateway_hedge_wasted_cost_usd_total")
                    batch = list(pool.map(one, [mode] * min(block, n - start)))
                    time.sleep(0.3)   # the last spans end after the last response
                    spent[mode] += metric(stack, "llm_gateway_cost_usd_total") - before
                    if mode == "interactive_hedged":
                        wasted += metric(stack, "llm_gateway_hedge_wasted_cost_usd_total") - w0
                    results[mode].extend(batch)
        out = {}
        for mode in MODES:
            rows = results[mode]
            latencies = [r[1] for r in rows]
            out[mode] = {
                "requests": len(rows), "errors": sum(r[2] != 200 for r in rows),
                "p50_ms": round(pct(latencies, 0.5) * 1000), "p99_ms": round(pct(latencies, 0.99) * 1000),
                "answered_by_secondary": sum(r[3] == "gemini" for r in rows),
                "cost_usd": spent[mode],
            }
        out["interactive_hedged"]["wasted_usd"] = wasted
        out["interactive_hedged"]["hedges_won"] = metric(stack, "llm_gateway_hedges_total", 'outcome="won"')
        out["interactive_hedged"]["hedges_started"] = metric(stack, "llm_gateway_hedges_total", 'outcome="started"')
        base = spent["interactive"] or 1e-12
        out["extra_spend_pct"] = round(100 * (spent["interactive_hedged"] + wasted - base) / base, 1)
        return out
    finally:
        stack.stop()


def render(out: dict) -> str:
    lines = ["| hedging | requests | errors | p50 ms | p99 ms | answered by secondary | spend USD | extra spend |",
             "|---|---|---|---|---|---|---|---|"]
    for mode, label in (("interactive", "off"), ("interactive_hedged", "on")):
        r = out[mode]
        extra = "" if mode == "interactive" else (f"{out['extra_spend_pct']:+.1f}% (hedge losers ${r['wasted_usd']:.6f}, "
                                                  f"{r['hedges_started']:.0f} started, {r['hedges_won']:.0f} won)")
        spend = r["cost_usd"] + r.get("wasted_usd", 0.0)
        lines.append(f"| {label} | {r['requests']} | {r['errors']} | {r['p50_ms']} | {r['p99_ms']} | "
                     f"{r['answered_by_secondary']} | {spend:.6f} | {extra} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100, help="requests per mode")
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    print(render(run(args.n, args.concurrency)))


if __name__ == "__main__":
    main()
