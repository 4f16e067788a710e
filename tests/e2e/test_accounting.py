"""Cost accounting end to end: metrics after a scripted workload, budgets that downgrade then refuse,
quality feedback, the usage ledger and the savings report, all through the real gateway.

Prices here are made steep (USD per 1M tokens) so a handful of requests moves a budget: every chat
model costs $100 per 1M output tokens except llama-3.1-8b-instruct at $10.
"""

from __future__ import annotations

import re
import subprocess
import sys

import httpx
import pytest
import yaml

from extproc.devstack import ROOT
from extproc.keys import digest

from .conftest import (AUTH, CLIENT_KEY, ledger_records, ledger_row, metric, scrape, shipped_routing, stack_with,
                       wait_for)

BUDGET = 0.005
TIGHT_KEY = "sk-tight-tenant"
CAPPED_KEY = "sk-capped-tenant"


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    prices = {f"/models/{model_id}/price": {"input": 1.0,
                                            "output": 10.0 if model_id == "llama-3.1-8b-instruct" else 100.0}
              for model_id, model in shipped_routing()["models"].items()
              if "embeddings" not in model.get("endpoints", ["chat"])}
    with stack_with(tmp_path_factory, "accounting", {
            **prices,
            "/budgets": {"near_fraction": 0.5, "tenants": {"tight": {"daily": BUDGET}, "capped": {"daily": BUDGET}}},
            "/tenants/tight": {"workload": "interactive", "api_keys_sha256": [digest(TIGHT_KEY)]},
            "/tenants/capped": {"workload": "interactive", "api_keys_sha256": [digest(CAPPED_KEY)]}}) as stack:
        yield stack


def chat(gw, content="hi", **headers) -> httpx.Response:
    return httpx.post(f"{gw.base_url}/chat/completions", timeout=30, headers={**AUTH, **headers}, json={
        "model": "auto", "max_tokens": 20, "messages": [{"role": "user", "content": content}]})


def test_metrics_count_what_the_workload_did(gw):
    before = scrape(gw)
    for _ in range(3):
        assert chat(gw).status_code == 200
    assert httpx.post(f"{gw.base_url}/chat/completions", headers=AUTH,
                      json={"model": "nope", "messages": []}).status_code == 400
    after = scrape(gw)

    def delta(name, **labels):
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert delta("llm_gateway_requests_total", model="gpt-4o-mini", status="200") == 3
    assert delta("llm_gateway_request_duration_seconds_count", model="gpt-4o-mini") == 3
    assert delta("llm_gateway_request_duration_seconds_bucket", model="gpt-4o-mini", le="+Inf") == 3
    assert delta("llm_gateway_requests_total", status="400") == 1
    assert delta("llm_gateway_attempts_total", model="gpt-4o-mini", outcome="ok") == 3
    tokens_out = delta("llm_gateway_tokens_total", model="gpt-4o-mini", direction="output")
    tokens_in = delta("llm_gateway_tokens_total", model="gpt-4o-mini", direction="input")
    assert tokens_out > 0 and tokens_in > 0
    # Cost = reported usage x catalog prices ($1 in, $100 out per 1M tokens).
    assert delta("llm_gateway_cost_usd_total", model="gpt-4o-mini") == pytest.approx(
        (tokens_in * 1.0 + tokens_out * 100.0) / 1e6, rel=1e-6)
    assert "llm_gateway_inflight" in after and "llm_gateway_ejected" in after


