"""The OpenAI-compatible translator: identity mapping, Azure paths, usage accounting, errors."""

from __future__ import annotations

import copy
import json

import pytest

from extproc.providers import base
from extproc.providers import openai_openai as oo


Target, Usage = base.Target, base.Usage

OPENAI = Target(model="fast", upstream_model="gpt-4o-mini", provider="openai", api="openai", base_path="/v1")
AZURE = Target(model="fast", upstream_model="my-gpt4o", provider="azure", api="azure_openai",
               base_path="/openai", options={"api_version": "2024-10-21"})
VLLM = Target(model="local", upstream_model="meta-llama/Llama-3.1-8B-Instruct", provider="vllm", api="openai",
              base_path="/v1")

CHAT = {
    "model": "fast",
    "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "héllo"}],
    "temperature": 0.2,
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
    "stream": True,
    "stream_options": {"include_usage": True},
}


def chat(target: Target = OPENAI) -> "oo.OpenAIChatTranslator":
    return oo.OpenAIChatTranslator(target, created=1_700_000_000, response_id="chatcmpl-test")


# -- requests ----------------------------------------------------------------

def test_openai_request_rewrites_only_the_model():
    t = chat()
    original = copy.deepcopy(CHAT)
    req = t.request(CHAT)
    assert req.path == "/v1/chat/completions"
    assert req.headers == {"content-type": "application/json"}
    sent = json.loads(req.body)
    assert sent == {**original, "model": "gpt-4o-mini"}
    assert CHAT == original, "the client's request must not be edited in place"
    assert "héllo" in req.body.decode("utf-8"), "non-ASCII text is sent as UTF-8, not escaped"


def test_stream_flags_follow_the_request():
    t = chat()
    t.request(CHAT)
    assert (t.stream, t.include_usage) == (True, True)
    t = chat()
    t.request({**CHAT, "stream_options": None})
    assert (t.stream, t.include_usage) == (True, False)
    t = chat()
    t.request({"model": "fast", "messages": [], "stream_options": {"include_usage": True}})
    assert (t.stream, t.include_usage) == (False, False)


def test_self_hosted_model_name_with_slash_goes_in_the_body():
    req = chat(VLLM).request({"model": "local", "messages": []})
    assert req.path == "/v1/chat/completions"
    assert json.loads(req.body)["model"] == "meta-llama/Llama-3.1-8B-Instruct"


def test_azure_paths_carry_deployment_and_api_version():
    req = chat(AZURE).request(CHAT)
    assert req.path == "/openai/deployments/my-gpt4o/chat/completions?api-version=2024-10-21"
    assert json.loads(req.body)["model"] == "my-gpt4o"
    emb = oo.OpenAIEmbeddingsTranslator(AZURE).request({"model": "fast", "input": "x"})
    assert emb.path == "/openai/deployments/my-gpt4o/embeddings?api-version=2024-10-21"


def test_embeddings_request_and_passthrough_flags():
    body = {"model": "emb", "input": ["a", "b"], "dimensions": 8, "encoding_format": "base64"}
    original = copy.deepcopy(body)
    t = oo.OpenAIEmbeddingsTranslator(OPENAI)
    req = t.request(body)
    assert req.path == "/v1/embeddings"
    assert json.loads(req.body) == {**original, "model": "gpt-4o-mini"}
    assert body == original
    assert oo.OpenAIEmbeddingsTranslator.passthrough_response is True
    assert oo.OpenAIChatTranslator.passthrough_response is True


# -- responses -----------------------------------------------------------------

COMPLETION = json.dumps({
    "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15,
              "prompt_tokens_details": {"cached_tokens": 4}},
}).encode()


def test_response_passes_bytes_and_records_usage():
    t = chat()
    assert t.response(COMPLETION) is COMPLETION
    assert t.usage == Usage(input_tokens=12, output_tokens=3, cached_input_tokens=4)


def test_response_without_usage_or_not_json_leaves_usage_unknown():
    t = chat()
    assert t.response(b'{"id":"x","choices":[]}') == b'{"id":"x","choices":[]}'
    assert t.usage is None
    assert t.response(b"not json") == b"not json"
    assert t.usage is None


def test_response_usage_with_null_details():
    t = chat()
    t.response(b'{"usage":{"prompt_tokens":7,"completion_tokens":2,"prompt_tokens_details":null}}')
    assert t.usage == Usage(7, 2, 0)


