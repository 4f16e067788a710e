"""OpenAI chat <-> Anthropic Messages translation: requests, responses, errors, streams."""

from __future__ import annotations

import copy
import json

import pytest

from extproc import sse
from extproc.errors import InvalidRequest, UnsupportedFeature
from extproc.providers.base import Target, Usage
from extproc.providers.openai_anthropic import AnthropicChatTranslator

TARGET = Target(model="claude", upstream_model="claude-haiku-4-5-20251001", provider="anthropic",
                api="anthropic", base_path="/v1")


def make(target: Target = TARGET) -> AnthropicChatTranslator:
    return AnthropicChatTranslator(target, created=1700000000, response_id="chatcmpl-abc123")


def translate(body: dict, target: Target = TARGET) -> dict:
    return json.loads(make(target).request(body).body)


def user(text="hi"):
    return {"role": "user", "content": text}


# -- request ----------------------------------------------------------------------------------

def test_request_path_headers_model_and_default_max_tokens():
    t = make()
    req = t.request({"model": "claude", "messages": [user("hello")]})
    assert req.path == "/v1/messages"
    assert req.headers == {"anthropic-version": "2023-06-01", "content-type": "application/json"}
    body = json.loads(req.body)
    assert body == {"model": "claude-haiku-4-5-20251001", "max_tokens": 4096,
                    "messages": [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]}
    assert t.stream is False and t.include_usage is False


def test_default_max_tokens_from_options_and_explicit_values():
    target = Target("m", "claude-x", "anthropic", "anthropic", "/v1", {"default_max_tokens": 777})
    assert translate({"messages": [user()]}, target)["max_tokens"] == 777
    assert translate({"messages": [user()], "max_tokens": 12})["max_tokens"] == 12
    # max_completion_tokens is the current name and wins over the deprecated one
    assert translate({"messages": [user()], "max_tokens": 12, "max_completion_tokens": 34})["max_tokens"] == 34
    with pytest.raises(InvalidRequest):
        translate({"messages": [user()], "max_completion_tokens": 0})


def test_input_is_not_mutated():
    body = {"model": "claude", "stream": True, "stream_options": {"include_usage": True},
            "messages": [{"role": "system", "content": "be brief"}, user("a"), user("b"),
                         {"role": "assistant", "content": None, "tool_calls": [
                             {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                         {"role": "tool", "tool_call_id": "call_1", "content": "ok"}],
            "tools": [{"type": "function", "function": {"name": "f"}}],
            "response_format": {"type": "json_object"}, "stop": "END"}
    before = copy.deepcopy(body)
    make().request(body)
    assert body == before


def test_system_and_developer_become_top_level_system():
    body = translate({"messages": [
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Use metric"}, {"type": "text", "text": "units."}]},
        user("q"),
    ]})
    assert body["system"] == "You are terse.\n\nUse metric\nunits."
    assert [m["role"] for m in body["messages"]] == ["user"]


def test_consecutive_same_role_turns_merge():
    body = translate({"messages": [user("a"), user("b"), {"role": "assistant", "content": "c"}, user("d")]})
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "c"}]},
        {"role": "user", "content": [{"type": "text", "text": "d"}]},
    ]


def test_image_parts_data_url_and_http_url():
    body = translate({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
    ]}]})
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "what is this?"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
    ]


def test_bad_image_url_is_400_and_audio_input_is_422():
    with pytest.raises(InvalidRequest):
        translate({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png,notbase64"}}]}]})
    with pytest.raises(UnsupportedFeature):
        translate({"messages": [{"role": "user", "content": [
            {"type": "input_audio", "input_audio": {"data": "AAA=", "format": "wav"}}]}]})


def test_pdf_file_part_becomes_document():
    body = translate({"messages": [{"role": "user", "content": [
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}}]}]})
    assert body["messages"][0]["content"] == [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="}}]
    with pytest.raises(UnsupportedFeature):
        translate({"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}]})


def test_tool_calls_and_tool_results():
    body = translate({"messages": [
        user("weather in Paris and Rome?"),
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}},
        ]},
        {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "21C"}]},
        user("thanks"),
    ]})
    assert body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "weather in Paris and Rome?"}]},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_2", "name": "get_weather", "input": {"city": "Rome"}},
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "18C"},
            {"type": "tool_result", "tool_use_id": "call_2", "content": "21C"},
            {"type": "text", "text": "thanks"},
        ]},
    ]


