"""Has a provider's stream produced its first content yet? (For a first-token deadline.)

Providers send the response headers, and often a frame or two without content (OpenAI's
role-only delta, Anthropic's ``message_start`` and ``content_block_start``), before the
model has produced anything. The upstream stage holds every unhedged stream's headers until
this says the first content arrived: until then nothing has reached the client, so a failure
is still Envoy's router's to retry on the next tier or to answer with a status (README,
"Streams that fail before content"); and for latency-first work with a fallback the
attempt's deadline becomes a time-to-first-token deadline (README, "Deadlines").

Pure: bytes in, a boolean out. Content means, per provider API (their documented SSE forms):

- OpenAI / Azure OpenAI / OpenAI-compatible: a ``chat.completion.chunk`` whose
  ``choices[].delta`` carries non-empty ``content``, ``refusal`` or ``tool_calls``;
- Anthropic Messages: a ``content_block_delta`` event;
- Gemini ``streamGenerateContent?alt=sse``: a chunk with a non-empty
  ``candidates[].content.parts``.

Anything that ends the wait otherwise counts too: an ``error`` event, ``[DONE]``, a frame
that is not JSON, or the end of the body (the client must see what the provider said).

An error event that comes before any content also says which HTTP status it stands for
(``failed``): Anthropic's ``event: error`` by its error type (its "Errors" page: ``overloaded_error``
529, ``rate_limit_error`` 429, ...), Gemini's error object by its ``code``, an OpenAI-compatible
``{"error": ...}`` frame by its code or type (``openai_openai.event_status``). Nothing of the
stream has reached the client then, so the upstream stage can hand the attempt to the next tier as
that status (README, "Streams that fail before content") instead of releasing a 200 that only
carries the error.
"""

from __future__ import annotations

import json

from .providers.openai_anthropic import ERROR_STATUS as ANTHROPIC_ERROR_STATUS
from .providers.openai_openai import event_status as openai_event_status
from .sse import SSEDecoder
from .telemetry import provider_fault


class FirstContent:
    def __init__(self, api: str):
        self.api = api
        self.seen = False
        self.failed: int | None = None   # the status an error event before any content stands for
        self._decoder = SSEDecoder()

    def feed(self, chunk: bytes, end_of_stream: bool = False) -> bool:
        """Add a body chunk; True once the first content (or an end) has arrived. When that end is
        the provider's error event, ``failed`` is the HTTP status it stands for (429, 500, 529 ...)."""
        if self.seen:
            return True
        for event in self._decoder.feed(chunk):
            if _is_content(self.api, event.event, event.data):
                self.seen = True
                self.failed = error_status(self.api, event.event, event.data)
                return True
        self.seen = end_of_stream
        return self.seen


def hand_over(failed: int | None, attempt: int, attempts: int) -> bool:
    """Should a held stream's error before content go to the next tier rather than to the client?

    Only a provider's failure (429 or 5xx: what Envoy's router retries, and what the health tracker
    counts against it), and only when the plan has an attempt after ``attempt`` (1-based) among its
    ``attempts``: on the last one the client gets the provider's error event, as before."""
    return failed is not None and provider_fault(failed) and attempt < attempts


def error_status(api: str, event: str, data: str) -> int | None:
    """The HTTP status a provider's stream error event stands for, or None when the event is not one.

    Anthropic: ``event: error`` (or a ``"type": "error"`` payload) by ``error.type``, 500 for a type
    its Errors page does not list; Gemini: the error object's ``code`` when it is an HTTP status, else
    500; OpenAI-compatible (OpenAI, Azure, vLLM): ``openai_openai.event_status``."""
    try:
        payload = json.loads(data)
    except ValueError:
        return 500 if event == "error" else None
    if not isinstance(payload, dict):
        return 500 if event == "error" else None
    err = payload.get("error")
    if event != "error" and payload.get("type") != "error" and err is None:
        return None
    if isinstance(err, str):
        err = {"message": err}
    if not isinstance(err, dict):
        err = {}
    if api == "anthropic":
        return ANTHROPIC_ERROR_STATUS.get(err.get("type"), 500)
    if api == "gemini":
        code = err.get("code")
        return code if isinstance(code, int) and not isinstance(code, bool) and 400 <= code < 600 else 500
    return openai_event_status(err)


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
