"""The front doors (extproc/apis/) without Envoy: each client API to the internal form and back, and
every client-API x provider-API pair's upstream request checked by that provider's strict simulator rules.

Answers are checked against the official SDKs' own types (anthropic.types, openai.types.responses), so a
field the SDKs need and the gateway forgets fails here."""

from __future__ import annotations

import json

import anthropic.types as at
import openai.types.responses as rt
import pydantic
import pytest

from extproc import sse, validate
from extproc.apis import messages, responses
from extproc.errors import InvalidRequest, UnsupportedFeature
from extproc import errors
from extproc.gateway import Answer, Gateway
from extproc.providers.base import Target
from extproc.providers.openai_openai import OpenAIChatTranslator
from extproc.simulators import anthropic as sim_anthropic, gemini as sim_gemini

from extproc.config import load
from extproc.credentials import Credentials
from extproc.devstack import DEFAULT_ROUTING
from extproc.keys import KeyEntry, KeyFile, digest

KEYS = {"OPENAI_API_KEY": "sk-openai", "ANTHROPIC_API_KEY": "sk-ant", "GEMINI_API_KEY": "g-key",
        "AZURE_OPENAI_API_KEY": "az-key"}
DEMO_KEY = "sk-unit-demo"
AUTH = {"authorization": f"Bearer {DEMO_KEY}"}


def demo_keys() -> KeyFile:
    keys = KeyFile(None)
    keys.entries = {digest(DEMO_KEY): KeyEntry("demo", "demo", digest(DEMO_KEY))}
    return keys

GPT = Target(model="gpt", upstream_model="gpt-4o-mini", provider="openai", api="openai", base_path="/v1")
WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
# A model of the shipped config behind each provider API.
BEHIND = {"openai": "gpt-4o-mini", "azure_openai": "azure-gpt-4o-mini", "anthropic": "claude-haiku-4-5",
          "gemini": "gemini-3.5-flash-lite"}

# One tool round trip, as each client API says it.
MESSAGES_ROUND_TRIP = {
    "max_tokens": 2000, "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
    "tools": [{"name": "get_weather", "description": "Weather", "input_schema": WEATHER},
              {"type": "web_search_20250305", "name": "web_search"}],
    "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
    "thinking": {"type": "enabled", "budget_tokens": 1024}, "stop_sequences": ["END"],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "...", "signature": "sig"},
                                          {"type": "text", "text": "Let me look."},
                                          {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                           "input": {"city": "Paris"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": [{"type": "text", "text": "sunny"}]},
                                     {"type": "text", "text": "And tomorrow?"}]}]}
RESPONSES_ROUND_TRIP = {
    "instructions": "Be brief.", "max_output_tokens": 300, "store": True,
    "tools": [{"type": "function", "name": "get_weather", "parameters": WEATHER, "strict": False}],
    "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Weather in Paris?"}]},
              {"type": "reasoning", "id": "rs_1", "summary": []},
              {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": '{"city":"Paris"}'},
              {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}]}


@pytest.fixture
def gw() -> Gateway:
    return Gateway(load(DEFAULT_ROUTING), Credentials(KEYS), clock=lambda: 1_700_000_000.5, keys=demo_keys())


def _front(path: str, extra: dict | None = None) -> dict[str, str]:
    return {":method": "POST", ":path": path, "content-type": "application/json", **AUTH, **(extra or {})}


# ---- every client API x provider API --------------------------------------------------------------

@pytest.mark.parametrize("api", list(BEHIND))
@pytest.mark.parametrize("path,body", [("/v1/messages", MESSAGES_ROUND_TRIP), ("/v1/responses", RESPONSES_ROUND_TRIP)])
def test_each_front_door_reaches_each_provider_api_in_a_shape_it_accepts(gw, api, path, body):
    exchange = gw.request_body(_front(path, {"anthropic-beta": "b1"}), json.dumps({**body, "model": BEHIND[api]}).encode())
    translator, upstream = exchange.first
    sent = json.loads(upstream.body)
    if api == "anthropic":
        sim_anthropic.validate(sent)                       # the real API's rules
        if path == "/v1/messages":                         # the same API: the client's request as it came
            assert sent == {**body, "model": "claude-haiku-4-5"}
            # the allowlist as for Chat: the gateway's version; anthropic-beta only where forward_headers lists it
            assert upstream.headers["anthropic-version"] == "2023-06-01" and "anthropic-beta" not in upstream.headers
        else:
            assert sent["messages"][-1]["content"][0]["type"] == "tool_result"
    elif api == "gemini":
        sim_gemini.to_prompt("gemini-3.5-flash-lite", sent)
        assert sent["contents"][-1]["parts"][0]["functionResponse"]["name"] == "get_weather"
    else:
        validate.chat(sent)
        assert [m["role"] for m in sent["messages"]][-2:] in (["assistant", "tool"], ["tool", "user"])
        assert "thinking" not in sent and "store" not in sent


