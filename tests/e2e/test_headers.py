"""Header allowlists both ways, on every provider.

Providers receive only what the gateway decides (content type, accept, their credential, their
version header, trace context, request id) plus the client headers their config lists
(``forward_headers``); clients receive none of a provider's headers about our account
(cookies, organization, rate limits). The simulators record the headers they received; the
response side uses this test's own OpenAI wire stub in place of the vLLM simulator, since no
simulator sends account headers."""

from __future__ import annotations

import asyncio
import json
import re
import threading

import httpx
import pytest
from aiohttp import web

from extproc.devstack import Stack

from .conftest import CLIENT_KEY, MODELS, clear_requests, fault, reset_faults, routing_with

STUB = "vllm"   # the cluster this test's wire stub serves (OpenAI API, pass-through answers)
# What a provider may see: the gateway's choices. Nothing x-llm-* or x-envoy-* (README: Header allowlists).
GATEWAY_HEADERS = {"host", "content-type", "content-length", "accept", "x-request-id", "traceparent", "tracestate",
                   "anthropic-version"}
CREDENTIALS = {"openai": "authorization", "azure_openai": "api-key", "anthropic": "x-api-key",
               "gemini": "x-goog-api-key", "vllm": "authorization"}
HOSTILE = {
    "cookie": "session=stolen", "proxy-authorization": "Basic Zm9vOmJhcg==", "x-forwarded-for": "6.6.6.6",
    "x-forwarded-host": "evil.example", "openai-organization": "org-attacker", "openai-project": "proj_attacker",
    "anthropic-beta": "computer-use-2024-10-22", "openai-beta": "assistants=v2", "x-custom": "1",
    "x-llm-try-1": "gemini", "x-llm-try-2": "gemini", "x-envoy-upstream-rq-timeout-ms": "1",
    "x-stainless-os": "Linux", "user-agent": "hostile/1.0", "x-api-key": CLIENT_KEY,
    "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "host": "internal-admin.corp:8080",
}
ACCOUNT_HEADERS = {"set-cookie": "__cf_bm=abc; path=/", "openai-organization": "org-ours", "openai-project": "proj_ours",
                   "openai-processing-ms": "12", "x-ratelimit-limit-requests": "10000",
                   "x-ratelimit-remaining-tokens": "149984", "x-ratelimit-reset-requests": "6ms",
                   "anthropic-ratelimit-requests-remaining": "49", "cf-ray": "8f0e-SJC", "x-safe-to-keep": "no"}


