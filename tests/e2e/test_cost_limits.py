"""Cost, budgets and limits count the tokens the provider counts, through the real gateway and the SDK.

- Embeddings: each input is held to the model's window, not the sum of a batch (a RAG ingestion client
  sends hundreds of chunks per call).
- A max_tokens above every model's output limit is clamped before cost caps and the tenant's tokens per
  minute count it (Claude Code sends 32K-64K; some clients send a huge number to mean "no limit").
"""

from __future__ import annotations

import httpx
import openai
import pytest

from extproc.keys import digest

from .conftest import CLIENT_KEY, stack_with, upstream_requests

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
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="text-embedding-3-small", input=["short", CHUNK * 12])
    error = info.value.body
    assert (error["code"], error["param"]) == ("context_length_exceeded", "input[1]")
    assert "8191 tokens per input" in error["message"]
    assert upstream_requests(gateway, "openai") == []


# ---- a stack with limits: the demo tenant's tokens per minute ----------------------------------------

TPM = 100_000


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    with stack_with(tmp_path_factory, "cost_limits", {
            "/tenants/demo/rate_limit": {"tokens_per_minute": TPM}}) as stack:
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
