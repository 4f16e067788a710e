"""A loopback Google Gemini API (``generativelanguage.googleapis.com``, v1beta).

Serves, as Google documents them:

- ``POST /v1beta/models/{model}:generateContent``
- ``POST /v1beta/models/{model}:streamGenerateContent`` — with ``alt=sse``, SSE
  events ``data: <GenerateContentResponse>`` each ending in CRLF CRLF (as
  Google's frontends frame them); without it, one JSON array written piece by piece
- ``POST /v1beta/models/{model}:countTokens``, ``:embedContent``, ``:batchEmbedContents``
- ``GET /v1beta/models`` and ``GET /v1beta/models/{model}`` (any model name is served)

The key goes in ``x-goog-api-key`` or the ``key`` query parameter. Without
one Google answers 403 PERMISSION_DENIED; a key it does not know gets 400
INVALID_ARGUMENT with reason API_KEY_INVALID — here, any key starting with
``invalid``. Request fields are accepted in camelCase and snake_case, as
Google's JSON parser does.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import struct
from typing import Any

from aiohttp import web

from . import core

_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
           409: "ABORTED", 429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 500: "INTERNAL", 501: "NOT_IMPLEMENTED",
           503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
_FAULT_MESSAGES = {
    429: "Resource has been exhausted (e.g. check quota).",
    500: "An internal error has occurred. Please retry or report in "
         "https://developers.generativeai.google/guide/troubleshooting",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline expired before operation could complete.",
}
_FINISH = {"stop": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}  # Gemini ends function calls with STOP
_EMBED_DIMS = 768
_SSE_END = b"\r\n\r\n"


def error(status: int, message: str, headers: dict[str, str] | None = None,
          details: list[dict[str, Any]] | None = None) -> web.Response:
    """Google's error shape: ``{"error": {"code", "message", "status"}}``."""
    body: dict[str, Any] = {"code": status, "message": message, "status": _STATUS.get(status, "UNKNOWN")}
    if details:
        body["details"] = details
    return web.json_response({"error": body}, status=status, headers=headers)


def _get(obj: Any, camel: str, default: Any = None) -> Any:
    """A field by its camelCase or snake_case name."""
    if not isinstance(obj, dict):
        return default
    if camel in obj:
        return obj[camel]
    snake = "".join(f"_{c.lower()}" if c.isupper() else c for c in camel)
    return obj.get(snake, default)