def test_assistant_with_only_tool_calls_has_no_text_block():
    body = translate({"messages": [user(), {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": ""}}]}]})
    assert body["messages"][1]["content"] == [{"type": "tool_use", "id": "c", "name": "f", "input": {}}]


def test_bad_tool_arguments_json_is_400():
    with pytest.raises(InvalidRequest) as exc:
        translate({"messages": [user(), {"role": "assistant", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]})
    assert exc.value.status == 400
    assert "arguments" in exc.value.param


def test_tools_and_default_schema():
    body = translate({"messages": [user()], "tools": [
        {"type": "function", "function": {"name": "get_weather", "description": "Weather now",
                                          "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                         "required": ["city"]}}},
        {"type": "function", "function": {"name": "ping"}},
    ]})
    assert body["tools"] == [
        {"name": "get_weather", "description": "Weather now",
         "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        {"name": "ping", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in body


@pytest.mark.parametrize("choice, expected", [
    ("auto", {"type": "auto"}),
    ("none", {"type": "none"}),
    ("required", {"type": "any"}),
    ({"type": "function", "function": {"name": "f"}}, {"type": "tool", "name": "f"}),
])
def test_tool_choice(choice, expected):
    tools = [{"type": "function", "function": {"name": "f"}}]
    assert translate({"messages": [user()], "tools": tools, "tool_choice": choice})["tool_choice"] == expected


def test_parallel_tool_calls_false_disables_parallel_use():
    tools = [{"type": "function", "function": {"name": "f"}}]
    body = translate({"messages": [user()], "tools": tools, "parallel_tool_calls": False})
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    body = translate({"messages": [user()], "tools": tools, "tool_choice": "required", "parallel_tool_calls": False})
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    body = translate({"messages": [user()], "tools": tools, "parallel_tool_calls": True})
    assert "tool_choice" not in body


def test_sampling_stop_stream_user():
    t = make()
    body = json.loads(t.request({"messages": [user()], "temperature": 0.3, "top_p": 0.9, "stop": "END",
                                 "stream": True, "stream_options": {"include_usage": True}, "user": "u-42"}).body)
    assert body["temperature"] == 0.3 and "top_p" not in body   # Claude Haiku 4.5 takes one of the two
    assert body["stop_sequences"] == ["END"]
    assert body["stream"] is True
    assert body["metadata"] == {"user_id": "u-42"}
    assert t.stream is True and t.include_usage is True
    assert translate({"messages": [user()], "stop": ["a", "b"]})["stop_sequences"] == ["a", "b"]


def test_temperature_above_one_is_422_with_clear_message():
    with pytest.raises(UnsupportedFeature) as exc:
        translate({"messages": [user()], "temperature": 1.5})
    assert exc.value.status == 422 and exc.value.param == "temperature"
    assert "0 to 1" in exc.value.message
    assert translate({"messages": [user()], "temperature": 1})["temperature"] == 1


def test_json_modes_are_emulated_in_system():
    body = translate({"messages": [{"role": "system", "content": "Be nice."}, user()],
                      "response_format": {"type": "json_object"}})
    assert body["system"].startswith("Be nice.\n\n")
    assert "JSON object" in body["system"]
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]}
    body = translate({"messages": [user()],
                      "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": schema}}})
    assert json.dumps(schema, sort_keys=True) in body["system"]
    assert "system" not in translate({"messages": [user()], "response_format": {"type": "text"}})


@pytest.mark.parametrize("extra, param", [
    ({"n": 2}, "n"),
    ({"logprobs": True}, "logprobs"),
    ({"top_logprobs": 3}, "top_logprobs"),
    ({"logit_bias": {"50256": -100}}, "logit_bias"),
    ({"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}}, "modalities"),
])
def test_unsupported_features_are_422(extra, param):
    with pytest.raises(UnsupportedFeature) as exc:
        translate({"messages": [user()], **extra})
    assert exc.value.status == 422
    assert exc.value.param == param


def test_best_effort_hints_are_dropped():
    body = translate({"messages": [user()], "n": 1, "seed": 7, "frequency_penalty": 0.5, "presence_penalty": 0.5,
                      "service_tier": "auto", "store": True, "metadata": {"k": "v"}, "reasoning_effort": "low",
                      "logprobs": False})
    assert set(body) == {"model", "max_tokens", "messages"}


# -- response ---------------------------------------------------------------------------------

def anthropic_message(content, stop_reason="end_turn", usage=None):
    return json.dumps({
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-haiku-4-5-20251001",
        "content": content, "stop_reason": stop_reason, "stop_sequence": None,
        "usage": usage or {"input_tokens": 10, "output_tokens": 5},
    }).encode()


def test_response_text():
    t = make()
    out = json.loads(t.response(anthropic_message([
        {"type": "thinking", "thinking": "hmm", "signature": "s"},
        {"type": "text", "text": "Hello "}, {"type": "text", "text": "there"}])))
    assert out == {
        "id": "chatcmpl-abc123", "object": "chat.completion", "created": 1700000000,
        "model": "claude-haiku-4-5-20251001",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there", "refusal": None,
                                             "annotations": []},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
                  "prompt_tokens_details": {"cached_tokens": 0}},
    }
    assert t.usage == Usage(input_tokens=10, output_tokens=5, cached_input_tokens=0)


def test_response_tool_calls_only():
    out = json.loads(make().response(anthropic_message([
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Zürich"}},
        {"type": "tool_use", "id": "toolu_2", "name": "noop", "input": {}},
    ], stop_reason="tool_use")))
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Zürich"}'}},
        {"id": "toolu_2", "type": "function", "function": {"name": "noop", "arguments": "{}"}},
    ]
    assert json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == {"city": "Zürich"}


@pytest.mark.parametrize("reason, finish", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("pause_turn", "stop"), ("max_tokens", "length"),
    ("tool_use", "tool_calls"), ("refusal", "content_filter"),
])
def test_finish_reasons(reason, finish):
    out = json.loads(make().response(anthropic_message([{"type": "text", "text": "x"}], stop_reason=reason)))
    assert out["choices"][0]["finish_reason"] == finish
    assert "tool_calls" not in out["choices"][0]["message"]


def test_usage_counts_cached_input_as_prompt_tokens():
    t = make()
    out = json.loads(t.response(anthropic_message([{"type": "text", "text": "x"}], usage={
        "input_tokens": 10, "output_tokens": 7, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20})))
    assert out["usage"] == {"prompt_tokens": 130, "completion_tokens": 7, "total_tokens": 137,
                            "prompt_tokens_details": {"cached_tokens": 100}}
    assert t.usage == Usage(input_tokens=130, output_tokens=7, cached_input_tokens=100, cache_write_tokens=20)


def test_cache_writes_are_billed_above_the_input_price_by_their_lifetime():
    # Anthropic bills a cache write at 1.25x the input price (5 minutes), 2x (1 hour): the ledger did at 1x
    from extproc.accounting import cost_usd
    from extproc.config import Price
    t = make()
    t.response(anthropic_message([{"type": "text", "text": "x"}], usage={
        "input_tokens": 10, "output_tokens": 7, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 1000,
        "cache_creation": {"ephemeral_5m_input_tokens": 600, "ephemeral_1h_input_tokens": 400}}))
    assert (t.usage.cache_write_tokens, t.usage.cache_write_1h_tokens) == (1000, 400)
    price = Price(input=3.0, output=15.0, cached_input=0.30)
    plain = (10 * 3.0 + 1000 * 3.0 + 100 * 0.30 + 7 * 15.0) / 1e6
    assert cost_usd(t.usage, price) == pytest.approx(plain + (600 * 0.25 + 400 * 1.0) * 3.0 / 1e6)


# -- errors -----------------------------------------------------------------------------------

def anthropic_error(type_, message):
    return json.dumps({"type": "error", "error": {"type": type_, "message": message}, "request_id": "req_1"}).encode()


def test_error_invalid_request_keeps_400():
    status, body = make().error(400, anthropic_error("invalid_request_error", "messages: bad"))
    assert status == 400
    assert json.loads(body) == {"error": {"message": "messages: bad", "type": "invalid_request_error",
                                          "param": None, "code": "upstream_invalid_request"}}


def test_error_rate_limit_429():
    status, body = make().error(429, anthropic_error("rate_limit_error", "slow down"))
    assert status == 429
    assert json.loads(body)["error"]["type"] == "rate_limit_error"
    assert json.loads(body)["error"]["code"] == "rate_limit_exceeded"   # as the gateway's own 429 says


def test_error_overloaded_529_becomes_503():
    status, body = make().error(529, anthropic_error("overloaded_error", "Overloaded"))
    assert status == 503
    err = json.loads(body)["error"]
    assert err["message"] == "Overloaded" and err["code"] == "service_unavailable"


def test_error_auth_becomes_502_and_non_json_body_is_tolerated():
    status, _ = make().error(401, anthropic_error("authentication_error", "invalid x-api-key"))
    assert status == 502
    status, body = make().error(502, b"<html>Bad Gateway</html>")
    assert status == 502
    assert "Bad Gateway" in json.loads(body)["error"]["message"]
    status, body = make().error(500, b"")
    assert json.loads(body)["error"]["message"] == "provider answered HTTP 500"


# -- stream -----------------------------------------------------------------------------------

def ev(kind: str, data: dict) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data}, ensure_ascii=False)}\n\n".encode()


