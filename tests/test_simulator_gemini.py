"""The Gemini simulator: its wire format, auth, faults, llm-comply, and the Gemini translator against it."""

from __future__ import annotations

import base64
import json
import math
import struct

import httpx
import pytest

from extproc.simulators import core, gemini as sim_gemini

from .simulator_server import SimulatorServer, run_llm_comply, server_fixture

MODEL = "gemini-2.5-flash"
KEY = {"x-goog-api-key": "test-key"}


class GeminiServer(SimulatorServer):
    """The Gemini simulator, with a shortcut for its ``models/{model}:{method}`` endpoints."""

    def post(self, method: str, body, *, model: str = MODEL, headers=KEY, query: str = "") -> httpx.Response:
        return httpx.post(f"{self.url}/v1beta/models/{model}:{method}{query}", json=body, headers=headers,
                          timeout=10)


server = server_fixture("gemini", sim_gemini, GeminiServer)


@pytest.fixture(autouse=True)
def clean(server):
    server.clear()
    yield


def user(text: str) -> dict:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]}


def sse_payloads(raw: bytes) -> list[dict]:
    """Split Gemini's alt=sse body (CRLF CRLF between events) into the JSON payloads."""
    assert raw.endswith(b"\r\n\r\n")
    blocks = raw.split(b"\r\n\r\n")[:-1]
    assert all(b.startswith(b"data: ") and b"\n" not in b for b in blocks)
    return [json.loads(b[len(b"data: "):]) for b in blocks]


# ---------------------------------------------------------------------------------------------
# generateContent


def test_generate_content(server):
    r = server.post("generateContent", {**user("Hello there"), "systemInstruction": {"parts": [{"text": "Be kind"}]}})
    assert r.status_code == 200
    data = r.json()
    cand = data["candidates"][0]
    assert cand["content"]["role"] == "model" and cand["finishReason"] == "STOP" and cand["index"] == 0
    assert cand["content"]["parts"] == [{"text": f"Hello from {MODEL}. You said: Hello there"}]
    usage = data["usageMetadata"]
    assert usage["promptTokenCount"] > 0 and usage["candidatesTokenCount"] > 0
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"]
    assert data["modelVersion"] == MODEL and data["responseId"]
    recorded = httpx.get(f"{server.url}/_sim/requests").json()
    assert recorded[-1]["path"] == f"/v1beta/models/{MODEL}:generateContent"
    assert recorded[-1]["body"]["systemInstruction"]["parts"][0]["text"] == "Be kind"


def test_candidates_json_and_max_tokens(server):
    data = server.post("generateContent", {**user("hi"), "generationConfig": {"candidateCount": 2}}).json()
    assert [c["index"] for c in data["candidates"]] == [0, 1]
    texts = [c["content"]["parts"][0]["text"] for c in data["candidates"]]
    assert texts[0] != texts[1]

    data = server.post("generateContent", {**user("hi"), "generation_config": {
        "response_mime_type": "application/json"}}).json()
    assert json.loads(data["candidates"][0]["content"]["parts"][0]["text"])["answer"] == "hi"

    data = server.post("generateContent", {**user("one two three four five"),
                                           "generationConfig": {"maxOutputTokens": 2}}).json()
    assert data["candidates"][0]["finishReason"] == "MAX_TOKENS"
    assert data["candidates"][0]["content"]["parts"][0]["text"] == "Hello"
    # L3: never more output tokens than maxOutputTokens, per candidate (it reported 9 to 11 for 5).
    data = server.post("generateContent", {**user("Tell me about Peru"), "generationConfig": {
        "maxOutputTokens": 5, "candidateCount": 2}}).json()
    assert [c["finishReason"] for c in data["candidates"]] == ["MAX_TOKENS", "MAX_TOKENS"]
    assert 0 < data["usageMetadata"]["candidatesTokenCount"] <= 2 * 5, data["usageMetadata"]


