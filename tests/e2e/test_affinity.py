"""Conversation affinity end to end (Envoy, extproc, simulators, the openai SDK): a conversation's turns
stay on the model that served it, an escalating turn breaks away, and a named session is honoured; under
the default cost rule a relaxing turn leaves a premium model whose cache would not pay for it; one failed
attempt on the first tier does not hold a conversation, or a prompt_cache_key, on the fallback's model."""

from __future__ import annotations

import uuid

import openai
import pytest

from .conftest import CLIENT_KEY, MODELS, NO_EJECTION, fault, reset_faults, stack_with, upstream_requests

SYSTEM = "You are the assistant of Fernway Bikes, a bike shop. Be brief and accurate."
HARD = ("I have two service plans to choose between: plan A costs 12 dollars a month with free tune-ups, plan "
        "B costs 99 a year plus 15 per tune-up. I ride daily and need about five tune-ups a year. Work out "
        "exactly which is cheaper over three years and explain why, weighing the risks.")
PREMIUM = {"gpt-4o", "claude-sonnet-4-6"}
# Different complex asks (each its own one-shot request, or the next turn of one conversation).
HARD_TOO = (
    "Our shop's two mechanics each take 40 minutes per tune-up and 25 per brake job; on Saturdays we book 9 "
    "tune-ups and 11 brake jobs between 9:00 and 17:00 with one lunch hour each. Work out whether the schedule "
    "fits, step by step, and propose the order that minimises customer waiting, explaining the trade-offs.",
    "A customer's e-bike battery is rated 500 Wh and loses 3% capacity per 100 cycles; she rides 18 km a day at "
    "11 Wh/km. Work out exactly after how many months her daily ride no longer fits in one charge, show each "
    "step, and explain which assumptions matter most.",
    "Compare financing a 2,400 dollar bike at 7.9% APR over 24 months with a 0% plan that charges a 149 dollar "
    "fee up front; work out the total cost of each exactly, explain step by step which is cheaper and why, and "
    "weigh the risks of each for a customer with irregular income.")


def turn(client, messages, user=None, **extra):
    # each test is its own end user (OpenAI's `user` field, part of the conversation key), so the
    # conversations of the tests sharing one gateway stay apart
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=messages,
                                                           user=user or "anonymous", **extra)
    completion = raw.parse()
    return raw.headers, completion.choices[0].message.content


@pytest.fixture(scope="module")
def sticky(tmp_path_factory):
    """A gateway whose conversations keep their model on every turn that does not escalate."""
    with stack_with(tmp_path_factory, "affinity", {"/routing/affinity_keep": "always"}) as stack:
        yield openai.OpenAI(base_url=stack.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=20)


def test_a_relaxing_turn_leaves_a_premium_model_its_cache_would_not_pay_for(client):
    # affinity_keep: cost (the shipped default): a cache read saves part of the prefix's input price,
    # never the gap to the cheap tier, so the simple follow-up goes where it would go on its own
    user = uuid.uuid4().hex
    history = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": HARD}]
    h1, answer = turn(client, history, user)
    assert h1["x-llm-class"] == "complex_reasoning" and h1["x-llm-model"] in PREMIUM
    history += [{"role": "assistant", "content": answer}, {"role": "user", "content": "thanks! can you make that shorter?"}]
    h2, _ = turn(client, history, user)
    assert h2["x-llm-class"] == "simple_queries" and h2["x-llm-model"] not in PREMIUM
    assert "conversation affinity" not in h2["x-llm-route"]


def test_a_follow_up_stays_on_the_model_that_served_the_conversation(sticky):
    client = sticky
    user = uuid.uuid4().hex
    history = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": HARD}]
    h1, answer = turn(client, history, user)
    assert h1["x-llm-class"] == "complex_reasoning" and h1["x-llm-model"] in PREMIUM
    history += [{"role": "assistant", "content": answer}, {"role": "user", "content": "thanks! can you make that shorter?"}]
    h2, _ = turn(client, history, user)
    # a simple turn on its own goes to a cheap model; this one is a continuation of the premium conversation
    assert h2["x-llm-class"] == "simple_queries"
    assert h2["x-llm-model"] == h1["x-llm-model"] and h2["x-llm-provider"] == h1["x-llm-provider"]
    assert "conversation affinity" in h2["x-llm-route"]
    # the same follow-up in a new conversation is routed afresh, to the cheap tier
    fresh = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "hi"},
             {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "thanks! can you make that shorter?"}]
    h3, _ = turn(client, fresh, uuid.uuid4().hex)
    assert h3["x-llm-model"] not in PREMIUM and "conversation affinity" not in h3["x-llm-route"]


