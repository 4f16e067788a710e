"""Provider errors that keep their meaning: one situation, one OpenAI code, whichever provider said it.

Each provider's error arrives in its own API's body (as the real API sends it, and as the simulators
send it); the client gets OpenAI's shape with OpenAI's code for the situation (``errors.OPENAI_CODES``),
the provider's own words in the message, and none of the gateway's account ids or keys.
"""

from __future__ import annotations

import json

import pytest

from extproc import errors
from extproc.providers import Target, chat_translator
from extproc.sse import SSEDecoder

TARGETS = {
    "openai": Target("gpt-4o-mini", "gpt-4o-mini", "openai", "openai", "/v1"),
    "azure_openai": Target("azure-gpt-4o-mini", "gpt-4o-mini", "azure", "azure_openai", "/openai",
                           {"api_version": "2024-10-21"}),
    "vllm": Target("llama", "llama-3.1-8b-instruct", "vllm", "openai", "/v1"),
    "anthropic": Target("claude-haiku-4-5", "claude-haiku-4-5", "anthropic", "anthropic", "/v1"),
    "gemini": Target("gemini-3.5-flash-lite", "gemini-3.5-flash-lite", "gemini", "gemini", "/v1beta"),
}


def translator(name: str, stream: bool = False, include_usage: bool = True):
    t = chat_translator(TARGETS[name], created=1, response_id="chatcmpl-x")
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        body |= {"stream": True, "stream_options": {"include_usage": True} if include_usage else None}
    t.request(body)
    return t


def error(name: str, status: int, body: dict) -> tuple[int, dict]:
    got, out = translator(name).error(status, json.dumps(body).encode())
    return got, json.loads(out)["error"]


def openai_error(message, code, type_="invalid_request_error", param=None):
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def anthropic_error(message, type_="invalid_request_error"):
    return {"type": "error", "error": {"type": type_, "message": message}, "request_id": "req_011"}


def google_error(message, code=400, status="INVALID_ARGUMENT"):
    return {"error": {"code": code, "message": message, "status": status}}


# The prompt over the model's context window, in each provider's own words and body.
CONTEXT_EXCEEDED = {
    "openai": openai_error("This model's maximum context length is 128000 tokens. However, your messages resulted "
                           "in 130000 tokens. Please reduce the length of the messages.", "context_length_exceeded",
                           param="messages"),
    "azure_openai": openai_error("This model's maximum context length is 128000 tokens. However, your messages "
                                 "resulted in 130000 tokens. Please reduce the length of the messages.",
                                 "context_length_exceeded", param="messages"),
    "vllm": {"object": "error", "message": "This model's maximum context length is 131072 tokens. However, you "
             "requested 140000 tokens (139000 in the messages, 1000 in the completion). Please reduce the length of "
             "the messages or completion.", "type": "BadRequestError", "param": None, "code": 400},
    "anthropic": anthropic_error("prompt is too long: 208310 tokens > 200000 maximum"),
    "gemini": google_error("The input token count (1048577) exceeds the maximum number of tokens allowed "
                           "(1048576)."),
}


@pytest.mark.parametrize("provider", sorted(CONTEXT_EXCEEDED))
def test_a_prompt_over_the_window_is_context_length_exceeded_from_every_provider(provider):
    """It read upstream_invalid_request from all five (OpenAI's own code was dropped too)."""
    body = CONTEXT_EXCEEDED[provider]
    status, err = error(provider, 400, body)
    assert (status, err["type"], err["code"]) == (400, "invalid_request_error", "context_length_exceeded")
    words = body["error"]["message"] if "error" in body else body["message"]
    assert err["message"] == words      # the provider's own words


def test_anthropics_prompt_plus_max_tokens_over_the_window_is_the_same_situation():
    _, err = error("anthropic", 400, anthropic_error(
        "input length and `max_tokens` exceed context limit: 188240 + 21333 > 200000, decrease input length or "
        "`max_tokens` and try again"))
    assert err["code"] == "context_length_exceeded"