def test_messages_request_in_the_internal_form():
    body = messages.to_internal({**MESSAGES_ROUND_TRIP, "model": "m"})
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert body["messages"][2] == {"role": "assistant", "content": "Let me look.", "tool_calls": [
        {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
    assert body["messages"][3] == {"role": "tool", "content": "sunny", "tool_call_id": "toolu_1"}
    assert body["messages"][4] == {"role": "user", "content": [{"type": "text", "text": "And tomorrow?"}]}
    assert [t["function"]["name"] for t in body["tools"]] == ["get_weather"]   # the server tool is Anthropic's
    assert body["parallel_tool_calls"] is False and body["tool_choice"] == "auto"
    assert body["stop"] == ["END"] and body["max_completion_tokens"] == 2000 and "thinking" not in body


def test_responses_request_in_the_internal_form():
    body = responses.to_internal({**RESPONSES_ROUND_TRIP, "model": "m",
                                  "text": {"format": {"type": "json_schema", "name": "w", "schema": WEATHER}}})
    assert [m["role"] for m in body["messages"]] == ["system", "user", "assistant", "tool"]
    assert body["messages"][2]["tool_calls"][0]["id"] == "call_1"
    assert body["response_format"] == {"type": "json_schema", "json_schema": {"name": "w", "schema": WEATHER}}
    assert responses.to_internal({"model": "m", "input": "Hi"})["messages"] == [{"role": "user", "content": "Hi"}]


@pytest.mark.parametrize("door,body,param", [
    (messages, {"model": "m", "messages": [{"role": "user", "content": "Hi"}]}, "max_tokens"),
    (messages, {"model": "m", "max_tokens": 0, "messages": [{"role": "user", "content": "Hi"}]}, "max_tokens"),
    (messages, {"model": "m", "max_tokens": 5, "messages": [{"role": "tool", "content": "Hi"}]}, "messages[0].role"),
    (responses, {"model": "m", "input": "Hi", "previous_response_id": "resp_1"}, "previous_response_id"),
    (responses, {"model": "m"}, "input"),
])
def test_bad_front_door_requests_are_400_naming_the_field(door, body, param):
    with pytest.raises(InvalidRequest) as bad:
        door.to_internal(body)
    assert bad.value.param == param


# Each fault the shared chat validator finds in what a front door made, named in the client API's own fields
# (issue 16 follow-up: /v1/responses answered "'messages' must contain ... 'response_format'", param messages).
IMAGE = {"type": "input_image", "image_url": "data:image/png;base64,@@"}
CALL = {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"}


@pytest.mark.parametrize("body,param,named", [
    ({"input": "three colors", "text": {"format": {"type": "json_object"}}}, "input",
     "Response input messages must contain the word 'json' in some form to use 'text.format' of type 'json_object'."),
    ({"input": "Hi", "max_output_tokens": 2**40}, "max_output_tokens", "'max_output_tokens'"),
    ({"input": "Hi", "tools": [{"type": "function", "name": "ok"}, {"type": "function", "name": "weather.get"}]},
     "tools[1].name", "'tools[1].name'"),
    ({"input": "Hi", "tools": [{"type": "function", "name": "f", "parameters": "x"}]}, "tools[0].parameters",
     "'tools[0].parameters'"),
    ({"input": "Hi", "tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "function"}},
     "tool_choice.name", "'tool_choice.name'"),
    ({"input": "Hi", "text": {"format": {"type": "json_schema", "name": "n" * 65, "schema": {}}}},
     "text.format.name", "'text.format.name'"),
    ({"input": "Hi", "text": {"format": {"type": "json_schema", "schema": "x"}}}, "text.format.schema",
     "'text.format.schema'"),
    ({"input": "Hi", "reasoning": {"effort": 1}}, "reasoning.effort", "'reasoning.effort'"),
    ({"instructions": "Be brief.", "input": [{"role": "user", "content": "Hi"}, {"role": "user", "content": []}]},
     "input[1].content", "'input[1].content'"),
    ({"instructions": "Be brief.", "input": [{"role": "user", "content": [{"type": "input_text", "text": "a"}, IMAGE]}]},
     "input[0].content[1].image_url", "'input[0].content[1].image_url'"),
    ({"input": [{"role": "user", "content": "Hi"}, {"type": "reasoning", "summary": []}, CALL,
                {**CALL, "call_id": "c2", "name": "get.weather"}]}, "input[3].name", "'input[3].name'"),
    ({"input": [{"type": "reasoning", "summary": []}]}, "input", "'input'"),
])
def test_validator_errors_on_responses_name_the_responses_fields(gw, body, param, named):
    """The same map renames an error the shared validator raises (in the door) or the planner or a provider
    translator raises (in the gateway), in ``param`` and in the message; no chat field name shows."""
    for fault in (lambda: responses.to_internal({"model": "m", **body}),
                  lambda: gw.request_body(_front("/v1/responses"), json.dumps({"model": "gpt-4o-mini", **body}).encode())):
        with pytest.raises(InvalidRequest) as bad:
            fault()
        assert bad.value.param == param and named in bad.value.message
        assert not any(chat in bad.value.message for chat in ("'messages", "response_format", "max_completion_tokens",
                                                                  "function.", "json_schema", "reasoning_effort"))


def test_responses_prompt_cache_key_and_safety_identifier_reach_chat_and_are_checked(gw):
    """Tryout 10 M4: the door dropped them (no provider prompt-cache routing, no affinity key) and took any value."""
    body = responses.to_internal({"model": "m", "input": "Hi", "prompt_cache_key": "tpl-7", "safety_identifier": "u1"})
    assert (body["prompt_cache_key"], body["safety_identifier"]) == ("tpl-7", "u1")
    for bad, param in (({"prompt_cache_key": 123}, "prompt_cache_key"), ({"prompt_cache_key": "k" * 65}, "prompt_cache_key"),
                       ({"safety_identifier": 5}, "safety_identifier")):
        with pytest.raises(InvalidRequest) as info:
            gw.request_body(_front("/v1/responses"), json.dumps({"model": "gpt-4o-mini", "input": "Hi", **bad}).encode())
        assert info.value.param == param


def test_a_field_passed_through_keeps_its_own_name_on_responses():
    """Only fields the door made are renamed: a chat field sent as it is (passed on, README) is named as sent."""
    with pytest.raises(InvalidRequest) as bad:
        responses.to_internal({"model": "m", "input": "Hi", "max_completion_tokens": 0})
    assert bad.value.param == "max_completion_tokens"


@pytest.mark.parametrize("model", ["claude-haiku-4-5", "gemini-3.5-flash-lite"])
def test_translator_errors_on_responses_name_the_responses_fields(gw, model):
    """A provider translator's error (arguments Anthropic and Gemini must parse as JSON) goes through the same
    map in the gateway, in ``param`` and in the message."""
    with pytest.raises(errors.GatewayError) as bad:
        gw.request_body(_front("/v1/responses"), json.dumps({"model": model, "input": [
            {"role": "user", "content": "Hi"}, {**CALL, "arguments": "not json"},
            {"type": "function_call_output", "call_id": "c1", "output": "sunny"}]}).encode())
    assert bad.value.param == "input[1].arguments"
    assert bad.value.message.startswith("input[1].arguments ") and "messages" not in bad.value.message


@pytest.mark.parametrize("body,named", [
    ({"tools": [{"type": "web_search_20250305", "name": "web_search"}, {"name": "weather.get", "input_schema": WEATHER}]},
     "'tools[1].name'"),
    ({"max_tokens": 2**40}, "'max_tokens'"),
    ({"system": "Be brief.", "messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": [
        {"type": "text", "text": "Let me look."}, {"type": "tool_use", "id": "t1", "name": "get.weather", "input": {}}]}]},
     "'messages[1].content[1].name'"),
    ({"system": "Be brief.", "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {
        "type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "@@"}}]}]},
     "'messages[0].content[1].source'"),
])
def test_validator_errors_on_messages_name_the_anthropic_fields(gw, body, named):
    """/v1/messages: Anthropic's error shape (no param), the message naming Anthropic's fields."""
    request = {"model": "gpt-4o-mini", "max_tokens": 10, "messages": [{"role": "user", "content": "Hi"}], **body}
    with pytest.raises(InvalidRequest) as bad:
        gw.request_body(_front("/v1/messages"), json.dumps(request).encode())
    answer = json.loads(Answer.error(bad.value, "/v1/messages").body)
    assert answer["type"] == "error" and answer["error"]["type"] == "invalid_request_error"
    assert named in answer["error"]["message"]
    assert not any(chat in answer["error"]["message"] for chat in ("function.", "max_completion_tokens", "image_url.url"))


def test_a_built_in_responses_tool_is_422():
    with pytest.raises(UnsupportedFeature):
        responses.to_internal({"model": "m", "input": "Hi", "tools": [{"type": "web_search"}]})


# ---- errors in each front door's shape ----------------------------------------------------------------

def test_header_stage_errors_on_messages_are_anthropics(gw):
    answer = gw.request_headers({":method": "POST", ":path": "/v1/messages", "content-type": "application/json",
                                 "x-api-key": "wrong"}, False)
    assert answer.status == 401
    assert json.loads(answer.body) == {"type": "error", "error": {"type": "authentication_error",
                                                                  "message": json.loads(answer.body)["error"]["message"]}}
    on_chat = gw.request_headers({":method": "POST", ":path": "/v1/responses", "content-type": "application/json",
                                  "x-api-key": "wrong"}, False)
    assert set(json.loads(on_chat.body)["error"]) == {"message", "type", "param", "code"}   # Responses: OpenAI's


@pytest.mark.parametrize("exc,kind", [
    (errors.Unauthorized("no key"), "authentication_error"),
    (errors.ModelNotFound("no model", param="model"), "not_found_error"),
    (errors.PayloadTooLarge("too big"), "request_too_large"),
    (errors.UnsupportedFeature("cannot", param="n"), "invalid_request_error"),
    (errors.QuotaExceeded("budget spent", headers={"retry-after": "60"}), "rate_limit_error"),
    (errors.Unavailable("all tiers down"), "overloaded_error"),
    (errors.DeadlineExceeded("too slow"), "timeout_error"),
    (errors.UpstreamError("provider failed"), "api_error"),
])
def test_gateway_errors_on_messages_keep_status_and_headers_in_anthropics_shape(exc, kind):
    answer = Answer.error(exc, "/v1/messages?beta=true")
    assert answer.status == exc.status and answer.headers.get("retry-after") == exc.headers.get("retry-after")
    assert json.loads(answer.body) == {"type": "error", "error": {"type": kind, "message": exc.message}}
    assert json.loads(Answer.error(exc, "/v1/responses").body)["error"]["message"] == exc.message   # OpenAI's


def test_an_unknown_path_under_messages_is_anthropics_404(gw):
    answer = gw.request_headers(_front("/v1/messages/batches"), False)
    assert answer.status == 404 and json.loads(answer.body)["error"]["type"] == "not_found_error"


def test_count_tokens_grows_with_the_prompt(gw):
    def count(text: str) -> int:
        answer = gw.count_tokens(_front("/v1/messages/count_tokens"), json.dumps(
            {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": text}]}).encode())
        return json.loads(answer.body)["input_tokens"]
    assert 0 < count("Hi") < count("Hi there " * 40)


# ---- answers and streams, checked with the official SDKs' types ---------------------------------------

def _chunks(*deltas: dict, finish: str, usage: dict) -> bytes:
    out = b""
    for delta in deltas:
        out += sse.encode({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
                           "choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    out += sse.encode({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
                       "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    out += sse.encode({"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o-mini",
                       "choices": [], "usage": usage})
    return out + sse.DONE


STREAM = _chunks({"role": "assistant", "content": "Let me "}, {"content": "look."},
                 {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                  "function": {"name": "get_weather", "arguments": ""}}]},
                 {"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]},
                 {"tool_calls": [{"index": 0, "function": {"arguments": '"Paris"}'}}]},
                 finish="tool_calls", usage={"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29})


def _door(module, client: dict):
    inner = OpenAIChatTranslator(GPT, created=1, response_id="chatcmpl-x")
    door = module.translator(inner, client, {"id": "msg_x" if module is messages else "resp_x", "created": 1})
    internal = module.to_internal(client)
    door.request(internal)
    return door


def _run(door, data: bytes, step: int) -> bytes:
    out = b"".join(door.stream_chunk(data[i:i + step]) for i in range(0, len(data), step))
    return out + door.stream_end()


@pytest.mark.parametrize("step", [1, 7, 10_000])
def test_messages_stream_is_anthropics_event_sequence_however_the_bytes_split(step):
    client = {"model": "gpt", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    out = _run(_door(messages, client), STREAM, step)
    events = sse.SSEDecoder().feed(out)
    adapter = pydantic.TypeAdapter(at.RawMessageStreamEvent)
    parsed = [adapter.validate_python(json.loads(e.data)) for e in events if e.event != "ping"]
    assert [e.event for e in events] == [
        "message_start", "ping", "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop", "content_block_start", "content_block_delta", "content_block_delta",
        "content_block_stop", "message_delta", "message_stop"]
    assert all(e.event == json.loads(e.data)["type"] for e in events)
    assert parsed[-2].delta.stop_reason == "tool_use" and parsed[-2].usage.output_tokens == 9
    assert "".join(json.loads(e.data)["delta"].get("partial_json", "") for e in events
                   if e.event == "content_block_delta") == '{"city":"Paris"}'


@pytest.mark.parametrize("step", [1, 7, 10_000])
def test_responses_stream_is_the_typed_event_sequence_however_the_bytes_split(step):
    client = {"model": "gpt", "input": "Hi", "stream": True}
    out = _run(_door(responses, client), STREAM, step)
    events = sse.SSEDecoder().feed(out)
    adapter = pydantic.TypeAdapter(rt.ResponseStreamEvent)
    parsed = [adapter.validate_python(json.loads(e.data)) for e in events]
    kinds = [p.type for p in parsed]
    assert kinds == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", "response.output_text.delta", "response.output_text.delta",
                     "response.output_text.done", "response.content_part.done", "response.output_item.done",
                     "response.output_item.added", "response.function_call_arguments.delta",
                     "response.function_call_arguments.delta", "response.function_call_arguments.done",
                     "response.output_item.done", "response.completed"]
    assert [p.sequence_number for p in parsed] == list(range(len(parsed)))
    final = parsed[-1].response
    assert final.output_text == "Let me look." and final.output[1].arguments == '{"city":"Paris"}'
    assert final.usage.total_tokens == 29


def test_a_custom_tool_is_a_function_of_one_string_and_comes_back_as_a_custom_tool_call():
    """Codex's freeform tools (type custom): asked for as a function of one string `input`, answered as
    custom_tool_call items with that string, streamed with custom_tool_call_input events."""
    tools = [{"type": "custom", "name": "apply_patch", "description": "Apply a patch"}]
    internal = responses.to_internal({"model": "m", "tools": tools, "input": [
        {"type": "custom_tool_call", "call_id": "c0", "name": "apply_patch", "input": "*** old"},
        {"type": "custom_tool_call_output", "call_id": "c0", "output": "done"}]})
    assert internal["tools"][0]["function"]["parameters"]["required"] == ["input"]
    assert json.loads(internal["messages"][0]["tool_calls"][0]["function"]["arguments"]) == {"input": "*** old"}
    stream = _chunks({"tool_calls": [{"index": 0, "id": "call_9", "type": "function",
                                      "function": {"name": "apply_patch", "arguments": '{"inp'}}]},
                     {"tool_calls": [{"index": 0, "function": {"arguments": 'ut": "*** Begin Patch\\n"}'}}]},
                     finish="tool_calls", usage={"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10})
    events = sse.SSEDecoder().feed(_run(_door(responses, {"model": "gpt", "input": "Hi", "stream": True,
                                                          "tools": tools}), stream, 5))
    adapter = pydantic.TypeAdapter(rt.ResponseStreamEvent)
    parsed = [adapter.validate_python(json.loads(e.data)) for e in events]
    assert [p.type for p in parsed][2:] == ["response.output_item.added", "response.custom_tool_call_input.delta",
                                            "response.custom_tool_call_input.done", "response.output_item.done",
                                            "response.completed"]
    call = parsed[-1].response.output[0]
    assert (call.type, call.name, call.input) == ("custom_tool_call", "apply_patch", "*** Begin Patch\n")


def test_a_cut_stream_ends_without_a_terminal_event():
    """No [DONE]: the client must not be told the answer completed."""
    client = {"model": "gpt", "max_tokens": 50, "stream": True, "messages": [{"role": "user", "content": "Hi"}]}
    out = _run(_door(messages, client), STREAM[:STREAM.index(b"data: [DONE]")][:200], 10_000)
    assert b"message_stop" not in out and b"message_start" in out


ANSWER = json.dumps({"id": "c", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini", "choices": [
    {"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Let me look.",
                                                            "tool_calls": [{"id": "call_1", "type": "function",
                                                                            "function": {"name": "get_weather",
                                                                                         "arguments": '{"city":"Paris"}'}}]}}],
    "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29,
              "prompt_tokens_details": {"cached_tokens": 4}}}).encode()


def test_messages_answer_is_an_anthropic_message():
    door = _door(messages, {"model": "gpt", "max_tokens": 50, "messages": [{"role": "user", "content": "Hi"}]})
    message = at.Message.model_validate(json.loads(door.response(ANSWER)))
    assert [b.type for b in message.content] == ["text", "tool_use"] and message.content[1].input == {"city": "Paris"}
    assert message.stop_reason == "tool_use"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens, message.usage.output_tokens) == (16, 4, 9)


def test_responses_answer_is_a_response():
    door = _door(responses, {"model": "gpt", "input": "Hi", "store": True})
    response = rt.Response.model_validate(json.loads(door.response(ANSWER)))
    assert response.output_text == "Let me look." and response.output[1].call_id == "call_1"
    assert response.store is False and response.usage.input_tokens_details.cached_tokens == 4


def test_provider_errors_are_reshaped_for_messages():
    door = _door(messages, {"model": "gpt", "max_tokens": 50, "messages": [{"role": "user", "content": "Hi"}]})
    status, body = door.error(429, b'{"error": {"message": "slow down", "type": "requests", "code": "rate_limit"}}')
    assert status == 429 and json.loads(body) == {"type": "error", "error": {"type": "rate_limit_error",
                                                                             "message": "slow down"}}


# ---- hostile input: a clear 400 / 422, never a crash -------------------------------------------------

from hypothesis import given, settings, strategies as st  # noqa: E402

from extproc.errors import GatewayError  # noqa: E402
from tests.strategies import json_leaf  # noqa: E402

FRONT_FIELDS = st.sampled_from(["role", "content", "type", "text", "source", "media_type", "data", "url", "id",
                                "name", "input", "tool_use_id", "is_error", "call_id", "arguments", "output",
                                "image_url", "file_data", "format", "schema", "parameters", "input_schema",
                                "disable_parallel_tool_use", "cache_control", "thinking", "phase"])
front_shaped = st.recursive(json_leaf, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(FRONT_FIELDS, inner, max_size=4)), max_leaves=12)
# Blocks of a known type with fields well typed or of any shape: these reach past the first checks.
word = st.text(min_size=1, max_size=4)
source = st.fixed_dictionaries({"type": st.sampled_from(["base64", "url", "text", "content", "file"])},
                               optional={"media_type": word, "data": word, "url": word, "content": front_shaped})
WELL_TYPED = {"text": word, "source": source, "id": word, "name": word, "input": st.dictionaries(word, word, max_size=2),
              "content": st.one_of(word, st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": word}),
                                                  max_size=2)),
              "tool_use_id": word, "call_id": word, "arguments": word, "output": word, "image_url": word,
              "file_data": word, "role": st.sampled_from(["user", "assistant"]),
              "parameters": st.just({"type": "object"}), "input_schema": st.just({"type": "object"})}
block = st.fixed_dictionaries({"type": st.sampled_from(["text", "image", "document", "tool_use", "tool_result",
                                                        "thinking", "input_text", "input_image", "input_file",
                                                        "output_text", "function_call", "function_call_output",
                                                        "message", "reasoning", "custom", "function"])},
                              optional={f: st.one_of(v, front_shaped) for f, v in WELL_TYPED.items()})
turns = st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system", "developer"])},
                                       optional={"content": st.one_of(word, st.lists(block, min_size=1, max_size=3)),
                                                 "type": st.sampled_from(["message", "function_call"])}),
                 min_size=1, max_size=3)
messages_bodies = st.fixed_dictionaries({"model": st.just("m"), "max_tokens": st.just(10), "messages": turns}, optional={
    "tools": st.one_of(front_shaped, st.lists(block, max_size=2)),
    **{k: front_shaped for k in ("system", "tool_choice", "stop_sequences", "metadata", "stream", "thinking")}})
responses_bodies = st.fixed_dictionaries({"model": st.just("m"), "input": st.one_of(
    word, turns, st.lists(block, min_size=1, max_size=3))}, optional={
    "tools": st.one_of(front_shaped, st.lists(block, max_size=2)),
    **{k: front_shaped for k in ("instructions", "tool_choice", "text", "stream", "metadata", "store", "reasoning")}})


@settings(max_examples=400, deadline=None)
@given(st.one_of(messages_bodies.map(lambda b: (messages, b)), responses_bodies.map(lambda b: (responses, b))))
def test_hostile_front_door_bodies_are_clear_errors_never_crashes(case):
    door, body = case
    try:
        internal = door.to_internal(body)
    except GatewayError as exc:
        assert exc.status in (400, 422) and exc.message
        return
    validate.chat(internal)   # what passes is a request the internal validator takes


# ---- the same rules as chat (tryout L4, L5) -------------------------------------------------------

def test_responses_takes_the_same_per_model_rules_as_chat(gw):
    """An unknown top-level field and reasoning.effort go on as in a chat request, so the same
    capability check decides: pinned to gpt-4o-mini, 422 unsupported_parameter, as chat answers."""
    body = responses.to_internal({"model": "m", "input": "Hi", "foo": 1, "reasoning": {"effort": "low"},
                                  "parallel_tool_calls": True})
    assert body["foo"] == 1 and body["reasoning_effort"] == "low"
    assert "parallel_tool_calls" not in body   # chat takes it only beside tools; the Responses default is true
    with pytest.raises(InvalidRequest):
        responses.to_internal({"model": "m", "input": "Hi", "messages": []})
    for path, extra in (("/v1/responses", {"input": "Hi"}),
                        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "Hi"}]})):
        with pytest.raises(errors.GatewayError) as refused:
            gw.request_body(_front(path), json.dumps({"model": "gpt-4o-mini", "foo": 1, **extra}).encode())
        assert refused.value.status == 422 and json.loads(refused.value.body())["error"]["code"] == "unsupported_parameter"
    # reasoning.effort reaches a reasoning model and is left out for the others, as reasoning_effort in chat
    exchange = gw.request_body(_front("/v1/responses"), json.dumps(
        {"model": "gpt-4o-mini", "input": "Hi", "reasoning": {"effort": "low"}}).encode())
    assert "reasoning_effort" not in json.loads(exchange.first[1].body)


