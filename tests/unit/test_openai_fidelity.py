"""Each kind of request the real Anthropic / Gemini APIs refuse, normalized by the translators.

The oracle is the strict simulators' validators (``extproc.simulators.anthropic.validate`` and
``gemini.to_prompt``), which encode each API's rule with its own error message: every test
shows the translated body passing the rule that the body sent before the fix broke (the
``*_refused_before`` tests keep the old bodies and show the rule still bites).
"""

from __future__ import annotations

import json

import pytest

from extproc import sse
from extproc.errors import InvalidRequest, UnsupportedFeature
from extproc.providers import unable
from extproc.providers.base import Target
from extproc.providers import openai_anthropic
from extproc.providers.openai_anthropic import AnthropicChatTranslator
from extproc.providers.openai_gemini import GeminiChatTranslator
from extproc.providers.openai_openai import OpenAIChatTranslator
from extproc.simulators import anthropic as sim_anthropic, gemini as sim_gemini

CLAUDE = Target(model="claude", upstream_model="claude-haiku-4-5", provider="anthropic", api="anthropic",
                base_path="/v1")
GEMINI = Target(model="gem", upstream_model="gemini-2.5-flash", provider="gemini", api="gemini", base_path="/v1beta")
GEMINI_3 = Target(model="gem3", upstream_model="gemini-3-flash-preview", provider="gemini", api="gemini",
                  base_path="/v1beta")
GPT = Target(model="gpt", upstream_model="gpt-4o-mini", provider="openai", api="openai", base_path="/v1")

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
FOREIGN_ID = "functions.get_weather:0"   # how Kimi / Moonshot-style providers number tool calls


def anthropic(body: dict) -> tuple[AnthropicChatTranslator, dict]:
    t = AnthropicChatTranslator(CLAUDE, created=1, response_id="chatcmpl-x")
    out = json.loads(t.request(body).body)
    sim_anthropic.validate(out)   # the real API's rules
    return t, out


def gemini(body: dict, target: Target = GEMINI) -> dict:
    t = GeminiChatTranslator(target, created=1, response_id="chatcmpl-x")
    out = json.loads(t.request(body).body)
    sim_gemini.to_prompt(target.upstream_model, out)
    return out


def tool_turns(call_id: str = "call_1", assistant_text: str | None = None) -> list[dict]:
    return [{"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": assistant_text, "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}]},
            {"role": "tool", "tool_call_id": call_id, "content": "sunny"}]


# -- whitespace and empty text ----------------------------------------------------------------

def test_whitespace_beside_tool_calls_is_left_out_for_anthropic():
    _, out = anthropic({"messages": tool_turns(assistant_text="\n\n"), "tools": [WEATHER]})
    assert [b["type"] for b in out["messages"][1]["content"]] == ["tool_use"]


def test_whitespace_only_system_is_omitted_for_anthropic():
    _, out = anthropic({"messages": [{"role": "system", "content": "   "}, {"role": "user", "content": "Hi"}]})
    assert "system" not in out


def test_whitespace_only_user_text_is_left_out_for_anthropic():
    _, out = anthropic({"messages": [{"role": "user", "content": [{"type": "text", "text": " "},
                                                                  {"type": "text", "text": "Hi"}]},
                                     {"role": "assistant", "content": "Hello."},
                                     {"role": "user", "content": " \n"}, {"role": "user", "content": "Bye"}]})
    assert out["messages"][0]["content"] == [{"type": "text", "text": "Hi"}]
    assert out["messages"][-1]["content"] == [{"type": "text", "text": "Bye"}]


def test_a_final_assistant_prefill_loses_its_trailing_whitespace_for_anthropic():
    _, out = anthropic({"messages": [{"role": "user", "content": "List three fruits."},
                                     {"role": "assistant", "content": "1. Apple\n2. "}]})
    assert out["messages"][-1] == {"role": "assistant", "content": [{"type": "text", "text": "1. Apple\n2."}]}
    # whitespace earlier in the conversation is kept: only the final assistant content is constrained
    _, out = anthropic({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b "},
                                     {"role": "user", "content": "c"}]})
    assert out["messages"][1]["content"][0]["text"] == "b "


