"""OpenAI chat / embeddings <-> Gemini generateContent / batchEmbedContents: requests, answers, errors, streams."""

from __future__ import annotations

import dataclasses

import base64
import copy
import json
import math
import struct

import pytest

from extproc.errors import InvalidRequest, UnsupportedFeature
from extproc.providers.base import Target, Usage
from extproc.providers.openai_gemini import GeminiChatTranslator, GeminiEmbeddingsTranslator

TARGET = Target(model="gem", upstream_model="gemini-2.5-flash", provider="google", api="gemini",
                base_path="/v1beta")
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
                   "additionalProperties": False}}}
CLOCK = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}


def make(target: Target = TARGET, response_id: str = "chatcmpl-abc", **changes) -> GeminiChatTranslator:
    if changes:
        target = dataclasses.replace(target, **changes)
    return GeminiChatTranslator(target, created=1700000000, response_id=response_id)


def translate(body: dict) -> dict:
    return json.loads(make().request(body).body)


def chat(**extra) -> dict:
    return {"model": "gem", "messages": [{"role": "user", "content": "Hello"}], **extra}


def events(raw: bytes) -> list:
    """OpenAI SSE bytes -> the data payloads, JSON-decoded (except [DONE])."""
    text = raw.decode()
    assert text.endswith("\n\n") or not text, text
    out = []
    for block in filter(None, text.split("\n\n")):
        assert block.startswith("data: "), block
        data = block[len("data: "):]
        out.append(data if data == "[DONE]" else json.loads(data))
    return out


# ---------------------------------------------------------------------------------------------
# Requests


def test_path_headers_and_stream_flags():
    t = make()
    up = t.request(chat())
    assert up.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert up.headers == {"content-type": "application/json"}
    assert (t.stream, t.include_usage) == (False, False)

    t = make()
    up = t.request(chat(stream=True, stream_options={"include_usage": True}))
    assert up.path == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert (t.stream, t.include_usage) == (True, True)
    assert "stream" not in json.loads(up.body) and "stream_options" not in json.loads(up.body)

    t = make()
    t.request(chat(stream=True))
    assert (t.stream, t.include_usage) == (True, False)


def test_roles_system_and_merging():
    body = translate({"model": "gem", "messages": [
        {"role": "system", "content": "Be terse."},
        {"role": "user", "content": "a"},
        {"role": "developer", "content": [{"type": "text", "text": "English only."}]},
        {"role": "user", "content": [{"type": "text", "text": "b"}]},
        {"role": "assistant", "content": "c"},
        {"role": "assistant", "content": "d"},
        {"role": "user", "content": "e"},
    ]})
    assert body["systemInstruction"] == {"parts": [{"text": "Be terse."}, {"text": "English only."}]}
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "a"}, {"text": "b"}]},
        {"role": "model", "parts": [{"text": "c"}, {"text": "d"}]},
        {"role": "user", "parts": [{"text": "e"}]},
    ]
    assert "generationConfig" not in body and "tools" not in body


def test_images_inline_and_by_files_api_uri():
    files = "https://files.example/v1beta/files/abc-123"
    body = translate(chat(messages=[{"role": "user", "content": [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": files, "detail": "low"}},
    ]}]))
    assert body["contents"][0]["parts"] == [
        {"text": "look"},
        {"inlineData": {"mimeType": "image/png", "data": PNG}},
        {"fileData": {"mimeType": "image/jpeg", "fileUri": files}},
    ]


def test_web_image_urls_are_unsupported_as_gemini_does_not_fetch_them():
    """Gemini reads fileData only from Files API and YouTube URIs (its simulator answers 400 otherwise)."""
    for url in ("https://example.com/a/cat.png?x=1", "http://example.com/render"):
        with pytest.raises(UnsupportedFeature, match="does not fetch image URLs"):
            make().request(chat(messages=[{"role": "user", "content": [
                {"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": url}}]}]))


