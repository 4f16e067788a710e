"""The OpenAI simulator, checked with the official ``openai`` SDK and with llm-comply."""

from __future__ import annotations

import base64
import json
import logging
import math
import socket
import struct
import time

import httpx
import openai
import pytest

from extproc.simulators import core, openai as sim_openai

from .simulator_server import SimulatorServer, run_llm_comply, server_fixture

server = server_fixture("openai", sim_openai)


@pytest.fixture(autouse=True)
def _clean(server):
    server.clear()
    yield
    server.clear_faults()


@pytest.fixture(scope="module")
def client(server):
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-test", max_retries=0, timeout=10) as c:
        yield c


WEATHER = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather for a city.",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}]


# -- chat ---------------------------------------------------------------------

def test_chat_json(client, server):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    assert raw.headers["content-type"].startswith("application/json")
    assert raw.headers["x-request-id"].startswith("req_")
    assert int(raw.headers["openai-processing-ms"]) >= 0
    body = json.loads(raw.http_response.content)
    assert body["id"].startswith("chatcmpl-") and body["object"] == "chat.completion"
    assert body["model"] == "gpt-4o-mini" and isinstance(body["created"], int)
    assert body["system_fingerprint"].startswith("fp_")
    choice = body["choices"][0]
    assert choice == {"index": 0, "logprobs": None, "finish_reason": "stop",
                      "message": {"role": "assistant", "content": "Hello from gpt-4o-mini. You said: hi",
                                  "refusal": None, "annotations": []}}
    usage = body["usage"]
    assert usage["prompt_tokens"] == core.count_tokens("Be brief.") + core.count_tokens("hi") == 3 + 1
    assert usage["completion_tokens"] == core.count_tokens("Hello from gpt-4o-mini. You said: hi")
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["prompt_tokens_details"]["cached_tokens"] == 0
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0
    parsed = raw.parse()  # and the SDK's own model of it
    assert parsed.choices[0].message.content == "Hello from gpt-4o-mini. You said: hi"
    assert server.requests()[-1]["headers"]["Authorization"] == "Bearer sk-test"


def test_chat_stream_with_usage(client):
    stream = client.chat.completions.create(model="gpt-4o-mini", stream=True, stream_options={"include_usage": True},
                                            messages=[{"role": "user", "content": "count to three"}])
    chunks = list(stream)
    first, *middle, finish, usage_chunk = chunks
    assert first.choices[0].delta.role == "assistant" and first.choices[0].delta.content == ""
    assert "".join(c.choices[0].delta.content for c in middle) == "Hello from gpt-4o-mini. You said: count to three"
    assert len(middle) == 8, "one chunk a word"
    assert finish.choices[0].finish_reason == "stop" and finish.choices[0].delta.content is None
    assert all(c.usage is None for c in chunks[:-1])
    assert usage_chunk.choices == [] and usage_chunk.usage.completion_tokens > 0
    assert usage_chunk.usage.total_tokens == usage_chunk.usage.prompt_tokens + usage_chunk.usage.completion_tokens
    assert len({c.id for c in chunks}) == 1 and chunks[0].id.startswith("chatcmpl-")
    assert all(c.object == "chat.completion.chunk" for c in chunks)


def test_chat_stream_wire_format(server):
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "yo"}]}
    r = server.http.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer k"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = r.text.split("\n\n")
    assert events[-1] == "" and events[-2] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-2]]
    assert all(e.startswith("data: {") for e in events[:-2])
    # Without include_usage the chunks carry no usage key at all, as OpenAI sends them.
    assert all("usage" not in c for c in chunks)
    assert all(set(c["choices"][0]) == {"index", "delta", "logprobs", "finish_reason"} for c in chunks)
    assert [c["choices"][0]["finish_reason"] for c in chunks].count("stop") == 1


def test_n_choices(client):
    res = client.chat.completions.create(model="gpt-4o-mini", n=2, messages=[{"role": "user", "content": "hi"}])
    assert [c.index for c in res.choices] == [0, 1]
    assert res.choices[0].message.content == res.choices[1].message.content
    one = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert res.usage.completion_tokens == 2 * one.usage.completion_tokens
    assert res.usage.prompt_tokens == one.usage.prompt_tokens
    stream = client.chat.completions.create(model="gpt-4o-mini", n=2, stream=True,
                                            messages=[{"role": "user", "content": "hi"}])
    texts = {0: "", 1: ""}
    finishes = {}
    for chunk in stream:
        for c in chunk.choices:
            texts[c.index] += c.delta.content or ""
            if c.finish_reason:
                finishes[c.index] = c.finish_reason
    assert texts == {0: one.choices[0].message.content, 1: one.choices[0].message.content}
    assert finishes == {0: "stop", 1: "stop"}


