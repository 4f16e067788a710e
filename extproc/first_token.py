"""Has a provider's stream produced its first content yet? (For a first-token deadline.)

Providers send the response headers, and often a frame or two without content (OpenAI's
role-only delta, Anthropic's ``message_start`` and ``content_block_start``), before the
model has produced anything. Envoy's per-try timeout stops at the response headers; the
upstream stage holds them until this says the first content arrived, so the per-try
timeout becomes a time-to-first-token deadline (README, "Deadlines").

Pure: bytes in, a boolean out. Content means, per provider API (their documented SSE forms):

- OpenAI / Azure OpenAI / OpenAI-compatible: a ``chat.completion.chunk`` whose
  ``choices[].delta`` carries non-empty ``content``, ``refusal`` or ``tool_calls``;
- Anthropic Messages: a ``content_block_delta`` event;
- Gemini ``streamGenerateContent?alt=sse``: a chunk with a non-empty
  ``candidates[].content.parts``.

Anything that ends the wait otherwise counts too: an ``error`` event, ``[DONE]``, a frame
that is not JSON, or the end of the body (the client must see what the provider said).
"""

from __future__ import annotations

import json

from .sse import SSEDecoder


class FirstContent:
    def __init__(self, api: str):
        self.api = api
        self.seen = False
        self._decoder = SSEDecoder()

    def feed(self, chunk: bytes, end_of_stream: bool = False) -> bool:
        """Add a body chunk; True once the first content (or an end) has arrived."""
        if self.seen:
            return True
        for event in self._decoder.feed(chunk):
            if _is_content(self.api, event.event, event.data):
                self.seen = True
                return True
        self.seen = end_of_stream
        return self.seen


def _is_content(api: str, event: str, data: str) -> bool:
    if event == "error" or data.strip() == "[DONE]":
        return True
    if not data.strip():
        return False
    try:
        payload = json.loads(data)
    except ValueError:
        return True
    if not isinstance(payload, dict) or "error" in payload:
        return True
    if api == "anthropic":
        return payload.get("type") in ("content_block_delta", "error")
    if api == "gemini":
        return any(isinstance(c, dict) and (c.get("content") or {}).get("parts")
                   for c in payload.get("candidates") or ())
    for choice in payload.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict) and (delta.get("content") or delta.get("refusal") or delta.get("tool_calls")):
            return True
    return False
