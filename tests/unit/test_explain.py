"""`extproc explain` and `extproc check`: the CLI as an operator runs it (subprocess), plus the classifier seam."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from extproc import cli, envoy_config

ROOT = Path(__file__).resolve().parents[2]


def run(*args, stdin=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("LLM_GATEWAY_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "extproc", *args], capture_output=True, text=True, env=env,
                          input=stdin, timeout=120, cwd=ROOT)


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


HI = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}


def test_explain_prints_the_decision_and_every_reason(tmp_path):
    result = run("explain", write(tmp_path, "req.json", HI), "--surface", "drafts")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "surface: drafts" in out and "route:      alias 'auto' -> class" in out
    assert "  1. " in out
    assert "claude-sonnet-4-6 [tertiary]: denied by surface 'drafts'" in out


def test_explain_json(tmp_path):
    # --now 0 (a Wednesday evening in New York): outside batch's business-hours window, whose cost cap
    # excludes every quality-4 model (the test failed whenever it ran during US business hours)
    result = run("explain", write(tmp_path, "req.json", {**HI, "model": "complex_reasoning"}), "--surface", "support",
                 "--workload", "batch", "--json", "--now", "0")
    assert result.returncode == 0, result.stderr
    d = json.loads(result.stdout)
    assert d["class"] == "complex_reasoning" and d["workload"] == "batch" and d["surface"] == "support"
    assert d["model"] == d["candidates"][0]["model"] == "gpt-4o"         # batch: the cheaper quality-5 model
    assert {x["model"] for x in d["dropped"]} >= {"gemini-3.5-flash-lite", "gpt-4o-mini"}
    assert all("below quality floor 4" in x["reason"] for x in d["dropped"])
    assert d["headers"]["x-llm-class"] == "complex_reasoning"


def test_explain_tenant_and_no_route(tmp_path):
    d = json.loads(run("explain", write(tmp_path, "req.json", HI), "--tenant", "nightly", "--json",
                       "--now", "0").stdout)
    assert (d["tenant"], d["workload"], d["surface"]) == ("nightly", "batch", "drafts")
    assert d["model"] == "llama-3.1-8b-instruct"
    big = {**HI, "model": "gpt-4o", "max_tokens": 100000}
    result = run("explain", write(tmp_path, "big.json", big), "--surface", "drafts")
    assert result.returncode == 1
    assert "no route: 422 no model satisfies surface 'drafts' allow/deny list" not in result.stdout
    assert "no route: 422 no model satisfies max_cost_per_1k 0.002" in result.stdout


def test_explain_jsonl_chat_bodies_and_eval_rows(tmp_path):
    lines = [json.dumps({"id": "a", **HI}),
             json.dumps({"id": "b", "prompt": "What is 2+2?", "split": "test"}),
             json.dumps({"id": "c", **HI, "model": "claude-haiku-4-5"}),
             json.dumps({"id": "d", **HI, "model": "ghost"}),
             ""]
    result = run("explain", "--jsonl", write(tmp_path, "in.jsonl", "\n".join(lines)), "--surface", "support")
    assert result.returncode == 0
    rows = [json.loads(x) for x in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["a", "b", "c", "d"]
    for r in rows[:2]:
        assert set(r) == {"id", "class", "score", "model", "plan"} and r["model"] == r["plan"][0]
        assert r["model"] in ("gpt-4o", "claude-sonnet-4-6") and len(r["plan"]) <= 3
    assert "below quality floor 4" in rows[2]["error"] and rows[2]["status"] == 422
    assert rows[3]["status"] == 404
    assert "2 request(s) could not be routed" in result.stderr


def test_explain_uses_the_classifier_score(capsys, tmp_path):
    """Class and score come from the configured classifier; the score is what the eval sweeps."""
    rows = [{"id": "easy", "prompt": "What is the capital of France?"},
            {"id": "hard", "prompt": "Janet has 3 times as many marbles as Tom. Together they have 48 marbles, "
                                     "and Janet gives 6 to Tom. How many more marbles does Janet have than Tom "
                                     "now? Show your reasoning step by step."}]
    assert cli.main(["explain", "--jsonl", write(tmp_path, "in.jsonl", "\n".join(map(json.dumps, rows)))]) == 0
    easy, hard = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert (easy["id"], easy["class"], easy["model"]) == ("easy", "simple_queries", "gpt-4o-mini")
    assert (hard["id"], hard["class"], hard["model"]) == ("hard", "complex_reasoning", "gpt-4o")
    assert 0 <= easy["score"] < hard["score"] <= 1
    assert cli.main(["explain", write(tmp_path, "req.json", HI), "--json"]) == 0
    features = json.loads(capsys.readouterr().out)["classification"]["features"]
    assert features and "tokens" in features


def test_explain_bad_input():
    assert run("explain").returncode == 2
    result = run("explain", "/nonexistent.json")
    assert result.returncode == 2 and "cannot read /nonexistent.json" in result.stderr


# ---- check ----------------------------------------------------------------------------------------------

def test_check_ok_runs_envoy_validate():
    result = run("check")
    assert result.returncode == 0, result.stderr
    assert "envoy --mode validate OK" in result.stdout


def test_check_missing_cluster(tmp_path):
    routing = write(tmp_path, "routing.yaml", """
