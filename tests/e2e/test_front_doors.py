"""The Anthropic Messages and OpenAI Responses front doors, through the real Envoy and extproc, driven by
the official ``anthropic`` and ``openai`` SDKs, for every provider API behind them (each client-API x
provider-API pair; the OpenAI chat x provider pairs are test_chat.py's)."""

from __future__ import annotations

import gzip
import json
import time
import zlib

import anthropic
import httpx
import openai
import pytest

from .conftest import AUTH, CLIENT_KEY, MODELS, NO_EJECTION, fault, ledger_row, stack_with, upstream_requests

# Where each provider API's simulator must be asked: a front door's request arrives in the provider's own API.
UPSTREAM_PATH = {"openai": "/v1/chat/completions", "azure_openai": "/openai/deployments/gpt-4o-mini/chat/completions",
                 "anthropic": "/v1/messages", "gemini": "/v1beta/models/gemini-3.5-flash-lite:generateContent",
                 "vllm": "/v1/chat/completions"}
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
PROVIDERS = list(MODELS)


@pytest.fixture
def claude(gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.base_url.removesuffix("/v1"), api_key=CLIENT_KEY, max_retries=0,
                               timeout=20)


def _served_by(stack, provider: str) -> dict:
    records = upstream_requests(stack, provider)
    assert records, f"{provider} saw no request"
    return records[-1]


# ---- Anthropic Messages ---------------------------------------------------------------------------

@pytest.mark.parametrize("provider", PROVIDERS)
def test_messages_create_is_served_by_each_provider_api(gateway, claude, provider):
    raw = claude.messages.with_raw_response.create(
        model=MODELS[provider], max_tokens=100, system="Be brief.", stop_sequences=["THE END"],
        messages=[{"role": "user", "content": "What is the capital of France?"}])
    message = raw.parse()
    assert message.type == "message" and message.role == "assistant"
    assert message.content[0].type == "text"
    assert message.content[0].text.endswith("You said: What is the capital of France?")
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    assert raw.headers["x-llm-model"] == MODELS[provider]        # provenance on every front door
    record = _served_by(gateway, provider)
    assert record["path"].split("?")[0] == UPSTREAM_PATH[provider].replace(":generateContent", ":generateContent")
    headers = {k.lower(): v for k, v in record["headers"].items()}
    assert CLIENT_KEY not in json.dumps(headers)                    # the gateway key never reaches a provider


@pytest.mark.parametrize("provider", PROVIDERS)
def test_messages_stream_follows_anthropics_event_sequence(gateway, claude, provider):
    with claude.messages.stream(model=MODELS[provider], max_tokens=100,
                                messages=[{"role": "user", "content": "Count to three."}]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start"
    assert kinds[-1] == "message_stop" and "message_delta" in kinds
    assert "content_block_start" in kinds and "content_block_stop" in kinds
    assert final.content[0].text.endswith("You said: Count to three.")
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0 and final.usage.input_tokens > 0


@pytest.mark.parametrize("provider", PROVIDERS)
def test_messages_tool_round_trip(gateway, claude, provider):
    tools = [{"name": "get_weather", "description": "Weather in a city", "input_schema": WEATHER_SCHEMA,
              "cache_control": {"type": "ephemeral"}}]
    question = {"role": "user", "content": [{"type": "text", "text": "What is the weather in Paris?",
                                             "cache_control": {"type": "ephemeral"}}]}
    first = claude.messages.create(model=MODELS[provider], max_tokens=200, tools=tools, messages=[question],
                                   extra_headers={"anthropic-beta": "prompt-caching-2024-07-31"})
    assert first.stop_reason == "tool_use"
    call = next(b for b in first.content if b.type == "tool_use")
    assert call.name == "get_weather" and isinstance(call.input.get("city"), str)
    second = claude.messages.create(model=MODELS[provider], max_tokens=200, tools=tools, messages=[
        question, {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "sunny, 21 C"}]}])
    assert second.stop_reason == "end_turn"
    assert "sunny, 21 C" in second.content[0].text


