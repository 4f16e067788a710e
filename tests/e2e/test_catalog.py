"""The seed document (routing rules only, the built-in catalog) through the real Envoy, after the
catalog update: its well-known names reach models the APIs still serve, and the rules of the
Claude 5.x models it now reaches hold (fixed sampling: left out; a prefill: another candidate or 422).
"""

from __future__ import annotations

import json

import openai
import pytest

from extproc.devstack import Stack

from .conftest import CLIENT_KEY, clear_requests, upstream_requests

SEED = {"routing_rules": {
    "simple_queries": {"primary": "gpt-3.5-turbo", "fallback": "claude-haiku", "max_cost_per_1k": 0.002},
    "complex_reasoning": {"primary": "gpt-4", "fallback": "claude-opus", "max_latency_ms": 5000}},
    "tenants": {"demo": {}}}   # the stack's demo key names this tenant


@pytest.fixture(scope="module")
def seed(tmp_path_factory):
    path = tmp_path_factory.mktemp("seed") / "seed.json"
    path.write_text(json.dumps(SEED))
    stack = Stack(routing=path, simulate=["openai", "anthropic"], demo_key=CLIENT_KEY).start()
    yield stack
    stack.stop()


@pytest.fixture
def client(seed):
    clear_requests(seed)   # no recorded requests from the previous test
    return openai.OpenAI(base_url=seed.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=20)


def test_the_seed_names_reach_served_models(seed, client):
    for name, provider, upstream in [("gpt-3.5-turbo", "openai", "gpt-4o-mini"), ("gpt-4", "openai", "gpt-4o"),
                                     ("claude-haiku", "anthropic", "claude-haiku-5-5"),
                                     ("claude-opus", "anthropic", "claude-opus-5-5")]:
        answer = client.chat.completions.create(model=name, messages=[{"role": "user", "content": "Hi"}])
        assert answer.choices[0].message.content
        assert upstream_requests(seed, provider)[-1]["body"]["model"] == upstream


def test_sampling_settings_are_left_out_for_claude_haiku_5_5(seed, client):
    answer = client.chat.completions.create(model="claude-haiku", temperature=0.2, top_p=0.9,
                                            messages=[{"role": "user", "content": "Hi"}])
    assert answer.choices[0].finish_reason == "stop"
    body = upstream_requests(seed, "anthropic")[-1]["body"]
    assert body["model"] == "claude-haiku-5-5" and "temperature" not in body and "top_p" not in body


def test_a_prefill_for_claude_opus_5_5_is_a_clear_422(seed, client):
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.chat.completions.create(model="claude-opus", messages=[
            {"role": "user", "content": "Name a fruit"}, {"role": "assistant", "content": "The fruit is"}])
    assert "prefill" in info.value.body["message"]
    assert upstream_requests(seed, "anthropic") == []   # never sent