def test_embeddings_usage():
    t = oo.OpenAIEmbeddingsTranslator(OPENAI)
    body = b'{"object":"list","data":[],"model":"m","usage":{"prompt_tokens":9,"total_tokens":9}}'
    assert t.response(body) is body
    assert t.usage == Usage(input_tokens=9, output_tokens=0, cached_input_tokens=0)


def _sse(*chunks: dict) -> bytes:
    return b"".join(b"data: " + json.dumps(c, ensure_ascii=False).encode() + b"\n\n" for c in chunks) \
        + b"data: [DONE]\n\n"


STREAM = _sse(
    {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant",
                                                                                     "content": ""}}],
     "usage": None},
    {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "naïve 日本 🎉"}}],
     "usage": None},
    {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
     "usage": None},
    {"id": "c", "object": "chat.completion.chunk", "choices": [],
     "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25,
               "prompt_tokens_details": {"cached_tokens": 16}}},
)


def test_stream_one_byte_at_a_time_passes_through_and_records_usage():
    """Byte for byte, each event as soon as its blank line arrives (an incomplete event is no use to an SSE
    client, and holding it is what lets an error event be rewritten whole)."""
    t = chat()
    t.request(CHAT)
    out = b""
    seen_usage_before_last = False
    for i in range(len(STREAM)):
        piece = STREAM[i:i + 1]  # splits every multi-byte UTF-8 character and every line ending
        returned = t.stream_chunk(piece)
        out += returned
        assert out == STREAM[:STREAM[:i + 1].rfind(b"\n\n") + 2 if b"\n\n" in STREAM[:i + 1] else 0]
        if t.usage is not None and i < STREAM.index(b'"usage": {'):
            seen_usage_before_last = True
    assert out + t.stream_end() == STREAM
    assert not seen_usage_before_last
    assert t.usage == Usage(input_tokens=20, output_tokens=5, cached_input_tokens=16)


def test_stream_crlf_in_odd_chunks():
    t = chat()
    t.request(CHAT)
    data = STREAM.replace(b"\n", b"\r\n")
    out = b"".join(t.stream_chunk(data[i:i + 7]) for i in range(0, len(data), 7))
    assert out == data
    assert t.usage == Usage(20, 5, 16)


def test_a_stream_without_include_usage_asks_for_it_and_hides_it_from_the_client():
    t = chat()
    upstream = json.loads(t.request({**CHAT, "stream_options": None}).body)
    assert upstream["stream_options"] == {"include_usage": True}     # accounting needs the usage
    assert not t.passthrough_response
    data = _sse({"id": "c", "choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": "stop"}],
                 "usage": None},
                {"id": "c", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})
    out = b"".join(t.stream_chunk(data[i:i + 1]) for i in range(len(data))) + t.stream_end()
    events = [line[len(b"data: "):] for line in out.split(b"\n") if line.startswith(b"data: ")]
    assert events[-1] == b"[DONE]" and len(events) == 2                 # the usage-only chunk is gone
    assert json.loads(events[0]) == {"id": "c", "choices": [{"index": 0, "delta": {"content": "x"},
                                                              "finish_reason": "stop"}]}   # no "usage": null
    assert t.usage == Usage(input_tokens=3, output_tokens=1, cached_input_tokens=0)


