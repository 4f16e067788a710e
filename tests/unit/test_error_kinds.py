"""A provider's failure as each front door names it: one table (``errors.KINDS``), per provider x door.

Each provider's overload and rate limit arrive in its own API's words (Gemini's 503 ``UNAVAILABLE`` and
429 ``RESOURCE_EXHAUSTED``, OpenAI's 503, Anthropic's 529 ``overloaded_error``), as a status before the
answer or as an error event in the middle of a stream. The client gets the same kind of failure whichever
provider said it, in its own API's words: OpenAI's type and code on Chat Completions, Anthropic's error
type on Messages, the Responses API's error envelope (and a failed response's ``error.code`` mid-stream).
"""

from __future__ import annotations

import json

import pytest

from extproc import errors
from extproc.apis import messages, responses
from extproc.providers import Target, chat_translator
from extproc.sse import SSEDecoder

TARGETS = {
    "openai": Target("gpt-4o-mini", "gpt-4o-mini", "openai", "openai", "/v1"),
    "anthropic": Target("claude-haiku-4-5", "claude-haiku-4-5", "anthropic", "anthropic", "/v1"),
    "gemini": Target("gemini-3.5-flash-lite", "gemini-3.5-flash-lite", "gemini", "gemini", "/v1beta"),
}

OVERLOADED = ("server_error", "service_unavailable", "overloaded_error", "server_error")
RATE_LIMITED = ("rate_limit_error", "rate_limit_exceeded", "rate_limit_error", "rate_limit_exceeded")
FAILED = ("upstream_error", "bad_gateway", "api_error", "server_error")

# (provider, its status, its error body as its API sends it) -> what each door says:
# (chat type, chat code, Messages type, Responses' failed code mid-stream).
BEFORE_THE_ANSWER = [
    ("openai", 503, {"error": {"message": "The engine is currently overloaded, please try again later.",
                               "type": "server_error", "param": None, "code": None}}, OVERLOADED),
    ("openai", 429, {"error": {"message": "Rate limit reached for requests", "type": "requests",
                               "param": None, "code": "rate_limit_exceeded"}}, RATE_LIMITED),
    ("anthropic", 529, {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
     OVERLOADED),
    ("anthropic", 429, {"type": "error", "error": {"type": "rate_limit_error", "message": "Number of requests "
                                                   "has exceeded your rate limit"}}, RATE_LIMITED),
    ("gemini", 503, {"error": {"code": 503, "message": "The model is overloaded. Please try again later.",
                               "status": "UNAVAILABLE"}}, OVERLOADED),
    ("gemini", 429, {"error": {"code": 429, "message": "Resource has been exhausted (e.g. check quota).",
                               "status": "RESOURCE_EXHAUSTED"}}, RATE_LIMITED),
    ("gemini", 500, {"error": {"code": 500, "message": "An internal error has occurred.", "status": "INTERNAL"}},
     FAILED),
]

# The error event each provider's API sends in the middle of a stream, after one chunk of text.
_ANTHROPIC_HEAD = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message",'
    b'"role":"assistant","content":[],"model":"claude-haiku-4-5","stop_reason":null,"stop_sequence":null,'
    b'"usage":{"input_tokens":5,"output_tokens":1}}}\n\n'
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"text","text":""}}\n\n'
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"Hel"}}\n\n')
_GEMINI_HEAD = b'data: {"candidates":[{"content":{"role":"model","parts":[{"text":"Hel"}]},"index":0}]}\r\n\r\n'
_OPENAI_HEAD = (b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini",'
                b'"choices":[{"index":0,"delta":{"content":"Hel"}}]}\n\n')


def _anthropic_event(kind: str, message: str) -> bytes:
    return _ANTHROPIC_HEAD + b"event: error\ndata: " + json.dumps(
        {"type": "error", "error": {"type": kind, "message": message}}).encode() + b"\n\n"


def _gemini_event(code: int, status: str, message: str) -> bytes:
    return _GEMINI_HEAD + b"data: " + json.dumps(
        {"error": {"code": code, "message": message, "status": status}}).encode() + b"\r\n\r\n"


