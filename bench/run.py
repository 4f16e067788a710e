"""``make bench``: start the mock, Envoy alone and the full gateway (and peers), load them, write the results.

Every comparison is made within this one run: each load step runs against
Envoy alone first, then the gateway, then any peer, with the same body, the
same mock settings, the same client and the same core layout. Results go to
bench/results/latest.json and bench/results/latest.md (see bench/report.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from . import client, report, wrk
from .scenarios import BY_NAME, CHUNKS, SCENARIOS
from .stack import BENCH, Layout, Stack, rss_mb

RESULTS = BENCH / "results"
HOLD_RAMP_S = 5.0  # the concurrent-streams memory test opens its streams over this long
PAUSE_MS = 2.0   # mock pause between stream events when timing chunks (each chunk its own ext_proc message)


def machine() -> dict:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(), "python": platform.python_version(),
            "envoy": _envoy_version(), "wrk": _wrk_version(), "tree": _tree()}


def _tree() -> str:
    """The commit measured, and whether the work tree had uncommitted changes (results then describe those too)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=BENCH.parent, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "extproc", "envoy"], capture_output=True,
                               text=True, cwd=BENCH.parent, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{' + uncommitted changes in extproc/ or envoy/' if dirty else ''}"


def _envoy_version() -> str:
    from extproc.devstack import envoy_binary
    out = subprocess.run([envoy_binary(), "--version"], capture_output=True, text=True).stdout
    m = re.search(r"/(\d+\.\d+\.\d+)/", out)
    return m.group(1) if m else out.strip()[:60]


