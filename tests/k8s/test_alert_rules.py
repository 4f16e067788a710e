"""The alert rules, checked and unit-tested by Prometheus' own promtool on synthetic series."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "k8s" / "overlays" / "observability" / "prometheusrule.yaml"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    assert found, "promtool is missing: `make test` installs Debian's prometheus package (system-deps)"
    return found


@pytest.fixture
def rules_file(tmp_path) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(yaml.safe_load(RULES.read_text())["spec"]))
    return path


def test_rules_are_valid_promql(promtool, rules_file):
    result = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _run_tests(promtool, rules_file, tests: dict) -> subprocess.CompletedProcess:
    test_path = rules_file.parent / "tests.yaml"
    test_path.write_text(yaml.safe_dump({"rule_files": [rules_file.name], "evaluation_interval": "1m",
                                         "tests": tests}))
    return subprocess.run([promtool, "test", "rules", str(test_path)], capture_output=True, text=True,
                          cwd=rules_file.parent)


def test_alerts_fire_on_the_conditions_they_promise(promtool, rules_file):
    tests = [
        {   # 5 failures per 100 attempts (4.8%): above 2% for more than 5 minutes
            "interval": "1m",
            "input_series": [
                {"series": 'llm_gateway_attempts_total{provider="openai",model="gpt-4o-mini",outcome="ok"}',
                 "values": "0+100x20"},
                {"series": 'llm_gateway_attempts_total{provider="openai",model="gpt-4o-mini",outcome="500"}',
                 "values": "0+5x20"},
                {"series": 'llm_gateway_attempts_total{provider="anthropic",model="claude",outcome="ok"}',
                 "values": "0+100x20"},
                {"series": 'llm_gateway_attempts_total{provider="anthropic",model="claude",outcome="429"}',
                 "values": "0+1x20"},   # 1%: below the threshold
                {"series": 'llm_gateway_budget_remaining_ratio{scope="tenant",name="acme:daily"}',
                 "values": "0.5 0.3 0.05 0.05 0.05"},
                {"series": 'llm_gateway_ejected{model="gpt-4o-mini"}', "values": "1x10"},
            ],
            "alert_rule_test": [
                {"eval_time": "15m", "alertname": "LLMProviderErrorRateHigh",
                 "exp_alerts": [{"exp_labels": {"severity": "warning", "provider": "openai"},
                                 "exp_annotations": {
                                     "summary": "openai: 4.762% of attempts fail",
                                     "description": "More than 2% of upstream attempts to openai failed over 5 "
                                                    "minutes (5xx, 429, resets, timeouts). Traffic falls back to "
                                                    "the next tier; see the status API (GET :9464/status) for "
                                                    "ejections and the failing models."}}]},
                {"eval_time": "4m", "alertname": "LLMBudgetNearlySpent",
                 "exp_alerts": [{"exp_labels": {"severity": "warning", "scope": "tenant", "name": "acme:daily"},
                                 "exp_annotations": {
                                     "summary": "tenant budget acme:daily has 5% left",
                                     "description": "Requests are being downgraded to cheaper models; when it is "
                                                    "spent they get 429 insufficient_quota (or the budget's free "
                                                    "tier model)."}}]},
                {"eval_time": "1m", "alertname": "LLMBudgetNearlySpent", "exp_alerts": []},
                {"eval_time": "5m", "alertname": "LLMModelEjected",
                 "exp_alerts": [{"exp_labels": {"severity": "info", "model": "gpt-4o-mini"},
                                 "exp_annotations": {
                                     "summary": "gpt-4o-mini is ejected by the gateway's health tracker"}}]},
            ],
        },
    ]
    result = _run_tests(promtool, rules_file, tests)
    assert result.returncode == 0, result.stdout + result.stderr


def test_latency_alert_compares_each_model_with_its_tier_target(promtool, rules_file):
    slow = 'llm_gateway_attempt_duration_seconds_bucket{provider="openai",model="gpt-4o-mini",le="%s"}'
    tests = [{
        "interval": "1m",
        "input_series": [
            # Every attempt takes 2-3 s: p95 ~2.95 s, above the 1.5 s target; a fast model stays quiet.
            {"series": slow % "1.5", "values": "0+0x30"},
            {"series": slow % "2.5", "values": "0+50x30"},
            {"series": slow % "3", "values": "0+100x30"},
            {"series": slow % "+Inf", "values": "0+100x30"},
            {"series": 'llm_gateway_latency_target_seconds{model="gpt-4o-mini"}', "values": "1.5x30"},
            {"series": 'llm_gateway_attempt_duration_seconds_bucket{provider="gemini",model="fast",le="0.5"}',
             "values": "0+100x30"},
            {"series": 'llm_gateway_attempt_duration_seconds_bucket{provider="gemini",model="fast",le="+Inf"}',
             "values": "0+100x30"},
            {"series": 'llm_gateway_latency_target_seconds{model="fast"}', "values": "3x30"},
        ],
        "alert_rule_test": [{"eval_time": "20m", "alertname": "LLMModelLatencyAboveTarget",
                             "exp_alerts": [{"exp_labels": {"severity": "warning", "provider": "openai",
                                                            "model": "gpt-4o-mini"},
                                             "exp_annotations": {
                                                 "summary": "gpt-4o-mini p95 2.95s is above its tier's target",
                                                 "description": "Interactive traffic is already being steered to "
                                                                "faster models; check the provider's status."}}]}],
    }]
    result = _run_tests(promtool, rules_file, tests)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shadow_alert_fires_when_a_surfaces_win_or_tie_upper_bound_is_below_its_target(promtool, rules_file):
    """Series of the shape the e2e shadow test produces (tests/e2e/test_shadow.py): the cheap simulator
    answers badly, so losses pile up on one surface; the bound is the Wilson upper bound (extproc.shadow)."""
    from extproc.shadow import wilson

    verdicts = 'llm_gateway_shadow_verdicts_total{class="simple_queries",surface="%s",model="gpt-4o-mini",' \
               'verdict="%s"}'
    # web: 1 tie and 4 losses a minute (win-or-tie 0.2); drafts: 9 ties and 1 loss (0.9); sparse: 15 losses
    # an hour, every one a loss (fewer than 20 judged an hour: no alert however bad).
    n_web, k_web = 5 * 60, 1 * 60     # one hour of web's verdicts, at the evaluation time below
    upper = wilson(k_web, n_web)[1]
    upper_broken = wilson(0, 60)[1]   # broken: only losses, one a minute (no win or tie series exists)
    tests = [{
        "interval": "1m",
        "input_series": [
            {"series": verdicts % ("web", "tie"), "values": "0+1x120"},
            {"series": verdicts % ("web", "loss"), "values": "0+4x120"},
            {"series": verdicts % ("drafts", "tie"), "values": "0+9x120"},
            {"series": verdicts % ("drafts", "loss"), "values": "0+1x120"},
            {"series": verdicts % ("sparse", "loss"), "values": "0+0.25x120"},
            {"series": 'llm_gateway_shadow_win_or_tie_target{surface="web"}', "values": "0.8x120"},
            {"series": 'llm_gateway_shadow_win_or_tie_target{surface="drafts"}', "values": "0.8x120"},
            {"series": 'llm_gateway_shadow_win_or_tie_target{surface="sparse"}', "values": "0.8x120"},
            {"series": verdicts % ("broken", "loss"), "values": "0+1x120"},
            {"series": 'llm_gateway_shadow_win_or_tie_target{surface="broken"}', "values": "0.8x120"},
        ],
        # PromQL's arithmetic and Python's differ in the last bit: compared to 1e-9.
        "promql_expr_test": [{"expr": f'abs(llm_gateway:shadow_win_or_tie_upper95:ratio1h{{surface="web"}} - {upper!r})'
                                      ' < bool 1e-9',
                              "eval_time": "100m",
                              "exp_samples": [{"labels": '{surface="web"}', "value": 1}]}],
        "alert_rule_test": [
            {"eval_time": "100m", "alertname": "LLMShadowWinOrTieBelowTarget",
             "exp_alerts": [{"exp_labels": {"severity": "warning", "surface": "broken"},
                             "exp_annotations": {
                                 "summary": f"broken: cheap-tier win-or-tie at most {100 * upper_broken:.4g}% "
                                            f"(95% upper bound), below its target",
                                 "description": "Shadow evaluation judged the answers served below the premium "
                                                "tier on broken worse than the reference model more often than "
                                                "its target allows. See `extproc report` (shadow evaluation) and "
                                                "`extproc report --propose` for a new quality_floor."}},
                            {"exp_labels": {"severity": "warning", "surface": "web"},
                             "exp_annotations": {
                                 "summary": f"web: cheap-tier win-or-tie at most {100 * upper:.4g}% (95% upper "
                                            f"bound), below its target",
                                 "description": "Shadow evaluation judged the answers served below the premium "
                                                "tier on web worse than the reference model more often than its "
                                                "target allows. See `extproc report` (shadow evaluation) and "
                                                "`extproc report --propose` for a new quality_floor."}}]},
            {"eval_time": "10m", "alertname": "LLMShadowWinOrTieBelowTarget", "exp_alerts": []},   # not yet 15m
        ],
    }]
    result = _run_tests(promtool, rules_file, tests)
    assert result.returncode == 0, result.stdout + result.stderr
