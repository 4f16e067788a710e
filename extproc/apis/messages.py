"""Front door: the Anthropic Messages API (``POST /v1/messages``) to and from the internal form.

Request (Anthropic Messages)             internal (OpenAI chat)
  system (string or text blocks)          a system message (texts joined)
  messages[].content text                 text parts
  image (base64 / url source)             image_url part (data: URL or URL)
  document (base64 PDF / text source)     file part (data: URL) / text part
  tool_use (assistant)                    assistant tool_calls (input as JSON arguments)
  tool_result (user)                      role "tool" messages, before the user's other content
  thinking / redacted_thinking blocks     dropped (other providers cannot take them back)
  cache_control on any block              dropped (a hint; providers without it ignore it), after
                                          the Messages API's own limits (at most 4, ttl 5m/1h)
  max_tokens (required)                   max_completion_tokens
  stop_sequences                          stop
  tools[] (custom) / server tools         function tools / dropped
  tool_choice auto|any|tool|none          auto|required|{function}|none; disable_parallel_tool_use
                                          -> parallel_tool_calls false
  thinking, top_k, service_tier,          dropped: an emulation would change what was asked for
                                          (thinking's own refusals first: ``combinations``)
  metadata (user_id -> user)              no more than dropping does, and a client must never fail
  stream                                  stream with include_usage (message_delta carries usage)

Answer: a ``message`` with text and tool_use blocks; finish_reason stop -> end_turn (stop_sequence
when the text stopped at one of the request's stop sequences cannot be told apart by OpenAI-form
providers, so end_turn), length -> max_tokens, tool_calls -> tool_use, content_filter -> refusal.
Streams follow Anthropic's event sequence: message_start, ping, content_block_start /
content_block_delta / content_block_stop per block, message_delta (stop_reason, usage), message_stop;
an error mid-stream is an ``error`` event. Errors: ``{"type":"error","error":{"type","message"}}``.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from .. import sse, validate
from ..errors import InvalidRequest, ModelNotFound, anthropic_type, redact, status_of
from ..providers.base import ChatTranslator, UpstreamRequest
from ..providers.openai_anthropic import ANTHROPIC_VERSION, output_limit
from .base import FieldNames, FrontDoorTranslator, TranslatedStream

NAME = "messages"
API = "anthropic_messages"   # the client API, as spans name it (llm.client_api)

# Anthropic's words for a body that is not JSON (the decoder's reason follows), as its API answers one.
NOT_JSON = "The request body is not valid JSON:"
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                "function_call": "tool_use", "content_filter": "refusal"}


def error_body(status: int, message: str) -> bytes:
    """Anthropic's error body for a client status (its type: ``errors.anthropic_type``, the one table)."""
    return json.dumps({"type": "error", "error": {"type": anthropic_type(status),
                                                  "message": message}}, ensure_ascii=False).encode()


def reshape_error(status: int, internal: bytes) -> bytes:
    """An OpenAI-shaped error body (the gateway's or a translator's) in Anthropic's shape."""
    try:
        message = json.loads(internal)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = internal.decode("utf-8", "replace")[:1000] or "error"
    return error_body(status, str(message))


# ---- request ------------------------------------------------------------------------------------

def _text_of(blocks: Any, where: str) -> str:
    if isinstance(blocks, str):
        return blocks
    texts = []
    for i, block in enumerate(validate.array(blocks, where)):
        block = validate.obj(block, f"{where}[{i}]")
        if block.get("type") == "text":
            texts.append(validate.string(block.get("text"), f"{where}[{i}].text"))
    return "\n".join(texts)


