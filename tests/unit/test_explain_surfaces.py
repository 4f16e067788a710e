"""`extproc explain --jsonl` routes each row under its own surface, and `--curve` shows what a surface's
quality floor decides whatever the threshold (tryout 6 L4)."""

from __future__ import annotations

import json

from extproc import calibration as K
from tests.unit.test_explain import run, write

FAQ = "Where can I download last month's invoice?"
PROOF = "Prove that there are infinitely many primes, step by step."


def rows_file(tmp_path, rows):
    return write(tmp_path, "rows.jsonl", "\n".join(map(json.dumps, rows)))


def test_each_row_is_routed_under_its_own_surface(tmp_path):
    rows = [{"id": "support", "surface": "support", "prompt": FAQ},     # quality floor 4 in the shipped config
            {"id": "plain", "prompt": FAQ},
            {"id": "grouping", "surface": "not-a-configured-surface", "prompt": FAQ}]
    result = run("explain", "--jsonl", rows_file(tmp_path, rows))
    assert result.returncode == 0, result.stderr
    out = {r["id"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert out["plain"]["model"] == "gpt-4o-mini"
    assert out["support"]["model"] == "gpt-4o"          # what the gateway serves a support request
    assert out["grouping"]["model"] == "gpt-4o-mini"    # an unknown surface only groups the curve
    # --surface on the command wins over the rows'
    forced = run("explain", "--jsonl", rows_file(tmp_path, rows), "--surface", "drafts")
    assert all(json.loads(line)["model"] != "gpt-4o" for line in forced.stdout.splitlines())


def test_the_curve_counts_a_floor_that_sends_every_request_premium(tmp_path):
    rows = [{"id": "1", "label": "simple", "surface": "support", "prompt": FAQ},
            {"id": "2", "label": "complex", "surface": "support", "prompt": PROOF},
            {"id": "3", "label": "simple", "surface": "drafts", "prompt": FAQ}]
    result = run("explain", "--jsonl", rows_file(tmp_path, rows), "--curve")
    assert result.returncode == 0, result.stderr
    pts = [json.loads(line) for line in result.stdout.splitlines()]
    support = [p for p in pts if p["surface"] == "support"]
    # the support floor (4) makes even the cheap choice premium: 100% premium at every threshold, no saving
    assert support and all(p["premium_share"] == 1.0 and p["floor_premium_share"] == 1.0 for p in support)
    assert all(p["saving"] == 0.0 for p in support)
    drafts = next(p for p in pts if p["surface"] == "drafts" and p["threshold"] == 0.5)
    assert drafts["floor_premium_share"] == 0.0 and drafts["premium_share"] == 0.0


def test_a_floored_row_is_premium_at_every_threshold():
    rows = [K.Scored(0.1, "simple", "s", 0.01, 0.01, floored=True), K.Scored(0.1, "simple", "s", 0.001, 0.01)]
    p = K.point(rows, 0.5)
    assert p["premium_share"] == 0.5 and p["floor_premium_share"] == 0.5 and p["simple_to_premium"] == 0.5
