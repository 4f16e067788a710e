"""`python -m bench.eval_devset` on one's own rows (tryout 9 L7): without the `train` extra it evaluates and
says what to install (no traceback); training on someone's rows never replaces the shipped task model."""

from __future__ import annotations

import json
import subprocess
import sys

from bench import eval_devset
from tests.unit.test_explain import ROOT

MINE = [{"id": "hr-1", "label": "simple", "surface": "hr", "prompt": "How many vacation days do I get in my first year?"},
        {"id": "hr-2", "label": "complex", "surface": "hr",
         "body": {"model": "auto", "messages": [{"role": "system", "content": "You are the HR policy bot."},
                                                {"role": "user", "content": "Weigh the non-compete against state law."}]}},
        {"id": "pipe-1", "label": "complex", "surface": "pipeline",
         "messages": [{"role": "user", "content": "Why would an Airflow DAG with catchup duplicate rows?"}]},
        {"id": "pipe-2", "label": "simple", "surface": "pipeline", "prompt": "Rename column a to b in this SQL: SELECT a FROM t"}]


def run(*args):
    return subprocess.run([sys.executable, "-m", "bench.eval_devset", *args], capture_output=True, text=True,
                          timeout=300, cwd=ROOT)


def test_own_rows_are_evaluated_and_a_missing_extra_is_named(tmp_path, monkeypatch):
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in MINE))
    result = run("--data", str(data))
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0 and "4 requests" in result.stdout and "task-aware (now): n=" in result.stdout
    if eval_devset.trainer_missing():     # this environment without the `train` extra: it says what to install
        assert "skipped: leave-one-surface-out fits models, so it needs the train extra" in result.stdout
        assert "pip install -e '.[train]'" in result.stdout
    else:
        # four rows: a surface whose others' train rows lack a label is skipped and named, never a traceback
        assert "leave-one-surface-out" in result.stdout
        assert "mean AUC" in result.stdout or "skipped: the other surfaces' train rows" in result.stderr
    monkeypatch.setattr(eval_devset, "trainer_missing", lambda: "needs the train extra (sklearn missing)")
    monkeypatch.setattr(sys, "argv", ["eval_devset", "--train", "--data", str(data)])
    assert eval_devset.main() == 2


def test_training_on_your_rows_never_overwrites_the_shipped_model(tmp_path):
    mine = tmp_path / "mine.jsonl"
    shipped = eval_devset.DEVSET
    assert eval_devset.model_out([shipped], None) == eval_devset.MODEL            # the maintainers' retraining
    assert eval_devset.model_out([mine], None) == tmp_path / "mine.task_model.json"
    assert eval_devset.model_out([shipped, mine], None) == tmp_path / "mine.task_model.json"
    assert eval_devset.model_out([mine], eval_devset.MODEL) == eval_devset.MODEL   # only when asked by name


def test_a_bad_row_is_named_by_its_line(tmp_path):
    data = tmp_path / "mine.jsonl"
    data.write_text(json.dumps(MINE[0]) + "\n" + json.dumps({**MINE[1], "label": "Simple"}) + "\n")
    result = run("--data", str(data))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{data}:2: label 'Simple' is not 'simple' or 'complex'" in result.stderr
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps(MINE[0]) + "\n")
    both = run("--data", str(good), "--data", str(good))
    assert both.returncode == 1 and "id 'hr-1' is in" in both.stderr and "ids must be unique" in both.stderr
