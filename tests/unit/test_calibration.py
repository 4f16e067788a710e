"""Calibration: the cost/quality curve on labelled traffic (extproc.calibration), a surface's own
premium_threshold in the policy and the config, and `extproc explain --curve` / `--served-by`."""

from __future__ import annotations

import json

import pytest
import yaml

from extproc import calibration as K
from extproc.classify import Classification
from extproc.config import ConfigError, load, loads
from extproc.devstack import DEFAULT_ROUTING
from extproc.policy import decide
from tests.unit.test_explain import run, write

ROWS = [K.Scored(0.9, "complex", "a", 0.001, 0.01), K.Scored(0.6, "simple", "a", 0.001, 0.01),
        K.Scored(0.2, "simple", "b", 0.002, 0.02), K.Scored(0.4, "complex", "b", 0.002, 0.02)]


def test_point_counts_both_errors_and_the_saving():
    p = K.point(ROWS, 0.5)
    assert p["premium_share"] == 0.5 and p["right"] == 0.5
    assert p["simple_to_premium"] == 0.5 and p["complex_to_cheap"] == 0.5
    # routed: 0.01 + 0.01 + 0.002 + 0.002 = 0.024 of an all-premium 0.06
    assert p["saving"] == pytest.approx(1 - 0.024 / 0.06, abs=1e-4)


def test_curve_is_per_surface_and_for_all_rows():
    pts = K.curve(ROWS, [0.0, 0.5, 1.0])
    assert {(p["surface"], p["threshold"]) for p in pts} == {(s, t) for s in (None, "a", "b") for t in (0.0, 0.5, 1.0)}
    assert all(p["premium_share"] == 1.0 and p["saving"] == 0.0 for p in pts if p["threshold"] == 0.0)
    b = next(p for p in pts if p["surface"] == "b" and p["threshold"] == 0.5)
    assert b["premium_share"] == 0.0 and b["complex_to_cheap"] == 1.0


def test_threshold_for_a_target_premium_share():
    # cuts fall halfway between neighbouring scores (0.9, 0.6, 0.4, 0.2)
    assert K.threshold_for_share(ROWS, 0.25) == 0.75 and K.point(ROWS, 0.75)["premium_share"] == 0.25
    assert K.threshold_for_share(ROWS, 0.5) == 0.5 and K.point(ROWS, 0.5)["premium_share"] == 0.5
    assert K.threshold_for_share(ROWS, 0.3) == 0.75          # the nearest share, 0.25
    assert K.threshold_for_share(ROWS, 0.0) > 0.9 and K.point(ROWS, K.threshold_for_share(ROWS, 0.0))["premium_share"] == 0
    # a floored row is premium whatever the threshold: 0 is out of reach, the nearest is 1 of 2
    floored = [K.Scored(0.1, "simple", "s", 0.01, 0.01, floored=True), K.Scored(0.3, "simple", "s", 0.001, 0.01)]
    assert K.point(floored, K.threshold_for_share(floored, 0.0))["premium_share"] == 0.5


def _classification(score):
    return Classification("complex_reasoning" if score >= 0.52 else "simple_queries", 0.9, score, {})


def test_a_surface_threshold_remakes_the_simple_or_premium_choice():
    base = load(DEFAULT_ROUTING)
    text = open(DEFAULT_ROUTING).read().replace("  drafts:                        # the draft generator",
                                                "  calibrated:\n    premium_threshold: 0.3\n  drafts:                        # the draft generator")
    cfg = loads(text, "calibrated.yaml")
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    c = _classification(0.4)
    assert decide(base, body, "chat", {}, classification=c).route_class == "simple_queries"
    plan = decide(cfg, body, "chat", {"x-llm-surface": "calibrated"}, classification=c)
    assert plan.route_class == "complex_reasoning" and plan.models[0].quality == 5
    assert decide(cfg, body, "chat", {}, classification=c).route_class == "simple_queries"   # other surfaces keep theirs


def test_surface_threshold_is_validated():
    text = open(DEFAULT_ROUTING).read().replace("    quality_floor: 4\n", "    quality_floor: 4\n    premium_threshold: 1.5\n", 1)
    with pytest.raises(ConfigError, match="surfaces.support.premium_threshold"):
        loads(text, "bad.yaml")


def test_explain_curve_on_a_labelled_file(tmp_path):
    rows = [{"id": "1", "label": "simple", "surface": "s", "body": {"messages": [
                {"role": "system", "content": "You format data."},
                {"role": "user", "content": "Convert this CSV to a Markdown table.\n\na,b\n1,2\n3,4"}]}},
            {"id": "2", "label": "complex", "surface": "s", "prompt": "Prove that there are infinitely many primes, step by step."}]
    result = run("explain", "--jsonl", write(tmp_path, "l.jsonl", "\n".join(map(json.dumps, rows))), "--curve")
    assert result.returncode == 0, result.stderr
    pts = [json.loads(line) for line in result.stdout.splitlines()]
    assert {p["surface"] for p in pts} == {None, "s"} and len(pts) == 42
    top = next(p for p in pts if p["surface"] is None and p["threshold"] == 0.0)
    assert top["premium_share"] == 1.0 and top["saving"] == 0.0
    assert any(p["right"] == 1.0 and p["saving"] > 0 for p in pts)