def full_stream(text_pieces=("héllo ", "👋 world"), with_tool=True, stop_reason="tool_use") -> bytes:
    events = [
        ev("message_start", {"message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [],
                                          "model": "claude-haiku-4-5-20251001", "stop_reason": None,
                                          "stop_sequence": None,
                                          "usage": {"input_tokens": 25, "output_tokens": 1,
                                                    "cache_read_input_tokens": 5,
                                                    "cache_creation_input_tokens": 0}}}),
        ev("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        ev("ping", {}),
    ]
    events += [ev("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": p}})
               for p in text_pieces]
    events.append(ev("content_block_stop", {"index": 0}))
    if with_tool:
        events += [
            ev("content_block_start", {"index": 1, "content_block": {"type": "tool_use", "id": "toolu_A",
                                                                      "name": "get_weather", "input": {}}}),
            ev("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}}),
            ev("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"city":'}}),
            ev("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": ' "Köln"}'}}),
            ev("content_block_stop", {"index": 1}),
            ev("content_block_start", {"index": 2, "content_block": {"type": "tool_use", "id": "toolu_B",
                                                                      "name": "get_time", "input": {}}}),
            ev("content_block_delta", {"index": 2, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
            ev("content_block_stop", {"index": 2}),
        ]
    events += [
        ev("message_delta", {"delta": {"stop_reason": stop_reason, "stop_sequence": None},
                             "usage": {"output_tokens": 42}}),
        ev("message_stop", {}),
    ]
    return b"".join(events)


def parse_sse(data: bytes) -> list:
    """OpenAI SSE bytes -> list of parsed payloads ('[DONE]' kept as a string)."""
    events = sse.SSEDecoder().feed(data)
    return [e.data if e.data == "[DONE]" else json.loads(e.data) for e in events]


def run_stream(raw: bytes, *, include_usage=False, step: int | None = None) -> tuple[AnthropicChatTranslator, bytes]:
    t = make()
    t.request({"messages": [user()], "stream": True, "stream_options": {"include_usage": include_usage}})
    out = bytearray()
    if step is None:
        out += t.stream_chunk(raw)
    else:
        for i in range(0, len(raw), step):
            out += t.stream_chunk(raw[i:i + step])
    out += t.stream_end()
    return t, bytes(out)


EXPECTED_DELTAS = [
    ({"role": "assistant", "content": "", "refusal": None}, None),
    ({"content": "héllo "}, None),
    ({"content": "👋 world"}, None),
    ({"tool_calls": [{"index": 0, "id": "toolu_A", "type": "function",
                      "function": {"name": "get_weather", "arguments": ""}}]}, None),
    ({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}, None),
    ({"tool_calls": [{"index": 0, "function": {"arguments": ' "Köln"}'}}]}, None),
    ({"tool_calls": [{"index": 1, "id": "toolu_B", "type": "function",
                      "function": {"name": "get_time", "arguments": ""}}]}, None),
    ({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}, None),
    ({}, "tool_calls"),
]


@pytest.mark.parametrize("step", [None, 1, 7])
def test_stream_full_sequence(step):
    t, out = run_stream(full_stream(), step=step)
    events = parse_sse(out)
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert [(c["choices"][0]["delta"], c["choices"][0]["finish_reason"]) for c in chunks] == EXPECTED_DELTAS
    for c in chunks:
        assert c["id"] == "chatcmpl-abc123"
        assert c["object"] == "chat.completion.chunk"
        assert c["created"] == 1700000000
        assert c["model"] == "claude-haiku-4-5-20251001"
        assert c["choices"][0]["index"] == 0 and c["choices"][0]["logprobs"] is None
        assert "usage" not in c
    args = "".join(c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                   for c in chunks if c["choices"][0]["delta"].get("tool_calls")
                   and c["choices"][0]["delta"]["tool_calls"][0]["index"] == 0)
    assert json.loads(args) == {"city": "Köln"}
    assert t.usage == Usage(input_tokens=30, output_tokens=42, cached_input_tokens=5)


def test_stream_split_inside_a_utf8_character():
    raw = full_stream(with_tool=False, stop_reason="end_turn")
    cut = raw.index("👋".encode()) + 2  # the emoji is 4 bytes: split it in the middle
    t = make()
    t.request({"messages": [user()], "stream": True})
    first = t.stream_chunk(raw[:cut])
    out = first + t.stream_chunk(raw[cut:]) + t.stream_end()
    # What was sent before the cut must be whole events that stand on their own.
    assert [c["choices"][0]["delta"] for c in parse_sse(first)] == [{"role": "assistant", "content": "", "refusal": None},
                                                                     {"content": "héllo "}]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in parse_sse(out) if c != "[DONE]")
    assert text == "héllo 👋 world"
    assert "\ufffd" not in out.decode()


def test_stream_is_incremental_not_buffered():
    raw = full_stream(with_tool=False, stop_reason="end_turn")
    t = make()
    t.request({"messages": [user()], "stream": True})
    start_end = raw.index(b"event: content_block_start")
    assert parse_sse(t.stream_chunk(raw[:start_end]))[0]["choices"][0]["delta"] == {"role": "assistant", "refusal": None,
                                                                                    "content": ""}
    first_delta_end = raw.index(b"\n\n", raw.index(b"text_delta")) + 2
    assert [c["choices"][0]["delta"] for c in parse_sse(t.stream_chunk(raw[start_end:first_delta_end]))] == \
        [{"content": "héllo "}]


def test_stream_usage_chunk_only_with_include_usage():
    t, out = run_stream(full_stream(), include_usage=True)
    events = parse_sse(out)
    assert events[-1] == "[DONE]"
    usage_chunk = events[-2]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"] == {"prompt_tokens": 30, "completion_tokens": 42, "total_tokens": 72,
                                    "prompt_tokens_details": {"cached_tokens": 5}}
    assert usage_chunk["id"] == "chatcmpl-abc123" and usage_chunk["object"] == "chat.completion.chunk"
    for c in events[:-2]:
        assert c["usage"] is None and len(c["choices"]) == 1
    _, out = run_stream(full_stream(), include_usage=False)
    assert not any(isinstance(e, dict) and e.get("usage") for e in parse_sse(out))
    assert all(e == "[DONE]" or e["choices"] for e in parse_sse(out))


