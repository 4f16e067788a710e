"""The front-door interface: one client API to and from the gateway's internal form.

The two axes of translation: a front door (this package, one module per client API) turns a
client's request into the internal form and the internal answer back into the client's API; a
provider translator (``extproc.providers``, one module per provider API) turns the internal form
into a provider's request and its answer back. The internal form is the OpenAI Chat Completions
request and answer (whole ``chat.completion`` JSON, or ``chat.completion.chunk`` SSE ending in
``[DONE]``), since that is what every provider translator already speaks; policy, budgets,
accounting and fallback see only it.

A ``FrontDoorTranslator`` wraps one provider translator for one attempt, so Envoy's retries and
hedges, and accounting (``usage``, ``ending``), work as for an OpenAI client.
"""

from __future__ import annotations

import abc
import json
from typing import Any

from .. import sse
from ..providers.base import ChatTranslator, UpstreamRequest


class FrontDoorTranslator(ChatTranslator):
    """A provider translator seen through a front door: the internal answer re-shaped for the client.

    Subclasses implement ``answer`` (whole JSON), ``events`` (internal SSE bytes in, client SSE bytes
    out) and ``error_body``. ``last_internal`` keeps the internal SSE of the latest chunk, which is
    what accounting counts when a stream is cut (``endings.delivered_text`` reads the internal form)."""

    def __init__(self, inner: ChatTranslator, client: dict[str, Any], ids: dict[str, Any]):
        # The base constructor is not called: usage and ending are the inner translator's.
        self.inner = inner
        self.target = inner.target
        self.client = client      # the client's request, as sent (echoed in some answers)
        self.ids = ids            # {"id": the answer's id, "created": unix seconds}
        self.last_internal = b""

    passthrough_response = False

    @property
    def usage(self):  # type: ignore[override]
        return self.inner.usage

    @usage.setter
    def usage(self, value) -> None:
        self.inner.usage = value

    @property
    def ending(self) -> str | None:
        return self.inner.ending

    @property
    def stream(self) -> bool:  # type: ignore[override]
        return self.inner.stream

    @stream.setter
    def stream(self, value: bool) -> None:
        self.inner.stream = value

    def request(self, body: dict[str, Any]) -> UpstreamRequest:
        return self.inner.request(body)

    def response(self, body: bytes) -> bytes:
        internal = self.inner.response(body)
        self.last_internal = internal   # the answer in the internal (OpenAI) form: what shadow evaluation reads
        return self.answer(internal)

    def error(self, status: int, body: bytes) -> tuple[int, bytes]:
        status, internal = self.inner.error(status, body)
        return status, self.error_body(status, internal)

    def stream_chunk(self, data: bytes) -> bytes:
        internal = self.inner.stream_chunk(data)
        self.last_internal = internal
        return self.events(internal) if internal else b""

    def stream_end(self) -> bytes:
        internal = self.inner.stream_end()
        self.last_internal += internal   # after the last chunk's, in the same body message
        return self.events(internal, end=True)

    @abc.abstractmethod
    def answer(self, internal: bytes) -> bytes:
        """A whole ``chat.completion`` (JSON bytes) as the client API's answer."""

    @abc.abstractmethod
    def events(self, internal: bytes, end: bool = False) -> bytes:
        """Internal SSE bytes (any split) as the client API's SSE bytes; ``end``: the stream ended."""

    @abc.abstractmethod
    def error_body(self, status: int, internal: bytes) -> bytes:
        """An OpenAI-shaped error body as the client API's error body."""


class TranslatedStream(FrontDoorTranslator):
    """A front door whose stream is rebuilt from the internal OpenAI SSE, event by event: ``_event`` turns
    one internal event's data into the client API's events, ``_final`` closes the client's stream. A
    stream the provider completed but whose ``[DONE]`` never came is still closed properly here; a cut
    or failed one is not (its error event comes from the inner translator)."""

    def __init__(self, inner: ChatTranslator, client: dict[str, Any], ids: dict[str, Any]):
        super().__init__(inner, client, ids)
        self._decoder = sse.SSEDecoder()
        self._started = False   # the client's stream has begun (its first event went out)
        self._done = False      # the client's stream is closed

    def events(self, internal: bytes, end: bool = False) -> bytes:
        out = b""
        for event in self._decoder.feed(internal):
            out += self._event(event.data)
        if end and not self._done and self._started and self.inner.ending == "completed":
            out += self._final()
        return out

    def _event(self, data: str) -> bytes:
        """One internal SSE event's data as the client API's SSE bytes: ``[DONE]`` closes the stream,
        an error object fails it (``_failed``), a chunk goes to ``_chunk``; anything else is skipped."""
        if data == "[DONE]":
            return b"" if self._done else self._final()
        try:
            chunk = json.loads(data)
        except ValueError:
            return b""
        if not isinstance(chunk, dict):
            return b""
        if "error" in chunk:
            self._done = True
            return self._failed(chunk["error"] if isinstance(chunk["error"], dict) else {})
        return self._chunk(chunk)

    @abc.abstractmethod
    def _chunk(self, chunk: dict[str, Any]) -> bytes:
        """One internal ``chat.completion.chunk`` as the client API's SSE bytes."""

    @abc.abstractmethod
    def _failed(self, error: dict[str, Any]) -> bytes:
        """The client API's error event for the internal stream's ``error`` object (``_done`` is set)."""

    @abc.abstractmethod
    def _final(self) -> bytes:
        """Close the client's stream (sets ``_done``)."""
