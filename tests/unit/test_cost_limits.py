"""Cost estimates, cost caps, budgets and limits count the tokens the provider will count.

- Embeddings: a model's window applies to each input, the sum to the request's cost and rate limits
  (OpenAI's embeddings reference: 8,192 tokens per input, at most 2,048 inputs, 300,000 tokens summed
  over a request; Gemini's embedding models: 2,048 tokens per input).
- Reply tokens: a max_tokens above a model's output limit is clamped by its translator, so cost caps,
  budgets and the rate limit's token reservation count the clamped value (README, provider table).
"""

from __future__ import annotations

import copy
import json

import pytest

from extproc import errors, tokens
from extproc.config import parse
from extproc.config import load
from extproc.cost import Allowance, input_tokens, prompt_tokens
from extproc.devstack import DEFAULT_ROUTING
from extproc.policy import counts_needed, decide
from extproc.providers import output_limit


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
    # An input the estimate (len // 4 + 1) and the tokenizer (" the" is one token, "x" one) agree on.
    return " the" * (tokens - 1) + "x"


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
    assert {d.model: d.reason for d in plan.dropped}["embed-gemini"] == (
        "context too small: input[0] has 3000 tokens (counted) > 2048")


# ---- review 7, finding 2: an estimate near a limit is counted before it refuses ----------------------

PROSE = ("The committee reviewed the quarterly reports from every regional office and found that shipping delays "
         "had fallen steadily since the new warehouse opened in the spring. Customers in the northern districts "
         "still waited longer than others, mostly because the roads there are narrow and often closed by weather. "
         "The board asked the operations team to compare three proposals for a second depot, to estimate what "
         "each would cost over ten years, and to report back before the annual meeting in November. ")


def test_english_inputs_under_openais_request_cap_by_count_are_served_though_the_estimate_is_over():
    """44 inputs of plain English: chars/4 said more than 300,000 tokens (400 max_tokens_per_request,
    "Requested 306944 tokens" in review 7), the tokenizer says fewer. A refusal must rest on a count."""
    body = {"model": "embed-small", "input": [PROSE * 70] * 44}
    counted = sum(tokens.input_counts(body))
    assert sum(input_tokens(body)) > 300_000 > counted, (sum(input_tokens(body)), counted)   # the probe's shape
    plan = decide(cfg(), body, "embeddings", {})
    assert [m.id for m in plan.models] == ["embed-small"]


def test_an_input_under_the_window_by_count_is_served_though_its_estimate_is_over():
    """One input of about 7,300 real tokens to text-embedding-3-small (window 8,191) was refused as 8,213."""
    body = {"model": "embed-small", "input": PROSE * 83}
    (counted,) = tokens.input_counts(body)
    assert input_tokens(body)[0] > 8191 > counted, (input_tokens(body), counted)
    assert [m.id for m in decide(cfg(), body, "embeddings", {}).models] == ["embed-small"]
    # routed too: the window does not drop the model
    data = copy.deepcopy(BASE)
    data["routing"]["default_model"] = "embed-small"
    assert [m.id for m in decide(cfg(data), {**body, "model": "auto"}, "embeddings", {}).models] == ["embed-small"]


def test_a_refusal_states_the_counted_tokens():
    body = {"model": "embed-small", "input": ["short", PROSE * 100]}
    counted = tokens.input_counts(body)[1]
    assert counted > 8191 and input_tokens(body)[1] != counted
    with pytest.raises(errors.InvalidRequest) as info:
        decide(cfg(), body, "embeddings", {})
    assert f"input[1] resulted in {counted} tokens" in info.value.message, info.value.message
    body = {"model": "embed-small", "input": [PROSE * 90] * 40}
    total = sum(tokens.input_counts(body))
    assert total > 300_000
    with pytest.raises(errors.InvalidRequest) as info:
        decide(cfg(), body, "embeddings", {})
    assert f"Requested {total} tokens, max 300000" in info.value.message, info.value.message


def test_inputs_far_from_every_limit_are_not_tokenized(monkeypatch):
    """The tokenizer runs only where the estimate nears a limit (COUNT_NEAR): a batch well under every
    limit costs none of it, and the shell counts the others off its event loop (counts_needed)."""
    def refuse(body):
        raise AssertionError("counted")
    body = {"model": "embed-small", "input": [chunk(1500)] * 140}  # 210,000: under 75% of the 300,000 cap
    assert not counts_needed(cfg(), body)
    monkeypatch.setattr(tokens, "input_counts", refuse)
    assert decide(cfg(), body, "embeddings", {}).models
    assert counts_needed(cfg(), {"input": [chunk(6200)]})                 # 75% of embed-small's window
    assert counts_needed(cfg(), {"input": [chunk(1600)]})                 # 75% of embed-gemini's window
    assert counts_needed(cfg(), {"input": [chunk(5700)] * 40})            # 228,000 of 300,000
    # counts the shell made are used as given
    assert decide(cfg(), {"model": "embed-small", "input": [chunk(9000)]}, "embeddings", {},
                  input_counts=[8000]).models