def test_file_part_with_data_url_is_inline_data():
    body = translate(chat(messages=[{"role": "user", "content": [
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERg=="}}]}]))
    assert body["contents"][0]["parts"] == [{"inlineData": {"mimeType": "application/pdf", "data": "JVBERg=="}}]


def test_tool_round_trip():
    request = {"model": "gem", "tools": [WEATHER, CLOCK], "messages": [
        {"role": "user", "content": "Weather in Paris and the time?"},
        {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
        {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "12:00"}]},
        {"role": "user", "content": "Thanks"},
    ]}
    original = copy.deepcopy(request)
    body = translate(request)
    assert request == original, "the translator edited the client's request"
    assert body["contents"] == [
        {"role": "user", "parts": [{"text": "Weather in Paris and the time?"}]},
        {"role": "model", "parts": [{"text": "Checking."},
                                    {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                                    {"functionCall": {"name": "get_time", "args": {}}}]},
        {"role": "user", "parts": [
            {"functionResponse": {"name": "get_weather", "response": {"content": {"temp": 21}}}},
            {"functionResponse": {"name": "get_time", "response": {"content": "12:00"}}},
            {"text": "Thanks"}]},
    ]
    assert body["tools"] == [{"functionDeclarations": [
        {"name": "get_weather", "description": "Weather for a city.",
         "parametersJsonSchema": WEATHER["function"]["parameters"]},
        {"name": "get_time", "description": "", "parametersJsonSchema": {"type": "object", "properties": {}}},
    ]}]


def test_tool_result_for_unknown_call_is_invalid():
    with pytest.raises(InvalidRequest):
        translate(chat(messages=[{"role": "user", "content": "x"},
                                 {"role": "tool", "tool_call_id": "nope", "content": "1"}]))


@pytest.mark.parametrize("choice, expected", [
    ("auto", {"mode": "AUTO"}),
    ("none", {"mode": "NONE"}),
    ("required", {"mode": "ANY"}),
    ({"type": "function", "function": {"name": "get_time"}}, {"mode": "ANY", "allowedFunctionNames": ["get_time"]}),
])
def test_tool_choice(choice, expected):
    body = translate(chat(tools=[WEATHER, CLOCK], tool_choice=choice))
    assert body["toolConfig"] == {"functionCallingConfig": expected}
    assert [d["name"] for d in body["tools"][0]["functionDeclarations"]] == ["get_weather", "get_time"]


def test_allowed_tools_declares_only_those():
    body = translate(chat(tools=[WEATHER, CLOCK], tool_choice={"type": "allowed_tools", "allowed_tools": {
        "mode": "required", "tools": [{"type": "function", "function": {"name": "get_time"}}]}}))
    assert [d["name"] for d in body["tools"][0]["functionDeclarations"]] == ["get_time"]
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


def test_generation_config():
    body = translate(chat(temperature=0.3, top_p=0.8, n=2, seed=7, presence_penalty=0.5, frequency_penalty=-0.5,
                          max_tokens=10, max_completion_tokens=20, stop="END"))
    assert body["generationConfig"] == {"temperature": 0.3, "topP": 0.8, "candidateCount": 2, "seed": 7,
                                        "presencePenalty": 0.5, "frequencyPenalty": -0.5,
                                        "maxOutputTokens": 20, "stopSequences": ["END"]}
    assert translate(chat(max_tokens=9, stop=["a", "b"]))["generationConfig"] == {
        "maxOutputTokens": 9, "stopSequences": ["a", "b"]}


def test_response_formats():
    assert translate(chat(response_format={"type": "json_object"}))["generationConfig"] == {
        "responseMimeType": "application/json"}
    schema = {"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": False}
    config = translate(chat(response_format={"type": "json_schema",
                                             "json_schema": {"name": "x", "strict": True, "schema": schema}}))
    assert config["generationConfig"] == {"responseMimeType": "application/json", "responseJsonSchema": schema}
    assert "generationConfig" not in translate(chat(response_format={"type": "text"}))


def test_logprobs_request_on_a_model_that_returns_them():
    t = make(options={"logprobs": True})
    assert json.loads(t.request(chat(logprobs=True, top_logprobs=3)).body)["generationConfig"] == {
        "responseLogprobs": True, "logprobs": 3}
    assert json.loads(make(options={"logprobs": True}).request(chat(logprobs=True)).body)["generationConfig"] == {
        "responseLogprobs": True}


@pytest.mark.parametrize("extra, param", [({"logprobs": True}, "logprobs"),
                                          ({"logprobs": True, "top_logprobs": 2}, "logprobs"),
                                          ({"top_logprobs": 2}, "top_logprobs")])
def test_logprobs_make_gemini_2_5_and_later_unable(extra, param):
    # Google: 400 "Logprobs is not enabled for models/gemini-2.5-flash"; dropping them would answer null.
    t = make(upstream_model="gemini-3.5-flash-lite")
    with pytest.raises(UnsupportedFeature) as info:
        t.request(chat(**extra))
    assert (info.value.status, info.value.param) == (422, param)


def test_max_tokens_is_clamped_to_the_model_output_limit():
    t = make(upstream_model="gemini-3.5-flash-lite")
    assert json.loads(t.request(chat(max_tokens=10**9)).body)["generationConfig"]["maxOutputTokens"] == 65536
    t = make(upstream_model="gemini-3.5-flash-lite")
    assert json.loads(t.request(chat(max_completion_tokens=500)).body)["generationConfig"]["maxOutputTokens"] == 500


@pytest.mark.parametrize("extra, param", [
    ({"logit_bias": {"50256": -100}}, "logit_bias"),
    ({"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "mp3"}}, "modalities"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio",
                                                  "input_audio": {"data": "AAAA", "format": "wav"}}]}]}, "messages"),
    ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools"),
    ({"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}]}, "messages"),
])
def test_unsupported_is_422(extra, param):
    with pytest.raises(UnsupportedFeature) as info:
        make().request(chat(**extra))
    assert info.value.status == 422 and info.value.param == param


def test_invalid_requests():
    for body in ({"model": "gem", "messages": []}, {"model": "gem", "messages": [{"role": "wizard", "content": "x"}]},
                 {"model": "gem", "messages": [{"role": "user", "content": "x"}], "n": 0},
                 {"model": "gem", "messages": [{"role": "user", "content": "x"}], "n": -1}):
        with pytest.raises(InvalidRequest):
            make().request(body)


# ---------------------------------------------------------------------------------------------
# Whole answers

ANSWER = {
    "candidates": [{"content": {"role": "model", "parts": [{"text": "I think...", "thought": True},
                                                           {"text": "Hello "}, {"text": "there."}]},
                    "finishReason": "STOP", "index": 0}],
    "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 3, "thoughtsTokenCount": 5,
                      "cachedContentTokenCount": 4, "totalTokenCount": 20},
    "modelVersion": "models/gemini-2.5-flash", "responseId": "abc",
}


def test_text_answer():
    t = make()
    out = json.loads(t.response(json.dumps(ANSWER).encode()))
    assert out == {
        "id": "chatcmpl-abc", "object": "chat.completion", "created": 1700000000, "model": "gemini-2.5-flash",
        "choices": [{"index": 0, "logprobs": None, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Hello there.", "refusal": None, "annotations": []}}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 8, "total_tokens": 20,
                  "prompt_tokens_details": {"cached_tokens": 4},
                  "completion_tokens_details": {"reasoning_tokens": 5}},
    }
    assert t.usage == Usage(input_tokens=12, output_tokens=8, cached_input_tokens=4)


def test_model_falls_back_to_upstream_name():
    out = json.loads(make().response(json.dumps({"candidates": [
        {"content": {"parts": [{"text": "x"}]}, "finishReason": "STOP"}]}).encode()))
    assert out["model"] == "gemini-2.5-flash" and "usage" not in out


def test_function_call_answer():
    answer = {"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
        {"functionCall": {"name": "get_time", "args": {}}},
        {"functionCall": {"id": "g-7", "name": "get_time"}}]}, "finishReason": "STOP", "index": 0}]}
    out = json.loads(make().response(json.dumps(answer).encode()))
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    calls = choice["message"]["tool_calls"]
    assert [c["function"] for c in calls] == [
        {"name": "get_weather", "arguments": '{"city": "Paris"}'}, {"name": "get_time", "arguments": "{}"},
        {"name": "get_time", "arguments": "{}"}]
    assert all(c["type"] == "function" for c in calls)
    assert calls[0]["id"].startswith("call_") and calls[1]["id"].startswith("call_")
    assert calls[0]["id"] != calls[1]["id"]
    assert calls[2]["id"] == "g-7"
    # Deterministic: the same answer translated again gives the same ids; another response id does not.
    again = json.loads(make().response(json.dumps(answer).encode()))["choices"][0]["message"]["tool_calls"]
    assert [c["id"] for c in again] == [c["id"] for c in calls]
    other = json.loads(make(response_id="chatcmpl-zzz").response(json.dumps(answer).encode()))
    assert other["choices"][0]["message"]["tool_calls"][0]["id"] != calls[0]["id"]