@pytest.mark.parametrize("provider", ["openai", "gemini", "anthropic"])
def test_messages_stream_tool_use_arrives_as_input_json_deltas(gateway, claude, provider):
    with claude.messages.stream(model=MODELS[provider], max_tokens=200, messages=[
            {"role": "user", "content": "What is the weather in Paris?"}],
            tools=[{"name": "get_weather", "input_schema": WEATHER_SCHEMA}]) as stream:
        final = stream.get_final_message()
    call = next(b for b in final.content if b.type == "tool_use")
    assert call.name == "get_weather" and isinstance(call.input["city"], str)
    assert final.stop_reason == "tool_use"


def test_messages_image_and_document_blocks_reach_a_provider_of_another_api(gateway, claude):
    pixel = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
    message = claude.messages.create(model=MODELS["openai"], max_tokens=100, messages=[{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": pixel}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "A memo."}},
        {"type": "text", "text": "Describe these."}]}])
    assert message.content[0].text.endswith("You said: A memo. Describe these. (I see 1 image.)")
    sent = _served_by(gateway, "openai")["body"]
    parts = sent["messages"][0]["content"]
    assert parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert parts[1] == {"type": "text", "text": "A memo."}


def test_claude_code_extras_never_fail_elsewhere(gateway, claude):
    """Claude Code's ?beta=true, anthropic-beta, cache_control and extended thinking: dropped for OpenAI."""
    response = httpx.post(f"{gateway.base_url}/messages?beta=true", headers={
        "x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01", "anthropic-beta": "interleaved-thinking-2025-05-14"},
        json={"model": MODELS["openai"], "max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 1024},
              "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
              "metadata": {"user_id": "u-1"},
              "messages": [{"role": "user", "content": "Hi"}]}, timeout=20)
    assert response.status_code == 200, response.text
    assert response.json()["type"] == "message"
    sent = _served_by(gateway, "openai")["body"]
    assert "thinking" not in sent and sent["messages"][0] == {"role": "system", "content": "Be brief."}


def test_messages_errors_come_in_anthropics_shape(gateway, claude):
    with pytest.raises(anthropic.BadRequestError) as bad:
        claude.messages.create(model=MODELS["openai"], max_tokens=0, messages=[{"role": "user", "content": "Hi"}])
    assert bad.value.body["type"] == "error" and bad.value.body["error"]["type"] == "invalid_request_error"
    with pytest.raises(anthropic.NotFoundError) as missing:
        claude.messages.create(model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    assert missing.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.AuthenticationError) as unauth:
        anthropic.Anthropic(base_url=gateway.base_url.removesuffix("/v1"), api_key="sk-wrong", max_retries=0
                            ).messages.create(model=MODELS["openai"], max_tokens=10,
                                              messages=[{"role": "user", "content": "Hi"}])
    assert unauth.value.body["error"]["type"] == "authentication_error"


def test_count_tokens_is_answered_by_the_gateway(gateway, claude):
    short = claude.messages.count_tokens(model=MODELS["anthropic"], messages=[{"role": "user", "content": "Hi"}])
    long = claude.messages.count_tokens(model=MODELS["anthropic"],
                                        messages=[{"role": "user", "content": "Hi there, " * 50}])
    assert 0 < short.input_tokens < long.input_tokens
    assert upstream_requests(gateway, "anthropic") == []   # no provider was asked
    # An unknown model is the same 404 as on /v1/messages (it counted tokens for it, tryout).
    with pytest.raises(anthropic.NotFoundError) as info:
        claude.messages.count_tokens(model="no-such-model", messages=[{"role": "user", "content": "Hi"}])
    assert info.value.body["error"]["type"] == "not_found_error"


# ---- OpenAI Responses -----------------------------------------------------------------------------

