"""Bad input gets an OpenAI-shaped error with the right status, and the gateway keeps serving."""

from __future__ import annotations

import gzip
import socket
import zlib

import brotli
import httpx
import openai
import pytest

from .conftest import AUTH, MODELS, fault, upstream_requests


def _post(gateway, body: bytes, content_type: str = "application/json", path: str = "/chat/completions"):
    return httpx.post(gateway.base_url + path, content=body, headers={"content-type": content_type, **AUTH}, timeout=20)


def _assert_openai_error(response: httpx.Response, status: int, fragment: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert fragment in error["message"], error
    return error


@pytest.mark.parametrize("body,status,fragment", [
    (b'{"model": "gpt-4o-mini", "messages": [', 400, "could not parse the JSON"),
    (b'[1, 2]', 400, "must be a JSON object"),
    (b'{"messages": [{"role": "user", "content": "x"}]}', 400, "model parameter"),
    (b'{"model": "gpt-4o-mini"}', 400, "'messages'"),
    (b'{"model": "gpt-4o-mini", "messages": "hello"}', 400, "expected an array"),
    (b'{"model": 7, "messages": [{"role": "user", "content": "x"}]}', 400, "'model'"),
    (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"}', 400,
     "'temperature'"),
    (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\xff\xfe"}]}', 400, "UTF-8"),
    (b'{"model": "no-such-model", "messages": [{"role": "user", "content": "x"}]}', 404, "no-such-model"),
    (b'{"model": "claude-haiku-4-5", "n": 2, "messages": [{"role": "user", "content": "x"}]}', 422, "n"),
])
def test_bad_requests(gateway, body, status, fragment):
    _assert_openai_error(_post(gateway, body), status, fragment)


def test_wrong_content_type_is_415(gateway):
    error = _assert_openai_error(_post(gateway, b"model=gpt-4o-mini", "application/x-www-form-urlencoded"), 415,
                                 "application/json")
    assert error["type"] == "invalid_request_error"


def test_body_over_the_limit_is_413(gateway):
    big = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "' + b"x" * (5 * 1024 * 1024) + b'"}]}'
    _assert_openai_error(_post(gateway, big), 413, "larger than")


def test_streamed_upload_over_envoys_buffer_is_413(gateway):
    def chunks():
        yield b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"x" * 100_000
        yield b'"}]}'
    response = httpx.post(gateway.base_url + "/chat/completions", content=chunks(),
                          headers={"content-type": "application/json", **AUTH}, timeout=20)
    assert response.status_code == 413
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize("method,path", [("GET", "/v1/chat/completions"), ("POST", "/v1/completions"),
                                         ("GET", "/v2/anything"), ("DELETE", "/v1/models")])
def test_unknown_endpoints_are_404(gateway, method, path):
    response = httpx.request(method, f"http://127.0.0.1:{gateway.listen_port}{path}", headers=AUTH, timeout=20)
    _assert_openai_error(response, 404, "Invalid URL")


def test_unknown_model_via_sdk(client):
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-17", messages=[{"role": "user", "content": "x"}])
    assert info.value.body["code"] == "model_not_found"


def test_unsupported_feature_names_the_parameter(client):
    with pytest.raises(openai.UnprocessableEntityError) as info:
        client.chat.completions.create(model=MODELS["anthropic"], n=3, messages=[{"role": "user", "content": "x"}])
    assert info.value.body["param"] == "n"


@pytest.mark.parametrize("provider", ["openai", "vllm"])
def test_a_logit_bias_key_that_is_not_a_token_id_is_refused_before_any_provider(gateway, client, provider):
    """logit_bias maps token ids to biases (createChatCompletion); OpenAI answers a word such as "AI" with a
    400. The gateway forwarded it to OpenAI-API providers; now its validator refuses it for every model,
    with OpenAI's words, and no provider is asked."""
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODELS[provider], logit_bias={"AI": 10},
                                       messages=[{"role": "user", "content": "x"}])
    assert info.value.body["param"] == "logit_bias" and info.value.body["code"] == "invalid_value"
    assert info.value.body["message"].startswith("Invalid key in 'logit_bias': AI.")
    assert upstream_requests(gateway, provider) == []
    answer = client.chat.completions.create(model=MODELS[provider], logit_bias={"1": -100},
                                            messages=[{"role": "user", "content": "x"}])
    assert answer.choices[0].message.content.endswith("x")   # a token id still goes through