@pytest.mark.parametrize("reason, expected", [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("BLOCKLIST", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
    ("IMAGE_SAFETY", "content_filter"), ("MALFORMED_FUNCTION_CALL", "stop"), ("OTHER", "stop"),
])
def test_finish_reasons(reason, expected):
    answer = {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": reason}]}
    assert json.loads(make().response(json.dumps(answer).encode()))["choices"][0]["finish_reason"] == expected


def test_several_candidates_are_choices():
    answer = {"candidates": [{"content": {"parts": [{"text": "one"}]}, "finishReason": "STOP", "index": 0},
                             {"content": {"parts": [{"text": "two"}]}, "finishReason": "MAX_TOKENS", "index": 1}]}
    choices = json.loads(make().response(json.dumps(answer).encode()))["choices"]
    assert [(c["index"], c["message"]["content"], c["finish_reason"]) for c in choices] == [
        (0, "one", "stop"), (1, "two", "length")]


def test_blocked_prompt_is_content_filter():
    answer = {"promptFeedback": {"blockReason": "SAFETY"},
              "usageMetadata": {"promptTokenCount": 7, "totalTokenCount": 7}}
    out = json.loads(make().response(json.dumps(answer).encode()))
    assert out["choices"] == [{"index": 0, "logprobs": None, "finish_reason": "content_filter",
                               "message": {"role": "assistant", "content": None, "refusal": None,
                                           "annotations": []}}]
    assert out["usage"]["prompt_tokens"] == 7 and out["usage"]["completion_tokens"] == 0


def test_logprobs_answer():
    answer = {"candidates": [{"content": {"parts": [{"text": "Hi"}]}, "finishReason": "STOP", "logprobsResult": {
        "chosenCandidates": [{"token": "Hi", "tokenId": 5, "logProbability": -0.1}],
        "topCandidates": [{"candidates": [{"token": "Hi", "logProbability": -0.1},
                                          {"token": "Yo", "logProbability": -2.5}]}]}}]}
    logprobs = json.loads(make().response(json.dumps(answer).encode()))["choices"][0]["logprobs"]
    assert logprobs == {"refusal": None, "content": [{
        "token": "Hi", "logprob": -0.1, "bytes": [72, 105],
        "top_logprobs": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105]},
                         {"token": "Yo", "logprob": -2.5, "bytes": [89, 111]}]}]}


