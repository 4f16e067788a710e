"""The OpenAI API (and Azure OpenAI's deployment paths), as documented.

Routes: ``POST /v1/chat/completions``, ``POST /v1/embeddings``, ``GET
/v1/models`` and ``GET /v1/models/{id}`` with ``Authorization: Bearer``; and
``POST /openai/deployments/{deployment}/chat/completions`` and ``.../embeddings``
with an ``api-key`` header and an ``api-version`` query, as Azure serves them.
Any non-empty key is accepted: the simulator checks that a key is sent in the
right place, not which one.

Requests are validated as the API reference and its OpenAPI document say, with the
API's own error bodies: ``messages`` non-empty with known roles; a ``tool`` message
answers a ``tool_calls`` entry of the assistant message before it, and every tool call
is answered; numeric bounds (``n`` 1..128, ``temperature`` 0..2, ``top_p`` 0..1,
penalties -2..2, ``max_tokens`` / ``max_completion_tokens`` >= 1, ``top_logprobs``
0..20, at most 4 ``stop`` strings); reasoning models (o-series, gpt-5) refuse ``max_tokens``
and ``temperature`` / ``top_p`` other than 1; bodies up to 32 MB; no empty ``content`` array. For
OpenAI's own models also (``check_openai_model``, ``check_context``): no top-level field the API
does not know ("Unrecognized request argument supplied"), ``reasoning_effort`` only on reasoning
models, ``web_search_options`` only on search models, ``max_tokens`` within the model's output
limit, the prompt plus ``max_tokens`` within its context window (``context_length_exceeded``). A
self-hosted simulator answers a prompt plus ``max_tokens`` over its ``--max-model-len`` with
vLLM's flat error body. The simulator named ``openai``
serves OpenAI's model ids (an unknown or retired id answers 404 ``model_not_found``);
one under another name is a self-hosted server (vLLM and the like) or Azure, whose
model names are their operators' choice, so it serves any.

Prompt caching as OpenAI documents it (``prompt_cache_read``): OpenAI and Azure answers report
``usage.prompt_tokens_details.cached_tokens`` for a repeated prefix of 1,024 tokens or more, in steps
of 128, per key, model, tools and ``prompt_cache_key``, for 5 idle minutes; a self-hosted server
reports 0.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import random
import re
import secrets
import string
import struct
import time
from typing import Any

from aiohttp import web

from .core import (Faults, Prompt, PromptCache, Reply, Simulator, StreamWriter, TooLarge, count_tokens, positions_at,
                   prefix_digests, sse_headers, think)

_MODELS = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "o3", "gpt-5-mini",
           "text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002")
# OpenAI's model ids (the models page): these families, each with its dated snapshots.
_OPENAI_FAMILIES = ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "o3", "o3-pro", "gpt-5", "gpt-5-mini",
                    "gpt-5-nano", "gpt-5.1", "gpt-5.2", "text-embedding-3-small", "text-embedding-3-large",
                    "text-embedding-ada-002")
_OPENAI_MODEL = re.compile(r"^(%s)(-\d{4}-\d{2}-\d{2})?$" % "|".join(re.escape(f) for f in _OPENAI_FAMILIES))
# Shut down (the deprecations page): requests fail as for an unknown model. GPT-3.5 Turbo, GPT-4,
# GPT-4 Turbo, gpt-4o-2024-05-13, GPT-4.1 nano, o1, o1-pro, o3-mini and o4-mini shut down on 2026-10-23
# (third parties' reading of that page, 2026-10-15 and 2026-11-04; the vendor rows were not in the
# stored copies). Next: gpt-5(-mini/-nano/-pro), o3, o3-pro on 2026-12-11; gpt-4o(-mini), gpt-4.1(-mini)
# snapshots on 2027-01-14.
RETIRED = frozenset({"gpt-4-32k", "gpt-4-0314", "gpt-4-32k-0314", "gpt-3.5-turbo-0301", "gpt-3.5-turbo-0613",
                     "gpt-4.5-preview", "gpt-4.5-preview-2025-02-27", "o1-preview", "o1-mini", "text-davinci-003",
                     "gpt-3.5-turbo", "gpt-3.5-turbo-0125", "gpt-3.5-turbo-1106", "gpt-4", "gpt-4-0613",
                     "gpt-4-1106-preview", "gpt-4-0125-preview", "gpt-4-turbo", "gpt-4-turbo-2024-04-09",
                     "gpt-4o-2024-05-13", "chatgpt-4o-latest", "gpt-4.1-nano", "gpt-4.1-nano-2025-04-14", "o1",
                     "o1-2024-12-17", "o1-pro", "o1-pro-2025-03-19", "o3-mini", "o3-mini-2025-01-31", "o4-mini",
                     "o4-mini-2025-04-16"})
MAX_BODY = 32 * 1024 * 1024
# Reasoning models take max_completion_tokens only, and no sampling settings but the defaults.
_REASONING_MODEL = re.compile(r"^(o\d|gpt-5(?!-chat))")


def serves(sim_name: str, model: str) -> bool:
    """Whether the simulator named ``sim_name`` answers for ``model`` (see the module docstring)."""
    if sim_name != "openai":
        return True
    return model not in RETIRED and bool(_OPENAI_MODEL.match(model))
_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
_REASONING = ("o1", "o3", "o4", "gpt-5", "deepseek-r")
_FINGERPRINT = "fp_" + hashlib.sha256(b"llm-gateway-simulator").hexdigest()[:10]
_ALPHABET = string.ascii_letters + string.digits
_CREATED = 1_700_000_000  # "created" of every listed model


class _Fail(Exception):
    """An error answer, raised from validation deep inside a handler."""

    def __init__(self, status: int, message: str, type_: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type_, param, code


def routes(sim: Simulator) -> list[web.RouteDef]:
    sim.max_body = MAX_BODY
    api = _API(sim)
    return [
        web.post("/v1/chat/completions", api.chat),
        web.post("/v1/embeddings", api.embeddings),
        web.get("/v1/models", api.list_models),
        web.get("/v1/models/{model}", api.get_model),
        web.post("/openai/deployments/{deployment}/chat/completions", api.chat),
        web.post("/openai/deployments/{deployment}/embeddings", api.embeddings),
    ]


class _API:
    def __init__(self, sim: Simulator):
        self.sim = sim
        self.seen_models: set[str] = set()

    # -- handlers ---------------------------------------------------------

    async def _read(self, request: web.Request) -> bytes:
        try:
            return await self.sim.record(request)
        except TooLarge:
            raise _Fail(413, f"Request too large: the body may be at most {MAX_BODY} bytes.",
                        code="request_too_large") from None

    async def chat(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        try:
            raw = await self._read(request)
            _authorize(request)
            body = _json_body(raw)
            model = _model(request, body)
            n = validate_chat(body, model)
            if not _is_azure(request) and not serves(self.sim.name, model):
                raise _not_found(model)
            if not _is_azure(request) and self.sim.name == "openai":
                check_openai_model(body, model)
            if _is_azure(request):
                check_azure_fields(body, request.query.get("api-version", ""))
            prompt = _prompt(model, body)
            if not _is_azure(request) and self.sim.name == "openai":
                check_context(prompt, body, model)
        except _Fail as fail:
            return _error(request, fail, started)
        if not _is_azure(request) and self.sim.name != "openai":
            over = vllm_context_error(prompt, body)
            if over is not None:
                return _json(request, over, started, 400)
        self.seen_models.add(model)
        faults = await self.sim.faults_for(request)
        if faults is not None and faults.status is not None:
            return _fault(request, faults, started)
        if faults is not None and faults.refusal is not None:
            return _refusal(request, self.sim.name, faults.refusal, model, started)
        bad = faults is not None and (faults.bad_answers is True or model in (faults.bad_answers or ()))
        replies = [think(prompt, bad=bad) for _ in range(n)]
        ident = "chatcmpl-" + _random_id(29)
        created = int(time.time())
        reasoning = _reasoning_tokens(model, replies[0], prompt.max_tokens)
        # A self-hosted server (vLLM) reports no cache reads; OpenAI and Azure OpenAI do.
        cached = prompt_cache_read(self.sim.prompt_cache, request, body, model, prompt) \
            if _is_azure(request) or self.sim.name == "openai" else 0
        options = body.get("stream_options")
        if body.get("stream") is True:
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            vllm = not _is_azure(request) and self.sim.name != "openai"
            return await _stream(request, faults, started, ident, created, model, replies, reasoning, include_usage,
                                 VLLM_STREAM_ERROR if vllm else None, cached)
        choices = [{"index": i, "message": _message(r), "logprobs": None, "finish_reason": r.finish}
                   for i, r in enumerate(replies)]
        payload = {"id": ident, "object": "chat.completion", "created": created, "model": model,
                   "choices": choices, "usage": _usage(replies, reasoning, cached), "service_tier": "default",
                   "system_fingerprint": _FINGERPRINT}
        return _json(request, payload, started)

    async def embeddings(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        try:
            raw = await self._read(request)
            _authorize(request)
            body = _json_body(raw)
            model = _model(request, body)
            texts = _embedding_inputs(body.get("input"))
            dims = _dimensions(model, body.get("dimensions"))
            encoding = body.get("encoding_format") or "float"
            if encoding not in ("float", "base64"):
                raise _Fail(400, f"Invalid value: '{encoding}'. Supported values are: 'float' and 'base64'.",
                            param="encoding_format", code="invalid_value")
            if not _is_azure(request) and not serves(self.sim.name, model):
                raise _not_found(model)
            counts = _embedding_limits(body.get("input"), azure=_is_azure(request))
        except _Fail as fail:
            return _error(request, fail, started)
        self.seen_models.add(model)
        faults = await self.sim.faults_for(request)
        if faults is not None and faults.status is not None:
            return _fault(request, faults, started)
        data = []
        for i, text in enumerate(texts):
            vector = embed(text, dims)
            value: Any = vector if encoding == "float" else \
                base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": value})
        tokens = sum(counts)   # billed as the API counts them (a tokenizer, not characters / 4: tryout 10 L8)
        payload = {"object": "list", "data": data, "model": model,
                   "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
        return _json(request, payload, started)

    async def list_models(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        await self.sim.record(request)
        try:
            _authorize(request)
        except _Fail as fail:
            return _error(request, fail, started)
        ids = list(_MODELS) + sorted(self.seen_models - set(_MODELS))
        return _json(request, {"object": "list", "data": [_model_object(m) for m in ids]}, started)

    async def get_model(self, request: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        await self.sim.record(request)
        model = request.match_info["model"]
        try:
            _authorize(request)
            if model not in _MODELS and model not in self.seen_models or not serves(self.sim.name, model):
                raise _Fail(404, f"The model '{model}' does not exist", param="model", code="model_not_found")
        except _Fail as fail:
            return _error(request, fail, started)
        return _json(request, _model_object(model), started)


# -- requests ---------------------------------------------------------------

def _is_azure(request: web.Request) -> bool:
    return "deployment" in request.match_info


def _authorize(request: web.Request) -> None:
    if _is_azure(request):
        # Azure answers a missing api-version with a bare 404 "Resource not found".
        if not request.query.get("api-version"):
            raise _Fail(404, "Resource not found", code="404")
        if not request.headers.get("api-key") and not _bearer(request):
            raise _Fail(401, "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
                        "provide a valid key for an active subscription and use a correct regional API endpoint "
                        "for your resource.", code="401")
        return
    if not _bearer(request):
        raise _Fail(401, "You didn't provide an API key. You need to provide your API key in an Authorization "
                    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).", code="invalid_api_key")


def _bearer(request: web.Request) -> str:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _json_body(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise _Fail(400, "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
                    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent "
                    "was not valid JSON.)")
    return body


def _model(request: web.Request, body: dict[str, Any]) -> str:
    """The model to answer as: the body's, or on Azure (which ignores it) the deployment's name."""
    model = body.get("model")
    if isinstance(model, str) and model:
        return model
    if _is_azure(request):
        return request.match_info["deployment"]
    raise _Fail(400, "you must provide a model parameter", param="model", code="missing_required_parameter")


def _not_found(model: str) -> _Fail:
    return _Fail(404, f"The model `{model}` does not exist or you do not have access to it.",
                 code="model_not_found")


_BOUNDS = (("temperature", 0, 2), ("top_p", 0, 1), ("presence_penalty", -2, 2), ("frequency_penalty", -2, 2),
           ("top_logprobs", 0, 20), ("max_tokens", 1, None), ("max_completion_tokens", 1, None))


# Nullable string fields and their longest value: user (the gateway's own bound), prompt_cache_key (64:
# OpenAI's 400 as clients report it), safety_identifier (128: its reference).
_STRINGS = (("user", 256), ("prompt_cache_key", 64), ("safety_identifier", 128))


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    return {dict: "an object", list: "an array", int: "an integer", float: "a decimal"}.get(type(value), "a value")


def validate_chat(body: dict[str, Any], model: str) -> int:
    """Check a chat request as the API does (raises ``_Fail``); returns ``n``."""
    messages = body.get("messages")
    if messages is None:
        raise _Fail(400, "Missing required parameter: 'messages'.", param="messages",
                    code="missing_required_parameter")
    n = 1 if body.get("n") is None else body["n"]
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 128:
        raise _Fail(400, f"Invalid 'n': expected an integer between 1 and 128, got {n!r}.",
                    param="n", code="invalid_value")
    for name, low, high in _BOUNDS:
        value = body.get(name)
        if value is None:
            continue
        integer = name in ("top_logprobs", "max_tokens", "max_completion_tokens")
        kind = "integer" if integer else "decimal"
        if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
            raise _Fail(400, f"Invalid type for '{name}': expected {'an integer' if integer else 'a decimal'}, but "
                        f"got {type(value).__name__} instead.", param=name, code="invalid_type")
        if value < low:
            raise _Fail(400, f"Invalid '{name}': {kind} below minimum value. Expected a value >= {low}, but got "
                        f"{value} instead.", param=name, code=f"{kind}_below_min_value")
        if high is not None and value > high:
            raise _Fail(400, f"Invalid '{name}': {kind} above maximum value. Expected a value <= {high}, but got "
                        f"{value} instead.", param=name, code=f"{kind}_above_max_value")
    if _REASONING_MODEL.match(model):
        if body.get("max_tokens") is not None:
            raise _Fail(400, "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                        "'max_completion_tokens' instead.", param="max_tokens", code="unsupported_parameter")
        for name in ("temperature", "top_p"):
            if body.get(name) not in (None, 1):
                raise _Fail(400, f"Unsupported value: '{name}' does not support {body[name]} with this model. Only the "
                            "default (1) value is supported.", param=name, code="unsupported_value")
    bias = body.get("logit_bias")
    for token in bias if isinstance(bias, dict) else ():
        # Keys are token ids; OpenAI's 400 for a word, as clients report it (vLLM refuses them too).
        if not (isinstance(token, str) and token.isascii() and token.isdigit()):
            raise _Fail(400, f"Invalid key in 'logit_bias': {token}. You should only be submitting non-negative "
                        "integers.", param="logit_bias")
    for name, longest in _STRINGS:
        value = body.get(name)
        if value is not None and not isinstance(value, str):
            raise _Fail(400, f"Invalid type for '{name}': expected a string, but got {_json_kind(value)} instead.",
                        param=name, code="invalid_type")
        if isinstance(value, str) and len(value) > longest:
            raise _Fail(400, f"Invalid '{name}': string too long. Expected a string with maximum length {longest}, "
                        f"but got a string with length {len(value)} instead.", param=name,
                        code="string_above_max_length")
    stop = body.get("stop")
    if isinstance(stop, list) and len(stop) > 4:
        raise _Fail(400, f"Invalid 'stop': array too long. Expected an array with maximum length 4, but got an array "
                    f"with length {len(stop)} instead.", param="stop", code="array_above_max_length")
    _check_empty_arrays(body)
    _check_names(body)
    if isinstance(messages, list):
        _check_tool_turns(messages)
        _check_image_roles(messages)
        _check_image_data(messages)
    # Fields OpenAI takes only beside another (its 400s as users report them).
    if body.get("stream_options") is not None and body.get("stream") is not True:
        raise _Fail(400, "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                    param="stream_options")
    if not body.get("tools"):
        for name in ("parallel_tool_calls", "tool_choice"):
            if body.get(name) is not None:
                raise _Fail(400, f"Invalid value for '{name}': '{name}' is only allowed when 'tools' are specified.",
                            param=name, code="invalid_value")
    if (isinstance(body.get("response_format"), dict) and body["response_format"].get("type") == "json_object"
            and isinstance(messages, list) and "json" not in json.dumps(_texts(messages)).lower()):
        raise _Fail(400, "'messages' must contain the word 'json' in some form, to use 'response_format' of type "
                    "'json_object'.", param="messages")
    return n


def _empty_array(param: str) -> _Fail:
    return _Fail(400, f"Invalid '{param}': empty array. Expected an array with minimum length 1, but got an empty "
                 "array instead.", param=param, code="empty_array")


def _check_empty_arrays(body: dict[str, Any]) -> None:
    """``tools: []`` and an assistant's ``tool_calls: []`` are 400 ``empty_array`` (OpenAI's words as
    clients report them: continuedev/continue#3403 for tools on gpt-4o-mini, openai/openai-node#1341 for
    tool_calls; vLLM refuses ``tools: []`` too since vllm-project/vllm#39780, "as OpenAI does")."""
    if body.get("tools") == []:
        raise _empty_array("tools")
    messages = body.get("messages")
    for i, message in enumerate(messages if isinstance(messages, list) else []):
        if isinstance(message, dict) and message.get("role") == "assistant" and message.get("tool_calls") == []:
            raise _empty_array(f"messages[{i}].tool_calls")


