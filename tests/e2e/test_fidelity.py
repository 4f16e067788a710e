"""Requests real clients send that the real Anthropic / Gemini APIs refuse as sent before issue 10,
through Envoy and the gateway to the strict simulators, with the official openai SDK.

Each test is a request shape the strict simulator answers 400 when the translator forwards it
as it used to (tests/unit/test_openai_fidelity.py shows those old bodies refused); here the
gateway normalizes it and the provider answers 200, or, where no normalization keeps the
meaning, the client gets a clear OpenAI-shaped 422 and the provider is not called.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest

from extproc.config import load
from extproc.devstack import DEFAULT_ROUTING
from extproc.policy import _needs as needs

from .conftest import CLIENT_KEY, MODELS, upstream_requests

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
CLOCK = {"type": "function", "function": {"name": "get_time", "description": "The time now",
                                          "parameters": {"type": "object", "properties": {}}}}


def tool_history(call_id: str, assistant_text: str | None) -> list[dict]:
    return [{"role": "user", "content": "What is the weather in Paris?"},
            {"role": "assistant", "content": assistant_text, "tool_calls": [
                {"id": call_id, "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
            {"role": "tool", "tool_call_id": call_id, "content": "18C and sunny"}]


def test_whitespace_beside_a_tool_call_and_a_foreign_tool_id_reach_anthropic_valid(gateway, client):
    # An agent framework replaying a conversation that another provider (ids like "functions.x:0") began.
    answer = client.chat.completions.create(model=MODELS["anthropic"], tools=[WEATHER],
                                            messages=tool_history("functions.get_weather:0", "\n\n"))
    assert answer.choices[0].message.content == "The tool returned: 18C and sunny"
    (record,) = upstream_requests(gateway, "anthropic")
    use = record["body"]["messages"][1]["content"]
    result = record["body"]["messages"][2]["content"][0]
    assert [b["type"] for b in use] == ["tool_use"]                       # no whitespace text block
    assert use[0]["id"] == result["tool_use_id"] != "functions.get_weather:0"


def test_whitespace_system_and_a_prefill_with_trailing_space_reach_anthropic_valid(gateway, client):
    answer = client.chat.completions.create(model=MODELS["anthropic"], messages=[
        {"role": "system", "content": "   "}, {"role": "user", "content": "Name a fruit"},
        {"role": "assistant", "content": "The fruit is "}])
    assert answer.choices[0].finish_reason == "stop"
    (record,) = upstream_requests(gateway, "anthropic")
    assert "system" not in record["body"]
    assert record["body"]["messages"][-1]["content"][-1]["text"] == "The fruit is"


def test_a_prefill_is_a_clear_422_for_claude_4_6_and_reaches_haiku_4_5(gateway, client):
    """Claude Sonnet 4.6 refuses a final assistant message (400 from Anthropic); the gateway says so
    before sending, and Claude Haiku 4.5, which continues a prefill, still gets it."""
    messages = [{"role": "user", "content": "Name a fruit"}, {"role": "assistant", "content": "The fruit is"}]
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.chat.completions.create(model="claude-sonnet-4-6", messages=messages)
    assert "prefill" in info.value.body["message"] and info.value.body["param"] == "messages"
    assert upstream_requests(gateway, "anthropic") == []
    assert client.chat.completions.create(model="claude-haiku-4-5", messages=messages).choices[0].message.content
    (record,) = upstream_requests(gateway, "anthropic")
    assert record["body"]["model"] == "claude-haiku-4-5" and record["body"]["messages"][-1]["role"] == "assistant"


def test_a_whitespace_stop_sequence_is_applied_by_the_gateway(gateway, client):
    for stream in (False, True):
        kwargs = dict(model=MODELS["anthropic"], stop=[" "], messages=[{"role": "user", "content": "Hi there"}])
        if stream:
            chunks = list(client.chat.completions.create(stream=True, **kwargs))
            text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
            finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
        else:
            choice = client.chat.completions.create(**kwargs).choices[0]
            text, finish = choice.message.content, [choice.finish_reason]
        assert text == "Hello" and finish == ["stop"]   # "Hello from ..." cut at the first space, as OpenAI does
    assert all("stop_sequences" not in r["body"] for r in upstream_requests(gateway, "anthropic"))


def test_a_streamed_anthropic_tool_call_without_arguments_parses(client):
    chunks = list(client.chat.completions.create(model=MODELS["anthropic"], stream=True, tools=[CLOCK],
                                                 tool_choice="required",
                                                 messages=[{"role": "user", "content": "What time is it?"}]))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert calls[0].function.name == "get_time"
    assert json.loads("".join(tc.function.arguments or "" for tc in calls)) == {}


def test_empty_strings_reach_gemini_valid(gateway, client):
    answer = client.chat.completions.create(model=MODELS["gemini"], messages=[
        {"role": "system", "content": ""}, {"role": "user", "content": ""},
        {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "Hello"}]}])
    assert answer.choices[0].message.content.endswith("You said: Hello")
    (record,) = upstream_requests(gateway, "gemini")
    assert "systemInstruction" not in record["body"]
    assert record["body"]["contents"] == [{"role": "user", "parts": [{"text": "Hello"}]}]


@pytest.mark.parametrize("provider, body, reason", [
    ("gemini", {"n": 9}, "at most 8"),   # (n = 2**40 is already a 400 of the OpenAI validator: n <= 128)
    ("anthropic", {"n": 2}, "n must be 1"),
    ("anthropic", {"messages": [{"role": "system", "content": "Write a haiku."}]}, "at least one user or assistant"),
    ("gemini", {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}]}, "does not fetch image URLs"),
])
def test_what_a_provider_cannot_do_is_a_clear_422_and_never_reaches_it(gateway, client, provider, body, reason):
    request = {"messages": [{"role": "user", "content": "Hi"}], **body}
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.chat.completions.create(model=MODELS[provider], **request)
    assert reason in info.value.body["message"]
    assert info.value.body["type"] == "invalid_request_error"
    assert upstream_requests(gateway, provider) == []
    # and the simulators are all still serving
    for name in MODELS:
        assert client.chat.completions.create(model=MODELS[name], messages=[{"role": "user", "content": "ok?"}])


FIXTURES = sorted((Path(__file__).resolve().parents[1] / "fixtures" / "fidelity").glob("*/*.json"))


@pytest.mark.parametrize("provider", list(MODELS))
def test_client_library_shapes_are_served_by_every_provider(gateway, provider):
    """The fidelity fixtures, sent as the libraries send them, reach each strict simulator valid, or,
    when the model is configured without a capability the request needs (vision on the vLLM model),
    get the 422 that names it."""
    failures, refused = [], 0
    capabilities = load(DEFAULT_ROUTING).models[MODELS[provider]].capabilities
    with httpx.Client(base_url=gateway.base_url, timeout=30,
                      headers={"authorization": f"Bearer {CLIENT_KEY}"}) as http:
        for fixture in FIXTURES:
            data = json.loads(fixture.read_text())
            body = {**data["request"], "model": MODELS[provider]}
            r = http.post("/chat/completions", json=body)
            missing = needs(body) - capabilities
            if missing:
                refused += 1
                if r.status_code != 422 or "capability missing" not in r.text:
                    failures.append(f"{data['client']}/{data['case']}: needs {missing}: {r.status_code} {r.text[:300]}")
            elif r.status_code != 200:
                failures.append(f"{data['client']}/{data['case']}: {r.status_code} {r.text[:300]}")
            elif body.get("stream"):
                assert r.text.rstrip().endswith("data: [DONE]"), (fixture.name, r.text[-300:])
            else:
                assert r.json()["object"] == "chat.completion"
    assert not failures, "\n".join(failures)
    assert len(upstream_requests(gateway, provider)) == len(FIXTURES) - refused   # a refused one is never sent


# -- issue 10, what remained (tryout): capabilities of pinned models, per-model rules, context windows -----

PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")
IMAGE = {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}
AUDIO = {"type": "input_audio", "input_audio": {"data": "UklGRiQAAABXQVZFZm10IBAAAAABAAEA", "format": "wav"}}


@pytest.mark.parametrize("part, capability", [(IMAGE, "vision"), (AUDIO, "audio")])
def test_a_pinned_model_without_the_capability_is_a_422_and_never_called(gateway, client, part, capability):
    # The vLLM model is configured without vision or audio: its server would refuse the parts.
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.chat.completions.create(model=MODELS["vllm"], messages=[
            {"role": "user", "content": [{"type": "text", "text": "What is this?"}, part]}])
    assert f"capability missing: {capability}" in info.value.body["message"]
    assert info.value.body["type"] == "invalid_request_error"
    assert upstream_requests(gateway, "vllm") == []


def test_openai_gets_only_what_it_takes_for_the_model(gateway, client):
    # max_tokens over gpt-4o-mini's 16,384 is clamped; reasoning_effort (a non-reasoning model) left out.
    answer = client.chat.completions.create(model=MODELS["openai"], max_tokens=10**9, reasoning_effort="low",
                                            messages=[{"role": "user", "content": "Hi"}])
    assert answer.choices[0].message.content
    (record,) = upstream_requests(gateway, "openai")
    assert record["body"]["max_tokens"] == 16384 and "reasoning_effort" not in record["body"]


@pytest.mark.parametrize("extra, param", [({"web_search_options": {}}, "web_search_options"),
                                          ({"extra_body": {"top_k": 40}}, "top_k")])
def test_what_openai_refuses_for_the_model_is_a_422_when_pinned(gateway, client, extra, param):
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.chat.completions.create(model=MODELS["openai"], messages=[{"role": "user", "content": "Hi"}], **extra)
    assert info.value.body["param"] == param
    assert upstream_requests(gateway, "openai") == []


def test_gemini_logprobs_are_a_422_and_its_max_tokens_is_clamped(gateway, client):
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.chat.completions.create(model=MODELS["gemini"], logprobs=True, top_logprobs=2,
                                       messages=[{"role": "user", "content": "Hi"}])
    assert "logprobs" in info.value.body["message"] and info.value.body["param"] == "logprobs"
    assert upstream_requests(gateway, "gemini") == []
    answer = client.chat.completions.create(model=MODELS["gemini"], max_tokens=10**9,
                                            messages=[{"role": "user", "content": "Hi"}])
    assert answer.choices[0].message.content
    (record,) = upstream_requests(gateway, "gemini")
    assert record["body"]["generationConfig"]["maxOutputTokens"] == 65536


def test_a_prompt_over_a_pinned_model_window_is_openais_context_length_exceeded(gateway, client):
    long = "word " * 130000                       # 130,008 tokens counted: over gpt-4o-mini's 128,000
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODELS["openai"], messages=[{"role": "user", "content": long}])
    err = info.value.body
    assert (err["code"], err["param"], err["type"]) == ("context_length_exceeded", "messages", "invalid_request_error")
    assert err["message"].startswith("This model's maximum context length is 128000 tokens. However, your messages "
                                     "resulted in 130008 tokens.")
    assert upstream_requests(gateway, "openai") == []
    # 104,008 tokens, which characters / 4 read as 130,007: the API serves it, so the gateway does too
    # (near a window only the tokenizer's count refuses)
    served = client.chat.completions.create(model=MODELS["openai"],
                                            messages=[{"role": "user", "content": "word " * 104000}])
    assert served.choices[0].message.content and len(upstream_requests(gateway, "openai")) == 1
    # a cap that does not fit either, on the vLLM model (max_model_len 131,072)
    with pytest.raises(openai.BadRequestError, match="you requested") as info:
        client.chat.completions.create(model=MODELS["vllm"], max_tokens=10**9,
                                       messages=[{"role": "user", "content": "Hi"}])
    assert info.value.body["code"] == "context_length_exceeded"
    assert upstream_requests(gateway, "vllm") == []


def test_azure_gets_only_what_its_api_version_takes(gateway, client):
    # store/metadata only keep or label a completion: left out; web search would change the answer: 422.
    answer = client.chat.completions.create(model=MODELS["azure_openai"], store=True, metadata={"team": "a"},
                                            messages=[{"role": "user", "content": "Hi"}])
    assert answer.choices[0].message.content
    (record,) = upstream_requests(gateway, "azure_openai")
    assert "store" not in record["body"] and "metadata" not in record["body"]
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.chat.completions.create(model=MODELS["azure_openai"], web_search_options={},
                                       messages=[{"role": "user", "content": "Hi"}])
    assert info.value.body["param"] == "web_search_options"
    assert len(upstream_requests(gateway, "azure_openai")) == 1


# ---- what OpenAI refuses for every model, refused by the gateway up front (tryout M1) ----------------

@pytest.mark.parametrize("extra, param", [
    ({"stream_options": {"include_usage": True}}, "stream_options"),
    ({"parallel_tool_calls": False}, "parallel_tool_calls"),
])
@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_a_field_without_the_one_it_depends_on_is_openais_400_on_every_provider(gateway, client, provider, extra,
                                                                                 param):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODELS[provider], messages=[{"role": "user", "content": "Hi"}],
                                       extra_body=extra)
    assert info.value.body["param"] == param and "only allowed when" in info.value.body["message"]
    assert upstream_requests(gateway, provider) == []


@pytest.mark.parametrize("provider", ["openai", "gemini"])
def test_an_image_data_url_that_is_not_base64_is_a_400_naming_the_field(gateway, client, provider):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODELS[provider], messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is in this image?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,!!!"}}]}])
    assert info.value.body["param"] == "messages[0].content[1].image_url.url"
    assert upstream_requests(gateway, provider) == []


def test_verbosity_is_left_out_for_a_model_below_gpt_5(gateway, client):
    answer = client.chat.completions.create(model=MODELS["openai"], messages=[{"role": "user", "content": "Hi"}],
                                            extra_body={"verbosity": "low"})
    assert answer.choices[0].message.content
    (record,) = upstream_requests(gateway, "openai")
    assert "verbosity" not in record["body"]