def test_a_whitespace_only_prefill_is_left_out():
    _, out = anthropic({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "  "}]})
    assert [m["role"] for m in out["messages"]] == ["user"]


def test_whitespace_only_tool_result_is_sent_without_content():
    turns = tool_turns()
    turns[2]["content"] = "  "
    _, out = anthropic({"messages": turns})
    assert out["messages"][2]["content"] == [{"type": "tool_result", "tool_use_id": "call_1"}]


def test_empty_text_is_left_out_for_gemini():
    out = gemini({"messages": [{"role": "system", "content": ""}, {"role": "user", "content": ""},
                               {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "text", "text": "Hi"}]}]})
    assert "systemInstruction" not in out
    assert out["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]}]


def test_the_old_bodies_are_refused_by_the_rules():
    """What the translators sent before: the simulators' validators refuse each (so the tests above bite)."""
    old_anthropic = [
        {"messages": [{"role": "user", "content": "Hi"}], "system": "   "},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": [
            {"type": "text", "text": "\n\n"}, {"type": "tool_use", "id": "a", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a"}]}]},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "2. "}]},
        {"messages": [{"role": "user", "content": "Hi"}], "stop_sequences": ["\n"]},
        {"messages": []},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": [
            {"type": "tool_use", "id": FOREIGN_ID, "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": FOREIGN_ID}]}]},
    ]
    for body in old_anthropic:
        with pytest.raises(sim_anthropic.BadRequest):
            sim_anthropic.validate({"model": "claude-haiku-4-5", "max_tokens": 10, **body})
    for body in ({"contents": [{"role": "user", "parts": [{"text": ""}]}]},
                 {"contents": [{"role": "user", "parts": [{"text": "x"}]}], "systemInstruction": {"parts": [{"text": ""}]}},
                 {"contents": [{"role": "user", "parts": [{"text": "x"}]}], "generationConfig": {"candidateCount": 2**40}}):
        with pytest.raises(sim_gemini.BadRequest):
            sim_gemini.to_prompt("gemini-2.5-flash", body)


# -- tool call ids ----------------------------------------------------------------------------

def test_foreign_tool_ids_are_rewritten_on_both_sides_and_mapped_back():
    t, out = anthropic({"messages": tool_turns(FOREIGN_ID), "tools": [WEATHER]})
    sent_use = out["messages"][1]["content"][0]["id"]
    sent_result = out["messages"][2]["content"][0]["tool_use_id"]
    assert sent_use == sent_result != FOREIGN_ID
    assert openai_anthropic._ToolIds.decode(sent_use) == FOREIGN_ID
    # an answer naming the rewritten id (JSON and stream) shows the client its own id
    answer = {"content": [{"type": "tool_use", "id": sent_use, "name": "get_weather", "input": {}}],
              "stop_reason": "tool_use", "usage": {}}
    assert json.loads(t.response(json.dumps(answer).encode()))["choices"][0]["message"]["tool_calls"][0]["id"] \
        == FOREIGN_ID
    t.stream = True
    events = (b'event: message_start\ndata: {"type":"message_start","message":{"usage":{}}}\n\n'
              b'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":'
              b'{"type":"tool_use","id":"' + sent_use.encode() + b'","name":"get_weather","input":{}}}\n\n')
    chunks = [json.loads(e.data) for e in sse.SSEDecoder().feed(t.stream_chunk(events))]
    assert chunks[1]["choices"][0]["delta"]["tool_calls"][0]["id"] == FOREIGN_ID


def test_the_id_mapping_is_deterministic_and_collision_free():
    ids = [FOREIGN_ID, "functions.get_weather:1", "call_1", "call-1", "gwid_66", "call 1", "ид", ""]
    encoded = [openai_anthropic._ToolIds.encode(i) for i in ids]
    assert len(set(encoded)) == len(ids)                        # no two ids collide
    assert encoded == [openai_anthropic._ToolIds.encode(i) for i in ids]          # the same id maps the same way every time
    assert all(openai_anthropic._ToolIds.decode(e) == i for e, i in zip(encoded, ids))
    assert openai_anthropic._ToolIds.encode("call_1") == "call_1"                 # valid ids pass unchanged
    assert all(sim_anthropic._TOOL_ID.match(e) for e in encoded if e)