def _source_part(block: dict, where: str) -> dict | None:
    source = validate.obj(block.get("source"), f"{where}.source")
    kind = source.get("type")
    if kind == "base64":
        media = validate.string(source.get("media_type"), f"{where}.source.media_type")
        data = validate.string(source.get("data"), f"{where}.source.data")
        url = f"data:{media};base64,{data}"
        if block["type"] == "image":
            return {"type": "image_url", "image_url": {"url": url}}
        return {"type": "file", "file": {"file_data": url, "filename": block.get("title") or "document.pdf"}}
    if kind == "url":
        url = validate.string(source.get("url"), f"{where}.source.url")
        if block["type"] == "image":
            return {"type": "image_url", "image_url": {"url": url}}
        raise InvalidRequest("a document given by URL cannot be fetched by the gateway; send it as base64",
                             param=f"{where}.source")
    if kind == "text":
        return {"type": "text", "text": validate.string(source.get("data"), f"{where}.source.data")}
    if kind == "content":
        return {"type": "text", "text": _text_of(source.get("content"), f"{where}.source.content")}
    raise InvalidRequest(f"{where}.source.type '{kind}' is not supported", param=f"{where}.source.type")


def _tool_result_text(content: Any, where: str) -> str | list:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts: list[dict] = []
    for i, block in enumerate(validate.array(content, where)):
        block = validate.obj(block, f"{where}[{i}]")
        if block.get("type") == "text":
            parts.append({"type": "text", "text": validate.string(block.get("text"), f"{where}[{i}].text")})
        elif block.get("type") in ("image", "document"):
            part = _source_part(block, f"{where}[{i}]")
            if part is not None and part["type"] == "text":
                parts.append(part)
    # OpenAI tool messages take text parts only: images in a tool result are left out.
    return "\n".join(p["text"] for p in parts)


def _messages(messages: list, system: Any, names: FieldNames) -> list[dict]:
    """The chat messages of a Messages request; ``names`` learns which message or block each came from."""
    out: list[dict] = []
    if system is not None:
        text = _text_of(system, "system")
        if text:
            names.add("messages[0]", "system")
            names.add("messages[0].content", "system")
            out.append({"role": "system", "content": text})
    for i, message in enumerate(validate.array(messages, "messages", nonempty=True)):
        where = f"messages[{i}]"
        message = validate.obj(message, where)
        role = validate.one_of(message.get("role"), f"{where}.role", ("user", "assistant"))
        content = message.get("content")
        if isinstance(content, str):
            names.add(f"messages[{len(out)}]", where)
            out.append({"role": role, "content": content})
            continue
        parts: list[dict] = []
        blocks: list[str] = []   # the block each part came from
        call_blocks: list[str] = []   # the block each tool call came from
        calls: list[dict] = []
        results: list[dict] = []
        for j, block in enumerate(validate.array(content, f"{where}.content")):
            bw = f"{where}.content[{j}]"
            block = validate.obj(block, bw)
            kind = block.get("type")
            if kind == "text":
                parts.append({"type": "text", "text": validate.string(block.get("text"), f"{bw}.text")})
                blocks.append(bw)
            elif kind in ("image", "document"):
                part = _source_part(block, bw)
                if part is not None:
                    parts.append(part)
                    blocks.append(bw)
            elif kind == "tool_use" and role == "assistant":
                call_blocks.append(bw)
                calls.append({"id": validate.string(block.get("id"), f"{bw}.id", nonempty=True), "type": "function",
                              "function": {"name": validate.string(block.get("name"), f"{bw}.name", nonempty=True),
                                           "arguments": json.dumps(block.get("input") or {}, ensure_ascii=False)}})
            elif kind == "tool_result" and role == "user":
                text = _tool_result_text(block.get("content"), f"{bw}.content")
                if block.get("is_error") is True:
                    text = f"Error: {text}"
                names.add(f"messages[{len(out) + len(results)}]", bw)
                names.add(f"messages[{len(out) + len(results)}].content", f"{bw}.content")
                names.add(f"messages[{len(out) + len(results)}].tool_call_id", f"{bw}.tool_use_id")
                results.append({"role": "tool", "content": text,
                                "tool_call_id": validate.string(block.get("tool_use_id"), f"{bw}.tool_use_id",
                                                                nonempty=True)})
            elif kind in ("thinking", "redacted_thinking", "server_tool_use", "web_search_tool_result",
                          "search_result", "container_upload"):
                continue   # another provider cannot take these back; Anthropic re-derives what it needs
            else:
                raise InvalidRequest(f"{bw}.type '{kind}' is not a content block for role '{role}'",
                                     param=f"{bw}.type")
        out.extend(results)
        if role == "assistant":
            text = "".join(p.get("text", "") for p in parts if p["type"] == "text")
            entry: dict[str, Any] = {"role": "assistant", "content": text or None}
            if calls:
                entry["tool_calls"] = calls
            if text or calls:
                names.add(f"messages[{len(out)}]", where)
                names.add(f"messages[{len(out)}].content", f"{where}.content")
                for c, bw in enumerate(call_blocks):
                    at = f"messages[{len(out)}].tool_calls[{c}]"
                    for internal, field in (("", ""), (".id", ".id"), (".function.name", ".name"),
                                            (".function.arguments", ".input")):
                        names.add(at + internal, bw + field)
                out.append(entry)
        elif parts:
            names.add(f"messages[{len(out)}]", where)
            for k, bw in enumerate(blocks):
                names.add(f"messages[{len(out)}].content[{k}]", bw)
                names.add(f"messages[{len(out)}].content[{k}].image_url.url", f"{bw}.source")
                names.add(f"messages[{len(out)}].content[{k}].file", f"{bw}.source")
            out.append({"role": "user", "content": parts})
    return out