# ---------------------------------------------------------------------------------------------
# Errors


def google_error(code: int, status: str, message: str = "boom", **extra) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "status": status, **extra}}).encode()


@pytest.mark.parametrize("status, google_status, expected_status, expected_type, expected_code", [
    (400, "INVALID_ARGUMENT", 400, "invalid_request_error", "upstream_invalid_request"),
    (429, "RESOURCE_EXHAUSTED", 429, "rate_limit_error", "rate_limit_exceeded"),
    (500, "INTERNAL", 502, "upstream_error", "bad_gateway"),
    (503, "UNAVAILABLE", 503, "server_error", "service_unavailable"),
    (504, "DEADLINE_EXCEEDED", 504, "timeout_error", "gateway_timeout"),
    (403, "PERMISSION_DENIED", 502, "upstream_error", "upstream_auth_failed"),
])
def test_errors(status, google_status, expected_status, expected_type, expected_code):
    """The type and code are the gateway's for the situation, never Google's status name."""
    got_status, body = make().error(status, google_error(status, google_status))
    err = json.loads(body)["error"]
    assert (got_status, err["type"], err["code"]) == (expected_status, expected_type, expected_code)
    assert "boom" in err["message"]


def test_error_bodies_that_are_not_google_json():
    status, body = make().error(502, b"<html>Bad Gateway</html>")
    assert status == 502 and "Bad Gateway" in json.loads(body)["error"]["message"]
    status, body = make().error(500, b"")
    assert status == 502 and json.loads(body)["error"]["message"]
    # streamGenerateContent without alt=sse wraps the error in a JSON array
    status, body = make().error(429, b"[" + google_error(429, "RESOURCE_EXHAUSTED", "slow down") + b"]")
    assert status == 429 and json.loads(body)["error"]["message"] == "slow down"