# -- stop sequences ---------------------------------------------------------------------------

def test_whitespace_stop_sequences_are_applied_by_the_gateway_json():
    t, out = anthropic({"messages": [{"role": "user", "content": "Hi"}], "stop": ["\n", "END"]})
    assert out["stop_sequences"] == ["END"]
    answer = {"content": [{"type": "text", "text": "First line\nSecond line"}], "stop_reason": "end_turn",
              "usage": {"input_tokens": 3, "output_tokens": 5}}
    choice = json.loads(t.response(json.dumps(answer).encode()))["choices"][0]
    assert choice["message"]["content"] == "First line" and choice["finish_reason"] == "stop"


def test_whitespace_stop_sequences_are_applied_by_the_gateway_stream():
    t, out = anthropic({"messages": [{"role": "user", "content": "Hi"}], "stop": "\n\n", "stream": True,
                        "max_tokens": 5})
    assert "stop_sequences" not in out
    pieces = ["Para one.", "\n", "\nPara two", " continues."]
    events = [{"type": "message_start", "message": {"usage": {"input_tokens": 1}}},
              {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}]
    events += [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}} for p in pieces]
    events += [{"type": "content_block_stop", "index": 0},
               {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 9}},
               {"type": "message_stop"}]
    raw = b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)
    out_bytes = b"".join(t.stream_chunk(raw[i:i + 7]) for i in range(0, len(raw), 7)) + t.stream_end()
    chunks = [json.loads(e.data) for e in sse.SSEDecoder().feed(out_bytes) if e.data != "[DONE]"]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text == "Para one."
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"][0]["finish_reason"]] == ["stop"]
    assert t.usage.output_tokens == 9   # what the provider generated (and bills) is still counted


# -- degenerate conversations and bounds --------------------------------------------------------

def test_only_system_messages_is_unsupported_so_the_planner_skips_the_provider():
    body = {"model": "m", "messages": [{"role": "system", "content": "You are a poet. Write a haiku."}]}
    assert "at least one user or assistant message" in unable(CLAUDE, body)
    assert "at least one user or assistant message" in unable(GEMINI, body)
    assert unable(GPT, body) is None   # OpenAI answers it: the plan keeps that provider


@pytest.mark.parametrize("n, anthropic_reason, gemini_reason", [
    (2, "n must be 1", None), (8, "n must be 1", None), (9, "n must be 1", "at most 8"),
    (2 ** 40, "n must be 1", "at most 8")])
def test_n_bounds_per_provider(n, anthropic_reason, gemini_reason):
    body = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "n": n}
    assert anthropic_reason in unable(CLAUDE, body)
    reason = unable(GEMINI, body)
    assert reason is None if gemini_reason is None else gemini_reason in reason
    assert unable(GEMINI_3, body) is not None   # Gemini 3: one candidate only
    if gemini_reason is None:
        assert gemini(body)["generationConfig"]["candidateCount"] == n


@pytest.mark.parametrize("n", [0, -1, 1.5, True, "2"])
def test_n_below_1_or_not_an_integer_is_never_forwarded(n):
    body = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "n": n}
    for target, cls in ((CLAUDE, AnthropicChatTranslator), (GEMINI, GeminiChatTranslator),
                        (GPT, OpenAIChatTranslator)):
        with pytest.raises(InvalidRequest):
            cls(target, created=1, response_id="x").request(body)