def _tools(tools: Any, names: FieldNames) -> list[dict]:
    out = []
    for i, tool in enumerate(validate.array(tools, "tools")):
        tool = validate.obj(tool, f"tools[{i}]")
        if tool.get("type") not in (None, "custom"):
            continue   # a server tool (web search, bash, ...) only Anthropic runs
        function = {"name": validate.string(tool.get("name"), f"tools[{i}].name", nonempty=True),
                    "parameters": tool.get("input_schema") or {"type": "object", "properties": {}}}
        if tool.get("description"):
            function["description"] = validate.string(tool["description"], f"tools[{i}].description")
        names.add(f"tools[{len(out)}].function", f"tools[{i}]")   # server tools are left out: indexes shift
        names.add(f"tools[{len(out)}].function.parameters", f"tools[{i}].input_schema")
        out.append({"type": "function", "function": function})
    return out


def to_internal(client: dict) -> dict:
    """An Anthropic Messages request (parsed JSON) as an internal (OpenAI chat) request.
    Raises InvalidRequest (400) naming the Anthropic field (``tools[1].name``, ``max_tokens``), never
    the chat field the door made of it: the shared validator's errors go through the door's ``FieldNames``."""
    return _checked(client)[0]


def _checked(client: dict) -> tuple[dict, FieldNames]:
    body, names = _to_internal(client)
    try:
        validate.chat(body)   # the internal form must pass the same validator as an OpenAI client's request
    except InvalidRequest as exc:
        raise names.renamed(exc) from None
    return body, names


