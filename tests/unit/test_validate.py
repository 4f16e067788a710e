"""The OpenAI request validator (extproc/validate.py), field by field, and its promise to the translators:
what it accepts, every translator takes without a TypeError/KeyError (only GatewayErrors)."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc import validate
from extproc.errors import GatewayError, InvalidRequest
from extproc.providers import Target, chat_translator, embeddings_translator
from tests.strategies import chat_bodies, json_value, shaped, well_typed_chat

USER = [{"role": "user", "content": "hi"}]


def chat(**fields) -> dict:
    return {"model": "gpt-4o-mini", "messages": USER, **fields}


def rejected(body: dict, endpoint: str = "chat") -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        validate.request(endpoint, json.dumps(body).encode())
    assert info.value.status == 400
    return info.value


# ---- parsing -----------------------------------------------------------------------------------

@pytest.mark.parametrize("raw,fragment", [
    (b"\xff{}", "UTF-8"),
    (b"{", "could not parse the JSON"),
    (b"[1]", "JSON object"),
    (b'{"temperature": NaN}', "NaN"),
    (b'{"temperature": Infinity}', "Infinity"),
    (b'{"temperature": -Infinity}', "Infinity"),
    (b'{"temperature": 1e999}', "out of range"),
    (b'{"max_tokens": ' + b"9" * 4300 + b"}", "too large"),
    (b'{"max_tokens": -' + b"9" * 25 + b"}", "too large"),
    (b'{"a": ' + b"[" * 1000 + b"]" * 1000 + b"}", "nested deeper"),
    (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested deeper"),   # past the C scanner's own guard
])
def test_parse_refuses_what_json_does_not_allow(raw, fragment):
    with pytest.raises(InvalidRequest) as info:
        validate.parse(raw)
    assert fragment in info.value.message


def test_depth_limit_is_exact():
    def nested(depth: int) -> bytes:    # the body object itself is level 1
        return b'{"a": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
    assert validate.parse(nested(validate.MAX_DEPTH)) == {"a": json.loads(b"[" * 31 + b"]" * 31)}
    with pytest.raises(InvalidRequest):
        validate.parse(nested(validate.MAX_DEPTH + 1))


@pytest.mark.parametrize("raw,param", [
    (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "a\\ud800b"}]}', "messages[0].content"),
    (b'{"model": "\\udfff"}', "model"),
    (b'{"input": ["ok", "\\uDBFF"]}', "input[1]"),
    (b'{"request_id": "\\ud800", "score": 1}', "request_id"),
    (b'{"metadata": {"\\ud800": "x"}}', "metadata"),
])
def test_lone_surrogates_are_named(raw, param):
    with pytest.raises(InvalidRequest) as info:
        validate.parse(raw)
    assert info.value.param == param and "surrogate" in info.value.message


def test_a_surrogate_pair_is_fine():
    assert validate.parse(b'{"content": "\\ud83d\\ude00"}') == {"content": "\U0001F600"}


def test_integers_up_to_int64_parse():
    assert validate.parse(b'{"seed": -9223372036854775808}')["seed"] == -2**63


# ---- chat, field by field --------------------------------------------------------------------

@pytest.mark.parametrize("fields,param,code", [
    ({"model": None}, "model", "missing_required_parameter"),
    ({"model": 7}, "model", "invalid_type"),
    ({"model": ""}, "model", "empty_string"),
    ({"messages": None}, "messages", "missing_required_parameter"),
    ({"messages": "hi"}, "messages", "invalid_type"),
    ({"messages": []}, "messages", "empty_array"),
    ({"messages": ["hi"]}, "messages[0]", "invalid_type"),
    ({"messages": [{"content": "x"}]}, "messages[0].role", "missing_required_parameter"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role", "invalid_value"),
    ({"messages": [{"role": 1, "content": "x"}]}, "messages[0].role", "invalid_type"),
    ({"messages": [{"role": "user"}]}, "messages[0].content", "missing_required_parameter"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content", "invalid_type"),
    ({"messages": [{"role": "user", "content": [1]}]}, "messages[0].content[0]", "invalid_type"),
    ({"messages": [{"role": "user", "content": []}]}, "messages[0].content", "empty_array"),
    ({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": [], "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]},
     "messages[1].content", "empty_array"),
    ({"messages": [{"role": "user", "content": [{"text": "x"}]}]}, "messages[0].content[0].type",
     "missing_required_parameter"),
    ({"messages": [{"role": "user", "content": [{"type": "video"}]}]}, "messages[0].content[0].type",
     "invalid_value"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]}, "messages[0].content[0].text",
     "invalid_type"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
     "messages[0].content[0].image_url.url", "missing_required_parameter"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": 1}}]}]},
     "messages[0].content[0].image_url.url", "invalid_type"),
    ({"messages": [{"role": "user", "content": [{"type": "file", "file": "x"}]}]},
     "messages[0].content[0].file", "invalid_type"),
    ({"messages": [{"role": "user", "content": "x", "name": 3}]}, "messages[0].name", "invalid_type"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id", "missing_required_parameter"),
    ({"messages": [{"role": "tool", "content": "x", "tool_call_id": 9}]}, "messages[0].tool_call_id",
     "invalid_type"),
    ({"messages": [{"role": "assistant", "tool_calls": "x"}]}, "messages[0].tool_calls", "invalid_type"),
    ({"messages": [{"role": "assistant", "tool_calls": [1]}]}, "messages[0].tool_calls[0]", "invalid_type"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"type": "function"}]}]}, "messages[0].tool_calls[0].id",
     "missing_required_parameter"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function"}]}]},
     "messages[0].tool_calls[0].function", "missing_required_parameter"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": []}]}]},
     "messages[0].tool_calls[0].function", "invalid_type"),
    ({"messages": [{"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]}]},
     "messages[0].tool_calls[0].function.arguments", "invalid_type"),
    ({"messages": [{"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"arguments": "{}"}}]}]},
     "messages[0].tool_calls[0].function.name", "missing_required_parameter"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "web", "function": {}}]}]},
     "messages[0].tool_calls[0].type", "invalid_value"),
    ({"stream": "yes"}, "stream", "invalid_type"),
    ({"stream_options": []}, "stream_options", "invalid_type"),
    ({"stream_options": {"include_usage": 1}}, "stream_options.include_usage", "invalid_type"),
    ({"temperature": "hot"}, "temperature", "invalid_type"),
    ({"temperature": True}, "temperature", "invalid_type"),
    ({"temperature": 2.5}, "temperature", "decimal_above_max_value"),
    ({"temperature": -1}, "temperature", "decimal_below_min_value"),
    ({"top_p": 1.5}, "top_p", "decimal_above_max_value"),
    ({"presence_penalty": 3}, "presence_penalty", "decimal_above_max_value"),
    ({"frequency_penalty": -3}, "frequency_penalty", "decimal_below_min_value"),
    ({"max_tokens": 1.5}, "max_tokens", "invalid_type"),
    ({"max_tokens": 0}, "max_tokens", "integer_below_min_value"),
    ({"max_tokens": 2**31}, "max_tokens", "integer_above_max_value"),
    ({"max_tokens": 10**19}, "max_tokens", "integer_above_max_value"),
    ({"max_completion_tokens": -5}, "max_completion_tokens", "integer_below_min_value"),
    ({"n": 0}, "n", "integer_below_min_value"),
    ({"n": True}, "n", "invalid_type"),
    ({"n": 129}, "n", "integer_above_max_value"),
    ({"seed": 2**63}, "seed", "integer_above_max_value"),
    ({"logprobs": "yes"}, "logprobs", "invalid_type"),
    ({"top_logprobs": 21}, "top_logprobs", "integer_above_max_value"),
    ({"logit_bias": {"50256": 101}}, "logit_bias.50256", "decimal_above_max_value"),
    ({"logit_bias": [1]}, "logit_bias", "invalid_type"),
    ({"logit_bias": {"AI": 10}}, "logit_bias", "invalid_value"),     # a word, not a token id: OpenAI's 400
    ({"logit_bias": {"-1": 10}}, "logit_bias", "invalid_value"),
    ({"logit_bias": {"\u00b2": 10}}, "logit_bias", "invalid_value"),   # a Unicode digit str.isdigit() takes
    ({"stop": 4}, "stop", "invalid_type"),
    ({"stop": ["a", 1]}, "stop[1]", "invalid_type"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "array_above_max_length"),
    ({"user": 42}, "user", "invalid_type"),
    ({"prompt_cache_key": 123}, "prompt_cache_key", "invalid_type"),
    ({"prompt_cache_key": ["k"]}, "prompt_cache_key", "invalid_type"),
    ({"prompt_cache_key": "k" * 65}, "prompt_cache_key", "string_above_max_length"),
    ({"safety_identifier": 7}, "safety_identifier", "invalid_type"),
    ({"safety_identifier": "u" * 129}, "safety_identifier", "string_above_max_length"),
    ({"metadata": {"k": 1}}, "metadata.k", "invalid_type"),
    ({"modalities": ["video"]}, "modalities[0]", "invalid_value"),
    ({"response_format": "json"}, "response_format", "invalid_type"),
    ({"response_format": {}}, "response_format.type", "missing_required_parameter"),
    ({"response_format": {"type": "xml"}}, "response_format.type", "invalid_value"),
    ({"response_format": {"type": "json_schema"}}, "response_format.json_schema", "missing_required_parameter"),
    ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": []}}},
     "response_format.json_schema.schema", "invalid_type"),
    ({"tools": {}}, "tools", "invalid_type"),
    ({"tools": [1]}, "tools[0]", "invalid_type"),
    ({"tools": [{}]}, "tools[0].type", "missing_required_parameter"),
    ({"tools": [{"type": "function"}]}, "tools[0].function", "missing_required_parameter"),
    ({"tools": [{"type": "function", "function": "f"}]}, "tools[0].function", "invalid_type"),
    ({"tools": [{"type": "function", "function": {}}]}, "tools[0].function.name", "missing_required_parameter"),
    ({"tools": [{"type": "function", "function": {"name": ""}}]}, "tools[0].function.name", "empty_string"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]},
     "tools[0].function.parameters", "invalid_type"),
    ({"tool_choice": "sometimes"}, "tool_choice", "invalid_value"),
    ({"tool_choice": 1}, "tool_choice", "invalid_type"),
    ({"tool_choice": {"type": "function"}}, "tool_choice.function", "invalid_type"),
    ({"tool_choice": {"type": "function", "function": {"name": 1}}}, "tool_choice.function.name", "invalid_type"),
    ({"parallel_tool_calls": "no"}, "parallel_tool_calls", "invalid_type"),
])
def test_chat_field_checks(fields, param, code):
    error = rejected(chat(**fields))
    assert (error.param, error.code) == (param, code), error.message
    if code != "invalid_value":   # OpenAI's invalid_value message lists the choices; param names the field
        assert param.split(".")[-1].split("[")[0] in error.message, error.message


def test_openai_wording():
    assert rejected(chat(temperature="hot")).message == \
        "Invalid type for 'temperature': expected a decimal, but got a string instead."
    assert rejected(chat(prompt_cache_key=123)).message == \
        "Invalid type for 'prompt_cache_key': expected a string, but got an integer instead."
    assert rejected(chat(n=0)).message == \
        "Invalid 'n': integer below minimum value. Expected a value >= 1, but got 0 instead."
    assert rejected(chat(messages=[])).message == \
        "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead."
    assert rejected(chat(messages=[{"role": "robot", "content": "x"}])).message == (
        "Invalid value: 'robot'. Supported values are: 'system', 'assistant', 'user', 'function', 'tool', "
        "and 'developer'.")


@pytest.mark.parametrize("fields", [
    {},
    {"messages": [{"role": "system", "content": "be brief"}, {"role": "developer", "content": "x"}, *USER]},
    {"messages": [*USER, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "42"}]},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "what is this"},
                                               {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA",
                                                                                   "detail": "low"}}]}]},
    {"stream": True, "stream_options": {"include_usage": True}},
    {"temperature": 0, "top_p": 1, "max_tokens": 1, "max_completion_tokens": 2**31 - 1, "n": 1, "seed": -1,
     "presence_penalty": -2, "frequency_penalty": 2, "logprobs": True, "top_logprobs": 0, "user": "u",
     "stop": "\n", "logit_bias": {"1": -100}, "metadata": {"k": "v"}, "store": False},
    {"temperature": None, "max_tokens": None, "tools": None, "stop": None},   # null means absent
    {"stop": ["a", "b", "c", "d"]},
    {"prompt_cache_key": "k" * 64, "safety_identifier": "u" * 128},
    {"prompt_cache_key": None},
    {"tools": [{"type": "function", "function": {"name": "get_weather", "description": "d",
                                                 "parameters": {"type": "object", "properties": {}},
                                                 "strict": True}}],
     "tool_choice": {"type": "function", "function": {"name": "get_weather"}}, "parallel_tool_calls": False},
    {"tool_choice": "required", "tools": [{"type": "function", "function": {"name": "f"}}]},
    {"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}},
    {"response_format": {"type": "json_object"},
     "messages": [{"role": "system", "content": [{"type": "text", "text": "Answer in JSON."}]},
                  {"role": "user", "content": "hi"}]},
    {"some_future_parameter": {"any": "thing"}},   # unknown fields are the upstream's business
])
def test_valid_chat_requests_pass(fields):
    body = chat(**fields)
    assert validate.request("chat", json.dumps(body).encode()) == body


# ---- embeddings -----------------------------------------------------------------------------------

@pytest.mark.parametrize("fields,param,code", [
    ({"input": None}, "input", "missing_required_parameter"),
    ({"input": 5}, "input", "invalid_type"),
    ({"input": []}, "input", "empty_array"),
    ({"input": ["a", 1]}, "input[1]", "invalid_type"),
    ({"input": [{"text": "a"}]}, "input[0]", "invalid_type"),
    ({"input": [[1, "a"]]}, "input[0][1]", "invalid_type"),
    ({"input": [[]]}, "input[0]", "empty_array"),
    ({"input": [-1]}, "input[0]", "integer_below_min_value"),
    ({"input": ["a"] * 2049}, "input", "array_above_max_length"),
    ({"input": "a", "encoding_format": "hex"}, "encoding_format", "invalid_value"),
    ({"input": "a", "dimensions": 0}, "dimensions", "integer_below_min_value"),
    ({"input": "a", "model": ["m"]}, "model", "invalid_type"),
])
def test_embeddings_field_checks(fields, param, code):
    error = rejected({"model": "text-embedding-3-small", **fields}, "embeddings")
    assert (error.param, error.code) == (param, code), error.message


@pytest.mark.parametrize("value", ["a", ["a", "b"], [1, 2, 3], [[1, 2], [3]]])
def test_valid_embeddings_inputs_pass(value):
    body = {"model": "text-embedding-3-small", "input": value, "encoding_format": "float", "dimensions": 256}
    assert validate.request("embeddings", json.dumps(body).encode()) == body


# ---- the promise to the translators ---------------------------------------------------------------

TARGETS = [Target(model="m", upstream_model="m-up", provider=api, api=api,
                   options={"api_version": "2024-10-21"} if api == "azure_openai" else {})
           for api in ("openai", "azure_openai", "anthropic", "gemini")]



@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(chat_bodies, well_typed_chat))
def test_translators_only_raise_gateway_errors_on_validated_chat(body):
    raw = json.dumps(body).encode()
    try:
        checked = validate.request("chat", raw)
    except InvalidRequest:
        return
    for target in TARGETS:
        try:
            chat_translator(target, created=0, response_id="chatcmpl-x").request(checked)
        except GatewayError as exc:
            assert exc.status in (400, 422), exc
        # Anything else (TypeError, KeyError, AttributeError) fails the test: a 500 in production.


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({"model": st.just("m"), "input": shaped},
                             optional={"encoding_format": shaped, "dimensions": shaped}))
def test_translators_only_raise_gateway_errors_on_validated_embeddings(body):
    try:
        checked = validate.request("embeddings", json.dumps(body).encode())
    except InvalidRequest:
        return
    for target in TARGETS:
        if target.api == "anthropic":
            continue
        try:
            embeddings_translator(target).request(checked)
        except GatewayError as exc:
            assert exc.status in (400, 422), exc


@settings(max_examples=300, deadline=None)
@given(json_value)
def test_parse_accepts_exactly_strict_json_objects(value):
    raw = json.dumps(value).encode()
    if isinstance(value, dict):
        assert validate.parse(raw) == value
    else:
        with pytest.raises(InvalidRequest):
            validate.parse(raw)


@pytest.mark.parametrize("where, body", [
    ("tools[0].function.name", {"tools": [{"type": "function", "function": {"name": "weather.get"}}]}),
    ("messages[1].tool_calls[0].function.name", {"messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                              "function": {"name": "get weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"}]}),
])
def test_function_names_follow_openais_pattern(where, body):
    """A dotted MCP tool name passed the gateway and came back as Anthropic's own 400 (tryout)."""
    from extproc.errors import InvalidRequest
    from extproc.validate import chat

    request = {"model": "m", "messages": [{"role": "user", "content": "hi"}], **body}
    with pytest.raises(InvalidRequest) as info:
        chat(request)
    assert info.value.param == where and info.value.code == "invalid_value"
    assert "does not match pattern" in info.value.message