def test_function_calling(server):
    tools = [{"functionDeclarations": [{"name": "get_weather", "parameters": {
        "type": "OBJECT", "properties": {"city": {"type": "STRING"}, "days": {"type": "INTEGER"}}}}]}]
    data = server.post("generateContent", {**user("Weather in San Francisco?"), "tools": tools,
                                           "toolConfig": {"functionCallingConfig": {"mode": "ANY"}}}).json()
    cand = data["candidates"][0]
    assert cand["finishReason"] == "STOP"  # Gemini ends a function call with STOP
    assert cand["content"]["parts"] == [{"functionCall": {"name": "get_weather",
                                                          "args": {"city": "San Francisco", "days": 1}}}]
    # the tool result comes back as a functionResponse in a user turn
    follow = {"contents": [
        {"role": "user", "parts": [{"text": "Weather in San Francisco?"}]},
        {"role": "model", "parts": cand["content"]["parts"]},
        {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp": 18}}}]}],
        "tools": tools}
    text = server.post("generateContent", follow).json()["candidates"][0]["content"]["parts"][0]["text"]
    assert text == 'The tool returned: {"temp": 18}'
    none = server.post("generateContent", {**user("Weather in Paris?"), "tools": tools,
                                           "toolConfig": {"functionCallingConfig": {"mode": "NONE"}}}).json()
    assert "text" in none["candidates"][0]["content"]["parts"][0]


def test_images_are_seen(server):
    body = {"contents": [{"parts": [{"text": "What is this?"},
                                    {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}},
                                    {"fileData": {"mimeType": "image/jpeg",
                                                  "fileUri": "https://files.example/v1beta/files/abc123"}}]}]}
    text = server.post("generateContent", body).json()["candidates"][0]["content"]["parts"][0]["text"]
    assert text.endswith("(I see 2 images.)")


@pytest.mark.parametrize("body", [{}, {"contents": []}, {"contents": [{"role": "user", "parts": []}]}])
def test_invalid_request(server, body):
    r = server.post("generateContent", body)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"


# ---------------------------------------------------------------------------------------------
# Streams


def test_sse_stream(server):
    whole = server.post("generateContent", user("Count from one to five please")).json()
    r = server.post("streamGenerateContent", user("Count from one to five please"), query="?alt=sse")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    payloads = sse_payloads(r.content)
    assert len(payloads) > 3
    text = "".join(p["candidates"][0]["content"]["parts"][0]["text"] for p in payloads)
    assert text == whole["candidates"][0]["content"]["parts"][0]["text"]
    assert [("finishReason" in p["candidates"][0]) for p in payloads] == [False] * (len(payloads) - 1) + [True]
    assert payloads[-1]["usageMetadata"] == whole["usageMetadata"]
    counts = [p["usageMetadata"]["candidatesTokenCount"] for p in payloads]
    assert counts == sorted(counts) and counts[0] < counts[-1]  # cumulative, as Google reports it
    assert all(p["responseId"] == payloads[0]["responseId"] and p["modelVersion"] == MODEL for p in payloads)


def test_json_array_stream_without_alt_sse(server):
    r = server.post("streamGenerateContent", user("Say hi"))
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    items = json.loads(r.content)
    assert isinstance(items, list) and len(items) > 1
    assert items[-1]["candidates"][0]["finishReason"] == "STOP"


def test_stream_disconnect_fault(server):
    server.faults(disconnect_after=2)
    try:
        content = server.post("streamGenerateContent", user("Count from one to five please"), query="?alt=sse").content
    except httpx.HTTPError:
        return  # the connection dropped mid-body: what the fault is for
    assert b"finishReason" not in content and content.count(b"data: ") <= 2


def test_thoughts(server):
    data = server.post("generateContent", {**user("What is 15 * 37?"), "generationConfig": {
        "thinkingConfig": {"thinkingLevel": "low", "includeThoughts": True}}}).json()
    parts = data["candidates"][0]["content"]["parts"]
    assert parts[0]["thought"] is True and "thought" not in parts[1]
    assert data["usageMetadata"]["thoughtsTokenCount"] > 0


# ---------------------------------------------------------------------------------------------
# Other methods


def test_count_tokens(server):
    direct = server.post("countTokens", user("Hello there my friend")).json()
    wrapped = server.post("countTokens", {"generateContentRequest": {"model": f"models/{MODEL}",
                                                                     **user("Hello there my friend")}}).json()
    assert direct["totalTokens"] == wrapped["totalTokens"] == core.count_tokens("Hello there my friend")


def test_embeddings(server):
    one = server.post("embedContent", {"content": {"parts": [{"text": "hello"}]}}, model="gemini-embedding-001").json()
    vector = one["embedding"]["values"]
    assert len(vector) == 768 and math.isclose(math.sqrt(sum(v * v for v in vector)), 1.0, abs_tol=1e-3)
    batch = server.post("batchEmbedContents", {"requests": [
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "hello"}]}},
        {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "world"}]},
         "outputDimensionality": 8}]}, model="gemini-embedding-001").json()
    assert batch["embeddings"][0]["values"] == vector  # the same text embeds the same
    assert len(batch["embeddings"][1]["values"]) == 8
    mismatch = server.post("batchEmbedContents", {"requests": [
        {"model": "models/other", "content": {"parts": [{"text": "x"}]}}]}, model="gemini-embedding-001")
    assert mismatch.status_code == 400 and mismatch.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_models(server):
    listed = httpx.get(f"{server.url}/v1beta/models", headers=KEY).json()["models"]
    assert f"models/{MODEL}" in [m["name"] for m in listed]
    one = httpx.get(f"{server.url}/v1beta/models/{MODEL}", params={"key": "k"}).json()
    assert one["name"] == f"models/{MODEL}" and "generateContent" in one["supportedGenerationMethods"]