def _to_internal(client: dict) -> tuple[dict, FieldNames]:
    names = FieldNames()
    for internal, field in (("max_completion_tokens", "max_tokens"), ("stop", "stop_sequences"),
                            ("tool_choice.function", "tool_choice"), ("user", "metadata.user_id")):
        names.add(internal, field)
    model = validate.string(client.get("model"), "model", nonempty=True) if "model" in client else None
    if model is None:
        raise InvalidRequest("model: Field required", param="model")
    if "max_tokens" not in client:
        raise InvalidRequest("max_tokens: Field required", param="max_tokens")
    body: dict[str, Any] = {"model": model, "messages": _messages(client.get("messages"), client.get("system"), names),
                            "max_completion_tokens": validate.integer(client["max_tokens"], "max_tokens", 1)}
    for name in ("temperature", "top_p"):
        if client.get(name) is not None:
            body[name] = validate.number(client[name], name, 0, 1)
    if client.get("stop_sequences"):
        body["stop"] = [validate.string(s, "stop_sequences") for s in validate.array(client["stop_sequences"],
                                                                                      "stop_sequences")][:4]
    tools = _tools(client["tools"], names) if client.get("tools") else []
    if tools:
        body["tools"] = tools
    choice = client.get("tool_choice")
    if isinstance(choice, dict) and tools:
        kind = choice.get("type")
        if kind == "any":
            body["tool_choice"] = "required"
        elif kind == "tool":
            body["tool_choice"] = {"type": "function", "function": {
                "name": validate.string(choice.get("name"), "tool_choice.name", nonempty=True)}}
        elif kind in ("auto", "none"):
            body["tool_choice"] = kind
        if choice.get("disable_parallel_tool_use") is True and kind != "none":
            body["parallel_tool_calls"] = False
    metadata = client.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        body["user"] = metadata["user_id"][:256]
    if client.get("stream") is not None and validate.boolean(client["stream"], "stream"):
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body, names


def parse(raw: bytes) -> tuple[dict, dict, FieldNames]:
    """(internal request, client request, the Messages field each internal field came from) from a
    Messages request body; raises InvalidRequest. The names rename any later error about the internal
    request (the planner's, a retry's translator's) into the client's fields."""
    client = validate.parse(raw, NOT_JSON)
    combinations(client)
    body, names = _checked(client)
    return body, client, names


MAX_CACHE_BREAKPOINTS = 4
CACHE_TTLS = ("5m", "1h")
# The thinking types that think (budgeted and adaptive; Claude 4.6+ recommends adaptive, Opus 4.7+ takes only it).
THINKING_ON = ("enabled", "adaptive")


def combinations(client: dict) -> None:
    """Raise ``InvalidRequest`` (400, in the Messages API's words) for what the Messages API refuses
    whichever model it names, so the client hears it before any provider is asked, and hears the same
    whether the plan reaches Anthropic (which would answer this 400) or another provider (which
    would drop ``thinking`` and ``cache_control`` and answer 200: tryout 6 M4):

    - extended thinking (``thinking.type: enabled``, or ``adaptive``: the adaptive-thinking page calls
      it a way to use extended thinking, so the same rules hold) with ``temperature`` other than 1,
      with ``top_k``, with ``top_p`` below 0.95, or with a ``tool_choice`` that forces a tool
      (``any``, ``tool``): the extended-thinking page's "Feature compatibility"; the API's words as
      clients report them (the top_p words are ours);
    - more than ``MAX_CACHE_BREAKPOINTS`` blocks with ``cache_control`` (tools, system, message
      blocks, tool-result blocks), or a ``ttl`` other than "5m" / "1h" (the OpenAPI enum).

    ``param`` names the Messages field."""
    thinking = client.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in THINKING_ON:
        temperature, top_p, choice = client.get("temperature"), client.get("top_p"), client.get("tool_choice")
        if isinstance(temperature, (int, float)) and not isinstance(temperature, bool) and temperature != 1:
            raise InvalidRequest("`temperature` may only be set to 1 when thinking is enabled.", param="temperature")
        if client.get("top_k") is not None:
            raise InvalidRequest("`top_k` must be unset when thinking is enabled.", param="top_k")
        if isinstance(top_p, (int, float)) and not isinstance(top_p, bool) and top_p < 0.95:
            raise InvalidRequest("`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled.",
                                 param="top_p")
        if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
            raise InvalidRequest("Thinking may not be enabled when tool_choice forces tool use.", param="tool_choice")
    marked = _cache_controls(client)
    for where, control in marked:
        ttl = control.get("ttl") if isinstance(control, dict) else None
        if ttl is not None and ttl not in CACHE_TTLS:
            # The API names the field the pydantic way, its union's tag included (as "tools.0.custom.name").
            dotted = where.replace("[", ".").replace("]", "")
            raise InvalidRequest(f"{dotted}.cache_control.ephemeral.ttl: Input should be '5m' or '1h'",
                                 param=f"{where}.cache_control.ttl")
    if len(marked) > MAX_CACHE_BREAKPOINTS:
        raise InvalidRequest(f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. "
                             f"Found {len(marked)}.", param=marked[MAX_CACHE_BREAKPOINTS][0] + ".cache_control")