@pytest.mark.parametrize("provider, body, code", [
    # Azure's prompt filter and OpenAI's safety system: one situation, OpenAI's code for it.
    ("azure_openai", {"error": {"message": "The response was filtered due to the prompt triggering Azure OpenAI's "
                                           "content management policy.", "type": None, "param": "prompt",
                                "code": "content_filter", "status": 400,
                                "innererror": {"code": "ResponsibleAIPolicyViolation"}}}, "invalid_prompt"),
    ("openai", openai_error("Invalid prompt: your prompt was flagged as potentially violating our usage policy.",
                            "invalid_prompt"), "invalid_prompt"),
    # Images: OpenAI's codes kept; Anthropic's documented limits (5 MB a file, 8000 px a side) given them.
    ("openai", openai_error("Invalid image.", "invalid_image"), "invalid_image"),
    ("anthropic", anthropic_error("messages.0.content.1.image.source.base64: image exceeds 5 MB maximum: 5272940 "
                                  "bytes > 5242880 bytes"), "image_file_too_large"),
    ("anthropic", anthropic_error("messages.7.content.2.image.source.base64.data: At least one of the image "
                                  "dimensions exceed max allowed size: 8000 pixels"), "image_too_large"),
])
def test_other_situations_get_openais_code(provider, body, code):
    status, err = error(provider, 400, body)
    assert (status, err["type"], err["code"]) == (400, "invalid_request_error", code)
    assert err["param"] is None     # Azure's "prompt" names no field of a chat request


@pytest.mark.parametrize("provider, body", [
    ("openai", openai_error("Invalid 'messages': empty array.", "empty_array", param="messages")),
    ("openai", openai_error("Something new.", "some_future_code")),
    ("azure_openai", {"error": {"code": "OperationNotSupported", "message": "The chatCompletion operation does not "
                                                                          "work with the specified model."}}),
    ("vllm", {"object": "error", "message": "max_tokens is too large", "type": "BadRequestError", "param": None,
              "code": 400}),
    ("anthropic", anthropic_error("messages: text content blocks must be non-empty")),
    ("gemini", google_error("* GenerateContentRequest.contents: contents is not specified")),
])
def test_a_code_whose_meaning_the_gateway_does_not_know_is_not_passed_on(provider, body):
    status, err = error(provider, 400, body)
    assert (status, err["code"]) == (400, "upstream_invalid_request")


def test_the_code_is_kept_only_where_the_status_has_none_of_its_own():
    """404, 413 and 429 say what happened by their status, whatever code came with it."""
    for status, code in ((404, "model_not_found"), (413, "request_too_large"), (429, "rate_limit_exceeded")):
        got, err = error("openai", status, openai_error("x", "context_length_exceeded"))
        assert (got, err["code"]) == (status, code)
    assert json.loads(errors.upstream_error(422, "x", "invalid_prompt")[1])["error"]["code"] == "invalid_prompt"
    assert json.loads(errors.upstream_error(500, "x", "invalid_prompt")[1])["error"]["code"] == "bad_gateway"


# -- secrets ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("provider, status, body, secret", [
    ("openai", 429, openai_error("Rate limit reached for gpt-4o-mini in organization org-AbC123dEf456 on tokens per "
                                 "min (TPM): Limit 200000, Used 199000, Requested 2000.", "rate_limit_exceeded",
                                 "tokens"), "org-AbC123dEf456"),
    ("openai", 401, openai_error("Incorrect API key provided: sk-proj-****************************ab12. You can "
                                 "find your API key in your account settings.", "invalid_api_key"), "ab12"),
    ("anthropic", 429, anthropic_error("This request would exceed the rate limit for your organization "
                                       "(0dccdde6-f924-4f1b-bb3b-92ef846e0a5b) of 20,000 input tokens per minute.",
                                       "rate_limit_error"), "0dccdde6"),
    ("anthropic", 429, anthropic_error("This request would exceed your organization's rate limit of 30,000 input "
                                       "tokens per minute (org: 80162711-722b-4454-ae75-c6334e6796f2, model: "
                                       "claude-opus-4-6).", "rate_limit_error"), "80162711"),
    ("gemini", 429, google_error("Quota exceeded for quota metric 'Generate Content API requests per minute' of "
                                 "service 'generativelanguage' for consumer 'project_number:123456789012'.", 429,
                                 "RESOURCE_EXHAUSTED"), "123456789012"),
    ("gemini", 403, google_error("Generative Language API has not been used in project 987654321098 before or it is "
                                 "disabled.", 403, "PERMISSION_DENIED"), "987654321098"),
    ("gemini", 400, google_error("API key not valid: AIzaSyD-abcdefghijklmnopqrstuvwxyz01234."), "AIzaSy"),
])
def test_no_account_id_or_key_reaches_the_client(provider, status, body, secret):
    _, err = error(provider, status, body)
    assert secret not in err["message"] and "[redacted]" in err["message"]