def test_explicit_null_optional_fields_mean_absent():
    body = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "max_completion_tokens": None,
            "max_tokens": 50, "temperature": None, "top_p": None, "n": None, "stop": None, "seed": None,
            "tools": None, "tool_choice": None, "response_format": None, "stream_options": None, "user": None,
            "logprobs": None, "top_logprobs": None, "presence_penalty": None, "frequency_penalty": None,
            "parallel_tool_calls": None, "logit_bias": None, "metadata": None, "modalities": None, "audio": None}
    _, out = anthropic(body)
    assert out == {"model": "claude-haiku-4-5", "max_tokens": 50,
                   "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]}
    assert gemini(body) == {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}],
                            "generationConfig": {"maxOutputTokens": 50}}


def test_a_seed_beyond_int32_is_folded_for_gemini():
    assert gemini({"messages": [{"role": "user", "content": "Hi"}], "seed": 2**40 + 5})["generationConfig"]["seed"] == 5


# -- media ------------------------------------------------------------------------------------

def test_images_anthropic_cannot_read_are_unsupported():
    body = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}]}]}
    assert "JPEG, PNG, GIF and WebP" in unable(CLAUDE, body)


def test_web_images_are_unsupported_for_gemini_but_fine_for_anthropic():
    body = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]}]}
    assert "does not fetch image URLs" in unable(GEMINI, body)
    assert unable(CLAUDE, body) is None
    _, out = anthropic(body)
    assert out["messages"][0]["content"][1]["source"] == {"type": "url", "url": "https://example.com/cat.jpg"}


# -- streams ----------------------------------------------------------------------------------

def test_a_streamed_anthropic_tool_call_without_arguments_ends_as_empty_object():
    t, _ = anthropic({"messages": [{"role": "user", "content": "What time is it?"}], "stream": True,
                      "tools": [{"type": "function", "function": {"name": "get_time"}}]})
    events = [{"type": "message_start", "message": {"usage": {}}},
              {"type": "content_block_start", "index": 0, "content_block": {
                  "type": "tool_use", "id": "toolu_1", "name": "get_time", "input": {}}},
              {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": ""}},
              {"type": "content_block_stop", "index": 0},
              {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 3}},
              {"type": "message_stop"}]
    raw = b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)
    out = t.stream_chunk(raw) + t.stream_end()
    chunks = [json.loads(e.data) for e in sse.SSEDecoder().feed(out) if e.data != "[DONE]"]
    arguments = "".join(tc["function"].get("arguments", "") for c in chunks
                        for tc in c["choices"][0]["delta"].get("tool_calls") or [])
    assert json.loads(arguments) == {}


@pytest.mark.parametrize("include_usage", [False, True])
def test_stream_chunks_have_openai_shape(include_usage):
    """Every translated chunk has the keys an OpenAI chunk has, and the first delta OpenAI's role delta."""
    openai_chunk_keys = {"id", "object", "created", "model", "choices"} | ({"usage"} if include_usage else set())
    openai_choice_keys = {"index", "delta", "logprobs", "finish_reason"}
    options = {"stream_options": {"include_usage": include_usage}}
    a, _ = anthropic({"messages": [{"role": "user", "content": "Hi"}], "stream": True, **options})
    anthropic_events = [{"type": "message_start", "message": {"usage": {}}},
                        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
                        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
                        {"type": "content_block_stop", "index": 0},
                        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {}},
                        {"type": "message_stop"}]
    a_out = a.stream_chunk(b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode()
                                    for e in anthropic_events)) + a.stream_end()
    g = GeminiChatTranslator(GEMINI, created=1, response_id="chatcmpl-x")
    g.request({"messages": [{"role": "user", "content": "Hi"}], "stream": True, **options})
    g_event = {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi"}]}, "finishReason": "STOP",
                               "index": 0}], "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1}}
    g_out = g.stream_chunk(b"data: " + json.dumps(g_event).encode() + b"\r\n\r\n") + g.stream_end()
    for out in (a_out, g_out):
        chunks = [json.loads(e.data) for e in sse.SSEDecoder().feed(out) if e.data != "[DONE]"]
        if include_usage:   # the final usage chunk: no choices, a usage object, as OpenAI sends it
            final = chunks.pop()
            assert final["choices"] == [] and final["usage"]["total_tokens"] >= 0
            assert all(c["usage"] is None for c in chunks)
        assert chunks and all(set(c) == openai_chunk_keys for c in chunks)
        assert all(set(c["choices"][0]) == openai_choice_keys for c in chunks)
        assert all(c["object"] == "chat.completion.chunk" for c in chunks)
        assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
        assert chunks[-1]["choices"][0]["delta"] == {} and chunks[-1]["choices"][0]["finish_reason"] == "stop"


