"""Cost, budgets and limits count the tokens the provider counts, through the real gateway and the SDK.

- Embeddings: each input is held to the model's window, not the sum of a batch (a RAG ingestion client
  sends hundreds of chunks per call).
"""

from __future__ import annotations

import openai
import pytest

from .conftest import upstream_requests

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