providers: {openai: {api: openai}, mistral: {api: openai, cluster: mistral}}
models: {m: {provider: openai}, x: {provider: mistral}}
routing: {default_model: m}
""")
    result = run("check", "--config", routing, "--no-envoy-validate")
    assert result.returncode == 1
    assert "providers.mistral: cluster 'mistral' is not defined in" in result.stderr


def test_check_cluster_not_in_route_matcher(tmp_path):
    envoy = envoy_config.load()
    envoy["static_resources"]["clusters"].append({**envoy["static_resources"]["clusters"][-1], "name": "mistral"})
    envoy_path = tmp_path / "envoy.yaml"
    envoy_config.dump(envoy, envoy_path)
    routing = write(tmp_path, "routing.yaml", """
providers: {mistral: {api: openai}}
models: {x: {provider: mistral}}
""")
    result = run("check", "--config", routing, "--envoy", str(envoy_path), "--no-envoy-validate")
    assert result.returncode == 1 and "not in the route's x-llm-try-N matcher" in result.stderr


def test_check_invalid_routing_config(tmp_path):
    result = run("check", "--config", write(tmp_path, "r.yaml", "routing_rules: {c: {primary: ghost}}"))
    assert result.returncode == 1
    assert "routing_rules.c.primary: unknown model 'ghost'" in result.stderr


def test_check_envoy_validate_failure(tmp_path):
    envoy = envoy_config.load()
    envoy["static_resources"]["clusters"][0]["connect_timeout"] = "forever"
    envoy_path = tmp_path / "envoy.yaml"
    envoy_config.dump(envoy, envoy_path)
    result = run("check", "--envoy", str(envoy_path))
    assert result.returncode == 1 and "envoy --mode validate failed" in result.stderr


def test_check_seed_document(tmp_path):
    seed = ('{"routing_rules": {"simple_queries": {"primary": "gpt-3.5-turbo", "fallback": "claude-haiku", '
            '"max_cost_per_1k": 0.002}, "complex_reasoning": {"primary": "gpt-4", "fallback": "claude-opus", '
            '"max_latency_ms": 5000}}}')
    result = run("check", "--config", write(tmp_path, "seed.json", seed), "--no-envoy-validate")
    assert result.returncode == 0, result.stderr
    assert "(4 models, 2 routing classes)" in result.stdout


@pytest.mark.parametrize("argv", [["envoy-config", "--help"], ["serve", "--help"], ["dev", "--help"]])
def test_other_subcommands_still_parse(argv):
    assert run(*argv).returncode == 0