def test_an_escalating_turn_breaks_affinity(client):
    user = uuid.uuid4().hex
    history = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "hi, do you sell helmets?"}]
    h1, answer = turn(client, history, user)
    assert h1["x-llm-class"] == "simple_queries" and h1["x-llm-model"] not in PREMIUM
    history += [{"role": "assistant", "content": answer}, {"role": "user", "content": "ok thanks"}]
    h2, answer = turn(client, history, user)
    # the same model (whether it is also the fresh choice, and affinity merely held, depends on latencies)
    assert h2["x-llm-model"] == h1["x-llm-model"]
    history += [{"role": "assistant", "content": answer}, {"role": "user", "content": HARD}]
    h3, _ = turn(client, history, user)
    assert h3["x-llm-class"] == "complex_reasoning" and h3["x-llm-model"] in PREMIUM
    assert "conversation affinity" not in h3["x-llm-route"]


def test_a_named_session_keeps_its_model_across_different_first_turns(sticky):
    client = sticky
    session = {"extra_headers": {"x-llm-session": uuid.uuid4().hex}}
    h1, _ = turn(client, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": HARD}], **session)
    assert h1["x-llm-model"] in PREMIUM
    h2, _ = turn(client, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "do you sell helmets?"}], **session)
    assert h2["x-llm-model"] == h1["x-llm-model"] and "conversation affinity" in h2["x-llm-route"]


# ---- tryout 9 H4: one failed attempt must not keep a conversation on the fallback's model --------------

@pytest.fixture(scope="module")
def fallible(tmp_path_factory):
    """The default cost rule, with one premium model first and one cheaper model behind it for complex
    work, so a fault on OpenAI's first answer makes the fallback's model deterministic; never ejects."""
    tiers = [{"name": "primary", "models": ["gpt-4o"]}, {"name": "secondary", "models": ["gpt-4o-mini"]}]
    with stack_with(tmp_path_factory, "affinity-fallback", {"/health": NO_EJECTION,
                                                           "/routing_rules/complex_reasoning/tiers": tiers}) as stack:
        yield stack


def _one_failure_on_the_first_tier(stack):
    fault(stack, "openai", status=500, count=1)    # gpt-4o's attempt fails once; gpt-4o-mini answers


def _fell_back(headers) -> bool:
    return headers["x-llm-model"] == "gpt-4o-mini" and "answered by gpt-4o-mini (attempt 2, fallback)" in \
        headers["x-llm-route"]


def test_a_fallback_turn_does_not_hold_the_conversation_on_the_fallback_model(fallible):
    client = openai.OpenAI(base_url=fallible.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=20)
    reset_faults(fallible)
    session = {"extra_headers": {"x-llm-session": uuid.uuid4().hex}}
    history = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": HARD}]
    h1, answer = turn(client, history, **session)
    assert (h1["x-llm-class"], h1["x-llm-model"]) == ("complex_reasoning", "gpt-4o")
    _one_failure_on_the_first_tier(fallible)
    history += [{"role": "assistant", "content": answer}, {"role": "user", "content": HARD_TOO[0]}]
    h2, answer = turn(client, history, **session)
    assert h2["x-llm-class"] == "complex_reasoning" and _fell_back(h2), h2["x-llm-route"]
    for ask in HARD_TOO[1:]:
        # the fault is spent: each later complex turn goes where a fresh one goes, gpt-4o (before: held
        # on gpt-4o-mini, "(secondary), conversation affinity", for the rest of the conversation)
        history += [{"role": "assistant", "content": answer}, {"role": "user", "content": ask}]
        h, answer = turn(client, history, **session)
        assert (h["x-llm-class"], h["x-llm-model"]) == ("complex_reasoning", "gpt-4o"), h["x-llm-route"]
        assert "conversation affinity" not in h["x-llm-route"]     # the pin (gpt-4o) is the fresh choice


def test_a_fallback_does_not_pin_everything_behind_a_shared_prompt_cache_key(fallible):
    client = openai.OpenAI(base_url=fallible.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=20)
    reset_faults(fallible)
    template = {"prompt_cache_key": f"bike-shop-{uuid.uuid4().hex[:12]}"}   # one key per prompt template
    _one_failure_on_the_first_tier(fallible)
    h1, _ = turn(client, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": HARD}], **template)
    assert _fell_back(h1), h1["x-llm-route"]
    for ask in HARD_TOO:
        h, _ = turn(client, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": ask}], **template)
        assert (h["x-llm-class"], h["x-llm-model"]) == ("complex_reasoning", "gpt-4o"), h["x-llm-route"]


def test_a_prompt_cache_key_that_is_not_a_string_is_openais_400(gateway, client):
    """Tryout 9 L5: an integer key got 200 and reached OpenAI as an integer; OpenAI refuses it."""
    for value, code in ((123, "invalid_type"), ("k" * 65, "string_above_max_length")):
        with pytest.raises(openai.BadRequestError) as info:
            client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "hi"}],
                                           extra_body={"prompt_cache_key": value})
        error = info.value.body
        assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", "prompt_cache_key", code)
    assert not any(upstream_requests(gateway, provider) for provider in MODELS)