def test_a_tenant_crossing_its_budget_is_downgraded_then_refused(gw):
    models, refusal = [], None
    for _ in range(60):
        response = chat(gw, authorization=f"Bearer {TIGHT_KEY}")
        if response.status_code == 429:
            refusal = response
            break
        assert response.status_code == 200, response.text
        models.append(response.headers["x-llm-model"])
    assert refusal is not None, models
    error = refusal.json()["error"]
    assert error["type"] == "insufficient_quota" and error["code"] == "insufficient_quota"
    assert "budget" in error["message"]
    # First the usual model, then (budget nearly spent) the cheap one, then nothing.
    assert models[0] == "gpt-4o-mini" and "llama-3.1-8b-instruct" in models
    first_cheap = models.index("llama-3.1-8b-instruct")
    assert set(models[:first_cheap]) == {"gpt-4o-mini"} and set(models[first_cheap:]) == {"llama-3.1-8b-instruct"}
    # Other tenants are not affected.
    assert chat(gw).headers["x-llm-model"] == "gpt-4o-mini"
    budget = re.search(r'llm_gateway_budget_remaining_usd\{name="tight:daily",scope="tenant"\} (\S+)', scrape(gw))
    assert budget and float(budget.group(1)) < BUDGET * 0.1


def test_feedback_reaches_the_ledger_and_the_report(gw, tmp_path):
    response = chat(gw, content="rate me")
    request_id = response.headers["x-request-id"]
    # Another tenant can neither score it nor learn anything about it: the unknown id's answer, word for word.
    unknown = httpx.post(f"{gw.base_url}/feedback", headers=AUTH, json={"request_id": "nope", "score": 1})
    assert unknown.status_code == 404 and unknown.json()["error"]["param"] == "request_id"
    other = httpx.post(f"{gw.base_url}/feedback", headers={"authorization": f"Bearer {TIGHT_KEY}"},
                       json={"request_id": request_id, "score": 1})
    assert other.status_code == 404 and request_id in other.json()["error"]["message"]
    assert other.json()["error"]["message"].replace(request_id, "nope") == unknown.json()["error"]["message"]
    assert httpx.post(f"{gw.base_url}/feedback", json={"request_id": request_id, "score": 1}).status_code == 401
    feedback = httpx.post(f"{gw.base_url}/feedback", headers=AUTH,
                          json={"request_id": request_id, "score": 0.25, "source": "e2e"})
    assert feedback.status_code == 200, feedback.text
    assert feedback.json()["model"] == "gpt-4o-mini"
    bad = httpx.post(f"{gw.base_url}/feedback", headers=AUTH, json={"request_id": request_id, "score": "great"})
    assert bad.status_code == 400

    html = tmp_path / "report.html"
    result = subprocess.run(
        [sys.executable, "-m", "extproc", "report", "--config", str(gw.routing), "--premium", "gpt-4o",
         "--ledger", f"sqlite:///{gw.workdir}/ledger.db", "--html", str(html)],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "gpt-4o-mini" in result.stdout and "llama-3.1-8b-instruct" in result.stdout
    assert "0.25" in result.stdout            # the quality score, by model
    assert html.read_text().count("<svg") >= 3


def test_every_request_leaves_a_usage_record(gw):
    response = chat(gw, content="record me")
    request_id = response.headers["x-request-id"]
    record = ledger_row(gw, request_id, final=False, timeout=5)
    assert (record.model, record.provider, record.status, record.attempts) == ("gpt-4o-mini", "openai", 200, 1)
    assert record.input_tokens > 0 and record.output_tokens > 0 and record.cost_usd > 0
    assert 0 < record.ttft_ms <= record.latency_ms < 5000
    assert (record.request_class, record.workload) == ("simple_queries", "interactive")


def test_the_ledger_and_the_report_name_the_api_the_client_spoke(gw):
    """Front-door traffic (/v1/messages, /v1/responses) is chat inside the gateway: it was recorded and
    reported as chat. The record keeps the client's API and the report's by-endpoint rows show it."""
    sent = {
        "anthropic_messages": httpx.post(f"{gw.base_url}/messages", timeout=30, headers={
            "x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"}, json={
            "model": "claude-haiku-4-5", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}),
        "openai_responses": httpx.post(f"{gw.base_url}/responses", timeout=30, headers=AUTH, json={
            "model": "gpt-4o-mini", "input": "hi", "max_output_tokens": 20}),
        "openai_chat": chat(gw, content="hi from chat"),
        "openai_embeddings": httpx.post(f"{gw.base_url}/embeddings", timeout=30, headers=AUTH, json={
            "model": "text-embedding-3-small", "input": "hi"}),
    }
    assert all(r.status_code == 200 for r in sent.values()), {k: r.text[:200] for k, r in sent.items()}
    ids = {r.headers["x-request-id"]: api for api, r in sent.items()}

    records = {request_id: ledger_row(gw, request_id) for request_id in ids}
    assert {rid: r.client_api for rid, r in records.items()} == ids
    result = subprocess.run(
        [sys.executable, "-m", "extproc", "report", "--config", str(gw.routing), "--premium", "gpt-4o",
         "--ledger", f"sqlite:///{gw.workdir}/ledger.db"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    section = result.stdout.split("by endpoint", 1)[1].split("\n\n", 1)[0]
    rows = {line.split()[0] for line in section.splitlines()[2:] if line.strip()}
    assert {"chat", "messages", "responses", "embeddings"} <= rows, section


def test_a_spent_budget_answers_429_with_retry_after_until_a_reload_raises_it(gw):
    import datetime as dt
    import time

    refusal = served = None
    for _ in range(60):
        response = chat(gw, authorization=f"Bearer {CAPPED_KEY}")
        if response.status_code == 429:
            refusal = response
            break
        assert response.status_code == 200, response.text
        served = response
    assert refusal is not None and served is not None
    # The last request served may still hold its reservation (its estimate) until it settles at its
    # billed cost.
    ledger_row(gw, served.headers["x-request-id"])
    assert refusal.json()["error"]["code"] == "insufficient_quota"
    # Retry when the daily window (UTC) ends.
    now = dt.datetime.now(dt.timezone.utc)
    midnight = dt.datetime(now.year, now.month, now.day, tzinfo=dt.timezone.utc) + dt.timedelta(days=1)
    assert abs(int(refusal.headers["retry-after"]) - (midnight - now).total_seconds()) < 60
    # The refusal is a request too: its record says so, billed nothing.
    row = _record(gw, refusal.headers["x-request-id"])
    assert (row.outcome, row.status, row.cost_usd, row.tenant) == ("budget_refused", 429, 0.0, "capped")
    # What was spent is what the ledger billed (the gauge reads 0 left while a reservation, an estimate,
    # still holds the budget past its limit: it is no measure of the spend).
    spent = _spend(gw)
    assert 0 < spent

    config = yaml.safe_load(gw.routing.read_text())
    config["budgets"]["tenants"]["capped"]["daily"] = 1.0
    gw.routing.write_text(yaml.safe_dump(config))
    deadline = time.monotonic() + 60   # the reload is noticed by polling: generous on a busy machine
    while (response := chat(gw, authorization=f"Bearer {CAPPED_KEY}")).status_code == 429 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert response.status_code == 200, response.text
    ledger_row(gw, response.headers["x-request-id"])
    # The new limit applies at once, and what was spent before the reload still counts: the budget
    # left is the new limit less everything billed, the earlier requests' included.
    total = _spend(gw)
    assert total > spent

    def left() -> float:
        gauge = r'llm_gateway_budget_remaining_usd\{name="capped:daily",scope="tenant"\} (\S+)'
        return float(re.search(gauge, scrape(gw)).group(1))
    wait_for(lambda: abs(left() - (1.0 - total)) < 1e-6, timeout=60,
             what="the budget left to be 1.0 less what was billed")


def _spend(gw) -> float:
    """USD the ledger billed tenant "capped" (requests' own records, not their attempts')."""
    return sum(r.cost_usd for rid, r in ledger_records(gw).items() if "/" not in rid and r.tenant == "capped")


def _record(gw, request_id):
    return ledger_row(gw, request_id, final=False, timeout=5)
