"""The curve is the gateway's own decision (tryout 9 H2, M3, L2, L8, L11): at every threshold
`extproc explain --jsonl --curve` counts what `explain --jsonl --config <that threshold>` routes, for tool and
code requests too; bad rows go to stderr; `--target-share` prints a threshold that delivers the share."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

from extproc.config import load
from extproc.devstack import DEFAULT_ROUTING
from tests.unit.test_explain import ROOT, run, write

NOW = "1767225600"   # a fixed clock: time windows must not move between the runs compared
DEVSET = ROOT / "bench" / "devset" / "devset.jsonl"
QUALITY = {m.id: m.quality for m in load(DEFAULT_ROUTING).models.values()}

CODE_ASKS = ["Fix this:\n```python\ndef f(x):\nreturn x+1\n```\nIndentationError on line 2",
             "Why does this deadlock?\n```go\nmu.Lock()\ndefer mu.Unlock()\nch <- v\n```\nThe reader also locks mu.",
             "Rename the variable `tmp` to `total` in:\n```js\nlet tmp = 0;\nfor (const x of xs) tmp += x;\n```",
             "Make this thread-safe and explain the memory ordering:\n```cpp\nstd::atomic<int> n;\nif (n == 0) n = init();\n```",
             "What does `git rebase -i HEAD~3` do to these commits?\n```\npick a1 one\npick b2 two\npick c3 three\n```"]


def labelled_rows() -> list[dict]:
    """Tool loops (agent), code requests, a floored surface (support), a surface without premium models
    (drafts), and requests under no surface: every kind of row the threshold treats differently."""
    dev = [json.loads(line) for line in DEVSET.read_text().splitlines() if line.strip()]
    rows = [r for r in dev if r["surface"] == "agent"][:24]
    rows += [r for r in dev if r["surface"] == "support"][:8]
    rows += [{**r, "surface": "drafts"} for r in dev if r["surface"] == "email"][:8]
    rows += [{k: v for k, v in r.items() if k != "surface"} for r in dev if r["surface"] == "chat"][:16]
    rows += [{"id": f"code-{i}", "label": "complex" if i % 2 else "simple", "surface": "code",
              "body": {"model": "auto", "messages": [{"role": "user", "content": ask}]}}
             for i, ask in enumerate(CODE_ASKS)]
    return rows


def config_at(tmp_path, t: float, surfaces: list[str]) -> str:
    """The shipped config with threshold ``t`` for every row: each surface's premium_threshold, and for rows
    under no surface the classifier's cut and the reasoning class's band (the shipped config keeps them equal)."""
    d = yaml.safe_load(DEFAULT_ROUTING.read_text())
    for s in surfaces:
        d["surfaces"][s] = {**(d["surfaces"].get(s) or {}), "premium_threshold": t}
    d.setdefault("classifier", {})["premium_threshold"] = t
    d["routing_rules"]["complex_reasoning"]["min_score"] = t
    path = tmp_path / f"at-{t}.yaml"
    path.write_text(yaml.safe_dump(d))
    return str(path)


def counts(decisions: list[dict], rows: dict[str, dict]) -> dict:
    premium = [QUALITY[d["model"]] >= 5 for d in decisions]   # gpt-4o / claude-sonnet: the reasoning class's lead
    labels = [rows[d["id"]]["label"] for d in decisions]
    simple, complex_ = labels.count("simple"), labels.count("complex")
    s2p = sum(p and lab == "simple" for p, lab in zip(premium, labels))
    c2c = sum(not p and lab == "complex" for p, lab in zip(premium, labels))
    return {"n": len(decisions), "premium_share": round(sum(premium) / len(decisions), 4),
            "right": round((len(decisions) - s2p - c2c) / len(decisions), 4),
            "simple_to_premium": round(s2p / simple, 4) if simple else None,
            "complex_to_cheap": round(c2c / complex_, 4) if complex_ else None}


def test_the_curve_is_what_the_gateway_routes_at_each_threshold(tmp_path):
    rows = labelled_rows()
    path = write(tmp_path, "rows.jsonl", "\n".join(map(json.dumps, rows)))
    by_id = {r["id"]: r for r in rows}
    result = run("explain", "--jsonl", path, "--curve", "--now", NOW)
    assert result.returncode == 0, result.stderr
    curve = [json.loads(line) for line in result.stdout.splitlines()]
    surfaces = ["agent", "support", "drafts", "code"]
    for t in (0.3, 0.45, 0.6):
        routed = run("explain", "--jsonl", path, "--config", config_at(tmp_path, t, surfaces), "--now", NOW)
        assert routed.returncode == 0, routed.stderr
        decisions = [json.loads(line) for line in routed.stdout.splitlines()]
        assert all("model" in d for d in decisions), routed.stdout
        for group in [None, *surfaces]:
            mine = [d for d in decisions if group is None or by_id[d["id"]].get("surface") == group]
            point = next(p for p in curve if p["surface"] == group and p["threshold"] == t)
            assert {k: point[k] for k in counts(mine, by_id)} == counts(mine, by_id), (group, t)
    # the agent surface (all tool loops) does move with its threshold: the curve's promise is kept
    agent = {p["threshold"]: p for p in curve if p["surface"] == "agent"}
    assert agent[0.0]["premium_share"] == 1.0 and agent[1.0]["premium_share"] < 1.0
    assert all(p["fixed_share"] == 0.0 for p in curve)


def test_a_class_of_its_own_is_fixed_and_said_so(tmp_path):
    """A config that gives tool loops their own class: no threshold moves them, and the curve says it."""
    d = yaml.safe_load(DEFAULT_ROUTING.read_text())
    d["routing_rules"]["tool_use"] = {"tiers": [{"name": "primary", "models": ["gpt-4o"]}]}
    cfg = tmp_path / "tools.yaml"
    cfg.write_text(yaml.safe_dump(d))
    rows = [r for r in labelled_rows() if r.get("surface") == "agent"][:6]
    path = write(tmp_path, "rows.jsonl", "\n".join(map(json.dumps, rows)))
    result = run("explain", "--jsonl", path, "--curve", "--config", str(cfg), "--now", NOW)
    assert result.returncode == 0, result.stderr
    curve = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(p["fixed_share"] == 1.0 and p["premium_share"] == 1.0 for p in curve)
    assert "6 row(s) have a routing class of their own (fixed_share): no threshold moves them" in result.stderr


def test_bad_rows_go_to_stderr_and_no_usable_row_is_an_error(tmp_path):
    misspelled = [{"id": f"m{i}", "label": label, "prompt": "What's the capital of Peru?"}
                  for i, label in enumerate(["Simple", "complex ", "easy"])]
    result = run("explain", "--jsonl", write(tmp_path, "m.jsonl", "\n".join(map(json.dumps, misspelled))), "--curve")
    assert result.returncode == 2 and result.stdout == ""
    assert "line 1 (id 'm0'): skipped: label 'Simple' is not 'simple' or 'complex'" in result.stderr
    assert "no usable row (3 skipped)" in result.stderr
    # a row the gateway answers 400 (no messages) is skipped and counted, never scored; stdout is the curve
    good = {"id": "ok", "label": "simple", "prompt": "What's the capital of Peru?"}
    rows = [good, {"id": "bare", "label": "simple", "model": "auto"},
            {"id": "empty", "label": "simple", "body": {"model": "auto", "messages": []}}, "not json"]
    lines = "\n".join(json.dumps(r) if isinstance(r, dict) else r for r in rows)
    result = run("explain", "--jsonl", write(tmp_path, "r.jsonl", lines), "--curve")
    assert result.returncode == 0, result.stderr
    curve = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(curve) == 21 and all(set(p) >= {"threshold", "premium_share", "right"} and p["n"] == 1 for p in curve)
    assert "line 2 (id 'bare'): skipped: ValueError: not a request" in result.stderr
    assert "line 3 (id 'empty'): skipped: the gateway refuses it: 400 Invalid 'messages': empty array" in result.stderr
    assert "line 4: skipped: JSONDecodeError" in result.stderr and "3 row(s) skipped, 1 counted" in result.stderr
    # plain --jsonl: the gateway's 400 as the row's decision, not a route
    decided = run("explain", "--jsonl", write(tmp_path, "r.jsonl", lines))
    out = {d.get("id"): d for d in map(json.loads, decided.stdout.splitlines())}
    assert out["empty"]["status"] == 400 and "model" not in out["empty"] and out["ok"]["model"]


def test_target_share_prints_a_threshold_that_delivers_it(tmp_path):
    rows = [r for r in labelled_rows() if r.get("surface") == "agent"]
    path = write(tmp_path, "rows.jsonl", "\n".join(map(json.dumps, rows)))
    scores = [json.loads(line)["score"] for line in run("explain", "--jsonl", path, "--now", NOW).stdout.splitlines()]
    reachable = {sum(s >= x for s in scores) / len(scores) for x in scores} | {0.0}
    for target in (0.25, 0.5):
        result = run("explain", "--jsonl", path, "--target-share", str(target), "--now", NOW)
        assert result.returncode == 0, result.stderr
        snippet = yaml.safe_load(result.stdout.partition("set it in the routing config:\n")[2])
        t = snippet["surfaces"]["agent"]["premium_threshold"]
        assert f"agent ({len(rows)} rows): premium_threshold {t:.4f} -> premium share" in result.stdout
        routed = run("explain", "--jsonl", path, "--config", config_at(tmp_path, t, ["agent"]), "--now", NOW)
        decisions = [json.loads(line) for line in routed.stdout.splitlines()]
        share = sum(QUALITY[d["model"]] >= 5 for d in decisions) / len(decisions)
        assert f"premium share {share:.3f}" in result.stdout          # what it prints is what the gateway does
        assert abs(share - target) <= min(abs(r - target) for r in reachable) + 1e-9   # nothing reachable is nearer
    # support's quality floor sends every row premium: no threshold to offer, and no config lines
    support = [r for r in labelled_rows() if r.get("surface") == "support"]
    floored = run("explain", "--jsonl", write(tmp_path, "s.jsonl", "\n".join(map(json.dumps, support))),
                  "--target-share", "0.3", "--now", NOW)
    assert "support (8 rows): no threshold changes these rows (premium share 1.000" in floored.stdout
    assert "premium_threshold:" not in floored.stdout
    # a surface still to be configured, named on the command line: routed as today, grouped by its name
    new = run("explain", "--jsonl", path, "--target-share", "0.5", "--surface", "pipeline", "--now", NOW)
    assert new.returncode == 0 and "not a surface of this config yet" in new.stdout
    assert yaml.safe_load(new.stdout.partition("set it in the routing config:\n")[2])["surfaces"]["pipeline"]
    bad = run("explain", "--jsonl", path, "--target-share", "30")
    assert bad.returncode == 2 and "between 0 and 1" in bad.stderr


def test_plain_explain_says_a_kind_is_not_a_class(tmp_path):
    body = {"model": "auto", "messages": [{"role": "user", "content": CODE_ASKS[0]}]}
    out = run("explain", write(tmp_path, "req.json", body)).stdout
    assert "classifier: kind code, score" in out
    assert "(by the score's band: kind 'code' has no routing class of its own)" in out


def test_a_closed_pipe_ends_quietly(tmp_path):
    rows = "\n".join(json.dumps({"id": i, "prompt": f"say hello number {i}"}) for i in range(3000))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("LLM_GATEWAY_CONFIG", None)
    proc = subprocess.Popen([sys.executable, "-m", "extproc", "explain", "--jsonl", write(tmp_path, "r.jsonl", rows)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=ROOT)
    assert json.loads(proc.stdout.readline())["id"] == 0    # `| head -1`
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