# -- structured outputs ---------------------------------------------------------------------------

STRICT = {"type": "json_schema", "json_schema": {"name": "city", "strict": True, "schema": {
    "type": "object", "additionalProperties": False, "required": ["city"], "properties": {"city": {"type": "string"}}}}}


def test_json_schema_uses_anthropic_structured_outputs_where_the_model_has_them():
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import vendor_specs as vs

    target = Target(model="s", upstream_model="claude-sonnet-4-6", provider="anthropic", api="anthropic",
                    base_path="/v1")
    t = AnthropicChatTranslator(target, created=1, response_id="x")
    out = json.loads(t.request({"messages": [{"role": "user", "content": "Where?"}], "response_format": STRICT}).body)
    assert out["output_config"] == {"format": {"type": "json_schema", "schema": STRICT["json_schema"]["schema"]}}
    assert "system" not in out
    sim_anthropic.validate(out)
    vs.validate_request("anthropic", "messages_post", out)
    # a model without structured outputs, or a schema with an open object: the schema goes in the prompt
    plain = Target(model="p", upstream_model="claude-haiku-4-5", provider="anthropic", api="anthropic",
                   options={"structured_outputs": False})
    old = json.loads(AnthropicChatTranslator(plain, created=1, response_id="x").request(
        {"messages": [{"role": "user", "content": "Where?"}], "response_format": STRICT}).body)
    assert "output_config" not in old and "JSON Schema:" in old["system"]
    sim_anthropic.validate(old)
    open_schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    out = json.loads(AnthropicChatTranslator(target, created=1, response_id="x").request(
        {"messages": [{"role": "user", "content": "Where?"}], "response_format": open_schema}).body)
    assert "output_config" not in out and "JSON Schema:" in out["system"]


CONSTRAINED = {"type": "json_schema", "json_schema": {"name": "person", "strict": True, "schema": {
    "type": "object", "additionalProperties": False, "required": ["age", "tags", "name", "zip"], "properties": {
        "age": {"type": "integer", "minimum": 18, "maximum": 150, "description": "Age in years"},
        "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 3},
        "name": {"type": "string", "minLength": 3, "maxLength": 20},
        "zip": {"type": "string", "pattern": "^[0-9]{5}$"}}}}}


def test_claude_structured_outputs_move_refused_keywords_into_descriptions():
    """Anthropic answers 400 to minimum/maximum/minLength/maxLength/maxItems and minItems > 1
    (the simulator says so as the API does); the translator moves them into the description, as
    Anthropic's SDK does, and keeps what the grammar takes (a simple pattern)."""
    with pytest.raises(sim_anthropic.BadRequest, match="For 'integer' type, property 'minimum' is not supported"):
        sim_anthropic.validate({"model": "claude-haiku-4-5", "max_tokens": 10,
                                "messages": [{"role": "user", "content": "Who?"}],
                                "output_config": {"format": {"type": "json_schema",
                                                             "schema": CONSTRAINED["json_schema"]["schema"]}}})
    _, out = anthropic({"messages": [{"role": "user", "content": "Who?"}], "response_format": CONSTRAINED})
    props = out["output_config"]["format"]["schema"]["properties"]
    assert props["age"] == {"type": "integer", "description": 'Age in years\n\n{"minimum": 18, "maximum": 150}'}
    assert props["tags"]["description"] == '{"maxItems": 3, "minItems": 2}' and "minItems" not in props["tags"]
    assert props["name"]["description"] == '{"minLength": 3, "maxLength": 20}' and "maxLength" not in props["name"]
    assert props["zip"] == {"type": "string", "pattern": "^[0-9]{5}$"}
    sim_anthropic.validate(out)
    assert CONSTRAINED["json_schema"]["schema"]["properties"]["age"]["minimum"] == 18   # the input is not changed