_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")


def _check_names(body: dict[str, Any]) -> None:
    """Function names and a json_schema's name: letters, digits, ``_`` and ``-``, at most 64 (the
    schema's words for both). OpenAI's 400 as clients report it for tools ("Invalid
    'tools[21].function.name': string does not match pattern. Expected a string that matches the
    pattern '^[a-zA-Z0-9_-]+$'.", code invalid_value); the same words for the schema's name."""
    named: list[tuple[str, Any]] = []
    for i, tool in enumerate(body.get("tools") if isinstance(body.get("tools"), list) else []):
        if isinstance(tool, dict) and isinstance(tool.get("function"), dict):
            named.append((f"tools[{i}].function.name", tool["function"].get("name")))
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema" and isinstance(fmt.get("json_schema"), dict):
        named.append(("response_format.json_schema.name", fmt["json_schema"].get("name")))
    for param, name in named:
        if isinstance(name, str) and len(name) > 64:
            raise _Fail(400, f"Invalid '{param}': string too long. Expected a string with maximum length 64, but got "
                        f"a string with length {len(name)} instead.", param=param, code="string_above_max_length")
        if isinstance(name, str) and not _NAME.match(name):
            raise _Fail(400, f"Invalid '{param}': string does not match pattern. Expected a string that matches the "
                        "pattern '^[a-zA-Z0-9_-]+$'.", param=param, code="invalid_value")


