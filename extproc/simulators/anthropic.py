"""A loopback Anthropic Messages API: ``POST /v1/messages`` and ``/v1/messages/count_tokens``.

It checks what the real API checks that a translator could get wrong (the key
and version headers, required fields, non-empty text blocks, tool results that
answer a ``tool_use`` of the previous assistant turn, the temperature range)
and answers in Anthropic's documented shapes: a ``message`` object, the SSE
event sequence (message_start, content_block_start/delta/stop, ping,
message_delta, message_stop), and ``{"type": "error", ...}`` errors.
"""

from __future__ import annotations

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


def routes(sim: Simulator) -> list[web.RouteDef]:
    async def messages(request: web.Request) -> web.StreamResponse:
        return await _answer(sim, request, count_only=False)

    async def count_tokens(request: web.Request) -> web.StreamResponse:
        return await _answer(sim, request, count_only=True)

    return [web.post("/v1/messages", messages), web.post("/v1/messages/count_tokens", count_tokens)]


async def _answer(sim: Simulator, request: web.Request, *, count_only: bool) -> web.StreamResponse:
    request_id = "req_" + uuid.uuid4().hex[:24]
    # Recorded before any check, so a test can see exactly what a rejected request carried.
    raw = await sim.record(request)
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
    try:
        prompt = _prompt(body, need_max_tokens=not count_only)
    except BadRequest as exc:
        return _error(400, str(exc), request_id)
    if count_only:
        return web.json_response({"input_tokens": core.think(replace(prompt, tools=[])).input_tokens},
                                 headers={"request-id": request_id})

    faults = await sim.faults_for(request)
    if faults is not None and faults.status:
        headers = {"retry-after": _seconds(faults.retry_after)} if faults.retry_after is not None else {}
        return _error(faults.status, f"simulated HTTP {faults.status}", request_id, headers)

    reply, stop_sequence = _think(prompt)
    thinking = _thinking_text(prompt) if (body.get("thinking") or {}).get("type") == "enabled" else None
    message_id = "msg_" + uuid.uuid4().hex[:24]
    calls = [("toolu_" + uuid.uuid4().hex[:24], name, args) for name, args in reply.tool_calls]
    if body.get("stream"):
        return await _stream(request, faults, request_id, message_id, prompt.model, reply, calls, stop_sequence,
                             thinking)

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
        "usage": _usage(reply.input_tokens, reply.output_tokens + _tokens(thinking)),
    }, headers={"request-id": request_id})


async def _stream(request: web.Request, faults: Faults | None, request_id: str, message_id: str, model: str,
                  reply: Reply, calls: list[tuple[str, str, dict]], stop_sequence: str | None,
                  thinking: str | None) -> web.StreamResponse:
    response = web.StreamResponse(headers=core.sse_headers({"request-id": request_id}))
    await response.prepare(request)
    out = StreamWriter(request, response, faults)

    async def send(kind: str, data: dict[str, Any], *, content: bool = True) -> None:
        await out.send(_event(kind, {"type": kind, **data}), content=content)

    # message_start's usage holds the input and the first output token, as the real API reports it.
    await send("message_start", {"message": {
        "id": message_id, "type": "message", "role": "assistant", "content": [], "model": model,
        "stop_reason": None, "stop_sequence": None, "stop_details": None, "container": None,
        "usage": _usage(reply.input_tokens, 1)}}, content=False)
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
        text = json.dumps(args, ensure_ascii=False)
        for i in range(0, len(text), 12):
            await delta({"type": "input_json_delta", "partial_json": text[i:i + 12]})
        await send("content_block_stop", {"index": index}, content=False)
        index += 1
    await send("message_delta", {
        "delta": {"stop_reason": "stop_sequence" if stop_sequence else _STOP_REASONS[reply.finish],
                  "stop_sequence": stop_sequence, "stop_details": None, "container": None},
        # Like the real API, the final usage is cumulative and repeats the input counts.
        "usage": {"input_tokens": reply.input_tokens, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                  "output_tokens": reply.output_tokens + _tokens(thinking), "server_tool_use": None,
                  "output_tokens_details": None}}, content=False)
    await send("message_stop", {}, content=False)
    await response.write_eof()
    return response