def _wrk_version() -> str:
    out = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    return (out.stdout + out.stderr).split("[")[0].strip()


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.stack = Stack(Path(tempfile.mkdtemp(prefix="llm-bench-")), Layout.detect())
        if self.stack.layout.load:
            # The asyncio clients run in this process: keep it on the load core, like wrk and the mock.
            os.sched_setaffinity(0, {int(c) for c in self.stack.layout.load.split(",")})
        self.targets: dict[str, int] = {}
        self.keys: dict[str, str] = {}
        self.out: dict = {"machine": machine(), "layout": {"server_cpus": self.stack.layout.server,
                                                           "load_cpus": self.stack.layout.load},
                          "settings": {"seconds": args.seconds, "concurrency": args.concurrency, "chunks": CHUNKS,
                                       "open_loop_rps": args.rate, "pause_ms": PAUSE_MS,
                                       "whatif": args.whatif or None},
                          "scenarios": {s.name: s.title for s in SCENARIOS},
                          "wrk": [], "open_loop": [], "streams": [], "memory": {}, "pending": {}, "notes": []}

    def log(self, msg: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)

    # ---- setup ----------------------------------------------------------------------------------

    def start(self) -> None:
        s = self.stack
        self.log(f"workdir {s.workdir}; server cpus {s.layout.server}, load cpus {s.layout.load}")
        s.start_mock()
        s.start_floor()
        s.start_gateway(whatif=self.args.whatif)
        self.targets = {"envoy": s.ports["floor"], "gateway": s.ports["gateway"]}
        self.keys = {"envoy": "sk-bench", "gateway": "sk-bench"}
        if "litellm" in self.args.peers:
            from . import litellm
            port = litellm.start(s)
            self.targets["litellm"], self.keys["litellm"] = port, litellm.MASTER_KEY
            self.out["machine"]["litellm"] = litellm.version()

    def mock(self, scenario, pause_ms: float = 0.0, chunks: int = CHUNKS) -> None:
        self.stack.mock_config("mock_openai", chunks=chunks, interval_ms=pause_ms, fail_every=scenario.fail_every)
        self.stack.mock_config("mock_anthropic", chunks=chunks, interval_ms=pause_ms, fail_every=0)

    def applies(self, target: str, scenario) -> bool:
        return target != "litellm" or scenario.litellm

    def check(self) -> None:
        """One request per scenario and target: a 200, and the gateway says who answered."""
        for scenario in SCENARIOS:
            self.mock(scenario)
            for target, port in self.targets.items():
                if not self.applies(target, scenario):
                    continue
                attempts = []
                for _ in range(10 if scenario.fail_every else 1):
                    r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", content=scenario.body(),
                                   headers={"content-type": "application/json",
                                            "authorization": f"Bearer {self.keys[target]}"}, timeout=30)
                    if r.status_code != 200:
                        raise RuntimeError(f"{target} {scenario.name}: {r.status_code} {r.text[:300]}")
                    if scenario.stream and "t" not in r.text:
                        raise RuntimeError(f"{target} {scenario.name}: no stream content")
                    attempts.append(r.headers.get("x-llm-attempts"))
                if target == "gateway" and scenario.fail_every and "2" not in attempts:
                    self.out["pending"][scenario.name] = ("pending policy: no request fell back "
                                                         f"(x-llm-attempts {attempts})")
        self.log("every target answers every scenario")

    # ---- measurements ---------------------------------------------------------------------------

    def closed_loop(self) -> None:
        for scenario in SCENARIOS:
            body_file = self.stack.workdir / f"{scenario.name}.json"
            body_file.write_bytes(scenario.body())
            self.mock(scenario)
            for c in self.args.concurrency:
                for target, port in self.targets.items():
                    if not self.applies(target, scenario):
                        continue
                    url = f"http://127.0.0.1:{port}/v1/chat/completions"
                    wrk.run(url, body_file, connections=c, seconds=1, cpus=self.stack.layout.load,
                            api_key=self.keys[target])   # warm-up: connections, pools, caches
                    before = self.stack.envoy_counters("gateway_admin") if target == "gateway" else {}
                    r = wrk.run(url, body_file, connections=c, seconds=self.args.seconds,
                                cpus=self.stack.layout.load, api_key=self.keys[target])
                    if target == "gateway":
                        r.update(_per_request(before, self.stack.envoy_counters("gateway_admin"), r["requests"]))
                    r.update(target=target, scenario=scenario.name)
                    self.out["wrk"].append(r)
                    self.log(f"wrk {scenario.name:18s} c={c:<3d} {target:8s} {r['rps']:8.0f} req/s  "
                             f"p50 {r['p50_us'] / 1000:6.2f} ms  p99 {r['p99_us'] / 1000:6.2f} ms  "
                             f"non2xx {r['non2xx']} errors {r['socket_errors']}")

    def open_loop(self) -> None:
        for name in ("passthrough", "translated", "fallback"):
            scenario = BY_NAME[name]
            self.mock(scenario)
            for target, port in self.targets.items():
                if not self.applies(target, scenario):
                    continue
                r = asyncio.run(client.open_loop(port, scenario.body(), rate=self.args.rate,
                                                 seconds=self.args.open_loop_seconds, api_key=self.keys[target]))
                r.update(target=target, scenario=name)
                self.out["open_loop"].append(r)
                self.log(f"open loop {name:12s} {target:8s} {self.args.rate} req/s: p50 {r['p50_ms']:.2f} ms "
                         f"p99 {r['p99_ms']:.2f} ms errors {r['errors']}")

    def streams(self) -> None:
        for name in ("stream", "stream_translated"):
            scenario = BY_NAME[name]
            self.mock(scenario, pause_ms=PAUSE_MS)
            for target, port in self.targets.items():
                r = asyncio.run(client.streams(port, scenario.body(), count=self.args.streams,
                                               api_key=self.keys[target]))
                r.update(target=target, scenario=name)
                self.out["streams"].append(r)
                self.log(f"streams {name:18s} {target:8s} ttft p50 {r['ttft_p50_ms']:.2f} ms  "
                         f"chunk p50 {r['chunk_p50_ms']:.3f} ms p99 {r['chunk_p99_ms']:.3f} ms")

    def memory(self) -> None:
        pid = self.stack.pid("extproc")
        port = self.targets["gateway"]
        samples: list[tuple[float, float]] = []

        async def steady() -> dict:
            async def sample():
                t0 = time.monotonic()
                while True:
                    samples.append((round(time.monotonic() - t0, 1), rss_mb(pid)))
                    await asyncio.sleep(1)
            task = asyncio.ensure_future(sample())
            try:
                return await client.open_loop(port, BY_NAME["translated"].body(), rate=self.args.rate,
                                              seconds=self.args.rss_seconds)
            finally:
                task.cancel()

        self.mock(BY_NAME["translated"])
        load = asyncio.run(steady())
        values = [v for _, v in samples]
        # Growth is judged after warm-up: once the health tracker's 30 s window has filled (or half the run).
        warm = min(35.0, self.args.rss_seconds / 2)
        settled = [v for t, v in samples if t >= warm] or values
        self.out["memory"]["steady"] = {
            "seconds": self.args.rss_seconds, "rps": self.args.rate, "errors": load["errors"],
            "requests": load["requests"], "p50_ms": load["p50_ms"], "p99_ms": load["p99_ms"],
            "warm_up_s": warm, "rss_start_mb": settled[0], "rss_end_mb": settled[-1], "rss_max_mb": max(values),
            "growth_pct": 100 * (settled[-1] - settled[0]) / settled[0], "samples": samples}
        self.log(f"memory steady {self.args.rss_seconds}s: {settled[0]:.1f} -> {settled[-1]:.1f} MB, "
                 f"{load['errors']} of {load['requests']} requests failed")
        if not self.args.hold:
            return
        peak = {"extproc": rss_mb(pid), "envoy": 0.0}
        envoy_pid = self.stack.pid("envoy-gateway")

        async def hold() -> dict:
            async def watch():
                for _ in range(4 * 14):
                    await asyncio.sleep(0.25)
                    peak["extproc"] = max(peak["extproc"], rss_mb(pid))
                    peak["envoy"] = max(peak["envoy"], rss_mb(envoy_pid))
                return None
            return await client.hold_streams(port, BY_NAME["stream_translated"].body(), count=self.args.hold,
                                             during=watch, ramp_s=HOLD_RAMP_S)

        before = rss_mb(pid)
        # Opened over 5 s (a burst of 1,000 new requests is an admission test, not a memory test), each open
        # ~10 s (50 chunks x 200 ms): all of them are open together from about 5 s to 10 s.
        self.mock(BY_NAME["stream_translated"], pause_ms=200.0)
        r = asyncio.run(hold())
        self.out["memory"]["concurrent_streams"] = {
            "streams": self.args.hold, "ramp_s": HOLD_RAMP_S, "ok": r["ok"], "errors": r["errors"],
            "rss_before_mb": before,
            "rss_peak_mb": peak["extproc"], "envoy_rss_peak_mb": peak["envoy"]}
        self.log(f"memory {self.args.hold} streams: ok {r['ok']} errors {r['errors']}, "
                 f"extproc peak {peak['extproc']:.1f} MB")

    def decision(self) -> None:
        script = BENCH / "decision_bench.py"
        if not script.exists():
            self.out["decision"] = {"skipped": "bench/decision_bench.py not present"}
            return
        r = subprocess.run([sys.executable, str(script), "--n", "5000"],   # its own default config: config/routing.yaml
                           capture_output=True, text=True, timeout=120, cwd=BENCH.parent,
                           env={**os.environ, "PYTHONPATH": str(BENCH.parent)})
        rows = {}
        for line in r.stdout.splitlines():
            m = re.match(r"\s*(.+?)\s+p50\s+([\d.]+) us\s+p99\s+([\d.]+) us", line)
            if m:
                rows[m.group(1).rstrip(":").strip()] = {"p50_us": float(m.group(2)), "p99_us": float(m.group(3))}
        self.out["decision"] = {"rows": rows, "output": r.stdout.strip()[-2000:], "returncode": r.returncode}
        self.log(f"decision bench: {rows or r.stderr.strip()[-300:]}")

    def hedge(self) -> None:
        """Hedging off and on in one run (bench/hedge.py, its own dev stack with simulators)."""
        from . import hedge
        try:
            self.out["hedge"] = {"table": hedge.render(hedge.run(n=100, concurrency=4))}
        except Exception as exc:   # the other steps' numbers still count
            self.out["hedge"] = {"error": f"{type(exc).__name__}: {exc}"}
        self.log(f"hedge: {self.out['hedge']}")

    def run(self) -> None:
        t0 = time.monotonic()
        noise = Noise()
        try:
            self.start()
            self.check()
            for step in self.args.steps:
                getattr(self, STEPS[step])()
        finally:
            self.out["noise"] = noise.finish([p.pid for p in self.stack.processes.values()])
            self.stack.stop()
        self.out["wall_seconds"] = round(time.monotonic() - t0, 1)
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{self.args.out}.json").write_text(json.dumps(self.out, indent=1) + "\n")
        md = report.render(self.out)
        (RESULTS / f"{self.args.out}.md").write_text(md)
        print(md)


