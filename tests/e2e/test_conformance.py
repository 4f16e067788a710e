"""Third-party conformance: llm-comply's OpenAI chat suite against the gateway, for a model behind each API."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import CLIENT_KEY, MODELS

# The one llm-comply test our models cannot take: it needs an o-series / gpt-5 reasoning model,
# and llm-comply skips it by model name. No other test may be skipped or fail.
EXPECTED_SKIPS = {"chat-reasoning-summary"}
# Tests whose request needs a capability the model is configured without: the gateway answers 422
# (the vLLM model has no vision, so its server never receives the image; tests/e2e/test_fidelity.py
# checks that 422 names the capability). llm-comply counts a 422 as a failure; nothing else may fail.
EXPECTED_REFUSALS = {"vllm": {"chat-image-input"}}


def _llm_comply() -> str:
    return shutil.which("llm-comply") or str(Path(sys.executable).parent / "llm-comply")


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "vllm", "azure_openai"])
def test_llm_comply_openai_chat(gateway, provider):
    result = subprocess.run(
        [_llm_comply(), "run", "--format", "openai-chat", "-u", gateway.base_url, "-m", MODELS[provider],
         "-k", CLIENT_KEY, "--json", "--timeout", "30"],
        capture_output=True, text=True, timeout=300)
    report = json.loads(result.stdout)
    results = report["results"] if isinstance(report, dict) else report
    by_status: dict[str, list[str]] = {}
    for r in results:
        by_status.setdefault(r["status"], []).append(r["id"])
    assert set(by_status.get("skipped", [])) <= EXPECTED_SKIPS, by_status
    refusals = EXPECTED_REFUSALS.get(provider, set())
    refused = [r for r in results if r["id"] in refusals]
    assert len(refused) == len(refusals) and all("HTTP 422" in r["errors"][0] for r in refused), refused
    failed = [r for r in results if r["status"] not in ("passed", "skipped") and r["id"] not in refusals]
    assert not failed, json.dumps(failed, indent=1)[:4000]
    assert len(by_status.get("passed", [])) >= len(results) - len(EXPECTED_SKIPS) - len(refusals)


def _run_llm_comply(gateway, fmt: str, model: str, *extra: str) -> list[dict]:
    result = subprocess.run(
        [_llm_comply(), "run", "--format", fmt, "-u", gateway.base_url, "-m", model, "-k", CLIENT_KEY, "--json",
         "--timeout", "30", *extra], capture_output=True, text=True, timeout=300)
    report = json.loads(result.stdout)
    return report["results"] if isinstance(report, dict) else report


# The Messages front door's suite, for models behind other provider APIs (translated) and Anthropic's own
# (passed through). Its extended-thinking test runs only for Claude model names: through the pass-through
# it passes; llm-comply skips it for the others (the gateway drops thinking there, README "Front doors").
MESSAGES_SKIPS = {"anth-thinking-display"}
# The Responses front door's suite: the reasoning summary needs an o-series / gpt-5 model (skipped by name).
RESPONSES_SKIPS = {"reasoning-summary"}


@pytest.mark.parametrize("provider", ["openai", "gemini", "anthropic"])
def test_llm_comply_anthropic_messages(gateway, provider):
    results = _run_llm_comply(gateway, "anthropic", MODELS[provider], "--auth-header", "x-api-key", "--no-bearer",
                              "-H", "anthropic-version:2023-06-01")
    _assert_passed(results, MESSAGES_SKIPS if provider != "anthropic" else set())


@pytest.mark.parametrize("provider", ["openai", "gemini", "anthropic"])
def test_llm_comply_open_responses(gateway, provider):
    _assert_passed(_run_llm_comply(gateway, "open-responses", MODELS[provider]), RESPONSES_SKIPS)


def _assert_passed(results: list[dict], skips: set[str]) -> None:
    by_status: dict[str, list[str]] = {}
    for r in results:
        by_status.setdefault(r["status"], []).append(r["id"])
    assert set(by_status.get("skipped", [])) <= skips, by_status
    failed = [r for r in results if r["status"] not in ("passed", "skipped")]
    assert not failed, json.dumps(failed, indent=1)[:4000]
    assert len(by_status.get("passed", [])) >= len(results) - len(skips)