def test_claude_is_unable_for_a_recursive_structured_output_schema():
    """Anthropic refuses recursive schemas ("Circular reference detected ..."): there is no way to
    express one, so the translator refuses (422) and the planner takes another candidate."""
    tree = {"type": "json_schema", "json_schema": {"name": "tree", "strict": True, "schema": {
        "$defs": {"Node": {"type": "object", "additionalProperties": False, "required": ["kids"],
                           "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/Node"}}}}},
        "$ref": "#/$defs/Node"}}}
    with pytest.raises(sim_anthropic.BadRequest, match="Circular reference detected in schema definitions: Node -> Node"):
        sim_anthropic.validate({"model": "claude-haiku-4-5", "max_tokens": 10,
                                "messages": [{"role": "user", "content": "Tree?"}],
                                "output_config": {"format": {"type": "json_schema",
                                                             "schema": tree["json_schema"]["schema"]}}})
    body = {"model": "claude", "messages": [{"role": "user", "content": "Tree?"}], "response_format": tree}
    with pytest.raises(UnsupportedFeature, match="recursive schemas") as info:
        anthropic(body)
    assert info.value.param == "response_format"
    assert "recursive" in unable(CLAUDE, body, "chat")


def test_temperature_and_top_p_newer_claude_models_take_only_one():
    body = {"messages": [{"role": "user", "content": "Hi"}], "temperature": 0.3, "top_p": 0.9}
    _, out = anthropic(body)   # claude-haiku-4-5
    assert out["temperature"] == 0.3 and "top_p" not in out
    with pytest.raises(sim_anthropic.BadRequest, match="cannot both be specified"):
        sim_anthropic.validate({"model": "claude-haiku-4-5", "max_tokens": 9, "temperature": 0.3, "top_p": 0.9,
                                "messages": [{"role": "user", "content": "Hi"}]})
    # a pre-4.5 name (all retired now): the translator still knows their rule  # catalog: keep
    older = Target(model="s4", upstream_model="claude-sonnet-4-20250514", provider="anthropic", api="anthropic")  # catalog: keep
    out = json.loads(AnthropicChatTranslator(older, created=1, response_id="x").request(body).body)
    assert out["top_p"] == 0.9 and out["temperature"] == 0.3   # the older models take both
    assert "top_p" in json.loads(AnthropicChatTranslator(CLAUDE, created=1, response_id="x").request(
        {**body, "temperature": None}).body)


def test_max_tokens_above_the_model_limit_is_clamped():
    _, out = anthropic({"messages": [{"role": "user", "content": "Hi"}], "max_completion_tokens": 100000})
    assert out["max_tokens"] == 64000   # claude-haiku-4-5's limit; the simulator refuses 100000
    custom = Target(model="c", upstream_model="claude-haiku-4-5", provider="anthropic", api="anthropic",
                    options={"max_output_tokens": 1000})
    out = json.loads(AnthropicChatTranslator(custom, created=1, response_id="x").request(
        {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 5000}).body)
    assert out["max_tokens"] == 1000


def test_gemini_3_function_call_history_carries_the_documented_signature_stand_in():
    body = {"messages": tool_turns("call_1") + [{"role": "user", "content": "And tomorrow?"}], "tools": [WEATHER]}
    old_shape = gemini(body, GEMINI)   # Gemini 2.5 needs none
    assert all("thoughtSignature" not in p for c in old_shape["contents"] for p in c["parts"])
    tool_turn = {"messages": tool_turns("call_1"), "tools": [WEATHER]}
    with pytest.raises(sim_gemini.BadRequest, match="missing a thought_signature"):
        sim_gemini.to_prompt("gemini-3-flash-preview", gemini(tool_turn, GEMINI))
    out = gemini(tool_turn, GEMINI_3)   # validated by the simulator's Gemini 3 rule
    call_part = out["contents"][1]["parts"][0]
    assert call_part["thoughtSignature"] == "skip_thought_signature_validator" and "functionCall" in call_part