def test_messages_passthrough_clamps_max_tokens_as_every_door_does(gw):
    """Anthropic refuses max_tokens over the model's output limit; chat clamps, and so does /v1/messages."""
    exchange = gw.request_body(_front("/v1/messages"), json.dumps(
        {"model": "claude-haiku-4-5", "max_tokens": 100000, "messages": [{"role": "user", "content": "Hi"}]}).encode())
    sent = json.loads(exchange.first[1].body)
    assert sent["max_tokens"] == 64000
    sim_anthropic.validate(sent)
    with pytest.raises(sim_anthropic.BadRequest, match="max_tokens: 100000 > 64000"):
        sim_anthropic.validate({**sent, "max_tokens": 100000})


def test_a_function_call_output_that_is_neither_text_nor_parts_is_a_400(gw):
    """Found by the hostile-bodies property test: ``output: true`` raised a TypeError (a 500)."""
    from extproc.errors import InvalidRequest
    body = {"model": "gpt-4o-mini", "input": [
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": True}]}
    with pytest.raises(InvalidRequest) as info:
        gw.request_body(_front("/v1/responses"), json.dumps(body).encode())
    assert (info.value.status, info.value.param, info.value.code) == (400, "input[1].output", "invalid_type")
    assert "got a boolean" in info.value.message
    body["input"][1]["output"] = [{"type": "input_text", "text": None}]
    with pytest.raises(InvalidRequest) as info:
        gw.request_body(_front("/v1/responses"), json.dumps(body).encode())
    assert (info.value.status, info.value.param, info.value.code) == (400, "input[1].output[0].text", "invalid_type")
