"""Cost, budgets and limits count the tokens the provider counts, through the real gateway and the SDK.

- Embeddings: each input is held to the model's window, not the sum of a batch (a RAG ingestion client
  sends hundreds of chunks per call), by a token count where the estimate comes near it.
- A max_tokens above every model's output limit is clamped before cost caps and the tenant's tokens per
  minute count it (Claude Code sends 32K-64K; some clients send a huge number to mean "no limit").
- A tenant whose budget stands in the way of every model its surface allows: served while money is left,
  then the budget's 429 `insufficient_quota` with `retry-after`, as for a pinned request (not a 422).
- Conversation affinity prices a cache read only where the provider reads one: a chat turn to Claude
  (no cache_control sent) is priced in full, so the cost rule moves the conversation to the cheaper model.
- A provider's 400 for a prompt over its window, on a routed request, moves on to a larger-window candidate
  of the plan (the gateway's own estimate chose the model; other tokenizers count more).
"""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from extproc import tokens
from extproc.keys import digest

from .conftest import CLIENT_KEY, clear_requests, fault, reset_faults, stack_with, upstream_requests, wait_for

# about 770 tokens (o200k) and 3,100 characters: a typical RAG chunk
CHUNK = " ".join(f"paragraph {i} of the handbook explains the refund policy for damaged goods." for i in range(40))


@pytest.mark.parametrize("model,provider", [("text-embedding-3-small", "openai"), ("gemini-embedding-001", "gemini")])
def test_a_batch_of_chunks_is_embedded_though_their_sum_exceeds_one_inputs_window(gateway, client, model, provider):
    inputs = [f"{i}: {CHUNK}" for i in range(25)]   # ~19K tokens together; each far under 2,048
    result = client.embeddings.create(model=model, input=inputs, encoding_format="float")
    assert [d.index for d in result.data] == list(range(25))
    assert len(upstream_requests(gateway, provider)) == 1


def test_many_short_inputs_are_embedded(gateway, client):
    result = client.embeddings.create(model="text-embedding-3-small", input=[f"customer note {i}: the parcel arrived late" for i in range(2048)],
                                      encoding_format="float")
    assert len(result.data) == 2048


def test_one_input_over_the_window_is_refused_naming_it(gateway, client):
    too_long = CHUNK * 15     # 8,400 tokens counted: over text-embedding-3-small's 8,191
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="text-embedding-3-small", input=["short", too_long])
    error = info.value.body
    assert (error["code"], error["param"]) == ("context_length_exceeded", "input[1]")
    assert "8191 tokens per input" in error["message"]
    assert f"input[1] resulted in {tokens.count(too_long)} tokens" in error["message"], error   # the count
    assert upstream_requests(gateway, "openai") == []


def test_an_input_under_the_window_by_count_is_embedded_though_its_estimate_is_over(gateway, client):
    """Review 7 finding 2: chars/4 runs high on English, so it refused inputs OpenAI accepts; near a
    limit the gateway now counts (6,720 tokens here, estimated 8,968) and only the count refuses."""
    fits = CHUNK * 12
    assert len(fits) // 4 > 8191 > tokens.count(fits)
    result = client.embeddings.create(model="text-embedding-3-small", input=["short", fits], encoding_format="float")
    assert [d.index for d in result.data] == [0, 1]
    assert len(upstream_requests(gateway, "openai")) == 1


def test_an_input_the_estimate_misses_is_refused_by_the_provider_in_openais_words(gateway, client):
    """Tryout 8: CJK text runs ~1.9 tokens a character, 8x the chars/4 estimate, so the gateway never counts
    it; the provider's 400 (the strict simulator counts with a real tokenizer) reaches the client as
    context_length_exceeded, after one provider call."""
    cjk = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(6000))   # ~11,400 tokens, estimated 1,500
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="text-embedding-3-small", input=[cjk])
    assert info.value.body["code"] == "context_length_exceeded", info.value.body
    assert len(upstream_requests(gateway, "openai")) == 1


# ---- a stack with limits: the demo tenant's tokens per minute ----------------------------------------