def test_stream_error_event_ends_without_done():
    raw = full_stream(with_tool=False)
    cut = raw.index(b"event: content_block_stop")
    raw = raw[:cut] + ev("error", {"error": {"type": "overloaded_error", "message": "Overloaded"}})
    t, out = run_stream(raw)
    events = parse_sse(out)
    assert "[DONE]" not in events
    # As Anthropic's 529 before a stream would read (errors.upstream_error), not its own type.
    assert events[-1] == {"error": {"message": "Overloaded", "type": "server_error", "param": None,
                                    "code": "service_unavailable"}}
    assert events[1]["choices"][0]["delta"] == {"content": "héllo "}
    assert t.stream_chunk(ev("message_stop", {})) == b""  # nothing after the error


def test_stream_cut_off_early_ends_with_error():
    raw = full_stream(with_tool=False)
    t, out = run_stream(raw[:raw.index(b"event: message_delta")])
    events = parse_sse(out)
    assert "[DONE]" not in events
    assert events[-1]["error"]["type"] == "upstream_error"
    assert events[-1]["error"]["message"] == "provider stream ended early"
    assert t.usage == Usage(input_tokens=30, output_tokens=1, cached_input_tokens=5)  # what was known so far


@pytest.mark.parametrize("reason, finish", [("end_turn", "stop"), ("max_tokens", "length"),
                                            ("refusal", "content_filter")])