class WireStub:
    """An OpenAI chat endpoint that records request headers and answers with account headers."""

    def __init__(self):
        self.seen: list[dict[str, str]] = []
        self.answer_bytes = 0   # when set, the answer's content is this many bytes (one chunk on the wire)

    async def chat(self, request: web.Request) -> web.Response:
        self.seen.append({k.lower(): v for k, v in request.headers.items()})
        body = await request.json()
        answer = {"id": "chatcmpl-stub", "object": "chat.completion", "created": 0, "model": body["model"],
                  "choices": [{"index": 0, "finish_reason": "stop",
                               "message": {"role": "assistant",
                                           "content": "x" * self.answer_bytes or "stub says hi"}}],
                  "usage": {"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6}}
        return web.json_response(answer, headers=ACCOUNT_HEADERS)

    async def faults(self, _: web.Request) -> web.Response:   # devstack's readiness probe
        return web.json_response({})

    def serve(self, port: int) -> None:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self.chat)
        app.router.add_get("/_sim/faults", self.faults)
        app.router.add_delete("/_sim/{tail:.*}", self.faults)
        loop = asyncio.new_event_loop()
        runner = web.AppRunner(app)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        threading.Thread(target=loop.run_forever, daemon=True).start()


class StubbedStack(Stack):
    """The devstack, with this test's wire stub in place of the vLLM simulator."""

    stub: WireStub

    def _spawn(self, argv, env, log):
        if argv[2:4] == ["extproc", "simulate"]:
            argv = [a for a in argv if not a.startswith(f"{STUB}=")]
            self.stub = WireStub()
            self.stub.serve(self.simulators[STUB])
        super()._spawn(argv, env, log)


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    path = routing_with(tmp_path_factory.mktemp("headers"),
                        {"/providers/anthropic/forward_headers": ["anthropic-beta"]})
    stack = StubbedStack(routing=path, simulate=list(MODELS), demo_key=CLIENT_KEY).start()
    yield stack
    stack.stop()


def ask(gw, model: str, extra: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{gw.base_url}/chat/completions", timeout=20,
                      headers={"authorization": f"Bearer {CLIENT_KEY}", **extra},
                      json={"model": model, "messages": [{"role": "user", "content": "hi"}]})


def received(gw, provider: str) -> dict[str, str]:
    if provider == STUB:
        return gw.stub.seen[-1]
    records = httpx.get(f"{gw.sim_url(provider)}/_sim/requests").json()
    return {k.lower(): v for k, v in records[-1]["headers"].items()}


@pytest.mark.parametrize("provider", list(MODELS))
def test_providers_receive_only_what_the_gateway_decides(gw, provider):
    extra = {**HOSTILE, **{f"x-filler-{i}": "v" * 20 for i in range(87 - len(HOSTILE))}}   # 87 extra headers
    response = ask(gw, MODELS[provider], extra)
    assert response.status_code == 200, response.text
    headers = received(gw, provider)
    allowed = GATEWAY_HEADERS | {CREDENTIALS[provider]} | ({"anthropic-beta"} if provider == "anthropic" else set())
    assert set(headers) <= allowed, sorted(set(headers) - allowed)
    assert CREDENTIALS[provider] in headers and "sk-client" not in headers[CREDENTIALS[provider]]
    assert headers["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")   # trace context continues
    assert headers["host"] != HOSTILE["host"]    # the client's Host stays home, self-hosted providers included
    if provider == "anthropic":
        assert headers["anthropic-beta"] == HOSTILE["anthropic-beta"]   # listed in its forward_headers


def test_clients_receive_no_account_headers(gw):
    response = ask(gw, MODELS[STUB], {})
    assert response.status_code == 200 and response.json()["choices"][0]["message"]["content"] == "stub says hi"
    leaked = {k for k in response.headers if k.lower() in ACCOUNT_HEADERS and k.lower() != "x-safe-to-keep"}
    assert not leaked, leaked
    assert response.headers["x-safe-to-keep"] == "no"   # the stub's other headers do arrive: it is a denylist
    assert response.headers["x-llm-provider"] == STUB


def test_headers_a_client_cannot_steer(gw):
    """x-envoy-* from a client never reaches Envoy's router: a 1 ms deadline would fail the request."""
    response = ask(gw, MODELS["openai"], {"x-envoy-upstream-rq-timeout-ms": "1", "x-envoy-max-retries": "0",
                                          "x-llm-try-1": "nonexistent"})
    assert response.status_code == 200, response.text
    assert response.headers["x-llm-provider"] == "openai"
    assert json.loads(response.text)["model"]


def internal(headers: dict[str, str]) -> list[str]:
    return sorted(h for h in (k.lower() for k in headers) if h.startswith(("x-llm-", "x-envoy-")))


@pytest.mark.parametrize("stream", [False, True])
def test_no_internal_header_reaches_a_provider_on_any_attempt(gw, stream):
    """Attempts 1 and 2 fail (the primary's 500, the secondary's 503), attempt 3 answers: every request
    each provider received, retries and held streams included, carries no x-llm-* or x-envoy-* header.
    Envoy routes each retry on x-llm-try-N and x-envoy-attempt-count: they stop at the egress listener."""
    clear_requests(gw, "openai", "gemini", "anthropic")
    reset_faults(gw, "openai", "gemini", "anthropic")
    for name, status in (("openai", 500), ("gemini", 503), ("anthropic", 503)):
        fault(gw, name, status=status, count=1)
    response = httpx.post(f"{gw.base_url}/chat/completions", timeout=30, headers={
        "authorization": f"Bearer {CLIENT_KEY}", "x-llm-try-2": "vllm", "x-envoy-attempt-count": "7"}, json={
        "model": "auto", "stream": stream, "messages": [{"role": "user", "content": "What is the capital of Peru?"}]})
    assert response.status_code == 200, response.text
    assert response.headers["x-llm-attempts"] == "3"
    seen = {name: httpx.get(f"{gw.sim_url(name)}/_sim/requests").json() for name in ("openai", "gemini", "anthropic")}
    assert sum(len(records) for records in seen.values()) == 3   # one request per attempt
    for name, records in seen.items():
        for record in records:
            assert internal(record["headers"]) == [], (name, record["body"].get("model"), internal(record["headers"]))


INTERNAL_RESPONSE_HEADERS = ("x-envoy-upstream-service-time", "x-envoy-attempt-count", "x-llm-reply")


@pytest.mark.parametrize("case", ["answer", "stream", "fallback", "processor reply", "envoy reply"])
def test_clients_receive_no_internal_headers(gw, case):
    """Envoy's router and the processor talk through these headers; a client gets the gateway's own
    (x-llm-attempts, x-request-id) instead. A provider's answer, a fallback's, the processor's own
    refusal and Envoy's own reply alike."""
    reset_faults(gw, *(name for name in MODELS if name != STUB))   # this module's stack is not cleaned between tests
    body = {"model": MODELS["openai"], "messages": [{"role": "user", "content": "hi"}]}
    headers = {"authorization": f"Bearer {CLIENT_KEY}"}
    if case == "stream":
        body["stream"] = True
    elif case == "fallback":
        # attempt 1's provider (learnt from the same request) fails once; attempt 2 goes to the next tier
        body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
        first = httpx.post(f"{gw.base_url}/chat/completions", headers=headers, json=body, timeout=20)
        failing = first.headers["x-llm-provider"]
        fault(gw, failing, status=500, count=1)
    elif case == "processor reply":
        body["model"] = "no-such-model"
    elif case == "envoy reply":
        body = None
    try:
        if body is None:   # over the listener's buffer limit: Envoy's own 413
            response = httpx.post(f"{gw.base_url}/chat/completions", headers={**headers,
                                  "content-type": "application/json"}, content=b" " * (4 * 1024 * 1024 + 1),
                                  timeout=20)
        else:
            response = httpx.post(f"{gw.base_url}/chat/completions", headers=headers, json=body, timeout=20)
    finally:
        if case == "fallback":
            reset_faults(gw, failing)
    expected = {"answer": 200, "stream": 200, "fallback": 200, "processor reply": 404, "envoy reply": 413}[case]
    assert response.status_code == expected, response.text[:300]
    leaked = [h for h in INTERNAL_RESPONSE_HEADERS if h in response.headers]
    if case == "fallback":
        assert response.headers["x-llm-provider"] != failing
    assert not leaked, (leaked, dict(response.headers))
    if case != "envoy reply":   # (Envoy's 413 came before the processor saw the request: Envoy's own id)
        assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"]), response.headers   # the gateway's
    if case not in ("envoy reply", "processor reply"):
        assert response.headers["x-llm-attempts"] == ("2" if case == "fallback" else "1"), response.headers


@pytest.mark.parametrize("stream", [False, True])
def test_the_messages_front_door_follows_the_allowlist(gw, stream):
    """/v1/messages passed the client's anthropic-version and anthropic-beta straight to Anthropic. Now the
    version is the gateway's own and anthropic-beta passes only because this stack's anthropic provider
    lists it in forward_headers (the shipped config does not: test_front_doors); other providers never
    get it."""
    reset_faults(gw, "anthropic", "openai")   # this module's stack is not cleaned between tests
    for model in (MODELS["anthropic"], MODELS["openai"]):
        response = httpx.post(f"{gw.base_url}/messages", timeout=20, headers={
            "x-api-key": CLIENT_KEY, "anthropic-version": "1999-01-01", "anthropic-beta": "evil-beta"},
            json={"model": model, "max_tokens": 50, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
        assert response.status_code == 200, response.text
        headers = received(gw, "anthropic" if model == MODELS["anthropic"] else "openai")
        if model == MODELS["anthropic"]:
            assert headers["anthropic-version"] == "2023-06-01", headers
            assert headers["anthropic-beta"] == "evil-beta"       # listed in this stack's forward_headers
        else:
            assert "anthropic-version" not in headers and "anthropic-beta" not in headers, headers
