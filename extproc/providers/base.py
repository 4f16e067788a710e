"""The translator interface every provider API pair implements.

A translator is made per upstream attempt and is pure: it takes the client's
OpenAI request (already parsed, never edited in place) and returns what to send
to the provider; it turns the provider's answer, whole or chunk by chunk, back
into OpenAI bytes. No sockets, no clocks (``created`` is passed in), no gRPC.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Target:
    """Where one attempt goes: which model, on which provider, spoken how."""

    model: str                  # the gateway's model id, as clients name it
    upstream_model: str         # the provider's own name for it (Azure: the deployment)
    provider: str               # provider name in the routing config (and its Envoy cluster)
    api: str                    # "openai" | "azure_openai" | "anthropic" | "gemini"
    base_path: str = ""         # path prefix on the provider host, e.g. "/v1"
    options: dict[str, Any] = field(default_factory=dict)  # API-specific, e.g. Azure api_version


@dataclass
class UpstreamRequest:
    """What the provider receives: path, extra non-secret headers, body."""

    path: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0     # of input_tokens: read from the provider's prompt cache
    cache_write_tokens: int = 0      # of input_tokens: written to it (Anthropic; billed above the input price)
    cache_write_1h_tokens: int = 0   # of cache_write_tokens: with a 1-hour lifetime


class ChatTranslator(abc.ABC):
    """OpenAI ``/v1/chat/completions`` to one provider API and back."""

    #: True when the provider already answers in the OpenAI shape, so the
    #: gateway can let its response body pass untouched.
    passthrough_response = False

    def __init__(self, target: Target, *, created: int, response_id: str):
        self.target = target
        self.created = created          # unix seconds, for "created" in responses
        self.response_id = response_id  # "chatcmpl-..." used when the provider gives none
        self.usage: Usage | None = None  # filled in once the provider reported it
        self.stream = False
        self.include_usage = False

    @abc.abstractmethod
    def request(self, body: dict[str, Any]) -> UpstreamRequest:
        """Translate an OpenAI chat request. Raises ``UnsupportedFeature`` (422) or ``InvalidRequest``."""

    @abc.abstractmethod
    def response(self, body: bytes) -> bytes:
        """Translate a provider's successful (2xx) JSON answer into a ``chat.completion``."""

    @abc.abstractmethod
    def error(self, status: int, body: bytes) -> tuple[int, bytes]:
        """Translate a provider's error answer into (status, OpenAI error body)."""

    @abc.abstractmethod
    def stream_chunk(self, data: bytes) -> bytes:
        """Feed raw bytes of the provider's SSE stream; return OpenAI SSE bytes ready to send (maybe empty)."""

    @abc.abstractmethod
    def stream_end(self) -> bytes:
        """The provider's stream ended: flush, and finish with ``data: [DONE]`` (or an error event)."""

    def stream_flush(self) -> bytes:
        """A passthrough stream (``passthrough_response``) ended: the bytes ``stream_chunk`` still held
        (an incomplete last event). Empty unless a translator holds some."""
        return b""

    @property
    def ending(self) -> str | None:
        """How the provider's stream ended, as far as this translator saw (accounting reads it):
        "completed" (its terminal event came), "error_event" (it sent an error event), "cut" (its
        bytes ended without either), or None (still running, or cut before ``stream_end``)."""
        if getattr(self, "_cut", False):
            return "cut"
        if getattr(self, "_failed", False):
            return "error_event"
        if getattr(self, "_finished", False):
            return "completed"
        return None


class EmbeddingsTranslator(abc.ABC):
    """OpenAI ``/v1/embeddings`` to one provider API and back."""

    passthrough_response = False

    def __init__(self, target: Target):
        self.target = target
        self.usage: Usage | None = None

    @abc.abstractmethod
    def request(self, body: dict[str, Any]) -> UpstreamRequest: ...

    @abc.abstractmethod
    def response(self, body: bytes) -> bytes: ...

    @abc.abstractmethod
    def error(self, status: int, body: bytes) -> tuple[int, bytes]: ...
