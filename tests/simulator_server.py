"""A provider simulator served on a real loopback port, and llm-comply run against it.

The simulator tests talk HTTP to the simulators exactly as clients (the official SDKs, llm-comply, our
translators) would, so each test module starts one real server. The harness lives here once instead of in
every ``test_simulator_*`` module; provider-specific request helpers stay with their tests.
"""

from __future__ import annotations

import asyncio
import json
import pathlib
import socket
import subprocess
import sys
import threading
from types import ModuleType

import httpx
import pytest
from aiohttp import web

from extproc.simulators import core

# Installed next to the interpreter running the tests, so the venv's llm-comply is the one exercised.
LLM_COMPLY = pathlib.Path(sys.executable).with_name("llm-comply")


class SimulatorServer:
    """One simulator (``core.Simulator(name)`` with ``routes_module.routes``) on a free loopback port.

    The app runs on its own event loop in a daemon thread, so synchronous tests and subprocesses can call it
    while the test itself blocks. The socket is bound before serving, so ``port``/``url`` are known and free.
    """

    def __init__(self, name: str, routes_module: ModuleType) -> None:
        self.sim = core.Simulator(name)
        self.app = self.sim.app(routes_module.routes(self.sim))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        self.http = httpx.Client(base_url=self.url, timeout=10)  # one client: each new one loads CA certificates

    async def _start(self) -> None:
        await self.runner.setup()
        await web.SockSite(self.runner, self.sock).start()

    def close(self) -> None:
        self.http.close()
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def faults(self, **fields) -> None:
        """Switch on simulator faults (the ``/_sim/faults`` control endpoint) for the following requests."""
        r = self.http.put("/_sim/faults", json=fields)
        assert r.status_code == 200, r.text

    def requests(self) -> list[dict]:
        """The requests the simulator recorded since the last ``clear()``."""
        return self.http.get("/_sim/requests").json()

    def clear_faults(self) -> None:
        self.http.delete("/_sim/faults")

    def clear(self) -> None:
        """Forget faults, recorded requests and the prompt cache, so one test's setup cannot leak into the next."""
        self.clear_faults()
        self.http.delete("/_sim/requests")
        self.http.delete("/_sim/prompt-cache")


def server_fixture(name: str, routes_module: ModuleType, cls: type[SimulatorServer] = SimulatorServer):
    """A module-scoped ``server`` fixture: starting a server per test would only cost time."""

    @pytest.fixture(scope="module", name="server")
    def server():
        s = cls(name, routes_module)
        yield s
        s.close()

    return server


def run_llm_comply(fmt: str, base_url: str, model: str, *extra_args: str) -> tuple[dict, subprocess.CompletedProcess]:
    """Run ``llm-comply run --format fmt ... --json`` and return its parsed JSON report and the process.

    The process is returned too because the tests check its exit status and show its stderr on failure.
    """
    proc = subprocess.run([str(LLM_COMPLY), "run", "--format", fmt, "-u", base_url, "-m", model, *extra_args, "--json"],
                          capture_output=True, text=True, timeout=120)
    return json.loads(proc.stdout), proc