def test_tools_round_trip(client):
    messages = [{"role": "user", "content": "What is the weather in San Francisco?"}]
    res = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=WEATHER)
    choice = res.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.id.startswith("call_") and call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"location": "San Francisco"}
    messages += [choice.message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "18C and foggy"}]
    res = client.chat.completions.create(model="gpt-4o-mini", messages=messages, tools=WEATHER)
    assert res.choices[0].finish_reason == "stop"
    assert res.choices[0].message.content == "The tool returned: 18C and foggy"
    assert res.choices[0].message.tool_calls is None


def test_tool_choice_none_and_forced(client):
    msgs = [{"role": "user", "content": "What is the weather in Oslo?"}]
    res = client.chat.completions.create(model="gpt-4o-mini", messages=msgs, tools=WEATHER, tool_choice="none")
    assert res.choices[0].finish_reason == "stop" and res.choices[0].message.tool_calls is None
    res = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}], tools=WEATHER,
                                         tool_choice={"type": "function", "function": {"name": "get_weather"}})
    assert res.choices[0].message.tool_calls[0].function.name == "get_weather"


def test_tool_call_stream(client):
    stream = client.chat.completions.create(model="gpt-4o-mini", stream=True, tools=WEATHER, tool_choice="required",
                                            messages=[{"role": "user", "content": "Weather in New York please"}])
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    calls: dict[int, dict] = {}
    for chunk in chunks:
        for tc in chunk.choices[0].delta.tool_calls or []:
            entry = calls.setdefault(tc.index, {"id": None, "name": "", "arguments": ""})
            entry["id"] = tc.id or entry["id"]
            entry["name"] += (tc.function.name or "") if tc.function else ""
            entry["arguments"] += (tc.function.arguments or "") if tc.function else ""
    assert list(calls) == [0]
    assert calls[0]["id"].startswith("call_") and calls[0]["name"] == "get_weather"
    assert json.loads(calls[0]["arguments"]) == {"location": "New York"}
    assert sum(1 for c in chunks if c.choices[0].delta.tool_calls) > 2, "arguments arrive in pieces"
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_prompt_features(client):
    res = client.chat.completions.create(
        model="gpt-4o-mini", response_format={"type": "json_object"},
        messages=[{"role": "developer", "content": "json only"}, {"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}])
    text = res.choices[0].message.content
    assert text.endswith("(I see 1 image.)")
    assert json.loads(text.removesuffix(" (I see 1 image.)")) == {"model": "gpt-4o-mini", "answer": "look"}
    res = client.chat.completions.create(model="gpt-4o-mini", max_completion_tokens=3,
                                         messages=[{"role": "user", "content": "a b c d"}])
    assert res.choices[0].finish_reason == "length" and res.choices[0].message.content == "Hello from"
    assert res.usage.completion_tokens <= 3
    res = client.chat.completions.create(model="gpt-4o-mini", stop=["You"], messages=[{"role": "user", "content": "x"}])
    assert res.choices[0].message.content == "Hello from gpt-4o-mini. "


@pytest.mark.parametrize("model", ["gpt-4o-mini", "o3"])
def test_output_stops_at_max_tokens(client, model):
    """L3: the answer was cut by words and counted by characters, so max_tokens 5 reported 9 to 11 completion
    tokens; a real API never reports more than the cap (reasoning tokens count within it)."""
    ask = {"model": model, "max_completion_tokens": 5, "messages": [{"role": "user", "content": "Tell me about Peru"}]}
    res = client.chat.completions.create(**ask)
    assert res.choices[0].finish_reason == "length" and res.choices[0].message.content
    assert res.usage.completion_tokens <= 5, res.usage
    chunks = list(client.chat.completions.create(**ask, stream=True, stream_options={"include_usage": True}))
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["length"]
    assert chunks[-1].usage.completion_tokens <= 5, chunks[-1].usage


def test_reasoning_model_reports_reasoning_tokens(client):
    res = client.chat.completions.create(model="o3", messages=[{"role": "user", "content": "15*37?"}])
    details = res.usage.completion_tokens_details
    assert details.reasoning_tokens > 0
    assert res.usage.completion_tokens > details.reasoning_tokens


# -- validation and auth ------------------------------------------------------------

def test_auth_required(server):
    r = server.http.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": []})
    assert r.status_code == 401
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["code"] == "invalid_api_key" and err["param"] is None
    assert err["message"]
    r = server.http.get("/v1/models", headers={"Authorization": "Bearer"})
    assert r.status_code == 401
    bad = openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0,
                        default_headers={"Authorization": "Basic abc"})
    with pytest.raises(openai.AuthenticationError) as info:
        bad.models.list()
    assert info.value.code == "invalid_api_key"


@pytest.mark.parametrize("body, param", [
    ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    ({"model": "gpt-4o-mini"}, "messages"),
    ({"model": "gpt-4o-mini", "messages": []}, "messages"),
    ({"model": "gpt-4o-mini", "messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
    ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "n": 0}, "n"),
    ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "logit_bias": {"AI": 5}}, "logit_bias"),
])
def test_validation_errors(server, body, param):
    r = server.http.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer k"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error" and err["param"] == param and err["message"]