def test_gateway_keeps_serving_after_bad_input(gateway, client):
    for _ in range(3):
        _post(gateway, b"{nope")
    assert client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "ok?"}]) \
        .choices[0].message.content.endswith("ok?")


def test_provider_errors_become_openai_errors(gateway, client):
    fault(gateway, "anthropic", status=400)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODELS["anthropic"], messages=[{"role": "user", "content": "x"}])
    assert set(info.value.body) == {"message", "type", "param", "code"}
    fault(gateway, "gemini", status=500)
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model=MODELS["gemini"], messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 502


# ---- the measured failures of issue 16: each was a 500 or an empty reply ----------------------------

DEEP = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "x": ' + b"[" * 1000 + \
    b"]" * 1000 + b"}"


@pytest.mark.parametrize("path,body,param", [
    ("/chat/completions", DEEP, None),
    ("/chat/completions", b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\\ud800"}]}',
     "messages[0].content"),
    ("/chat/completions", b'{"model": "\\ud800", "messages": [{"role": "user", "content": "x"}]}', "model"),
    ("/embeddings", b'{"model": "text-embedding-3-small", "input": "\\ud800"}', "input"),
    ("/feedback", b'{"request_id": "\\ud800", "score": 1}', "request_id"),
    ("/chat/completions", b'{"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "x"}], '
                          b'"max_tokens": ' + b"9" * 4300 + b"}", None),
    ("/chat/completions", b'{"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "x"}], '
                          b'"max_tokens": 99999999999}', "max_tokens"),
    ("/chat/completions", b'{"model": "claude-haiku-4-5", "tools": [1], "messages": [{"role": "user", '
                          b'"content": "x"}]}', "tools[0]"),
    ("/chat/completions", b'{"model": "gemini-3.5-flash-lite", "tools": [1], "messages": [{"role": "user", '
                          b'"content": "x"}]}', "tools[0]"),
    ("/chat/completions", b'{"model": "claude-haiku-4-5", "messages": [{"role": "assistant", "tool_calls": '
                          b'[{"id": "c", "type": "function", "function": 1}]}, {"role": "user", "content": "x"}]}',
     "messages[0].tool_calls[0].function"),
    ("/chat/completions", b'{"model": "gemini-3.5-flash-lite", "messages": [{"role": "assistant", "tool_calls": '
                          b'"x"}, {"role": "user", "content": "x"}]}', "messages[0].tool_calls"),
    ("/chat/completions", b'{"model": "gpt-4o-mini", "temperature": NaN, "messages": [{"role": "user", '
                          b'"content": "x"}]}', None),
    ("/chat/completions", b'{"model": "gpt-4o-mini", "temperature": Infinity, "messages": [{"role": "user", '
                          b'"content": "x"}]}', None),
    ("/chat/completions", b'{"model": "gpt-4o-mini", "n": 0, "messages": [{"role": "user", "content": "x"}]}', "n"),
])
def test_hostile_bodies_are_400_naming_the_field(gateway, path, body, param):
    error = _assert_openai_error(_post(gateway, body, path=path), 400, "")
    assert error["param"] == param, error
    assert error["type"] == "invalid_request_error"


def _chat_of_size(size: int) -> bytes:
    # A 4 MiB prompt is about 1.05M tokens: only Gemini's 1,048,576-token window holds it (gpt-4o-mini's
    # 128K answers context_length_exceeded, as OpenAI would).
    head, tail = b'{"model": "gemini-3.5-flash-lite", "messages": [{"role": "user", "content": "', b'"}]}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_of_exactly_the_limit_is_served(gateway, chunked):
    body = _chat_of_size(4 * 1024 * 1024)
    content = (body[i:i + 65536] for i in range(0, len(body), 65536)) if chunked else body
    response = httpx.post(gateway.base_url + "/chat/completions", content=content, timeout=30,
                          headers={"content-type": "application/json", **AUTH})
    assert response.status_code == 200, response.text[:300]