STEPS = {"decision": "decision", "closed": "closed_loop", "open": "open_loop", "streams": "streams",
         "memory": "memory", "hedge": "hedge"}


class Noise:
    """How much CPU processes outside this bench used meanwhile: the numbers are only as clean as the box."""

    def __init__(self):
        self.load_start = os.getloadavg()
        self.busy_start = _busy_seconds()
        self.self_start = _own_cpu()

    def finish(self, pids: list[int]) -> dict:
        ours = sum(proc_cpu(pid) for pid in pids) + (_own_cpu() - self.self_start)
        busy = _busy_seconds() - self.busy_start
        return {"loadavg_start": self.load_start, "loadavg_end": os.getloadavg(),
                "machine_busy_cpu_s": round(busy, 1), "bench_cpu_s": round(ours, 1),
                "other_cpu_s": round(max(0.0, busy - ours), 1)}


def _busy_seconds() -> float:
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int) -> float:
    """utime + stime of a live process we started (its whole life: it started with this run)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _per_request(before: dict[str, int], after: dict[str, int], requests: int) -> dict:
    def total(suffix: str) -> int:
        return sum(v - before.get(k, 0) for k, v in after.items() if k.endswith(suffix))
    n = max(1, requests)
    return {"ext_proc_streams_per_req": total(".streams_started") / n,
            "ext_proc_msgs_per_req": total(".stream_msgs_sent") / n}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench", description=__doc__)
    p.add_argument("--seconds", type=float, default=float(os.environ.get("BENCH_SECONDS", 4)),
                   help="duration of each wrk run")
    p.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16, 64])
    p.add_argument("--rate", type=float, default=200.0, help="open-loop offered load, requests/s")
    p.add_argument("--open-loop-seconds", type=float, default=float(os.environ.get("BENCH_OPEN_SECONDS", 8)))
    p.add_argument("--streams", type=int, default=40, help="sequential streams for TTFT and per-chunk latency")
    p.add_argument("--rss-seconds", type=float, default=float(os.environ.get("BENCH_RSS_SECONDS", 60)),
                   help="steady-load memory run (the target is stated for 300)")
    p.add_argument("--hold", type=int, default=int(os.environ.get("BENCH_HOLD_STREAMS", 1000)),
                   help="concurrent streams for the memory peak (0: skip)")
    p.add_argument("--peers", default=os.environ.get("PEERS", ""), help="comma-separated: litellm")
    p.add_argument("--whatif", default="", help="patch extproc with bench/whatif.py changes (labelled in results)")
    p.add_argument("--out", default="latest", help="results file stem in bench/results/")
    p.add_argument("--steps", type=lambda v: [x for x in v.split(",") if x], default=list(STEPS),
                   help=f"comma-separated subset of {','.join(STEPS)} (default: all)")
    args = p.parse_args(argv)
    if not wrk.available():
        print("bench: wrk not found (make bench installs it with apt-get)", file=sys.stderr)
        return 2
    Bench(args).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
