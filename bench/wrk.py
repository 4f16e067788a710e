"""Closed-loop load with wrk (Debian's wrk 4.1): fixed concurrency, as fast as the target answers.

wrk runs pinned to the load core (``taskset``) with one thread, and reports
through ``wrk.lua`` as one JSON line; latencies are microseconds, measured by
wrk from send to the end of the response (the whole stream for SSE).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent


def available() -> bool:
    return shutil.which("wrk") is not None


def run(url: str, body_file: Path, *, connections: int, seconds: float, cpus: str | None,
        api_key: str = "sk-bench") -> dict:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
            "-s", str(HERE / "wrk.lua"), url]
    if cpus:
        argv = ["taskset", "-c", cpus, *argv]
    env = {**os.environ, "BENCH_BODY_FILE": str(body_file), "BENCH_API_KEY": api_key}
    out = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=seconds + 60)
    for line in out.stdout.splitlines():
        if line.startswith("BENCHJSON "):
            r = json.loads(line[len("BENCHJSON "):])
            r["rps"] = r["requests"] / (r["duration_us"] / 1e6) if r["duration_us"] else 0.0
            r["connections"] = connections
            return r
    raise RuntimeError(f"wrk gave no result: {out.stdout}\n{out.stderr}")