# -- request -> Prompt ------------------------------------------------------------------------

def _prompt(body: dict[str, Any], *, need_max_tokens: bool) -> Prompt:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model: Field required")
    max_tokens = body.get("max_tokens")
    if need_max_tokens and max_tokens is None:
        raise BadRequest("max_tokens: Field required")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1):
        raise BadRequest("max_tokens: Input should be a positive integer")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: Field required" if messages is None
                         else "messages: at least one message is required")
    temperature = body.get("temperature")
    if temperature is not None and not (isinstance(temperature, (int, float)) and 0 <= temperature <= 1):
        raise BadRequest("temperature: Input should be less than or equal to 1")
    _check_thinking(body.get("thinking"), max_tokens)

    turns: list[tuple[str, str]] = []
    images = 0
    previous_tool_uses: set[str] = set()
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            raise BadRequest(f"messages.{i}.role: Input should be 'user' or 'assistant'")
        blocks = _blocks(m.get("content"), i, final=i == len(messages) - 1)
        texts: list[str] = []
        tool_uses: set[str] = set()
        for j, block in enumerate(blocks):
            kind = block.get("type")
            if kind == "text":
                if not block.get("text"):
                    raise BadRequest(f"messages.{i}.content.{j}.text: text content blocks must be non-empty")
                texts.append(block["text"])
            elif kind in ("image", "document"):
                _check_source(block.get("source"), kind, f"messages.{i}.content.{j}")
                images += kind == "image"
            elif kind == "tool_use" and m["role"] == "assistant":
                if not block.get("id") or not block.get("name") or not isinstance(block.get("input"), dict):
                    raise BadRequest(f"messages.{i}.content.{j}: tool_use needs id, name and an object input")
                tool_uses.add(block["id"])
                _flush(turns, m["role"], texts)
                turns.append(("assistant", json.dumps({"tool": block["name"], "input": block["input"]})))
            elif kind == "tool_result" and m["role"] == "user":
                if block.get("tool_use_id") not in previous_tool_uses:
                    raise BadRequest(f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` "
                                     "blocks: each tool_result must answer a tool_use in the previous message")
                _flush(turns, m["role"], texts)
                turns.append(("tool", _plain(block.get("content"))))
            elif kind == "thinking" and m["role"] == "assistant":
                continue
            else:
                raise BadRequest(f"messages.{i}.content.{j}.type: '{kind}' is not valid in a {m['role']} message")
        _flush(turns, m["role"], texts)
        previous_tool_uses = tool_uses

    system = body.get("system")
    return Prompt(
        model=model,
        turns=turns,
        system=_plain(system),
        tools=[(t.get("name", ""), t.get("input_schema") or {}) for t in body.get("tools") or []],
        tool_choice=_tool_choice(body.get("tool_choice")),
        json_mode=bool(_ASKS_FOR_JSON.search(_plain(system))),
        max_tokens=max_tokens,
        stop=[s for s in body.get("stop_sequences") or [] if isinstance(s, str)],
        images=images,
    )


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
            raise BadRequest(f"{where}.source.media_type: Input should be one of {', '.join(allowed)}")
        if not source.get("data"):
            raise BadRequest(f"{where}.source.data: Field required")
    elif source.get("type") == "url":
        if not str(source.get("url", "")).startswith(("http://", "https://")):
            raise BadRequest(f"{where}.source.url: must be an http(s) URL")
    else:
        raise BadRequest(f"{where}.source.type: Input should be 'base64' or 'url'")


def _check_thinking(thinking: Any, max_tokens: int | None) -> None:
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or budget < 1024:
        raise BadRequest("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
    if max_tokens is not None and budget >= max_tokens:
        raise BadRequest("`max_tokens` must be greater than `thinking.budget_tokens`")


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


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
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
