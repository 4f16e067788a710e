"""The catalog update (issue 10, item 4): the ids the configs named before it are retired, and the
simulators answer them as the real APIs do (404 with each API's own error body), so a config or a
client that still names one fails in tests as it would in production.

This file keeps the old ids on purpose (the rename script skips it)."""

import json

import pytest

from extproc import config
from extproc.simulators import anthropic as sim_anthropic
from extproc.simulators import gemini as sim_gemini
from extproc.simulators import openai as sim_openai

RETIRED_ANTHROPIC = ["claude-3-5-haiku-latest", "claude-3-5-haiku-20241022", "claude-sonnet-4-20250514",
                     "claude-3-haiku-20240307", "claude-3-opus-20240229", "claude-sonnet-4-5-20250929"]


@pytest.mark.parametrize("model", RETIRED_ANTHROPIC)
def test_anthropic_answers_a_retired_model_not_found(model):
    body = {"model": model, "max_tokens": 9, "messages": [{"role": "user", "content": "Hi"}]}
    with pytest.raises(sim_anthropic.NotFound, match=f"^model: {model}$"):
        sim_anthropic.validate(body)
    sim_anthropic.validate({**body, "model": "claude-haiku-4-5"})   # the same body on a served model


def test_gemini_answers_a_shut_down_model_not_found():
    with pytest.raises(sim_gemini.NotFound, match="models/gemini-2.0-flash is not found for API version v1beta"):
        sim_gemini.check_model("gemini-2.0-flash", "generateContent")
    sim_gemini.check_model("gemini-3.5-flash-lite", "generateContent")


@pytest.mark.parametrize("model", ["gpt-3.5-turbo", "gpt-4", "gpt-4-turbo", "gpt-4o-2024-05-13", "o1", "o3-mini",
                                   "o4-mini-2025-04-16", "gpt-4.1-nano"])
def test_openai_no_longer_serves_the_shut_down_models(model):
    assert not sim_openai.serves("openai", model)
    assert sim_openai.serves("openai", "gpt-4o-mini") and sim_openai.serves("vllm", model)


@pytest.mark.parametrize("path", ["config/routing.yaml", "k8s/base/routing.yaml", "bench/routing.yaml"])
def test_no_shipped_config_names_a_retired_id(path):
    from pathlib import Path
    text = (Path(__file__).resolve().parents[2] / path).read_text()
    for old in ["claude-3-5-haiku", "claude-sonnet-4:", "claude-sonnet-4]", "claude-sonnet-4-2025", "gemini-2.0"]:
        assert old not in text, old


def test_the_seed_ids_reach_served_models():
    """A seed document (routing rules only) keeps its four well-known names; each reaches a model the
    API still serves, at that model's price."""
    cfg = config.parse(json.loads('{"routing_rules": {"simple_queries": {"primary": "gpt-3.5-turbo", '
                                  '"fallback": "claude-haiku"}, "complex_reasoning": {"primary": "gpt-4", '
                                  '"fallback": "claude-opus"}}}'))
    upstream = {m: cfg.models[m].upstream_model for m in ("gpt-3.5-turbo", "gpt-4", "claude-haiku", "claude-opus")}
    assert upstream == {"gpt-3.5-turbo": "gpt-4o-mini", "gpt-4": "gpt-4o", "claude-haiku": "claude-haiku-5-5",
                        "claude-opus": "claude-opus-5-5"}
    assert cfg.models["claude-opus"].price.input == 4.00 and cfg.models["gpt-4"].price.output == 10.00


# -- a rule of the models the catalog now names: Claude 4.6 and later refuse a prefill -------------

PREFILL = [{"role": "user", "content": "Name a fruit"}, {"role": "assistant", "content": "The fruit is"}]


