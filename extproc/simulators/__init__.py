"""Loopback provider simulators that speak each provider's documented wire format.

``serve({"openai": 18001, ...})`` runs one HTTP server per provider on
127.0.0.1; the keys name the API each speaks (``openai`` also answers Azure
OpenAI deployment paths; a self-hosted ``vllm`` simulator is an ``openai`` one
on its own port). See ``core`` for the fault and inspection controls.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from . import anthropic, gemini, openai
from .core import Faults, Simulator

# The OpenAI simulator also answers Azure OpenAI deployment paths.
_ROUTES = {"openai": openai.routes, "azure_openai": openai.routes, "anthropic": anthropic.routes,
           "gemini": gemini.routes}


def build_app(name: str, api: str) -> tuple[Simulator, web.Application]:
    sim = Simulator(name)
    return sim, sim.app(_ROUTES[api](sim))


async def start(name: str, api: str, port: int, host: str = "127.0.0.1") -> tuple[Simulator, web.AppRunner]:
    sim, app = build_app(name, api)
    # Stalled handlers (the stall fault) must not hold up a shutdown.
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return sim, runner


async def serve(providers: dict[str, tuple[str, int]], host: str = "127.0.0.1") -> None:
    """Run simulators named ``name -> (api, port)`` until cancelled."""
    runners = [(await start(name, api, port, host))[1] for name, (api, port) in providers.items()]
    try:
        await asyncio.Event().wait()
    finally:
        for r in runners:
            await r.cleanup()


__all__ = ["Faults", "Simulator", "build_app", "serve", "start"]
