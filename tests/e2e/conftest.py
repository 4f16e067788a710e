"""End-to-end fixtures: one real gateway (Envoy + extproc + simulators) for the session."""

from __future__ import annotations

import httpx
import openai
import pytest

from extproc.devstack import Stack

from .otlp_receiver import Receiver

# The client's own gateway key (the stack's demo key, tenant "demo": any surface and workload).
# It must never reach a provider.
CLIENT_KEY = "sk-client-secret-never-forwarded"
AUTH = {"authorization": f"Bearer {CLIENT_KEY}"}

# A model behind each provider API the gateway speaks (and Azure's flavour of OpenAI).
MODELS = {
    "openai": "gpt-4o-mini",
    "azure_openai": "azure-gpt-4o-mini",
    "anthropic": "claude-haiku-4-5",
    "gemini": "gemini-3.5-flash-lite",
    "vllm": "llama-3.1-8b-instruct",
}


@pytest.fixture(scope="session")
def otlp():
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def gateway(otlp):
    # Always simulate, even when real keys are in the environment; spans go to the test's receiver.
    stack = Stack(simulate=list(MODELS), otlp=otlp.address, demo_key=CLIENT_KEY)
    stack.start()
    yield stack
    stack.stop()


@pytest.fixture
def client(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=20)


@pytest.fixture(autouse=True)
def _clean_simulators(request):
    """Every test starts with no faults and no recorded requests."""
    if "gateway" not in request.fixturenames:
        yield
        return
    stack = request.getfixturevalue("gateway")
    for name in stack.simulators:
        httpx.delete(f"{stack.sim_url(name)}/_sim/faults")
        httpx.delete(f"{stack.sim_url(name)}/_sim/requests")
    yield


def upstream_requests(stack: Stack, provider: str) -> list[dict]:
    return httpx.get(f"{stack.sim_url(provider)}/_sim/requests").json()
