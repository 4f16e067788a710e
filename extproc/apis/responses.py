"""Front door: the OpenAI Responses API (``POST /v1/responses``) to and from the internal form.

Request (Responses)                      internal (OpenAI chat)
  instructions                            a system message, first
  input: string                           one user message
  input items: message (user / system /   messages; input_text / output_text -> text, input_image ->
    developer / assistant; phase ignored)   image_url, input_file (file_data) -> file part
  function_call items                     assistant tool_calls (consecutive calls merged)
  function_call_output items              role "tool" messages
  reasoning items                         dropped (only their producer can read them back)
  tools[] type function                   function tools (strict kept)
  tools[] type custom (freeform, Codex)   a function of one string "input"; answered as custom_tool_call
                                          items, streamed as custom_tool_call_input events
  custom_tool_call / _output items        assistant tool_calls ({"input": ...}) / role "tool" messages
  other tool types (web search, ...)      422: built-in tools the gateway does not run
  tool_choice                             same values; {"type":"function","name"} -> chat form
  text.format json_schema / json_object   response_format
  max_output_tokens                       max_completion_tokens
  temperature, top_p, user,               as they are (prompt_cache_key also keys conversation affinity)
  prompt_cache_key, safety_identifier
  parallel_tool_calls beside tools; stream -> stream with include_usage
  store                                   accepted; nothing is kept: every answer says "store": false,
                                          so previous_response_id (any id is unknown) is a 400 and
                                          GET /v1/responses/{id} a 404
  reasoning.effort                        reasoning_effort (as chat: reasoning models only)
  a field createResponse does not define  passed on as in chat: OpenAI's own models are then unable
                                          (422 unsupported_parameter), as chat answers
  metadata, include, truncation, ...      dropped (no provider-neutral meaning), metadata echoed

Answer: a ``response`` object (status completed, or incomplete with reason max_output_tokens) with a
message item and function_call items, usage as input/output/total tokens. Streams: response.created,
response.in_progress, output_item.added / content_part.added / output_text.delta ... done events per
item, function_call_arguments.delta / .done, response.completed (or .incomplete) with usage; every
event has a sequence_number. Errors keep the OpenAI error shape (the Responses API uses it too).
"""

from __future__ import annotations

import json
from typing import Any

from .. import sse, validate
from ..errors import OPENAI_CODES, InvalidRequest, UnsupportedFeature, status_of
from ..providers.base import ChatTranslator
from .base import FieldNames, TranslatedStream

NAME = "responses"
API = "openai_responses"   # the client API, as spans name it (llm.client_api)


def _part(part: Any, where: str, role: str) -> dict | None:
    part = validate.obj(part, where)
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        return {"type": "text", "text": validate.string(part.get("text"), f"{where}.text")}
    if kind == "refusal":
        return {"type": "text", "text": validate.string(part.get("refusal"), f"{where}.refusal")}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str) or not url:
            raise InvalidRequest(f"{where}.image_url must be a URL or a data: URL (file_id is not supported)",
                                 param=f"{where}.image_url")
        image: dict[str, Any] = {"url": url}
        if part.get("detail") in ("auto", "low", "high"):
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        if not isinstance(part.get("file_data"), str):
            raise InvalidRequest(f"{where}.file_data is required (file_id and file_url are not supported)",
                                 param=f"{where}.file_data")
        data = part["file_data"]
        if not data.startswith("data:"):
            data = f"data:application/pdf;base64,{data}"
        return {"type": "file", "file": {"file_data": data, "filename": part.get("filename") or "file.pdf"}}
    raise InvalidRequest(f"{where}.type '{kind}' is not a content part for role '{role}'", param=f"{where}.type")


def _content(content: Any, where: str, role: str) -> str | list:
    if isinstance(content, str):
        return content
    parts = [_part(p, f"{where}[{i}]", role) for i, p in enumerate(validate.array(content, where))]
    parts = [p for p in parts if p is not None]
    if role in ("assistant", "system", "developer"):
        return "".join(p.get("text", "") for p in parts)
    return parts


