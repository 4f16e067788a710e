"""OpenAI client to an OpenAI-compatible provider: the identity mapping.

OpenAI itself, self-hosted servers that copy its API (vLLM, Ollama, Together,
Groq) and Azure OpenAI all take the client's request as it is, so the only
changes are the model name, top-level nulls left out (null means absent), for
reasoning models (o-series, gpt-5) ``max_tokens`` renamed ``max_completion_tokens``
and temperature / top_p other than 1 left out (those models refuse them), and,
for Azure, the path: Azure names the model in the URL
(``/deployments/{deployment}``) and requires an ``api-version`` query.
Responses already have the client's shape, so they pass through byte for byte;
a copy is read only to learn the token usage for accounting.

One exception: a stream whose client did not ask for usage. The gateway asks
the provider for it anyway (``stream_options.include_usage``), since cost
accounting needs it, and removes from the stream what the client did not ask
for: the final usage-only chunk and the ``"usage": null`` of the others.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from .. import sse
from ..errors import InvalidRequest, upstream_error
from ..sse import SSEDecoder
from .base import ChatTranslator, EmbeddingsTranslator, Target, UpstreamRequest, Usage

_JSON = {"content-type": "application/json"}


def _path(target: Target, operation: str) -> str:
    """Where ``operation`` ("chat/completions" or "embeddings") lives on the provider."""
    if target.api == "azure_openai":
        deployment = quote(target.upstream_model, safe="")
        version = quote(str(target.options.get("api_version", "")), safe="")
        return f"{target.base_path}/deployments/{deployment}/{operation}?api-version={version}"
    return f"{target.base_path}/{operation}"


def _request(target: Target, operation: str, body: dict[str, Any]) -> UpstreamRequest:
    # A shallow copy is enough: only the top-level "model" key changes, the
    # caller's dict (which may be retried against another target) stays as sent.
    # An explicit null means "absent" in OpenAI's API, but Azure's published schema (2024-10-21) and
    # self-hosted servers' validators refuse null in fields like max_tokens: send absent as absent.
    out = {**{k: v for k, v in body.items() if v is not None}, "model": target.upstream_model}
    if operation == "chat/completions" and _reasoning(target):
        # Reasoning models refuse max_tokens (max_completion_tokens is its name there) and any
        # temperature / top_p but the default: rename the one, leave out the sampling hints.
        if "max_tokens" in out:
            value = out.pop("max_tokens")
            out.setdefault("max_completion_tokens", value)
        for name in ("temperature", "top_p"):
            if out.get(name) != 1:
                out.pop(name, None)
    if target.api == "azure_openai" and isinstance(body.get("messages"), list):
        # Azure's GA API versions (2024-10-21) predate the "developer" role; it means what "system" meant.
        out["messages"] = [{**m, "role": "system"} if isinstance(m, dict) and m.get("role") == "developer" else m
                           for m in body["messages"]]
    return UpstreamRequest(path=_path(target, operation),
                           body=json.dumps(out, ensure_ascii=False, separators=(",", ":")).encode(),
                           headers=dict(_JSON))


_REASONING = re.compile(r"^(o\d|gpt-5(?!-chat))")


def _reasoning(target: Target) -> bool:
    """An OpenAI reasoning model (o-series, gpt-5): ``options.reasoning`` says, else the model name."""
    flag = target.options.get("reasoning")
    if flag is not None:
        return bool(flag)
    return target.api in ("openai", "azure_openai") and bool(_REASONING.match(target.upstream_model))


def _usage(obj: Any) -> Usage | None:
    """Usage from an OpenAI ``usage`` object; None when absent (a stream chunk carries ``"usage": null``)."""
    if not isinstance(obj, dict):
        return None
    details = obj.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return Usage(input_tokens=_int(obj.get("prompt_tokens")),
                 output_tokens=_int(obj.get("completion_tokens")),
                 cached_input_tokens=_int(cached))


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _usage_of_body(body: bytes) -> Usage | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return _usage(parsed.get("usage")) if isinstance(parsed, dict) else None


def _error(status: int, body: bytes) -> tuple[int, bytes]:
    """A provider error, its own words kept where the client can act on them.

    Besides the OpenAI shape ``{"error": {...}}`` this reads the shapes that
    OpenAI-compatible servers use: Azure's (``code`` and ``message`` only),
    Ollama's ``{"error": "text"}`` and vLLM's flat ``{"object": "error", "message", ...}``.
    """
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    err: Any = parsed.get("error", parsed) if isinstance(parsed, dict) else None
    if isinstance(err, str):
        err = {"message": err}
    if not isinstance(err, dict) or not isinstance(err.get("message"), str) or not err["message"]:
        return upstream_error(status, f"provider returned HTTP {status} without an OpenAI error body")
    code = None if err.get("code") is None else str(err["code"])
    param = err.get("param")
    # The type and code follow the status, as for every provider (errors.upstream_error).
    return upstream_error(status, err["message"], code, param if isinstance(param, str) else None)


class OpenAIChatTranslator(ChatTranslator):
    passthrough_response = True

    def __init__(self, target: Target, *, created: int, response_id: str):
        super().__init__(target, created=created, response_id=response_id)
        self._decoder = SSEDecoder()
        self._hide_usage = False

    def request(self, body: dict[str, Any]) -> UpstreamRequest:
        n = body.get("n")
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            # The OpenAI request validator refuses this first; a translator never forwards it.
            raise InvalidRequest("n must be an integer of at least 1", param="n")
        self.stream = body.get("stream") is True
        options = body.get("stream_options")
        self.include_usage = self.stream and isinstance(options, dict) and options.get("include_usage") is True
        if self.stream and not self.include_usage:
            self._hide_usage = True
            self.passthrough_response = False   # this stream is rewritten: see the module docstring
            options = options if isinstance(options, dict) else {}
            body = {**body, "stream_options": {**options, "include_usage": True}}
        return _request(self.target, "chat/completions", body)

    def response(self, body: bytes) -> bytes:
        self.usage = _usage_of_body(body) or self.usage
        return body

    def error(self, status: int, body: bytes) -> tuple[int, bytes]:
        return _error(status, body)

    def stream_chunk(self, data: bytes) -> bytes:
        if self._hide_usage:
            return b"".join(self._without_usage(event) for event in self._decoder.feed(data))
        # The bytes go out as they came; the decoder only watches a copy for the
        # usage chunk (sent last, and only when the client asked for it).
        for event in self._decoder.feed(data):
            self._watch(event.data)
            if event.data == "[DONE]" or '"usage"' not in event.data:
                continue
            try:
                chunk = json.loads(event.data)
            except ValueError:
                continue
            usage = _usage(chunk.get("usage")) if isinstance(chunk, dict) else None
            if usage is not None:
                self.usage = usage
        return data

    def _watch(self, data: str) -> None:
        """The stream's ending, for accounting: ``[DONE]`` ends it, an ``{"error": ...}`` event fails it."""
        if data == "[DONE]":
            self._finished = True
        elif data.startswith('{"error"'):
            self._failed = True

    def _without_usage(self, event: sse.Event) -> bytes:
        self._watch(event.data)
        if event.data == "[DONE]":
            return sse.DONE
        try:
            chunk = json.loads(event.data)
        except ValueError:
            return sse.encode(event.data)
        if isinstance(chunk, dict) and "usage" in chunk:
            usage = _usage(chunk.pop("usage"))
            if usage is not None:
                self.usage = usage
                if not chunk.get("choices"):
                    return b""        # the usage-only chunk the client did not ask for
        return sse.encode(chunk)

    def stream_end(self) -> bytes:
        # The provider's own "data: [DONE]" has already passed through.
        self._decoder.close()
        self._cut = not (getattr(self, "_finished", False) or getattr(self, "_failed", False))
        return b""


class OpenAIEmbeddingsTranslator(EmbeddingsTranslator):
    passthrough_response = True

    def request(self, body: dict[str, Any]) -> UpstreamRequest:
        return _request(self.target, "embeddings", body)

    def response(self, body: bytes) -> bytes:
        self.usage = _usage_of_body(body) or self.usage
        return body

    def error(self, status: int, body: bytes) -> tuple[int, bytes]:
        return _error(status, body)