def test_invalid_json(server):
    r = server.http.post("/v1/chat/completions", content=b"{nope", headers={"Authorization": "Bearer k"})
    assert r.status_code == 400 and "parse the JSON body" in r.json()["error"]["message"]


def test_models(client):
    ids = [m.id for m in client.models.list()]
    assert "gpt-4o-mini" in ids and "text-embedding-3-small" in ids
    assert client.models.retrieve("gpt-4o").object == "model"
    with pytest.raises(openai.NotFoundError) as info:
        client.models.retrieve("no-such-model")
    assert info.value.code == "model_not_found"
    with pytest.raises(openai.NotFoundError) as info:  # OpenAI serves its own ids only
        client.chat.completions.create(model="my-custom", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "model_not_found"
    assert info.value.body["message"] == "The model `my-custom` does not exist or you do not have access to it."
    for retired in ("gpt-4.5-preview", "o1-preview"):
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model=retired, messages=[{"role": "user", "content": "x"}])
    client.chat.completions.create(model="gpt-4o-2024-08-06", messages=[{"role": "user", "content": "x"}])
    assert client.models.retrieve("gpt-4o-2024-08-06").id == "gpt-4o-2024-08-06"


def test_a_self_hosted_simulator_serves_any_model_name():
    """vLLM and the like serve the names their operators give: a simulator not named openai takes any."""
    sim = core.Simulator("vllm")
    assert sim_openai.serves("vllm", "meta-llama/Llama-3.1-8B-Instruct")
    assert not sim_openai.serves("openai", "meta-llama/Llama-3.1-8B-Instruct")
    assert sim.max_body == 32 * 1024 * 1024


# -- embeddings -----------------------------------------------------------------

def test_embeddings_float(client):
    res = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta", "alpha"],
                                   encoding_format="float")
    assert res.object == "list" and res.model == "text-embedding-3-small"
    assert [d.index for d in res.data] == [0, 1, 2]
    a, b, a2 = (d.embedding for d in res.data)
    assert len(a) == 1536 and a == a2 and a != b
    assert math.isclose(math.fsum(x * x for x in a), 1.0, rel_tol=1e-5)
    # counted as the API counts them (a tokenizer: "alpha" and "beta" are a token each)
    from extproc import tokens
    assert res.usage.prompt_tokens == res.usage.total_tokens == 2 * tokens.count("alpha") + tokens.count("beta") == 3
    short = client.embeddings.create(model="text-embedding-3-small", input="alpha", dimensions=8,
                                     encoding_format="float").data[0].embedding
    assert len(short) == 8
    # A shortened embedding is the renormalised prefix of the full one.
    scale = math.sqrt(math.fsum(x * x for x in a[:8]))
    assert all(math.isclose(s, x / scale, rel_tol=1e-4, abs_tol=1e-6) for s, x in zip(short, a[:8]))
    large = client.embeddings.create(model="text-embedding-3-large", input="alpha", encoding_format="float")
    assert len(large.data[0].embedding) == 3072


def test_embeddings_refuse_an_input_over_the_window_by_its_real_token_count(client):
    # Varied CJK text runs about 1.9 tokens a character (a character estimate reads 0.25): 6,000 characters
    # are about 11,400 tokens, over the 8,192 window as the API counts them; 3,000 are within it.
    def cjk(n: int) -> str:
        return "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(n))
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="text-embedding-3-small", input=["fine", cjk(6000)])
    body = err.value.body
    assert body["message"].startswith("This model's maximum context length is 8192 tokens, however you requested ")
    assert body["type"] == "invalid_request_error" and body["code"] is None
    assert len(client.embeddings.create(model="text-embedding-3-small", input=[cjk(3000)]).data) == 1