def _cache_controls(client: dict) -> list[tuple[str, Any]]:
    """(block path, its cache_control) of every block that carries one, in request order."""
    found: list[tuple[str, Any]] = []

    def visit(blocks: Any, where: str) -> None:
        for k, block in enumerate(blocks if isinstance(blocks, list) else []):
            if isinstance(block, dict):
                if block.get("cache_control") is not None:
                    found.append((f"{where}[{k}]", block["cache_control"]))
                if block.get("type") == "tool_result":
                    visit(block.get("content"), f"{where}[{k}].content")

    visit(client.get("tools"), "tools")
    visit(client.get("system"), "system")
    messages = client.get("messages")
    for i, message in enumerate(messages if isinstance(messages, list) else []):
        if isinstance(message, dict):
            visit(message.get("content"), f"messages[{i}].content")
    return found


def count_tokens(raw: bytes, known: Callable[[str], bool] = lambda _model: True) -> bytes:
    """``POST /v1/messages/count_tokens``: ``{"input_tokens": N}``, counted by the gateway's tokenizer
    (the same estimate its budgets use; a provider's own count may differ by a few percent).
    ``known(model)``: whether the gateway serves that model name; else ``ModelNotFound`` (404), as
    ``/v1/messages`` answers."""
    from ..tokens import prompt_tokens
    client = validate.parse(raw, NOT_JSON)
    model = client.get("model")
    if isinstance(model, str) and not known(model):
        raise ModelNotFound(f"model: {model}", param="model")
    body = to_internal({**client, "max_tokens": 1, "stream": False})
    return json.dumps({"input_tokens": prompt_tokens(body)}).encode()


# ---- answer -------------------------------------------------------------------------------------

def _usage(usage: dict | None) -> dict:
    usage = usage or {}
    cached = ((usage.get("prompt_tokens_details") or {}).get("cached_tokens")) or 0
    # Every field of Anthropic's Usage object, those without a meaning here null, as Anthropic sends them.
    return {"input_tokens": max(0, (usage.get("prompt_tokens") or 0) - cached),
            "output_tokens": usage.get("completion_tokens") or 0,
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached, "cache_creation": None,
            "inference_geo": None, "output_tokens_details": None, "server_tool_use": None, "service_tier": "standard"}


def _input_of(arguments: str) -> Any:
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


