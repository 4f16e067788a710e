"""The planner's capability check asks ``providers.unable`` on the request's capability view (message text
cut to outlines) and remembers the answer per (model, view): every answer must be the one the whole
request gets, and the cache must never outlive the Model objects of a config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc import policy
from extproc import validate
from extproc.config import load
from extproc.devstack import DEFAULT_ROUTING
from extproc.errors import InvalidRequest
from extproc.providers import capability_view, unable
from tests.unit.test_validate import TARGETS, chat_bodies, well_typed_chat

DEVSET = Path(__file__).resolve().parents[2] / "bench" / "devset" / "devset.jsonl"
CONFIG = load(DEFAULT_ROUTING)
CHAT_TARGETS = TARGETS + [m.target() for m in CONFIG.models.values() if "chat" in m.endpoints]


def answer(target, body):
    """What the planner learns: None, the UnsupportedFeature reason, or the InvalidRequest it raised."""
    try:
        return unable(target, body, "chat")
    except InvalidRequest as exc:
        return ("invalid", exc.message, exc.param)


def same_answers(body):
    view = capability_view(body)
    for target in CHAT_TARGETS:
        assert answer(target, view) == answer(target, body), (target.model, body)


def test_every_dev_set_request_gets_the_same_answer_from_its_view():
    bodies = [json.loads(line)["body"] for line in DEVSET.read_text(encoding="utf-8").splitlines()]
    for body in bodies:
        same_answers(body)
    # the point of the view: requests of one product share it
    assert len({json.dumps(capability_view(b)) for b in bodies}) < len(bodies) / 2


@pytest.mark.parametrize("messages", [
    [{"role": "system", "content": "   \n "}, {"role": "user", "content": "hi"}],           # blank system
    [{"role": "user", "content": "  \t"}],                                                  # only a blank turn
    [{"role": "user", "content": "continue"}, {"role": "assistant", "content": "The answer is  \n"}],  # prefill
    [{"role": "user", "content": "go"}, {"role": "assistant", "content": " \n "}],          # blank prefill
    [{"role": "user", "content": [{"type": "text", "text": "  "}, {"type": "text", "text": " a long text "}]}],
    [{"role": "user", "content": [{"type": "text", "text": ""}]}],
    [{"role": "user", "content": "q"}, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call 1!", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]},
     {"role": "tool", "tool_call_id": "call 1!", "content": "   "}],
])
def test_blank_text_and_edge_whitespace_survive_the_outline(messages):
    same_answers({"model": "auto", "messages": messages})


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(chat_bodies, well_typed_chat))
def test_generated_requests_get_the_same_answer_from_their_view(body):
    try:
        checked = validate.request("chat", json.dumps(body).encode())
    except InvalidRequest:
        return
    same_answers(checked)


def chat(last: str, **extra) -> dict:
    return {"model": "auto", "messages": [{"role": "system", "content": "You are the support bot. " * 20},
                                          {"role": "user", "content": last}], **extra}


def plan_of(cfg, body, capability=None):
    p = policy.decide(cfg, body, "chat", {}, now=0.0, capability=capability)
    return [m.id for m in p.models], [(d.model, d.reason) for d in p.dropped]


def test_requests_of_one_shape_are_checked_once_per_config(monkeypatch):
    asked = []
    real = policy.unable
    monkeypatch.setattr(policy, "unable", lambda target, body, endpoint: asked.append(target.model) or
                        real(target, body, endpoint))
    policy._CAPABILITY_CACHE.clear()
    cfg = load(DEFAULT_ROUTING)
    first = chat("Where is my order 1234?", temperature=1.5)   # over Anthropic's 0..1: some are unable
    plan_of(cfg, first)
    assert asked
    asked.clear()
    second = chat("Do you ship to Norway and how long does it take?", temperature=1.5)
    assert plan_of(cfg, second) == plan_of(cfg, second, lambda m: real(m.target(), second, "chat"))
    assert asked == []                          # same shape: answered from the cache
    plan_of(cfg, chat("hi", temperature=0.5))   # another shape: asked again
    assert asked
    asked.clear()
    reloaded = load(DEFAULT_ROUTING)            # new Model objects: nothing carries over
    plan_of(reloaded, second)
    assert asked