TPM = 100_000
SUPPORT_KEY = "sk-support-tight-e2e"   # tenant "tight": surface support (quality floor 4), a tiny daily budget


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    with stack_with(tmp_path_factory, "cost_limits", {
            "/tenants/demo/rate_limit": {"tokens_per_minute": TPM},
            "/tenants/demo/workloads": ["interactive", "batch", "steady"],
            "/workloads/steady": {"prefer": "cost"},
            "/tenants/tight": {"surface": "support", "api_keys_sha256": [digest(SUPPORT_KEY)]},
            "/budgets": {"timezone": "UTC", "tenants": {"tight": {"daily": 0.00002}}}}) as stack:
        yield stack


def chat(stack, key=CLIENT_KEY, **body) -> httpx.Response:
    return httpx.post(f"{stack.base_url}/chat/completions", headers={"authorization": f"Bearer {key}"},
                      json={"messages": [{"role": "user", "content": "Say hi."}], **body}, timeout=30)


def test_a_max_tokens_above_the_tenants_tpm_is_clamped_before_it_is_counted(limited):
    # gpt-4o-mini writes at most 16,384 tokens: the request needs ~16.4K of the 100K, not 200K
    answer = chat(limited, model="gpt-4o-mini", max_tokens=200_000)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-ratelimit-limit-tokens"] == str(TPM)


def test_a_huge_max_tokens_on_auto_is_routed_within_the_cost_caps(limited):
    answer = chat(limited, model="auto", max_tokens=10**9)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-llm-model"] == "gpt-4o-mini"


def test_a_budget_below_every_allowed_model_serves_then_answers_its_429(limited):
    # gpt-4o's estimate (~$0.0002) is above the $0.00002 budget and the floor drops the cheap models:
    # money is left, so the request is served (before: 422 no_model_available)
    first = chat(limited, key=SUPPORT_KEY, model="auto", max_tokens=20)
    assert first.status_code == 200, first.text
    assert first.headers["x-llm-model"] in ("gpt-4o", "claude-sonnet-4-6")

    # its bill spends the budget; from then on auto gets the budget's 429, as a pinned request does
    def refused():
        answer = chat(limited, key=SUPPORT_KEY, model="auto", max_tokens=20)
        return answer if answer.status_code == 429 else None
    auto = wait_for(refused, what="the spent budget to refuse an auto request")
    error = auto.json()["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
    assert "daily budget" in error["message"] and "tenant 'tight'" in error["message"]
    assert 0 < int(auto.headers["retry-after"]) <= 86_400
    pinned = chat(limited, key=SUPPORT_KEY, model="gpt-4o", max_tokens=20)
    assert pinned.status_code == 429 and pinned.json()["error"]["code"] == "insufficient_quota"
    with pytest.raises(openai.RateLimitError):   # what an SDK client sees: a 429 it may retry later
        openai.OpenAI(base_url=limited.base_url, api_key=SUPPORT_KEY, max_retries=0).chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hi"}], max_tokens=20)


# ---- affinity prices cache reads only where the provider reads a cache -------------------------------

POLICIES = " ".join(f"Policy {i}: a customer who reports outage number {i} gets a credit of {i % 7 + 1} days, "
                    f"after the on-call engineer confirms the ticket within {i % 5 + 2} hours." for i in range(160))
SYSTEM = "You are the support assistant for a network equipment vendor. Follow the policies below.\n" + POLICIES
TASK = ("I run a 40-site retail chain with mixed routers behind a VPN concentrator; design a staged firmware "
        "rollout plan that minimizes downtime, including rollback criteria and a test matrix.")
FOLLOW_UP = "Now prove that the rollback criteria are sufficient to detect partial failures, reasoning step by step."


def test_a_claude_turn_is_not_priced_as_a_cache_read_claude_never_makes(limited):
    # workload "steady" orders a tier by cost (interactive orders by measured latency first, which the
    # other tests of a shared stack move): gpt-4o leads the complex class's primary tier, Sonnet follows
    client = openai.OpenAI(base_url=limited.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=30,
                           default_headers={"x-llm-session": "cost-limits-affinity", "x-llm-workload": "steady"})
    first = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": TASK}]
    # turn 1 is served by claude-sonnet-4-6 (named by the client), which pins the conversation
    turn1 = client.chat.completions.with_raw_response.create(model="claude-sonnet-4-6", messages=first)
    assert turn1.headers["x-llm-class"] == "complex_reasoning"
    # turn 2: Claude got no cache_control, so it would bill the ~5.6K-token prefix in full: dearer than
    # gpt-4o, and the cost rule routes the turn afresh (before, the pin was priced as a cache read and kept)
    answer = turn1.parse().choices[0].message.content
    turn2 = client.chat.completions.with_raw_response.create(
        model="auto", messages=[*first, {"role": "assistant", "content": answer}, {"role": "user", "content": FOLLOW_UP}])
    assert turn2.headers["x-llm-model"] == "gpt-4o", turn2.headers.get("x-llm-route")
    assert "conversation affinity" not in turn2.headers["x-llm-route"]
    sent = upstream_requests(limited, "anthropic")
    assert sent and "cache_control" not in json.dumps(sent[-1]["body"])   # why no cache read happens


# ---- a provider's context-length 400 moves on to a larger window -------------------------------------

SMALL_WINDOWS = ("openai", "azure_openai", "vllm")   # every 128-131K-token model of the simple class


@pytest.fixture
def refusing(limited):
    """The module's stack with every small-window provider refusing prompts as too long."""
    clear_requests(limited)
    for provider in SMALL_WINDOWS:
        fault(limited, provider, refusal="context_length")
    yield limited
    reset_faults(limited)


@pytest.mark.parametrize("stream", [False, True])
def test_a_providers_context_length_400_is_retried_on_a_larger_window(refusing, stream):
    client = openai.OpenAI(base_url=refusing.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=30)
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=[{"role": "user", "content": "Say hi."}],
                                                           stream=stream)
    # the secondary tier's leader: gemini-3.5-flash-lite (1M tokens), else claude-haiku-4-5 (200K)
    assert raw.headers["x-llm-model"] in ("gemini-3.5-flash-lite", "claude-haiku-4-5"), raw.headers.get("x-llm-route")
    if stream:
        assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    else:
        assert raw.parse().choices[0].message.content
    assert "x-llm-context-overflow" not in raw.headers
    assert sum(len(upstream_requests(refusing, p)) for p in SMALL_WINDOWS) == 1   # one refusal, then the retry


