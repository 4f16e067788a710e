"""OpenAI chat completions and embeddings <-> Google Gemini API (``generativelanguage``, v1beta).

Chat goes to ``models/{m}:generateContent`` (or ``:streamGenerateContent?alt=sse``,
whose SSE events each carry a ``GenerateContentResponse`` with the *new* parts);
embeddings go to ``models/{m}:batchEmbedContents``.

========================================  ==========================================================
OpenAI request field                      Gemini
========================================  ==========================================================
system / developer messages               ``systemInstruction.parts`` (wherever they appear)
user / assistant messages                 ``contents`` role ``user`` / ``model``; consecutive
                                          same-role turns merged (tool results are ``user`` turns)
text, image_url (data: URL / http URL)    ``text``, ``inlineData`` / ``fileData``
file.file_data (data: URL)                ``inlineData``
assistant tool_calls / tool messages      ``functionCall`` / ``functionResponse`` (name looked up
                                          from the matching tool_call_id)
tools (type function)                     ``tools[].functionDeclarations`` with ``parametersJsonSchema``
tool_choice auto/none/required/named      ``toolConfig.functionCallingConfig`` AUTO/NONE/ANY(+names)
tool_choice allowed_tools                 declarations filtered to the allowed ones, AUTO/ANY
temperature, top_p, n, seed               temperature, topP, candidateCount, seed
max_completion_tokens / max_tokens        maxOutputTokens (clamped to the model's output limit)
stop                                      stopSequences
presence_penalty / frequency_penalty      presencePenalty / frequencyPenalty
response_format json_object / json_schema responseMimeType application/json (+ responseJsonSchema)
logprobs / top_logprobs                   responseLogprobs / logprobs (answer's logprobsResult mapped);
                                          422 on models without logprobs (Gemini 2.5 and later)
stream / stream_options.include_usage     streamGenerateContent?alt=sse / final usage chunk
----------------------------------------  ----------------------------------------------------------
Dropped (no Gemini equivalent, harmless)  user, metadata, store, service_tier, parallel_tool_calls,
                                          reasoning_effort, prediction, image
                                          ``detail``, message ``name``; Gemini ``thought`` parts in answers
422 UnsupportedFeature                    logit_bias, audio (modalities/audio/input_audio parts),
                                          file_id references, non-function tools, web_search_options,
                                          the legacy functions / function_call
========================================  ==========================================================

Normalized to what the API accepts, where the meaning survives: empty text (a part, a
message, a system prompt) is left out, since Google reads ``{"text": ""}`` as a Part with
no data and refuses it; a turn left with nothing is left out too; a ``seed`` beyond int32
is folded into it (same seed, same folded seed). Refused with 422 so the planner tries
another provider: ``n`` above 8 (``candidateCount`` is 1..8) or above 1 on Gemini 3 models
("Multiple candidates is not enabled"); image URLs on the web (the API reads only inline
data, Files API and YouTube URIs, it does not fetch web pages); a conversation with no
user or assistant content (only system messages). ``n`` below 1 is never forwarded.

Gemini 3 models attach a ``thoughtSignature`` to function-call parts and want
it back on the next turn; OpenAI's tool_call shape has no slot for it, so the
first function call of each model turn carries Google's documented stand-in
(``skip_thought_signature_validator``): multi-turn tool use works, without the
model's hidden reasoning of the earlier steps.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import re
import struct
from typing import Any

from .. import sse
from ..cost import TOKEN_UNITS, text_units
from ..errors import InvalidRequest, UnsupportedFeature, upstream_error, upstream_event_error
from .base import ChatTranslator, EmbeddingsTranslator, Target, UpstreamRequest, Usage

_JSON_HEADERS = {"content-type": "application/json"}

_FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
}

_TOOL_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode()


def _model_path(target: Target, method: str) -> str:
    return f"{target.base_path}/models/{target.upstream_model}:{method}"


# ---------------------------------------------------------------------------------------------
# Request: OpenAI chat -> GenerateContentRequest


def _text_of(content: Any, where: str) -> str:
    """The text of a message whose content may only be text (system, tool): a string or text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") not in ("text", "refusal"):
                raise InvalidRequest(f"{where} content parts must be text", param=where)
            out.append(part.get("text") or part.get("refusal") or "")
        return "".join(out)
    raise InvalidRequest(f"{where} content must be a string or a list of parts", param=where)


