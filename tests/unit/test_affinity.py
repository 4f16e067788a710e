"""Conversation affinity (extproc.affinity): keys scoped to the tenant, the pin table, and the policy hook
that keeps a conversation on its model unless the class escalates or the model cannot take the turn."""

from __future__ import annotations

import dataclasses
import json

import pytest

from extproc import affinity as A
from extproc.config import load
from extproc.credentials import Credentials
from extproc.devstack import DEFAULT_ROUTING
from extproc.gateway import Gateway
from extproc.policy import ModelHealth, decide
from extproc.providers import prompt_cache_floor

from tests.unit.test_gateway import CHAT, KEYS, UPSTREAM, demo_keys

NOW = 1_700_000_000.0
SYSTEM = {"role": "system", "content": "You are the support bot of Fernway Bikes. Be brief."}
HARD = ("Compare the two plans I described, work out exactly which is cheaper over three years with the "
        "discount rules, and explain why step by step, weighing the risks.")


def chat(*turns, **extra):
    msgs = [SYSTEM] + [{"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(turns)]
    return {"model": "auto", "messages": msgs, **extra}


def test_the_key_is_scoped_to_the_tenant_and_follows_only_continuations():
    first, second = chat("hi"), chat("hi", "Hello!", "where is my order?")
    k1, src1, follows1 = A.conversation_key(first, {}, "acme")
    k2, _, follows2 = A.conversation_key(second, {}, "acme")
    assert k1 == k2 and src1 == "prefix"              # turn 2 repeats the system prompt and first user turn
    assert (follows1, follows2) == (False, True)        # a one-shot request is not steered by another
    assert A.conversation_key(second, {}, "globex")[0] != k2   # same system prompt, other tenant: stranger
    assert A.conversation_key(chat("hi", "Hello!", "x", user="u1"), {}, "acme")[0] != k2   # other end user


def test_named_conversations_prompt_cache_key_then_session_header():
    body = chat("hi", prompt_cache_key="conv-7")
    k, source, follows = A.conversation_key(body, {A.SESSION_HEADER: "s-1"}, "acme")
    assert source == "prompt_cache_key" and follows
    assert A.conversation_key(chat("other first turn", prompt_cache_key="conv-7"), {}, "acme")[0] == k
    k2, source2, _ = A.conversation_key(chat("hi"), {A.SESSION_HEADER: "s-1"}, "acme")
    assert source2 == "session" and k2 != k
    assert A.conversation_key({"model": "auto", "messages": [SYSTEM]}, {}, "acme") is None


def test_table_expires_pins_and_is_bounded():
    t = A.AffinityTable(ttl_s=60, max_conversations=2)
    t.remember("a", "gpt-4o", "complex_reasoning", 100, NOW, quality=5, lead_quality=5)
    assert t.get("a", NOW + 59).model == "gpt-4o"
    assert t.get("a", NOW + 61) is None
    for k in ("a", "b", "c"):
        t.remember(k, "m", None, 1, NOW, quality=3, lead_quality=3)
    assert len(t) == 2 and t.get("a", NOW) is None
    off = A.AffinityTable(ttl_s=0)
    off.remember("a", "m", None, 1, NOW, quality=3, lead_quality=3)
    assert off.get("a", NOW) is None


def _plan(cfg, body, pin, health=None, cache_asked=False):
    c = type("C", (), {"name": "simple_queries", "score": 0.1})() if "Compare" not in json.dumps(body) else \
        type("C", (), {"name": "complex_reasoning", "score": 0.9})()
    kw = {"health": health} if health else {}
    return decide(cfg, body, "chat", {}, now=NOW, classification=c, pin=pin, cache_asked=cache_asked, **kw)


def always():
    """The shipped config with affinity_keep: always (consistency over cost)."""
    return dataclasses.replace(load(DEFAULT_ROUTING), affinity_keep="always")


def test_a_simple_turn_stays_on_the_premium_model_that_served_the_conversation():
    cfg = always()
    body = chat("hi", "Hello!", "thanks, and shorter please")
    fresh = _plan(cfg, body, None)
    assert fresh.models[0].quality < 5 and fresh.affinity is None
    pin = A.Pin("claude-sonnet-4-6", "complex_reasoning", prompt_tokens=2000, expires=NOW + 60)
    kept = _plan(cfg, body, pin)
    assert kept.models[0].id == "claude-sonnet-4-6"
    assert kept.affinity.startswith("affinity:") and "conversation affinity" in kept.reason
    # a chat request to Claude carries no cache_control, so Claude reads no cache: billed in full
    price = cfg.models["claude-sonnet-4-6"].price
    full = (kept.prompt_tokens * price.input + kept.output_tokens * price.output) / 1_000_000
    assert kept.candidates[0].cost == pytest.approx(full)
    # a Messages request that marks its cache: the prefix is a cache read at the cached-input price
    asked = _plan(cfg, body, pin, cache_asked=True)
    assert asked.models[0].id == "claude-sonnet-4-6"
    assert asked.candidates[0].cost == pytest.approx(A.cached_cost(cfg.models["claude-sonnet-4-6"],
                                                                   asked.prompt_tokens, asked.output_tokens, 2000))
    assert asked.candidates[0].cost < full
    # a previous prompt shorter than Sonnet's cache floor is billed in full
    floor = prompt_cache_floor(cfg.models["claude-sonnet-4-6"].target(), asked=True)
    short = _plan(cfg, body, dataclasses.replace(pin, prompt_tokens=floor - 1), cache_asked=True)
    assert short.models[0].id == "claude-sonnet-4-6" and short.candidates[0].cost == pytest.approx(full)


def test_under_the_cost_rule_a_relaxing_turn_leaves_the_premium_model():
    cfg = load(DEFAULT_ROUTING)
    assert cfg.affinity_keep == "cost"    # the shipped default
    body = chat("hi", "Hello!", "thanks, and shorter please")
    pin = A.Pin("claude-sonnet-4-6", "complex_reasoning", prompt_tokens=5000, expires=NOW + 60)
    plan = _plan(cfg, body, pin)
    assert plan.models[0].quality < 5 and "conversation affinity" not in plan.reason
    assert plan.affinity.startswith("affinity released: claude-sonnet-4-6")


LONG = "Here is the full contract we discussed, clause by clause. " * 220    # ~3,000 tokens of history


def test_under_the_cost_rule_a_long_cached_prefix_keeps_a_same_tier_model_only_where_it_is_read():
    cfg = load(DEFAULT_ROUTING)
    body = chat(LONG + HARD, "Plan B is cheaper.", HARD)
    fresh = _plan(cfg, body, None)
    assert fresh.models[0].id == "gpt-4o"     # where a fresh conversation goes
    pin = A.Pin("claude-sonnet-4-6", "complex_reasoning", prompt_tokens=fresh.prompt_tokens - 20, expires=NOW + 60)
    # a chat request: Claude reads no cache (the translator sends no cache_control), so Sonnet at its
    # full price is dearer than gpt-4o: routed afresh (tryout 6 M1: it was kept as a cache read)
    chat_turn = _plan(cfg, body, pin)
    assert chat_turn.models[0].id == "gpt-4o" and chat_turn.affinity.startswith("affinity released")
    # a Messages request marking its cache: the previous turn (>= 1,024 tokens) is a cache read at a
    # tenth of Sonnet's input price, cheaper than gpt-4o at full price, so the conversation stays
    kept = _plan(cfg, body, pin, cache_asked=True)
    assert kept.models[0].id == "claude-sonnet-4-6" and kept.affinity.startswith("affinity:")
    assert kept.candidates[0].cost < fresh.candidates[0].cost
    # a prefix too short to be cached leaves Sonnet dearer than gpt-4o: routed afresh
    floor = prompt_cache_floor(cfg.models["claude-sonnet-4-6"].target(), asked=True)
    short = _plan(cfg, body, dataclasses.replace(pin, prompt_tokens=floor - 1), cache_asked=True)
    assert short.models[0].id == "gpt-4o" and short.affinity.startswith("affinity released")


def test_openai_reads_its_cache_automatically_so_a_pinned_gpt_4o_is_priced_as_a_cache_read():
    cfg = always()
    body = chat(LONG + HARD, "Plan B is cheaper.", "thanks, and shorter please")
    pin = A.Pin("gpt-4o", "complex_reasoning", prompt_tokens=2000, expires=NOW + 60)
    kept = _plan(cfg, body, pin)
    assert kept.models[0].id == "gpt-4o"
    model = cfg.models["gpt-4o"]
    assert kept.candidates[0].cost == pytest.approx(A.cached_cost(model, kept.prompt_tokens, kept.output_tokens, 2000))
    # the pinned model is the fresh choice itself: the pin held, it decided nothing (tryout 9 L6: the
    # route said "conversation affinity" for such turns, inflating what affinity decided)
    assert kept.affinity.startswith(A.HELD) and not A.decided(kept.affinity)
    assert "conversation affinity" not in kept.reason
    assert _plan(cfg, body, None).models[0].id == "gpt-4o"


def test_escalation_breaks_affinity():
    cfg = load(DEFAULT_ROUTING)
    pin = A.Pin("gpt-4o-mini", "simple_queries", prompt_tokens=50, expires=NOW + 60)
    plan = _plan(cfg, chat("hi", "Hello!", HARD), pin)
    assert plan.models[0].quality == 5 and plan.affinity.startswith("affinity broken: escalated to")
    assert "class simple_queries -> complex_reasoning" in plan.affinity


def test_affinity_yields_to_an_ejected_model():
    cfg = load(DEFAULT_ROUTING)

    class Health:
        def model_health(self, model_id):
            return ModelHealth(ejected=model_id == "claude-sonnet-4-6")

    pin = A.Pin("claude-sonnet-4-6", "complex_reasoning", prompt_tokens=50, expires=NOW + 60)
    plan = _plan(cfg, chat("hi", "Hello!", "thanks"), pin, Health())
    assert plan.models[0].id != "claude-sonnet-4-6"
    assert plan.affinity == "affinity yielded: claude-sonnet-4-6 is not a candidate now: unhealthy (ejected)"


def test_gateway_keeps_the_conversation_on_the_model_that_answered():
    gw = Gateway(always(), Credentials(KEYS), clock=lambda: NOW, keys=demo_keys())

    def turn(body):
        ex = gw.request_body(CHAT, json.dumps(body).encode())
        gw.route(ex)
        gw.response_headers(ex, UPSTREAM)     # attempt 1 answered
        return ex.plan

    first = turn(chat(HARD))
    assert first.models[0].quality == 5
    second = turn(chat(HARD, "Plan B is cheaper.", "thanks! now just the number"))
    assert second.route_class == "simple_queries"
    assert second.models[0].id == first.models[0].id and second.affinity.startswith("affinity:")
    other_tenant_like = turn(chat("unrelated first turn", "ok", "thanks! now just the number"))
    assert other_tenant_like.affinity is None and other_tenant_like.models[0].quality < 5


def test_one_cache_floor_and_one_pricing_of_a_cache_read():
    """Review 7 finding 7: ``stick`` assumed a 1,024-token floor of its own when not given the providers'
    (a third copy of it, unused in production), and ``cached_cost`` priced a cache read apart from
    ``cache_saving``. The floor is the caller's (``providers.prompt_cache_floor``); the cost is the full
    price less the saving."""
    cfg = load(DEFAULT_ROUTING)
    pin = A.Pin("gpt-4o", "complex_reasoning", prompt_tokens=2000, expires=NOW + 60)
    with pytest.raises(TypeError):
        A.stick(pin, [], "complex_reasoning", 3000, "cost")   # no floor of its own to fall back on
    for model in cfg.models.values():
        price = model.price
        full = (3000 * price.input + 200 * price.output) / 1_000_000
        assert A.cached_cost(model, 3000, 200, 2000) == pytest.approx(full - A.cache_saving(model, 2000))
        assert A.cached_cost(model, 3000, 200, 9000) == pytest.approx(full - A.cache_saving(model, 3000))
        assert A.cached_cost(model, 3000, 200, 0) == pytest.approx(full)


# ---- tryout 9: quality, not the class name, decides an escalation; a fallback does not take the pin ----

@pytest.mark.parametrize("keep", A.KEEP)
def test_a_pin_never_holds_a_turn_below_the_quality_the_fresh_plan_leads_with(keep):
    """Tryout 9 H4: a complex conversation pinned to gpt-4o-mini (a fallback had answered a turn) stayed
    there for every later complex turn: the pin broke only when the class name changed, and the cost
    rule keeps any cheaper pin."""
    cfg = dataclasses.replace(load(DEFAULT_ROUTING), affinity_keep=keep)
    body = chat(HARD, "Plan B is cheaper.", HARD)
    fresh = _plan(cfg, body, None)
    assert fresh.route_class == "complex_reasoning" and fresh.models[0].quality == 5
    pin = A.Pin("gpt-4o-mini", "complex_reasoning", prompt_tokens=5000, expires=NOW + 60)   # same class
    plan = _plan(cfg, body, pin)
    assert plan.models[0].id == fresh.models[0].id
    assert plan.affinity.startswith("affinity broken: escalated to") and "quality 3" in plan.affinity
    assert "class" not in plan.affinity.split("quality 3")[1]    # the class did not change: quality decided
    assert "conversation affinity" not in plan.reason


def _answer(gw, body, attempt=1):
    ex = gw.request_body(CHAT, json.dumps(body).encode())
    gw.route(ex)
    if attempt > 1:
        gw.attempt(ex, attempt)
    gw.response_headers(ex, {**UPSTREAM, "x-envoy-attempt-count": str(attempt), "x-llm-attempts": str(attempt)})
    return ex


def test_a_fallback_answer_neither_creates_nor_moves_a_pin():
    """Tryout 9 H4: one 500 on the lead made the fallback (gpt-4o-mini, attempt 2) the conversation's pin,
    and with a shared prompt_cache_key every later request behind the key stayed on it."""
    gw = Gateway(load(DEFAULT_ROUTING), Credentials(KEYS), clock=lambda: NOW, keys=demo_keys())
    first = _answer(gw, chat(HARD))
    lead = first.plan.models[0]
    assert lead.quality == 5 and gw.affinity.get(first.affinity_key, NOW).model == lead.id
    # turn 2: the lead failed, a lesser model of the next tier answered as attempt 2
    second = _answer(gw, chat(HARD, "Plan B is cheaper.", HARD), attempt=2)
    assert second.answered_by.quality < lead.quality and second.affinity_key == first.affinity_key
    assert gw.affinity.get(first.affinity_key, NOW).model == lead.id      # the pin it had, not the fallback
    third = _answer(gw, chat(HARD, "Plan B is cheaper.", HARD, "ok.", HARD))
    assert third.plan.models[0].id == lead.id
    # a named conversation whose first request fell back is not pinned at all
    keyed = _answer(gw, chat(HARD, prompt_cache_key="template-7"), attempt=2)
    assert keyed.answered_by.quality < 5 and gw.affinity.get(keyed.affinity_key, NOW) is None
    again = _answer(gw, chat("A different question. " + HARD, prompt_cache_key="template-7"))
    assert again.affinity_key == keyed.affinity_key and again.plan.models[0].quality == 5
    # an answer as good as the lead (attempt 1 here) pins as before
    assert gw.affinity.get(keyed.affinity_key, NOW).model == again.plan.models[0].id


def test_affinity_says_why_its_model_is_not_a_candidate():
    """Tryout 9 L4: "not a candidate now (ejected, paused, over budget or incapable)" said none of them."""
    cfg = load(DEFAULT_ROUTING)
    image = {"role": "user", "content": [{"type": "text", "text": "what is on this label?"},
                                         {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}
    body = {"model": "auto", "messages": [SYSTEM, {"role": "user", "content": "hi"},
                                          {"role": "assistant", "content": "Hello!"}, image]}
    plan = _plan(cfg, body, A.Pin("llama-3.1-8b-instruct", "simple_queries", prompt_tokens=50, expires=NOW + 60))
    assert plan.models[0].id != "llama-3.1-8b-instruct"
    assert plan.affinity.startswith("affinity yielded: llama-3.1-8b-instruct is not a candidate now: ")
    assert "vision" in plan.affinity
    elsewhere = _plan(cfg, chat("hi", "Hello!", HARD), A.Pin("llama-3.1-8b-instruct", "simple_queries",
                                                                 prompt_tokens=50, expires=NOW + 60))
    assert elsewhere.affinity.endswith("not a model of class 'complex_reasoning'")


def test_a_pin_that_a_capable_fresh_plan_would_choose_anyway_held_and_did_not_decide():
    """The fresh order's first candidate cannot serve the request: the pinned model second in it is the
    fresh capable choice, so moving it first changed nothing."""
    from extproc.policy import Candidate

    cfg = load(DEFAULT_ROUTING)
    a, b, c = (Candidate(cfg.models[m], "primary", 1500, "fresh", 0.001)
               for m in ("gpt-4o-mini", "azure-gpt-4o-mini", "gemini-3.5-flash-lite"))
    pin = A.Pin("azure-gpt-4o-mini", "simple_queries", prompt_tokens=50, expires=NOW + 60)
    order, note = A.stick(pin, [a, b, c], "simple_queries", 100, "always", lambda m: None)
    assert [x.model.id for x in order] == ["azure-gpt-4o-mini", "gpt-4o-mini", "gemini-3.5-flash-lite"]
    assert A.decided(note)
    left_out = {"gpt-4o-mini": "cannot serve this request: x"}
    assert A.settle(pin, note, [a, b, c], [order[0], c], left_out).startswith(A.HELD)
    assert A.decided(A.settle(pin, note, [a, b, c], order, left_out))      # gpt-4o-mini could: affinity decided
    assert A.settle(pin, note, [a, b, c], [a, c], {"azure-gpt-4o-mini": "cannot serve this request: y"}) == \
        "affinity yielded: azure-gpt-4o-mini cannot serve this request: y"