def test_invalid_api_key_says_it_is_the_gateways():
    raw = google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.",
                       details=[{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}])
    status, body = make().error(400, raw)
    err = json.loads(body)["error"]
    assert status == 400 and err["code"] == "upstream_auth_failed" and "gateway's credential" in err["message"]


# ---------------------------------------------------------------------------------------------
# Streams


def gemini_sse(*payloads: dict) -> bytes:
    """Gemini's alt=sse framing: data lines, events ended by CRLF CRLF."""
    return b"".join(b"data: " + json.dumps(p, ensure_ascii=False).encode() + b"\r\n\r\n" for p in payloads)


def usage_meta(candidates: int) -> dict:
    return {"promptTokenCount": 9, "candidatesTokenCount": candidates, "totalTokenCount": 9 + candidates}


STREAM = gemini_sse(
    {"candidates": [{"content": {"role": "model", "parts": [{"text": "hmm", "thought": True},
                                                           {"text": "héllo "}]}, "index": 0}],
     "usageMetadata": usage_meta(2), "modelVersion": "gemini-2.5-flash", "responseId": "r1"},
    {"candidates": [{"content": {"role": "model", "parts": [{"text": "👋 wörld"}]}, "index": 0}],
     "usageMetadata": usage_meta(4), "modelVersion": "gemini-2.5-flash", "responseId": "r1"},
    {"candidates": [{"content": {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"city": "Zürich"}}}]}, "finishReason": "STOP",
        "index": 0}], "usageMetadata": usage_meta(11), "modelVersion": "gemini-2.5-flash", "responseId": "r1"},
)


def run_stream(raw: bytes, *, include_usage: bool, step: int | None = None) -> bytes:
    t = make()
    t.request(chat(stream=True, stream_options={"include_usage": include_usage}))
    out = bytearray()
    if step is None:
        out += t.stream_chunk(raw)
    else:
        for i in range(0, len(raw), step):
            out += t.stream_chunk(raw[i:i + step])
    return bytes(out + t.stream_end())


def test_stream_translation():
    out = events(run_stream(STREAM, include_usage=True))
    assert out[-1] == "[DONE]"
    chunks = out[:-1]
    for c in chunks:
        assert c["id"] == "chatcmpl-abc" and c["object"] == "chat.completion.chunk"
        assert c["created"] == 1700000000 and c["model"] == "gemini-2.5-flash"
    deltas = [(c["choices"][0]["delta"], c["choices"][0]["finish_reason"]) for c in chunks[:-1]]
    call_id = deltas[3][0]["tool_calls"][0]["id"]
    assert call_id.startswith("call_")
    assert deltas == [
        ({"role": "assistant", "content": "", "refusal": None}, None),
        ({"content": "héllo "}, None),
        ({"content": "👋 wörld"}, None),
        ({"tool_calls": [{"index": 0, "id": call_id, "type": "function",
                          "function": {"name": "get_weather", "arguments": '{"city": "Zürich"}'}}]}, None),
        ({}, "tool_calls"),
    ]
    assert all(c["choices"][0]["logprobs"] is None and c["choices"][0]["index"] == 0 for c in chunks[:-1])
    # last usageMetadata wins
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["prompt_tokens"] == 9 and chunks[-1]["usage"]["completion_tokens"] == 11