def _data_url(url: str) -> tuple[str, str] | None:
    """(mime type, base64 data) of a ``data:`` URL, or None for any other URL."""
    if not url.startswith("data:"):
        return None
    head, sep, data = url[5:].partition(",")
    if not sep or not head.endswith(";base64"):
        raise InvalidRequest("data URLs must be base64-encoded", param="messages")
    return head[: -len(";base64")] or "application/octet-stream", data


# What fileData may name: Files API resources and YouTube videos. Google does not fetch other web URLs.
_FILES_URI = re.compile(r"^https://[^/]+/v1(beta)?/files/[a-z0-9-]+$")
_YOUTUBE_URI = re.compile(r"^https://(www\.)?(youtube\.com/watch\?v=|youtu\.be/)[\w-]+")


def _image_part(url: str) -> dict[str, Any]:
    inline = _data_url(url)
    if inline is not None:
        return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
    if not url.startswith(("http://", "https://")):
        raise InvalidRequest("image_url must be a data: URL or an http(s) URL", param="messages")
    if not (_FILES_URI.match(url) or _YOUTUBE_URI.match(url)):
        raise UnsupportedFeature("this model's provider (Gemini) does not fetch image URLs from the web; send the "
                                 "image as a base64 data: URL", param="messages")
    # fileData needs a MIME type; a URL rarely says, so guess from the extension and
    # fall back to JPEG, the most common web image format.
    guessed, _ = mimetypes.guess_type(url.split("?", 1)[0])
    return {"fileData": {"mimeType": guessed if guessed and guessed.startswith("image/") else "image/jpeg",
                         "fileUri": url}}