class BadRequest(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# Request -> core.Prompt


def _lower_types(schema: Any) -> Any:
    """Google's Schema spells types in capitals (STRING); core.think reads JSON Schema's lowercase."""
    if isinstance(schema, dict):
        return {k: (v.lower() if k == "type" and isinstance(v, str) else _lower_types(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_lower_types(v) for v in schema]
    return schema


def _parts_text(content: Any) -> str:
    return "".join(p.get("text", "") for p in (_get(content, "parts") or []) if isinstance(p, dict))


def to_prompt(model: str, body: dict[str, Any]) -> tuple[core.Prompt, dict[str, Any]]:
    """The neutral prompt and the generation config; raises BadRequest the way Google would answer 400."""
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise BadRequest("* GenerateContentRequest.contents: contents is not specified")
    turns: list[tuple[str, str]] = []
    images = 0
    for i, content in enumerate(contents):
        if not isinstance(content, dict):
            raise BadRequest(f"Invalid value at 'contents[{i}]': expected an object")
        role = content.get("role") or "user"
        if role not in ("user", "model", "function"):
            raise BadRequest(f"Please use a valid role: user, model. (got {role!r})")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise BadRequest(f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.")
        text: list[str] = []
        for part in parts:
            if not isinstance(part, dict):
                raise BadRequest(f"Invalid value at 'contents[{i}].parts': expected an object")
            call, reply = _get(part, "functionCall"), _get(part, "functionResponse")
            if reply is not None:
                turns.append(("tool", json.dumps(_get(reply, "response"), ensure_ascii=False)))
            elif call is not None:
                text.append(json.dumps(call, ensure_ascii=False))
            elif _get(part, "inlineData") is not None or _get(part, "fileData") is not None:
                images += 1
            elif "text" in part and not part.get("thought"):
                text.append(str(part["text"]))
        if text:
            turns.append(("assistant" if role == "model" else "user", "".join(text)))

    tools: list[tuple[str, dict]] = []
    for tool in body.get("tools") or []:
        for decl in _get(tool, "functionDeclarations") or []:
            schema = _get(decl, "parametersJsonSchema") or _get(decl, "parameters") or {}
            tools.append((decl.get("name", ""), _lower_types(schema)))

    calling = _get(_get(body, "toolConfig"), "functionCallingConfig") or {}
    mode = str(calling.get("mode", "AUTO")).upper()
    allowed = _get(calling, "allowedFunctionNames") or []
    tool_choice = {"NONE": "none", "ANY": allowed[0] if len(allowed) == 1 else "required"}.get(mode, "auto")

    config = _get(body, "generationConfig") or {}
    stop = _get(config, "stopSequences") or []
    prompt = core.Prompt(
        model=model, turns=turns, system=_parts_text(_get(body, "systemInstruction")), tools=tools,
        tool_choice=tool_choice, json_mode=_get(config, "responseMimeType") == "application/json",
        max_tokens=_get(config, "maxOutputTokens"), stop=[stop] if isinstance(stop, str) else list(stop),
        images=images)
    return prompt, config


# ---------------------------------------------------------------------------------------------
# Reply -> GenerateContentResponse


def _call_part(model: str, name: str, args: dict, n: int, response_id: str) -> dict[str, Any]:
    call: dict[str, Any] = {"name": name, "args": args}
    if model.startswith("gemini-3"):
        call["id"] = f"{response_id[:8]}-{n}"  # only Gemini 3 models number their calls
    return {"functionCall": call}


def _candidate_text(reply: core.Reply, index: int) -> str:
    # Several candidates would otherwise be identical; clients should be able to tell them apart.
    return reply.text if index == 0 or not reply.text else f"{reply.text} (candidate {index + 1})"


def _thought(prompt: core.Prompt) -> str:
    last = prompt.turns[-1][1] if prompt.turns else ""
    return f"The user asked: {' '.join(last.split())[:80]}. I will answer briefly."


def _usage(prompt_tokens: int, output: int, thoughts: int) -> dict[str, Any]:
    usage: dict[str, Any] = {"promptTokenCount": prompt_tokens, "candidatesTokenCount": output,
                             "totalTokenCount": prompt_tokens + output + thoughts,
                             "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}]}
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


class _Answer:
    """One generation: the candidates' parts, usage and ids, ready for JSON or a stream."""

    def __init__(self, model: str, prompt: core.Prompt, config: dict[str, Any], response_id: str):
        self.model = model
        self.response_id = response_id
        self.reply = core.think(prompt)
        count = int(_get(config, "candidateCount") or 1)
        thinking = _get(config, "thinkingConfig") or {}
        self.thought = _thought(prompt) if _get(thinking, "includeThoughts") else ""
        self.texts = [_candidate_text(self.reply, i) for i in range(max(1, count))]
        self.calls = [_call_part(model, name, args, n, response_id)
                      for n, (name, args) in enumerate(self.reply.tool_calls)]
        self.finish = _FINISH.get(self.reply.finish, "STOP")
        output = sum(core.count_tokens(t) for t in self.texts) if not self.calls else self.reply.output_tokens
        self.usage = _usage(self.reply.input_tokens, output, core.count_tokens(self.thought))

    def envelope(self, candidates: list[dict[str, Any]], usage: dict[str, Any]) -> dict[str, Any]:
        return {"candidates": candidates, "usageMetadata": usage, "modelVersion": self.model,
                "responseId": self.response_id}

    def whole(self) -> dict[str, Any]:
        candidates = []
        for i, text in enumerate(self.texts):
            parts: list[dict[str, Any]] = [{"text": self.thought, "thought": True}] if self.thought else []
            parts += self.calls if self.calls else [{"text": text}]
            candidates.append({"content": {"role": "model", "parts": parts}, "finishReason": self.finish,
                               "index": i})
        return self.envelope(candidates, self.usage)

    def pieces(self) -> list[dict[str, Any]]:
        """Stream events: each carries only new parts; the last has finishReason and full usage."""
        per_candidate = [([{"text": self.thought, "thought": True}] if self.thought else [])
                         + (self.calls if self.calls else [{"text": w} for w in core.Reply(text=t).words()])
                         for t in self.texts]
        steps = max(len(p) for p in per_candidate)
        events = []
        sent = ["" for _ in per_candidate]  # text so far per candidate, for the running usage count
        for step in range(steps):
            last = step == steps - 1
            candidates = []
            for i, parts in enumerate(per_candidate):
                if step < len(parts) or last:
                    if step < len(parts) and not parts[step].get("thought"):
                        sent[i] += parts[step].get("text", "")
                    cand: dict[str, Any] = {"content": {"role": "model",
                                                        "parts": [parts[step]] if step < len(parts) else
                                                        [{"text": ""}]}, "index": i}
                    if last:
                        cand["finishReason"] = self.finish
                    candidates.append(cand)
            # Google repeats usageMetadata on every event, counting from the start of the answer.
            running = sum(core.count_tokens(t) for t in sent)
            usage = self.usage if last else _usage(self.usage["promptTokenCount"], running, 0)
            events.append(self.envelope(candidates, usage))
        return events


# ---------------------------------------------------------------------------------------------
# Embeddings


def embed(text: str, dims: int = _EMBED_DIMS) -> list[float]:
    """A unit vector derived from the text alone: equal texts embed equally."""
    raw = hashlib.shake_256(text.encode()).digest(2 * dims)
    values = [v / 32767.5 - 1.0 for v in struct.unpack(f"<{dims}H", raw)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [round(v / norm, 6) for v in values]


def _embed_one(req: Any, where: str) -> dict[str, Any]:
    content = _get(req, "content")
    if not isinstance(content, dict) or not isinstance(content.get("parts"), list) or not content["parts"]:
        raise BadRequest(f"* {where}.content: content is not specified")
    dims = _get(req, "outputDimensionality") or _EMBED_DIMS
    if not isinstance(dims, int) or not 1 <= dims <= 3072:
        raise BadRequest(f"* {where}.output_dimensionality: must be between 1 and 3072")
    return {"values": embed(_parts_text(content), dims)}


# ---------------------------------------------------------------------------------------------
# Models


def _model_info(name: str) -> dict[str, Any]:
    embedding = "embedding" in name
    return {"name": f"models/{name}", "version": "001", "displayName": name,
            "description": f"Simulated {name}",
            "inputTokenLimit": 2048 if embedding else 1048576, "outputTokenLimit": 1 if embedding else 8192,
            "supportedGenerationMethods": ["embedContent", "batchEmbedContents"] if embedding else
            ["generateContent", "streamGenerateContent", "countTokens"]}


_LISTED = ("gemini-2.0-flash", "gemini-2.5-flash", "gemini-2.5-pro", "gemini-embedding-001", "text-embedding-004")


# ---------------------------------------------------------------------------------------------
# Routes


def routes(sim: core.Simulator) -> list[web.RouteDef]:
    ids = itertools.count(1)

    def auth(request: web.Request) -> web.Response | None:
        key = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not key:
            return error(403, "Method doesn't allow unregistered callers (callers without established identity). "
                              "Please use API Key or other form of API consumer identity to call this API.")
        if key.startswith("invalid"):
            return error(400, "API key not valid. Please pass a valid API key.", details=[{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}])
        return None

    async def admit(request: web.Request) -> tuple[core.Faults | None, web.Response | None]:
        """Record, authenticate and apply the before-answer faults; a response means: answer that."""
        await sim.record(request)
        denied = auth(request)
        if denied is not None:
            return None, denied
        faults = await sim.faults_for(request)
        if faults is not None and faults.status is not None:
            headers = {"retry-after": f"{faults.retry_after:g}"} if faults.retry_after is not None else None
            message = _FAULT_MESSAGES.get(faults.status, f"Simulated error {faults.status}.")
            return faults, error(faults.status, message, headers)
        return faults, None

    async def body_of(request: web.Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.read() or b"{}")
        except ValueError:
            raise BadRequest("Invalid JSON payload received.")
        if not isinstance(body, dict):
            raise BadRequest("Invalid JSON payload received. Expected an object.")
        return body

    async def post(request: web.Request) -> web.StreamResponse:
        model, method = request.match_info["model"], request.match_info["method"]
        faults, early = await admit(request)
        if early is not None:
            return early
        try:
            body = await body_of(request)
            if method == "generateContent":
                prompt, config = to_prompt(model, body)
                return web.json_response(_Answer(model, prompt, config, _response_id(next(ids))).whole())
            if method == "streamGenerateContent":
                prompt, config = to_prompt(model, body)
                answer = _Answer(model, prompt, config, _response_id(next(ids)))
                return await _stream(request, answer, faults, sse=request.query.get("alt") == "sse")
            if method == "countTokens":
                inner = _get(body, "generateContentRequest")
                prompt, _ = to_prompt(model, inner if isinstance(inner, dict) else body)
                total = core.think(prompt).input_tokens
                return web.json_response({"totalTokens": total,
                                          "promptTokensDetails": [{"modality": "TEXT", "tokenCount": total}]})
            if method == "embedContent":
                return web.json_response({"embedding": _embed_one(body, "EmbedContentRequest")})
            if method == "batchEmbedContents":
                requests = body.get("requests")
                if not isinstance(requests, list) or not requests:
                    raise BadRequest("* BatchEmbedContentsRequest.requests: requests is not specified")
                out = []
                for i, req in enumerate(requests):
                    if _get(req, "model") not in (None, f"models/{model}"):
                        raise BadRequest(f"Model names should match: requests[{i}].model is "
                                         f"{_get(req, 'model')!r}, the batch is for 'models/{model}'.")
                    out.append(_embed_one(req, f"BatchEmbedContentsRequest.requests[{i}]"))
                return web.json_response({"embeddings": out})
        except BadRequest as exc:
            return error(400, str(exc))
        return error(404, f"Method '{method}' is not found for models/{model}.")

    async def list_models(request: web.Request) -> web.Response:
        _, early = await admit(request)
        return early or web.json_response({"models": [_model_info(m) for m in _LISTED]})

    async def get_model(request: web.Request) -> web.Response:
        _, early = await admit(request)
        return early or web.json_response(_model_info(request.match_info["model"]))

    return [
        web.get("/v1beta/models", list_models),
        web.get("/v1beta/models/{model}", get_model),
        web.post("/v1beta/models/{model}:{method}", post),
    ]


def _response_id(n: int) -> str:
    return "sim" + hashlib.sha256(f"gemini-{n}".encode()).hexdigest()[:20]


async def _stream(request: web.Request, answer: _Answer, faults: core.Faults | None,
                  *, sse: bool) -> web.StreamResponse:
    headers = core.sse_headers() if sse else {"Content-Type": "application/json; charset=UTF-8"}
    response = web.StreamResponse(status=200, headers=headers)
    await response.prepare(request)
    writer = core.StreamWriter(request, response, faults)
    await writer.first_content_delay()
    events = answer.pieces()
    for n, event in enumerate(events):
        data = json.dumps(event, ensure_ascii=False).encode()
        if sse:
            payload = b"data: " + data + _SSE_END
        else:  # a JSON array, written element by element as Google's default stream is
            payload = (b"[" if n == 0 else b",\r\n") + data + (b"]" if n == len(events) - 1 else b"")
        await writer.send(payload)
    await response.write_eof()
    return response