def test_stream_byte_by_byte_equals_whole():
    whole = run_stream(STREAM, include_usage=True)
    assert run_stream(STREAM, include_usage=True, step=1) == whole
    assert run_stream(STREAM, include_usage=True, step=7) == whole
    # "é" and "👋" were cut mid-character many times over, yet the text survives intact
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in events(whole)[:-1] if c["choices"])
    assert text == "héllo 👋 wörld"


def test_stream_usage_chunk_only_with_include_usage():
    t = make()
    t.request(chat(stream=True))
    out = events(t.stream_chunk(STREAM) + t.stream_end())
    assert out[-1] == "[DONE]"
    assert all(c["choices"] and "usage" not in c for c in out[:-1])
    assert t.usage == Usage(input_tokens=9, output_tokens=11)  # still recorded for the gateway


def test_stream_text_finish_in_same_event_and_lf_framing():
    raw = (b'data: {"candidates":[{"content":{"parts":[{"text":"Hi"}]},"finishReason":"MAX_TOKENS","index":0}]}\n\n')
    out = events(run_stream(raw, include_usage=False))
    assert [(c["choices"][0]["delta"], c["choices"][0]["finish_reason"]) for c in out[:-1]] == [
        ({"role": "assistant", "content": "", "refusal": None}, None), ({"content": "Hi"}, None), ({}, "length")]
    assert out[-1] == "[DONE]"


def test_stream_several_candidates():
    raw = gemini_sse({"candidates": [{"content": {"parts": [{"text": "a"}]}, "index": 0},
                                     {"content": {"parts": [{"text": "b"}]}, "index": 1}]},
                     {"candidates": [{"content": {"parts": [{"text": ""}]}, "finishReason": "STOP", "index": 0},
                                     {"content": {"parts": [{"text": "c"}]}, "finishReason": "STOP", "index": 1}]})
    out = events(run_stream(raw, include_usage=False))[:-1]
    by_index: dict[int, str] = {}
    for c in out:
        ch = c["choices"][0]
        by_index[ch["index"]] = by_index.get(ch["index"], "") + ch["delta"].get("content", "")
    assert by_index == {0: "a", 1: "bc"}
    roles = [c["choices"][0]["index"] for c in out if c["choices"][0]["delta"].get("role")]
    assert roles == [0, 1]
    assert sorted(c["choices"][0]["index"] for c in out if c["choices"][0]["finish_reason"]) == [0, 1]


def test_stream_ending_early_is_an_error_not_done():
    cut = gemini_sse({"candidates": [{"content": {"parts": [{"text": "partial"}]}, "index": 0}],
                      "usageMetadata": usage_meta(1)})
    raw = run_stream(cut, include_usage=True)
    out = events(raw)
    assert "[DONE]" not in out
    assert out[-1] == {"error": {"message": "provider stream ended early", "type": "upstream_error",
                                 "param": None, "code": None}}
    assert not any(c.get("usage") for c in out if isinstance(c, dict) and "choices" in c)  # no usage reported


def test_stream_error_event_ends_the_stream():
    raw = gemini_sse({"candidates": [{"content": {"parts": [{"text": "x"}]}, "index": 0}]},
                     {"error": {"code": 503, "message": "overloaded", "status": "UNAVAILABLE"}},
                     {"candidates": [{"content": {"parts": [{"text": "late"}]}, "finishReason": "STOP"}]})
    out = events(run_stream(raw, include_usage=True))
    # As Gemini's 503 before a stream would read (errors.upstream_error), not Google's status name.
    assert out[-1] == {"error": {"message": "overloaded", "type": "server_error", "param": None,
                                 "code": "service_unavailable"}}
    assert "[DONE]" not in out and not any("late" in json.dumps(c) for c in out)