def test_an_untyped_tool_schema_gets_type_object_for_anthropic():
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"properties": {"q": {"type": "string"}}}}}
    _, out = anthropic({"messages": [{"role": "user", "content": "Hi"}], "tools": [tool]})
    assert out["tools"][0]["input_schema"] == {"type": "object", "properties": {"q": {"type": "string"}}}


def test_more_embedding_inputs_than_gemini_batches_is_unsupported():
    target = Target(model="e", upstream_model="gemini-embedding-001", provider="gemini", api="gemini",
                    base_path="/v1beta")
    assert "at most 100" in unable(target, {"model": "e", "input": ["x"] * 101}, endpoint="embeddings")
    assert unable(target, {"model": "e", "input": ["x"] * 100}, endpoint="embeddings") is None


# -- the catalog ----------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["config/routing.yaml", "k8s/base/routing.yaml", "bench/routing.yaml", None])
def test_the_simulators_serve_the_ids_the_shipped_configs_name(path):
    """Every upstream id a shipped config (and the seed catalog, path None) names is one the real API
    still serves: a retired id in a config fails here, as the simulators answer it 404."""
    from pathlib import Path

    from extproc import config
    from extproc.simulators import openai as sim_openai

    cfg = (config.load(Path(__file__).resolve().parents[2] / path) if path
           else config.parse({"routing_rules": {"c": {"primary": "gpt-3.5-turbo", "fallback": "claude-opus"}}}))
    named = {(m.provider.name, m.provider.api, m.upstream_model) for m in cfg.models.values()}
    for name, api, model in named:
        if api == "anthropic":
            assert model in sim_anthropic.MODELS and model not in sim_anthropic.RETIRED, model
        elif api == "gemini":
            assert model in sim_gemini.MODELS and model not in sim_gemini.RETIRED, model
        else:
            assert sim_openai.serves(name, model), model


# -- issue 10, what remained: OpenAI's per-model rules, output limits, logprobs, context windows -------

from extproc.simulators import openai as sim_openai   # noqa: E402


def openai_sent(body: dict, target: Target = GPT) -> dict:
    """The translated body, checked by the OpenAI simulator's per-model rules (the real API's)."""
    out = json.loads(OpenAIChatTranslator(target, created=1, response_id="chatcmpl-x").request(body).body)
    sim_openai.check_openai_model(out, target.upstream_model)
    return out


USER = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("extra, rule", [
    ({"max_tokens": 10 ** 9}, "max_tokens is too large: 1000000000"),
    ({"max_completion_tokens": 20000}, "max_completion_tokens is too large: 20000"),
    ({"reasoning_effort": "high"}, "Unrecognized request argument supplied: reasoning_effort"),
    ({"verbosity": "low"}, "Unsupported value: 'verbosity' does not support 'low' with this model"),
])
def test_openai_bodies_are_made_valid_where_the_answer_stays_the_same(extra, rule):
    old = {"model": "gpt-4o-mini", "messages": USER, **extra}
    with pytest.raises(sim_openai._Fail, match=rule):       # what the gateway used to send
        sim_openai.check_openai_model(old, "gpt-4o-mini")
    openai_sent({"model": "gpt", "messages": USER, **extra})


@pytest.mark.parametrize("extra, param", [({"top_k": 40}, "top_k"), ({"web_search_options": {}}, "web_search_options"),
                                          ({"thinking": {"type": "enabled"}}, "thinking")])
def test_what_openai_refuses_and_no_rewrite_keeps_makes_openai_unable(extra, param):
    body = {"model": "gpt", "messages": USER, **extra}
    with pytest.raises(sim_openai._Fail):
        sim_openai.check_openai_model({**body, "model": "gpt-4o-mini"}, "gpt-4o-mini")
    assert unable(GPT, body) is not None
    with pytest.raises(UnsupportedFeature) as info:
        openai_sent(body)
    assert info.value.param == param