def test_embeddings_refuse_a_request_over_300k_tokens_in_all(client):
    chunk = "alpha beta gamma delta " * 1800        # about 7,200 tokens: each input within the window
    with pytest.raises(openai.BadRequestError) as err:
        client.embeddings.create(model="text-embedding-3-small", input=[chunk] * 43)
    assert err.value.body["code"] == "max_tokens_per_request"
    assert err.value.body["message"].startswith("Requested ") and "max 300000 tokens per request" in err.value.body["message"]


def test_embeddings_base64(client, server):
    floats = client.embeddings.create(model="text-embedding-3-small", input="alpha", encoding_format="float")
    encoded = client.embeddings.create(model="text-embedding-3-small", input="alpha", encoding_format="base64")
    raw = base64.b64decode(encoded.data[0].embedding)
    assert len(raw) == 4 * 1536
    assert list(struct.unpack("<1536f", raw)) == floats.data[0].embedding
    # The SDK asks for base64 by itself when no format is given, and decodes it.
    default = client.embeddings.create(model="text-embedding-3-small", input="alpha")
    assert server.requests()[-1]["body"]["encoding_format"] == "base64"
    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding, rel=1e-6)


def test_embeddings_validation(server):
    for body in ({"model": "text-embedding-3-small"}, {"model": "text-embedding-3-small", "input": ""}, {"model": "text-embedding-3-small", "input": "x", "dimensions": 0},
                 {"model": "text-embedding-3-small", "input": "x", "encoding_format": "int8"}, {"input": "x"}):
        r = server.http.post("/v1/embeddings", json=body, headers={"Authorization": "Bearer k"})
        assert r.status_code == 400, body
        assert r.json()["error"]["type"] == "invalid_request_error"


# -- Azure ---------------------------------------------------------------------------

def test_azure_chat_and_embeddings(server):
    azure = openai.AzureOpenAI(api_key="azkey", api_version="2024-10-21", azure_endpoint=server.url, max_retries=0)
    res = azure.chat.completions.create(model="prod-gpt4o", messages=[{"role": "user", "content": "hi"}])
    assert res.choices[0].message.content == "Hello from prod-gpt4o. You said: hi"
    seen = server.requests()[-1]
    assert seen["path"] == "/openai/deployments/prod-gpt4o/chat/completions"
    assert seen["query"] == {"api-version": "2024-10-21"}
    assert seen["headers"]["api-key"] == "azkey"
    emb = azure.embeddings.create(model="prod-emb", input="x", encoding_format="float")
    assert len(emb.data[0].embedding) == 1536
    assert server.requests()[-1]["path"] == "/openai/deployments/prod-emb/embeddings"
    # Azure takes the model from the path: a body without "model" is fine there.
    r = server.http.post("/openai/deployments/dep/chat/completions?api-version=2024-10-21",
                   json={"messages": [{"role": "user", "content": "x"}]}, headers={"api-key": "k"})
    assert r.status_code == 200 and r.json()["model"] == "dep"


def test_azure_requires_api_version_and_key(server):
    url = "/openai/deployments/dep/chat/completions"
    body = {"messages": [{"role": "user", "content": "x"}]}
    r = server.http.post(url, json=body, headers={"api-key": "k"})
    assert r.status_code == 404
    assert r.json() == {"error": {"code": "404", "message": "Resource not found"}}
    r = server.http.post(url, params={"api-version": "2024-10-21"}, json=body)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "401" and "Access denied" in r.json()["error"]["message"]


# -- faults ---------------------------------------------------------------------------

def test_fault_429_with_retry_after(client, server):
    server.faults(status=429, retry_after=2, count=1)
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 429
    assert info.value.response.headers["retry-after"] == "2"
    assert info.value.response.headers["retry-after-ms"] == "2000"
    assert info.value.code == "rate_limit_exceeded"
    assert info.value.body["type"] == "requests"
    # count=1: the next request is answered.
    assert client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]).choices


def test_fault_429_on_azure_and_sdk_retry_honours_it(server):
    server.faults(status=429, retry_after=0.2, count=1)
    azure = openai.AzureOpenAI(api_key="k", api_version="2024-10-21", azure_endpoint=server.url, max_retries=1)
    started = time.monotonic()
    res = azure.chat.completions.create(model="dep", messages=[{"role": "user", "content": "x"}])
    assert res.choices[0].message.content.startswith("Hello from dep")
    assert time.monotonic() - started >= 0.2
    assert len(server.requests()) == 2


@pytest.mark.parametrize("status, exc", [(500, openai.InternalServerError), (503, openai.InternalServerError)])
def test_fault_server_errors(client, server, status, exc):
    server.faults(status=status)
    with pytest.raises(exc) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == status
    assert info.value.body["type"] == "server_error"
    with pytest.raises(exc):
        client.embeddings.create(model="text-embedding-3-small", input="x")


