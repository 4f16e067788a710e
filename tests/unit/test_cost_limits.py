"""Cost estimates, cost caps, budgets and limits count the tokens the provider will count.

- Embeddings: a model's window applies to each input, the sum to the request's cost and rate limits
  (OpenAI's embeddings reference: 8,192 tokens per input, at most 2,048 inputs, 300,000 tokens summed
  over a request; Gemini's embedding models: 2,048 tokens per input).
"""

from __future__ import annotations

import copy

import pytest

from extproc import errors
from extproc.config import parse
from extproc.cost import input_tokens, prompt_tokens
from extproc.policy import decide


def _model(provider, price_in, price_out, quality, **extra):
    return {"provider": provider, "price": {"input": price_in, "output": price_out}, "quality": quality, **extra}


BASE = {
    "providers": {"openai": {"api": "openai"}, "anthropic": {"api": "anthropic"}, "gemini": {"api": "gemini"}},
    "models": {
        "embed-small": _model("openai", 0.02, 0, 3, endpoints=["embeddings"], capabilities=[], context_window=8191),
        "embed-gemini": _model("gemini", 0.15, 0, 3, endpoints=["embeddings"], capabilities=[],
                               context_window=2048),
    },
    "routing": {"aliases": ["auto"]},
}


def cfg(data=None):
    return parse(copy.deepcopy(data or BASE), source="test.yaml")


def chunk(tokens: int) -> str:
    # cost.prompt_tokens estimates len // 4 + 1 tokens for one embeddings input
    return "w" * (4 * (tokens - 1))


# ---- H1: embeddings: the window is per input ---------------------------------------------------------

def test_input_tokens_are_counted_per_input():
    body = {"input": [chunk(770)] * 25}
    assert input_tokens(body) == [770] * 25
    assert prompt_tokens(body) == 770 * 25          # what is billed and rate limited
    assert input_tokens({"input": [1, 2, 3]}) == [3]   # one input given as token ids
    assert input_tokens({"input": [[1, 2], [3]]}) == [2, 1]


@pytest.mark.parametrize("model,each", [("embed-small", 770), ("embed-gemini", 1900)])
def test_a_batch_whose_inputs_each_fit_the_window_is_served(model, each):
    # 25 inputs whose sum is far above one input's window (19,250 and 47,500 tokens)
    plan = decide(cfg(), {"model": model, "input": [chunk(each)] * 25}, "embeddings", {})
    assert [m.id for m in plan.models] == [model]
    assert plan.prompt_tokens == each * 25


def test_many_short_inputs_are_served():
    plan = decide(cfg(), {"model": "embed-small", "input": ["a short sentence to embed"] * 2048}, "embeddings", {})
    assert [m.id for m in plan.models] == ["embed-small"]


@pytest.mark.parametrize("model,window", [("embed-small", 8191), ("embed-gemini", 2048)])
def test_one_input_over_the_window_is_refused_naming_that_input(model, window):
    body = {"model": model, "input": ["short", chunk(window + 5), "short"]}
    with pytest.raises(errors.InvalidRequest) as info:
        decide(cfg(), body, "embeddings", {})
    err = info.value
    assert (err.status, err.code, err.param) == (400, "context_length_exceeded", "input[1]")
    assert f"maximum context length is {window} tokens per input" in err.message
    assert f"input[1] resulted in {window + 5} tokens" in err.message


def test_inputs_summed_over_openais_request_cap_get_its_max_tokens_per_request():
    body = {"model": "embed-small", "input": [chunk(8000)] * 38}     # 304,000 tokens, each input fits
    with pytest.raises(errors.InvalidRequest) as info:
        decide(cfg(), body, "embeddings", {})
    err = info.value
    assert (err.status, err.code, err.param) == (400, "max_tokens_per_request", "input")
    assert "Requested 304000 tokens, max 300000 tokens per request" in err.message
    # the same sum under the cap is served
    assert decide(cfg(), {**body, "input": [chunk(8000)] * 37}, "embeddings", {}).models


def test_routed_embeddings_drop_a_model_whose_window_one_input_exceeds():
    data = copy.deepcopy(BASE)
    data["routing"]["default_model"] = "embed-gemini"
    data["routing_rules"] = {"embed": {"tiers": [{"models": ["embed-gemini", "embed-small"]}]}}
    plan = decide(cfg(data), {"model": "auto", "input": [chunk(3000)] * 10}, "embeddings", {})
    assert [m.id for m in plan.models] == ["embed-small"]
    assert {d.model: d.reason for d in plan.dropped}["embed-gemini"] == "context too small: input[0] ~3000 tokens > 2048"
