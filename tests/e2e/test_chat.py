"""Chat through the real Envoy and extproc to each provider API, driven by the official openai SDK."""

from __future__ import annotations

import json

import pytest

from .conftest import CLIENT_KEY, MODELS, upstream_requests

# What each provider must receive: its own path, and the gateway's key in its own header.
UPSTREAM = {
    "openai": ("/v1/chat/completions", "authorization", "Bearer sim-openai-key"),
    "azure_openai": ("/openai/deployments/gpt-4o-mini/chat/completions", "api-key", "sim-azure_openai-key"),
    "anthropic": ("/v1/messages", "x-api-key", "sim-anthropic-key"),
    "gemini": ("/v1beta/models/gemini-3.5-flash-lite:generateContent", "x-goog-api-key", "sim-gemini-key"),
    "vllm": ("/v1/chat/completions", "authorization", "Bearer sim-vllm-key"),
}
UPSTREAM_MODEL = {"openai": "gpt-4o-mini", "azure_openai": "gpt-4o-mini", "anthropic": "claude-haiku-4-5",
                  "gemini": "gemini-3.5-flash-lite", "vllm": "meta-llama/Llama-3.1-8B-Instruct"}


def _headers(record: dict) -> dict[str, str]:
    return {k.lower(): v for k, v in record["headers"].items()}


@pytest.mark.parametrize("provider", list(MODELS))
def test_plain_chat_reaches_the_provider_in_its_own_shape(gateway, client, provider):
    model = MODELS[provider]
    raw = client.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "system", "content": "Be brief."},
                  {"role": "user", "content": "What is the capital of France?"}],
        max_tokens=50, temperature=0.2)
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content.endswith("You said: What is the capital of France?")
    assert UPSTREAM_MODEL[provider] in completion.choices[0].message.content  # the simulator names the model it got
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    assert raw.headers["x-llm-provider"] == provider
    assert raw.headers["x-llm-model"] == model

    (record,) = upstream_requests(gateway, provider)
    path, header, value = UPSTREAM[provider]
    assert record["path"] == path
    headers = _headers(record)
    assert headers[header] == value
    assert CLIENT_KEY not in json.dumps(record)  # the client's key went nowhere upstream
    for other in {"authorization", "api-key", "x-api-key", "x-goog-api-key"} - {header}:
        assert other not in headers
    body = record["body"]
    if provider == "anthropic":
        assert body["system"] == "Be brief." and body["max_tokens"] == 50 and "messages" in body
    elif provider == "gemini":
        assert body["systemInstruction"]["parts"][0]["text"] == "Be brief."
        assert body["generationConfig"]["maxOutputTokens"] == 50
        assert body["contents"][0]["role"] == "user"
    else:
        assert body["model"] == UPSTREAM_MODEL[provider] and body["messages"][0]["role"] == "system"


@pytest.mark.parametrize("provider", list(MODELS))
def test_streamed_chat_arrives_as_openai_chunks(gateway, client, provider):
    model = MODELS[provider]
    raw = client.chat.completions.with_raw_response.create(
        model=model, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Count from one to five please"}])
    assert raw.headers["x-llm-provider"] == provider
    assert raw.headers["x-llm-model"] == model
    assert raw.headers["content-type"].startswith("text/event-stream")
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.endswith("You said: Count from one to five please")
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3  # really incremental
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    usage = [c.usage for c in chunks if c.usage]
    assert usage and usage[-1].completion_tokens > 0
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    (record,) = upstream_requests(gateway, provider)
    if provider == "gemini":
        assert record["path"].endswith(":streamGenerateContent") and record["query"] == {"alt": "sse"}
    else:
        assert record["body"]["stream"] is True


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_stream_without_include_usage_has_no_usage_chunk(client, provider):
    chunks = list(client.chat.completions.create(
        model=MODELS[provider], stream=True, messages=[{"role": "user", "content": "hello"}]))
    assert chunks and all(c.choices for c in chunks)
    assert not any(getattr(c, "usage", None) for c in chunks)


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@pytest.mark.parametrize("provider", list(MODELS))
def test_tool_calling_round_trip(gateway, client, provider):
    model = MODELS[provider]
    messages = [{"role": "user", "content": "What is the weather in Paris today?"}]
    first = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL],
                                           tool_choice="required")
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}

    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"}]
    second = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].finish_reason == "stop"
    assert "18C and sunny" in second.choices[0].message.content

    last = upstream_requests(gateway, provider)[-1]["body"]
    if provider == "anthropic":
        assert last["messages"][-1]["content"][0]["type"] == "tool_result"
        assert last["messages"][-1]["content"][0]["tool_use_id"] == call.id
    elif provider == "gemini":
        response = last["contents"][-1]["parts"][0]["functionResponse"]
        assert response["name"] == "get_weather"
    else:
        assert last["messages"][-1] == {"role": "tool", "tool_call_id": call.id, "content": "18C and sunny"}


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_streamed_tool_call(client, provider):
    chunks = list(client.chat.completions.create(
        model=MODELS[provider], stream=True, tools=[WEATHER_TOOL], tool_choice="required",
        messages=[{"role": "user", "content": "Weather in Rome?"}]))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].function.name == "get_weather"
    arguments = "".join(tc.function.arguments or "" for tc in calls)
    assert json.loads(arguments) == {"city": "Rome"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_image_content_parts(gateway, client, provider):
    pixel = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    completion = client.chat.completions.create(model=MODELS[provider], messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"},
        {"type": "image_url", "image_url": {"url": pixel}}]}])
    assert "I see 1 image" in completion.choices[0].message.content
    body = json.dumps(upstream_requests(gateway, provider)[-1]["body"])
    assert "iVBORw0KGgo" in body


def test_json_mode(client):
    for provider in ("openai", "anthropic", "gemini"):
        completion = client.chat.completions.create(
            model=MODELS[provider], response_format={"type": "json_object"},
            messages=[{"role": "user", "content": "Answer in JSON: what is 2+2?"}])
        assert isinstance(json.loads(completion.choices[0].message.content), dict), provider


def test_model_auto_routes_a_simple_question_to_the_cheap_tier(client):
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hi"}])
    assert raw.headers["x-llm-class"] == "simple_queries"
    # The primary tier's fastest model (config/routing.yaml); which one depends on live latency.
    assert raw.headers["x-llm-model"] in {"gpt-4o-mini", "azure-gpt-4o-mini", "llama-3.1-8b-instruct"}
    assert "alias 'auto'" in raw.headers["x-llm-route"]


def test_models_list_comes_from_the_config(client):
    ids = {m.id for m in client.models.list()}
    assert set(MODELS.values()) <= ids and "auto" in ids
    assert client.models.retrieve("claude-haiku-4-5").owned_by == "anthropic"