def test_fault_reset(client, server):
    server.faults(reset=True, count=1)
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}])
    assert client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "x"}]).choices


def test_fault_disconnect_mid_stream(server):
    server.faults(disconnect_after=3)
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "one two three four five"}]}
    received = b""
    with pytest.raises(httpx.HTTPError):
        with server.http.stream("POST", "/v1/chat/completions", json=body,
                          headers={"Authorization": "Bearer k"}) as r:
            assert r.status_code == 200
            for part in r.iter_bytes():
                received += part
    events = [e for e in received.split(b"\n\n") if e]
    assert len(events) == 3
    assert b"[DONE]" not in received


def test_fault_disconnect_seen_by_sdk(client, server):
    server.faults(disconnect_after=2)
    got = []
    with pytest.raises((openai.APIError, httpx.HTTPError)):
        for chunk in client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                                    messages=[{"role": "user", "content": "a b c d e"}]):
            got.append(chunk)
    assert len(got) == 2


def test_fault_ttft_and_latency(server):
    server.faults(latency_ms=100, ttft_ms=150)
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    started = time.monotonic()
    stamps = []
    with server.http.stream("POST", "/v1/chat/completions", json=body,
                      headers={"Authorization": "Bearer k"}) as r:
        for line in r.iter_lines():
            if line.startswith("data: "):
                stamps.append((time.monotonic() - started, line))
    first_at = stamps[0][0]
    content_at = next(t for t, line in stamps if '"content":"Hello' in line)
    assert first_at >= 0.1
    assert content_at - first_at >= 0.14


# -- llm-comply --------------------------------------------------------------------------

def test_llm_comply_openai_chat(server):
    report, _proc = run_llm_comply("openai-chat", f"{server.url}/v1", "gpt-4o-mini", "-k", "test")
    results = report["results"]
    assert len(results) >= 9
    ran = [r for r in results if r["status"] != "skipped"]
    assert len(ran) >= 8
    assert [r for r in ran if r["status"] != "passed"] == []
    assert [r for r in ran if r.get("warnings")] == []
    assert report["summary"]["failed"] == 0


# -- strictness: what the real API refuses ----------------------------------------------------------

CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}

REFUSED = {
    # each: (body changes, status, param, code, message start)
    "tool_without_call": ({"messages": [{"role": "user", "content": "x"},
                                        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]},
                          400, "messages.[1].role", None,
                          "Invalid parameter: messages with role 'tool' must be a response to a preceeding message "
                          "with 'tool_calls'."),
    "unanswered_call": ({"messages": [{"role": "user", "content": "x"},
                                      {"role": "assistant", "content": None, "tool_calls": [CALL]},
                                      {"role": "user", "content": "and?"}]},
                        400, "messages.[1].role", None,
                        "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                        "'tool_call_id'. The following tool_call_ids did not have response messages: call_1"),
    "temperature_above_2": ({"temperature": 2.5}, 400, "temperature", "decimal_above_max_value",
                            "Invalid 'temperature': decimal above maximum value. Expected a value <= 2"),
    "top_p_below_0": ({"top_p": -0.1}, 400, "top_p", "decimal_below_min_value", "Invalid 'top_p'"),
    "max_tokens_0": ({"max_tokens": 0}, 400, "max_tokens", "integer_below_min_value",
                     "Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got 0 instead."),
    "five_stops": ({"stop": list("abcde")}, 400, "stop", "array_above_max_length", "Invalid 'stop': array too long."),
    "n_2_to_40": ({"n": 2 ** 40}, 400, "n", "invalid_value", "Invalid 'n'"),
    "empty_content": ({"messages": [{"role": "user", "content": []}]}, 400, "messages[0].content", "empty_array",
                      "Invalid 'messages[0].content': empty array. Expected an array with minimum length 1"),
    "prompt_cache_key_integer": ({"prompt_cache_key": 123}, 400, "prompt_cache_key", "invalid_type",
                                 "Invalid type for 'prompt_cache_key': expected a string, but got an integer instead."),
    "prompt_cache_key_65": ({"prompt_cache_key": "k" * 65}, 400, "prompt_cache_key", "string_above_max_length",
                            "Invalid 'prompt_cache_key': string too long. Expected a string with maximum length 64, "
                            "but got a string with length 65 instead."),
    "user_integer": ({"user": 5}, 400, "user", "invalid_type",
                     "Invalid type for 'user': expected a string, but got an integer instead."),
    "safety_identifier_array": ({"safety_identifier": ["u"]}, 400, "safety_identifier", "invalid_type",
                                "Invalid type for 'safety_identifier': expected a string, but got an array instead."),
    "unknown_field": ({"top_k": 40}, 400, None, None, "Unrecognized request argument supplied: top_k"),
    "reasoning_effort_on_4o_mini": ({"reasoning_effort": "low"}, 400, None, None,
                                    "Unrecognized request argument supplied: reasoning_effort"),
    "web_search_on_4o_mini": ({"web_search_options": {}}, 400, "web_search_options", None,
                              "Web search options not supported with this model."),
    "max_tokens_1e9": ({"max_tokens": 10 ** 9}, 400, "max_tokens", None,
                       "max_tokens is too large: 1000000000. This model supports at most 16384 completion tokens, "
                       "whereas you provided 1000000000."),
    # the window holds tokens as the API counts them (o200k), not characters / 4
    "prompt_over_window": ({"messages": [{"role": "user", "content": "word " * 130000}]}, 400, "messages",
                           "context_length_exceeded", "This model's maximum context length is 128000 tokens. "
                           "However, your messages resulted in 130001 tokens."),
    "prompt_and_max_tokens_over_window": ({"messages": [{"role": "user", "content": "word " * 115000}],
                                           "max_tokens": 16000}, 400, "messages", "context_length_exceeded",
                                          "This model's maximum context length is 128000 tokens. However, you "
                                          "requested 131001 tokens (115001 in the messages, 16000 in the "
                                          "completion)."),
    # 117,000 tokens by the tokenizer, 40,500 by characters / 4: a Chinese prompt the API refuses with max_tokens
    "chinese_prompt_over_window": ({"messages": [{"role": "user", "content": "请总结以下客户工单并提出礼貌的回复。" * 9000}],
                                    "max_tokens": 16000}, 400, "messages", "context_length_exceeded",
                                   "This model's maximum context length is 128000 tokens. However, you requested "
                                   "133000 tokens (117000 in the messages, 16000 in the completion)."),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refuses_what_the_real_api_refuses(server, case):
    changes, status, param, code, message = REFUSED[case]
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], **changes}
    r = server.http.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer k"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert (err["param"], err["code"], err["type"]) == (param, code, "invalid_request_error")
    assert err["message"].startswith(message), err["message"]


