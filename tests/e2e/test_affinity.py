"""Conversation affinity end to end (Envoy, extproc, simulators, the openai SDK): a conversation's turns
stay on the model that served it, an escalating turn breaks away, and a named session is honoured; under
the default cost rule a relaxing turn leaves a premium model whose cache would not pay for it."""

from __future__ import annotations

import uuid

import openai
import pytest

from .conftest import CLIENT_KEY, stack_with

SYSTEM = "You are the assistant of Fernway Bikes, a bike shop. Be brief and accurate."
HARD = ("I have two service plans to choose between: plan A costs 12 dollars a month with free tune-ups, plan "
        "B costs 99 a year plus 15 per tune-up. I ride daily and need about five tune-ups a year. Work out "
        "exactly which is cheaper over three years and explain why, weighing the risks.")
PREMIUM = {"gpt-4o", "claude-sonnet-4-6"}


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
    assert h2["x-llm-model"] == h1["x-llm-model"] and "conversation affinity" in h2["x-llm-route"]
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