# ---------------------------------------------------------------------------------------------
# Auth and faults


def test_auth(server):
    r = server.post("generateContent", user("hi"), headers={})
    assert r.status_code == 403
    assert r.json()["error"] == {"code": 403, "status": "PERMISSION_DENIED", "message": r.json()["error"]["message"]}
    assert server.post("generateContent", user("hi"), headers={}, query="?key=abc").status_code == 200
    bad = server.post("generateContent", user("hi"), headers={"x-goog-api-key": "invalid-key"})
    assert bad.status_code == 400
    assert bad.json()["error"]["details"][0]["reason"] == "API_KEY_INVALID"


def test_fault_429_with_retry_after(server):
    server.faults(status=429, retry_after=7, count=1)
    r = server.post("generateContent", user("hi"))
    assert r.status_code == 429 and r.headers["retry-after"] == "7"
    assert r.json()["error"]["status"] == "RESOURCE_EXHAUSTED" and r.json()["error"]["code"] == 429
    assert server.post("generateContent", user("hi")).status_code == 200  # count=1: cleared


@pytest.mark.parametrize("status, name", [(503, "UNAVAILABLE"), (500, "INTERNAL"), (504, "DEADLINE_EXCEEDED")])
def test_fault_statuses(server, status, name):
    server.faults(status=status)
    r = server.post("streamGenerateContent", user("hi"), query="?alt=sse")
    assert r.status_code == status and "retry-after" not in r.headers
    assert r.json()["error"]["status"] == name


# ---------------------------------------------------------------------------------------------
# The Gemini translator against the simulator (no gateway in between)


def _translator():
    from extproc.providers.base import Target
    from extproc.providers.openai_gemini import GeminiChatTranslator
    target = Target(model="gem", upstream_model=MODEL, provider="google", api="gemini", base_path="/v1beta")
    return GeminiChatTranslator(target, created=1, response_id="chatcmpl-sim")


def _send(server, up) -> httpx.Response:
    return httpx.post(server.url + up.path, content=up.body, headers={**up.headers, **KEY}, timeout=10)


