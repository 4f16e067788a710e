"""The trust boundary, end to end through Envoy with the official SDKs: gateway keys (401), tenant binding
(403), a key file re-read while the gateway runs, and what a tenant sees of /v1/models."""

from __future__ import annotations


import httpx
import openai
import pytest

from extproc.config import load
from extproc.devstack import DEFAULT_ROUTING
from extproc.keys import KEYS_FILE_ENV, KeyEntry, digest

from .conftest import AUTH, CLIENT_KEY, wait_for

SIMPLE = [{"role": "user", "content": "What is the capital of France?"}]


def sdk(gateway, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=key, max_retries=0, timeout=20)


@pytest.mark.parametrize("headers", [{}, {"authorization": "Bearer sk-made-up"}, {"x-llm-tenant": "helpdesk"},
                                     {"x-llm-tenant": "helpdesk", "authorization": "Bearer sk-made-up"},
                                     {"authorization": "Basic c2stYQ=="}])
def test_no_valid_key_is_a_401_and_reaches_no_provider(gateway, headers):
    for method, path in (("POST", "/v1/chat/completions"), ("GET", "/v1/models"), ("POST", "/v1/feedback"),
                         ("POST", "/v1/nope")):
        r = httpx.request(method, f"http://127.0.0.1:{gateway.listen_port}{path}", timeout=20,
                          headers={"content-type": "application/json", **headers},
                          json={"model": "auto", "messages": SIMPLE})
        assert r.status_code == 401, (path, r.text)
        assert r.json()["error"]["code"] == "invalid_api_key" and set(r.json()["error"]) == {
            "message", "type", "param", "code"}
        assert "sk-made-up" not in r.text


def test_the_sdks_see_an_authentication_error(gateway):
    with pytest.raises(openai.AuthenticationError) as info:
        sdk(gateway, "sk-wrong").chat.completions.create(model="auto", messages=SIMPLE)
    assert info.value.body["code"] == "invalid_api_key"


def test_documented_demo_keys_and_x_api_key_work(gateway):
    r = sdk(gateway, "sk-helpdesk-demo").chat.completions.with_raw_response.create(model="auto", messages=SIMPLE)
    assert r.headers["x-llm-surface"] == "support"
    # Anthropic-style clients send their key as x-api-key.
    r = httpx.post(f"{gateway.base_url}/chat/completions", headers={"x-api-key": CLIENT_KEY}, timeout=20,
                   json={"model": "auto", "messages": SIMPLE})
    assert r.status_code == 200, r.text


def test_headers_cannot_lift_a_tenants_binding(gateway):
    """Issue 16: nightly (batch on drafts, which denies premium models) asked for support / interactive."""
    nightly = sdk(gateway, "sk-nightly-demo")
    for header, value in (("x-llm-surface", "support"), ("x-llm-workload", "interactive")):
        with pytest.raises(openai.PermissionDeniedError) as info:
            nightly.chat.completions.create(model="auto", messages=SIMPLE, extra_headers={header: value})
        assert info.value.status_code == 403
        assert (info.value.body["code"], info.value.body["param"]) == ("permission_denied", header)
    with pytest.raises(openai.PermissionDeniedError):   # a premium model denied by its surface stays denied
        nightly.chat.completions.create(model="claude-sonnet-4-6", messages=SIMPLE,
                                        extra_headers={"x-llm-surface": "support"})
    r = nightly.chat.completions.with_raw_response.create(model="auto", messages=SIMPLE)
    assert (r.headers["x-llm-surface"], r.headers["x-llm-workload"]) == ("drafts", "batch")
    assert r.headers["x-llm-model"] != "claude-sonnet-4-6"
    # The demo tenant lists both surfaces: it may choose.
    r = sdk(gateway, CLIENT_KEY).chat.completions.with_raw_response.create(
        model="auto", messages=SIMPLE, extra_headers={"x-llm-surface": "support"})
    assert r.headers["x-llm-surface"] == "support"


def test_models_lists_what_the_tenant_may_use(gateway):
    nightly = {m.id for m in sdk(gateway, "sk-nightly-demo").models.list()}
    demo = {m.id for m in sdk(gateway, CLIENT_KEY).models.list()}
    assert "claude-sonnet-4-6" in demo and "claude-sonnet-4-6" not in nightly and "gpt-4o-mini" in nightly
    with pytest.raises(openai.NotFoundError):
        sdk(gateway, "sk-nightly-demo").models.retrieve("claude-sonnet-4-6")


def test_models_lists_exactly_what_a_capped_tenant_is_served(gateway):
    """The demo tenant on surface drafts (max_cost_per_1k 0.002): gpt-4o ($2.50/M at best) was listed and
    then refused for every request (422). Now each listed model serves a request and no other does."""
    demo, drafts = sdk(gateway, CLIENT_KEY), {"x-llm-surface": "drafts", "x-llm-workload": "interactive"}
    listed = {m.id for m in demo.models.list(extra_headers=drafts)}
    assert "gpt-4o" not in listed and "claude-sonnet-4-6" not in listed and "claude-haiku-4-5" in listed
    assert "gpt-4o" not in {m.id for m in sdk(gateway, "sk-nightly-demo").models.list()}
    with pytest.raises(openai.NotFoundError):
        demo.models.retrieve("gpt-4o", extra_headers=drafts)
    prompt = [{"role": "user", "content": "word " * 3000}]   # prompt-heavy: the cheapest mix per 1K tokens
    for model in load(DEFAULT_ROUTING).models.values():
        try:
            if "chat" in model.endpoints:
                demo.chat.completions.create(model=model.id, messages=prompt, max_tokens=1, extra_headers=drafts)
            else:
                demo.embeddings.create(model=model.id, input="hello", extra_headers=drafts)
            served = True
        except (openai.UnprocessableEntityError, openai.PermissionDeniedError) as exc:
            assert exc.body["code"] in ("no_model_available", "permission_denied"), exc.body
            served = False
        assert served == (model.id in listed), model.id


def test_a_new_key_works_and_a_revoked_one_stops_without_a_restart(gateway):
    from pathlib import Path

    path = Path(gateway.env.get(KEYS_FILE_ENV) or gateway.workdir / "keys.yaml")
    original = path.read_text()
    key = "sk-llmgw-added-while-running"
    status = (lambda: httpx.get(f"{gateway.base_url}/models", timeout=10,
                                headers={"authorization": f"Bearer {key}"}).status_code)
    try:
        assert status() == 401
        path.write_text(original + KeyEntry("added", "nightly", digest(key)).line() + "\n")
        wait_for(lambda: status() == 200, 15, "the added key to be served")
        path.write_text(original)
        wait_for(lambda: status() == 401, 15, "the revoked key to be refused")
    finally:
        path.write_text(original)
    assert httpx.get(f"{gateway.base_url}/models", headers=AUTH, timeout=10).status_code == 200