def test_explain_curve_needs_labels(tmp_path):
    result = run("explain", "--jsonl", write(tmp_path, "l.jsonl", json.dumps({"id": "x", "prompt": "hi"})), "--curve")
    assert result.returncode == 2 and result.stdout == ""
    assert "skipped: no 'label' (simple|complex)" in result.stderr and "no usable row" in result.stderr


def test_explain_shows_when_affinity_decided(tmp_path):
    body = {"model": "auto", "messages": [{"role": "system", "content": "You are a helpful assistant."},
                                          {"role": "user", "content": "hi"}, {"role": "assistant", "content": "Hello!"},
                                          {"role": "user", "content": "thanks!"}]}
    path = write(tmp_path, "req.json", body)
    plain = run("explain", path)
    assert "affinity:" not in plain.stdout
    # the default rule (affinity_keep: cost): a premium pin whose short prefix saves nothing gives way
    released = run("explain", path, "--served-by", "claude-sonnet-4-6@complex_reasoning")
    assert released.returncode == 0, released.stderr
    assert "affinity:   affinity released: claude-sonnet-4-6" in released.stdout
    assert "  1. claude-sonnet-4-6" not in released.stdout
    config = yaml.safe_load(DEFAULT_ROUTING.read_text())
    config["routing"]["affinity_keep"] = "always"
    always = tmp_path / "always.yaml"
    always.write_text(yaml.safe_dump(config))
    kept = run("explain", path, "--served-by", "claude-sonnet-4-6@complex_reasoning", "--config", str(always))
    assert kept.returncode == 0, kept.stderr
    assert "affinity:   affinity: claude-sonnet-4-6 kept" in kept.stdout and "  1. claude-sonnet-4-6" in kept.stdout
    bad = run("explain", path, "--served-by", "no-such-model")
    assert bad.returncode == 2 and "unknown model 'no-such-model'" in bad.stderr
    # tryout 9 L3: an unknown class was accepted silently and explained a pin that cannot exist
    for spec in ("gpt-4o@nosuchclass", "gpt-4o@"):
        bad_class = run("explain", path, "--served-by", spec)
        assert bad_class.returncode == 2 and "unknown class" in bad_class.stderr and "complex_reasoning" in bad_class.stderr
        assert bad_class.stdout == ""


def test_a_surface_threshold_moves_code_and_tool_requests_too():
    """Tryout 9 H2: the threshold did nothing for kinds without a class of their own (code, tool_use ...),
    whose class the score band gives; a kind the config gives its own class keeps it."""
    from extproc.policy import at_threshold, threshold_moves
    text = open(DEFAULT_ROUTING).read().replace("  drafts:                        # the draft generator",
                                                "  calibrated:\n    premium_threshold: 0.3\n  drafts:                        # the draft generator")
    cfg = loads(text, "calibrated.yaml")
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    for kind in ("code", "tool_use", "long_context", "vision", "structured_output"):
        c = Classification(kind, 0.9, 0.4, {})
        assert threshold_moves(cfg, c)
        assert decide(cfg, body, "chat", {}, classification=c).route_class == "simple_queries"   # the band: 0.4 < 0.52
        assert decide(cfg, body, "chat", {"x-llm-surface": "calibrated"}, classification=c).route_class == "complex_reasoning"
    d = yaml.safe_load(text)
    d["routing_rules"]["tool_use"] = {"tiers": [{"name": "primary", "models": ["gpt-4o-mini"]}]}
    own = loads(yaml.safe_dump(d), "own.yaml")
    c = Classification("tool_use", 0.9, 0.4, {})
    assert not threshold_moves(own, c) and at_threshold(own, c, 0.0) is c
    assert decide(own, body, "chat", {"x-llm-surface": "calibrated"}, classification=c).route_class == "tool_use"


def test_threshold_for_share_equals_the_operating_point_it_sweeps():
    """Review 8: one operating point per cut was quadratic (4,000 rows in 4.5 s); the sweep must choose what
    point() would: for random rows (floors, fixed classes, surfaces without premium) and every target share."""
    import random
    from extproc.calibration import Scored, point, threshold_for_share
    rng = random.Random(7)
    rows = [Scored(round(rng.random(), 3), None, None, 1.0, 3.0, floored=rng.random() < 0.1,
                   moves=rng.random() > 0.1, premium_above=rng.random() > 0.05) for _ in range(400)]
    for share in (0.0, 0.1, 0.33, 0.5, 0.9, 1.0):
        t = threshold_for_share(rows, share)
        best = min(abs(point(rows, c)["premium_share"] - share) for c in [0.0, *sorted({r.score for r in rows}), 1.0])
        assert abs(point(rows, t)["premium_share"] - share) <= best + 1e-9, (share, t)
