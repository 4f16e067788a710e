"""Provider errors through the real Envoy: one situation reads with one OpenAI code, whichever provider
said it, in the provider's own words, without the gateway's account ids.

Each simulator answers in its API's own body (the ``refusal`` fault: the 400 the real API sends when the
prompt is over the window, or its safety system refuses it; ``error_event_after``: the API's own error
event in a stream; ``status`` 429: the rate-limit body that names our organization). The client is the
official openai SDK. This stack never ejects (its health rules are off): mid-stream failures and 429s
here must not leave the session's shared gateway with a provider out.
"""

from __future__ import annotations

import anthropic
import openai
import pytest

from extproc.simulators import anthropic as sim_anthropic, openai as sim_openai

from .conftest import (CLIENT_KEY, MODELS, NO_EJECTION, clear_requests, fault, reset_faults, stack_with,
                       upstream_requests)


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    with stack_with(tmp_path_factory, "provider-errors", {"/health": NO_EJECTION}) as stack:
        yield stack


@pytest.fixture(autouse=True)
def clean(gw):
    reset_faults(gw)
    clear_requests(gw)


@pytest.fixture
def client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=30)


def refused(client, provider: str, stream: bool = False) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model=MODELS[provider], stream=stream,
                                       messages=[{"role": "user", "content": "Summarise our whole history"}])
    return info.value


# How each API says the prompt is over the model's window (the simulators' own words for it).
CONTEXT_WORDS = {"openai": "This model's maximum context length is 128000 tokens",
                 "azure_openai": "This model's maximum context length is 128000 tokens",
                 "vllm": "This model's maximum context length is 131072 tokens",
                 "anthropic": "prompt is too long: 200001 tokens > 200000 maximum",
                 "gemini": "The input token count (1048577) exceeds the maximum number of tokens allowed"}


@pytest.mark.parametrize("stream", [False, True])
def test_a_prompt_over_the_window_is_context_length_exceeded_from_every_provider(gw, client, stream):
    """Five providers, one situation: it read upstream_invalid_request from all five, OpenAI's own
    context_length_exceeded included. The provider answered (not the gateway's own context check)."""
    codes = {}
    for provider in MODELS:
        fault(gw, provider, refusal="context_length", count=1)
        error = refused(client, provider, stream)
        assert isinstance(error, openai.BadRequestError) and error.status_code == 400
        codes[provider] = (error.body["type"], error.code)
        assert set(error.body) == {"message", "type", "param", "code"}
        assert error.body["message"].startswith(CONTEXT_WORDS[provider])       # the provider's own words
        assert len(upstream_requests(gw, provider)) == 1
    assert set(codes.values()) == {("invalid_request_error", "context_length_exceeded")}, codes


def test_a_prompt_the_providers_safety_system_refused_is_invalid_prompt_from_azure_and_openai(gw, client):
    """Azure's content_filter (its own code) and OpenAI's invalid_prompt are one situation."""
    seen = {}
    for provider in ("azure_openai", "openai"):
        fault(gw, provider, refusal="content_filter", count=1)
        error = refused(client, provider)
        seen[provider] = (error.status_code, error.code, error.body["param"])
    assert seen == {"azure_openai": (400, "invalid_prompt", None), "openai": (400, "invalid_prompt", None)}


@pytest.mark.parametrize("include_usage", [True, False])
def test_an_error_event_in_an_openai_compatible_stream_reads_like_anthropics_and_geminis(gw, client, include_usage):
    """OpenAI's, Azure's and vLLM's error events passed through with their own type and code ("server_error"
    and null, "InternalServerError" and 500) after Anthropic's and Gemini's were normalized. With
    include_usage the stream passes byte for byte (the gateway only observes it) but for this event."""
    seen = {}
    for provider in ("openai", "azure_openai", "vllm"):
        fault(gw, provider, error_event_after=3, count=1)
        stream = client.chat.completions.create(
            model=MODELS[provider], stream=True, stream_options={"include_usage": include_usage},
            messages=[{"role": "user", "content": "Count to ten, slowly, one number a line"}])
        chunks = []
        with pytest.raises(openai.APIError) as info:
            for chunk in stream:
                chunks.append(chunk)
        assert chunks and chunks[0].choices[0].delta.role == "assistant"      # the stream before it, as sent
        assert set(info.value.body) == {"message", "type", "param", "code"}
        assert info.value.body["message"]
        seen[provider] = (info.value.body["type"], info.value.body["code"])
    # A provider failure in the middle of the stream: what the same 500 before the stream reads as.
    assert seen == {p: ("upstream_error", "bad_gateway") for p in ("openai", "azure_openai", "vllm")}


@pytest.mark.parametrize("provider, organization", [("openai", sim_openai.SIM_ORGANIZATION),
                                                    ("anthropic", sim_anthropic.SIM_ORGANIZATION)])
def test_a_providers_rate_limit_message_does_not_name_our_organization(gw, client, provider, organization):
    """OpenAI's and Anthropic's 429 name the account's organization; the client is not that account."""
    fault(gw, provider, status=429, count=1)
    error = refused(client, provider)
    assert isinstance(error, openai.RateLimitError) and error.code == "rate_limit_exceeded"
    assert organization not in error.body["message"] and "[redacted]" in error.body["message"]
    assert "rate limit" in error.body["message"].lower()          # the rest is the provider's own words


def test_a_messages_client_does_not_see_our_organization_either(gw):
    """The Messages front door passes Anthropic's own error body on (its shape, its words): less the id."""
    fault(gw, "anthropic", status=429, count=1)
    claude = anthropic.Anthropic(base_url=gw.base_url.removesuffix("/v1"), api_key=CLIENT_KEY, max_retries=0,
                                 timeout=30)
    with pytest.raises(anthropic.RateLimitError) as info:
        claude.messages.create(model=MODELS["anthropic"], max_tokens=10, messages=[{"role": "user", "content": "Hi"}])
    assert info.value.body["type"] == "error" and info.value.body["error"]["type"] == "rate_limit_error"
    message = info.value.body["error"]["message"]
    assert sim_anthropic.SIM_ORGANIZATION not in message and "[redacted]" in message
