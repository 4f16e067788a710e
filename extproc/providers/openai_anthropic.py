"""OpenAI chat completions <-> Anthropic Messages API (``POST {base_path}/messages``).

Request mapping (OpenAI field -> Anthropic):

=================================  ==========================================================
maps                               model -> upstream model; system + developer messages ->
                                   top-level ``system``; user/assistant turns (consecutive
                                   same-role turns merged, as Anthropic alternates roles);
                                   text / image_url (data URL -> base64 source, http(s) ->
                                   url source) / file (PDF data URL -> document block) parts;
                                   assistant ``tool_calls`` -> ``tool_use`` blocks; ``tool``
                                   messages -> ``tool_result`` blocks in one user turn;
                                   tools, tool_choice, parallel_tool_calls=false ->
                                   ``tool_choice.disable_parallel_tool_use``;
                                   max_completion_tokens / max_tokens -> max_tokens (required
                                   by Anthropic: default ``options.default_max_tokens``, 4096);
                                   temperature (0..1 only), top_p, stop -> stop_sequences,
                                   stream, user -> metadata.user_id
structured                         response_format json_schema -> ``output_config.format`` on
                                   models with structured outputs (Claude 4.5 generation, Opus
                                   4.1+) when every object in the schema is closed
                                   (additionalProperties false, as OpenAI strict schemas are);
                                   keywords Anthropic refuses (minimum, maxLength, maxItems ...)
                                   move into the description, as Anthropic's SDK does
                                   (``anthropic_schema.py``); a recursive schema is refused (422)
emulated                           response_format json_object, and json_schema elsewhere:
                                   an instruction (with the schema, for json_schema) is
                                   appended to ``system``. The output is then JSON by the
                                   model's compliance, not by a guarantee.
dropped (best-effort hints)        seed, frequency_penalty, presence_penalty, service_tier,
                                   store, metadata, reasoning_effort, prediction, verbosity,
                                   stream_options (other than include_usage), image ``detail``,
                                   message ``name``: the answer stays correct without them
422 (UnsupportedFeature)           n > 1, logprobs, top_logprobs, logit_bias, audio output
                                   (modalities / audio), input_audio parts, file ids,
                                   web_search_options, temperature > 1, non-function tools,
                                   the legacy functions / function_call
=================================  ==========================================================

The rule: a hint that only tunes sampling or bookkeeping is dropped silently; a
feature whose absence would change what the client receives is refused with 422,
so the client can pick another model instead of getting a quietly different answer.

Normalized to what the Messages API accepts, where the meaning survives:

- empty or whitespace-only text (a message, a part, a system prompt, a tool result) is
  left out: Anthropic refuses such text blocks, and they say nothing; a message left with
  nothing is left out too;
- the final assistant message (a prefill) loses its trailing whitespace, which Anthropic
  refuses there;
- tool call ids that do not match Anthropic's ``^[a-zA-Z0-9_-]+$`` (ids made by other
  providers, e.g. ``functions.get_weather:0``) are rewritten on both the ``tool_use`` and
  its ``tool_result`` by a reversible encoding (``_ToolIds``), and decoded in the answer;
- whitespace-only stop sequences, which Anthropic refuses, are applied by the gateway to
  the answer (``stops.py``): the text is cut there and ``finish_reason`` is ``stop``;
- a streamed tool call whose arguments arrive empty ends as ``"{}"``, as OpenAI sends it;
- ``max_tokens`` above the model's output limit is clamped to it (the model stops there anyway);
- ``top_p`` is left out beside ``temperature`` on the models that refuse both (Claude 4.5 on);
  both are left out on the models with fixed sampling (Opus 4.7+, Mythos, Fable, the 5.x models).

Refused with 422 (the planner then tries another provider): a conversation with no user or
assistant content (only system messages), image types other than JPEG/PNG/GIF/WebP, and a
prefill (a final assistant message) for the Claude 4.6 generation and later, which refuse it.

Responses: text blocks are joined into ``message.content``; ``tool_use`` blocks become
``tool_calls``; thinking blocks are not shown (the OpenAI chat shape has no place
for them). Usage counts cached input (read and written) as prompt tokens, because
OpenAI's ``prompt_tokens`` is the whole prompt while Anthropic's ``input_tokens``
is only the uncached part.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .. import errors, sse
from ..errors import InvalidRequest, UnsupportedFeature, UpstreamError
from . import anthropic_schema
from .base import ChatTranslator, UpstreamRequest, Usage
from .stops import StopScanner, cut

ANTHROPIC_VERSION = "2023-06-01"

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

# Anthropic's error types by the HTTP status each stands for (its "Errors" page): an error event in a
# stream reads like that status's error (errors.upstream_event_error), whichever provider sent it.
ERROR_STATUS = {"invalid_request_error": 400, "authentication_error": 401, "billing_error": 402,
                "permission_error": 403, "not_found_error": 404, "request_too_large": 413,
                "rate_limit_error": 429, "api_error": 500, "timeout_error": 504, "overloaded_error": 529}

# Anthropic's words for a refused request that OpenAI has a code for (errors.OPENAI_CODES), so the
# client reads the code OpenAI would send for the same situation. The context windows guide: a prompt,
# or a prompt plus max_tokens, over the window is a validation error ("prompt is too long: N tokens > M
# maximum", "input length and `max_tokens` exceed context limit: N + M > W"). The vision guide's limits:
# 5 MB per image through the API ("image exceeds 5 MB maximum: N bytes > M bytes", a file size) and
# 8000x8000 px ("At least one of the image dimensions exceed max allowed size").
_OPENAI_CODES = (
    (re.compile(r"\bprompt is too long: \d+ tokens > \d+ maximum|input length and `max_tokens` exceed context "
                r"limit"), "context_length_exceeded"),
    (re.compile(r"\bimage exceeds \d+ MB maximum"), "image_file_too_large"),
    (re.compile(r"\bimage dimensions exceed max allowed size"), "image_too_large"),
)


def openai_code(message: str) -> str | None:
    """OpenAI's code for an Anthropic ``invalid_request_error`` message (``_OPENAI_CODES``), or None."""
    return next((code for pattern, code in _OPENAI_CODES if pattern.search(message)), None)


