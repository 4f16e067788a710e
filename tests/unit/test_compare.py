"""`extproc explain --jsonl FILE --compare NEW.yaml`: decision diffs, projected cost, tier mix, the check."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
EVAL = Path("/work/shared/eval/routing_eval.jsonl")
NOW = "1764500000"


def run(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("LLM_GATEWAY_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "extproc", *args], capture_output=True, text=True, env=env,
                          timeout=120, cwd=ROOT)


def new_config(tmp_path, edit) -> str:
    data = yaml.safe_load((ROOT / "config" / "routing.yaml").read_text())
    edit(data)
    path = tmp_path / "new-routing.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def requests_file(tmp_path) -> str:
    rows = [{"id": "short", "prompt": "hi"},
            {"id": "proof", "prompt": "Prove step by step that the square root of 2 is irrational, then write a "
                                      "Python function that checks the proof numerically and analyse its complexity."},
            {"id": "chat", "model": "auto", "messages": [{"role": "user", "content": "thanks!"}]}]
    path = tmp_path / "requests.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_a_new_policy_shows_which_requests_move_what_they_would_cost_and_the_tier_mix(tmp_path):
    # The new policy sends every simple query to the premium models first.
    def premium_first(d):
        tiers = d["routing_rules"]["simple_queries"]["tiers"]
        tiers[0]["models"], tiers[2]["models"] = tiers[2]["models"], tiers[0]["models"]
    new = new_config(tmp_path, premium_first)
    reqs = requests_file(tmp_path)
    result = run("explain", "--jsonl", reqs, "--compare", new, "--now", NOW, "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    diffs, summary = lines[:-1], lines[-1]
    plain = json.loads(run("explain", "--jsonl", reqs, "--now", NOW).stdout.splitlines()[0])
    assert plain["class"] == "simple_queries"
    moved = {d["id"]: d for d in diffs}
    assert "short" in moved and "chat" in moved and "proof" not in moved   # complex_reasoning is unchanged
    assert moved["short"]["old"]["tier"] == "simple_queries/primary" == moved["short"]["new"]["tier"]
    assert moved["short"]["old"]["model"] == plain["model"] and moved["short"]["new"]["model"] in (
        "gpt-4o", "claude-sonnet-4-6")
    assert moved["short"]["new"]["cost"] > moved["short"]["old"]["cost"]
    s = summary["summary"]
    assert (s["requests"], s["changed"]) == (3, 2)
    assert s["new"]["projected_cost_usd"] > s["old"]["projected_cost_usd"]
    assert sum(s["old"]["tier_mix"].values()) == sum(s["new"]["tier_mix"].values()) == 3
    assert summary["check"]["ok"] and "envoy --mode validate OK" in summary["check"]["output"]

    text = run("explain", "--jsonl", reqs, "--compare", new, "--now", NOW)
    assert text.returncode == 0, text.stderr
    assert "changed decisions 2 (66.7%)" in text.stdout and "tier mix (first choice)" in text.stdout
    assert f"{plain['model']} -> " in text.stdout and "check of the new config: OK" in text.stdout


def test_a_new_config_naming_a_cluster_envoy_lacks_fails_the_check(tmp_path):
    def new_provider(d):
        d["providers"]["newcloud"] = {"api": "openai", "host": "llm.newcloud.test", "api_key_env": "NEWCLOUD_KEY"}
        d["models"]["newcloud-small"] = {"provider": "newcloud", "price": {"input": 0.01, "output": 0.02},
                                         "quality": 3}
        d["routing_rules"]["simple_queries"]["tiers"][0]["models"].insert(0, "newcloud-small")
    result = run("explain", "--jsonl", requests_file(tmp_path), "--compare", new_config(tmp_path, new_provider),
                 "--now", NOW)
    assert result.returncode == 1
    assert "check of the new config: FAILED" in result.stdout
    assert "cluster 'newcloud' is not defined" in result.stdout


def test_an_invalid_new_config_or_a_bad_line_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("routing_rules: {simple: {tiers: []}}\n")
    result = run("explain", "--jsonl", requests_file(tmp_path), "--compare", str(bad))
    assert result.returncode == 2 and "invalid config" in result.stderr
    lines = tmp_path / "broken.jsonl"
    lines.write_text('[1, 2]\n{"nope": 1}\n')
    result = run("explain", "--jsonl", str(lines), "--compare", str(ROOT / "config" / "routing.yaml"))
    assert result.returncode == 2 and "no line is a request (2 skipped; line 1:" in result.stderr
    assert run("explain", "--compare", str(bad), "x.json").returncode == 2


def test_bad_lines_are_counted_and_named_and_the_rest_is_compared(tmp_path):
    """A bad line stopped the whole comparison at the first one; a log export of thousands of lines
    with a few truncated ones is still worth comparing."""
    good = Path(requests_file(tmp_path)).read_text().splitlines()
    lines = tmp_path / "mixed.jsonl"
    bad = ['{"prompt": "cut sho', "[1, 2]", '{"nope": 1}', "not json", '"text"', "{}", "7"]
    lines.write_text("\n".join([good[0], *bad[:3], good[1], *bad[3:], good[2]]) + "\n")
    same = str(ROOT / "config" / "routing.yaml")
    result = run("explain", "--jsonl", str(lines), "--compare", same, "--now", NOW, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])["summary"]
    assert summary["requests"] == 3
    assert summary["skipped_lines"]["count"] == 7
    assert [x["line"] for x in summary["skipped_lines"]["first"]] == [2, 3, 4, 6, 7]
    assert summary["skipped_lines"]["first"][0]["why"].startswith("JSONDecodeError")
    text = run("explain", "--jsonl", str(lines), "--compare", same, "--now", NOW).stdout
    assert "skipped lines     7 not requests (line 2, 3, 4, 6, 7, ...; line 2: JSONDecodeError" in text
    assert "requests          3" in text


def test_compare_reads_the_whole_routing_eval_set(tmp_path):
    # How long it takes is a benchmark's question (about 4 s here), not a test's: a timed test flakes on a
    # busy CI machine.
    assert EVAL.exists(), "the 15,416-prompt routing eval set is missing"
    new = new_config(tmp_path, lambda d: d["routing_rules"]["complex_reasoning"].update(min_score=0.6))
    result = run("explain", "--jsonl", str(EVAL), "--compare", new, "--now", NOW)
    assert result.returncode == 0, result.stderr
    assert "requests          15,416" in result.stdout


def test_refusals_are_grouped_and_never_read_as_savings(tmp_path):
    """Tryout: a new config that refused a surface read as -100% cost, one line per refused request."""
    def unservable(d):
        d["surfaces"]["drafts"]["quality_floor"] = 5      # no quality-5 model fits drafts' cost cap
    new = new_config(tmp_path, unservable)
    rows = [{"id": f"r{i}", "prompt": f"write a short thank-you note number {i}"} for i in range(6)]
    reqs = tmp_path / "drafts.jsonl"
    reqs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = run("explain", "--jsonl", str(reqs), "--compare", new, "--now", NOW, "--surface", "drafts",
                 "--json")
    last = json.loads(result.stdout.splitlines()[-1])
    summary = last.get("summary", last)
    assert summary["new"]["refused"] == {"422 no_model_available": 6}        # one group, not six lines
    assert summary["cost_of_requests_both_serve"] == [0.0, 0.0]             # nothing both serve: no saving
    text = run("explain", "--jsonl", str(reqs), "--compare", new, "--now", NOW, "--surface", "drafts")
    assert "refused: 0 old, 6 new" in text.stdout and text.stdout.count("refused by new") == 1


def test_rows_that_carry_their_body_are_compared_as_explain_jsonl_reads_them(tmp_path):
    # The dev set's rows (bench/devset) carry the request under `body`: `explain --jsonl` read them and
    # --compare refused every one ("no line is a request ... KeyError: 'prompt'", tryout 8).
    rows = [{"id": "dev-1", "label": "simple", "body": {"model": "auto", "messages": [
        {"role": "user", "content": "What time does the store open?"}]}}]
    path = tmp_path / "dev.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = run("explain", "--jsonl", str(path), "--compare", str(ROOT / "config" / "routing.yaml"), "--now", NOW,
                 "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.splitlines()[-1])["summary"]
    assert summary["requests"] == 1 and summary["skipped_lines"]["count"] == 0, summary


def test_compare_routes_each_row_by_its_surface_as_explain_jsonl_does(tmp_path):
    """A row's `surface` is routed as `explain --jsonl` routes it (drafts deny the premium models, support
    keeps quality 4 and up): --compare routed every row as if it had none, so the old side disagreed with
    plain `explain` on the same config, and a change to one surface's rules showed no diff."""
    proof = ("Prove step by step that the square root of 2 is irrational, then write a Python function that "
             "checks the proof numerically and analyse its complexity.")
    rows = [{"id": "proof-drafts", "surface": "drafts", "prompt": proof}, {"id": "proof", "prompt": proof},
            {"id": "hi-support", "surface": "support", "prompt": "hi"}, {"id": "hi", "prompt": "hi"},
            {"id": "hello-support", "surface": "support", "prompt": "hello"}]
    path = tmp_path / "surfaces.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    plain = {r["id"]: r["model"] for r in map(json.loads, run("explain", "--jsonl", str(path), "--now", NOW)
                                               .stdout.splitlines())}
    assert plain["proof-drafts"] != plain["proof"] and plain["hi-support"] != plain["hi"], plain   # surfaces matter

    def support_denies_its_first_choice(d):   # only the support surface's rules change
        d["surfaces"]["support"]["deny"] = [plain["hi-support"]]
    new = new_config(tmp_path, support_denies_its_first_choice)
    result = run("explain", "--jsonl", str(path), "--compare", new, "--now", NOW, "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(x) for x in result.stdout.splitlines()]
    diffs, summary = lines[:-1], lines[-1]["summary"]
    expected = {}
    for model in plain.values():
        expected[model] = expected.get(model, 0) + 1
    assert summary["old"]["models"] == expected, (summary["old"]["models"], plain)
    moved = {d["id"]: d for d in diffs}
    assert set(moved) == {"hi-support", "hello-support"}, moved
    assert moved["hi-support"]["old"]["model"] == plain["hi-support"] != moved["hi-support"]["new"]["model"]
