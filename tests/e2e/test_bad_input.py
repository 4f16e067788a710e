"""Bad input gets an OpenAI-shaped error with the right status, and the gateway keeps serving."""

from __future__ import annotations

import httpx
import openai
import pytest

from .conftest import AUTH, MODELS


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
    (b'{"model": "claude-3-5-haiku", "n": 2, "messages": [{"role": "user", "content": "x"}]}', 422, "n"),
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


def test_gateway_keeps_serving_after_bad_input(gateway, client):
    for _ in range(3):
        _post(gateway, b"{nope")
    assert client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "ok?"}]) \
        .choices[0].message.content.endswith("ok?")


def test_provider_errors_become_openai_errors(gateway, client):
    httpx.put(f"{gateway.sim_url('anthropic')}/_sim/faults", json={"status": 400})
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODELS["anthropic"], messages=[{"role": "user", "content": "x"}])
    assert set(info.value.body) == {"message", "type", "param", "code"}
    httpx.put(f"{gateway.sim_url('gemini')}/_sim/faults", json={"status": 500})
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model=MODELS["gemini"], messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 502