_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")

_DATA_URL = re.compile(r"^data:([^;,]+)((?:;[^;,]*)*),(.*)$", re.S)

_JSON_OBJECT_INSTRUCTION = ("Respond with a single valid JSON object and nothing else: "
                            "no prose, no markdown code fences.")


class AnthropicChatTranslator(ChatTranslator):

    def __init__(self, target, *, created: int, response_id: str):
        super().__init__(target, created=created, response_id=response_id)
        self._decoder = sse.SSEDecoder()
        self._model = target.upstream_model
        self._tool_index: dict[int, int] = {}   # Anthropic content block index -> OpenAI tool call index
        self._input = self._cached_read = self._cached_write = self._write_1h = self._output = 0
        self._finished = False   # message_stop seen
        self._failed = False     # an error event was passed on: the stream is over
        self._stops: list[str] = []          # stop strings the gateway applies (see stops.py)
        self._scanner = StopScanner([])
        self._empty_args: set[int] = set()   # tool call blocks whose arguments have not started yet

    # -- request ----------------------------------------------------------------------------

    def request(self, body: dict[str, Any]) -> UpstreamRequest:
        _refuse_unsupported(body)
        self.stream = bool(body.get("stream"))
        self.include_usage = bool(self.stream and (body.get("stream_options") or {}).get("include_usage"))

        system, messages = _messages(body.get("messages"))
        if not messages:
            raise UnsupportedFeature("this model's provider (Anthropic) needs at least one user or assistant message "
                                     "with content; this request has only system messages or empty ones",
                                     param="messages")
        if messages[-1]["role"] == "assistant" and _NO_PREFILL.match(self.target.upstream_model):
            # Dropping the prefill would change the answer, so another candidate serves it.
            raise UnsupportedFeature("this model (Claude 4.6 or later) does not continue an assistant message "
                                     "(prefill): the conversation must end with a user or tool message",
                                     param="messages")
        output_format = _output_format(body.get("response_format"), self.target)
        instruction = None if output_format else _json_instruction(body.get("response_format"))
        if instruction:
            system.append(instruction)

        out: dict[str, Any] = {
            "model": self.target.upstream_model,
            "max_tokens": _clamp_output(_max_tokens(body, default_output(self.target)),
                                        self.target),
            "messages": messages,
        }
        if system:
            out["system"] = "\n\n".join(system)
        if output_format:
            out["output_config"] = {"format": output_format}
        fixed = _FIXED_SAMPLING.match(self.target.upstream_model)
        if body.get("temperature") is not None and not fixed:
            out["temperature"] = _temperature(body["temperature"])
        if body.get("top_p") is not None and not fixed \
                and not ("temperature" in out and _NEWER.match(self.target.upstream_model)):
            # The newer models refuse both at once ("use only one"); both only tune sampling,
            # and temperature is the one clients set on purpose, so top_p gives way.
            out["top_p"] = body["top_p"]
        stop = body.get("stop")
        stops = [stop] if isinstance(stop, str) else [s for s in stop or [] if isinstance(s, str)]
        sent = [s for s in stops if s.strip()]
        if sent:
            out["stop_sequences"] = sent
        self._stops = [s for s in stops if s and not s.strip()]  # Anthropic refuses these: applied here
        self._scanner = StopScanner(self._stops)
        if self.stream:
            out["stream"] = True
        if body.get("user"):
            out["metadata"] = {"user_id": str(body["user"])}
        if body.get("tools"):
            out["tools"] = [_tool(t) for t in body["tools"]]
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"), bool(body.get("tools")))
        if choice is not None:
            out["tool_choice"] = choice

        return UpstreamRequest(
            path=f"{self.target.base_path}/messages",
            headers={"anthropic-version": ANTHROPIC_VERSION, "content-type": "application/json"},
            body=json.dumps(out, ensure_ascii=False).encode(),
        )

    # -- whole response ---------------------------------------------------------------------

    def response(self, body: bytes) -> bytes:
        try:
            msg = json.loads(body)
        except ValueError:
            raise UpstreamError("provider sent a response that is not JSON") from None
        if not isinstance(msg, dict):
            raise UpstreamError("provider sent an unexpected response shape")
        texts: list[str] = []
        calls: list[dict[str, Any]] = []
        stopped = False
        for block in msg.get("content") or []:
            if stopped:
                break  # the emulated stop sequence ended the answer here
            if block.get("type") == "text":
                text, stopped = cut(block.get("text", ""), self._stops)
                texts.append(text)
            elif block.get("type") == "tool_use":
                calls.append({"id": _ToolIds.decode(block.get("id")), "type": "function",
                              "function": {"name": block.get("name"),
                                           "arguments": json.dumps(block.get("input", {}), ensure_ascii=False)}})
        finish = "stop" if stopped else _FINISH.get(msg.get("stop_reason"), "stop")
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(texts) if texts or not calls else None,
            "refusal": None,
            "annotations": [],
        }
        if calls:
            message["tool_calls"] = calls

        usage = msg.get("usage") or {}
        self._input = usage.get("input_tokens") or 0
        self._cached_read = usage.get("cache_read_input_tokens") or 0
        self._cached_write = usage.get("cache_creation_input_tokens") or 0
        self._write_1h = (usage.get("cache_creation") or {}).get("ephemeral_1h_input_tokens") or 0
        self._output = usage.get("output_tokens") or 0
        self._record_usage()

        return json.dumps({
            "id": self.response_id,
            "object": "chat.completion",
            "created": self.created,
            "model": msg.get("model") or self.target.upstream_model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": self._openai_usage(),
        }, ensure_ascii=False).encode()

    def error(self, status: int, body: bytes) -> tuple[int, bytes]:
        message, code = _error_details(body)
        if status == 529:  # Anthropic's "overloaded": the same meaning as 503 to an OpenAI client
            status = 503
        if code == "invalid_request_error":
            code = openai_code(message)
        return errors.upstream_error(status, message or f"provider answered HTTP {status}", code=code)

    # -- stream -----------------------------------------------------------------------------

    def stream_chunk(self, data: bytes) -> bytes:
        out = bytearray()
        for event in self._decoder.feed(data):
            if self._finished or self._failed:
                break
            out += self._event(event)
        return bytes(out)

    def stream_end(self) -> bytes:
        self._decoder.close()
        if self._failed:
            return b""
        if not self._finished:
            self._failed = self._cut = True
            return _error_event("provider stream ended early", "upstream_error", "stream_incomplete")
        return sse.DONE

    def _event(self, event: sse.Event) -> bytes:
        try:
            data = json.loads(event.data)
        except ValueError:
            self._failed = True
            return _error_event("provider sent malformed stream data", "upstream_error", "bad_gateway")
        if not isinstance(data, dict):
            return b""
        kind = data.get("type") or event.event

        if kind == "message_start":
            msg = data.get("message") or {}
            self._model = msg.get("model") or self._model
            self._count(msg.get("usage") or {})
            return self._chunk({"role": "assistant", "content": "", "refusal": None})
        if kind == "content_block_start":
            return self._block_start(data.get("index", 0), data.get("content_block") or {})
        if kind == "content_block_delta":
            return self._block_delta(data.get("index", 0), data.get("delta") or {})
        if kind == "content_block_stop":
            return self._block_stop(data.get("index", 0))
        if kind == "message_delta":
            self._count(data.get("usage") or {})
            reason = (data.get("delta") or {}).get("stop_reason")
            return self._chunk({}, "stop" if self._scanner.stopped else _FINISH.get(reason, "stop"))
        if kind == "message_stop":
            self._finished = True
            self._record_usage()
            if not self.include_usage:
                return b""
            return sse.encode({"id": self.response_id, "object": "chat.completion.chunk", "created": self.created,
                               "model": self._model, "choices": [], "usage": self._openai_usage()})
        if kind == "error":
            self._failed = True
            err = data.get("error") or {}
            message = str(err.get("message") or "provider stream failed")
            error = errors.upstream_event_error(ERROR_STATUS.get(err.get("type"), 500), message,
                                                openai_code(message) if err.get("type") == "invalid_request_error"
                                                else None)
            return sse.encode({"error": error})
        return b""  # ping, and event types added after this was written

    def _block_start(self, index: int, block: dict[str, Any]) -> bytes:
        if self._scanner.stopped:
            return b""  # an emulated stop sequence ended the answer
        if block.get("type") == "tool_use":
            n = self._tool_index[index] = len(self._tool_index)
            self._empty_args.add(index)
            return self._chunk({"tool_calls": [{"index": n, "id": _ToolIds.decode(block.get("id")),
                                                "type": "function",
                                                "function": {"name": block.get("name"), "arguments": ""}}]})
        if block.get("type") == "text" and block.get("text"):
            return self._text(block["text"])
        return b""

    def _block_delta(self, index: int, delta: dict[str, Any]) -> bytes:
        if self._scanner.stopped:
            return b""
        if delta.get("type") == "text_delta" and delta.get("text"):
            return self._text(delta["text"])
        if delta.get("type") == "input_json_delta" and delta.get("partial_json") and index in self._tool_index:
            self._empty_args.discard(index)
            return self._chunk({"tool_calls": [{"index": self._tool_index[index],
                                                "function": {"arguments": delta["partial_json"]}}]})
        return b""  # thinking, signature and citation deltas have no place in a chat completion

    def _block_stop(self, index: int) -> bytes:
        if index in self._empty_args:
            # A call without arguments streams one empty partial_json: end it as "{}", which
            # OpenAI sends and clients json.loads (the non-streamed answer says {} too).
            self._empty_args.discard(index)
            return self._chunk({"tool_calls": [{"index": self._tool_index[index], "function": {"arguments": "{}"}}]})
        tail = self._scanner.flush()
        return self._chunk({"content": tail}) if tail else b""

    def _text(self, text: str) -> bytes:
        ready = self._scanner.feed(text)
        return self._chunk({"content": ready}) if ready else b""

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        chunk: dict[str, Any] = {
            "id": self.response_id, "object": "chat.completion.chunk", "created": self.created, "model": self._model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self.include_usage:
            chunk["usage"] = None  # as OpenAI does: only the final, choice-less chunk carries usage
        return sse.encode(chunk)

    # -- usage ------------------------------------------------------------------------------

    def _count(self, usage: dict[str, Any]) -> None:
        """Anthropic's stream usage counts are cumulative: the latest value of each wins."""
        if usage.get("input_tokens") is not None:
            self._input = usage["input_tokens"]
        if usage.get("cache_read_input_tokens") is not None:
            self._cached_read = usage["cache_read_input_tokens"]
        if usage.get("cache_creation_input_tokens") is not None:
            self._cached_write = usage["cache_creation_input_tokens"]
        if isinstance(usage.get("cache_creation"), dict):
            self._write_1h = usage["cache_creation"].get("ephemeral_1h_input_tokens") or 0
        if usage.get("output_tokens") is not None:
            self._output = usage["output_tokens"]
        self._record_usage()

    def _record_usage(self) -> None:
        self.usage = Usage(input_tokens=self._input + self._cached_read + self._cached_write,
                           output_tokens=self._output, cached_input_tokens=self._cached_read,
                           cache_write_tokens=self._cached_write,
                           cache_write_1h_tokens=min(self._write_1h, self._cached_write))

    def _openai_usage(self) -> dict[str, Any]:
        prompt = self._input + self._cached_read + self._cached_write
        return {"prompt_tokens": prompt, "completion_tokens": self._output, "total_tokens": prompt + self._output,
                "prompt_tokens_details": {"cached_tokens": self._cached_read}}


# -- request pieces (pure functions) ----------------------------------------------------------

def _refuse_unsupported(body: dict[str, Any]) -> None:
    n = body.get("n")
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
        raise InvalidRequest("n must be an integer of at least 1", param="n")  # never forwarded, even as 1
    if isinstance(n, int) and n > 1:
        raise UnsupportedFeature("this model's provider (Anthropic) returns one choice per request; n must be 1",
                                 param="n")
    if body.get("logprobs"):
        raise UnsupportedFeature("this model's provider (Anthropic) does not return logprobs", param="logprobs")
    if body.get("top_logprobs"):
        raise UnsupportedFeature("this model's provider (Anthropic) does not return logprobs", param="top_logprobs")
    if body.get("logit_bias"):
        raise UnsupportedFeature("this model's provider (Anthropic) does not support logit_bias", param="logit_bias")
    if "audio" in (body.get("modalities") or []) or body.get("audio"):
        raise UnsupportedFeature("this model's provider (Anthropic) does not produce audio", param="modalities")
    if body.get("web_search_options") is not None:
        raise UnsupportedFeature("web search is not available for this model", param="web_search_options")
    if body.get("functions") or body.get("function_call") is not None:
        # Dropped, the model would answer without the functions it was given (measured: a plain 200).
        raise UnsupportedFeature("the legacy functions / function_call parameters are not translated for this "
                                 "model's provider (Anthropic); send tools / tool_choice", param="functions")


def _max_tokens(body: dict[str, Any], default: int) -> int:
    value = body.get("max_completion_tokens")
    if value is None:
        value = body.get("max_tokens")
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidRequest("max_completion_tokens must be a positive integer", param="max_completion_tokens")
    return value


def _temperature(value: Any) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise InvalidRequest("temperature must be a number between 0 and 2", param="temperature")
    if value > 1:
        raise UnsupportedFeature(f"temperature {value} is out of range for this model: its provider (Anthropic) "
                                 "accepts 0 to 1", param="temperature")
    return value


def _json_instruction(fmt: Any) -> str | None:
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt["type"] == "json_object":
        return _JSON_OBJECT_INSTRUCTION
    if fmt["type"] == "json_schema":
        spec = fmt.get("json_schema") or {}
        schema = json.dumps(spec.get("schema") or {}, ensure_ascii=False, sort_keys=True)
        return f"{_JSON_OBJECT_INSTRUCTION} The JSON object must conform to this JSON Schema: {schema}"
    raise InvalidRequest(f"unknown response_format type '{fmt['type']}'", param="response_format")


# The Claude 4.5 generation, Opus 4.1 and later: they have structured outputs (``output_config.format``)
# and refuse temperature with top_p. ``options.structured_outputs`` overrides the guess from the name.
_NEWER = _STRUCTURED_OUTPUTS = re.compile(r"^claude-(opus-4-[1-9]|sonnet-4-[5-9]|haiku-4-[5-9]|opus-4-1\d*|mythos|"
                                          r"fable|(opus|sonnet|haiku)-([5-9]|[1-9]\d)(?!\d))")
# Opus 4.7+, Mythos, Fable and the 5.x models have fixed sampling: they answer 400 to temperature, top_p
# or top_k ("`temperature` is deprecated for this model."; the Haiku 5.5 migration guide: remove all three).
# Like an OpenAI reasoning model's, the settings are left out: they only tune sampling.
_FIXED_SAMPLING = re.compile(r"^claude-(opus-4-([7-9]|[1-9]\d)(?!\d)|mythos|fable|"
                             r"(opus|sonnet|haiku)-([5-9]|[1-9]\d)(?!\d))")

# The Claude 4.6 generation and later refuse a final assistant message (a prefill) with 400
# (Anthropic's migration guide: "Prefilling assistant messages returns a 400 error on Claude 4.6 models").
_NO_PREFILL = re.compile(r"^claude-((opus|sonnet)-4-([6-9]|[1-9]\d)(?!\d)|mythos|"
                         r"(opus|sonnet|haiku|fable)-([5-9]|[1-9]\d)(?!\d))")

# Output limits (max_tokens) of the models by name, from the models overview; options.max_output_tokens
# overrides. A larger max_tokens is refused by Anthropic, while the model stops at its limit anyway,
# so the request is clamped: the answer is the same.
# (Sonnet 4.6 writes up to 128K: its models page, 2026-11-30.)
_OUTPUT_LIMITS = ((re.compile(r"^claude-3-haiku"), 4096), (re.compile(r"^claude-3-5-haiku"), 8192),  # catalog: keep
                  (re.compile(r"^claude-(opus-4-0|opus-4-1|opus-4-2025)"), 32000),
                  (re.compile(r"^claude-(sonnet-4-[0-5]|sonnet-4-2025|haiku-4|opus-4-5)"), 64000),
                  (re.compile(r"^claude-"), 128000))


def default_output(target: Any) -> int:
    """The max_tokens sent when the client set none (Anthropic requires one): ``options.default_max_tokens``."""
    return target.options.get("default_max_tokens", 4096)


def output_limit(target: Any) -> int | None:
    """The model's output limit in tokens (``options.max_output_tokens``, else by name), or None."""
    limit = target.options.get("max_output_tokens")
    if limit is None:
        limit = next((n for pattern, n in _OUTPUT_LIMITS if pattern.match(target.upstream_model)), None)
    return limit if isinstance(limit, int) else None


# Claude reads a prompt cache only where the request marks one with cache_control (top level or on a
# block; Anthropic "Prompt caching"), and only for a prefix of at least this many tokens (that page's
# minimum cacheable length per model; shorter ones are processed uncached without an error).
_CACHE_FLOORS = ((re.compile(r"^claude-(haiku-4-5|opus-4-5|opus-4-6)"), 4096), (re.compile(r"^claude-3(-5)?-haiku"), 2048))
CACHE_FLOOR = 1024   # Sonnet 4.6 and 4.5, Opus 4.1, Opus 4, Sonnet 4, Sonnet 3.7


def prompt_cache_floor(target: Any, asked: bool) -> int | None:
    """The shortest prompt prefix Claude reads from its cache for this request, or None when it reads
    none: the chat translator sends no ``cache_control``, so only a request that asked (a Messages
    request passed through with its own markers, ``asked``) can hit the cache."""
    if not asked:
        return None
    return next((n for pattern, n in _CACHE_FLOORS if pattern.match(target.upstream_model)), CACHE_FLOOR)


def _clamp_output(max_tokens: int, target: Any) -> int:
    limit = output_limit(target)
    return min(max_tokens, limit) if limit is not None else max_tokens


def _output_format(fmt: Any, target: Any) -> dict[str, Any] | None:
    """Anthropic's native JSON Schema output for response_format json_schema, where the model has it
    and the schema is one it takes (every object closed, as OpenAI's strict schemas are); else None
    and the schema goes into the system prompt instead."""
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return None
    supported = target.options.get("structured_outputs")
    if supported is None:
        supported = bool(_STRUCTURED_OUTPUTS.match(target.upstream_model))
    schema = (fmt.get("json_schema") or {}).get("schema")
    if not supported or not isinstance(schema, dict) or not _closed(schema):
        return None
    loop = anthropic_schema.cycle(schema)
    if loop:
        # The grammar cannot hold a recursive schema (Anthropic answers 400), and an instruction
        # would lose the guarantee the client asked for: another candidate serves it.
        raise UnsupportedFeature("this model's provider (Anthropic) does not take recursive schemas in structured "
                                 f"outputs ({' -> '.join(loop)})", param="response_format")
    # Keywords the grammar refuses (minimum, maxLength, ...) move into descriptions, as Anthropic's SDK does.
    return {"type": "json_schema", "schema": anthropic_schema.strict_schema(schema)}


def _closed(schema: Any) -> bool:
    """Every object in the schema says additionalProperties: false."""
    if isinstance(schema, list):
        return all(_closed(s) for s in schema)
    if not isinstance(schema, dict):
        return True
    if (schema.get("type") == "object" or "properties" in schema) and schema.get("additionalProperties") is not False:
        return False
    for key, sub in schema.items():
        if key in ("properties", "$defs", "definitions") and isinstance(sub, dict):
            if not all(_closed(s) for s in sub.values()):
                return False
        elif key in ("items", "anyOf", "oneOf", "allOf", "additionalProperties", "prefixItems") and not _closed(sub):
            return False
    return True


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    if tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
        raise UnsupportedFeature(f"tool type '{tool.get('type')}' is not supported for this model", param="tools")
    fn = tool["function"]
    schema = fn.get("parameters") or {"type": "object", "properties": {}}
    if isinstance(schema, dict) and "type" not in schema:
        # Anthropic requires input_schema.type; JSON Schema reads an untyped schema with properties as
        # an object's, and a function's arguments are always an object.
        schema = {"type": "object", **schema}
    out: dict[str, Any] = {"name": fn.get("name"), "input_schema": schema}
    if fn.get("description"):
        out["description"] = fn["description"]
    return out


def _tool_choice(choice: Any, parallel: Any, has_tools: bool) -> dict[str, Any] | None:
    if choice is None:
        out = {"type": "auto"} if has_tools and parallel is False else None
    elif choice == "auto":
        out = {"type": "auto"}
    elif choice == "none":
        return {"type": "none"}  # disable_parallel_tool_use is meaningless (and not accepted) with none
    elif choice == "required":
        out = {"type": "any"}
    elif isinstance(choice, dict) and choice.get("type") == "function" and (choice.get("function") or {}).get("name"):
        out = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise InvalidRequest("tool_choice must be 'auto', 'none', 'required' or a function", param="tool_choice")
    if out is not None and parallel is False:
        out["disable_parallel_tool_use"] = True
    return out


def _messages(messages: Any) -> tuple[list[str], list[dict[str, Any]]]:
    """(system texts, Anthropic messages). Anthropic wants alternating roles, so same-role turns merge."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty array", param="messages")
    system: list[str] = []
    out: list[dict[str, Any]] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise InvalidRequest(f"messages[{i}] must be an object", param=f"messages[{i}]")
        role = m.get("role")
        if role in ("system", "developer"):
            text = _text_only(m.get("content"), f"messages[{i}].content")
            if text.strip():  # Anthropic refuses a whitespace-only system prompt
                system.append(text)
            continue
        if role == "user":
            anth_role, blocks = "user", _user_blocks(m.get("content"), i)
        elif role == "assistant":
            anth_role, blocks = "assistant", _assistant_blocks(m, i)
        elif role == "tool":
            if not m.get("tool_call_id"):
                raise InvalidRequest(f"messages[{i}].tool_call_id is required", param=f"messages[{i}].tool_call_id")
            anth_role = "user"
            result: dict[str, Any] = {"type": "tool_result", "tool_use_id": _ToolIds.encode(m["tool_call_id"])}
            text = _text_only(m.get("content"), f"messages[{i}].content")
            if text.strip():  # an empty result is sent without content, which Anthropic accepts
                result["content"] = text
            blocks = [result]
        else:
            raise InvalidRequest(f"messages[{i}].role '{role}' is not supported", param=f"messages[{i}].role")
        if not blocks:
            continue  # Anthropic rejects empty turns; an empty one says nothing anyway
        if out and out[-1]["role"] == anth_role:
            out[-1]["content"].extend(blocks)
        else:
            out.append({"role": anth_role, "content": blocks})
    _trim_prefill(out)
    return system, out


def _trim_prefill(messages: list[dict[str, Any]]) -> None:
    """A final assistant message (a prefill) may not end in whitespace (Anthropic refuses it); the
    model continues from the same words either way."""
    if not messages or messages[-1]["role"] != "assistant":
        return
    blocks = messages[-1]["content"]
    if blocks and blocks[-1]["type"] == "text":
        trimmed = blocks[-1]["text"].rstrip()
        if trimmed:
            blocks[-1] = {**blocks[-1], "text": trimmed}
        else:
            blocks.pop()
    if not blocks:
        messages.pop()


class _ToolIds:
    """Tool call ids as Anthropic accepts them (``^[a-zA-Z0-9_-]+$``), and back.

    Ids already in that form pass unchanged, unless they start with the prefix; the others
    (and those) become the prefix plus the hex of their UTF-8 bytes. The encoding is
    reversible, so no two ids can collide and the answer's ids decode to the client's own.
    """

    PREFIX = "gwid_"
    _VALID = re.compile(r"^[a-zA-Z0-9_-]+$")

    @classmethod
    def encode(cls, value: Any) -> Any:
        if not isinstance(value, str) or (cls._VALID.match(value) and not value.startswith(cls.PREFIX)):
            return value
        return cls.PREFIX + value.encode().hex()

    @classmethod
    def decode(cls, value: Any) -> Any:
        if not isinstance(value, str) or not value.startswith(cls.PREFIX):
            return value
        try:
            return bytes.fromhex(value[len(cls.PREFIX):]).decode()
        except ValueError:
            return value  # not one of ours


def _text_only(content: Any, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    if isinstance(content, list):
        parts = []
        for p in content:
            if not isinstance(p, dict) or p.get("type") != "text":
                raise InvalidRequest(f"{where} may only hold text parts", param=where)
            parts.append(p.get("text", ""))
        return "\n".join(parts)
    raise InvalidRequest(f"{where} must be a string or an array of parts", param=where)


def _user_blocks(content: Any, i: int) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content.strip() else []
    if not isinstance(content, list):
        raise InvalidRequest(f"messages[{i}].content must be a string or an array of parts",
                             param=f"messages[{i}].content")
    blocks = []
    for j, part in enumerate(content):
        where = f"messages[{i}].content[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if isinstance(part.get("text"), str) and part["text"].strip():
                blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            blocks.append(_image(part.get("image_url"), where))
        elif kind == "file":
            blocks.append(_document(part.get("file") or {}, where))
        elif kind == "input_audio":
            raise UnsupportedFeature("this model's provider (Anthropic) does not accept audio input", param=where)
        else:
            raise InvalidRequest(f"{where} has unknown type '{kind}'", param=where)
    return blocks


def _image(image: Any, where: str) -> dict[str, Any]:
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"{where}.image_url.url is required", param=where)
    if url.startswith(("http://", "https://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    media_type, data = _data_url(url, where)
    if media_type not in _IMAGE_TYPES:
        raise UnsupportedFeature(f"image type '{media_type}' is not supported by this model's provider (Anthropic "
                                 "takes JPEG, PNG, GIF and WebP)", param=where)
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


def _document(file: dict[str, Any], where: str) -> dict[str, Any]:
    if file.get("file_id"):
        raise UnsupportedFeature("uploaded file ids are not available for this model; send file_data",
                                 param=where)
    data = file.get("file_data")
    if not isinstance(data, str):
        raise InvalidRequest(f"{where}.file.file_data is required", param=where)
    media_type, b64 = _data_url(data, where)
    if media_type != "application/pdf":
        raise UnsupportedFeature(f"file type '{media_type}' is not supported for this model (PDF only)",
                                 param=where)
    return {"type": "document", "source": {"type": "base64", "media_type": media_type, "data": b64}}


def _data_url(url: str, where: str) -> tuple[str, str]:
    match = _DATA_URL.match(url)
    if not match or ";base64" not in match.group(2):
        raise InvalidRequest(f"{where}: expected an http(s) URL or a base64 data URL", param=where)
    return match.group(1), match.group(3)


def _assistant_blocks(m: dict[str, Any], i: int) -> list[dict[str, Any]]:
    content = m.get("content")
    if isinstance(content, list):  # text and refusal parts; a past refusal is not worth resending
        text = "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    else:
        text = _text_only(content, f"messages[{i}].content")
    # Whitespace beside tool calls (some clients send "\n\n") is refused by Anthropic and says nothing.
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text.strip() else []
    for j, call in enumerate(m.get("tool_calls") or []):
        fn = call.get("function") or {}
        try:
            args = json.loads(fn.get("arguments") or "{}")
        except ValueError:
            raise InvalidRequest(f"messages[{i}].tool_calls[{j}].function.arguments is not valid JSON",
                                 param=f"messages[{i}].tool_calls[{j}].function.arguments") from None
        if not isinstance(args, dict):
            raise InvalidRequest(f"messages[{i}].tool_calls[{j}].function.arguments must be a JSON object",
                                 param=f"messages[{i}].tool_calls[{j}].function.arguments")
        blocks.append({"type": "tool_use", "id": _ToolIds.encode(call.get("id")), "name": fn.get("name"),
                       "input": args})
    return blocks


# -- response pieces --------------------------------------------------------------------------

def _error_details(body: bytes) -> tuple[str, str | None]:
    """(message, Anthropic error type) from an error body, which may not even be JSON (a proxy's page)."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.decode("utf-8", errors="replace").strip()[:500], None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        return str(err.get("message") or ""), err.get("type")
    return "", None


def _error_event(message: str, type_: str, code: str | None) -> bytes:
    return sse.encode({"error": {"message": message, "type": type_, "param": None, "code": code}})
