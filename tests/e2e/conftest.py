"""End-to-end fixtures: one real gateway (Envoy + extproc + simulators) for the session, and the helpers
every e2e module shares: a stack of its own from the shipped config with some changes (`stack_with`,
`routing_with`), simulator faults (`fault`, `reset_faults`, `clear_requests`), waiting on a condition
(`wait_for`), reading the Prometheus metrics (`scrape`, `metric`) and the usage ledger (`ledger_records`,
`ledger_rows`, `ledger_row`)."""

from __future__ import annotations

import asyncio
import copy
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

import httpx
import openai
import pytest
import yaml

from extproc.devstack import DEFAULT_ROUTING, Stack
from extproc.ledger import open_ledger

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

# Health rules that never eject: a stack whose tests each see the plain cascade of one failure.
NO_EJECTION = {"consecutive_failures": 1000, "max_error_rate": 1.0}


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
    reset_faults(stack)
    clear_requests(stack)
    yield


def upstream_requests(stack: Stack, provider: str) -> list[dict]:
    return httpx.get(f"{stack.sim_url(provider)}/_sim/requests").json()


# ---- a stack of a module's own ---------------------------------------------------------------------

def shipped_routing() -> dict:
    """A fresh copy of the shipped routing config (config/routing.yaml), as plain YAML values."""
    return yaml.safe_load(DEFAULT_ROUTING.read_text())


def routing_with(directory: Path, changes: dict[str, Any]) -> Path:
    """Write the shipped routing config with ``changes`` to ``directory/routing.yaml``; return that path.

    ``changes`` maps a JSON Pointer (RFC 6901: ``"/workloads/interactive/hedge"``, ``~1`` for a ``/`` in
    a key) to the value put there, in order, as JSON Patch's ``add`` does (RFC 6902): a key is set
    (replacing a whole section, never merged into it), a list index replaces that item and ``-`` appends.
    The parent must exist (KeyError, IndexError): a misspelt path fails instead of adding a stray key."""
    config = shipped_routing()
    for pointer, value in changes.items():
        assert pointer.startswith("/"), f"not a JSON Pointer: {pointer!r}"
        *parents, last = [part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/")]
        node = config
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        value = copy.deepcopy(value)   # one shared constant in two places would be dumped as a YAML alias
        if isinstance(node, list):
            if last == "-":
                node.append(value)
            else:
                node[int(last)] = value
        else:
            node[last] = value
    path = directory / "routing.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def stack_with(tmp_path_factory, name: str, changes: dict[str, Any], **options) -> Stack:
    """A stack (not started: ``with stack_with(...) as stack``) serving the shipped routing config with
    ``changes`` (see `routing_with`), written to a fresh directory named after ``name``; every provider
    simulated and the demo key `CLIENT_KEY`, unless ``options`` (Stack's fields) say otherwise."""
    routing = routing_with(tmp_path_factory.mktemp(name), changes)
    return Stack(**{"routing": routing, "simulate": list(MODELS), "demo_key": CLIENT_KEY, **options})


# ---- simulator faults ------------------------------------------------------------------------------

def fault(stack: Stack, provider: str, **fields) -> None:
    """Set the provider simulator's fault (extproc/simulators: status, count, latency_ms, stall ...)."""
    assert httpx.put(f"{stack.sim_url(provider)}/_sim/faults", json=fields).status_code == 200


def reset_faults(stack: Stack, *providers: str) -> None:
    """Clear the named simulators' faults (all of the stack's by default)."""
    for name in providers or stack.simulators:
        httpx.delete(f"{stack.sim_url(name)}/_sim/faults").raise_for_status()


def clear_requests(stack: Stack, *providers: str) -> None:
    """Forget the requests the named simulators recorded (all of the stack's by default)."""
    for name in providers or stack.simulators:
        httpx.delete(f"{stack.sim_url(name)}/_sim/requests").raise_for_status()


# ---- conditions and metrics ------------------------------------------------------------------------

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 30.0, what: str = "condition") -> T:
    """``condition()``'s first truthy value, polled every 50 ms; AssertionError naming ``what`` after
    ``timeout`` seconds. (Gateways here observe attempts after the client's answer, and the machine is
    shared: tests wait on the condition, never a fixed sleep.)"""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def scrape(stack: Stack) -> str:
    """The stack's Prometheus exposition text (GET /metrics beside /status)."""
    return httpx.get(stack.status_url.replace("/status", "/metrics")).text


def metric(text: str, name: str, **labels) -> float:
    """The sum of sample ``name``'s values in exposition ``text`` over the series carrying ``labels``
    (0.0 when there is none): ``metric(scrape(gw), "llm_gateway_requests_total", outcome="ok")``."""
    total = 0.0
    for line in text.splitlines():
        if (line.startswith(name + "{") or line.startswith(name + " ")) and \
                all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def ledger_records(stack: Stack) -> dict[str, Any]:
    """Every record in the stack's usage ledger (``stack.ledger_url``), by request id (an attempt's own
    record as ``<id>/<attempt>``), read once."""
    async def read() -> dict[str, Any]:
        ledger = open_ledger(stack.ledger_url)
        try:
            return {r.request_id: r for r in await ledger.records()}
        finally:
            await ledger.close()
    return asyncio.run(read())


def ledger_rows(stack: Stack, request_id: str, count: int = 1, final: bool = True,
                timeout: float = 15.0) -> dict[str, Any]:
    """The request's ledger records (its own and its attempts' ``<id>/<attempt>``) by request id, once
    ``count`` of them are written and, with ``final``, none is still in flight (the gateway writes its
    records after the client's answer: this waits, ``wait_for``)."""
    def ready() -> dict[str, Any] | None:
        rows = {rid: r for rid, r in ledger_records(stack).items()
                if rid == request_id or rid.startswith(f"{request_id}/")}
        done = len(rows) >= count and (not final or all(r.outcome != "in_flight" for r in rows.values()))
        return rows if done else None
    return wait_for(ready, timeout, f"{count} ledger records of {request_id}")


def ledger_row(stack: Stack, request_id: str, final: bool = True, timeout: float = 15.0) -> Any:
    """The request's own ledger record, once written (and, with ``final``, no longer in flight)."""
    def ready() -> Any:
        row = ledger_records(stack).get(request_id)
        return row if row is not None and (not final or row.outcome != "in_flight") else None
    return wait_for(ready, timeout, f"the ledger record of {request_id}")