@pytest.mark.parametrize("size", [4 * 1024 * 1024 + 1, 6 * 1024 * 1024, 8 * 1024 * 1024])
def test_chunked_bodies_over_the_limit_are_413(gateway, size):
    body = _chat_of_size(size)
    response = httpx.post(gateway.base_url + "/chat/completions", timeout=30,
                          content=(body[i:i + 65536] for i in range(0, len(body), 65536)),
                          headers={"content-type": "application/json", **AUTH})
    assert response.status_code == 413, response.text[:300]
    assert set(response.json()["error"]) == {"message", "type", "param", "code"}


def test_gzip_bodies_are_inflated(gateway):
    response = httpx.post(gateway.base_url + "/chat/completions", timeout=20,
                          content=gzip.compress(_chat_of_size(2000)),
                          headers={"content-type": "application/json", "content-encoding": "gzip", **AUTH})
    assert response.status_code == 200, response.text


def test_brotli_bodies_are_inflated(gateway):
    response = httpx.post(gateway.base_url + "/chat/completions", timeout=20,
                          content=brotli.compress(_chat_of_size(2000)),
                          headers={"content-type": "application/json", "content-encoding": "br", **AUTH})
    assert response.status_code == 200, response.text


def test_a_decompression_bomb_is_413(gateway):
    bomb = gzip.compress(_chat_of_size(64 * 1024 * 1024))     # 64 MiB of JSON in about 64 KiB
    assert len(bomb) < 100_000
    response = httpx.post(gateway.base_url + "/chat/completions", timeout=30, content=bomb,
                          headers={"content-type": "application/json", "content-encoding": "gzip", **AUTH})
    assert response.status_code == 413, response.text[:300]


@pytest.mark.parametrize("encoding", ["deflate", "zstd", "compress"])
def test_other_encodings_are_415(gateway, encoding):
    response = httpx.post(gateway.base_url + "/chat/completions", timeout=20,
                          content=zlib.compress(_chat_of_size(300)),
                          headers={"content-type": "application/json", "content-encoding": encoding, **AUTH})
    _assert_openai_error(response, 415, encoding)


def _raw(gateway, request: bytes) -> bytes:
    """Send bytes on a fresh connection; the reply up to the end of its headers (or b'' if closed silently)."""
    with socket.create_connection(("127.0.0.1", gateway.listen_port), timeout=20) as sock:
        sock.sendall(request)
        reply = b""
        while b"\r\n\r\n" not in reply:
            data = sock.recv(65536)
            if not data:
                break
            reply += data
    return reply


_BODY = _chat_of_size(200)
_HEAD = b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"


@pytest.mark.parametrize("request_bytes,status", [
    (_HEAD + b"".join(b"x-h%d: v\r\n" % i for i in range(10_000)) + b"Content-Length: %d\r\n\r\n" % len(_BODY)
     + _BODY, 431),
    (_HEAD + b"x-big: " + b"a" * 100_000 + b"\r\nContent-Length: %d\r\n\r\n" % len(_BODY) + _BODY, 431),
    (_HEAD + b"Content-Length: abc\r\n\r\n" + _BODY, 400),
    (_HEAD + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\n" + _BODY, 400),
    (b"POST /v1/chat/completions HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
     % len(_BODY) + _BODY, 426),
], ids=["10k-headers", "100KB-header", "bad-content-length", "two-content-lengths", "http-1.0"])
def test_malformed_http1_gets_envoys_answer_not_an_empty_reply(gateway, request_bytes, status):
    reply = _raw(gateway, request_bytes)
    assert reply.startswith(b"HTTP/1.1 %d " % status), reply[:200]
    assert b"content-type: application/json" in reply.lower()


def test_the_gateway_serves_after_hostile_input(client):
    assert client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "still ok?"}]) \
        .choices[0].message.content.endswith("still ok?")