def _texts(messages: list[Any]) -> list[str]:
    """Every text of the conversation: string contents and text parts."""
    out = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            out += [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return out


def _check_image_roles(messages: list[Any]) -> None:
    """Only user messages take images (the message schemas; OpenAI's 400 in its words as clients
    report it: openai/openai-node#1030 for assistant, OpenHands/OpenHands#7700 for tool)."""
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if role == "user" or not isinstance(content, list):
            continue
        if any(isinstance(p, dict) and p.get("type") == "image_url" for p in content):
            raise _Fail(400, f"Invalid 'messages[{i}]'. Image URLs are only allowed for messages with role 'user', but "
                        f"this message with role '{role}' contains an image URL.", param=f"messages[{i}]",
                        code="invalid_value")


def _check_image_data(messages: list[Any]) -> None:
    """A data URL image must decode as base64 ("Invalid base64 image_url.", as users report OpenAI's 400)."""
    for i, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        for j, part in enumerate(content if isinstance(content, list) else []):
            url = ((part.get("image_url") or {}) if isinstance(part, dict) else {}).get("url")
            if not isinstance(url, str) or not url.startswith("data:") or ";base64," not in url:
                continue
            data = url.split(";base64,", 1)[1]
            try:
                base64.b64decode(data, validate=True)
            except ValueError:
                raise _Fail(400, "Invalid base64 image_url.", param=f"messages[{i}].content[{j}].image_url.url",
                            code="invalid_value") from None


# createChatCompletion's top-level fields (OpenAI's OpenAPI document); any other is refused.
CHAT_FIELDS = frozenset({
    "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs", "max_completion_tokens",
    "max_tokens", "messages", "metadata", "modalities", "model", "n", "parallel_tool_calls", "prediction",
    "presence_penalty", "prompt_cache_key", "prompt_cache_retention", "reasoning_effort", "response_format",
    "safety_identifier", "seed", "service_tier", "stop", "store", "stream", "stream_options", "temperature",
    "tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity", "web_search_options"})
# (context window, output limit) in tokens by family, from each model's page.
LIMITS = {"gpt-4o": (128000, 16384), "gpt-4o-mini": (128000, 16384), "gpt-4.1": (1047576, 32768),
          "gpt-4.1-mini": (1047576, 32768), "o3": (200000, 100000), "o3-pro": (200000, 100000),
          "gpt-5": (400000, 128000), "gpt-5-mini": (400000, 128000), "gpt-5-nano": (400000, 128000),
          "gpt-5.1": (400000, 128000), "gpt-5.2": (400000, 128000)}
# A self-hosted server's --max-model-len: the simulated vLLM serves Llama 3.1 (131,072 tokens).
MAX_MODEL_LEN = 131072
_SEARCH_MODEL = re.compile(r"^gpt-(4o|4o-mini|5)-search")
_VERBOSITY_MODEL = re.compile(r"^gpt-5")


def _limits(model: str) -> tuple[int, int] | None:
    m = _OPENAI_MODEL.match(model)
    return LIMITS.get(m.group(1)) if m else None


def check_openai_model(body: dict[str, Any], model: str) -> None:
    """What OpenAI refuses for this model beyond the schema's bounds (raises ``_Fail``): a field it does
    not know, ``reasoning_effort`` on a model that does not reason (the same answer as for an unknown
    field), ``web_search_options`` on a model that does not search, a max_tokens over its output limit."""
    for name in sorted(body):
        if name not in CHAT_FIELDS or (name == "reasoning_effort" and not _REASONING_MODEL.match(model)):
            raise _Fail(400, f"Unrecognized request argument supplied: {name}")
    if body.get("verbosity") is not None and not _VERBOSITY_MODEL.match(model):
        # The GPT-5 family's setting; gpt-4o answers "Unsupported value: 'verbosity' does not support 'low'
        # with this model" (as users report it), gpt-4.1 "Unrecognized request argument supplied: verbosity".
        raise _Fail(400, f"Unsupported value: 'verbosity' does not support '{body['verbosity']}' with this model.",
                    param="verbosity", code="unsupported_value")
    if body.get("web_search_options") is not None and not _SEARCH_MODEL.match(model):
        raise _Fail(400, "Web search options not supported with this model.", param="web_search_options")
    limits = _limits(model)
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        if limits is not None and isinstance(value, int) and value > limits[1]:
            raise _Fail(400, f"{name} is too large: {value}. This model supports at most {limits[1]} completion "
                        f"tokens, whereas you provided {value}.", param=name)


# Azure OpenAI's top-level chat fields by GA API version (its published schema).
AZURE_CHAT_FIELDS = {"2024-10-21": frozenset({
    "data_sources", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
    "max_completion_tokens", "max_tokens", "messages", "model", "n", "parallel_tool_calls", "presence_penalty",
    "response_format", "seed", "stop", "stream", "stream_options", "temperature", "tool_choice", "tools",
    "top_logprobs", "top_p", "user"})}


def check_azure_fields(body: dict[str, Any], api_version: str) -> None:
    """Azure refuses a field its API version does not define (as for stream_options before 2024-09)."""
    known = AZURE_CHAT_FIELDS.get(api_version)
    for name in sorted(body):
        if known is not None and name not in known:
            raise _Fail(400, f"Unrecognized request argument supplied: {name}. Please contact us through an Azure "
                        "support request for further questions.", param="")


def _prompt_tokens(prompt: Prompt) -> int:
    return count_tokens(prompt.system) + sum(count_tokens(t) for _, t in prompt.turns) + 85 * prompt.images


def _window_tokens(prompt: Prompt, window: int) -> int:
    """The prompt's tokens as the API holds them to a window: characters / 4 far from it, and counted with
    a real tokenizer (o200k, GPT-4o's) once that estimate comes within 4x of it (CJK text runs 3x over its
    characters / 4). The API counts; a
    characters / 4 check let a Chinese prompt of 132,000 tokens (49,749 by characters) through to a
    128K model, which the real API refuses."""
    used = _prompt_tokens(prompt)
    if used * 4 < window:
        return used
    from .. import tokens
    return (tokens.count(prompt.system) + sum(tokens.count(t) for _, t in prompt.turns) + 85 * prompt.images)


def check_context(prompt: Prompt, body: dict[str, Any], model: str) -> None:
    """OpenAI's 400 ``context_length_exceeded`` for a prompt (plus max_tokens) over the model's window."""
    limits = _limits(model)
    if limits is None:
        return
    window, out = limits[0], _max_tokens(body)
    used = _window_tokens(prompt, window)
    if out is not None and used + out > window:
        raise _Fail(400, f"This model's maximum context length is {window} tokens. However, you requested "
                    f"{used + out} tokens ({used} in the messages, {out} in the completion). Please reduce the "
                    "length of the messages or completion.", param="messages", code="context_length_exceeded")
    if used > window:
        raise _Fail(400, f"This model's maximum context length is {window} tokens. However, your messages "
                    f"resulted in {used} tokens. Please reduce the length of the messages.", param="messages",
                    code="context_length_exceeded")


def vllm_context_error(prompt: Prompt, body: dict[str, Any]) -> dict[str, Any] | None:
    """vLLM's flat error body for a prompt plus max_tokens over ``--max-model-len``, or None."""
    used, out = _window_tokens(prompt, MAX_MODEL_LEN), _max_tokens(body) or 0
    if used + out <= MAX_MODEL_LEN:
        return None
    return {"object": "error", "message": f"This model's maximum context length is {MAX_MODEL_LEN} tokens. However, "
            f"you requested {used + out} tokens ({used} in the messages, {out} in the completion). Please reduce "
            "the length of the messages or completion.", "type": "BadRequestError", "param": None, "code": 400}


def _check_tool_turns(messages: list[Any]) -> None:
    """A tool message answers a call of the assistant message before it; every call gets its answer."""
    pending: dict[str, int] = {}   # tool_call_id -> index of the assistant message that made it
    for i, m in enumerate(messages):
        role = m.get("role") if isinstance(m, dict) else None
        if role == "tool":
            if m.get("tool_call_id") not in pending:
                raise _Fail(400, "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                            "message with 'tool_calls'.", param=f"messages.[{i}].role")
            del pending[m["tool_call_id"]]
            continue
        if pending:
            first = min(pending.values())
            raise _Fail(400, "An assistant message with 'tool_calls' must be followed by tool messages responding to "
                        "each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                        f"{', '.join(pending)}", param=f"messages.[{first}].role")
        if role == "assistant":
            for call in m.get("tool_calls") or []:
                if isinstance(call, dict) and isinstance(call.get("id"), str):
                    pending[call["id"]] = i
    # Unanswered calls at the end are refused too: the API wants every answer before the next turn.
    if pending:
        first = min(pending.values())
        raise _Fail(400, "An assistant message with 'tool_calls' must be followed by tool messages responding to "
                    "each 'tool_call_id'. The following tool_call_ids did not have response messages: "
                    f"{', '.join(pending)}", param=f"messages.[{first}].role")


def _prompt(model: str, body: dict[str, Any]) -> Prompt:
    messages = body["messages"]
    if not isinstance(messages, list) or not messages:
        raise _Fail(400, "Invalid 'messages': expected a non-empty array of messages.", param="messages",
                    code="empty_array" if messages == [] else "invalid_type")
    system: list[str] = []
    turns: list[tuple[str, str]] = []
    images = 0
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            role = message.get("role") if isinstance(message, dict) else None
            raise _Fail(400, f"Invalid value: '{role}'. Supported values are: 'system', 'assistant', 'user', "
                        "'function', 'tool', and 'developer'.", param=f"messages[{i}].role", code="invalid_value")
        role = message["role"]
        text, pictures = _content(message.get("content"), f"messages[{i}].content")
        images += pictures
        if role in ("system", "developer"):
            system.append(text)
        elif role in ("tool", "function"):
            turns.append(("tool", text))
        elif role == "assistant":
            calls = message.get("tool_calls") or []
            if not text and calls:
                text = json.dumps([c.get("function", {}) for c in calls if isinstance(c, dict)])
            turns.append(("assistant", text))
        else:
            turns.append(("user", text))
    return Prompt(model=model, turns=turns, system="\n".join(s for s in system if s), tools=_tools(body),
                  tool_choice=_tool_choice(body.get("tool_choice")), json_mode=_json_mode(body),
                  schema=_response_schema(body),
                  max_tokens=_max_tokens(body), stop=_stop(body.get("stop")), images=images)


def _content(content: Any, param: str) -> tuple[str, int]:
    """The text of a message's content and how many images it holds."""
    if content is None or isinstance(content, str):
        return content or "", 0
    if not isinstance(content, list):
        raise _Fail(400, f"Invalid type for '{param}': expected a string or an array of content parts.",
                    param=param, code="invalid_type")
    if not content:
        raise _Fail(400, f"Invalid '{param}': empty array. Expected an array with minimum length 1, but got an "
                    "empty array instead.", param=param, code="empty_array")
    texts, images = [], 0
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("text", "refusal"):
            texts.append(str(part.get(kind) or ""))
        elif kind == "image_url":
            images += 1
    return " ".join(texts), images


def _tools(body: dict[str, Any]) -> list[tuple[str, dict]]:
    out = []
    for tool in body.get("tools") or []:
        fn = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            out.append((fn["name"], fn.get("parameters") or {}))
    return out


def _tool_choice(choice: Any) -> str:
    if isinstance(choice, str):
        return choice
    if isinstance(choice, dict):
        return str((choice.get("function") or {}).get("name") or "required")
    return "auto"


def _json_mode(body: dict[str, Any]) -> bool:
    fmt = body.get("response_format")
    return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")


def _response_schema(body: dict[str, Any]) -> dict | None:
    fmt = body.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        schema = (fmt.get("json_schema") or {}).get("schema")
        return schema if isinstance(schema, dict) else None
    return None


def _max_tokens(body: dict[str, Any]) -> int | None:
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _stop(stop: Any) -> list[str]:
    if isinstance(stop, str):
        return [stop]
    return [s for s in stop if isinstance(s, str)] if isinstance(stop, list) else []


def _embedding_inputs(value: Any) -> list[str]:
    """Texts to embed; token arrays are accepted and embedded by their token ids."""
    if isinstance(value, str):
        value = [value]
    elif isinstance(value, list) and value and all(isinstance(v, int) for v in value):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _Fail(400, "'input' is required and must be a string, an array of strings or an array of token "
                    "arrays.", param="input", code="invalid_value")
    if len(value) > 2048:  # the documented batch limit (it also bounds what one request can make us hold)
        raise _Fail(400, f"Invalid 'input': array too long. Expected an array with maximum length 2048, but got an "
                    f"array with length {len(value)} instead.", param="input", code="array_above_max_length")
    texts = []
    for item in value:
        if isinstance(item, list) and item and all(isinstance(t, int) for t in item):
            item = " ".join(map(str, item))
        if not isinstance(item, str) or not item:
            raise _Fail(400, "'$.input' is invalid. Please check the API reference: "
                        "https://platform.openai.com/docs/api-reference.", param="input", code="invalid_value")
        texts.append(item)
    return texts


EMBEDDING_WINDOW = 8192               # text-embedding-3-* and ada-002, per input, as their 400s state it
EMBEDDING_TOKENS_PER_REQUEST = 300_000   # OpenAI's cap on one request's inputs together


def _embedding_limits(value: Any, azure: bool) -> list[int]:
    """OpenAI's 400s for embeddings inputs over the model's window (each input on its own) or over
    300,000 tokens in one request, counted with a real tokenizer: a character estimate runs about 3x
    low on CJK text, and a lenient simulator would answer 200 where the API refuses (tryout 8). Azure
    words the window's 400 like its chat one and states no per-request cap (none is applied).
    ``value`` has passed ``_embedding_inputs``; a token array counts its ids."""
    from .. import tokens

    items = [value] if isinstance(value, str) or (value and all(isinstance(v, int) for v in value)) else value
    counts = [len(item) if isinstance(item, list) else tokens.count(item) for item in items]
    for n in counts:
        if n <= EMBEDDING_WINDOW:
            continue
        if azure:
            raise _Fail(400, f"This model's maximum context length is {EMBEDDING_WINDOW} tokens. However, your "
                        f"messages resulted in {n} tokens. Please reduce the length of the messages.",
                        param="messages", code="context_length_exceeded")
        raise _Fail(400, f"This model's maximum context length is {EMBEDDING_WINDOW} tokens, however you requested "
                    f"{n} tokens ({n} in your prompt; 0 for the completion). Please reduce your prompt; or "
                    "completion length.")
    total = sum(counts)
    if not azure and total > EMBEDDING_TOKENS_PER_REQUEST:
        raise _Fail(400, f"Requested {total} tokens, max {EMBEDDING_TOKENS_PER_REQUEST} tokens per request",
                    type_="max_tokens_per_request", code="max_tokens_per_request")
    return counts


def _dimensions(model: str, value: Any) -> int:
    if value is None:
        return 3072 if "large" in model else 1536
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _Fail(400, f"Invalid 'dimensions': integer below minimum value. Expected a value >= 1, but got "
                    f"{value!r} instead.", param="dimensions", code="integer_below_min_value")
    native = 3072 if "large" in model else 1536   # a model cannot return more than its own size
    if value > native:
        raise _Fail(400, f"Invalid 'dimensions': integer above maximum value. Expected a value <= {native}, but got "
                    f"{value} instead.", param="dimensions", code="integer_above_max_value")
    return value


def embed(text: str, dimensions: int) -> list[float]:
    """A unit vector drawn from a hash of the text, rounded to float32 as OpenAI sends them.

    Draws are sequential, so a shorter ``dimensions`` is the renormalised prefix of
    a longer one, as with text-embedding-3's shortened embeddings.
    """
    rng = random.Random(hashlib.sha256(text.encode()).digest())
    raw = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(x * x for x in raw)) or 1.0
    return list(struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *(x / norm for x in raw))))