MID_STREAM = [
    ("openai", _OPENAI_HEAD + b'data: {"error": {"message": "The server had an error while processing your '
                              b'request.", "type": "server_error", "param": null, "code": null}}\n\n', FAILED),
    ("anthropic", _anthropic_event("overloaded_error", "Overloaded"), OVERLOADED),
    ("anthropic", _anthropic_event("rate_limit_error", "Number of requests has exceeded your rate limit"),
     RATE_LIMITED),
    ("gemini", _gemini_event(503, "UNAVAILABLE", "The model is overloaded. Please try again later."), OVERLOADED),
    ("gemini", _gemini_event(429, "RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
     RATE_LIMITED),
]

CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
DOORS = {
    "chat": (None, CHAT),
    "messages": (messages, {"model": "m", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}),
    "responses": (responses, {"model": "m", "input": "hi"}),
}


def _translator(door: str, provider: str, stream: bool):
    module, client = DOORS[door]
    inner = chat_translator(TARGETS[provider], created=1, response_id="chatcmpl-x")
    if module is None:
        inner.request({**CHAT, **({"stream": True, "stream_options": {"include_usage": True}} if stream else {})})
        return inner
    client = {**client, **({"stream": True} if stream else {})}
    t = module.translator(inner, client, {"id": "msg_x" if module is messages else "resp_x", "created": 1})
    t.request(module.to_internal(client))
    return t


def _events(raw: bytes) -> list[dict]:
    return [json.loads(e.data) for e in SSEDecoder().feed(raw) if e.data not in ("", "[DONE]")]


@pytest.mark.parametrize("door", list(DOORS))
@pytest.mark.parametrize("provider, status, body, kinds", BEFORE_THE_ANSWER)
def test_a_providers_error_before_the_answer_reads_as_one_kind_on_each_door(door, provider, status, body, kinds):
    chat_type, chat_code, anthropic_type, _ = kinds
    mapped, out = _translator(door, provider, stream=False).error(status, json.dumps(body).encode())
    assert mapped == errors.upstream_status(status)
    got = json.loads(out)
    if door == "messages":
        assert got["type"] == "error" and got["error"]["type"] == anthropic_type, got
    else:   # Chat Completions, and the Responses API's envelope, which is the same
        assert (got["error"]["type"], got["error"]["code"]) == (chat_type, chat_code), got
    assert got["error"]["message"]


@pytest.mark.parametrize("door", list(DOORS))
@pytest.mark.parametrize("provider, raw, kinds", MID_STREAM)
def test_a_providers_error_event_mid_stream_reads_as_one_kind_on_each_door(door, provider, raw, kinds):
    chat_type, chat_code, anthropic_type, responses_code = kinds
    t = _translator(door, provider, stream=True)
    out = b"".join(t.stream_chunk(raw[i:i + 9]) for i in range(0, len(raw), 9)) + t.stream_end()
    last = _events(out)[-1]
    if door == "chat":
        assert (last["error"]["type"], last["error"]["code"]) == (chat_type, chat_code), last
    elif door == "messages":
        assert last["type"] == "error" and last["error"]["type"] == anthropic_type, last
    else:
        assert last["type"] == "response.failed" and last["response"]["error"]["code"] == responses_code, last


@pytest.mark.parametrize("status", sorted(errors.KINDS))
def test_each_status_is_found_again_from_its_openai_type_and_code(status):
    """A stream's error object carries no status; the doors name it by the status its type and code say."""
    openai_type, code, _ = errors.KINDS[status]
    assert errors.status_of({"type": openai_type, "code": code}) == status


def test_a_4xx_anthropic_does_not_list_is_its_invalid_request_error_and_a_5xx_its_api_error():
    assert [errors.anthropic_type(s) for s in (408, 415, 422, 431)] == ["invalid_request_error"] * 4
    assert [errors.anthropic_type(s) for s in (500, 502)] == ["api_error"] * 2
    assert errors.anthropic_type(503) == "overloaded_error" and errors.anthropic_type(504) == "timeout_error"
    assert errors.anthropic_type(409) == "conflict_error"   # a provider's refusal passed on: its own type