def _messages(client: dict, names: FieldNames) -> list[dict]:
    """The chat messages of a Responses request; ``names`` learns which item each came from."""
    out: list[dict] = []
    names.add("messages", "input")
    if client.get("instructions") is not None:
        names.add("messages[0]", "instructions")
        names.add("messages[0].content", "instructions")
        out.append({"role": "system", "content": validate.string(client["instructions"], "instructions")})
    items = client.get("input")
    if isinstance(items, str):
        names.add(f"messages[{len(out)}]", "input")
        names.add(f"messages[{len(out)}].content", "input")
        out.append({"role": "user", "content": items})
        return out
    calls: set[str] = set()   # call ids of the function_call items so far
    for i, item in enumerate(validate.array(items, "input", nonempty=True)):
        where = f"input[{i}]"
        item = validate.obj(item, where)
        kind = item.get("type", "message")
        if kind == "message":
            role = validate.one_of(item.get("role"), f"{where}.role", ("user", "assistant", "system", "developer"))
            content = _content(item.get("content"), f"{where}.content", role)
            names.add(f"messages[{len(out)}]", where)
            for j, part in enumerate(content if isinstance(content, list) else []):
                # Chat nests what a Responses part holds directly: image_url.url, file.file_data.
                inner = {"image_url": "image_url.url", "file": "file"}.get(part["type"])
                if inner is not None:
                    names.add(f"messages[{len(out)}].content[{j}].{inner}",
                              f"{where}.content[{j}]" + (".image_url" if inner == "image_url.url" else ""))
            out.append({"role": role, "content": content})
        elif kind in ("function_call", "custom_tool_call"):
            arguments = (validate.string(item.get("arguments", "{}"), f"{where}.arguments") if kind == "function_call"
                         else json.dumps({"input": validate.string(item.get("input", ""), f"{where}.input")},
                                         ensure_ascii=False))
            call = {"id": validate.string(item.get("call_id"), f"{where}.call_id", nonempty=True), "type": "function",
                    "function": {"name": validate.string(item.get("name"), f"{where}.name", nonempty=True),
                                 "arguments": arguments}}
            calls.add(call["id"])
            last = out[-1] if out else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            elif last is not None and last["role"] == "assistant" and not isinstance(last.get("content"), list):
                last["tool_calls"] = [call]
            else:
                names.add(f"messages[{len(out)}]", where)
                out.append({"role": "assistant", "content": None, "tool_calls": [call]})
            inside = f"messages[{len(out) - 1}].tool_calls[{len(out[-1]['tool_calls']) - 1}]"
            for internal, field in (("", ""), (".id", ".call_id"), (".function.name", ".name"),
                                    (".function.arguments", ".arguments" if kind == "function_call" else ".input")):
                names.add(inside + internal, where + field)
        elif kind in ("function_call_output", "custom_tool_call_output"):
            output = item.get("output")
            if output is not None and not isinstance(output, (str, list)):   # was a TypeError: a 500
                raise InvalidRequest(f"Invalid type for '{where}.output': expected a string or an array of content "
                                     f"parts, but got {validate.kind(output)} instead.", param=f"{where}.output",
                                     code="invalid_type")
            text = output if isinstance(output, str) else "".join(
                validate.string(p.get("text", ""), f"{where}.output[{j}].text")   # not None: a TypeError
                for j, p in enumerate(output or []) if isinstance(p, dict))
            call_id = validate.string(item.get("call_id"), f"{where}.call_id", nonempty=True)
            if call_id not in calls:
                # Checked here, in the Responses API's names: a provider translator would refuse it in the
                # internal Chat names (messages[N].tool_call_id), or a provider would, in its own words.
                raise InvalidRequest(f"No tool call found for {kind} with call_id '{call_id}': an output "
                                     "answers a function_call item earlier in input (nothing is stored, so "
                                     "the call must be sent again).", param=f"{where}.call_id",
                                     code="invalid_value")
            names.add(f"messages[{len(out)}]", where)
            names.add(f"messages[{len(out)}].content", f"{where}.output")
            names.add(f"messages[{len(out)}].tool_call_id", f"{where}.call_id")
            out.append({"role": "tool", "content": text, "tool_call_id": call_id})
        elif kind == "reasoning":
            continue
        else:
            raise InvalidRequest(f"{where}.type '{kind}' is not supported by this gateway", param=f"{where}.type")
    return out