def test_stream_finish_reasons(reason, finish):
    _, out = run_stream(full_stream(with_tool=False, stop_reason=reason))
    assert parse_sse(out)[-2]["choices"][0]["finish_reason"] == finish


def test_stream_ignores_thinking_blocks_and_crlf_framing():
    raw = (ev("message_start", {"message": {"model": "claude-x", "usage": {"input_tokens": 3, "output_tokens": 1}}})
           + ev("content_block_start", {"index": 0, "content_block": {"type": "thinking", "thinking": ""}})
           + ev("content_block_delta", {"index": 0, "delta": {"type": "thinking_delta", "thinking": "secret"}})
           + ev("content_block_delta", {"index": 0, "delta": {"type": "signature_delta", "signature": "sig"}})
           + ev("content_block_stop", {"index": 0})
           + ev("content_block_start", {"index": 1, "content_block": {"type": "text", "text": ""}})
           + ev("content_block_delta", {"index": 1, "delta": {"type": "text_delta", "text": "42"}})
           + ev("message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}})
           + ev("message_stop", {})).replace(b"\n", b"\r\n")
    _, out = run_stream(raw)
    events = parse_sse(out)
    assert b"secret" not in out and b"sig" not in out
    assert [e["choices"][0]["delta"] for e in events[:-1]] == [{"role": "assistant", "content": "", "refusal": None},
                                                               {"content": "42"}, {}]
    assert events[0]["model"] == "claude-x"