@pytest.mark.parametrize("provider", PROVIDERS)
def test_responses_create_is_served_by_each_provider_api(gateway, client, provider):
    raw = client.responses.with_raw_response.create(model=MODELS[provider], instructions="Be brief.",
                                                    input="What is the capital of France?", max_output_tokens=100)
    response = raw.parse()
    assert response.object == "response" and response.status == "completed"
    assert response.output_text.endswith("You said: What is the capital of France?")
    assert response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    assert response.store is False                     # accepted, nothing kept (README)
    assert raw.headers["x-llm-model"] == MODELS[provider]
    assert _served_by(gateway, provider)["path"].split("?")[0] == UPSTREAM_PATH[provider]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_responses_stream_has_the_typed_event_sequence(gateway, client, provider):
    events = list(client.responses.create(model=MODELS[provider], input="Count to three.", stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text.endswith("You said: Count to three.")
    assert events[-1].response.usage.output_tokens > 0
    assert [e.sequence_number for e in events] == list(range(len(events)))


@pytest.mark.parametrize("provider", PROVIDERS)
def test_responses_function_tool_round_trip(gateway, client, provider):
    tools = [{"type": "function", "name": "get_weather", "description": "Weather in a city",
              "parameters": WEATHER_SCHEMA, "strict": False}]
    first = client.responses.create(model=MODELS[provider], tools=tools, input="What is the weather in Paris?")
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather" and isinstance(json.loads(call.arguments)["city"], str)
    second = client.responses.create(model=MODELS[provider], tools=tools, input=[
        {"role": "user", "content": "What is the weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}])
    assert "sunny, 21 C" in second.output_text


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_responses_stream_function_call_arguments(gateway, client, provider):
    events = list(client.responses.create(model=MODELS[provider], input="What is the weather in Paris?", stream=True,
                                          tools=[{"type": "function", "name": "get_weather",
                                                  "parameters": WEATHER_SCHEMA, "strict": False}]))
    arguments = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert isinstance(json.loads(arguments)["city"], str)
    done = events[-1].response.output
    assert done[-1].type == "function_call" and done[-1].arguments == arguments


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_responses_json_schema_format(gateway, client, provider):
    schema = {"type": "object", "properties": {"capital": {"type": "string"}}, "required": ["capital"],
              "additionalProperties": False}
    response = client.responses.create(model=MODELS[provider], input="The capital of France?",
                                       text={"format": {"type": "json_schema", "name": "answer", "schema": schema,
                                                        "strict": True}})
    assert isinstance(json.loads(response.output_text)["capital"], str)


def test_previous_response_id_is_a_400_and_nothing_is_kept(gateway, client):
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model=MODELS["openai"], input="Hi", previous_response_id="resp_unknown")
    assert bad.value.body["param"] == "previous_response_id"
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.retrieve("resp_unknown")
    assert "stores no responses" in missing.value.body["message"]


def test_responses_errors_name_the_responses_fields(gateway, client, claude):
    """JSON mode without the word: the Responses API's own 400 (param input, naming text.format), where the
    shared chat validator once answered about 'messages' and 'response_format'; on /v1/messages a chat-only
    fault names Anthropic's field, in Anthropic's shape. Nothing reaches a provider."""
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model=MODELS["openai"], input="three colors", text={"format": {"type": "json_object"}})
    assert bad.value.body["param"] == "input" and "'text.format'" in bad.value.body["message"]
    assert "response_format" not in bad.value.body["message"] and bad.value.body["code"]
    with pytest.raises(openai.BadRequestError) as bad_tool:
        client.responses.create(model=MODELS["openai"], input="Hi", tools=[
            {"type": "function", "name": "weather.get", "parameters": WEATHER_SCHEMA, "strict": False}])
    assert bad_tool.value.body["param"] == "tools[0].name" and "function" not in bad_tool.value.body["message"]
    with pytest.raises(anthropic.BadRequestError) as bad_messages:
        claude.messages.create(model=MODELS["openai"], max_tokens=10, messages=[{"role": "user", "content": "Hi"}],
                               tools=[{"name": "weather.get", "input_schema": WEATHER_SCHEMA}])
    assert bad_messages.value.body["type"] == "error"
    assert "'tools[0].name'" in bad_messages.value.body["error"]["message"]
    assert upstream_requests(gateway, "openai") == []


def test_messages_pass_through_to_anthropic_keeps_claude_codes_extras(gateway, claude):
    """A provider that speaks Messages gets the request as it came (thinking, cache_control), with the
    gateway's own anthropic-version and, as the shipped config lists no forward_headers, no anthropic-beta."""
    body = {"model": MODELS["anthropic"], "max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 1024},
            "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "What is 2 + 2?"}]}
    response = httpx.post(f"{gateway.base_url}/messages?beta=true", json=body, timeout=20, headers={
        "x-api-key": CLIENT_KEY, "anthropic-version": "1999-01-01", "anthropic-beta": "interleaved-thinking-2025-05-14"})
    assert response.status_code == 200, response.text
    assert [b["type"] for b in response.json()["content"]][0] == "thinking"   # Anthropic's own answer, untouched
    record = _served_by(gateway, "anthropic")
    headers = {k.lower(): v for k, v in record["headers"].items()}
    assert headers["anthropic-version"] == "2023-06-01" and "anthropic-beta" not in headers, headers
    assert record["body"] == {**body, "model": "claude-haiku-4-5"}
    assert record["query"] == {"beta": "true"}       # Claude Code's ?beta=true reaches Anthropic (it was dropped)
    assert response.headers["x-llm-provider"] == "anthropic"


def test_messages_pass_through_stream_is_anthropics_own(gateway, claude):
    with claude.messages.stream(model=MODELS["anthropic"], max_tokens=100,
                                messages=[{"role": "user", "content": "Count to three."}]) as stream:
        kinds = [event.type for event in stream]
        final = stream.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert final.content[0].text.endswith("You said: Count to three.")
    assert final.usage.output_tokens > 0
    assert _served_by(gateway, "anthropic")["body"]["stream"] is True


def test_envoys_own_replies_on_messages_come_in_anthropics_shape(gateway, claude):
    """A body over Envoy's buffer is Envoy's 413 (the processor never sees it): Anthropic's shape on
    /v1/messages, OpenAI's on /v1/chat/completions."""
    def chunks(prefix: bytes):
        yield prefix
        for _ in range(100):
            yield b"x" * 100_000
        yield b'"}]}'
    big = b'{"model": "gpt-4o-mini", "max_tokens": 10, "messages": [{"role": "user", "content": "'
    response = httpx.post(gateway.base_url + "/messages", content=chunks(big), timeout=20,
                          headers={"content-type": "application/json", "x-api-key": CLIENT_KEY})
    assert response.status_code == 413
    assert response.json() == {"type": "error", "error": {"type": "request_too_large", "message": (
        "The request body is larger than the gateway's limit of 4194304 bytes.")}}
    response = httpx.post(gateway.base_url + "/chat/completions", content=chunks(big), timeout=20,
                          headers={"content-type": "application/json", **AUTH})
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"


# Every refusal before the body is understood (headers, encoding, JSON), on each front door: raw bytes,
# since the SDKs only send well-formed JSON. (what, path under the door, body, headers, status, Anthropic type)
_GOOD = {"/messages": {"model": "gpt-4o-mini", "max_tokens": 10, "messages": [{"role": "user", "content": "Hi"}]},
         "/responses": {"model": "gpt-4o-mini", "input": "Hi"}}
PRE_PARSE = [
    ("not JSON", "", lambda good: b'{"model": "gpt-4o-mini", ', {}, 400, "invalid_request_error"),
    ("a UTF-8 BOM", "", lambda good: b"\xef\xbb\xbf" + good, {}, 400, "invalid_request_error"),
    ("empty", "", lambda good: b"", {}, 400, "invalid_request_error"),
    ("not an object", "", lambda good: b"[1, 2]", {}, 400, "invalid_request_error"),
    ("text/plain", "", lambda good: good, {"content-type": "text/plain"}, 415, "invalid_request_error"),
    ("deflate", "", lambda good: zlib.compress(good), {"content-encoding": "deflate"}, 415, "invalid_request_error"),
    ("corrupt gzip", "", lambda good: b"\x1f\x8b not gzip", {"content-encoding": "gzip"}, 400,
     "invalid_request_error"),
    ("a gzip bomb", "", lambda good: gzip.compress(b'{"a": "' + b"x" * 5_000_000 + b'"}'),
     {"content-encoding": "gzip"}, 413, "request_too_large"),
    ("an unknown path", "/nope", lambda good: good, {}, 404, "not_found_error"),
    ("no key", "", lambda good: good, {"x-api-key": None}, 401, "authentication_error"),
]


@pytest.mark.parametrize("door", ["/messages", "/responses"])
@pytest.mark.parametrize("what, under, body, extra, status, kind", PRE_PARSE, ids=[case[0] for case in PRE_PARSE])
def test_refusals_before_the_body_is_understood_speak_the_doors_api(gateway, door, what, under, body, extra,
                                                                    status, kind):
    """Messages answers in Anthropic's shape, type and words (its own for a body that is not JSON: "The
    request body is not valid JSON: ...", never OpenAI's hint); Responses in OpenAI's envelope."""
    headers = {"content-type": "application/json", "x-api-key": CLIENT_KEY, **extra}
    headers = {k: v for k, v in headers.items() if v is not None}
    response = httpx.post(gateway.base_url + door + under, content=body(json.dumps(_GOOD[door]).encode()),
                          headers=headers, timeout=30)
    assert response.status_code == status, response.text
    got = response.json()
    if door == "/messages":
        assert set(got) == {"type", "error"} and got["type"] == "error", got
        assert set(got["error"]) == {"type", "message"} and got["error"]["type"] == kind, got
        assert "OpenAI" not in got["error"]["message"], got
        if what in ("not JSON", "a UTF-8 BOM"):
            assert got["error"]["message"].startswith("The request body is not valid JSON: "), got
    else:
        assert set(got) == {"error"} and set(got["error"]) == {"message", "type", "param", "code"}, got
        assert got["error"]["type"] == "invalid_request_error" and got["error"]["code"], got


def test_count_tokens_refuses_a_body_that_is_not_json_in_anthropics_words(gateway):
    response = httpx.post(gateway.base_url + "/messages/count_tokens", content=b"{nope",
                          headers={"content-type": "application/json", "x-api-key": CLIENT_KEY}, timeout=20)
    assert response.status_code == 400
    assert response.json()["error"]["message"].startswith("The request body is not valid JSON: "), response.text


# ---- the same policy and fallback tiers for every front door ----------------------------------------

@pytest.fixture(scope="module")
def tiers(tmp_path_factory):
    """A stack that never ejects (health rules off), so each test sees the plain cascade of `auto`'s
    class simple_queries: gpt-4o-mini (OpenAI API), then gemini-3.5-flash-lite (Gemini API)."""
    with stack_with(tmp_path_factory, "front-door-tiers", {"/health": NO_EJECTION}) as stack:
        yield stack


def test_messages_fall_back_across_provider_apis(tiers):
    """`auto` is routed by the policy; the primary's 503 is answered by the next tier, translated afresh
    for its API and back to Messages."""
    fault(tiers, "openai", status=503, count=1)
    claude = anthropic.Anthropic(base_url=tiers.base_url.removesuffix("/v1"), api_key=CLIENT_KEY, max_retries=0,
                                 timeout=20)
    raw = claude.messages.with_raw_response.create(model="auto", max_tokens=100,
                                                   messages=[{"role": "user", "content": "What is the capital of Peru?"}])
    message = raw.parse()
    assert raw.headers["x-llm-provider"] == "gemini" and raw.headers["x-llm-attempts"] == "2"
    assert raw.headers["x-llm-class"] == "simple_queries"
    assert message.content[0].text.endswith("You said: What is the capital of Peru?")
    assert "contents" in _served_by(tiers, "gemini")["body"]


def test_a_responses_stream_falls_back_before_its_first_byte(tiers):
    fault(tiers, "openai", status=503, count=1)
    client = openai.OpenAI(base_url=tiers.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=20)
    raw = client.responses.with_raw_response.create(model="auto", input="What is the capital of Peru?", stream=True)
    events = list(raw.parse())
    assert raw.headers["x-llm-provider"] == "gemini" and raw.headers["x-llm-attempts"] == "2"
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text.endswith("You said: What is the capital of Peru?")


@pytest.fixture(scope="module")
def hedged(tmp_path_factory):
    """Interactive work hedged (one extra attempt): the primary tier's target is 1.5 s."""
    with stack_with(tmp_path_factory, "front-door-hedged",
                    {"/health": NO_EJECTION, "/workloads/interactive/hedge": True}) as stack:
        yield stack


def test_a_hedged_messages_stream_is_won_by_the_faster_tier(hedged):
    """The primary answers far too late; the hedge starts at its 1.5 s target and the secondary, of
    another provider API, answers the Messages client in Anthropic's event sequence."""
    fault(hedged, "openai", latency_ms=6000, count=1)
    claude = anthropic.Anthropic(base_url=hedged.base_url.removesuffix("/v1"), api_key=CLIENT_KEY, max_retries=0,
                                 timeout=20)
    started = time.monotonic()
    with claude.messages.with_streaming_response.create(
            model="auto", max_tokens=100, stream=True,
            messages=[{"role": "user", "content": "What is the capital of Peru?"}]) as raw:
        provider, attempts = raw.headers["x-llm-provider"], raw.headers["x-llm-attempts"]
        kinds = [line.split(": ", 1)[1] for line in raw.iter_lines() if line.startswith("event: ")]
    elapsed = time.monotonic() - started
    assert (provider, attempts) == ("gemini", "2")
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert 1.4 < elapsed < 1.5 + 1.5, elapsed           # sequential fallback would wait for the 3 s cut


def _claude(stack) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stack.base_url.removesuffix("/v1"), api_key=CLIENT_KEY, max_retries=0,
                               timeout=20)


# Provider failures run on the `tiers` stack (health rules off): on the shared stack they would
# demote the provider for the tests that follow.
def test_a_provider_error_reaches_a_messages_client_in_anthropics_shape(tiers):
    claude = _claude(tiers)
    fault(tiers, "gemini", status=400, count=1)
    with pytest.raises(anthropic.BadRequestError) as bad:
        claude.messages.create(model=MODELS["gemini"], max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    assert bad.value.body["type"] == "error" and bad.value.body["error"]["type"] == "invalid_request_error"


# ---- the same accounting --------------------------------------------------------------------------

def test_front_door_answers_are_billed_what_their_usage_says(gateway, claude, client):
    """A pass-through Messages answer (Anthropic's own bytes) and a translated Responses stream leave
    ledger records with the tokens the client was told."""
    raw = claude.messages.with_raw_response.create(model=MODELS["anthropic"], max_tokens=100,
                                                   messages=[{"role": "user", "content": "Bill me."}])
    usage = raw.parse().usage
    record = ledger_row(gateway, raw.headers["x-request-id"], final=False, timeout=5)
    assert (record.model, record.status) == (MODELS["anthropic"], 200)
    assert (record.input_tokens, record.output_tokens) == (usage.input_tokens, usage.output_tokens)
    assert record.cost_usd > 0
    streamed = client.responses.with_raw_response.create(model=MODELS["gemini"], input="Bill me too.", stream=True)
    final = list(streamed.parse())[-1].response.usage
    record = ledger_row(gateway, streamed.headers["x-request-id"], final=False, timeout=5)
    assert (record.model, record.input_tokens, record.output_tokens) == (
        MODELS["gemini"], final.input_tokens, final.output_tokens)


# ---- the same spans -------------------------------------------------------------------------------

def test_a_front_door_request_has_its_request_and_attempt_spans(gateway, claude, otlp):
    from .otlp_receiver import attributes

    since = time.time_ns()
    raw = claude.messages.with_raw_response.create(model=MODELS["gemini"], max_tokens=50,
                                                   messages=[{"role": "user", "content": "Trace me."}])
    assert raw.parse().usage.output_tokens > 0

    def found(spans):
        requests = [s for _, s in spans if attributes(s).get("llm.request") and s.start_time_unix_nano >= since
                    and attributes(s).get("llm.client_api") == "anthropic_messages"
                    and attributes(s).get("gen_ai.request.model") == MODELS["gemini"]]
        if not requests:
            return None
        attempts = [s for _, s in spans if s.parent_span_id == requests[-1].span_id and "llm.attempt" in attributes(s)]
        return (requests[-1], attempts[0]) if attempts else None

    request, attempt = otlp.wait_for(found)
    assert attributes(request)["llm.provider"] == "gemini" and attributes(request)["http.response.status_code"] == 200
    assert attributes(attempt)["gen_ai.usage.output_tokens"] > 0


# ---- streams that end badly -----------------------------------------------------------------------

@pytest.mark.parametrize("provider, kind", [("gemini", "overloaded_error"), ("openai", "api_error")])
def test_a_provider_error_event_mid_stream_is_an_anthropic_error_event(tiers, provider, kind):
    """The provider sends its API's error event after a few events: the Messages client gets
    Anthropic's `error` event and no message_stop (its SDK raises), never a stream that looks complete.
    Its type is the failure's (errors.KINDS): Gemini's "model is overloaded" (503 UNAVAILABLE) is
    Anthropic's overloaded_error, as Anthropic's own would be; OpenAI's server_error an api_error."""
    fault(tiers, provider, error_event_after=2, count=1)
    with pytest.raises(anthropic.APIStatusError) as failed:
        with _claude(tiers).messages.stream(model=MODELS[provider], max_tokens=100,
                                    messages=[{"role": "user", "content": "Count to ten slowly."}]) as stream:
            for _ in stream:
                pass
    assert failed.value.body["type"] == "error" and failed.value.body["error"]["type"] == kind, failed.value.body


@pytest.mark.parametrize("provider", ["gemini", "anthropic"])
def test_a_responses_stream_whose_provider_fails_mid_way_ends_failed(tiers, provider):
    fault(tiers, provider, error_event_after=2, count=1)
    client = openai.OpenAI(base_url=tiers.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=20)
    events = list(client.responses.create(model=MODELS[provider], input="Count to ten slowly.", stream=True))
    assert events[-1].type == "response.failed" and events[-1].response.error.message
    assert "response.completed" not in [e.type for e in events]


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_the_openai_sdks_accumulating_responses_stream_helper(gateway, client, provider):
    """`responses.stream()` rebuilds the response from the events and checks their order as it goes."""
    with client.responses.stream(model=MODELS[provider], input="What is the weather in Paris?",
                                 tools=[{"type": "function", "name": "get_weather", "parameters": WEATHER_SCHEMA,
                                         "strict": False}]) as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    call = next(item for item in final.output if item.type == "function_call")
    assert call.name == "get_weather" and isinstance(json.loads(call.arguments)["city"], str)
    with client.responses.stream(model=MODELS[provider], input="Count to three.") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert final.output_text == text and text.endswith("You said: Count to three.")


@pytest.mark.parametrize("provider", ["anthropic", "gemini", "openai"])
def test_a_custom_tool_round_trip_as_codex_sends_it(gateway, client, provider):
    """A freeform tool (type custom, as Codex's apply_patch): the answer is a custom_tool_call with a
    text input, and its custom_tool_call_output goes back to the model."""
    tools = [{"type": "custom", "name": "apply_patch", "description": "Apply a patch to the files"}]
    first = client.responses.create(model=MODELS[provider], tools=tools, tool_choice={"type": "custom",
                                                                                      "name": "apply_patch"},
                                    input="Please apply the patch that renames Paris.")
    call = next(item for item in first.output if item.type == "custom_tool_call")
    assert call.name == "apply_patch" and isinstance(call.input, str) and call.input
    second = client.responses.create(model=MODELS[provider], tools=tools, input=[
        {"role": "user", "content": "Please apply the patch that renames Paris."},
        {"type": "custom_tool_call", "call_id": call.call_id, "name": call.name, "input": call.input},
        {"type": "custom_tool_call_output", "call_id": call.call_id, "output": "patch applied"}])
    assert "patch applied" in second.output_text


def test_responses_keeps_chats_rule_for_an_unknown_field(gateway, client):
    """Pinned to gpt-4o-mini, chat answers 422 unsupported_parameter to a field OpenAI does not know;
    /v1/responses now answers the same instead of dropping it silently (tryout L4)."""
    for call in (lambda: client.responses.create(model=MODELS["openai"], input="Hi", extra_body={"foo": 1}),
                 lambda: client.chat.completions.create(model=MODELS["openai"], extra_body={"foo": 1},
                                                        messages=[{"role": "user", "content": "Hi"}])):
        with pytest.raises(openai.UnprocessableEntityError) as info:
            call()
        assert info.value.body["code"] == "unsupported_parameter" and info.value.body["param"] == "foo"
    assert upstream_requests(gateway, "openai") == []


def test_messages_max_tokens_over_claudes_limit_is_clamped_as_on_chat(gateway, claude):
    """Anthropic answers 400 to max_tokens over the model's limit; every door clamps it (tryout L5)."""
    message = claude.messages.create(model=MODELS["anthropic"], max_tokens=100000,
                                     messages=[{"role": "user", "content": "Hi"}])
    assert message.stop_reason == "end_turn"
    (record,) = upstream_requests(gateway, "anthropic")
    assert record["body"]["max_tokens"] == 64000
