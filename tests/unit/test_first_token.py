"""When a provider's stream has produced its first content (the first-token deadline's signal)."""

from __future__ import annotations

import json

import pytest

from extproc.first_token import FirstContent


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
