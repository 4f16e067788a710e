"""Shadow evaluation end to end: every cheap answer (sampling 100%) is re-asked of the reference model
and graded by the judge through Envoy; verdicts land in the ledger and the metrics, and drop when the
cheap simulators answer badly (the simulators' deterministic judge, extproc/simulators/core.py)."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx
import openai
import pytest

from extproc import shadow
from extproc.devstack import Stack, free_port
from extproc.keys import digest

from .conftest import CLIENT_KEY, MODELS, fault, ledger_records, reset_faults, routing_with, scrape, stack_with, wait_for
from .otlp_receiver import Receiver, attributes

SHADOW_KEY = "sk-gateway-shadow-internal"
CHEAP_SIMULATORS = ("openai", "azure_openai", "vllm")   # the primary tier; the reference and judge are Anthropic's
PROMPT = "Explain how photosynthesis works in green plants"
EVALUATED_S = 60.0   # an answer's evaluation (a reference and two judge calls) runs after it, in the background


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    port = free_port()
    receiver = Receiver().start()
    gw = stack_with(tmp_path_factory, "shadow", {
        "/surfaces/web": {"quality_floor": 1},
        "/tenants/demo/surfaces/-": "web",
        "/tenants/gateway": {"api_keys_sha256": [digest(SHADOW_KEY)], "surfaces": ["web"]},
        "/shadow": {"rates": {"*": 1.0}, "judge_model": "claude-sonnet-4-6", "reference_model": "claude-sonnet-4-6",
                    "tenant": "gateway", "gateway_url": f"http://127.0.0.1:{port}/v1",
                    "targets": {"web": 0.8}, "budget_usd_per_day": 1.0}},
        listen_port=port, otlp=receiver.address, env={shadow.KEY_ENV: SHADOW_KEY}).start()
    gw.receiver = receiver
    yield gw
    gw.stop()
    receiver.stop()


def verdicts(stack) -> dict[str, float]:
    text = scrape(stack)
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r'llm_gateway_shadow_verdicts_total\{.*surface="web".*verdict="(\w+)"\} (\S+)', line)
        if m:
            out[m[1]] = out.get(m[1], 0.0) + float(m[2])
    return out


def ask(stack, n: int, stream: bool = False) -> None:
    client = openai.OpenAI(base_url=stack.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=30,
                           default_headers={"x-llm-surface": "web"})
    for _ in range(n):
        messages = [{"role": "user", "content": PROMPT}]
        if stream:
            chunks = list(client.chat.completions.create(model="auto", stream=True, messages=messages))
            assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        else:
            r = client.chat.completions.with_raw_response.create(model="auto", messages=messages)
            assert r.headers["x-llm-model"] in {"gpt-4o-mini", "azure-gpt-4o-mini", "llama-3.1-8b-instruct"}


def test_sampled_answers_get_shadow_verdicts_that_drop_when_the_cheap_tier_answers_badly(stack):
    ask(stack, 3)
    ask(stack, 1, stream=True)
    scored = wait_for(lambda: [r for r in ledger_records(stack).values() if r.quality_source == "shadow"]
                      if len([r for r in ledger_records(stack).values() if r.quality_source == "shadow"]) >= 4 else None,
                      EVALUATED_S, "4 shadow verdicts")
    # Ordinary simulator answers echo the request, as the reference does: the rule grades them ties.
    assert len(scored) == 4 and {r.quality for r in scored} == {0.5}
    assert all(r.request_id.endswith("/shadow") and r.surface == "web" and r.request_class == "simple_queries"
               and r.outcome == shadow.SHADOW_OUTCOME for r in scored)
    assert wait_for(lambda: verdicts(stack).get("tie") == 4.0, EVALUATED_S, "4 ties counted")
    # The evaluation's own calls: tenant gateway (overhead), 1 reference + 2 judge calls each, never sampled.
    records = ledger_records(stack).values()
    overhead = [r for r in records if r.tenant == "gateway" and r.quality_source != "shadow"]
    assert len(overhead) == 12 and {r.model for r in overhead} == {"claude-sonnet-4-6"}
    assert sum(r.cost_usd for r in overhead) > 0

    for name in CHEAP_SIMULATORS:
        fault(stack, name, bad_answers=True)
    try:
        ask(stack, 4)
        assert wait_for(lambda: verdicts(stack).get("loss") == 4.0, timeout=30), (verdicts(stack), open(f"{stack.workdir}/stack.log").read()[-6000:])
    finally:
        reset_faults(stack, *CHEAP_SIMULATORS)
    v = verdicts(stack)
    assert (v.get("win", 0) + v["tie"]) / sum(v.values()) == 0.5     # was 1.0 before the fault
    text = scrape(stack)
    assert 'llm_gateway_shadow_win_or_tie_target{surface="web"} 0.8' in text
    assert len([r for r in ledger_records(stack).values() if r.quality_source == "shadow"]) == 8


def test_the_evaluation_span_links_to_the_request_it_evaluated(stack):
    ask(stack, 1)

    def linked(spans):
        evals = [sp for _, sp in spans if sp.name == "shadow evaluation"]
        requests = {sp.span_id: sp for _, sp in spans if sp.name.startswith("gateway ")}
        return [(e, requests[e.links[0].span_id]) for e in evals if e.links and e.links[0].span_id in requests]

    evaluation, request = stack.receiver.wait_for(linked, timeout=60)[0]
    assert evaluation.links[0].trace_id == request.trace_id
    assert attributes(evaluation)["llm.shadow.verdict"] in ("win", "tie", "loss")
    # The evaluation's calls are traced under it: their gateway spans are its children.
    stack.receiver.wait_for(lambda spans: [sp for _, sp in spans if sp.parent_span_id == evaluation.span_id])


def test_report_shows_win_rates_per_surface(stack):
    ask(stack, 1)
    wait_for(lambda: any(r.quality_source == "shadow" for r in ledger_records(stack).values()), EVALUATED_S, "a shadow verdict")
    out = subprocess.run([sys.executable, "-m", "extproc", "report", "--ledger", stack.ledger_url,
                          "--premium", "claude-sonnet-4-6", "--config", str(stack.routing)],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    assert "shadow evaluation" in out
    assert re.search(r"surface web\s+\d+ judged  win [\d.]+ \[[\d.]+-[\d.]+\]  tie .* target 0\.80", out), out
    assert re.search(r"class simple_queries\s+\d+ judged", out) and re.search(r"model (gpt-4o-mini|azure-gpt-4o-mini|llama-3.1-8b-instruct)\s+\d+ judged", out)


def test_make_run_wires_the_loop_and_a_model_list_fault_turns_verdicts_to_losses(tmp_path):
    """The shipped config under `make run`'s stack (Stack(shadow=True): a key for the shadow tenant and
    Envoy's URL), sampling raised to 100%: a drafts answer from a cheap model the fault names is judged a
    loss against gpt-4o, which shares the OpenAI simulator and still answers well."""
    path = routing_with(tmp_path, {"/shadow/rates": {"*": 1.0}})
    with Stack(routing=path, simulate=list(MODELS), demo_key=CLIENT_KEY, shadow=True) as gw:
        fault(gw, "openai", bad_answers=["gpt-4o-mini"])
        for name in ("azure_openai", "vllm"):
            fault(gw, name, bad_answers=True)
        client = openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=30,
                               default_headers={"x-llm-surface": "drafts"})
        served = client.chat.completions.with_raw_response.create(
            model="auto", messages=[{"role": "user", "content": PROMPT}])
        assert served.parse().choices[0].message.content == "Sorry, I am not sure."
        [verdict] = wait_for(lambda: [r for r in ledger_records(gw).values() if r.quality_source == "shadow"], EVALUATED_S,
                             "a shadow verdict")
        assert (verdict.quality, verdict.surface, verdict.model) == (0.0, "drafts", served.headers["x-llm-model"])
        calls = [r for r in ledger_records(gw).values() if r.tenant == "gateway" and r.quality_source is None]
        assert sorted(r.model for r in calls) == ["gpt-4o"] * 3      # the reference and the judge, twice


def test_the_daily_budget_caps_evaluation_spend(tmp_path):
    """Once a day's evaluation calls cost the budget, later samples are skipped (and counted), not run."""
    # the first evaluation spends the budget
    path = routing_with(tmp_path, {"/shadow/rates": {"*": 1.0}, "/shadow/budget_usd_per_day": 1e-9})
    with Stack(routing=path, simulate=list(MODELS), demo_key=CLIENT_KEY, shadow=True) as gw:
        client = openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=30,
                               default_headers={"x-llm-surface": "drafts"})
        client.chat.completions.create(model="auto", messages=[{"role": "user", "content": PROMPT}])
        wait_for(lambda: [r for r in ledger_records(gw).values() if r.quality_source == "shadow"], EVALUATED_S,
                 "a shadow verdict")
        for _ in range(2):
            client.chat.completions.create(model="auto", messages=[{"role": "user", "content": PROMPT}])
        wait_for(lambda: 'llm_gateway_shadow_skipped_total{reason="budget"} 2.0' in scrape(gw),
                 EVALUATED_S, "2 samples skipped for the budget")
        assert len([r for r in ledger_records(gw).values() if r.quality_source == "shadow"]) == 1
        spent = float(re.search(r"^llm_gateway_shadow_cost_usd_total (\S+)$", scrape(gw), re.M)[1])
        assert spent > 1e-9


def test_front_door_answers_are_evaluated_too(stack):
    """Tryout: every /v1/messages and /v1/responses answer was skipped as not_text (the runner read the
    client's Anthropic or Responses bytes, not the internal form they were made from)."""
    before = len([r for r in ledger_records(stack).values() if r.quality_source == "shadow"])
    headers = {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01", "x-llm-surface": "web"}
    r = httpx.post(f"{stack.base_url}/messages", headers=headers, timeout=30, json={
        "model": "auto", "max_tokens": 200, "messages": [{"role": "user", "content": PROMPT}]})
    assert r.status_code == 200 and r.json()["type"] == "message", r.text
    r = httpx.post(f"{stack.base_url}/responses", timeout=30,
                   headers={"authorization": f"Bearer {CLIENT_KEY}", "x-llm-surface": "web"},
                   json={"model": "auto", "input": PROMPT})
    assert r.status_code == 200 and r.json()["object"] == "response", r.text
    wait_for(lambda: len([r for r in ledger_records(stack).values() if r.quality_source == "shadow"]) == before + 2,
             EVALUATED_S, "2 more shadow verdicts")