# createResponse's top-level fields (the openai SDK's ResponseCreateParams, 3.57, plus ``stream``).
RESPONSES_FIELDS = frozenset({
    "access_programs", "background", "background_options", "context_management", "conversation", "image", "include",
    "input", "instructions", "max_output_tokens", "max_tool_calls", "metadata", "model", "moderation",
    "parallel_tool_calls", "previous_response_id", "prompt", "prompt_cache_key", "prompt_cache_options",
    "prompt_cache_retention", "reasoning", "safety_identifier", "service_tier", "store", "stream", "stream_options",
    "temperature", "text", "tool_choice", "tools", "top_logprobs", "top_p", "truncation", "user"})


# OpenAI's own words for JSON mode without the word "json" on this API (its 400 as clients report it).
JSON_WORD_MISSING = ("Response input messages must contain the word 'json' in some form to use 'text.format' of "
                     "type 'json_object'.")


def to_internal(client: dict) -> dict:
    """A Responses request (parsed JSON) as an internal (OpenAI chat) request; raises InvalidRequest
    (400) or UnsupportedFeature (422, a built-in tool the gateway cannot run), naming the Responses
    field (``input[2].content``, ``text.format``, ``max_output_tokens``), never the chat field the door
    made of it: the shared validator's errors go through the door's ``FieldNames``."""
    return _checked(client)[0]


def _checked(client: dict) -> tuple[dict, FieldNames]:
    body, names = _to_internal(client)
    try:
        validate.chat(body)
    except InvalidRequest as exc:
        raise names.renamed(exc) from None
    return body, names


