"""The OpenAI request validator: the one place a client's body is parsed and checked.

Everything a translator, the classifier or the planner reads from a request has
been checked here first, for type, range and encoding, so none of them ever
meets a wrong type (no TypeError/KeyError deep in a translator, no 500). Rules
that belong to one provider (Anthropic's temperature range, Gemini's
``candidateCount``) stay in that provider's translator, as ``UnsupportedFeature``.

Two layers:

``parse(raw)``
    bytes -> dict. Strict JSON (RFC 8259): UTF-8 only, no ``NaN``/``Infinity``
    literals (Python's ``json`` accepts them, the JSON grammar does not), no
    integer literal longer than ``MAX_INTEGER_DIGITS`` (a 4,300-digit number
    costs quadratic time to convert and means nothing to any API), nesting at
    most ``MAX_DEPTH`` deep, and no lone UTF-16 surrogate escape (``"\\ud800"``
    decodes to a Python string that cannot be encoded back to UTF-8).
``chat(body)`` / ``embeddings(body)``
    the OpenAI ``createChatCompletion`` / ``createEmbedding`` request schema,
    field by field, as the OpenAI API checks it: 400 ``invalid_request_error``
    with ``param`` naming the field (``messages[0].content``) and OpenAI's own
    words and codes where it has them (``invalid_type``, ``invalid_value``,
    ``missing_required_parameter``, ``empty_array``, ``integer_below_min_value``,
    ``decimal_above_max_value``, ...). Unknown top-level fields pass through:
    an OpenAI-compatible upstream decides about them.

All functions are pure: plain values in, ``InvalidRequest`` out.
"""

from __future__ import annotations

import binascii
import json
import math
import re
from base64 import b64decode
from typing import Any

from .errors import InvalidRequest

MAX_DEPTH = 32                 # containers inside containers; real requests (tool schemas) stay under 20
MAX_INTEGER_DIGITS = 20        # an int64 has at most 19 digits (and a sign)
INT32_MAX = 2**31 - 1          # OpenAI's token counts and n are 32-bit
INT64_MIN, INT64_MAX = -2**63, 2**63 - 1   # seed
ROLES = ("system", "assistant", "user", "function", "tool", "developer")   # in OpenAI's order
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
# Our code for a body that is not JSON (empty, truncated, trailing bytes, a BOM, not UTF-8): OpenAI answers
# these with its _PARSE_HINT words and no code, and every gateway error carries one (README, "Errors").
INVALID_JSON = "invalid_json"
_PARSE_HINT = ("We could not parse the JSON body of your request. (HINT: This likely means you aren't using your "
               "HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)")


# ---- parsing ---------------------------------------------------------------------------------