def test_translator_round_trip_with_tools(server):
    weather = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    t = _translator()
    up = t.request({"model": "gem", "tools": [weather], "tool_choice": "required",
                    "messages": [{"role": "user", "content": "Weather in Oslo?"}]})
    out = json.loads(t.response(_send(server, up).content))
    call = out["choices"][0]["message"]["tool_calls"][0]
    assert out["choices"][0]["finish_reason"] == "tool_calls"
    assert json.loads(call["function"]["arguments"]) == {"city": "Oslo"}

    t = _translator()
    up = t.request({"model": "gem", "tools": [weather], "messages": [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": '{"temp": 3}'}]})
    out = json.loads(t.response(_send(server, up).content))
    assert out["choices"][0]["message"]["content"] == 'The tool returned: {"content": {"temp": 3}}'
    assert out["usage"]["prompt_tokens"] > 0


def test_translator_stream(server):
    t = _translator()
    up = t.request({"model": "gem", "stream": True, "stream_options": {"include_usage": True},
                    "messages": [{"role": "user", "content": "héllo 👋 friend"}]})
    raw = _send(server, up).content
    out = bytearray()
    for i in range(0, len(raw), 3):  # cut across CRLFs and UTF-8 sequences
        out += t.stream_chunk(raw[i:i + 3])
    out += t.stream_end()
    blocks = [b[len("data: "):] for b in out.decode().split("\n\n") if b]
    assert blocks[-1] == "[DONE]"
    chunks = [json.loads(b) for b in blocks[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == f"Hello from {MODEL}. You said: héllo 👋 friend"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] > 0


def test_translator_embeddings_base64(server):
    from extproc.providers.base import Target
    from extproc.providers.openai_gemini import GeminiEmbeddingsTranslator
    t = GeminiEmbeddingsTranslator(Target(model="emb", upstream_model="gemini-embedding-001", provider="google",
                                          api="gemini", base_path="/v1beta"))
    up = t.request({"model": "emb", "input": ["hello", "world"], "encoding_format": "base64", "dimensions": 16})
    out = json.loads(t.response(_send(server, up).content))
    raw = base64.b64decode(out["data"][0]["embedding"])
    decoded = struct.unpack("<16f", raw)
    expected = sim_gemini.embed("hello", 16)
    assert all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-7) for a, b in zip(decoded, expected))
    assert out["model"] == "emb" and out["usage"]["prompt_tokens"] == 4


# ---------------------------------------------------------------------------------------------
# llm-comply


def test_llm_comply_google_genai(server):
    """Every google-genai compliance test passes. Warnings are allowed: with a Gemini 2 model name the
    simulator, like Google, gives functionCall parts no id (only Gemini 3 numbers them)."""
    report, proc = run_llm_comply("google-genai", server.url, MODEL, "-k", "test-key", "--auth-header", "x-goog-api-key",
                                  "--no-bearer", "--timeout", "20")
    results = {r["id"]: r for r in report["results"]}
    assert {"google-basic-response", "google-streaming-response", "google-tool-calling", "google-image-input",
            "google-thinking", "google-error-handling"} <= set(results)
    failed = {k: r.get("errors") for k, r in results.items() if r["status"] != "passed"}
    assert failed == {}, failed
    assert report["summary"]["failed"] == 0 and report["summary"]["skipped"] == 0
    assert proc.returncode == 0


# ---------------------------------------------------------------------------------------------
# strictness: what the real API refuses

def _call_turns(responses: int = 1) -> list[dict]:
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}
    answer = {"functionResponse": {"name": "get_weather", "response": {"content": "sunny"}}}
    return [{"role": "user", "parts": [{"text": "Weather?"}]}, {"role": "model", "parts": [call]},
            {"role": "user", "parts": [answer] * responses}]


REFUSED = {
    # each: (body, model, status, Google's message or its start)
    "empty_text_part": ({"contents": [{"role": "user", "parts": [{"text": ""}]}]}, MODEL, 400,
                        "* GenerateContentRequest.contents[0].parts[0].data: required oneof field 'data' must have "
                        "one initialized field"),
    "empty_system_text": ({**user("hi"), "systemInstruction": {"parts": [{"text": ""}]}}, MODEL, 400,
                          "* GenerateContentRequest.system_instruction.parts[0].data: required oneof field 'data'"),
    "no_parts": ({"contents": [{"role": "user", "parts": []}]}, MODEL, 400,
                 "* GenerateContentRequest.contents[0].parts: contents.parts must not be empty."),
    "two_data_fields": ({"contents": [{"role": "user", "parts": [{"text": "a", "inlineData": {
        "mimeType": "image/png", "data": "iVBORw0KGgo="}}]}]}, MODEL, 400, "* GenerateContentRequest.contents[0]"),
    "candidate_count_9": ({**user("hi"), "generationConfig": {"candidateCount": 9}}, MODEL, 400,
                          "Unable to submit request because it has a candidateCount value of 9 but the supported "
                          "range is from 1 (inclusive) to 9 (exclusive)."),
    "candidate_count_2_to_40": ({**user("hi"), "generationConfig": {"candidateCount": 2 ** 40}}, MODEL, 400,
                                "Unable to submit request because it has a candidateCount value of 1099511627776"),
    "candidate_count_0": ({**user("hi"), "generationConfig": {"candidateCount": 0}}, MODEL, 400,
                          "Unable to submit request because it has a candidateCount value of 0"),
    "gemini_3_candidates": ({**user("hi"), "generationConfig": {"candidateCount": 2}}, "gemini-3-flash-preview",
                            400, "Multiple candidates is not enabled for this model"),
    "temperature_3": ({**user("hi"), "generationConfig": {"temperature": 3}}, MODEL, 400,
                      "Unable to submit request because it has a temperature value of 3"),
    "max_output_tokens_0": ({**user("hi"), "generationConfig": {"maxOutputTokens": 0}}, MODEL, 400,
                            "* GenerateContentRequest.generation_config.max_output_tokens"),
    "six_stop_sequences": ({**user("hi"), "generationConfig": {"stopSequences": list("abcdef")}}, MODEL, 400,
                           "* GenerateContentRequest.generation_config.stop_sequences"),
    "web_file_uri": ({"contents": [{"role": "user", "parts": [{"text": "what is it?"}, {"fileData": {
        "mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}}]}]}, MODEL, 400,
        "* GenerateContentRequest.contents[0].parts[1].file_data.file_uri: Invalid or unsupported file uri"),
    "response_without_call": ({"contents": [_call_turns()[0], _call_turns()[2]]}, MODEL, 400,
                              "Please ensure that function response turn comes immediately after a function call "
                              "turn."),
    "fewer_responses_than_calls": ({"contents": _call_turns()[:1] + [{"role": "model", "parts": [
        {"functionCall": {"name": "a", "args": {}}}, {"functionCall": {"name": "b", "args": {}}}]}]
        + _call_turns()[2:]}, MODEL, 400, "Please ensure that the number of function response parts is equal"),
    "retired_model": (user("hi"), "gemini-1.5-flash", 404,
                      "models/gemini-1.5-flash is not found for API version v1beta, or is not supported for "
                      "generateContent."),
    "unknown_model": (user("hi"), "gemini-99-ultra", 404, "models/gemini-99-ultra is not found"),
    "logprobs_on_2_5": ({**user("hi"), "generationConfig": {"responseLogprobs": True, "logprobs": 2}}, MODEL, 400,
                        "Logprobs is not enabled for models/gemini-2.5-flash"),
    "max_output_tokens_1e9": ({**user("hi"), "generationConfig": {"maxOutputTokens": 10 ** 9}}, MODEL, 400,
                              "Unable to submit request because it has a maxOutputTokens value of 1000000000 but the "
                              "supported range is from 1 (inclusive) to 65537 (exclusive)."),
    "prompt_over_input_limit": (user("word " * 840000), MODEL, 400,
                                "The input token count (1050000) exceeds the maximum number of tokens allowed "
                                "(1048576)."),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refuses_what_the_real_api_refuses(server, case):
    body, model, status, message = REFUSED[case]
    r = server.post("generateContent", body, model=model)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == status and err["status"] == ("NOT_FOUND" if status == 404 else "INVALID_ARGUMENT")
    assert err["message"].startswith(message), err["message"]


def test_accepts_a_full_function_round_trip_and_files_api_uris(server):
    r = server.post("generateContent", {"contents": _call_turns()})
    assert r.status_code == 200, r.text
    r = server.post("generateContent", {"contents": [{"role": "user", "parts": [{"text": "?"}, {"fileData": {
        "mimeType": "video/mp4", "fileUri": "https://www.youtube.com/watch?v=9hE5-98ZeCg"}}]}],
        "generationConfig": {"candidateCount": 8}})
    assert r.status_code == 200, r.text
    assert len(r.json()["candidates"]) == 8


def test_a_body_over_20_mb_is_refused_without_taking_the_simulator_down(server):
    r = server.post("generateContent", user("x" * (21 * 1024 * 1024)))
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "Request payload size exceeds the limit: 20971520 bytes."
    assert server.post("generateContent", user("hi")).status_code == 200


def test_embedding_batches_are_bounded_as_the_api_bounds_them(server):
    one = {"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "x"}]}}
    r = server.post("batchEmbedContents", {"requests": [one] * 101}, model="gemini-embedding-001")
    assert r.status_code == 400 and "at most 100 requests" in r.json()["error"]["message"]
    assert server.post("batchEmbedContents", {"requests": [one] * 100}, model="gemini-embedding-001").status_code == 200


def test_fault_refusal_context_length_in_googles_words(server):
    server.faults(refusal="context_length", count=1)
    r = server.post("generateContent", user("hi"))
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert r.json()["error"]["message"] == ("The input token count (1048577) exceeds the maximum number of tokens "
                                            "allowed (1048576).")
    assert server.post("generateContent", user("hi")).status_code == 200


# ---------------------------------------------------------------------------------------------
# Implicit caching

MANUAL = "".join(f"Section {i:04d}: the pump runs at 3 bar. " for i in range(300))[:10000]   # 2,500 tokens


def test_implicit_caching_reads_a_repeated_prefix_over_the_models_minimum(server):
    """Gemini "Context caching": implicit caching on 2.5+ models from 2,048 tokens (2.5) / 4,096 (3.x);
    cachedContentTokenCount in usageMetadata, promptTokenCount still the whole prompt."""
    body = {**user("What pressure?"), "systemInstruction": {"parts": [{"text": MANUAL}]}}
    first = server.post("generateContent", body).json()["usageMetadata"]
    assert "cachedContentTokenCount" not in first            # proto3 JSON: a zero count is left out
    second = server.post("generateContent", {**user("And the flow?"), "systemInstruction": body["systemInstruction"]})
    usage = second.json()["usageMetadata"]
    assert usage["cachedContentTokenCount"] == core.count_tokens(MANUAL) == 2500
    assert usage["cacheTokensDetails"] == [{"modality": "TEXT", "tokenCount": 2500}]
    assert usage["promptTokenCount"] == 2500 + core.count_tokens("And the flow?")
    # The stream repeats it on every event.
    r = server.post("streamGenerateContent", body, query="?alt=sse")
    events = sse_payloads(r.content)
    assert all(e["usageMetadata"]["cachedContentTokenCount"] == 2500 + core.count_tokens("What pressure?")
               for e in events)
    # Under a 3.x model's 4,096-token minimum nothing is cached; 2.0 has no implicit caching.
    for _ in range(2):
        assert "cachedContentTokenCount" not in server.post("generateContent", body, model="gemini-3.5-flash-lite") \
            .json()["usageMetadata"]
    assert sim_gemini.cache_minimum("gemini-2.0-flash") is None and sim_gemini.cache_minimum("gemini-3.8-flash") == 4096
    # Another key has a cache of its own.
    other = server.post("generateContent", body, headers={"x-goog-api-key": "another-key"}).json()["usageMetadata"]
    assert "cachedContentTokenCount" not in other