def _to_internal(client: dict) -> tuple[dict, FieldNames]:
    names = FieldNames({validate.JSON_WORD_MISSING: JSON_WORD_MISSING})
    if "model" not in client:
        raise InvalidRequest("Missing required parameter: 'model'.", param="model", code="missing_required_parameter")
    if client.get("previous_response_id") is not None:
        # Nothing is stored (README, "Front doors"): every id is unknown.
        raise InvalidRequest(f"Previous response with id '{client['previous_response_id']}' not found.",
                             param="previous_response_id", code="previous_response_not_found")
    if "input" not in client:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    body: dict[str, Any] = {"model": validate.string(client["model"], "model", nonempty=True),
                            "messages": _messages(client, names)}
    if client.get("max_output_tokens") is not None:
        body["max_completion_tokens"] = validate.integer(client["max_output_tokens"], "max_output_tokens", 1)
        names.add("max_completion_tokens", "max_output_tokens")
    # as chat takes them (the OpenAI validator checks them there): prompt_cache_key also keys the
    # gateway's conversation affinity, and the provider's prompt cache (tryout 10 M4: it was dropped)
    for name in ("temperature", "top_p", "user", "prompt_cache_key", "safety_identifier"):
        if client.get(name) is not None:
            body[name] = client[name]
    reasoning = client.get("reasoning")
    if reasoning is not None and validate.obj(reasoning, "reasoning").get("effort") is not None:
        # The same rule as chat's reasoning_effort: a reasoning model gets it, the others leave it out.
        body["reasoning_effort"] = validate.string(reasoning["effort"], "reasoning.effort")
        names.add("reasoning_effort", "reasoning.effort")
    for name in sorted(set(client) - RESPONSES_FIELDS):
        # A field the Responses API does not define goes on as chat would take it, so the same
        # per-model check decides (OpenAI's own models: 422 unsupported_parameter), not a silent drop.
        if name in body:   # a chat field the door sets itself (messages, ...): no meaning here
            raise InvalidRequest(f"Unknown parameter: '{name}'.", param=name, code="unknown_parameter")
        body[name] = client[name]
    tools = []
    for i, tool in enumerate(validate.array(client.get("tools") or [], "tools")):
        tool = validate.obj(tool, f"tools[{i}]")
        if tool.get("type") not in ("function", "custom"):
            raise UnsupportedFeature(f"tools[{i}].type '{tool.get('type')}' is a built-in tool this gateway does "
                                     "not run; use function or custom tools", param=f"tools[{i}].type")
        function: dict[str, Any] = {"name": validate.string(tool.get("name"), f"tools[{i}].name", nonempty=True),
                                    "parameters": tool.get("parameters") or {"type": "object", "properties": {}}}
        if tool["type"] == "custom":
            # A custom (freeform) tool takes one text input: a function of one string, unwrapped in the answer.
            # A grammar format cannot be enforced elsewhere; it is given to the model as the input's description.
            fmt = tool.get("format") if isinstance(tool.get("format"), dict) else {}
            hint = f"Input in this {fmt.get('syntax', 'grammar')}: {fmt.get('definition')}" if fmt.get(
                "type") == "grammar" else "The tool's input, as free text."
            function["parameters"] = {"type": "object", "properties": {"input": {"type": "string", "description": hint}},
                                      "required": ["input"]}
        if tool.get("description") is not None:
            function["description"] = tool["description"]
        if tool.get("strict") is not None:
            function["strict"] = tool["strict"]
        names.add(f"tools[{len(tools)}].function", f"tools[{i}]")   # chat nests what a Responses tool holds
        tools.append({"type": "function", "function": function})
    if tools:
        body["tools"] = tools
        if client.get("parallel_tool_calls") is not None:   # chat takes it only beside tools
            body["parallel_tool_calls"] = client["parallel_tool_calls"]
        choice = client.get("tool_choice")
        if isinstance(choice, str):
            body["tool_choice"] = choice
        elif isinstance(choice, dict) and choice.get("type") in ("function", "custom"):
            body["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
            names.add("tool_choice.function", "tool_choice")
    fmt = (client.get("text") or {}).get("format") if isinstance(client.get("text"), dict) else None
    if isinstance(fmt, dict):
        if fmt.get("type") == "json_schema":
            schema = {"name": fmt.get("name", "response"), "schema": fmt.get("schema")}
            for name in ("strict", "description"):
                if fmt.get(name) is not None:
                    schema[name] = fmt[name]
            body["response_format"] = {"type": "json_schema", "json_schema": schema}
        elif fmt.get("type") == "json_object":
            body["response_format"] = {"type": "json_object"}
        if "response_format" in body:
            names.add("response_format", "text.format")
            names.add("response_format.json_schema", "text.format")   # its name, schema, strict: text.format's
    if client.get("stream") is not None and validate.boolean(client["stream"], "stream"):
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body, names


def parse(raw: bytes) -> tuple[dict, dict, FieldNames]:
    """(internal request, client request, the Responses field each internal field came from) from a
    Responses request body; raises GatewayError. The names rename any later error about the internal
    request (the planner's, a retry's translator's) into the client's fields."""
    client = validate.parse(raw)
    body, names = _checked(client)
    return body, client, names


# The codes a failed response's error may carry (the Responses API's ResponseError.code) that the gateway
# can tell: OpenAI's own for the situation (errors.OPENAI_CODES) where ResponseError has it too.
FAILED_CODES = frozenset({"rate_limit_exceeded", "invalid_prompt"} | {c for c in OPENAI_CODES if "image" in c})


def failed_code(error: dict) -> str:
    """``response.failed``'s ``error.code`` for the internal stream's error object: a rate limit (any 429,
    ``errors.status_of``) is ``rate_limit_exceeded``, an OpenAI code ResponseError knows stays, and any
    other failure is ``server_error``."""
    if status_of(error) == 429:
        return "rate_limit_exceeded"
    code = error.get("code")
    return code if code in FAILED_CODES else "server_error"


def reshape_error(status: int, internal: bytes) -> bytes:
    return internal   # the Responses API answers errors in the same envelope as Chat Completions


# ---- answer -------------------------------------------------------------------------------------

def _usage(usage: dict | None) -> dict:
    usage = usage or {}
    prompt, completion = usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt + completion}


def _echoed_tool(tool: dict) -> dict:
    """A request's tool as an answer lists it: every field present (null when not given)."""
    if tool.get("type") == "custom":
        return {"type": "custom", "name": tool.get("name"), "description": tool.get("description"),
                "format": tool.get("format") or {"type": "text"}}
    return {"type": "function", "name": tool.get("name"), "description": tool.get("description"),
            "parameters": tool.get("parameters"), "strict": tool.get("strict")}