def test_a_body_over_32_mb_is_refused_without_taking_the_simulator_down(server):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * (33 * 1024 * 1024)}]}
    r = server.http.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer k"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"
    ok = server.http.post("/v1/chat/completions", headers={"Authorization": "Bearer k"},
                          json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    assert ok.status_code == 200


def test_embedding_requests_are_bounded_as_the_api_bounds_them(server):
    """Size limits that also keep one request from making the simulator hold gigabytes of floats."""
    headers = {"Authorization": "Bearer k"}
    r = server.http.post("/v1/embeddings", headers=headers,
                         json={"model": "text-embedding-3-small", "input": "x", "dimensions": 10 ** 9})
    assert r.status_code == 400 and r.json()["error"]["code"] == "integer_above_max_value"
    r = server.http.post("/v1/embeddings", headers=headers,
                         json={"model": "text-embedding-3-small", "input": ["x"] * 2049})
    assert r.status_code == 400 and r.json()["error"]["code"] == "array_above_max_length"


def test_what_openai_refuses_for_one_model_it_takes_for_another(server):
    def post(**changes):
        body = {"model": "o3", "messages": [{"role": "user", "content": "x"}], **changes}
        return server.http.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer k"})
    assert post(reasoning_effort="low").status_code == 200
    assert post(max_completion_tokens=100000).status_code == 200
    assert post(max_completion_tokens=100001).status_code == 400


def test_a_self_hosted_simulator_refuses_a_prompt_over_max_model_len_as_vllm_does():
    from .simulator_server import SimulatorServer
    vllm = SimulatorServer("vllm", sim_openai)
    try:
        # counted by a tokenizer (o200k here; vLLM uses the model's own, which reads "word " alike)
        body = {"model": "meta-llama/Llama-3.1-8B-Instruct", "messages": [{"role": "user", "content": "word " * 131000}],
                "max_tokens": 1000, "top_k": 40}   # vLLM takes its own sampling fields
        r = vllm.http.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer k"})
        assert r.status_code == 400
        assert r.json() == {"object": "error", "message": "This model's maximum context length is 131072 tokens. "
                            "However, you requested 132001 tokens (131001 in the messages, 1000 in the completion). "
                            "Please reduce the length of the messages or completion.", "type": "BadRequestError",
                            "param": None, "code": 400}
        body["max_tokens"] = 100
        body["messages"][0]["content"] = "word " * 1000
        assert vllm.http.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer k"}).status_code == 200
    finally:
        vllm.close()


def test_azure_refuses_fields_its_api_version_does_not_define(server):
    def post(version, **extra):
        body = {"messages": [{"role": "user", "content": "x"}], **extra}
        return server.http.post(f"/openai/deployments/dep/chat/completions?api-version={version}", json=body,
                                headers={"api-key": "k"})
    r = post("2024-10-21", store=True)
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith("Unrecognized request argument supplied: store.")
    assert post("2024-10-21", stream=True, stream_options={"include_usage": True}, user="u").status_code == 200
    assert post("2025-04-01-preview", store=True).status_code == 200    # a version whose schema is not known here


@pytest.mark.parametrize("refusal, path, code, param", [
    ("context_length", "/v1/chat/completions", "context_length_exceeded", "messages"),
    ("context_length", "/openai/deployments/dep/chat/completions?api-version=2024-10-21", "context_length_exceeded",
     "messages"),
    ("content_filter", "/v1/chat/completions", "invalid_prompt", None),
    ("content_filter", "/openai/deployments/dep/chat/completions?api-version=2024-10-21", "content_filter", "prompt"),
])
def test_fault_refusal_in_the_apis_own_words(server, refusal, path, code, param):
    """OpenAI's context_length_exceeded and invalid_prompt, Azure's content filter (its innererror)."""
    server.faults(refusal=refusal, count=1)
    r = server.http.post(path, json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]},
                         headers={"authorization": "Bearer k", "api-key": "k"})
    assert r.status_code == 400
    err = r.json()["error"]
    assert (err["code"], err["param"]) == (code, param)
    if code == "content_filter":
        assert err["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    if code == "context_length_exceeded":
        assert err["message"].startswith("This model's maximum context length is 128000 tokens")
    assert server.http.put("/_sim/faults", json={"refusal": "nonsense"}).status_code == 400


def test_a_self_hosted_simulator_speaks_vllms_refusal_and_stream_error():
    vllm = SimulatorServer("vllm", sim_openai)
    try:
        vllm.faults(refusal="context_length", count=1)
        body = {"model": "llama", "messages": [{"role": "user", "content": "x"}]}
        r = vllm.http.post("/v1/chat/completions", json=body, headers={"authorization": "Bearer k"})
        assert r.status_code == 400
        assert r.json()["object"] == "error" and r.json()["code"] == 400    # vLLM's flat body
        assert r.json()["message"].startswith("This model's maximum context length is 131072 tokens")
        vllm.faults(error_event_after=2, count=1)
        r = vllm.http.post("/v1/chat/completions", json={**body, "stream": True}, headers={"authorization": "Bearer k"})
        last = [line for line in r.text.split("\n") if line.startswith("data: ")][-1]
        assert json.loads(last[6:]) == {"error": {"message": "The engine loop has stopped.",
                                                  "type": "InternalServerError", "param": None, "code": 500}}
    finally:
        vllm.close()


def test_a_client_that_leaves_mid_stream_is_no_error_to_log(server, caplog):
    """The gateway cuts attempts (deadlines, lost hedges): a provider's log shows no traceback for it
    (aiohttp's "Cannot write to closing transport" made every cut attempt an ERROR with a traceback)."""
    server.faults(chunk_interval_ms=50)
    body = json.dumps({"model": "gpt-4o-mini", "stream": True,
                       "messages": [{"role": "user", "content": "one two three four five six seven eight"}]}).encode()
    with caplog.at_level(logging.DEBUG, logger="aiohttp.server"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: sim\r\nAuthorization: Bearer sk-test\r\n"
                         b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        deadline = time.monotonic() + 10   # the simulator finds out at its next write (50 ms later)
        while time.monotonic() < deadline and not server.requests():
            time.sleep(0.05)
        time.sleep(1.0)   # several chunk intervals: the writes after the close have happened
    assert server.requests(), "the request reached the simulator"
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], [r.getMessage() for r in caplog.records]


# -- prompt caching -------------------------------------------------------------

# A system prompt of 1,500 simulator tokens (4 characters each): over OpenAI's 1,024-token minimum.
LONG_SYSTEM = "".join(f"Rule {i:04d}: answer from the handbook only. " for i in range(150))[:6000]


def test_a_repeated_long_prefix_is_read_from_the_cache_in_128_token_steps(client, server):
    """OpenAI "Prompt caching": automatic from 1,024 prompt tokens, an exact repeated prefix, counted in
    increments of 128 tokens (usage.prompt_tokens_details.cached_tokens); the first request reads nothing."""
    assert core.count_tokens(LONG_SYSTEM) == 1500
    turn1 = [{"role": "system", "content": LONG_SYSTEM}, {"role": "user", "content": "What is rule 7?"}]
    first = client.chat.completions.create(model="gpt-4o-mini", messages=turn1)
    assert first.usage.prompt_tokens == 1500 + 4 and first.usage.prompt_tokens_details.cached_tokens == 0
    again = client.chat.completions.create(model="gpt-4o-mini", messages=turn1)
    assert again.usage.prompt_tokens_details.cached_tokens == 1408      # 1,024 + 3 x 128 <= 1,504
    turn2 = turn1 + [{"role": "assistant", "content": first.choices[0].message.content},
                     {"role": "user", "content": "And rule 8? " * 100}]
    second = client.chat.completions.create(model="gpt-4o-mini", messages=turn2)
    assert second.usage.prompt_tokens > 1800
    assert second.usage.prompt_tokens_details.cached_tokens == 1408     # turn 1's whole prompt, to a 128 step
    third = client.chat.completions.create(model="gpt-4o-mini", messages=turn2)
    cached = third.usage.prompt_tokens_details.cached_tokens
    assert cached % 128 == 0 and third.usage.prompt_tokens - 128 < cached <= third.usage.prompt_tokens
    # A changed start shares nothing; nor does another model, another key or another prompt_cache_key.
    changed = [{"role": "system", "content": "X" + LONG_SYSTEM[1:]}, turn1[1]]
    assert client.chat.completions.create(model="gpt-4o-mini", messages=changed) \
        .usage.prompt_tokens_details.cached_tokens == 0
    assert client.chat.completions.create(model="gpt-4o", messages=turn1) \
        .usage.prompt_tokens_details.cached_tokens == 0
    with openai.OpenAI(base_url=f"{server.url}/v1", api_key="sk-other-org", max_retries=0) as other:
        assert other.chat.completions.create(model="gpt-4o-mini", messages=turn1) \
            .usage.prompt_tokens_details.cached_tokens == 0
    keyed = client.chat.completions.create(model="gpt-4o-mini", messages=turn1, prompt_cache_key="tenant-a")
    assert keyed.usage.prompt_tokens_details.cached_tokens == 0
    assert client.chat.completions.create(model="gpt-4o-mini", messages=turn1, prompt_cache_key="tenant-a") \
        .usage.prompt_tokens_details.cached_tokens == 1408


def test_short_prompts_and_self_hosted_servers_read_no_cache(client):
    short = [{"role": "system", "content": LONG_SYSTEM[:3000]}, {"role": "user", "content": "hi"}]   # 751 tokens
    for _ in range(2):
        assert client.chat.completions.create(model="gpt-4o-mini", messages=short) \
            .usage.prompt_tokens_details.cached_tokens == 0
    vllm = SimulatorServer("vllm", sim_openai)
    try:
        with openai.OpenAI(base_url=f"{vllm.url}/v1", api_key="sk-test", max_retries=0) as c:
            long = [{"role": "system", "content": LONG_SYSTEM}, {"role": "user", "content": "hi"}]
            for _ in range(2):
                assert c.chat.completions.create(model="llama", messages=long) \
                    .usage.prompt_tokens_details.cached_tokens == 0
    finally:
        vllm.close()


def test_the_cache_expires_after_five_idle_minutes_and_a_stream_reports_its_reads(client, server):
    now = [1000.0]
    server.sim.prompt_cache.clock = lambda: now[0]
    try:
        messages = [{"role": "system", "content": LONG_SYSTEM}, {"role": "user", "content": "hi"}]
        client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        now[0] += 299
        stream = client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True,
                                                stream_options={"include_usage": True})
        usage = [c.usage for c in stream if c.usage is not None]
        assert len(usage) == 1 and usage[0].prompt_tokens_details.cached_tokens == 1408   # the last chunk
        now[0] += 299         # 598 s after the write, 299 s after the use that refreshed it
        assert client.chat.completions.create(model="gpt-4o-mini", messages=messages) \
            .usage.prompt_tokens_details.cached_tokens == 1408
        now[0] += 301
        assert client.chat.completions.create(model="gpt-4o-mini", messages=messages) \
            .usage.prompt_tokens_details.cached_tokens == 0
    finally:
        server.sim.prompt_cache.clock = time.monotonic


def test_the_prompt_cache_is_bounded():
    cache = core.PromptCache(max_entries=3, clock=lambda: 0.0)
    for i in range(5):
        cache.store("ns", bytes([i]), 60)
    assert len(cache) == 3 and not cache.hit("ns", bytes([0])) and cache.hit("ns", bytes([4]))