# ---- H2: the reply tokens a model can bill are clamped to its output limit ---------------------------

class Simple:   # the classifier's answer for a simple request
    name, score, confidence = "simple_queries", 0.1, 1.0


SHIPPED = load(DEFAULT_ROUTING)
GPT_4O_MINI_OUTPUT_LIMIT = 16384   # providers/openai_openai.py, as OpenAI's model page states


def ask(max_tokens, model="auto", **kw):
    body = {"model": model, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": max_tokens}
    return decide(SHIPPED, body, "chat", {}, classification=Simple(), **kw)


def test_a_large_max_tokens_is_priced_at_the_models_output_limit():
    plan = ask(100_000)
    by_id = {c.model.id: c for c in plan.candidates}
    assert plan.models[0].id == "gpt-4o-mini", plan.to_dict()["dropped"]
    price = SHIPPED.models["gpt-4o-mini"].price
    expected = (plan.prompt_tokens * price.input + GPT_4O_MINI_OUTPUT_LIMIT * price.output) / 1_000_000
    assert by_id["gpt-4o-mini"].cost == pytest.approx(expected)
    assert by_id["gpt-4o-mini"].cost < 0.05    # the class's max_cost_per_request no longer drops it


def test_a_huge_max_tokens_on_auto_is_served_not_refused():
    plan = ask(10**9)   # every model clamps it; the cost caps see what each model can bill
    assert plan.models and plan.models[0].id == "gpt-4o-mini"
    # what the plan reserves against the tenant's tokens per minute: the most any attempt may bill
    assert plan.output_tokens == max(output_limit(m.target()) for m in plan.models)
    assert plan.output_tokens < 10**6


def test_the_rate_limit_reservation_counts_the_clamped_reply():
    plan = ask(900_000, model="gpt-4o")
    assert plan.output_tokens == GPT_4O_MINI_OUTPUT_LIMIT    # gpt-4o writes at most 16,384 tokens too


def test_a_budget_is_compared_with_the_clamped_estimate():
    # $0.02 left; the unclamped estimate (10^6 x $0.60/M = $0.60) was "over budget"
    plan = ask(10**6, model="gpt-4o-mini", budgets=Allowance(0.02))
    assert [m.id for m in plan.models] == ["gpt-4o-mini"]
    assert plan.candidates[0].cost < 0.02


# ---- M5: when the budget is why no candidate is left, the answer is the budget's 429 ----------------

SUPPORT = {"x-llm-surface": "support"}   # quality floor 4: only gpt-4o and claude-sonnet-4-6 pass


def test_a_budget_below_every_floor_passing_model_is_a_quota_answer_not_a_422():
    body = {"model": "auto", "messages": [{"role": "user", "content": "Where is my parcel?"}], "max_tokens": 20}
    # the floor drops the cheap tiers, the budget the premium one: before, the mix of drops answered 422
    with pytest.raises(errors.QuotaExceeded) as info:
        decide(SHIPPED, body, "chat", SUPPORT, classification=Simple(), budgets=Allowance(0.00001))
    err = info.value
    assert (err.status, err.type, err.code) == (429, "insufficient_quota", "insufficient_quota")
    assert "remaining budget $0.000010" in err.message and "over budget" in err.message
    # with the budget out of the way the same request is served by a floor-passing model
    plan = decide(SHIPPED, body, "chat", SUPPORT, classification=Simple(), budgets=Allowance(1.0))
    assert plan.models[0].quality >= 4


def test_rules_other_than_the_budget_still_answer_422():
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 20}
    # a surface denying every floor-passing model: no budget involved, the client must change the request
    data = {"providers": {"a": {"api": "openai"}}, "routing": {"aliases": ["auto"]},
            "models": {"cheap": _model("a", 0.1, 0.1, 2), "good": _model("a", 1.0, 2.0, 5)},
            "routing_rules": {"simple_queries": {"tiers": [{"models": ["cheap", "good"]}]}},
            "surfaces": {"strict": {"quality_floor": 4, "deny": ["good"]}}}
    with pytest.raises(errors.UnsupportedFeature) as info:
        decide(cfg_of(data), body, "chat", {"x-llm-surface": "strict"}, classification=Simple(),
               budgets=Allowance(0.00001))
    assert (info.value.status, info.value.code) == (422, "no_model_available")


def cfg_of(data):
    return parse(copy.deepcopy(data), source="test.yaml")


# ---- M1: cache reads are priced only where the provider reads a cache --------------------------------

def target(model_id):
    return SHIPPED.models[model_id].target()


