"""When a provider's stream has produced its first content (the first-token deadline's signal)."""

from __future__ import annotations

import json

import pytest

from extproc.first_token import FirstContent, hand_over


def sse(data, event=None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data) if not isinstance(data, str) else data}\n\n".encode()


def test_openai_role_frame_is_not_content_but_a_token_is():
    f = FirstContent("openai")
    role = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    assert f.feed(sse(role)) is False
    token = sse({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "Hi"}}]})
    assert f.feed(token[:20]) is False and f.feed(token[20:]) is True   # split anywhere
    assert f.feed(b"") is True                                           # stays seen


def test_a_tool_call_counts_as_content():
    f = FirstContent("azure_openai")
    assert f.feed(sse({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "c"}]}}]}))


def test_anthropic_waits_for_a_content_block_delta():
    f = FirstContent("anthropic")
    assert not f.feed(sse({"type": "message_start", "message": {}}, "message_start"))
    assert not f.feed(sse({"type": "content_block_start", "index": 0}, "content_block_start"))
    assert not f.feed(sse({"type": "ping"}, "ping"))
    assert f.feed(sse({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "Hi"}},
                      "content_block_delta"))


def test_gemini_content_parts():
    f = FirstContent("gemini")
    assert not f.feed(sse({"candidates": [{"content": {"parts": []}}]}))
    assert f.feed(sse({"candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"}}]}))


@pytest.mark.parametrize("chunk", [sse("[DONE]"), sse({"error": {"message": "overloaded"}}, "error"),
                                   sse("not json")])
def test_whatever_ends_the_wait_releases_the_headers(chunk):
    assert FirstContent("openai").feed(chunk)


def test_the_end_of_the_body_releases_the_headers():
    assert FirstContent("anthropic").feed(b"", end_of_stream=True)


# An error event before any content: the status it stands for (issue 12, tryout 6 H4).

@pytest.mark.parametrize("api, chunk, status", [
    ("anthropic", sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "error"), 529),
    ("anthropic", sse({"type": "error", "error": {"type": "rate_limit_error", "message": "slow"}}, "error"), 429),
    ("anthropic", sse({"type": "error", "error": {"type": "invalid_request_error", "message": "x"}}, "error"), 400),
    ("anthropic", sse({"type": "error", "error": {"type": "brand_new_error", "message": "x"}}, "error"), 500),
    ("gemini", sse({"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}), 503),
    ("gemini", sse({"error": {"code": "UNAVAILABLE", "message": "?"}}), 500),
    ("openai", sse({"error": {"message": "The server had an error", "type": "server_error", "param": None,
                              "code": None}}), 500),
    ("openai", sse({"error": {"message": "Rate limit", "type": "requests", "code": "rate_limit_exceeded"}}), 429),
    ("vllm", sse({"error": {"message": "overloaded", "type": "ServiceUnavailableError", "code": 503}}), 503),
    ("azure_openai", sse({"error": "plain words"}), 500),
])
def test_an_error_before_content_says_the_status_it_stands_for(api, chunk, status):
    f = FirstContent(api)
    assert f.feed(chunk) is True and f.failed == status


def test_anthropic_overload_after_message_start_is_a_failure_before_content():
    f = FirstContent("anthropic")
    assert not f.feed(sse({"type": "message_start", "message": {}}, "message_start"))
    assert f.failed is None
    assert f.feed(sse({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}, "error"))
    assert f.failed == 529


@pytest.mark.parametrize("chunk", [
    sse({"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "Hi"}}]}),
    sse("[DONE]"), sse("not json")])
def test_content_or_other_endings_are_no_failure(chunk):
    f = FirstContent("openai")
    assert f.feed(chunk) and f.failed is None


def test_an_error_after_content_is_not_looked_at():
    f = FirstContent("openai")
    assert f.feed(sse({"choices": [{"index": 0, "delta": {"content": "Hi"}}]}))
    assert f.feed(sse({"error": {"message": "late", "type": "server_error"}})) and f.failed is None


@pytest.mark.parametrize("failed, attempt, attempts, expected", [
    (529, 1, 3, True), (500, 2, 3, True), (429, 1, 2, True), (503, 1, 3, True),
    (503, 3, 3, False),    # the last attempt: the client gets the provider's error event
    (503, 1, 1, False),    # nothing to hand over to
    (400, 1, 3, False),    # the request's own fault: another tier would refuse it too
    (None, 1, 3, False),   # content, [DONE], the end of the body
])
def test_hand_over(failed, attempt, attempts, expected):
    assert hand_over(failed, attempt, attempts) is expected