class _Refused(ValueError):
    """A literal the decoder hooks refuse, with the code its kind gets wherever it occurs: the same
    code as the field checks give the same fault (``integer_above_max_value`` for 21 digits as for a
    20-digit ``max_tokens``), so a client sees one code per kind of fault, not one per layer."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code


def _no_constant(name: str) -> Any:
    raise _Refused(f"'{name}' is not valid JSON (non-finite numbers are not part of JSON)", "invalid_value")


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INTEGER_DIGITS:
        raise _Refused(f"an integer of {digits} digits is too large (at most {MAX_INTEGER_DIGITS} digits)",
                       "integer_below_min_value" if text.startswith("-") else "integer_above_max_value")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):   # 1e999 overflows to inf: as non-finite as the literal Infinity
        raise _Refused(f"the number {text[:40]} is out of range",
                       "decimal_below_min_value" if value < 0 else "decimal_above_max_value")
    return value


_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_int=_bounded_int, parse_float=_finite_float)


def parse(raw: bytes, not_json: str = _PARSE_HINT) -> dict:
    """Parse a request body into a JSON object; raises ``InvalidRequest`` (400) for anything else, with
    one code per kind of fault (README, "Errors"): ``invalid_json`` not JSON, ``invalid_type`` not an
    object, ``invalid_value`` too deep / non-finite literal / lone surrogate, ``integer_above_max_value``
    and ``decimal_above_max_value`` (``_below_min_`` when negative) for numbers past the bounds.
    ``not_json`` begins the message of a body that does not parse (the decoder's reason follows): OpenAI's
    words by default, a front door passes its own API's (``apis.messages``).

    ``raw`` must be UTF-8 (RFC 8259 section 8.1); the result holds only
    dict/list/str/int/float/bool/None, at most ``MAX_DEPTH`` containers deep,
    every string encodable as UTF-8, every number finite."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(f"The request body is not valid UTF-8 (byte {exc.start}).", code=INVALID_JSON) from None
    try:
        body = _DECODER.decode(text)
    except RecursionError:   # C scanner's own guard, far deeper than MAX_DEPTH: the same fault as _check_depth's
        raise _too_deep() from None
    except _Refused as exc:
        raise InvalidRequest(f"{not_json} {exc}", code=exc.code) from None
    except ValueError as exc:   # not JSON at all: empty, truncated, trailing garbage, a BOM
        raise InvalidRequest(f"{not_json} {exc}", code=INVALID_JSON) from None
    if not isinstance(body, dict):
        raise InvalidRequest(f"The request body must be a JSON object, not {kind(body)}.", code="invalid_type")
    _check_depth(body)
    if _SURROGATE_ESCAPE.search(raw):   # rare: only then walk every string to find the lone one
        where = _lone_surrogate(body)
        if where is not None:
            raise InvalidRequest(f"Invalid '{where or 'body'}': the string holds a lone UTF-16 surrogate "
                                 "escape (\\ud800-\\udfff without its pair), which is not valid Unicode.",
                                 param=where or None, code="invalid_value")
    return body


def _check_depth(body: dict) -> None:
    """Level by level (a recursive walk is what deep input is meant to break); visits containers only."""
    level: list = [body]
    for _ in range(MAX_DEPTH):
        below: list = []
        for node in level:
            below += [c for c in (node.values() if type(node) is dict else node) if type(c) in _CONTAINERS]
        if not below:
            return
        level = below
    raise _too_deep()


def _too_deep() -> InvalidRequest:
    return InvalidRequest(f"The request body is nested deeper than {MAX_DEPTH} levels of arrays and objects.",
                          code="invalid_value")


_CONTAINERS = (dict, list)


def _lone_surrogate(body: dict) -> str | None:
    """The path (``messages[0].content``) of the first string or key holding a lone surrogate, else None."""
    stack: list[tuple[Any, str]] = [(body, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if not _encodable(node):
                return path
        elif isinstance(node, dict):
            for key, value in node.items():
                child = f"{path}.{key}" if path else str(key)
                if not _encodable(key):
                    return path
                stack.append((value, child))
        elif isinstance(node, list):
            stack.extend((value, f"{path}[{i}]") for i, value in enumerate(node))
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# ---- field checks, with OpenAI's words -----------------------------------------------------------

def kind(value: object) -> str:
    """The JSON type of ``value`` as OpenAI's errors name it ("an integer", "an array", ...)."""
    if isinstance(value, bool):
        return "a boolean"
    return {dict: "an object", list: "an array", str: "a string", int: "an integer", float: "a decimal",
            type(None): "null"}.get(type(value), type(value).__name__)


def _type_error(param: str, expected: str, value: object) -> InvalidRequest:
    return InvalidRequest(f"Invalid type for '{param}': expected {expected}, but got {kind(value)} instead.",
                          param=param, code="invalid_type")


def _missing(param: str) -> InvalidRequest:
    return InvalidRequest(f"Missing required parameter: '{param}'.", param=param, code="missing_required_parameter")


def _invalid_value(param: str, value: object, allowed: tuple[str, ...]) -> InvalidRequest:
    listed = ", ".join(f"'{a}'" for a in allowed[:-1]) + f", and '{allowed[-1]}'" if len(allowed) > 1 \
        else f"'{allowed[0]}'"
    shown = value if isinstance(value, str) else json.dumps(value)
    return InvalidRequest(f"Invalid value: '{str(shown)[:100]}'. Supported values are: {listed}.",
                          param=param, code="invalid_value")


def string(value: object, param: str, *, nonempty: bool = False, max_length: int | None = None) -> str:
    if not isinstance(value, str):
        raise _type_error(param, "a string", value)
    if nonempty and not value:
        raise InvalidRequest(f"Invalid '{param}': empty string. Expected a string with minimum length 1, "
                             "but got an empty string instead.", param=param, code="empty_string")
    if max_length is not None and len(value) > max_length:
        raise InvalidRequest(f"Invalid '{param}': string too long. Expected a string with maximum length "
                             f"{max_length}, but got a string with length {len(value)} instead.",
                             param=param, code="string_above_max_length")
    return value


_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
_TOKEN_ID = re.compile(r"[0-9]+")   # ASCII digits only: str.isdigit() takes "²" and other Unicode digits


def function_name(value: str, param: str) -> str:
    """A function (tool) name as the OpenAI API accepts it, in its own words: letters, digits, ``_``
    and ``-``. Anthropic and Gemini hold tool names to the same characters, so a name that passes here
    reaches every provider (a dotted MCP name such as ``weather.get`` did not)."""
    if not _FUNCTION_NAME.match(value):
        raise InvalidRequest(f"Invalid '{param}': string does not match pattern. Expected a string that matches "
                             "the pattern '^[a-zA-Z0-9_-]+$'.", param=param, code="invalid_value")
    return value


def boolean(value: object, param: str) -> bool:
    if not isinstance(value, bool):
        raise _type_error(param, "a boolean", value)
    return value


def integer(value: object, param: str, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(param, "an integer", value)
    if minimum is not None and value < minimum:
        raise InvalidRequest(f"Invalid '{param}': integer below minimum value. Expected a value >= {minimum}, "
                             f"but got {value} instead.", param=param, code="integer_below_min_value")
    if maximum is not None and value > maximum:
        raise InvalidRequest(f"Invalid '{param}': integer above maximum value. Expected a value <= {maximum}, "
                             f"but got {value} instead.", param=param, code="integer_above_max_value")
    return value


def number(value: object, param: str, minimum: float | None = None, maximum: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _type_error(param, "a decimal", value)
    if minimum is not None and value < minimum:
        raise InvalidRequest(f"Invalid '{param}': decimal below minimum value. Expected a value >= {minimum:g}, "
                             f"but got {value} instead.", param=param, code="decimal_below_min_value")
    if maximum is not None and value > maximum:
        raise InvalidRequest(f"Invalid '{param}': decimal above maximum value. Expected a value <= {maximum:g}, "
                             f"but got {value} instead.", param=param, code="decimal_above_max_value")
    return value


def array(value: object, param: str, *, nonempty: bool = False, max_items: int | None = None) -> list:
    if not isinstance(value, list):
        raise _type_error(param, "an array", value)
    if nonempty and not value:
        raise InvalidRequest(f"Invalid '{param}': empty array. Expected an array with minimum length 1, "
                             "but got an empty array instead.", param=param, code="empty_array")
    if max_items is not None and len(value) > max_items:
        raise InvalidRequest(f"Invalid '{param}': array too long. Expected an array with maximum length "
                             f"{max_items}, but got an array with length {len(value)} instead.",
                             param=param, code="array_above_max_length")
    return value


def obj(value: object, param: str) -> dict:
    if not isinstance(value, dict):
        raise _type_error(param, "an object", value)
    return value


def one_of(value: object, param: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str):
        raise _type_error(param, "a string", value)
    if value not in allowed:
        raise _invalid_value(param, value, allowed)
    return value


def _optional(body: dict, name: str, check, *args, **kwargs) -> None:
    """Check ``body[name]`` when present and not null (OpenAI treats null as absent for optional fields)."""
    value = body.get(name)
    if value is not None:
        check(value, name, *args, **kwargs)


# ---- createChatCompletion ----------------------------------------------------------------------

def model(body: dict) -> str:
    if body.get("model") is None:
        raise InvalidRequest("you must provide a model parameter", param="model", code="missing_required_parameter")
    return string(body["model"], "model", nonempty=True, max_length=256)


def chat(body: dict) -> None:
    """Check an OpenAI chat completions request (``createChatCompletion``) in place; raises InvalidRequest."""
    model(body)
    if body.get("messages") is None:
        raise _missing("messages")
    messages = array(body["messages"], "messages", nonempty=True)
    for i, message in enumerate(messages):
        _message(message, f"messages[{i}]")
    _optional(body, "stream", boolean)
    options = body.get("stream_options")
    if options is not None:
        obj(options, "stream_options")
        _optional_in(options, "stream_options", "include_usage", boolean)
    _optional(body, "temperature", number, 0, 2)
    _optional(body, "top_p", number, 0, 1)
    _optional(body, "presence_penalty", number, -2, 2)
    _optional(body, "frequency_penalty", number, -2, 2)
    _optional(body, "max_tokens", integer, 1, INT32_MAX)
    _optional(body, "max_completion_tokens", integer, 1, INT32_MAX)
    _optional(body, "n", integer, 1, 128)
    _optional(body, "seed", integer, INT64_MIN, INT64_MAX)
    _optional(body, "logprobs", boolean)
    _optional(body, "top_logprobs", integer, 0, 20)
    _optional(body, "parallel_tool_calls", boolean)
    _optional(body, "store", boolean)
    _optional(body, "user", string, max_length=256)
    # createChatCompletion: strings (nullable). OpenAI answers a longer prompt_cache_key with "string too
    # long ... maximum length 64" (as clients report it); safety_identifier's documented maximum is 128.
    # Unchecked, an integer key reached the provider (tryout 9 L5).
    _optional(body, "prompt_cache_key", string, max_length=64)
    _optional(body, "safety_identifier", string, max_length=128)
    _optional(body, "reasoning_effort", string)
    _optional(body, "service_tier", string)
    bias = body.get("logit_bias")
    if bias is not None:
        for token, value in obj(bias, "logit_bias").items():
            # Keys are token ids (createChatCompletion: "maps tokens (specified by their token ID in the
            # tokenizer)"); a word such as "AI" is OpenAI's 400, in its own words as clients report them.
            if not _TOKEN_ID.fullmatch(token):
                raise InvalidRequest(f"Invalid key in 'logit_bias': {token[:100]}. You should only be submitting "
                                     "non-negative integers.", param="logit_bias", code="invalid_value")
            number(value, f"logit_bias.{token}", -100, 100)
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str):
        if not isinstance(stop, list):
            raise _type_error("stop", "a string or an array of strings", stop)
        array(stop, "stop", max_items=4)
        for i, s in enumerate(stop):
            string(s, f"stop[{i}]")
    metadata = body.get("metadata")
    if metadata is not None:
        for key, value in obj(metadata, "metadata").items():
            string(value, f"metadata.{key}", max_length=512)
    modalities = body.get("modalities")
    if modalities is not None:
        for i, m in enumerate(array(modalities, "modalities")):
            one_of(m, f"modalities[{i}]", ("text", "audio"))
    _optional(body, "audio", obj)
    _optional(body, "prediction", obj)
    _optional(body, "web_search_options", obj)
    _response_format(body.get("response_format"))
    tools = body.get("tools")
    if tools is not None:
        # OpenAI refuses an empty list (400 empty_array, "Invalid 'tools': empty array. Expected an
        # array with minimum length 1, ..." as clients report it), though its schema sets no minItems.
        for i, tool in enumerate(array(tools, "tools", nonempty=True, max_items=128)):
            _tool(tool, f"tools[{i}]")
    _tool_choice(body.get("tool_choice"))
    _dependent_fields(body)


def _dependent_fields(body: dict) -> None:
    """Fields OpenAI takes only beside another one, refused for every model with OpenAI's words
    (as users report its 400s): ``stream_options`` without ``stream`` ("The 'stream_options' parameter
    is only allowed when 'stream' is enabled."), ``parallel_tool_calls`` and ``tool_choice`` without
    ``tools`` ("Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are
    specified."). Forwarded, they would succeed on one provider and fail on another."""
    if body.get("stream_options") is not None and body.get("stream") is not True:
        raise InvalidRequest("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                             param="stream_options", code="invalid_value")
    if not body.get("tools"):
        for name in ("parallel_tool_calls", "tool_choice"):
            if body.get(name) is not None:
                raise InvalidRequest(f"Invalid value for '{name}': '{name}' is only allowed when 'tools' are "
                                     "specified.", param=name, code="invalid_value")
    # JSON mode needs the word in the conversation (OpenAI's 400, as users report it word for word).
    if (body.get("response_format") or {}).get("type") == "json_object" and not mentions_json(body["messages"]):
        raise InvalidRequest(JSON_WORD_MISSING, param="messages", code="invalid_value")


JSON_WORD_MISSING = "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'."


def mentions_json(messages: list) -> bool:
    """Whether any message's text (a string or text parts) contains "json", in any case."""
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        parts = [content] if isinstance(content, str) else [
            p.get("text") for p in content if isinstance(p, dict)] if isinstance(content, list) else []
        if any(isinstance(t, str) and "json" in t.lower() for t in parts):
            return True
    return False


_DATA_URL = re.compile(r"^data:([^,;]*)((?:;[^,;]*)*?);base64,", re.IGNORECASE)
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/=_\-\s]")


def data_url_bytes(url: str) -> bytes | None:
    """The bytes a ``data:...;base64,`` URL carries; None for another URL. Raises ValueError when
    the data is not base64 (standard or URL-safe alphabet, padding optional, whitespace ignored: what
    proto3 JSON bytes, and so Gemini, accept)."""
    head = _DATA_URL.match(url)
    if not head:
        return None
    data = url[head.end():]
    if _NOT_BASE64.search(data):
        raise ValueError("not base64")
    data = re.sub(r"\s+", "", data).rstrip("=").replace("-", "+").replace("_", "/")
    if len(data) % 4 == 1:
        raise ValueError("not base64")
    try:
        return b64decode(data + "=" * (-len(data) % 4), validate=True)
    except binascii.Error:
        raise ValueError("not base64") from None


def _image_data(url: str, param: str) -> None:
    """An image data URL must carry base64 data: OpenAI answers "Invalid base64 image_url.", Gemini
    "Base64 decoding failed"; refused here once, naming the field, for every model."""
    try:
        data = data_url_bytes(url)
    except ValueError:
        raise InvalidRequest(f"Invalid base64 image_url: '{param}' does not decode as base64.",
                             param=param, code="invalid_value") from None
    if data is not None and not data:
        raise InvalidRequest(f"Invalid '{param}': expected a base64-encoded data URL with an image MIME type, but "
                             "got empty base64-encoded bytes.", param=param, code="invalid_value")


def _optional_in(parent: dict, where: str, name: str, check, *args) -> None:
    value = parent.get(name)
    if value is not None:
        check(value, f"{where}.{name}", *args)


def _message(message: object, where: str) -> None:
    if not isinstance(message, dict):
        raise _type_error(where, "an object", message)
    if "role" not in message:
        raise _missing(f"{where}.role")
    role = one_of(message["role"], f"{where}.role", ROLES)
    _optional_in(message, where, "name", string)
    content = message.get("content")
    if content is None:
        # An assistant turn may carry only tool calls (or a refusal); every other turn needs content.
        if role != "assistant" and not (role == "function" and "content" in message):
            raise _missing(f"{where}.content")
    elif not isinstance(content, str):
        if not isinstance(content, list):
            raise _type_error(f"{where}.content", "one of a string or array of objects", content)
        # Every role's content array has minItems 1 in OpenAI's schema; the API answers 400 empty_array.
        array(content, f"{where}.content", nonempty=True)
        for j, part in enumerate(content):
            _content_part(part, f"{where}.content[{j}]")
            _part_for_role(part["type"], role, where, j)
    if role == "tool":
        if message.get("tool_call_id") is None:
            raise _missing(f"{where}.tool_call_id")
        string(message["tool_call_id"], f"{where}.tool_call_id")
    if role == "assistant":
        _optional_in(message, where, "refusal", string)
        calls = message.get("tool_calls")
        if calls is not None:
            # Empty is OpenAI's 400 too ("Invalid 'messages[1].tool_calls': empty array ...", openai-node#1341).
            for j, call in enumerate(array(calls, f"{where}.tool_calls", nonempty=True)):
                _tool_call(call, f"{where}.tool_calls[{j}]")
        call = message.get("function_call")
        if call is not None:
            obj(call, f"{where}.function_call")
            string(call.get("name"), f"{where}.function_call.name")
            string(call.get("arguments"), f"{where}.function_call.arguments")


_PARTS = ("text", "image_url", "input_audio", "file", "refusal")
# The part types each role's content array takes (createChatCompletion's message schemas: "For
# system messages, only type `text` is supported", likewise developer and tool; assistant text or
# refusal; user text, image, audio, file). The legacy function role takes a string only.
ROLE_PARTS = {"system": ("text",), "developer": ("text",), "tool": ("text",), "assistant": ("text", "refusal"),
              "user": ("text", "image_url", "input_audio", "file")}


def _part_for_role(kind_: str, role: str, where: str, j: int) -> None:
    """A part the role does not take is OpenAI's 400 for every model: one rule, so a pinned Claude or
    Gemini and a routed ``auto`` answer alike (they differed: tryout 6 M4). An image outside a user
    message gets OpenAI's own words (openai/openai-node#1030 for assistant, OpenHands/OpenHands#7700
    for tool); other kinds the schema's enum wording, naming the part's type."""
    allowed = ROLE_PARTS.get(role)
    if allowed is None or kind_ in allowed:
        return
    if kind_ == "image_url":
        raise InvalidRequest(f"Invalid '{where}'. Image URLs are only allowed for messages with role 'user', but "
                             f"this message with role '{role}' contains an image URL.", param=where,
                             code="invalid_value")
    raise _invalid_value(f"{where}.content[{j}].type", kind_, allowed)


def _content_part(part: object, where: str) -> None:
    if not isinstance(part, dict):
        raise _type_error(where, "an object", part)
    if "type" not in part:
        raise _missing(f"{where}.type")
    kind_ = one_of(part["type"], f"{where}.type", _PARTS)
    if kind_ == "text":
        string(part.get("text"), f"{where}.text")
    elif kind_ == "refusal":
        string(part.get("refusal"), f"{where}.refusal")
    elif kind_ == "image_url":
        image = part.get("image_url")
        if image is None:
            raise _missing(f"{where}.image_url")
        image = obj(image, f"{where}.image_url")
        if image.get("url") is None:
            raise _missing(f"{where}.image_url.url")
        _image_data(string(image["url"], f"{where}.image_url.url"), f"{where}.image_url.url")
        if image.get("detail") is not None:
            one_of(image["detail"], f"{where}.image_url.detail", ("auto", "low", "high"))
    elif kind_ == "input_audio":
        audio = obj(part.get("input_audio"), f"{where}.input_audio")
        string(audio.get("data"), f"{where}.input_audio.data")
        one_of(audio.get("format"), f"{where}.input_audio.format", ("wav", "mp3"))
    else:  # file
        file = obj(part.get("file"), f"{where}.file")
        for name in ("file_data", "file_id", "filename"):
            _optional_in(file, f"{where}.file", name, string)


def _tool_call(call: object, where: str) -> None:
    call = obj(call, where)
    if call.get("id") is None:
        raise _missing(f"{where}.id")
    string(call["id"], f"{where}.id")
    if call.get("type") is None:
        raise _missing(f"{where}.type")
    kind_ = one_of(call["type"], f"{where}.type", ("function", "custom"))
    if kind_ == "custom":
        custom = obj(call.get("custom"), f"{where}.custom")
        string(custom.get("name"), f"{where}.custom.name")
        string(custom.get("input"), f"{where}.custom.input")
        return
    if call.get("function") is None:
        raise _missing(f"{where}.function")
    function = obj(call["function"], f"{where}.function")
    if function.get("name") is None:
        raise _missing(f"{where}.function.name")
    function_name(string(function["name"], f"{where}.function.name"), f"{where}.function.name")
    if function.get("arguments") is None:
        raise _missing(f"{where}.function.arguments")
    string(function["arguments"], f"{where}.function.arguments")


def _tool(tool: object, where: str) -> None:
    tool = obj(tool, where)
    if tool.get("type") is None:
        raise _missing(f"{where}.type")
    kind_ = one_of(tool["type"], f"{where}.type", ("function", "custom"))
    if kind_ == "custom":
        custom = obj(tool.get("custom"), f"{where}.custom")
        string(custom.get("name"), f"{where}.custom.name", nonempty=True)
        return
    if tool.get("function") is None:
        raise _missing(f"{where}.function")
    function = obj(tool["function"], f"{where}.function")
    if function.get("name") is None:
        raise _missing(f"{where}.function.name")
    function_name(string(function["name"], f"{where}.function.name", nonempty=True, max_length=64),
                  f"{where}.function.name")
    _optional_in(function, f"{where}.function", "description", string)
    _optional_in(function, f"{where}.function", "parameters", obj)
    _optional_in(function, f"{where}.function", "strict", boolean)


def _tool_choice(choice: object) -> None:
    if choice is None:
        return
    if isinstance(choice, str):
        one_of(choice, "tool_choice", ("none", "auto", "required"))
        return
    choice = obj(choice, "tool_choice")
    if choice.get("type") is None:
        raise _missing("tool_choice.type")
    kind_ = one_of(choice["type"], "tool_choice.type", ("function", "allowed_tools", "custom"))
    if kind_ == "function":
        function = obj(choice.get("function"), "tool_choice.function")
        string(function.get("name"), "tool_choice.function.name", nonempty=True)
    elif kind_ == "custom":
        custom = obj(choice.get("custom"), "tool_choice.custom")
        string(custom.get("name"), "tool_choice.custom.name", nonempty=True)
    else:
        allowed = obj(choice.get("allowed_tools"), "tool_choice.allowed_tools")
        one_of(allowed.get("mode"), "tool_choice.allowed_tools.mode", ("auto", "required"))
        for i, tool in enumerate(array(allowed.get("tools"), "tool_choice.allowed_tools.tools")):
            obj(tool, f"tool_choice.allowed_tools.tools[{i}]")


def _response_format(fmt: object) -> None:
    if fmt is None:
        return
    fmt = obj(fmt, "response_format")
    if fmt.get("type") is None:
        raise _missing("response_format.type")
    kind_ = one_of(fmt["type"], "response_format.type", ("text", "json_object", "json_schema"))
    if kind_ == "json_schema":
        if fmt.get("json_schema") is None:
            raise _missing("response_format.json_schema")
        spec = obj(fmt["json_schema"], "response_format.json_schema")
        # "Must be a-z, A-Z, 0-9, or contain underscores and dashes, with a maximum length of 64" (the
        # schema's words, as for a function name): "my schema" was forwarded and refused live.
        function_name(string(spec.get("name"), "response_format.json_schema.name", nonempty=True, max_length=64),
                      "response_format.json_schema.name")
        _optional_in(spec, "response_format.json_schema", "schema", obj)
        _optional_in(spec, "response_format.json_schema", "strict", boolean)
        _optional_in(spec, "response_format.json_schema", "description", string)


# ---- createEmbedding -----------------------------------------------------------------------------

def embeddings(body: dict) -> None:
    """Check an OpenAI embeddings request (``createEmbedding``); raises InvalidRequest.

    ``input`` is a string, an array of strings, an array of token ids, or an
    array of token-id arrays (at most 2048 entries, none empty)."""
    model(body)
    if body.get("input") is None:
        raise _missing("input")
    value = body["input"]
    if not isinstance(value, str):
        if not isinstance(value, list):
            raise _type_error("input", "one of a string, array of strings, array of integers, or array of "
                                       "arrays of integers", value)
        array(value, "input", nonempty=True, max_items=2048)
        if all(isinstance(v, str) for v in value):
            pass
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            for i, v in enumerate(value):
                integer(v, f"input[{i}]", 0, INT32_MAX)
        elif all(isinstance(v, list) for v in value):
            for i, tokens in enumerate(value):
                for j, v in enumerate(array(tokens, f"input[{i}]", nonempty=True)):
                    integer(v, f"input[{i}][{j}]", 0, INT32_MAX)
        else:
            first = value[0]
            bad = 0 if not isinstance(first, (str, int, list)) or isinstance(first, bool) else \
                next(i for i, v in enumerate(value) if type(v) is not type(first))
            raise _type_error(f"input[{bad}]", f"{kind(value[0])} like input[0]", value[bad])
    if body.get("encoding_format") is not None:
        one_of(body["encoding_format"], "encoding_format", ("float", "base64"))
    _optional(body, "dimensions", integer, 1, 65536)
    _optional(body, "user", string, max_length=256)


def request(endpoint: str, raw: bytes) -> dict:
    """Parse and check one request body for ``endpoint`` ("chat" or "embeddings"); raises InvalidRequest."""
    body = parse(raw)
    (chat if endpoint == "chat" else embeddings)(body)
    return body
