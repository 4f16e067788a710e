"""The router's token estimate reads CJK text near its real token count, through the real gateway and the SDK.

Characters / 4 read Chinese about 2.7x low: a Chinese prompt over a model's window was estimated far
under it, so the gateway never refused or re-routed it, and the provider's 400 was the first to know.
With the estimate weighing a CJK character as 0.7 token (extproc/cost.py), the gateway decides itself:
- pinned to a 128K-window OpenAI model: its own 400 ``context_length_exceeded``, no provider call;
- ``auto``: a model whose window holds the prompt, never a 128K one;
- an embeddings input over text-embedding-3-small's window: counted (its estimate is now near the window)
  and refused by the gateway, naming the input, no provider call.
"""

from __future__ import annotations

import openai
import pytest

from extproc import tokens
from tests.multilingual import SAMPLES

from .conftest import MODELS, shipped_routing, upstream_requests

WINDOW = 128_000   # gpt-4o-mini's context_window in the shipped config


@pytest.fixture(scope="module")
def chinese_over_window() -> str:
    """Chinese prose whose o200k count is over 128K tokens while chars/4 reads it under half of that."""
    text = "\n".join(SAMPLES["zh"] * 1000)
    counted = tokens.count(text)
    assert counted > WINDOW > 2 * (len(text) // 4), (counted, len(text))
    return text


def test_a_pinned_chinese_prompt_over_the_window_is_the_gateways_own_400(gateway, client, chinese_over_window):
    assert shipped_routing()["models"][MODELS["openai"]]["context_window"] == WINDOW
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODELS["openai"],
                                       messages=[{"role": "user", "content": chinese_over_window}])
    err = info.value.body
    assert (err["code"], err["param"], err["type"]) == ("context_length_exceeded", "messages", "invalid_request_error")
    assert err["message"].startswith(f"This model's maximum context length is {WINDOW} tokens. However, your "
                                     "messages resulted in ")
    estimated = int(err["message"].split("resulted in ")[1].split(" tokens")[0])
    assert 0.75 <= estimated / tokens.count(chinese_over_window) <= 1.35, estimated
    assert upstream_requests(gateway, "openai") == []


def test_an_auto_chinese_prompt_over_128k_goes_to_a_model_whose_window_holds_it(gateway, client, chinese_over_window):
    counted = tokens.count(chinese_over_window)
    models = shipped_routing()["models"]
    answer = client.chat.completions.create(model="auto", max_tokens=16,
                                            messages=[{"role": "user", "content": chinese_over_window}])
    assert answer.choices[0].message.content
    assert models[answer.model]["context_window"] >= counted + 16, answer.model
    for provider in ("openai", "azure_openai", "vllm"):   # 128K-131K windows: none holds the prompt
        assert upstream_requests(gateway, provider) == [], provider


def test_a_chinese_embeddings_input_over_the_window_is_refused_by_the_gateway(gateway, client):
    text = "\n".join(SAMPLES["zh"] * 75)          # ~9,900 o200k tokens; chars/4 read ~3,700
    window = shipped_routing()["models"]["text-embedding-3-small"]["context_window"]
    assert tokens.count(text) > window > 0.75 * window > len(text) // 4
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="text-embedding-3-small", input=["a short input", text])
    err = info.value.body
    assert (err["code"], err["param"]) == ("context_length_exceeded", "input[1]"), err
    assert upstream_requests(gateway, "openai") == []
