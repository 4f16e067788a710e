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
