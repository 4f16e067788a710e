"""What holding every stream's headers until its first content costs (issue 12): pinned streams with and
without the upstream stage on attempt 1, in one run.

    PYTHONPATH=. .venv/bin/python bench/hold_cost.py [N] [ROUNDS]

Starts the dev stack (simulators, extproc, Envoy) 2 x ROUNDS times (default 2), alternating the shipped
Envoy config with a baseline whose upstream stage ignores ``x-llm-first-token: hold`` (attempt 1 of a
pinned stream then runs no upstream stage, as before every stream was held), sends N (default 400)
sequential pinned streams of each kind (OpenAI passed through, OpenAI -> Anthropic translated) and
prints time to the first content and to the end (p50/p99), and extproc's and Envoy's CPU per stream
(from /proc). Ratios are against the baseline of the same run: this 2-core machine is shared.
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from bench.run import proc_cpu as cpu
from extproc import envoy_config
from extproc.devstack import DEFAULT_ROUTING, Stack

orig_load = envoy_config.load


def unheld(path=envoy_config.DEFAULT_PATH):
    """The shipped config, but the upstream stage's matcher has no ``hold`` branch: only retries run it."""
    config = orig_load(path)
    for cluster in config["static_resources"]["clusters"]:
        options = cluster.get("typed_extension_protocol_options", {}).get(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions", {})
        for f in options.get("http_filters", []):
            if f["name"] == "llm_upstream_stage":
                branches = f["typed_config"]["xds_matcher"]["matcher_tree"]["exact_match_map"]["map"]
                if "hold" in branches:   # renamed, not removed: Envoy wants at least one branch
                    branches["(never sent)"] = branches.pop("hold")
    return config


KINDS = {"passthrough": "gpt-4o-mini", "translated": "claude-haiku-4-5"}


def one_stream(client: httpx.Client, url: str, model: str) -> tuple[float, float]:
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "What is the capital of Peru?"}]}
    started = time.perf_counter()
    first = None
    with client.stream("POST", url, json=body) as r:
        assert r.status_code == 200, r.read()
        for line in r.iter_lines():
            if first is None and '"content":"' in line.replace(" ", "") and '"content":""' not in line.replace(" ", ""):
                first = time.perf_counter()
    end = time.perf_counter()
    return (first or end) - started, end - started


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] * 1000


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 400
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    cfg = yaml.safe_load(DEFAULT_ROUTING.read_text())
    cfg["health"] = {"consecutive_failures": 100000, "max_error_rate": 1.0}
    routing = Path(tempfile.mkdtemp()) / "routing.yaml"
    routing.write_text(yaml.safe_dump(cfg))
    results: dict[str, dict[str, list[dict]]] = {}
    for _ in range(rounds):
        for label, loader in (("unheld (before)", unheld), ("held (now)", orig_load)):
            envoy_config.load = loader
            stack = Stack(routing=routing, simulate=["openai", "gemini", "anthropic", "azure_openai", "vllm"]).start()
            try:
                extproc = next(p for p in stack.processes if "serve" in p.args)
                envoy = next(p for p in stack.processes if "envoy" in str(p.args[0]))
                client = httpx.Client(timeout=30, headers=stack.auth)
                url = f"{stack.base_url}/chat/completions"
                for kind, model in KINDS.items():
                    for _ in range(50):
                        one_stream(client, url, model)
                    x0, e0 = cpu(extproc.pid), cpu(envoy.pid)
                    ttft, total = [], []
                    for _ in range(n):
                        t, e = one_stream(client, url, model)
                        ttft.append(t)
                        total.append(e)
                    time.sleep(0.3)
                    x, e = cpu(extproc.pid) - x0, cpu(envoy.pid) - e0
                    row = {"ttft_p50": pct(ttft, 0.5), "ttft_p99": pct(ttft, 0.99), "total_p50": pct(total, 0.5),
                           "total_p99": pct(total, 0.99), "extproc_us": x / n * 1e6, "envoy_us": e / n * 1e6}
                    results.setdefault(kind, {}).setdefault(label, []).append(row)
                    print(f"{label:16s} {kind:12s} TTFT p50 {row['ttft_p50']:.2f} p99 {row['ttft_p99']:.2f} ms  "
                          f"end p50 {row['total_p50']:.2f} p99 {row['total_p99']:.2f} ms  "
                          f"extproc {row['extproc_us']:.0f} us  envoy {row['envoy_us']:.0f} us per stream", flush=True)
            finally:
                stack.stop()
    print("\nratios held / unheld (medians over rounds):")
    for kind, by_label in results.items():
        base, now = by_label["unheld (before)"], by_label["held (now)"]
        ratio = {k: statistics.median(r[k] for r in now) / statistics.median(r[k] for r in base) for k in base[0]}
        print(f"  {kind:12s} " + "  ".join(f"{k} x{v:.2f}" for k, v in ratio.items()))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