def test_stream_blocked_prompt():
    raw = gemini_sse({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": usage_meta(0)})
    out = events(run_stream(raw, include_usage=False))
    assert [c["choices"][0]["finish_reason"] for c in out[:-1]] == [None, "content_filter"]
    assert out[-1] == "[DONE]"


# ---------------------------------------------------------------------------------------------
# Embeddings

EMBED_TARGET = Target(model="gateway-embed", upstream_model="gemini-embedding-001", provider="google",
                      api="gemini", base_path="/v1beta")


def test_embeddings_request():
    t = GeminiEmbeddingsTranslator(EMBED_TARGET)
    up = t.request({"model": "gateway-embed", "input": ["a", "bb"], "dimensions": 256})
    assert up.path == "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    assert up.headers == {"content-type": "application/json"}
    assert json.loads(up.body) == {"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}, "outputDimensionality": 256},
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "bb"}]}, "outputDimensionality": 256},
    ]}
    single = json.loads(GeminiEmbeddingsTranslator(EMBED_TARGET).request({"model": "m", "input": "one"}).body)
    assert single == {"requests": [{"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "one"}]}}]}


@pytest.mark.parametrize("bad", [[1, 2, 3], [[1, 2], [3]]])
def test_embeddings_token_ids_are_422(bad):
    with pytest.raises(UnsupportedFeature):
        GeminiEmbeddingsTranslator(EMBED_TARGET).request({"model": "m", "input": bad})


def test_embeddings_invalid_input():
    for bad in ({"model": "m"}, {"model": "m", "input": []}, {"model": "m", "input": "x", "encoding_format": "int8"}):
        with pytest.raises(InvalidRequest):
            GeminiEmbeddingsTranslator(EMBED_TARGET).request(bad)


VECTORS = {"embeddings": [{"values": [0.5, -0.25, 0.125]}, {"values": [1.0, 0.0, -1.0]}]}


def test_embeddings_response_floats_and_estimated_usage():
    t = GeminiEmbeddingsTranslator(EMBED_TARGET)
    t.request({"model": "gateway-embed", "input": ["hello", "a somewhat longer text"]})
    out = json.loads(t.response(json.dumps(VECTORS).encode()))
    tokens = math.ceil(5 / 4) + math.ceil(22 / 4)
    assert out == {"object": "list", "model": "gateway-embed",
                   "data": [{"object": "embedding", "index": 0, "embedding": [0.5, -0.25, 0.125]},
                            {"object": "embedding", "index": 1, "embedding": [1.0, 0.0, -1.0]}],
                   "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    assert t.usage == Usage(input_tokens=tokens)


def test_embeddings_usage_estimate_weighs_chinese_as_the_router_does():
    from extproc import tokens
    from tests.multilingual import SAMPLES
    texts = SAMPLES["zh"]
    t = GeminiEmbeddingsTranslator(EMBED_TARGET)
    t.request({"model": "gateway-embed", "input": texts})
    out = json.loads(t.response(json.dumps({"embeddings": [{"values": [0.0]}] * len(texts)}).encode()))
    counted = sum(tokens.count(text) for text in texts)
    assert 0.75 <= out["usage"]["prompt_tokens"] / counted <= 1.35, (out["usage"], counted)


def test_embeddings_response_base64():
    t = GeminiEmbeddingsTranslator(EMBED_TARGET)
    t.request({"model": "gateway-embed", "input": ["x", "y"], "encoding_format": "base64"})
    out = json.loads(t.response(json.dumps(VECTORS).encode()))
    for item, expected in zip(out["data"], VECTORS["embeddings"]):
        raw = base64.b64decode(item["embedding"])
        assert len(raw) == 4 * len(expected["values"])
        assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == expected["values"]


def test_embeddings_error():
    status, body = GeminiEmbeddingsTranslator(EMBED_TARGET).error(
        400, google_error(400, "INVALID_ARGUMENT", "bad dims"))
    assert status == 400 and json.loads(body)["error"]["message"] == "bad dims"


def test_non_object_tool_arguments_are_refused_as_for_claude():
    """Tryout: arguments "[1,2]" went to Gemini as {} (Claude answered 400): the conversation changed silently."""
    import pytest as _pytest

    from extproc.errors import InvalidRequest
    from extproc.providers import Target, chat_translator

    target = Target(model="g", upstream_model="gemini-3.5-flash-lite", provider="gemini", api="gemini")
    body = {"model": "g", "messages": [
        {"role": "user", "content": "add"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                              "function": {"name": "add", "arguments": "[1, 2]"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "3"}]}
    with _pytest.raises(InvalidRequest) as info:
        chat_translator(target, created=0, response_id="x").request(body)
    assert info.value.param == "messages[1].tool_calls[0].function.arguments"
