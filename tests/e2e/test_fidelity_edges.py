"""Request shapes the real APIs refuse (issue 10, tryout 6 M4), through Envoy and the gateway with the
official SDKs: the client gets the real API's 400 from the gateway, and no provider is asked.

Before the fix these were forwarded: the strict simulators now refuse them as the real APIs do, so a
forwarded request would show up in the simulator's record (and an OpenAI 400's ``empty_array`` code
would reach the client as ``upstream_invalid_request``); a request planned to another provider got a 200.
Unit tests with the sources: tests/unit/test_fidelity_edges.py.
"""

from __future__ import annotations

import anthropic
import openai
import pytest

from .conftest import CLIENT_KEY, MODELS, upstream_requests

PIXEL = "data:image/png;base64,iVBORw0KGgo="


def nobody_asked(gateway) -> bool:
    return all(upstream_requests(gateway, provider) == [] for provider in MODELS)


# ---- OpenAI chat: what OpenAI refuses for every model ------------------------------------------------

def test_an_empty_tools_list_is_openais_400_for_every_model(gateway, client):
    for model in (MODELS["openai"], "auto", MODELS["anthropic"], MODELS["gemini"]):
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model=model, tools=[], messages=[{"role": "user", "content": "hi"}])
        assert (info.value.code, info.value.param) == ("empty_array", "tools"), model
        assert info.value.body["message"].startswith("Invalid 'tools': empty array.")
    assert nobody_asked(gateway)


def test_an_image_outside_a_user_message_is_one_400_pinned_or_routed(gateway, client):
    """gpt-4o-mini and ``auto`` forwarded these; a pinned Claude (system image) and Gemini answered
    with translator words of their own. Now one answer, OpenAI's, whatever the model."""
    image = {"type": "image_url", "image_url": {"url": PIXEL}}
    conversations = {
        "assistant": [{"role": "user", "content": "Draw a cat"}, {"role": "assistant", "content": [image]},
                      {"role": "user", "content": "Describe it"}],
        "system": [{"role": "system", "content": [image]}, {"role": "user", "content": "Describe it"}],
    }
    for role, messages in conversations.items():
        at = 1 if role == "assistant" else 0
        for model in (MODELS["openai"], "auto", MODELS["anthropic"], MODELS["gemini"]):
            with pytest.raises(openai.BadRequestError) as info:
                client.chat.completions.create(model=model, messages=messages)
            assert info.value.param == f"messages[{at}]" and info.value.code == "invalid_value", (role, model)
            assert info.value.body["message"] == (
                f"Invalid 'messages[{at}]'. Image URLs are only allowed for messages with role 'user', but this "
                f"message with role '{role}' contains an image URL.")
    assert nobody_asked(gateway)
    # An image in a user message still reaches the provider.
    answer = client.chat.completions.create(model=MODELS["openai"], messages=[
        {"role": "user", "content": [{"type": "text", "text": "Describe it"}, image]}])
    assert answer.choices[0].message.content
    assert len(upstream_requests(gateway, "openai")) == 1


def test_a_json_schema_name_outside_openais_pattern_is_its_400(gateway, client):
    for name in ("my schema", "x" * 65):
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(
                model=MODELS["openai"], messages=[{"role": "user", "content": "A city as JSON"}],
                response_format={"type": "json_schema", "json_schema": {
                    "name": name, "schema": {"type": "object", "properties": {"city": {"type": "string"}}}}})
        assert info.value.param == "response_format.json_schema.name"
        assert info.value.code == ("invalid_value" if " " in name else "string_above_max_length")
    assert nobody_asked(gateway)


# ---- Anthropic Messages: extended thinking's and prompt caching's limits --------------------------

@pytest.fixture
def claude(gateway) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=gateway.base_url.removesuffix("/v1"), api_key=CLIENT_KEY, max_retries=0,
                               timeout=20)


THINKING = {"type": "enabled", "budget_tokens": 1024}
TOOL = {"name": "get_weather", "description": "Weather now.", "input_schema": {"type": "object"}}


def cached(count: int, **control) -> list[dict]:
    return [{"type": "text", "text": f"Rule {i}.", "cache_control": {"type": "ephemeral", **control}}
            for i in range(count)]


# The anthropic SDK 2.x has no sampling arguments any more (newer models refuse them); older SDKs and
# other clients still send them, as extra_body does here.
@pytest.mark.parametrize("fields, message", [
    ({"thinking": THINKING, "extra_body": {"temperature": 0.5}},
     "`temperature` may only be set to 1 when thinking is enabled."),
    ({"thinking": THINKING, "extra_body": {"top_k": 5}}, "`top_k` must be unset when thinking is enabled."),
    ({"thinking": THINKING, "tools": [TOOL], "tool_choice": {"type": "any"}},
     "Thinking may not be enabled when tool_choice forces tool use."),
    ({"system": cached(5)}, "A maximum of 4 blocks with cache_control may be provided. Found 5."),
    ({"system": cached(1, ttl="2h")}, "system.0.cache_control.ephemeral.ttl: Input should be '5m' or '1h'"),
])
def test_the_messages_api_refusals_come_from_the_gateway_for_every_model(gateway, claude, fields, message):
    # claude-haiku-4-5 was passed through (Anthropic's 400 live, a 200 offline); gpt-4o-mini dropped the
    # fields and answered 200.
    for model in (MODELS["anthropic"], MODELS["openai"]):
        with pytest.raises(anthropic.BadRequestError) as info:
            claude.messages.create(model=model, max_tokens=2000, messages=[{"role": "user", "content": "hi"}],
                                   **fields)
        assert info.value.body["type"] == "error"
        assert info.value.body["error"] == {"type": "invalid_request_error", "message": message}, model
    assert nobody_asked(gateway)


@pytest.mark.parametrize("fields, message", [
    ({"extra_body": {"temperature": 0.5}}, "`temperature` may only be set to 1 when thinking is enabled."),
    ({"tools": [TOOL], "tool_choice": {"type": "tool", "name": "get_weather"}},
     "Thinking may not be enabled when tool_choice forces tool use."),
])
def test_adaptive_thinking_has_the_same_refusals_for_every_model(gateway, claude, fields, message):
    # Adaptive thinking (Claude 4.6 and later) was not checked: Sonnet 4.6 got Anthropic's 400 live (a 200
    # offline) and gpt-4o-mini a 200 (review 7 finding 9).
    for model in ("claude-sonnet-4-6", MODELS["openai"]):
        with pytest.raises(anthropic.BadRequestError) as info:
            claude.messages.create(model=model, max_tokens=2000, messages=[{"role": "user", "content": "hi"}],
                                   thinking={"type": "adaptive"}, **fields)
        assert info.value.body["error"] == {"type": "invalid_request_error", "message": message}, model
    assert nobody_asked(gateway)


def test_thinking_and_four_breakpoints_within_the_limits_still_pass_through(gateway, claude):
    message = claude.messages.create(model=MODELS["anthropic"], max_tokens=2000, thinking=THINKING, extra_body={"temperature": 1},
                                     tools=[TOOL], tool_choice={"type": "auto"}, system=cached(4, ttl="1h"),
                                     messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].type == "thinking"
    (record,) = upstream_requests(gateway, "anthropic")
    assert record["body"]["thinking"] == THINKING and len(record["body"]["system"]) == 4