def _user_parts(content: Any) -> list[dict[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []  # {"text": ""} is a Part with no data to Google
    if not isinstance(content, list):
        raise InvalidRequest("message content must be a string or a list of parts", param="messages")
    parts: list[dict[str, Any]] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            if part.get("text"):
                parts.append({"text": part["text"]})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                raise InvalidRequest("image_url.url must be a string", param="messages")
            parts.append(_image_part(url))
        elif kind == "input_audio":
            raise UnsupportedFeature("audio input is not supported for Gemini models through this gateway",
                                     param="messages")
        elif kind == "file":
            file = part.get("file") or {}
            inline = _data_url(file.get("file_data") or "") if isinstance(file, dict) else None
            if inline is None:
                raise UnsupportedFeature("file parts must carry file_data as a data: URL for Gemini models "
                                         "(file_id references are not supported)", param="messages")
            parts.append({"inlineData": {"mimeType": inline[0], "data": inline[1]}})
        else:
            raise InvalidRequest(f"unknown content part type {kind!r}", param="messages")
    return parts


def _tool_result(text: str) -> Any:
    """Gemini's functionResponse.response is a JSON object; keep structured tool output structured."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return text
    return parsed if isinstance(parsed, (dict, list)) else text


def _contents(messages: list[Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """(contents, system texts). Consecutive turns of one role merge: Gemini wants them alternating."""
    contents: list[dict[str, Any]] = []
    system: list[str] = []
    call_names: dict[str, str] = {}

    def add(role: str, parts: list[dict[str, Any]]) -> None:
        if not parts:
            return  # Gemini rejects a turn with no parts
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for i, msg in enumerate(messages):
        if not isinstance(msg, dict):
            raise InvalidRequest(f"messages[{i}] must be an object", param="messages")
        role = msg.get("role")
        if role in ("system", "developer"):
            text = _text_of(msg.get("content"), f"messages[{i}]")
            if text:
                system.append(text)
        elif role == "user":
            add("user", _user_parts(msg.get("content")))
        elif role == "assistant":
            if msg.get("audio"):
                raise UnsupportedFeature("assistant audio is not supported for Gemini models", param="messages")
            text = _text_of(msg.get("content"), f"messages[{i}]")
            parts: list[dict[str, Any]] = [{"text": text}] if text else []
            for j, call in enumerate(msg.get("tool_calls") or []):
                fn = call.get("function") or {}
                name = fn.get("name")
                if not name:
                    raise InvalidRequest(f"messages[{i}].tool_calls need a function name", param="messages")
                where = f"messages[{i}].tool_calls[{j}].function.arguments"
                try:
                    args = json.loads(fn.get("arguments") or "{}")
                except ValueError:
                    raise InvalidRequest(f"{where} is not valid JSON", param=where) from None
                if not isinstance(args, dict):
                    # Gemini's functionCall.args is an object (as Anthropic's tool_use input): sending {} in
                    # place of an array or a number would change the conversation, so say so, as for Claude.
                    raise InvalidRequest(f"{where} must be a JSON object", param=where)
                call_names[call.get("id") or ""] = name
                parts.append({"functionCall": {"name": name, "args": args}})
            add("model", parts)
        elif role == "tool":
            name = call_names.get(msg.get("tool_call_id") or "")
            if name is None:
                raise InvalidRequest(f"messages[{i}] answers tool_call_id {msg.get('tool_call_id')!r}, "
                                     "which no earlier assistant message made", param="messages")
            result = _tool_result(_text_of(msg.get("content"), f"messages[{i}]"))
            add("user", [{"functionResponse": {"name": name, "response": {"content": result}}}])
        elif role == "function":
            raise UnsupportedFeature("legacy 'function' messages are not supported; use tool messages",
                                     param="messages")
        else:
            raise InvalidRequest(f"messages[{i}].role {role!r} is not valid", param="messages")
    return contents, system


# Google's documented stand-in for a thought signature the client could not keep.
SKIP_SIGNATURE = "skip_thought_signature_validator"


def _sign_function_calls(contents: list[dict[str, Any]]) -> None:
    """Gemini 3 refuses a history whose function calls lack their ``thoughtSignature``; OpenAI's
    tool_calls have no place to keep one, so the first call of each model turn carries Google's
    documented stand-in: the model loses that step's hidden reasoning, not the conversation."""
    for content in contents:
        if content["role"] != "model":
            continue
        for i, part in enumerate(content["parts"]):
            if "functionCall" in part:
                content["parts"][i] = {**part, "thoughtSignature": SKIP_SIGNATURE}
                break


def _tools(body: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """(function declarations, functionCallingConfig or None)."""
    declarations: list[dict[str, Any]] = []
    for tool in body.get("tools") or []:
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise UnsupportedFeature("only function tools are supported for Gemini models", param="tools")
        fn = tool.get("function") or {}
        # The discovery document makes description required; "" is what an undescribed tool says.
        decl: dict[str, Any] = {"name": fn.get("name"), "description": fn.get("description") or ""}
        if fn.get("parameters"):
            # `parameters` takes Google's OpenAPI-subset Schema, which rejects plain JSON
            # Schema that OpenAI clients send (additionalProperties, $defs/$ref, const...).
            # `parametersJsonSchema` takes JSON Schema as is, so the client's schema passes
            # through without a lossy rewrite.
            decl["parametersJsonSchema"] = fn["parameters"]
        declarations.append(decl)

    choice = body.get("tool_choice")
    if choice is None:
        return declarations, None
    if isinstance(choice, str):
        if choice not in _TOOL_MODES:
            raise InvalidRequest(f"tool_choice {choice!r} is not valid", param="tool_choice")
        return declarations, {"mode": _TOOL_MODES[choice]}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if not name:
            raise InvalidRequest("tool_choice.function.name is required", param="tool_choice")
        return declarations, {"mode": "ANY", "allowedFunctionNames": [name]}
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        allowed = choice.get("allowed_tools") or {}
        names = {(t.get("function") or {}).get("name") for t in allowed.get("tools") or []}
        # Gemini only honours allowedFunctionNames with mode ANY, so "auto among these"
        # is expressed by declaring just these.
        declarations = [d for d in declarations if d["name"] in names]
        return declarations, {"mode": "ANY" if allowed.get("mode") == "required" else "AUTO"}
    raise InvalidRequest("tool_choice is not valid", param="tool_choice")


MAX_CANDIDATES = 8  # candidateCount's documented range is 1..8


def _candidates(n: Any, model: str) -> int | None:
    """candidateCount for OpenAI's ``n``: None for 1 (the default), or refuse what Gemini cannot give."""
    if n is None:
        return None
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise InvalidRequest("n must be an integer of at least 1", param="n")
    if n > MAX_CANDIDATES:
        raise UnsupportedFeature(f"n={n} is more choices than this model's provider (Gemini) returns per request "
                                 f"(at most {MAX_CANDIDATES})", param="n")
    if n > 1 and model.startswith("gemini-3"):
        raise UnsupportedFeature(f"{model} returns one choice per request (Gemini 3 models take no "
                                 "candidateCount above 1); n must be 1", param="n")
    return n if n > 1 else None


# Output limits (maxOutputTokens) by model name, from the models pages (outputTokenLimit);
# options.max_output_tokens overrides. The model stops at its limit anyway, so a larger
# max_tokens is clamped to it: the answer is the same, and the API would refuse it.
_OUTPUT_LIMITS = ((re.compile(r"^gemini-2\.0"), 8192), (re.compile(r"^gemini-"), 65536))
# Models that return logprobs (responseLogprobs): Google turned it off on Gemini 2.5 and later
# ("Logprobs is not enabled for models/..."); options.logprobs overrides.
_LOGPROBS_MODEL = re.compile(r"^gemini-2\.0-flash")


def output_limit(target: Any) -> int | None:
    """The model's output limit in tokens (``options.max_output_tokens``, else by name), or None."""
    limit = target.options.get("max_output_tokens")
    if limit is None:
        limit = next((n for pattern, n in _OUTPUT_LIMITS if pattern.match(target.upstream_model)), None)
    return limit if isinstance(limit, int) and not isinstance(limit, bool) else None


_GEMINI_VERSION = re.compile(r"^gemini-(\d+(?:\.\d+)?)")


def prompt_cache_floor(target: Any) -> int | None:
    """The shortest prompt prefix Gemini's implicit cache reads, or None where it has none. Gemini API
    "Context caching": implicit caching is on by default for Gemini 2.5 and newer models, from 2,048
    tokens on 2.5 Flash / Pro and 4,096 on the 3.x models (page as stored, updated 2026-10-13)."""
    m = _GEMINI_VERSION.match(target.upstream_model)
    if m is None or float(m.group(1)) < 2.5:
        return None
    return 2048 if float(m.group(1)) < 3 else 4096


def _generation_config(body: dict[str, Any], target: Any) -> dict[str, Any]:
    model = target.upstream_model
    config: dict[str, Any] = {}
    for src, dst in (("temperature", "temperature"), ("top_p", "topP"),
                     ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty")):
        if body.get(src) is not None:
            config[dst] = body[src]
    count = _candidates(body.get("n"), model)
    if count is not None:
        config["candidateCount"] = count
    seed = body.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        # Gemini's seed is an int32; OpenAI's any integer. Folding keeps one seed one seed.
        config["seed"] = seed if -2**31 <= seed < 2**31 else seed % 2**31
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:   # an explicit null means absent, as in OpenAI's API
        max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        limit = output_limit(target)
        config["maxOutputTokens"] = min(max_tokens, limit) if limit is not None else max_tokens
    stop = body.get("stop")
    stops = [stop] if isinstance(stop, str) else [x for x in stop or [] if isinstance(x, str)]
    if any(stops):
        config["stopSequences"] = [x for x in stops if x]
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_object":
        config["responseMimeType"] = "application/json"
    elif fmt.get("type") == "json_schema":
        config["responseMimeType"] = "application/json"
        schema = (fmt.get("json_schema") or {}).get("schema")
        if schema:
            # responseJsonSchema, like parametersJsonSchema, takes real JSON Schema;
            # responseSchema is the OpenAPI subset and would reject common client schemas.
            config["responseJsonSchema"] = schema
    if body.get("logprobs") or body.get("top_logprobs"):
        if not target.options.get("logprobs", bool(_LOGPROBS_MODEL.match(model))):
            # Dropping them would answer logprobs: null where the client reads numbers.
            raise UnsupportedFeature(f"{model} does not return logprobs (Gemini 2.5 and later models do not)",
                                     param="logprobs" if body.get("logprobs") else "top_logprobs")
        config["responseLogprobs"] = True
        if body.get("top_logprobs") is not None:
            config["logprobs"] = body["top_logprobs"]
    return config


def _check_unsupported(body: dict[str, Any]) -> None:
    if body.get("logit_bias"):
        raise UnsupportedFeature("logit_bias is not supported for Gemini models", param="logit_bias")
    # Dropping either would change the answer (no web grounding; no function the model can call).
    if body.get("web_search_options") is not None:
        raise UnsupportedFeature("web search is not available for this model", param="web_search_options")
    if body.get("functions") or body.get("function_call") is not None:
        raise UnsupportedFeature("the legacy functions / function_call parameters are not translated for Gemini "
                                 "models; send tools / tool_choice", param="functions")
    if body.get("audio") or "audio" in (body.get("modalities") or []):
        raise UnsupportedFeature("audio output is not supported for Gemini models", param="modalities")


# ---------------------------------------------------------------------------------------------
# Response: GenerateContentResponse -> chat.completion


def _usage(meta: dict[str, Any]) -> dict[str, Any]:
    prompt = meta.get("promptTokenCount", 0)
    thoughts = meta.get("thoughtsTokenCount", 0)
    completion = meta.get("candidatesTokenCount", 0) + thoughts
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": meta.get("cachedContentTokenCount", 0)},
            "completion_tokens_details": {"reasoning_tokens": thoughts}}


def _logprobs(result: dict[str, Any] | None) -> dict[str, Any] | None:
    if not result:
        return None
    tops = result.get("topCandidates") or []
    content = []
    for i, chosen in enumerate(result.get("chosenCandidates") or []):
        alternatives = tops[i].get("candidates", []) if i < len(tops) else []
        content.append({**_token_logprob(chosen),
                        "top_logprobs": [_token_logprob(alt) for alt in alternatives]})
    return {"content": content, "refusal": None}


def _token_logprob(entry: dict[str, Any]) -> dict[str, Any]:
    token = entry.get("token", "")
    return {"token": token, "logprob": entry.get("logProbability", 0.0), "bytes": list(token.encode())}


def _model_name(data: dict[str, Any], target: Target) -> str:
    version = data.get("modelVersion")
    return version.removeprefix("models/") if isinstance(version, str) and version else target.upstream_model


class GeminiChatTranslator(ChatTranslator):
    def __init__(self, target: Target, *, created: int, response_id: str):
        super().__init__(target, created=created, response_id=response_id)
        # Stream state: Gemini events carry only new parts, so little needs remembering.
        self._decoder = sse.SSEDecoder()
        self._started: set[int] = set()       # choice indexes whose role chunk went out
        self._calls: dict[int, int] = {}      # choice index -> tool calls sent so far
        self._finished = False                # some finishReason (or a prompt block) was seen
        self._failed = False                  # an error event went out: nothing may follow it
        self._meta: dict[str, Any] | None = None  # the latest usageMetadata
        self._model: str | None = None

    def request(self, body: dict[str, Any]) -> UpstreamRequest:
        _check_unsupported(body)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequest("messages must be a non-empty list", param="messages")
        self.stream = bool(body.get("stream"))
        self.include_usage = self.stream and bool((body.get("stream_options") or {}).get("include_usage"))

        contents, system = _contents(messages)
        if not contents:
            raise UnsupportedFeature("this model's provider (Gemini) needs at least one user or assistant message "
                                     "with content; this request has only system messages or empty ones",
                                     param="messages")
        if self.target.upstream_model.startswith("gemini-3"):
            _sign_function_calls(contents)
        out: dict[str, Any] = {"contents": contents}
        if system:
            out["systemInstruction"] = {"parts": [{"text": t} for t in system]}
        declarations, calling = _tools(body)
        if declarations:
            out["tools"] = [{"functionDeclarations": declarations}]
        if calling is not None and (declarations or calling["mode"] == "NONE"):
            out["toolConfig"] = {"functionCallingConfig": calling}
        config = _generation_config(body, self.target)
        if config:
            out["generationConfig"] = config

        path = _model_path(self.target, "streamGenerateContent?alt=sse" if self.stream else "generateContent")
        return UpstreamRequest(path=path, body=_dumps(out), headers=dict(_JSON_HEADERS))

    # -- whole answers -------------------------------------------------------------------------

    def response(self, body: bytes) -> bytes:
        data = json.loads(body)
        candidates = data.get("candidates") or []
        choices = [self._choice(c, n) for n, c in enumerate(candidates)]
        if not choices and (data.get("promptFeedback") or {}).get("blockReason"):
            choices = [{"index": 0, "message": _message(None, []), "logprobs": None,
                        "finish_reason": "content_filter"}]
        out: dict[str, Any] = {"id": self.response_id, "object": "chat.completion", "created": self.created,
                               "model": _model_name(data, self.target), "choices": choices}
        meta = data.get("usageMetadata")
        if isinstance(meta, dict):
            out["usage"] = self._remember_usage(meta)
        return _dumps(out)

    def _choice(self, cand: dict[str, Any], position: int) -> dict[str, Any]:
        index = cand.get("index", position)
        text: list[str] = []
        calls: list[dict[str, Any]] = []
        for part in (cand.get("content") or {}).get("parts") or []:
            if part.get("thought"):
                continue  # thought summaries have no place in an OpenAI message
            if "text" in part:
                text.append(part["text"])
            elif "functionCall" in part:
                calls.append(self._tool_call(part["functionCall"], index, len(calls)))
        finish = _finish(cand.get("finishReason"), bool(calls))
        return {"index": index, "message": _message("".join(text) if text else None, calls),
                "logprobs": _logprobs(cand.get("logprobsResult")), "finish_reason": finish}

    def _tool_call(self, call: dict[str, Any], choice: int, n: int) -> dict[str, Any]:
        call_id = call.get("id")
        if not call_id:
            # Stable across retries of the same answer, unique per choice and position.
            digest = hashlib.sha256(f"{self.response_id}:{choice}:{n}".encode()).hexdigest()[:24]
            call_id = f"call_{digest}"
        return {"id": call_id, "type": "function",
                "function": {"name": call.get("name", ""), "arguments": json.dumps(call.get("args") or {},
                                                                                   ensure_ascii=False)}}

    def _remember_usage(self, meta: dict[str, Any]) -> dict[str, Any]:
        usage = _usage(meta)
        self.usage = Usage(input_tokens=usage["prompt_tokens"], output_tokens=usage["completion_tokens"],
                           cached_input_tokens=usage["prompt_tokens_details"]["cached_tokens"])
        return usage

    def error(self, status: int, body: bytes) -> tuple[int, bytes]:
        return _google_error(status, body)

    # -- streams -------------------------------------------------------------------------------

    def stream_chunk(self, data: bytes) -> bytes:
        out = bytearray()
        for event in self._decoder.feed(data):
            if self._failed or not event.data.strip():
                continue
            try:
                payload = json.loads(event.data)
            except ValueError:
                continue  # not a GenerateContentResponse: nothing to translate
            out += self._event(payload)
        return bytes(out)

    def _event(self, data: dict[str, Any]) -> bytes:
        if "error" in data:
            err = data["error"] if isinstance(data["error"], dict) else {}
            self._failed = True
            # Google's error carries the HTTP status it stands for: the event reads like that error.
            status = err.get("code") if isinstance(err.get("code"), int) and 400 <= err["code"] < 600 else 500
            message = str(err.get("message") or "provider stream failed")
            return sse.encode({"error": upstream_event_error(status, message, openai_code(message))})
        if self._model is None and data.get("modelVersion"):
            self._model = _model_name(data, self.target)
        if isinstance(data.get("usageMetadata"), dict):
            self._meta = data["usageMetadata"]  # cumulative: the last one is the call's count
        out = bytearray()
        candidates = data.get("candidates") or []
        if not candidates and (data.get("promptFeedback") or {}).get("blockReason"):
            out += self._start(0)
            out += self._chunk(0, {}, "content_filter")
            self._finished = True
        for position, cand in enumerate(candidates):
            index = cand.get("index", position)
            out += self._start(index)
            text: list[str] = []
            calls: list[dict[str, Any]] = []
            for part in (cand.get("content") or {}).get("parts") or []:
                if part.get("thought"):
                    continue
                if part.get("text"):
                    text.append(part["text"])
                elif "functionCall" in part:
                    n = self._calls.get(index, 0)
                    self._calls[index] = n + 1
                    calls.append({"index": n, **self._tool_call(part["functionCall"], index, n)})
            logprobs = _logprobs(cand.get("logprobsResult"))
            if text:
                out += self._chunk(index, {"content": "".join(text)}, None, logprobs)
            if calls:
                out += self._chunk(index, {"tool_calls": calls}, None)
            if cand.get("finishReason"):
                self._finished = True
                out += self._chunk(index, {}, _finish(cand["finishReason"], self._calls.get(index, 0) > 0))
        return bytes(out)

    def _start(self, index: int) -> bytes:
        if index in self._started:
            return b""
        self._started.add(index)
        return self._chunk(index, {"role": "assistant", "content": "", "refusal": None}, None)

    def _chunk(self, index: int, delta: dict[str, Any], finish: str | None,
               logprobs: dict[str, Any] | None = None) -> bytes:
        chunk = self._envelope([{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}])
        if self.include_usage:
            chunk["usage"] = None  # as OpenAI does: only the final, choice-less chunk carries usage
        return sse.encode(chunk)

    def _envelope(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.response_id, "object": "chat.completion.chunk", "created": self.created,
                "model": self._model or self.target.upstream_model, "choices": choices}

    def stream_end(self) -> bytes:
        self._decoder.close()
        if self._failed:
            return b""
        if not self._finished:
            self._cut = True
            return sse.encode({"error": {"message": "provider stream ended early", "type": "upstream_error",
                                         "param": None, "code": None}})
        out = bytearray()
        if self._meta is not None:
            usage = self._remember_usage(self._meta)
            if self.include_usage:
                out += sse.encode({**self._envelope([]), "usage": usage})
        return bytes(out + sse.DONE)


def _message(content: str | None, calls: list[dict[str, Any]]) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    if calls:
        msg["tool_calls"] = calls
    return msg


def _finish(reason: str | None, has_calls: bool) -> str:
    mapped = _FINISH.get(reason or "STOP", "stop")
    return "tool_calls" if mapped == "stop" and has_calls else mapped


# Google's words for a refused request that OpenAI has a code for (errors.OPENAI_CODES): a prompt over
# the model's input token limit (models.get ``inputTokenLimit``) is 400 INVALID_ARGUMENT "The input token
# count (N) exceeds the maximum number of tokens allowed (M)." Safety blocks are not errors at Google:
# a blocked prompt is a 200 with ``promptFeedback.blockReason`` (finish_reason content_filter here).
_CONTEXT_EXCEEDED = re.compile(r"\binput token count \(?\d+\)? exceeds the maximum number of tokens allowed")


def openai_code(message: str) -> str | None:
    """OpenAI's code for a Google INVALID_ARGUMENT message, or None."""
    return "context_length_exceeded" if _CONTEXT_EXCEEDED.search(message) else None


def _google_error(status: int, body: bytes) -> tuple[int, bytes]:
    """Google's ``{"error": {"code", "message", "status"}}`` as an OpenAI error, tolerating any other body."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, list) and data:  # streamGenerateContent without alt=sse wraps errors in an array
        data = data[0]
    err = data.get("error") if isinstance(data, dict) else None
    if not isinstance(err, dict) or not err.get("message"):
        text = body.decode("utf-8", errors="replace").strip()
        return upstream_error(status, text[:500] or f"provider answered HTTP {status}")
    message = str(err["message"])
    code = openai_code(message) if err.get("status") == "INVALID_ARGUMENT" else None
    reasons = {d.get("reason") for d in err.get("details") or [] if isinstance(d, dict)}
    if "API_KEY_INVALID" in reasons:
        # Google rejects a bad key with 400, not 401/403. The client cannot fix the
        # gateway's key, so say whose it is; the status stays, because the gateway
        # may already have sent it from the provider's status alone.
        message, code = f"provider rejected the gateway's credential: {message}", "upstream_auth_failed"
    return upstream_error(status, message, code)


# ---------------------------------------------------------------------------------------------
# Embeddings


MAX_EMBED_BATCH = 100  # batchEmbedContents takes at most 100 requests


class GeminiEmbeddingsTranslator(EmbeddingsTranslator):
    def __init__(self, target: Target):
        super().__init__(target)
        self.encoding = "float"
        self.texts: list[str] = []  # kept to estimate tokens: Gemini reports none for embeddings

    def request(self, body: dict[str, Any]) -> UpstreamRequest:
        texts = body.get("input")
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts:
            raise InvalidRequest("input must be a string or a non-empty list of strings", param="input")
        if not all(isinstance(t, str) for t in texts):
            raise UnsupportedFeature("token-id input is not supported for Gemini embedding models; send text",
                                     param="input")
        if len(texts) > MAX_EMBED_BATCH:
            raise UnsupportedFeature(f"{len(texts)} inputs is more than this model's provider (Gemini) embeds in one "
                                     f"request (at most {MAX_EMBED_BATCH})", param="input")
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            raise InvalidRequest("encoding_format must be 'float' or 'base64'", param="encoding_format")
        self.encoding = fmt
        self.texts = list(texts)
        model = f"models/{self.target.upstream_model}"
        requests = []
        for text in texts:
            req: dict[str, Any] = {"model": model, "content": {"parts": [{"text": text}]}}
            if body.get("dimensions") is not None:
                req["outputDimensionality"] = body["dimensions"]
            requests.append(req)
        return UpstreamRequest(path=_model_path(self.target, "batchEmbedContents"),
                               body=_dumps({"requests": requests}), headers=dict(_JSON_HEADERS))

    def response(self, body: bytes) -> bytes:
        data = json.loads(body)
        items = []
        for i, emb in enumerate(data.get("embeddings") or []):
            values = emb.get("values") or []
            if self.encoding == "base64":
                # What the OpenAI SDKs decode: raw little-endian float32, base64-encoded.
                vector: Any = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
            else:
                vector = values
            items.append({"object": "embedding", "index": i, "embedding": vector})
        meta = data.get("usageMetadata") or {}
        tokens = meta.get("promptTokenCount")
        if tokens is None:
            # batchEmbedContents reports no token count; the router's estimate (cost.text_units:
            # 4 ASCII characters a token, a CJK character 0.7), rounded up per input, so usage
            # accounting and budgets still see a plausible number.
            tokens = sum(-(-text_units(t) // TOKEN_UNITS) for t in self.texts)
        self.usage = Usage(input_tokens=tokens)
        return _dumps({"object": "list", "data": items, "model": self.target.model,
                       "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    def error(self, status: int, body: bytes) -> tuple[int, bytes]:
        return _google_error(status, body)
