"""Shadow evaluation's pure part: sampling, rubric verdicts, statistics, proposals (extproc/shadow.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from extproc import config as routing_config
from extproc import shadow
from extproc.accounting import UsageRecord
from extproc.simulators.core import JUDGE_TAG, Prompt, think

ROOT = Path(__file__).resolve().parents[2]


def _cfg(**shadow_spec):
    data = yaml.safe_load((ROOT / "config" / "routing.yaml").read_text())
    data["shadow"] = {"rates": {"*": 1.0}, "judge_model": "gpt-4o", **shadow_spec}
    return routing_config.parse(data, "test.yaml")


def _skip(cfg, body=None, *, endpoint="chat", rclass="simple_queries", surface=None, tenant="demo",
          served="gpt-4o-mini", draw=0.0):
    body = body or {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    return shadow.skip_reason(cfg, cfg.shadow, endpoint=endpoint, body=body, route_class=rclass, surface=surface,
                              tenant=tenant, served_model=cfg.models.get(served), draw=draw)


def test_a_cheap_answer_is_sampled_and_the_reference_is_the_class_premium_tier():
    cfg = _cfg()
    assert _skip(cfg) is None
    assert shadow.reference_model(cfg, cfg.shadow, "simple_queries", None).id == "gpt-4o"


def test_never_tools_embeddings_premium_answers_internal_calls_or_a_surface_without_the_reference():
    cfg = _cfg()
    tools = {"model": "auto", "messages": [{"role": "user", "content": "hi"}],
             "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}]}
    result = {"model": "auto", "messages": [{"role": "user", "content": "hi"},
                                            {"role": "assistant", "tool_calls": [{"id": "c"}]},
                                            {"role": "tool", "tool_call_id": "c", "content": "1"}]}
    assert _skip(cfg, tools) == "a tool-call turn"
    assert _skip(cfg, result) == "a tool-call turn"
    assert _skip(cfg, endpoint="embeddings") == "not a chat request"
    assert _skip(cfg, served="gpt-4o") == "served at the premium tier"
    assert _skip(cfg, tenant="gateway") == "the evaluation's own call"
    # drafts denies claude-sonnet-4-6 only: gpt-4o stays its reference; denying both leaves none.
    assert shadow.reference_model(cfg, cfg.shadow, "simple_queries", "drafts").id == "gpt-4o"
    cfg2 = _cfg(reference_model="claude-sonnet-4-6")
    assert _skip(cfg2, surface="drafts") == "no reference model the surface allows"


def test_the_most_specific_rate_wins_and_the_draw_decides():
    cfg = _cfg(rates={"*": 0.01, "support": 0.5, "simple_queries/drafts": 0.2, "complex_reasoning": 0.0})
    s = cfg.shadow
    assert s.rate_for("simple_queries", "drafts") == 0.2
    assert s.rate_for("simple_queries", "support") == 0.5
    assert s.rate_for("complex_reasoning", None) == 0.0
    assert s.rate_for("simple_queries", None) == 0.01
    assert _skip(cfg, surface="support", draw=0.49) is None
    assert _skip(cfg, surface="support", draw=0.5) == "not drawn (rate 0.5)"


def test_config_errors_name_the_key():
    with pytest.raises(routing_config.ConfigError, match=r"shadow\.rates\.\*: must be a number from 0 to 1"):
        _cfg(rates={"*": 2})
    with pytest.raises(routing_config.ConfigError, match=r"shadow\.judge_model: unknown model 'nope'"):
        _cfg(judge_model="nope")
    with pytest.raises(routing_config.ConfigError, match=r"shadow\.sample: unknown key"):
        _cfg(sample=1)
    shipped = routing_config.load(ROOT / "config" / "routing.yaml").shadow
    assert (shipped.judge_model, shipped.rate_for("simple_queries", "drafts"), shipped.tenant) == ("gpt-4o", 0.01, "gateway")


@pytest.mark.parametrize("first,second,verdict", [
    ("A", "B", "win"), ("A", "TIE", "win"), ("TIE", "B", "win"),
    ("B", "A", "loss"), ("B", "TIE", "loss"), ("TIE", "A", "loss"),
    ("TIE", "TIE", "tie"), ("A", "A", "tie"), ("B", "B", "tie"),   # the order decided: position bias, a tie
    (None, "A", None)])
def test_position_swapped_grades_combine(first, second, verdict):
    assert shadow.combine(first, second) == verdict


def test_grades_parse_from_the_last_verdict_line():
    assert shadow.parse_grade("Thinking...\nVERDICT: b") == "B"
    assert shadow.parse_grade("VERDICT: A\nVERDICT: TIE") == "TIE"
    assert shadow.parse_grade("A is better") is None


def test_answer_text_from_json_and_sse_and_none_for_tool_calls():
    body = json.dumps({"choices": [{"message": {"role": "assistant", "content": "Paris"}}]}).encode()
    assert shadow.answer_text(body, stream=False) == "Paris"
    calls = json.dumps({"choices": [{"message": {"content": None, "tool_calls": [{"id": "x"}]}}]}).encode()
    assert shadow.answer_text(calls, stream=False) is None
    sse = b"".join(b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": t}}]}).encode() + b"\n\n"
                   for t in ("Pa", "ris")) + b"data: [DONE]\n\n"
    assert shadow.answer_text(sse, stream=True) == "Paris"
    assert shadow.answer_text(b"{not json", stream=False) is None


def test_wilson_interval_matches_the_textbook_value():
    lo, hi = shadow.wilson(8, 10)          # 0.8 of 10: 0.490 .. 0.943 (Wilson 1927, 95%)
    assert (round(lo, 3), round(hi, 3)) == (0.49, 0.943)
    assert shadow.wilson(0, 0) == (0.0, 1.0)


def _rec(i, score, surface="support", model="gpt-4o-mini", source="shadow"):
    return UsageRecord(request_id=f"r{i}/shadow", time=float(i), tenant="gateway", surface=surface,
                       request_class="simple_queries", workload="interactive", model=model, provider="openai",
                       outcome=shadow.SHADOW_OUTCOME, status=200, quality=score, quality_source=source)


def test_tally_counts_only_shadow_scores_and_flags_a_surface_below_target():
    records = [_rec(i, 0.0) for i in range(30)] + [_rec(100 + i, 1.0) for i in range(5)] \
        + [_rec(200, 1.0, source="feedback")]
    t = shadow.tally(records, by=("surface",))[("support",)]
    assert (t.win, t.tie, t.loss) == (5, 0, 30)
    assert shadow.below_target(t, 0.8)
    good = shadow.Tally(win=10, tie=85, loss=5)
    assert not shadow.below_target(good, 0.8)
    assert shadow.propose_floor(t, 0.8, current_floor=1, premium_quality=5)[0] == 5
    assert shadow.propose_floor(good, 0.8, current_floor=4, premium_quality=5)[0] == 3
    assert shadow.propose_floor(shadow.Tally(win=3), 0.8, current_floor=4, premium_quality=5)[0] == 4


def test_the_simulator_judge_follows_its_documented_rule():
    question = "user: Explain photosynthesis in plants"
    good = think(Prompt(model="gpt-4o", turns=[("user", "Explain photosynthesis in plants")])).text
    bad = think(Prompt(model="gpt-4o-mini", turns=[("user", "Explain photosynthesis in plants")]), bad=True).text
    assert JUDGE_TAG == shadow.RUBRIC_TAG

    def grade(a, b):
        req = shadow.judge_request(question, a, b, "gpt-4o")
        reply = think(Prompt(model="gpt-4o", system=req["messages"][0]["content"],
                             turns=[("user", req["messages"][1]["content"])]))
        return shadow.parse_grade(reply.text)

    assert shadow.combine(grade(bad, good), grade(good, bad)) == "loss"
    assert shadow.combine(grade(good, good), grade(good, good)) == "tie"
    assert shadow.combine(grade(good, bad), grade(bad, good)) == "win"


def test_a_floor_moves_only_on_enough_verdicts():
    """Tryout: two losses proposed floor 5 for a surface, and --apply wrote it."""
    floor, why = shadow.propose_floor(shadow.Tally(loss=2), 0.8, current_floor=1, premium_quality=5)
    assert floor == 1 and "2 judged answers" in why
    assert shadow.propose_floor(shadow.Tally(loss=shadow.MIN_JUDGED), 0.8, current_floor=1, premium_quality=5)[0] == 5


def test_a_stream_closed_by_the_client_after_done_is_still_evaluated():
    """Seen in a full run: the SDK closed the connection right after [DONE], Envoy's end of stream never
    reached the router stage, and the sampled answer was dropped."""
    from types import SimpleNamespace

    from extproc.shadow_runner import ShadowRunner

    runner = ShadowRunner(lambda: None, None, None, None)
    started = []
    runner._start = lambda exchange, answer: started.append(answer)   # the evaluation itself is e2e-tested
    whole, cut = SimpleNamespace(key="whole"), SimpleNamespace(key="cut")
    runner.captures = {"whole": bytearray(b'data: {"choices": []}\n\ndata: [DONE]\n\n'),
                       "cut": bytearray(b'data: {"choices": []}\n\n'), }
    runner.ended(whole)
    runner.ended(cut)
    assert started == [b'data: {"choices": []}\n\ndata: [DONE]\n\n'] and runner.captures == {}
