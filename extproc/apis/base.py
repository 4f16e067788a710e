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
import copy
import json
import re
from typing import Any

from .. import sse
from ..errors import GatewayError
from ..providers.base import ChatTranslator, UpstreamRequest


_LAST_SEGMENT = re.compile(r"(\.[^.\[\]]+|\[\d+\])$")   # ".name" or "[3]" at the end of a path
# A field path in an error message: "messages[1].tool_calls[0].function.arguments", "max_completion_tokens".
_PATH = re.compile(r"(?<![\w.\[\]])([A-Za-z_]\w*)((?:\[\d+\]|\.[A-Za-z_]\w*)*)")


class FieldNames:
    """The client API's name for each internal (chat) field a front door made, so that an error about
    the internal request (the shared validator's, ``extproc.validate``, or a provider translator's)
    names what the client sent, in ``param`` and in the message.

    Paths are OpenAI's ``param`` form (``messages[2].tool_calls[0].function.name``). A path is renamed
    by its longest recorded prefix, the rest kept (``messages[1]`` -> ``input[0]`` makes
    ``messages[1].content`` ``input[0].content``); a path with no recorded prefix is the client's own
    (a field passed through under its name) and stays. ``messages`` maps whole error messages to the
    client API's own words for the same fault."""

    def __init__(self, messages: dict[str, str] | None = None):
        self.paths: dict[str, str] = {}
        self.messages = dict(messages or {})

    def add(self, internal: str, client: str) -> None:
        self.paths[internal] = client

    def client(self, path: str) -> str:
        """The client's path for internal ``path``."""
        prefix, rest = path, ""
        while prefix not in self.paths:
            last = _LAST_SEGMENT.search(prefix)
            if last is None:
                return path
            prefix, rest = prefix[:last.start()], last.group(0) + rest
        return self.paths[prefix] + rest

    def renamed(self, exc: GatewayError) -> GatewayError:
        """``exc`` (a copy) with its ``param`` and the field paths in its message renamed.

        In the message, a path is renamed when it goes below a recorded field's root (``messages[1]...``)
        or is the error's ``param`` itself; a bare word is left alone otherwise, since it may be a value
        or plain English (``'user'`` among a role's allowed values is not Anthropic's ``metadata.user_id``)."""
        roots = {_PATH.match(path).group(1) for path in self.paths}

        def rename(m: re.Match) -> str:
            path = m.group(0)
            if (m.group(2) and m.group(1) in roots) or path == exc.param:
                return self.client(path)
            return path

        out = copy.copy(exc)
        out.param = self.client(exc.param) if exc.param else exc.param
        out.message = self.messages.get(exc.message) or _PATH.sub(rename, exc.message)
        out.args = (out.message,)
        return out


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