def test_gemini_max_output_tokens_is_clamped_and_logprobs_make_it_unable():
    old = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generationConfig": {"maxOutputTokens": 10 ** 9}}
    with pytest.raises(sim_gemini.BadRequest, match="maxOutputTokens value of 1000000000"):
        sim_gemini.to_prompt("gemini-2.5-flash", old)
    assert gemini({"model": "gem", "messages": USER, "max_tokens": 10 ** 9})["generationConfig"] == {
        "maxOutputTokens": 65536}
    old = {**old, "generationConfig": {"responseLogprobs": True}}
    with pytest.raises(sim_gemini.BadRequest, match="Logprobs is not enabled for models/gemini-2.5-flash"):
        sim_gemini.to_prompt("gemini-2.5-flash", old)
    for extra in ({"logprobs": True}, {"logprobs": True, "top_logprobs": 3}, {"top_logprobs": 3}):
        assert "logprobs" in unable(GEMINI, {"model": "gem", "messages": USER, **extra})


def test_anthropic_is_unable_for_logprobs():
    for extra in ({"logprobs": True}, {"top_logprobs": 3}):
        assert "logprobs" in unable(CLAUDE, {"model": "claude", "messages": USER, **extra})


def test_verbosity_reaches_the_gpt_5_family():
    target = Target(model="g5", upstream_model="gpt-5-mini", provider="openai", api="openai", base_path="/v1")
    assert openai_sent({"model": "g5", "messages": USER, "verbosity": "low"}, target)["verbosity"] == "low"


PNG_1PX = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def test_simulators_refuse_image_data_that_is_not_base64_as_the_apis_do():
    bad = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is it?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,!!!"}}]}]}
    with pytest.raises(sim_openai._Fail, match="Invalid base64 image_url") as info:
        sim_openai.validate_chat(bad, "gpt-4o-mini")
    assert info.value.param == "messages[0].content[1].image_url.url"
    good = json.loads(json.dumps(bad).replace("!!!", PNG_1PX))
    sim_openai.validate_chat(good, "gpt-4o-mini")
    contents = [{"role": "user", "parts": [{"text": "What is it?"}, {"inlineData": {"mimeType": "image/png", "data": "!!!"}}]}]
    with pytest.raises(sim_gemini.BadRequest, match=r"Invalid value at 'contents\[0\].parts\[1\].inline_data.data' "
                                                    r"\(TYPE_BYTES\), Base64 decoding failed"):
        sim_gemini.to_prompt("gemini-2.5-flash", {"contents": contents})
    contents[0]["parts"][1]["inlineData"]["data"] = PNG_1PX.rstrip("=").replace("+", "-")   # URL-safe, unpadded: taken
    sim_gemini.to_prompt("gemini-2.5-flash", {"contents": contents})


@pytest.mark.parametrize("extra, param", [
    ({"stream_options": {"include_usage": True}}, "stream_options"),
    ({"stream": False, "stream_options": {"include_usage": True}}, "stream_options"),
    ({"parallel_tool_calls": False}, "parallel_tool_calls"),
    ({"tool_choice": "auto"}, "tool_choice"),
])
def test_the_openai_simulator_refuses_fields_without_the_field_they_depend_on(extra, param):
    with pytest.raises(sim_openai._Fail, match="only allowed when") as info:
        sim_openai.validate_chat({"model": "gpt-4o-mini", "messages": USER, **extra}, "gpt-4o-mini")
    assert info.value.param == param


def test_the_openai_simulator_refuses_json_mode_without_the_word_json():
    body = {"model": "gpt-4o-mini", "messages": USER, "response_format": {"type": "json_object"}}
    assert "json" not in json.dumps(USER).lower()
    with pytest.raises(sim_openai._Fail, match="must contain the word 'json' in some form") as info:
        sim_openai.validate_chat(body, "gpt-4o-mini")
    assert info.value.param == "messages"
    sim_openai.validate_chat({**body, "messages": [{"role": "system", "content": "Reply in JSON."}, *USER]},
                             "gpt-4o-mini")