# -- answers ----------------------------------------------------------------

def _reasoning_tokens(model: str, reply: Reply, max_tokens: int | None = None) -> int:
    """Reasoning models bill hidden reasoning tokens; report some so clients see the field used. They
    count within ``max_completion_tokens`` with the visible ones, so never past what is left of it."""
    reasoning = 16 + reply.output_tokens if any(p in model for p in _REASONING) else 0
    return min(reasoning, max(0, max_tokens - reply.output_tokens)) if max_tokens is not None else reasoning


def _message(reply: Reply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": None if reply.tool_calls else reply.text,
                               "refusal": None, "annotations": []}
    if reply.tool_calls:
        message["tool_calls"] = [{"id": _call_id(), "type": "function",
                                  "function": {"name": name, "arguments": json.dumps(args)}}
                                 for name, args in reply.tool_calls]
    return message


def _call_id() -> str:
    return "call_" + _random_id(24)


def _random_id(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _usage(replies: list[Reply], reasoning: int, cached: int = 0) -> dict[str, Any]:
    prompt = replies[0].input_tokens
    completion = sum(r.output_tokens for r in replies) + reasoning * len(replies)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": reasoning * len(replies), "audio_tokens": 0,
                                          "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}


# OpenAI "Prompt caching" (the guide; Azure OpenAI's page says the same for its deployments): automatic
# for prompts of 1,024 tokens or more; a hit is an exact repeated prefix, counted "in increments of 128
# tokens" from 1,024 (usage.prompt_tokens_details.cached_tokens); tools and images are part of the
# prefix and must be identical; requests are routed by a hash of the prompt's start combined with
# ``prompt_cache_key``, so prompts under different keys (or none) land on different machines and do
# not share a cache here; caches are per organization (per key here) and per model. In-memory retention:
# "typically cleared within 5 to 10 minutes of inactivity", always within an hour; here 5 minutes after
# the last use, or 24 hours with ``prompt_cache_retention: "24h"`` (extended retention).
CACHE_MIN_TOKENS = 1024
CACHE_INCREMENT = 128
CACHE_TTL_S = 300.0
CACHE_TTL_EXTENDED_S = 24 * 3600.0


def prompt_cache_read(cache: PromptCache, request: web.Request, body: dict[str, Any], model: str,
                      prompt: Prompt) -> int:
    """The cached tokens this request reads (0, or 1,024 + 128k up to its prompt length), and the
    prompt's prefixes written to ``cache`` for the requests after it."""
    pieces = _cache_pieces(body, prompt)
    total = sum(count_tokens(text) for _, text in pieces)
    if total < CACHE_MIN_TOKENS:
        return 0
    key = request.headers.get("api-key") or request.headers.get("Authorization", "")
    scope = json.dumps([body.get("tools"), body.get("response_format"), body.get("functions")], sort_keys=True,
                       default=str)
    namespace = ("openai", hashlib.sha256(key.encode()).hexdigest(), model, str(body.get("prompt_cache_key")),
                 hashlib.sha256(scope.encode()).hexdigest())
    lengths = list(range(CACHE_MIN_TOKENS, total + 1, CACHE_INCREMENT))
    positions = positions_at(pieces, lengths)
    digests = prefix_digests(pieces, list(positions.values()))
    cached = next((n for n in reversed(lengths) if cache.hit(namespace, digests[positions[n]])), 0)
    ttl = CACHE_TTL_EXTENDED_S if body.get("prompt_cache_retention") == "24h" else CACHE_TTL_S
    for n in lengths:
        cache.store(namespace, digests[positions[n]], ttl)
    return cached


def _cache_pieces(body: dict[str, Any], prompt: Prompt) -> list[tuple[str, str]]:
    """The prompt as the cache sees it, token for token as ``_prompt_tokens`` counts it: the system text,
    the turns, then the images (85 tokens each), tagged with a digest of their data."""
    pieces = [("system", prompt.system)] + [(role, text) for role, text in prompt.turns]
    if prompt.images:
        images = [part.get("image_url") for m in body.get("messages") or [] if isinstance(m, dict)
                  for part in (m.get("content") if isinstance(m.get("content"), list) else [])
                  if isinstance(part, dict) and part.get("type") == "image_url"]
        tag = "images:" + hashlib.sha256(json.dumps(images, sort_keys=True, default=str).encode()).hexdigest()
        pieces.append((tag, "\x00" * (4 * 85 * prompt.images)))
    return pieces


def _headers(started: float) -> dict[str, str]:
    return {"x-request-id": "req_" + secrets.token_hex(16),
            "openai-processing-ms": str(int((time.monotonic() - started) * 1000))}


def _json(request: web.Request, payload: Any, started: float, status: int = 200,
          extra: dict[str, str] | None = None) -> web.Response:
    return web.json_response(payload, status=status, headers={**_headers(started), **(extra or {})})


def _error(request: web.Request, fail: _Fail, started: float, extra: dict[str, str] | None = None) -> web.Response:
    if _is_azure(request) and fail.status in (401, 404, 429):
        # Azure's own gateway errors carry only a code and a message.
        body: dict[str, Any] = {"code": fail.code or str(fail.status), "message": fail.message}
    else:
        body = {"message": fail.message, "type": fail.type, "param": fail.param, "code": fail.code}
    return _json(request, {"error": body}, started, fail.status, extra)


SIM_ORGANIZATION = "org-SimulatedOrganization42"   # the account the simulated keys belong to
_FAULT_ERRORS = {
    # OpenAI names the organization whose limit it is (ours, never the client's business).
    429: (f"Rate limit reached for requests in organization {SIM_ORGANIZATION} on requests per min (RPM): "
          "Limit 3, Used 3, Requested 1. Please try again in 20s.", "requests", "rate_limit_exceeded"),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
    504: ("Gateway timeout.", "server_error", None),
}


def _fault(request: web.Request, faults: Faults, started: float) -> web.Response:
    status = faults.status or 500
    message, type_, code = _FAULT_ERRORS.get(status, (f"Simulated error {status}.", "invalid_request_error", None))
    if _is_azure(request) and status == 429:
        code = "429"
    extra = {}
    if faults.retry_after is not None:
        # OpenAI sends both; its SDKs prefer the millisecond one.
        extra = {"retry-after": str(max(0, math.ceil(faults.retry_after))),
                 "retry-after-ms": str(int(faults.retry_after * 1000))}
    return _error(request, _Fail(status, message, type_, None, code), started, extra)


# vLLM's error event in a stream (``create_streaming_error_response``): its error object, with the HTTP
# status it stands for as the code and its exception class as the type.
VLLM_STREAM_ERROR = (b'data: {"error": {"message": "The engine loop has stopped.", "type": "InternalServerError", '
                     b'"param": null, "code": 500}}\n\n')


def _refusal(request: web.Request, sim_name: str, refusal: str, model: str, started: float) -> web.Response:
    """The ``refusal`` fault: the 400 each flavour of the API answers, in its own words and shape."""
    azure, vllm = _is_azure(request), not _is_azure(request) and sim_name != "openai"
    if refusal == "content_filter" and azure:
        # Azure's prompt filter (its content filtering guide; the 2024-10-21 schema's innerError).
        return _json(request, {"error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management "
                       "policy. Please modify your prompt and retry.",
            "type": None, "param": "prompt", "code": "content_filter", "status": 400,
            "innererror": {"code": "ResponsibleAIPolicyViolation", "content_filter_result": {
                "hate": {"filtered": True, "severity": "high"}, "self_harm": {"filtered": False, "severity": "safe"},
                "sexual": {"filtered": False, "severity": "safe"},
                "violence": {"filtered": False, "severity": "safe"}}}}}, started, 400)
    if refusal == "content_filter":
        return _error(request, _Fail(400, "Invalid prompt: your prompt was flagged as potentially violating our "
                                     "usage policy. Please try again with a different prompt.", code="invalid_prompt"),
                      started)
    window = MAX_MODEL_LEN if vllm or _limits(model) is None else _limits(model)[0]
    if vllm:
        return _json(request, {"object": "error", "message": f"This model's maximum context length is {window} "
                               f"tokens. However, you requested {window + 1} tokens ({window + 1} in the messages, "
                               "0 in the completion). Please reduce the length of the messages or completion.",
                               "type": "BadRequestError", "param": None, "code": 400}, started, 400)
    return _error(request, _Fail(400, f"This model's maximum context length is {window} tokens. However, your "
                                 f"messages resulted in {window + 1} tokens. Please reduce the length of the "
                                 "messages.", param="messages", code="context_length_exceeded"), started)