@pytest.mark.parametrize("model", ["claude-sonnet-4-6", "claude-opus-4-6", "claude-opus-4-8"])
def test_claude_4_6_and_later_refuse_a_prefill_as_anthropic_does(model):
    body = {"model": model, "max_tokens": 9, "messages": [{"role": "user", "content": "Name a fruit"}]}
    sim_anthropic.validate(body)
    body["messages"].append({"role": "assistant", "content": [{"type": "text", "text": "The fruit is"}]})
    with pytest.raises(sim_anthropic.BadRequest, match="does not support assistant message prefill"):
        sim_anthropic.validate(body)
    sim_anthropic.validate({**body, "model": "claude-haiku-4-5"})   # Haiku 4.5 still continues a prefill


def test_the_translator_leaves_a_prefill_to_a_model_that_takes_one():
    from extproc.errors import UnsupportedFeature
    from extproc.providers import unable
    from extproc.providers.base import Target
    from extproc.providers.openai_anthropic import AnthropicChatTranslator

    sonnet = Target(model="s", upstream_model="claude-sonnet-4-6", provider="anthropic", api="anthropic")
    haiku = Target(model="h", upstream_model="claude-haiku-4-5", provider="anthropic", api="anthropic")
    with pytest.raises(UnsupportedFeature, match="prefill"):
        AnthropicChatTranslator(sonnet, created=1, response_id="x").request({"messages": PREFILL})
    assert "prefill" in unable(sonnet, {"model": "s", "messages": PREFILL}, endpoint="chat")
    assert unable(haiku, {"model": "h", "messages": PREFILL}, endpoint="chat") is None
    out = json.loads(AnthropicChatTranslator(haiku, created=1, response_id="x").request({"messages": PREFILL}).body)
    sim_anthropic.validate(out)
    # a conversation that ends with the user (or a tool result) is no prefill
    assert unable(sonnet, {"model": "s", "messages": PREFILL[:1]}, endpoint="chat") is None


# -- the 5.x generation (the seed's claude-haiku / claude-opus): fixed sampling -----------------------

@pytest.mark.parametrize("model", ["claude-haiku-5-5", "claude-sonnet-5-5", "claude-opus-5-5", "claude-opus-4-7"])
@pytest.mark.parametrize("name, value", [("temperature", 0.2), ("top_p", 0.9), ("top_k", 5)])
def test_models_with_fixed_sampling_refuse_sampling_settings_as_anthropic_does(model, name, value):
    body = {"model": model, "max_tokens": 9, "messages": [{"role": "user", "content": "Hi"}]}
    sim_anthropic.validate(body)
    with pytest.raises(sim_anthropic.BadRequest, match=f"^`{name}` is deprecated for this model.$"):
        sim_anthropic.validate({**body, name: value})
    sim_anthropic.validate({**body, "model": "claude-haiku-4-5", name: value})   # Haiku 4.5 takes each


def test_the_translator_leaves_sampling_out_for_models_with_fixed_sampling():
    from extproc.providers.base import Target
    from extproc.providers.openai_anthropic import AnthropicChatTranslator

    haiku_5_5 = Target(model="h", upstream_model="claude-haiku-5-5", provider="anthropic", api="anthropic")
    body = {"messages": [{"role": "user", "content": "Hi"}], "temperature": 0.2, "top_p": 0.9}
    out = json.loads(AnthropicChatTranslator(haiku_5_5, created=1, response_id="x").request(body).body)
    assert "temperature" not in out and "top_p" not in out
    sim_anthropic.validate(out)
    # temperature 1.5 is outside Anthropic's range, but this model takes none: left out as well
    out = json.loads(AnthropicChatTranslator(haiku_5_5, created=1, response_id="x").request(
        {**body, "temperature": 1.5}).body)
    assert "temperature" not in out
    # structured outputs: the 5.x models have output_config.format
    strict = {"type": "json_schema", "json_schema": {"name": "x", "strict": True, "schema": {
        "type": "object", "additionalProperties": False, "required": ["a"], "properties": {"a": {"type": "string"}}}}}
    out = json.loads(AnthropicChatTranslator(haiku_5_5, created=1, response_id="x").request(
        {"messages": body["messages"], "response_format": strict}).body)
    assert out["output_config"]["format"]["schema"] == strict["json_schema"]["schema"]
    sim_anthropic.validate(out)
