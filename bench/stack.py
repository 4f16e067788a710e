"""The processes under test, started for real and pinned to cores.

Layout on a 2-core box (``Layout``): the *server core* runs what is measured
(Envoy with one worker thread, extproc, or LiteLLM), the *load core* runs the
mock upstream and the load generators, so the load never steals the server's
CPU. Envoy alone, the gateway and LiteLLM each get the same single server core.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from extproc import envoy_config
from extproc.devstack import envoy_binary

from . import configs

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"


from extproc.devstack import free_port  # noqa: E402  (one port picker: below the ephemeral range)


@dataclass(frozen=True)
class Layout:
    server: str | None   # cpu list for the processes under test
    load: str | None     # cpu list for the mock and the load generators

    @classmethod
    def detect(cls) -> "Layout":
        cpus = sorted(os.sched_getaffinity(0))
        if shutil.which("taskset") is None or len(cpus) < 2:
            return cls(None, None)
        return cls(str(cpus[0]), ",".join(str(c) for c in cpus[1:]))

    def pin(self, argv: list[str], cpus: str | None) -> list[str]:
        return ["taskset", "-c", cpus, *argv] if cpus else argv


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Stack:
    workdir: Path
    layout: Layout
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    def spawn(self, name: str, argv: list[str], cpus: str | None, env: dict[str, str] | None = None,
              cwd: Path = ROOT) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "ab")
        proc = subprocess.Popen(self.layout.pin(argv, cpus), stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})}, cwd=cwd)
        self.processes[name] = proc
        return proc

    def wait_http(self, name: str, url: str, timeout: float = 60.0, expect: int = 200) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.processes[name]
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}; see {self.workdir}/{name}.log")
            try:
                if httpx.get(url, timeout=1).status_code == expect:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{name} not ready after {timeout}s; see {self.workdir}/{name}.log")

    # ---- the pieces -----------------------------------------------------------------------------

    def start_mock(self) -> None:
        self.ports["mock_openai"], self.ports["mock_anthropic"] = free_port(), free_port()
        self.spawn("mock", [sys.executable, "-m", "bench.mock", str(self.ports["mock_openai"]),
                            str(self.ports["mock_anthropic"])], self.layout.load)
        self.wait_http("mock", f"http://127.0.0.1:{self.ports['mock_openai']}/_mock/stats")

    def mock_config(self, port_name: str, **knobs) -> None:
        httpx.post(f"http://127.0.0.1:{self.ports[port_name]}/_mock/config", json=knobs).raise_for_status()

    def start_envoy(self, name: str, config: dict) -> None:
        path = self.workdir / f"{name}.yaml"
        envoy_config.dump(config, path)
        configs.validate(path)
        admin = config["admin"]["address"]["socket_address"]["port_value"]
        self.spawn(name, [envoy_binary(), "-c", str(path), "--concurrency", "1", "--log-level", "warn",
                          "--base-id", str(admin)], self.layout.server)
        self.wait_http(name, f"http://127.0.0.1:{admin}/ready")

    def start_floor(self) -> None:
        self.ports["floor"], self.ports["floor_admin"] = free_port(), free_port()
        self.start_envoy("envoy-floor", configs.floor(
            listen_port=self.ports["floor"], admin_port=self.ports["floor_admin"],
            openai_port=self.ports["mock_openai"], anthropic_port=self.ports["mock_anthropic"]))

    def start_gateway(self, routing: Path = BENCH / "routing.yaml", whatif: str = "") -> None:
        """extproc (``whatif``: patches from bench/whatif.py, for sizing a suggestion) and Envoy with the full config."""
        for key in ("gateway", "gateway_admin", "extproc", "extproc_status"):
            self.ports[key] = free_port()
        command = ["-m", "bench.whatif", whatif] if whatif else ["-m", "extproc"]
        self.spawn("extproc", [sys.executable, *command, "serve", "--config", str(routing),
                               "--listen", f"127.0.0.1:{self.ports['extproc']}",
                               "--status-listen", f"127.0.0.1:{self.ports['extproc_status']}"],
                   self.layout.server, env={"OPENAI_API_KEY": "sk-bench-openai",
                                            "ANTHROPIC_API_KEY": "sk-bench-anthropic", "LOG_LEVEL": "WARNING"})
        self.wait_http("extproc", f"http://127.0.0.1:{self.ports['extproc_status']}/status")
        self.start_envoy("envoy-gateway", configs.gateway(
            listen_port=self.ports["gateway"], admin_port=self.ports["gateway_admin"],
            extproc=f"127.0.0.1:{self.ports['extproc']}",
            openai_port=self.ports["mock_openai"], anthropic_port=self.ports["mock_anthropic"]))

    def envoy_counters(self, admin_port_name: str, needle: str = "ext_proc") -> dict[str, int]:
        text = httpx.get(f"http://127.0.0.1:{self.ports[admin_port_name]}/stats?filter={needle}", timeout=5).text
        out = {}
        for line in text.splitlines():
            name, _, value = line.partition(": ")
            if value.strip().isdigit():
                out[name] = int(value)
        return out

    def pid(self, name: str) -> int:
        return self.processes[name].pid

    def stop(self) -> None:
        for proc in reversed(list(self.processes.values())):
            if proc.poll() is None:
                proc.terminate()
        for proc in reversed(list(self.processes.values())):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.processes.clear()