def test_context_length_400s_retried_on_a_larger_window_leave_the_small_window_healthy(refusing):
    """A prompt too long for a window is the request's fault, not the provider's: five such refusals
    (streamed, so the upstream stage watches attempt 1 and sees its 400) are no failures, and the
    small-window model stays in every plan (before, five of them ejected it for every tenant)."""
    def health() -> dict:
        return httpx.get(refusing.status_url).json()["providers"]

    before = sum(health().get(p, {}).get("requests", 0) for p in SMALL_WINDOWS)
    client = openai.OpenAI(base_url=refusing.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=30)
    for _ in range(5):
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": "Say hi."}], stream=True)
        assert raw.headers["x-llm-model"] in ("gemini-3.5-flash-lite", "claude-haiku-4-5")
        assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    assert sum(len(upstream_requests(refusing, p)) for p in SMALL_WINDOWS) == 5
    # the five refusals reach the health tracker as samples (waited on: spans end after the answer)
    wait_for(lambda: sum(health().get(p, {}).get("requests", 0) for p in SMALL_WINDOWS) >= before + 5,
             what="the five refused attempts in the health tracker")
    providers = health()
    for provider in SMALL_WINDOWS:
        status = providers.get(provider, {})
        assert status.get("failures", 0) == 0 and not status.get("ejected"), (provider, status)


def test_a_pinned_models_context_length_400_reaches_the_client_once(refusing):
    client = openai.OpenAI(base_url=refusing.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=30)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hi."}])
    assert info.value.body["code"] == "context_length_exceeded"
    assert len(upstream_requests(refusing, "openai")) == 1