async def _stream(request: web.Request, faults: Faults | None, started: float, ident: str, created: int,
                  model: str, replies: list[Reply], reasoning: int, include_usage: bool,
                  error_event: bytes | None = None, cached: int = 0) -> web.StreamResponse:
    response = web.StreamResponse(headers=sse_headers(_headers(started)))
    await response.prepare(request)
    out = StreamWriter(request, response, faults, error_event)

    def chunk(choices: list[dict[str, Any]], usage: Any = None) -> bytes:
        body: dict[str, Any] = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                                "service_tier": "default", "system_fingerprint": _FINGERPRINT, "choices": choices}
        if include_usage:
            # With include_usage every chunk has the key; only the last one has a value.
            body["usage"] = usage
        return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"

    def choice(index: int, delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]

    first = True
    for index, reply in enumerate(replies):
        if reply.tool_calls:
            await out.send(chunk(choice(index, {"role": "assistant", "content": None, "refusal": None})),
                           content=False)
            if first:
                await out.first_content_delay()
                first = False
            for number, (name, args) in enumerate(reply.tool_calls):
                head = {"index": number, "id": _call_id(), "type": "function",
                        "function": {"name": name, "arguments": ""}}
                await out.send(chunk(choice(index, {"tool_calls": [head]})))
                text = json.dumps(args)
                for piece in (text[i:i + 8] for i in range(0, len(text), 8)):
                    await out.send(chunk(choice(index, {"tool_calls": [{"index": number,
                                                                        "function": {"arguments": piece}}]})))
        else:
            await out.send(chunk(choice(index, {"role": "assistant", "content": "", "refusal": None})),
                           content=False)
            if first:
                await out.first_content_delay()
                first = False
            for word in reply.words():
                if word:
                    await out.send(chunk(choice(index, {"content": word})))
        await out.send(chunk(choice(index, {}, reply.finish)))
    if include_usage:
        await out.send(chunk([], _usage(replies, reasoning, cached)), content=False)
    await out.send(b"data: [DONE]\n\n", content=False)
    await response.write_eof()
    return response


def _model_object(model: str) -> dict[str, Any]:
    owner = "openai" if model.startswith("text-embedding") else "system"
    return {"id": model, "object": "model", "created": _CREATED, "owned_by": owner}
