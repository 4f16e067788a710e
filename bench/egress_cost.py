"""Cost of the egress listeners (one loopback hop per attempt, README "Deadlines") against the config before them.

    PYTHONPATH=. .venv/bin/python bench/egress_cost.py [N] [OLD_ENVOY_YAML]

Starts the dev stack (simulators, extproc, Envoy) four times, alternating the Envoy config before
the egress listeners (OLD_ENVOY_YAML, e.g. `git show c28d8a9~1:envoy/envoy.yaml > /tmp/old.yaml`:
provider clusters straight to the providers) and the shipped one, sends N sequential pinned chat
requests (JSON, then streams) to each and prints p50/p99 latency and Envoy's and extproc's CPU per
request (from /proc). Both configs run the same extproc code.
"""
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from bench.run import proc_cpu as cpu
from extproc import envoy_config
from extproc.devstack import DEFAULT_ROUTING, Stack

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
OLD = Path(sys.argv[2] if len(sys.argv) > 2 else "/tmp/envoy-before-egress.yaml")
real_load, real_localize = envoy_config.load, envoy_config.localize


def old_localize(config, *, endpoints, hedge_ports=None, **kw):
    """The old file had no egress listeners: its provider clusters themselves go to the simulators."""
    out = real_localize(config, endpoints={}, hedge_ports=None, **kw)
    for cluster in out["static_resources"]["clusters"]:
        if cluster["name"] in endpoints:
            host, port = endpoints[cluster["name"]]
            cluster["type"] = "STATIC"
            cluster.pop("dns_lookup_family", None)
            cluster.pop("transport_socket", None)
            cluster["load_assignment"]["endpoints"] = [{"lb_endpoints": [{"endpoint": {"address": {
                "socket_address": {"address": host, "port_value": port}}}}]}]
    out["static_resources"]["listeners"] = [lst for lst in out["static_resources"]["listeners"]
                                            if not lst["name"].startswith("hedge_")]
    return out


cfg = yaml.safe_load(DEFAULT_ROUTING.read_text())
cfg["health"] = {"consecutive_failures": 100000, "max_error_rate": 1.0}
routing = Path(tempfile.mkdtemp()) / "routing.yaml"
routing.write_text(yaml.safe_dump(cfg))
KEY = "sk-bench-egress"
for label in ("before (no egress hop)", "egress listeners", "before (no egress hop)", "egress listeners"):
    old = label.startswith("before")
    envoy_config.load = (lambda path=None: yaml.safe_load(OLD.read_text())) if old else real_load
    envoy_config.localize = old_localize if old else real_localize
    s = Stack(routing=routing, simulate=["openai", "gemini", "anthropic", "azure_openai", "vllm"], demo_key=KEY).start()
    try:
        extproc = next(p for p in s.processes if "serve" in p.args)
        envoy = next(p for p in s.processes if "envoy" in p.args[0])
        c = httpx.Client(timeout=30, headers=s.auth)
        for stream in (False, True):
            body = {"model": "gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
            for _ in range(100):
                c.post(f"{s.base_url}/chat/completions", json=body)
            e0, x0, lat = cpu(envoy.pid), cpu(extproc.pid), []
            for _ in range(N):
                t = time.perf_counter()
                r = c.post(f"{s.base_url}/chat/completions", json=body)
                lat.append(time.perf_counter() - t)
                assert r.status_code == 200, r.text
            time.sleep(0.3)
            e1, x1 = cpu(envoy.pid) - e0, cpu(extproc.pid) - x0
            lat.sort()
            print(f"{label:24s} {'stream' if stream else 'JSON  '} p50 {lat[N // 2] * 1000:.2f} ms  "
                  f"p99 {lat[int(N * 0.99)] * 1000:.2f} ms  Envoy CPU {e1 / N * 1e6:.0f} us/request  "
                  f"extproc CPU {x1 / N * 1e6:.0f} us/request", flush=True)
    finally:
        s.stop()