def _custom_input(arguments: str) -> str:
    """A custom tool's text input from the function arguments it was asked for as: ``{"input": "..."}``."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return arguments
    return value["input"] if isinstance(value, dict) and isinstance(value.get("input"), str) else arguments


class ResponsesTranslator(TranslatedStream):
    def __init__(self, inner: ChatTranslator, client: dict, ids: dict):
        super().__init__(inner, client, ids)
        self._seq = 0
        self._text: str | None = None           # the message item's text while it is open
        self._output: list[dict] = []            # finished output items
        self._open: dict | None = None           # the item being streamed
        self._calls: dict[int, dict] = {}        # OpenAI tool call index -> function_call item
        self._finish: str | None = None
        self._usage: dict | None = None
        self._model: str | None = None

    def _resource(self, status: str, output: list[dict], usage: dict | None, model: str | None,
                  finish: str | None = None) -> dict:
        client = self.client
        fmt = (client.get("text") or {}).get("format") if isinstance(client.get("text"), dict) else None
        incomplete = status == "incomplete"
        return {
            "id": self.ids["id"], "object": "response", "created_at": self.ids["created"], "status": status,
            "completed_at": self.ids["created"] if status in ("completed", "incomplete") else None,
            "error": None, "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
            "instructions": client.get("instructions"), "max_output_tokens": client.get("max_output_tokens"),
            "max_tool_calls": None, "model": model or client.get("model"), "output": output,
            "parallel_tool_calls": client.get("parallel_tool_calls", True), "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None}, "store": False,
            "temperature": client.get("temperature", 1.0), "top_p": client.get("top_p", 1.0),
            "text": {"format": fmt if isinstance(fmt, dict) else {"type": "text"}},
            "tool_choice": client.get("tool_choice", "auto"),
            "tools": [_echoed_tool(t) for t in client.get("tools") or []],
            "truncation": "disabled", "usage": _usage(usage) if usage is not None else None, "user": client.get("user"),
            "metadata": client.get("metadata") or {}, "background": False, "service_tier": "default",
            "top_logprobs": 0, "frequency_penalty": 0.0, "presence_penalty": 0.0,
            "safety_identifier": client.get("safety_identifier"), "prompt_cache_key": client.get("prompt_cache_key"),
        }

    def _message_item(self, text: str, status: str = "completed") -> dict:
        return {"id": f"msg_{self.ids['id'][5:]}", "type": "message", "status": status, "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]
                if status == "completed" else []}

    def answer(self, internal: bytes) -> bytes:
        chat = json.loads(internal)
        choice = (chat.get("choices") or [{}])[0]
        message = choice.get("message") or {}
        output: list[dict] = []
        if message.get("content") or not message.get("tool_calls"):
            output.append(self._message_item(message.get("content") or ""))
        for call in message.get("tool_calls") or []:
            function = call.get("function") or {}
            output.append(self._call_item(call.get("id"), function.get("name"), function.get("arguments") or ""))
        status = "incomplete" if choice.get("finish_reason") == "length" else "completed"
        return json.dumps(self._resource(status, output, chat.get("usage"), chat.get("model")),
                          ensure_ascii=False).encode()

    def error_body(self, status: int, internal: bytes) -> bytes:
        return internal

    def _custom(self, name: str | None) -> bool:
        return any(isinstance(t, dict) and t.get("type") == "custom" and t.get("name") == name
                   for t in self.client.get("tools") or [])

    def _call_item(self, call_id: str | None, name: str | None, arguments: str) -> dict:
        """A finished tool call as its output item: a custom tool's input unwrapped from its one argument."""
        if self._custom(name):
            return {"id": f"ctc_{call_id}", "type": "custom_tool_call", "status": "completed", "call_id": call_id,
                    "name": name, "input": _custom_input(arguments)}
        return {"id": f"fc_{call_id}", "type": "function_call", "status": "completed", "call_id": call_id,
                "name": name, "arguments": arguments}

    # -- stream --

    def _emit(self, kind: str, **fields: Any) -> bytes:
        self._seq += 1
        return sse.encode({"type": kind, "sequence_number": self._seq - 1, **fields}, event=kind)

    def _close(self) -> bytes:
        item, self._open = self._open, None
        if item is None:
            return b""
        index = len(self._output)
        if item["type"] == "message":
            text = self._text or ""
            self._text = None
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            done = self._message_item(text)
            out = (self._emit("response.output_text.done", item_id=item["id"], output_index=index, content_index=0,
                              text=text, logprobs=[])
                   + self._emit("response.content_part.done", item_id=item["id"], output_index=index,
                                content_index=0, part=part))
        elif item["type"] == "custom_tool_call":
            # Its input is known once the arguments are whole (it is the value inside them): sent in one delta.
            done = self._call_item(item["call_id"], item["name"], item.pop("_arguments"))
            out = (self._emit("response.custom_tool_call_input.delta", item_id=item["id"], output_index=index,
                              delta=done["input"])
                   + self._emit("response.custom_tool_call_input.done", item_id=item["id"], output_index=index,
                                input=done["input"]))
        else:
            done = {**item, "status": "completed"}
            out = self._emit("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                             name=item["name"], arguments=item["arguments"])
        self._output.append(done)
        return out + self._emit("response.output_item.done", output_index=index, item=done)

    def _final(self) -> bytes:
        self._done = True
        out = self._close()
        status = "incomplete" if self._finish == "length" else "completed"
        return out + self._emit(f"response.{status}",
                                response=self._resource(status, self._output, self._usage or {}, self._model))

    def _failed(self, error: dict[str, Any]) -> bytes:
        out = b"" if self._started else self._begin(None)
        failed = self._resource("failed", self._output, self._usage, self._model)
        failed["error"] = {"code": failed_code(error), "message": str(error.get("message", "error"))}
        failed["completed_at"] = None
        return out + self._emit("response.failed", response=failed)

    def _chunk(self, chunk: dict[str, Any]) -> bytes:
        out = b"" if self._started else self._begin(chunk.get("model"))
        if chunk.get("usage"):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                if self._open is None or self._open["type"] != "message":
                    out += self._close()
                    self._open, self._text = self._message_item("", "in_progress"), ""
                    index = len(self._output)
                    out += self._emit("response.output_item.added", output_index=index, item=self._open)
                    out += self._emit("response.content_part.added", item_id=self._open["id"], output_index=index,
                                      content_index=0, part={"type": "output_text", "text": "", "annotations": [],
                                                             "logprobs": []})
                self._text += delta["content"]
                out += self._emit("response.output_text.delta", item_id=self._open["id"],
                                  output_index=len(self._output), content_index=0, delta=delta["content"],
                                  logprobs=[])
            for call in delta.get("tool_calls") or []:
                number = call.get("index", 0)
                function = call.get("function") or {}
                if number not in self._calls:
                    out += self._close()
                    call_id = call.get("id") or f"call_{number}"
                    name = function.get("name") or ""
                    if self._custom(name):
                        item = {"id": f"ctc_{call_id}", "type": "custom_tool_call", "status": "in_progress",
                                "call_id": call_id, "name": name, "input": ""}
                    else:
                        item = {"id": f"fc_{call_id}", "type": "function_call", "status": "in_progress",
                                "call_id": call_id, "name": name, "arguments": ""}
                    self._calls[number] = self._open = item
                    out += self._emit("response.output_item.added", output_index=len(self._output),
                                      item={**item})
                    if item["type"] == "custom_tool_call":
                        item["_arguments"] = ""
                item = self._calls[number]
                if function.get("arguments") and item is self._open and item["type"] == "custom_tool_call":
                    item["_arguments"] += function["arguments"]
                elif function.get("arguments") and item is self._open:
                    item["arguments"] += function["arguments"]
                    out += self._emit("response.function_call_arguments.delta", item_id=item["id"],
                                      output_index=len(self._output), delta=function["arguments"])
            if choice.get("finish_reason"):
                self._finish = choice["finish_reason"]
        return out

    def _begin(self, model: str | None) -> bytes:
        self._started = True
        self._model = model
        resource = self._resource("in_progress", [], None, model)
        resource["completed_at"] = None
        return (self._emit("response.created", response=resource)
                + self._emit("response.in_progress", response=resource))


def translator(inner: ChatTranslator, client: dict, ids: dict) -> ResponsesTranslator:
    return ResponsesTranslator(inner, client, ids)
