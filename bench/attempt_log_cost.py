"""Cost of observing every attempt through Envoy's upstream log (gRPC access log service) vs not.

    PYTHONPATH=. .venv/bin/python bench/attempt_log_cost.py [N]

Starts the dev stack (simulators, extproc, Envoy) four times, alternating the shipped Envoy config
with and without the router's upstream_log, sends N sequential pinned chat requests to each and
prints p50/p99 latency and extproc's CPU per request (from /proc).
"""
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from bench.run import proc_cpu as cpu
from extproc import envoy_config
from extproc.devstack import Stack, DEFAULT_ROUTING

orig_load = envoy_config.load
def stripped(path=envoy_config.DEFAULT_PATH):
    d = orig_load(path)
    for f in d["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]:
        if f["name"] == "envoy.filters.http.router":
            f["typed_config"].pop("upstream_log", None)
    return d

cfg = yaml.safe_load(DEFAULT_ROUTING.read_text())
cfg["health"] = {"consecutive_failures": 100000, "max_error_rate": 1.0}
routing = Path(tempfile.mkdtemp()) / "routing.yaml"
routing.write_text(yaml.safe_dump(cfg))
N = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
for label, loader in (("without upstream log", stripped), ("with upstream log", orig_load),
                      ("without upstream log", stripped), ("with upstream log", orig_load)):
    envoy_config.load = loader
    s = Stack(routing=routing, simulate=["openai", "gemini", "anthropic", "azure_openai", "vllm"]).start()
    try:
        extproc = next(p for p in s.processes if "serve" in p.args)
        c = httpx.Client(timeout=30)
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        for _ in range(100):
            c.post(f"{s.base_url}/chat/completions", json=body)
        c0 = cpu(extproc.pid); lat = []
        for _ in range(N):
            t = time.perf_counter(); r = c.post(f"{s.base_url}/chat/completions", json=body); lat.append(time.perf_counter() - t)
            assert r.status_code == 200
        time.sleep(0.3)
        used = cpu(extproc.pid) - c0
        lat.sort()
        print(f"{label:22s} p50 {lat[N//2]*1000:.2f} ms  p99 {lat[int(N*0.99)]*1000:.2f} ms  extproc CPU {used/N*1e6:.0f} us/request")
    finally:
        s.stop()