@pytest.mark.parametrize("model,asked,floor", [
    ("gpt-4o", False, 1024),                 # OpenAI: automatic from 1,024 tokens
    ("azure-gpt-4o-mini", False, 1024),      # Azure OpenAI: the same models, the same automatic cache
    ("llama-3.1-8b-instruct", False, None),  # self-hosted: no cache read billed apart
    ("gemini-3.5-flash-lite", False, 4096),  # Gemini 3.x implicit caching
    ("claude-sonnet-4-6", False, None),      # the chat translator sends no cache_control
    ("claude-sonnet-4-6", True, 1024),       # a Messages request marking its cache
    ("claude-haiku-4-5", True, 4096),
])
def test_which_providers_read_a_prompt_cache(model, asked, floor):
    from extproc.providers import prompt_cache_floor
    assert prompt_cache_floor(target(model), asked) == floor


def test_gemini_implicit_caching_starts_at_2_5():
    from dataclasses import replace

    from extproc.providers import prompt_cache_floor
    t = target("gemini-3.5-flash-lite")
    assert prompt_cache_floor(replace(t, upstream_model="gemini-2.5-flash")) == 2048
    assert prompt_cache_floor(replace(t, upstream_model="gemini-2.0-flash")) is None


def test_a_messages_request_asks_for_a_cache_with_cache_control_anywhere():
    from extproc.apis.messages import asks_prompt_cache
    marked = {"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}
    assert asks_prompt_cache({"cache_control": {"type": "ephemeral"}, "messages": []})   # automatic caching
    assert asks_prompt_cache({"system": [marked], "messages": []})
    assert asks_prompt_cache({"messages": [{"role": "user", "content": [marked]}]})
    assert asks_prompt_cache({"tools": [{"name": "t", "input_schema": {}, "cache_control": {"type": "ephemeral"}}],
                              "messages": []})
    # The breakpoint on a block inside a tool result (review 7 finding 6: it was missed, priced uncached).
    assert asks_prompt_cache({"messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": [marked]}]}]})
    assert not asks_prompt_cache({"system": "plain", "messages": [{"role": "user", "content": "hi"}]})


POLICIES = " ".join(f"Policy {i}: a customer who reports outage number {i} gets a credit of {i % 7 + 1} days, "
                    f"after the on-call engineer confirms the ticket within {i % 5 + 2} hours." for i in range(160))
TASK = ("I run a 40-site retail chain with mixed routers behind a VPN concentrator; design a staged firmware "
        "rollout plan that minimizes downtime, including rollback criteria and a test matrix.")
FOLLOW_UP = "Now prove that the rollback criteria are sufficient to detect partial failures, reasoning step by step."


@pytest.mark.parametrize("marked", [False, True])
def test_a_claude_conversation_through_v1_messages_stays_only_when_it_marks_its_cache(marked):
    from extproc.credentials import Credentials
    from extproc.gateway import Gateway
    from tests.unit.test_gateway import CHAT, KEYS, UPSTREAM, demo_keys

    gw = Gateway(SHIPPED, Credentials(KEYS), clock=lambda: 1_800_000_000.0, keys=demo_keys())
    headers = {**CHAT, ":path": "/v1/messages", "x-llm-session": f"m1-{marked}"}
    system = [{"type": "text", "text": POLICIES, **({"cache_control": {"type": "ephemeral"}} if marked else {})}]

    def turn(model, messages):
        body = {"model": model, "max_tokens": 256, "system": system, "messages": messages}
        ex = gw.request_body(headers, json.dumps(body).encode())
        gw.route(ex)
        gw.response_headers(ex, UPSTREAM)
        return ex.plan

    first = [{"role": "user", "content": TASK}]
    assert turn("claude-sonnet-4-6", first).route_class == "complex_reasoning"
    second = turn("auto", [*first, {"role": "assistant", "content": "Here is a plan."},
                           {"role": "user", "content": FOLLOW_UP}])
    if marked:   # Claude reads the ~5K-token prefix at a tenth of its price: cheaper than gpt-4o in full
        assert second.models[0].id == "claude-sonnet-4-6" and second.affinity.startswith("affinity:")
    else:        # Claude bills it in full: dearer than gpt-4o, so the turn is routed afresh
        assert second.models[0].id == "gpt-4o" and second.affinity.startswith("affinity released")


# ---- L8: which attempts' context-length 400 moves on to a larger window ------------------------------

def test_overflow_retries_name_the_attempts_with_a_larger_window_later():
    from types import SimpleNamespace as M

    from extproc.gateway import overflow_retries
    plan = [M(context_window=128_000), M(context_window=128_000), M(context_window=1_000_000)]
    assert overflow_retries(plan) == "1,2"     # the same-size second try may tokenize differently
    assert overflow_retries(plan[::-1]) == ""  # nothing larger after the first: its 400 is the answer
    assert overflow_retries(plan[:1]) == ""    # a pinned model alone
    assert overflow_retries([M(context_window=200_000), M(context_window=128_000), M(context_window=1_000_000)]) == "1,2"
