"""Embeddings through the gateway to OpenAI and Gemini, with the SDK's default base64 encoding."""

from __future__ import annotations

import pytest

from .conftest import upstream_requests


@pytest.mark.parametrize("model,provider", [("text-embedding-3-small", "openai"), ("gemini-embedding-001", "gemini")])
def test_embeddings(gateway, client, model, provider):
    raw = client.embeddings.with_raw_response.create(model=model, input=["the cat sat", "on the mat"])
    result = raw.parse()  # the SDK asked for base64 and decodes it
    assert raw.headers["x-llm-provider"] == provider
    assert [d.index for d in result.data] == [0, 1]
    assert len(result.data[0].embedding) == len(result.data[1].embedding) > 10
    assert result.data[0].embedding != result.data[1].embedding
    assert all(isinstance(x, float) for x in result.data[0].embedding)
    again = client.embeddings.create(model=model, input="the cat sat", encoding_format="float")
    assert again.data[0].embedding == pytest.approx(result.data[0].embedding, rel=1e-5)
    assert upstream_requests(gateway, provider)[0]["path"].endswith(
        "/embeddings" if provider == "openai" else ":batchEmbedContents")


def test_chat_model_has_no_embeddings(client):
    import openai
    with pytest.raises(openai.UnprocessableEntityError):
        client.embeddings.create(model="claude-haiku-4-5", input="x")