def test_a_stream_that_asked_for_usage_passes_byte_for_byte():
    t = chat()
    upstream = json.loads(t.request(CHAT).body)
    assert upstream["stream_options"] == {"include_usage": True} and t.passthrough_response
    data = _sse({"id": "c", "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})
    assert t.stream_chunk(data) == data
    assert t.usage == Usage(input_tokens=3, output_tokens=1, cached_input_tokens=0)


# -- errors --------------------------------------------------------------------

def _err(status: int, body: bytes) -> tuple[int, dict]:
    new_status, out = chat().error(status, body)
    return new_status, json.loads(out)["error"]


def test_openai_error_keeps_message_and_param_and_takes_the_gateways_type_and_code():
    """The same situation reads the same whichever provider said it (errors.upstream_error): our OpenAI
    account's spent quota is not the client's quota (insufficient_quota is a gateway budget's code)."""
    body = json.dumps({"error": {"message": "You exceeded your current quota", "type": "insufficient_quota",
                                 "param": None, "code": "insufficient_quota"}}).encode()
    assert _err(429, body) == (429, {"message": "You exceeded your current quota", "type": "rate_limit_error",
                                     "param": None, "code": "rate_limit_exceeded"})
    body = json.dumps({"error": {"message": "Invalid 'messages'", "type": "invalid_request_error",
                                 "param": "messages", "code": "empty_array"}}).encode()
    assert _err(400, body) == (400, {"message": "Invalid 'messages'", "type": "invalid_request_error",
                                     "param": "messages", "code": "upstream_invalid_request"})


@pytest.mark.parametrize("status", [401, 403])
def test_provider_auth_failure_is_the_gateways_problem(status):
    body = b'{"error":{"message":"Incorrect API key provided: sk-abc","type":"invalid_request_error",' \
           b'"param":null,"code":"invalid_api_key"}}'
    new_status, err = _err(status, body)
    assert new_status == 502
    assert err["type"] == "upstream_error"
    assert "Incorrect API key provided" in err["message"]


def test_server_errors_become_502_but_503_stays():
    body = b'{"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}'
    status, err = _err(500, body)
    assert status == 502 and err["type"] == "upstream_error" and err["message"] == "The server had an error"
    status, err = _err(503, b'{"error":{"message":"overloaded","type":"server_error","param":null,"code":null}}')
    assert status == 503 and err["message"] == "overloaded"


def test_azure_error_shape_code_and_message_only():
    status, err = _err(404, b'{"error":{"code":"DeploymentNotFound","message":"The API deployment for this '
                            b'resource does not exist."}}')
    assert status == 404
    assert err == {"message": "The API deployment for this resource does not exist.",
                   "type": "invalid_request_error", "param": None, "code": "model_not_found"}
    status, err = _err(429, b'{"error":{"code":"429","message":"Requests have exceeded token rate limit."}}')
    assert (status, err["type"], err["code"]) == (429, "rate_limit_error", "rate_limit_exceeded")


def test_self_hosted_error_shapes():
    status, err = _err(404, b'{"error":"model \\"llama3\\" not found, try pulling it first"}')  # Ollama
    assert status == 404 and err["message"] == 'model "llama3" not found, try pulling it first'
    status, err = _err(400, b'{"object":"error","message":"max_tokens is too large","type":"BadRequestError",'
                            b'"param":null,"code":400}')  # vLLM
    assert status == 400 and err["message"] == "max_tokens is too large" and err["code"] == "upstream_invalid_request"


@pytest.mark.parametrize("body", [b"<html>502 Bad Gateway</html>", b"", b'{"detail":"nope"}', b"[1,2]",
                                  b'{"error":{"code":500}}'])
def test_non_openai_bodies_get_a_generic_message(body):
    status, err = _err(500, body)
    assert status == 502
    assert err["message"] == "provider returned HTTP 500 without an OpenAI error body"
    assert err["type"] == "upstream_error"
    status, err = _err(400, body)
    assert status == 400 and err["type"] == "invalid_request_error"


def test_embeddings_errors_use_the_same_rules():
    status, out = oo.OpenAIEmbeddingsTranslator(OPENAI).error(401, b'{"error":{"message":"bad key"}}')
    assert status == 502 and "bad key" in json.loads(out)["error"]["message"]


def test_top_level_nulls_are_left_out_as_azure_refuses_them():
    """Azure's 2024-10-21 schema types max_tokens, penalties... without null; null means absent anyway."""
    target = base.Target(model="m", upstream_model="dep", provider="azure", api="azure_openai", base_path="/openai",
                    options={"api_version": "2024-10-21"})
    up = oo.OpenAIChatTranslator(target, created=1, response_id="x").request(
        {"model": "m", "messages": [{"role": "user", "content": None}], "max_tokens": None,
         "presence_penalty": None, "temperature": 0.5})
    assert json.loads(up.body) == {"model": "dep", "messages": [{"role": "user", "content": None}],
                                   "temperature": 0.5}


@pytest.mark.parametrize("model, reasoning", [("o3-mini", True), ("gpt-5", True), ("gpt-5-mini-2025-08-07", True),
                                              ("gpt-5-chat-latest", False), ("gpt-4o-mini", False)])
def test_reasoning_models_get_max_completion_tokens_and_no_sampling_settings(model, reasoning):
    from extproc.simulators import openai as sim_openai

    target = base.Target(model="m", upstream_model=model, provider="openai", api="openai", base_path="/v1")
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 50, "temperature": 0.2,
            "top_p": 0.5}
    out = json.loads(oo.OpenAIChatTranslator(target, created=1, response_id="x").request(body).body)
    if reasoning:
        assert out == {"model": model, "messages": body["messages"], "max_completion_tokens": 50}
        with pytest.raises(sim_openai._Fail, match="Use 'max_completion_tokens' instead"):
            sim_openai.validate_chat({**body, "model": model}, model)   # what the API says to the old body
    else:
        assert out == {**body, "model": model}
    sim_openai.validate_chat(out, model)


# -- OpenAI's per-model rules (the real API's 400s), kept apart from OpenAI-compatible servers ----------

def test_a_field_openai_does_not_know_makes_its_models_unable_but_reaches_a_self_hosted_server():
    # OpenAI: 400 "Unrecognized request argument supplied: top_k"; vLLM takes its sampling extensions.
    body = {**CHAT, "top_k": 40}
    with pytest.raises(oo.UnsupportedFeature) as info:
        chat(OPENAI).request(body)
    assert (info.value.status, info.value.param) == (422, "top_k")
    assert json.loads(chat(VLLM).request(body).body)["top_k"] == 40


def test_known_fields_are_openais_own_list():
    from tests.vendor_specs import _spec
    assert oo.CHAT_FIELDS == _spec("openai").operations["createChatCompletion"].top_level


@pytest.mark.parametrize("model, kept", [("gpt-4o-mini", False), ("o3", True), ("gpt-5-mini", True)])
def test_reasoning_effort_reaches_reasoning_models_only(model, kept):
    target = Target(model="m", upstream_model=model, provider="openai", api="openai", base_path="/v1")
    sent = json.loads(chat(target).request({**CHAT, "reasoning_effort": "low"}).body)
    assert ("reasoning_effort" in sent) is kept


def test_web_search_only_on_search_models():
    body = {**CHAT, "web_search_options": {}}
    with pytest.raises(oo.UnsupportedFeature, match="web search") as info:
        chat(OPENAI).request(body)
    assert info.value.param == "web_search_options"
    search = Target(model="s", upstream_model="gpt-4o-mini-search-preview", provider="openai", api="openai",
                    base_path="/v1")
    assert json.loads(chat(search).request(body).body)["web_search_options"] == {}


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_above_the_model_output_limit_is_clamped(field):
    # OpenAI: 400 "max_tokens is too large: 1000000000. This model supports at most 16384 completion tokens".
    sent = json.loads(chat(OPENAI).request({**CHAT, field: 10**9}).body)
    assert sent[field] == 16384 == oo.output_limit(OPENAI)
    assert json.loads(chat(OPENAI).request({**CHAT, field: 100}).body)[field] == 100
    # a self-hosted server has no output limit of its own here: its context window bounds it (the planner)
    assert oo.output_limit(VLLM) is None
    assert json.loads(chat(VLLM).request({**CHAT, field: 10**9}).body)[field] == 10**9


def test_an_azure_deployment_of_a_known_model_is_clamped_too():
    # the planner counts the clamped value for it (providers.output_limit), so the translator must clamp
    azure = Target(model="a", upstream_model="gpt-4o-mini", provider="azure", api="azure_openai",
                   base_path="/openai", options={"api_version": "2024-10-21"})
    assert json.loads(chat(azure).request({**CHAT, "max_tokens": 10**9}).body)["max_tokens"] == 16384
    assert json.loads(chat(AZURE).request({**CHAT, "max_tokens": 10**9}).body)["max_tokens"] == 10**9  # unknown name


def test_azure_ga_gets_only_its_api_versions_fields():
    # Azure 2024-10-21 answers "Unrecognized request argument supplied" to fields its schema lacks.
    sent = json.loads(chat(AZURE).request({**CHAT, "store": True, "metadata": {"a": "b"}, "service_tier": "auto",
                                           "reasoning_effort": "low"}).body)
    assert not {"store", "metadata", "service_tier", "reasoning_effort"} & set(sent)   # the answer is the same
    for extra, param in (({"web_search_options": {}}, "web_search_options"), ({"top_k": 3}, "top_k"),
                         ({"modalities": ["text", "audio"]}, "modalities")):
        with pytest.raises(oo.UnsupportedFeature) as info:
            chat(AZURE).request({**CHAT, **extra})
        assert info.value.param == param
    newer = Target(model="a", upstream_model="dep", provider="azure", api="azure_openai", base_path="/openai",
                   options={"api_version": "2025-04-01-preview"})
    assert json.loads(chat(newer).request({**CHAT, "store": True}).body)["store"] is True


def test_azure_ga_fields_are_its_published_schema():
    from tests.vendor_specs import _spec
    assert oo.AZURE_CHAT_FIELDS["2024-10-21"] == _spec("azure_openai").operations["ChatCompletions_Create"].top_level