class MessagesTranslator(TranslatedStream):
    def __init__(self, inner: ChatTranslator, client: dict, ids: dict):
        super().__init__(inner, client, ids)
        self._block: str | None = None      # "text" | "tool_use" | None: the open content block
        self._index = -1
        self._tools: dict[int, int] = {}    # OpenAI tool call index -> content block index
        self._stop: str | None = None
        self._usage: dict | None = None

    def answer(self, internal: bytes) -> bytes:
        chat = json.loads(internal)
        choice = (chat.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        content: list[dict] = []
        if message.get("content"):
            content.append({"type": "text", "text": message["content"], "citations": None})
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            content.append({"type": "tool_use", "id": call.get("id"), "name": function.get("name"),
                            "input": _input_of(function.get("arguments")), "caller": {"type": "direct"}})
        return json.dumps({
            "id": self.ids["id"], "type": "message", "role": "assistant", "model": chat.get("model") or
            self.client.get("model"), "content": content,
            "stop_reason": STOP_REASONS.get(choice.get("finish_reason"), "end_turn"), "stop_sequence": None,
            "stop_details": None, "container": None, "usage": _usage(chat.get("usage"))}, ensure_ascii=False).encode()

    def error_body(self, status: int, internal: bytes) -> bytes:
        return reshape_error(status, internal)

    # -- stream --

    def _start(self, model: str | None) -> bytes:
        self._started = True
        message = {"id": self.ids["id"], "type": "message", "role": "assistant", "model": model or
                   self.client.get("model"), "content": [], "stop_reason": None, "stop_sequence": None,
                   "stop_details": None, "container": None, "usage": _usage(None)}
        return (sse.encode({"type": "message_start", "message": message}, event="message_start")
                + sse.encode({"type": "ping"}, event="ping"))

    def _close(self) -> bytes:
        if self._block is None:
            return b""
        self._block = None
        return sse.encode({"type": "content_block_stop", "index": self._index}, event="content_block_stop")

    def _open(self, block: dict) -> bytes:
        out = self._close()
        self._index += 1
        self._block = block["type"]
        return out + sse.encode({"type": "content_block_start", "index": self._index, "content_block": block},
                                event="content_block_start")

    def _final(self) -> bytes:
        self._done = True
        out = self._close()
        usage = _usage(self._usage)
        return out + sse.encode({"type": "message_delta", "delta": {"stop_reason": STOP_REASONS.get(
            self._stop, "end_turn"), "stop_sequence": None}, "usage": usage}, event="message_delta") + sse.encode(
            {"type": "message_stop"}, event="message_stop")

    def _failed(self, error: dict[str, Any]) -> bytes:
        # The internal error object carries no status: its type and code name the one it stands for
        # (a Gemini or Anthropic overload is 503, Anthropic's overloaded_error; errors.KINDS).
        kind = anthropic_type(status_of(error))
        return sse.encode({"type": "error", "error": {"type": kind, "message": str(error.get("message", "error"))}},
                          event="error")

    def _chunk(self, chunk: dict[str, Any]) -> bytes:
        out = b"" if self._started else self._start(chunk.get("model"))
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                if self._block != "text":
                    out += self._open({"type": "text", "text": ""})
                out += sse.encode({"type": "content_block_delta", "index": self._index,
                                   "delta": {"type": "text_delta", "text": delta["content"]}},
                                  event="content_block_delta")
            for call in delta.get("tool_calls") or []:
                number = call.get("index", 0)
                function = call.get("function") or {}
                if number not in self._tools:
                    out += self._open({"type": "tool_use", "id": call.get("id") or f"toolu_{number}",
                                       "name": function.get("name") or "", "input": {}})
                    self._tools[number] = self._index
                if function.get("arguments"):
                    out += sse.encode({"type": "content_block_delta", "index": self._tools[number],
                                       "delta": {"type": "input_json_delta",
                                                 "partial_json": function["arguments"]}},
                                      event="content_block_delta")
            if choice.get("finish_reason"):
                self._stop = choice["finish_reason"]
        return out


def asks_prompt_cache(client: dict) -> bool:
    """Whether a Messages request marks a prompt cache (``cache_control`` at its top level, Anthropic's
    automatic caching, or on any block ``_cache_controls`` finds: ``tools``, ``system``, ``messages`` and
    the blocks inside a ``tool_result``). Passed through to a Claude model it is read from the cache on
    the next turn, so affinity prices that turn's prefix as cached."""
    return bool(client.get("cache_control")) or any(control for _, control in _cache_controls(client))


class MessagesPassthrough(FrontDoorTranslator):
    """The chosen provider speaks Messages: the client's request goes as it came (its model replaced by
    the provider's id), so extended thinking, ``cache_control`` and server tools work as they do at
    Anthropic; the answer, error or stream comes back untouched.

    Headers follow the same allowlist as every other request (README, "Header allowlists"):
    ``anthropic-version`` is the gateway's own (``ANTHROPIC_VERSION``, the version its translator reads
    the answer in, for usage and stream endings), whatever the client sent; ``anthropic-beta`` turns on
    beta features on the gateway's account, so it reaches Anthropic only when the provider's
    ``forward_headers`` lists it (set by ``Gateway.route``, as for Chat Completions), never from here.

    The provider translator still reads a copy of the answer: its usage for accounting and budgets,
    its stream's ending, and (``last_internal``) the internal form of the text delivered, which is
    what a cut stream is billed on."""

    passthrough_response = True

    def __init__(self, inner: ChatTranslator, client: dict, ids: dict):
        super().__init__(inner, client, ids)
        # The inner translator only reads answers here: a minimal request sets its stream state (and no
        # stop sequences to apply, since the provider applies the client's own).
        inner.request({"model": client.get("model"), "messages": [{"role": "user", "content": "-"}],
                       **({"stream": True, "stream_options": {"include_usage": True}}
                          if client.get("stream") is True else {})})

    def request(self, body: dict[str, Any]) -> UpstreamRequest:
        target = self.target
        headers = {"anthropic-version": ANTHROPIC_VERSION, "content-type": "application/json"}
        beta = self.ids.get("headers", {}).get(":beta")   # Claude Code's ?beta=true, passed through
        return UpstreamRequest(path=f"{target.base_path}/messages" + (f"?beta={beta}" if beta else ""), headers=headers,
                               body=json.dumps(_clamped({**self.client, "model": target.upstream_model}, target),
                                               ensure_ascii=False).encode())


    def response(self, body: bytes) -> bytes:
        try:
            self.inner.response(body)   # for its usage
        except Exception:   # noqa: BLE001 - an unreadable answer still goes to the client as it came
            pass
        return body

    def error(self, status: int, body: bytes) -> tuple[int, bytes]:
        mapped, internal = self.inner.error(status, body)
        try:
            data = json.loads(body)
            if data.get("type") == "error":
                # Already in Anthropic's shape: the provider's own words, less the gateway's account ids
                # (errors.redact: a 429 names the organization).
                err = data.get("error")
                if isinstance(err, dict) and isinstance(err.get("message"), str) \
                        and redact(err["message"]) != err["message"]:
                    return mapped, json.dumps({**data, "error": {**err, "message": redact(err["message"])}},
                                              ensure_ascii=False).encode()
                return mapped, body
        except (ValueError, AttributeError):
            pass
        return mapped, reshape_error(mapped, internal)

    def stream_chunk(self, data: bytes) -> bytes:
        self.last_internal = self.inner.stream_chunk(data)
        return data

    def stream_end(self) -> bytes:
        self.last_internal += self.inner.stream_end()   # after the last chunk's, in the same body message
        return b""

    def answer(self, internal: bytes) -> bytes:   # not used: the answer passes as it came
        return internal

    def events(self, internal: bytes, end: bool = False) -> bytes:   # not used, likewise
        return internal

    def error_body(self, status: int, internal: bytes) -> bytes:
        return reshape_error(status, internal)


def translator(inner: ChatTranslator, client: dict, ids: dict) -> FrontDoorTranslator:
    """The front door's translator for one attempt: pass-through when the provider speaks Messages."""
    if inner.target.api == "anthropic":
        return MessagesPassthrough(inner, client, ids)
    return MessagesTranslator(inner, client, ids)


def _clamped(body: dict[str, Any], target: Any) -> dict[str, Any]:
    """``max_tokens`` above the model's output limit lowered to it, as every door and provider does
    (README "Front doors"): Anthropic would answer 400, the model stops at its limit anyway, and with
    routing the client cannot know which model's limit applies."""
    limit = output_limit(target)
    value = body.get("max_tokens")
    if limit is not None and isinstance(value, int) and not isinstance(value, bool) and value > limit:
        body["max_tokens"] = limit
    return body