# ---- fields that depend on another, image data URLs (what OpenAI refuses for every model) ----

@pytest.mark.parametrize("extra, param", [
    ({"stream_options": {"include_usage": True}}, "stream_options"),
    ({"stream": False, "stream_options": {"include_usage": True}}, "stream_options"),
    ({"parallel_tool_calls": False}, "parallel_tool_calls"),
    ({"tools": None, "tool_choice": "none"}, "tool_choice"),   # null is absent; an empty list is its own 400
])
def test_a_field_without_the_one_it_depends_on_is_openais_400(extra, param):
    from extproc import validate
    from extproc.errors import InvalidRequest
    with pytest.raises(InvalidRequest, match="only allowed when") as info:
        validate.chat({"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra})
    assert info.value.param == param and info.value.code == "invalid_value"
    # beside the field it depends on, it is taken
    ok = {"stream": True} if param == "stream_options" else {"tools": [{"type": "function", "function": {"name": "f"}}]}
    validate.chat({"model": "m", "messages": [{"role": "user", "content": "hi"}], **extra, **ok})


@pytest.mark.parametrize("data, ok", [
    ("iVBORw0KGgo=", True), ("iVBORw0KGgo", True), ("iVBO Rw0K\nGgo=", True), ("a-_b", True),
    ("!!!", False), ("abcde", False), ("", False),
])
def test_an_image_data_url_must_carry_base64(data, ok):
    from extproc import validate
    from extproc.errors import InvalidRequest
    body = {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is it?"}, {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}]}]}
    if ok:
        validate.chat(body)
        return
    with pytest.raises(InvalidRequest) as info:
        validate.chat(body)
    assert info.value.param == "messages[0].content[1].image_url.url" and info.value.status == 400
    validate.chat({**body, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]})   # a web URL is not decoded


_CHAT = '{"model": "m", "messages": [{"role": "user", "content": "x"}]'


@pytest.mark.parametrize("raw, code", [
    # not JSON at all: our code (OpenAI answers these with its parse hint and no code)
    (b"", "invalid_json"), (b"{", "invalid_json"), (_CHAT.encode() + b"} xx", "invalid_json"),
    ("\ufeff".encode() + _CHAT.encode() + b"}", "invalid_json"), (b'{"model": "\xff\xfe"}', "invalid_json"),
    # JSON, but not an object
    (b"null", "invalid_type"), (b"[1, 2]", "invalid_type"), (b'"x"', "invalid_type"), (b"1", "invalid_type"),
    # one code per kind, whichever layer finds it
    (b'{"a": ' + b"[" * 33 + b"]" * 33 + b"}", "invalid_value"),
    (b'{"a": ' + b"[" * 1000 + b"]" * 1000 + b"}", "invalid_value"),
    (b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "invalid_value"),
    (b'{"max_tokens": ' + b"9" * 21 + b"}", "integer_above_max_value"),
    (b'{"max_tokens": ' + b"9" * 4300 + b"}", "integer_above_max_value"),
    (b'{"seed": -' + b"9" * 21 + b"}", "integer_below_min_value"),
    (b'{"max_tokens": 1e400}', "decimal_above_max_value"), (b'{"t": -1e400}', "decimal_below_min_value"),
    (b'{"t": NaN}', "invalid_value"), (b'{"t": Infinity}', "invalid_value"), (b'{"t": -Infinity}', "invalid_value"),
])
def test_every_parse_refusal_has_a_code(raw, code):
    with pytest.raises(InvalidRequest) as caught:
        validate.parse(raw)
    assert caught.value.code == code, caught.value.message
    assert json.loads(caught.value.body())["error"]["code"] == code


def test_the_same_kind_gets_the_same_code_at_the_limits():
    """20 digits is a field check's integer_above_max_value; 21 digits the parser's: the same code."""
    twenty = validate.parse(b'{' + _CHAT[1:].encode() + b', "max_tokens": ' + b"9" * 20 + b"}")
    with pytest.raises(InvalidRequest) as field:
        validate.chat(twenty)
    with pytest.raises(InvalidRequest) as parser:
        validate.parse(b'{' + _CHAT[1:].encode() + b', "max_tokens": ' + b"9" * 21 + b"}")
    assert field.value.code == parser.value.code == "integer_above_max_value"


def test_an_invalid_request_without_a_named_code_still_has_one():
    assert json.loads(InvalidRequest("anything").body())["error"]["code"] == "invalid_value"


@pytest.mark.parametrize("messages", [
    [{"role": "user", "content": "List three colours."}],
    [{"role": "user", "content": [{"type": "text", "text": "List three colours."}]}],
])
def test_json_mode_without_the_word_json_is_openais_400(messages):
    """OpenAI refuses JSON mode when no message mentions JSON, for every model; so does the gateway,
    rather than succeed on one provider and fail on another."""
    from extproc.errors import InvalidRequest
    body = {"model": "m", "messages": messages, "response_format": {"type": "json_object"}}
    with pytest.raises(InvalidRequest) as info:
        validate.chat(body)
    assert info.value.param == "messages" and info.value.code == "invalid_value"
    assert "must contain the word 'json' in some form" in info.value.message
    validate.chat({**body, "messages": messages + [{"role": "user", "content": "As Json, please."}]})