# -- error events inside an OpenAI-compatible stream ------------------------------------------------

CHUNK = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "Hel"}}],
         "usage": None}
# OpenAI's and Azure's mid-stream error (its error object), vLLM's (the status as the code).
OPENAI_EVENT = {"error": {"message": "The server had an error while processing your request.",
                          "type": "server_error", "param": None, "code": None}}
VLLM_EVENT = {"error": {"message": "The engine loop has stopped.", "type": "InternalServerError", "param": None,
                        "code": 500}}


def sse(*events: dict) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)


def events_of(raw: bytes) -> list:
    return [json.loads(e.data) for e in SSEDecoder().feed(raw) if e.data != "[DONE]"]


@pytest.mark.parametrize("provider, event", [("openai", OPENAI_EVENT), ("azure_openai", OPENAI_EVENT),
                                             ("vllm", VLLM_EVENT)])
@pytest.mark.parametrize("include_usage", [True, False])
@pytest.mark.parametrize("piece", [1, 7, 10_000])
def test_an_error_event_in_an_openai_compatible_stream_reads_like_anthropics_and_geminis(
        provider, event, include_usage, piece):
    """It passed through with the provider's own type and code (server_error/None, InternalServerError/500)
    while Anthropic's and Gemini's were normalized: now it reads as the 500 it stands for would before
    the stream, however the bytes were split."""
    t = translator(provider, stream=True, include_usage=include_usage)
    raw = sse(CHUNK, event)
    out = b"".join(t.stream_chunk(raw[i:i + piece]) for i in range(0, len(raw), piece)) + t.stream_end()
    got = events_of(out)
    assert got[-1] == {"error": errors.upstream_event_error(500, event["error"]["message"])}
    assert got[-1]["error"]["type"] == "upstream_error" and got[-1]["error"]["code"] == "bad_gateway"
    assert got[0]["choices"] == CHUNK["choices"]
    assert t.ending == "error_event"


def test_the_stream_around_an_error_event_stays_byte_for_byte():
    t = translator("openai", stream=True)
    head = sse(CHUNK, CHUNK)
    out = t.stream_chunk(head + sse(OPENAI_EVENT)[:20])
    assert out == head                    # complete events at once, the incomplete error event held
    rest = t.stream_chunk(sse(OPENAI_EVENT)[20:])
    assert events_of(rest) == [{"error": errors.upstream_event_error(500, OPENAI_EVENT["error"]["message"])}]


@pytest.mark.parametrize("provider, event, status, code", [
    ("openai", {"error": {"message": "Rate limit reached", "type": "requests", "param": None,
                          "code": "rate_limit_exceeded"}}, 429, "rate_limit_exceeded"),
    ("vllm", {"error": {"message": "This model's maximum context length is 131072 tokens. However, you requested "
                                   "140000 tokens.", "type": "BadRequestError", "param": None, "code": 400}},
     400, "context_length_exceeded"),
    ("azure_openai", {"error": {"message": "filtered", "type": None, "param": "prompt", "code": "content_filter"}},
     400, "invalid_prompt"),
])
def test_a_stream_error_reads_as_the_status_it_stands_for(provider, event, status, code):
    t = translator(provider, stream=True)
    got = events_of(t.stream_chunk(sse(CHUNK, event)))[-1]["error"]
    assert got["code"] == code
    assert got == errors.upstream_event_error(status, event["error"]["message"], code)


def test_anthropic_and_gemini_stream_errors_keep_openais_code_too():
    t = translator("anthropic", stream=True)
    out = t.stream_chunk(b'event: message_start\ndata: {"type":"message_start","message":{"model":"m","usage":'
                         b'{"input_tokens":1,"output_tokens":1}}}\n\nevent: error\ndata: {"type":"error","error":'
                         b'{"type":"invalid_request_error","message":"prompt is too long: 208310 tokens > 200000 '
                         b'maximum"}}\n\n')
    assert events_of(out)[-1]["error"]["code"] == "context_length_exceeded"
    t = translator("gemini", stream=True)
    out = t.stream_chunk(sse(google_error("The input token count (1048577) exceeds the maximum number of tokens "
                                          "allowed (1048576).")))
    assert events_of(out)[-1]["error"]["code"] == "context_length_exceeded"
