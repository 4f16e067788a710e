"""The savings report: the docs' worked example over a synthetic ledger, aggregation, text, HTML, CLI."""

import argparse
import dataclasses
import asyncio
import re
import time

import pytest

from extproc.accounting import OK, RATE_LIMITED, TIMEOUT, UPSTREAM_ERROR, CLIENT_ERROR, UsageRecord, cost_usd
from extproc.config import Price
from extproc.ledger import SQLiteLedger
from extproc.report import add_report_command, build_report, percentile, render_html, render_text, run_report

# The worked example's prices: $0.03 and $0.002 per 1K tokens, i.e. $30 and $2 per 1M (input = output price).
PRICES = {"premium": Price(30.0, 30.0), "cheap": Price(2.0, 2.0), "mid": Price(6.0, 6.0)}
TOKENS_IN, TOKENS_OUT = 600, 400      # the assumption: 1,000 tokens per request
MONTH_START = 1_740_787_200.0         # 2025-03-01 00:00 UTC
MONTH = 31 * 86400


def synthetic_month(n, routed_share, routed_model):
    """``n`` support requests spread over March; ``routed_share`` of them answered by ``routed_model``."""
    per_five = round(5 * routed_share)          # 60% -> 3 of every 5 requests
    out = [routed_model if i % 5 < per_five else "premium" for i in range(n)]
    unit = {m: cost_usd(UsageRecord(0, "", m, "p", input_tokens=TOKENS_IN, output_tokens=TOKENS_OUT), PRICES[m])
            for m in PRICES}
    recs = []
    for i, model in enumerate(out):
        recs.append(UsageRecord(time=MONTH_START + MONTH * i / n, request_id=f"r{i}", model=model,
                                provider="openai" if model == "premium" else "vllm", surface="support",
                                request_class="simple" if model != "premium" else "complex",
                                input_tokens=TOKENS_IN, output_tokens=TOKENS_OUT,
                                cost_usd=unit[model], latency_ms=float(100 + i % 900)))
    return recs


async def _via_ledger(path, records):
    led = SQLiteLedger(path)
    for r in records:
        led.append(r)
    await led.flush()
    got = await led.records(MONTH_START, MONTH_START + MONTH)
    await led.close()
    return got


def test_worked_example(tmp_path):
    """100,000 support requests a month at 1,000 tokens each (600 in + 400 out).

    All on the $0.03/1K premium model: 100M tokens x $0.03/1K = $3,000.
    60% routed to a $0.002/1K model: 40,000 x $0.03 + 60,000 x $0.002 = $1,200 + $120 = $1,320 (56% saved).
    The docs' "$1,560" is what you get when the routed 60% cost one fifth of the premium price, $0.006/1K:
    $1,200 + 60,000 x $0.006 = $1,560 (48% saved). Both are checked here, through a real SQLite ledger.
    """
    all_premium = synthetic_month(100_000, 0.0, "cheap")
    assert len(all_premium) == 100_000
    r = build_report(all_premium, PRICES, "premium", since=MONTH_START, until=MONTH_START + MONTH)
    assert r.total.cost == pytest.approx(3_000.0)
    assert r.total.counterfactual == pytest.approx(3_000.0) and r.total.savings == pytest.approx(0.0, abs=1e-6)

    routed = asyncio.run(_via_ledger(str(tmp_path / "b.db"), synthetic_month(100_000, 0.6, "cheap")))
    r = build_report(routed, PRICES, "premium", since=MONTH_START, until=MONTH_START + MONTH)
    assert r.by_model["cheap"].requests == 60_000 and r.by_model["premium"].requests == 40_000
    assert r.total.counterfactual == pytest.approx(3_000.0)
    assert r.total.cost == pytest.approx(1_320.0)
    assert r.total.savings_pct == pytest.approx(56.0)
    assert r.by_class["simple"].savings == pytest.approx(1_680.0)
    assert len(r.timeline) == 31 and sum(b.requests for b in r.timeline) == 100_000

    docs = build_report(synthetic_month(100_000, 0.6, "mid"), PRICES, "premium")
    assert docs.total.cost == pytest.approx(1_560.0) and docs.total.counterfactual == pytest.approx(3_000.0)
    assert docs.total.savings_pct == pytest.approx(48.0)

    text = render_text(r)
    assert "cost with routing   $1,320.00" in text and "premium-only cost   $3,000.00" in text
    assert "saved               $1,680.00   (56.0%)" in text


def _mixed():
    t = MONTH_START
    rows = [
        ("a", "cheap", "vllm", "simple", OK, 100.0, 0.9), ("b", "cheap", "vllm", "simple", OK, 200.0, 0.7),
        ("c", "cheap", "vllm", "simple", UPSTREAM_ERROR, 300.0, None),
        ("d", "premium", "openai", "complex", OK, 1000.0, 1.0), ("e", "premium", "openai", "complex", TIMEOUT, 5000.0, None),
        ("f", "premium", "openai", "complex", CLIENT_ERROR, 5.0, None),
        ("g", "premium", "openai", None, RATE_LIMITED, 50.0, None),
        ("h", "unknown-model", "x", "simple", OK, 400.0, None)]
    out = []
    for i, (rid, model, prov, cls, outcome, lat, q) in enumerate(rows):
        cost = cost_usd(UsageRecord(0, "", "m", "p", input_tokens=1000, output_tokens=0), PRICES.get(model, Price(1, 1)))
        out.append(UsageRecord(time=t + 3600 * i, request_id=rid, model=model, provider=prov, request_class=cls,
                               tenant="acme", surface=None, input_tokens=1000, cost_usd=cost, latency_ms=lat,
                               ttft_ms=lat / 2, outcome=outcome, status=200, quality=q,
                               quality_source="user" if q is not None else None))
    return out


def test_aggregates_latency_errors_and_quality():
    r = build_report(_mixed(), PRICES, "premium")
    assert r.bucket == "hour" and r.unpriced_models == ["unknown-model"]
    assert r.total.requests == 8
    assert r.total.errors == 3                          # 5xx, timeout and 429; the client's 4xx is not an error
    assert r.by_provider["openai"].error_rate == pytest.approx(3 / 4 - 1 / 4)
    assert r.by_model["cheap"].quality == pytest.approx(0.8) and r.by_model["cheap"].quality_n == 2
    assert r.by_class["complex"].quality == 1.0 and r.by_class["(none)"].quality is None
    assert r.by_model["cheap"].latency(0.5) == 200.0
    assert r.total.latency(0.99) == pytest.approx(percentile([100, 200, 300, 1000, 5000, 5, 50, 400], 0.99))
    assert r.by_surface["(none)"].requests == 8
    with pytest.raises(ValueError, match="premium model 'gpt-5' is not in the catalog"):
        build_report([], PRICES, "gpt-5")


def test_percentile():
    assert percentile([], 0.5) is None
    assert percentile([5.0], 0.99) == 5.0
    assert percentile([1, 2, 3, 4], 0.5) == 2.5
    assert percentile(list(range(1, 101)), 0.95) == pytest.approx(95.05)


def test_html_is_one_self_contained_page():
    r = build_report(synthetic_month(2_000, 0.6, "cheap") + _mixed(), PRICES, "premium",
                     since=MONTH_START, until=MONTH_START + MONTH)
    page = render_html(r)
    assert page.startswith("<!doctype html>") and page.count("<svg") == 3
    assert "<script" not in page and not re.search(r'(src|href)="?(https?:)?//', page)
    assert "Cost per day" in page and "Model mix" in page and "Savings by class" in page
    assert "unknown-model" in page
    evil = build_report([UsageRecord(MONTH_START, "x", "<b>m</b>", "p", request_class="<script>")],
                        {**PRICES, "<b>m</b>": Price(1, 1)}, "premium")
    assert "<script>" not in render_html(evil) and "&lt;script&gt;" in render_html(evil)


def test_cli(tmp_path, capsys):
    cfg = tmp_path / "routing.yaml"
    ledger = tmp_path / "ledger.db"
    cfg.write_text("""
providers:
  openai: {api: openai}
models:
  premium: {provider: openai, price: {input: 30, output: 30}, quality: 5}
  cheap: {provider: openai, price: {input: 2, output: 2}, quality: 3}
routing:
  default_model: cheap
""")
    now = time.time()
    recs = [UsageRecord(time=now - 3600 * i, request_id=f"r{i}", model="cheap", provider="openai",
                        input_tokens=600, output_tokens=400, cost_usd=0.002, latency_ms=100.0) for i in range(10)]

    async def fill():
        led = SQLiteLedger(str(ledger))
        for r in recs:
            led.append(r)
        await led.close()
    asyncio.run(fill())
    parser = argparse.ArgumentParser()
    add_report_command(parser.add_subparsers(dest="command"))
    out_html = tmp_path / "r.html"
    args = parser.parse_args(["report", "--config", str(cfg), "--ledger", f"sqlite://{ledger}", "--html", str(out_html)])
    assert args.handler is run_report
    assert run_report(args) == 0
    text = capsys.readouterr().out
    assert "requests            10" in text and "premium-only cost   $0.3000" in text   # premium = priciest model
    assert "saved               $0.2800   (93.3%)" in text
    assert out_html.read_text().count("<svg") == 3
    args = parser.parse_args(["report", "--config", str(cfg), "--ledger", str(ledger), "--premium", "nope"])
    assert run_report(args) == 1
    assert "premium model 'nope' is not in the catalog" in capsys.readouterr().err


def test_embeddings_are_reported_apart_and_never_count_as_savings():
    recs = [UsageRecord(time=MONTH_START, request_id="c", model="cheap", provider="vllm", input_tokens=100,
                        output_tokens=100, cost_usd=cost_usd(UsageRecord(0, "", "cheap", "p", input_tokens=100,
                                                                         output_tokens=100), PRICES["cheap"])),
            UsageRecord(time=MONTH_START + 60, request_id="e", model="cheap", provider="vllm", input_tokens=1000,
                        cost_usd=0.002, endpoint="embeddings"),
            UsageRecord(time=MONTH_START + 120, request_id="old", model="embedder", provider="vllm",
                        input_tokens=500, cost_usd=0.001)]   # an old record: known by its model
    r = build_report(recs, {**PRICES, "embedder": Price(2.0, 0.0)}, "premium",
                     embedding_models=frozenset({"embedder"}))
    emb, chat = r.by_endpoint["embeddings"], r.by_endpoint["chat"]
    assert (emb.requests, chat.requests) == (2, 1)
    assert emb.savings == 0.0 and emb.counterfactual == pytest.approx(0.003)
    assert r.total.savings == pytest.approx(chat.savings) and chat.savings > 0
    assert "by endpoint" in render_text(r)


def test_a_one_day_report_draws_its_points_and_keeps_class_names_whole():
    long_name = "very_long_routing_class_name"
    recs = [UsageRecord(time=MONTH_START + 3600 * 5 + i, request_id=f"r{i}", model="cheap", provider="vllm",
                        request_class=long_name, input_tokens=10, output_tokens=10, cost_usd=0.01) for i in range(3)]
    # The default window is 30 days, but the records fill one hour of one day.
    r = build_report(recs, PRICES, "premium", since=MONTH_START - 29 * 86400, until=MONTH_START + 86400)
    assert r.bucket == "hour" and len(r.timeline) == 1
    page = render_html(r)
    chart = page.split("cost over time", 1)[1].split("</svg>", 1)[0]
    assert chart.count("<circle") == 2          # with routing and premium-only, one point each
    savings = page.split('aria-label="savings by class"', 1)[1].split("</svg>", 1)[0]
    label = re.search(r'<text x="([\d.]+)" y="[\d.]+" text-anchor="end"[^>]*>' + long_name, savings)
    assert label and float(label.group(1)) >= 7 * len(long_name)   # room for the whole name left of the bars
    # Quiet hours between records are drawn as zero, not skipped.
    recs.append(UsageRecord(time=MONTH_START + 3600 * 9, request_id="later", model="cheap", provider="vllm",
                            cost_usd=0.01))
    assert len(build_report(recs, PRICES, "premium").timeline) == 5


def test_report_needs_only_premium_when_the_config_names_the_ledger(tmp_path, monkeypatch):
    import subprocess
    import sys

    import yaml

    from extproc.devstack import DEFAULT_ROUTING, ROOT
    from extproc.report import PROJECT_DIR, default_ledger_url

    ledger = tmp_path / "ledger.db"
    asyncio.run(_via_ledger(str(ledger), synthetic_month(10, 0.6, "cheap")))
    config = yaml.safe_load(DEFAULT_ROUTING.read_text())
    config["ledger"] = {"url": f"sqlite://{ledger}"}
    path = tmp_path / "routing.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in __import__("os").environ.items() if k != "LLM_GATEWAY_LEDGER_URL"}
    env["LLM_GATEWAY_CONFIG"] = str(path)
    result = subprocess.run([sys.executable, "-m", "extproc", "report", "--premium", "gpt-4o",
                             "--since", "2025-03-01", "--until", "2025-04-01"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"ledger: sqlite://{ledger}" in result.stdout and "requests            10" in result.stdout
    # make run's ledger (the default config's) is where report looks by default, from any directory.
    assert default_ledger_url(DEFAULT_ROUTING) == f"sqlite://{ROOT}/ledger.db" and PROJECT_DIR == str(ROOT)


def test_shadow_verdicts_are_tallied_apart_with_intervals_and_a_surface_below_target_is_flagged():
    from extproc import shadow
    recs = synthetic_month(10, 0.6, "cheap")
    verdict = lambda i, q, surface: UsageRecord(  # noqa: E731
        time=MONTH_START + i, request_id=f"r{i}/shadow", model="cheap", provider="vllm", surface=surface,
        request_class="simple", outcome=shadow.SHADOW_OUTCOME, attempts=0, quality=q, quality_source="shadow")
    recs += [verdict(i, 0.0, "support") for i in range(20)] + [verdict(100 + i, 0.5, "drafts") for i in range(20)]
    report = build_report(recs, PRICES, "premium", shadow_targets={"support": 0.8, "drafts": 0.8})
    assert report.total.requests == 10 and report.total.quality_n == 0    # verdicts are not traffic
    text = render_text(report)
    assert re.search(r"surface support\s+20 judged  win 0\.00 \[0\.00-0\.16\]  tie 0\.00 .* loss 1\.00 "
                     r"\[0\.84-1\.00\]  win-or-tie 0\.00 \[0\.00-0\.16\]  target 0\.80  BELOW TARGET", text), text
    assert re.search(r"surface drafts\s+20 judged .* win-or-tie 1\.00 \[0\.84-1\.00\]  target 0\.80\n", text), text
    assert re.search(r"model cheap\s+40 judged", text)


def test_propose_suggests_a_floor_per_surface_and_applies_it_only_when_the_config_opts_in(tmp_path, capsys):
    from extproc import config as routing_config
    from extproc import shadow
    cfg = tmp_path / "routing.yaml"
    text = """
providers:
  openai: {api: openai}
models:
  premium: {provider: openai, price: {input: 30, output: 30}, quality: 5}
  cheap: {provider: openai, price: {input: 2, output: 2}, quality: 3}
routing:
  default_model: cheap
surfaces:
  support:            # the support bot
    quality_floor: 1
  drafts: {quality_floor: 4}
  quiet: {}
shadow:
  rates: {"*": 0.01}
  judge_model: premium
  targets: {support: 0.8, drafts: 0.8, quiet: 0.8}
  apply_thresholds: OPT
"""
    cfg.write_text(text.replace("OPT", "false"))
    ledger = tmp_path / "ledger.db"
    now = time.time()
    verdict = lambda i, q, s: UsageRecord(  # noqa: E731
        time=now - i, request_id=f"r{s}{i}/shadow", model="cheap", provider="openai", surface=s,
        outcome=shadow.SHADOW_OUTCOME, attempts=0, quality=q, quality_source="shadow")

    async def fill():
        led = SQLiteLedger(str(ledger))
        for i in range(30):
            led.append(verdict(i, 0.0 if i % 3 else 0.5, "support"))   # win-or-tie 1/3: below 0.8
            led.append(verdict(i, 0.5, "drafts"))                       # always ties: the cheap tier is safe
        await led.close()
    asyncio.run(fill())
    parser = argparse.ArgumentParser()
    add_report_command(parser.add_subparsers(dest="command"))
    argv = ["report", "--config", str(cfg), "--ledger", str(ledger), "--propose"]
    assert run_report(parser.parse_args(argv)) == 0
    out = capsys.readouterr().out
    assert "surface support: quality_floor 1 -> 5  (win-or-tie 0.33 (95% CI 0.19-0.51) is below the target 0.80" in out
    assert "surface drafts: quality_floor 4 -> 3  (win-or-tie 1.00 (95% CI 0.89-1.00) clears the target 0.80" in out
    assert "surface quiet: keep quality_floor 1  (no shadow evaluations yet)" in out
    # --apply: refused unless the config opts in; then written, comments kept, and the config still loads.
    assert run_report(parser.parse_args(argv + ["--apply"])) == 2
    assert "does not opt in" in capsys.readouterr().err and cfg.read_text() == text.replace("OPT", "false")
    cfg.write_text(text.replace("OPT", "true"))
    assert run_report(parser.parse_args(argv + ["--apply"])) == 0
    written = cfg.read_text()
    assert "  support:            # the support bot\n    quality_floor: 5\n" in written
    assert "  drafts: {quality_floor: 3}\n" in written
    loaded = routing_config.load(cfg)
    assert (loaded.surfaces["support"].quality_floor, loaded.surfaces["drafts"].quality_floor,
            loaded.surfaces["quiet"].quality_floor) == (5, 3, 1)


def test_a_proposed_floor_stays_within_what_the_surface_may_use():
    """Tryout: a floor of 5 on a surface whose cost cap excludes every quality-5 model refused all of it."""
    from types import SimpleNamespace

    import yaml

    from extproc.config import parse
    from extproc.report import proposals
    from extproc.shadow import Tally

    cfg = parse(yaml.safe_load("""
providers:
  openai: {api: openai}
models:
  premium: {provider: openai, price: {input: 2.5, output: 10}, quality: 5}
  middle: {provider: openai, price: {input: 0.5, output: 1.5}, quality: 4}
  cheap: {provider: openai, price: {input: 0.15, output: 0.6}, quality: 3}
routing:
  default_model: cheap
surfaces:
  drafts: {quality_floor: 1, max_cost_per_1k: 0.002}
shadow:
  rates: {"*": 1.0}
  judge_model: premium
  targets: {drafts: 0.8}
"""))
    losing = SimpleNamespace(shadow={"surface": {"drafts": Tally(loss=30)}})
    assert proposals(cfg, losing)["drafts"][1] == 4     # the best model under the surface's cap, not 5


# ---- cosmetics and the client's API (issue 16 leftovers) ------------------------------------------------------

def test_dollars_put_the_sign_before_the_symbol_and_never_show_a_negative_zero():
    from extproc.report import _usd
    assert (_usd(-0.002), _usd(0.002), _usd(-1234.5)) == ("-$0.0020", "$0.0020", "-$1,234.50")
    assert _usd(-0.00001) == _usd(-0.0) == _usd(0.0) == "$0.0000"
    recs = [UsageRecord(time=MONTH_START, request_id="r", model="premium", provider="openai", input_tokens=100,
                        output_tokens=100, cost_usd=cost_usd(UsageRecord(0, "", "premium", "p", input_tokens=100,
                                                                         output_tokens=100), PRICES["premium"]))]
    text = render_text(build_report(recs, {**PRICES, "premium": Price(30.0, 30.0)}, "cheap"))
    assert "saved               -$0.0056" in text and "$-" not in text


def test_a_request_refused_before_routing_is_not_shown_as_a_model_named_none():
    recs = [UsageRecord(time=MONTH_START, request_id="ok", model="cheap", provider="vllm", input_tokens=10),
            UsageRecord(time=MONTH_START + 1, request_id="refused", model="none", provider="none", attempts=0,
                        outcome="budget_refused", status=429)]
    r = build_report(recs, PRICES, "premium")
    assert set(r.by_model) == {"cheap", "(not routed)"} and set(r.by_provider) == {"vllm", "(not routed)"}
    assert not re.search(r"^none\b", render_text(r), re.M)


def test_by_endpoint_shows_the_api_the_client_spoke():
    """Front-door traffic is chat inside the gateway: the record's client_api tells it apart; a record
    written before the ledger kept it shows its internal endpoint."""
    def rec(i, api, endpoint="chat"):
        return UsageRecord(time=MONTH_START + i, request_id=f"r{i}", model="cheap", provider="vllm",
                           input_tokens=10, endpoint=endpoint, client_api=api)
    r = build_report([rec(0, "openai_chat"), rec(1, "anthropic_messages"), rec(2, "anthropic_messages"),
                      rec(3, "openai_responses"), rec(4, "openai_embeddings", "embeddings"), rec(5, None)],
                     PRICES, "premium")
    assert {k: g.requests for k, g in r.by_endpoint.items()} == {"chat": 2, "messages": 2, "responses": 1,
                                                                 "embeddings": 1}
    assert r.by_endpoint["embeddings"].savings == 0.0 and r.by_endpoint["messages"].savings > 0


def _cli(tmp_path, *extra):
    cfg = tmp_path / "routing.yaml"
    cfg.write_text("providers:\n  openai: {api: openai}\nmodels:\n"
                   "  premium: {provider: openai, price: {input: 30, output: 30}, quality: 5}\n"
                   "routing:\n  default_model: premium\n")
    parser = argparse.ArgumentParser()
    add_report_command(parser.add_subparsers(dest="command"))
    return run_report(parser.parse_args(["report", "--config", str(cfg), "--ledger", str(tmp_path / "l.db"),
                                         *extra]))


@pytest.mark.parametrize("extra,message", [
    (["--since", "2999-01-01"], "--since 2999-01-01 00:00 is not before now"),
    (["--since", "2026-02-01", "--until", "2026-01-01"], "--since 2026-02-01 00:00 is not before --until 2026-01-01"),
    (["--since", "yesterday"], "not a date: 'yesterday'"),
])
def test_a_period_that_reads_backwards_or_a_bad_date_is_refused(tmp_path, capsys, extra, message):
    assert _cli(tmp_path, *extra) == 2
    assert message in capsys.readouterr().err


def test_shadow_evaluation_spend_is_a_cost_of_routing_not_of_premium_only(tmp_path, capsys):
    """L7: the shadow tenant's calls (reference and judge, tenant ``gateway``: the shipped config's
    ``shadow.tenant``) were priced into the premium-only cost too, so the evaluation never reduced
    "saved". Sending everything to the premium model evaluates nothing: its spend is on the routing
    side only, and the report says how much of the cost it is."""
    from extproc.devstack import DEFAULT_ROUTING
    gpt4o = Price(2.5, 10.0)
    served = [UsageRecord(time=MONTH_START + i, request_id=f"r{i}", model="gpt-4o-mini", provider="openai",
                          tenant="demo", input_tokens=600, output_tokens=400,
                          cost_usd=cost_usd(UsageRecord(0, "", "gpt-4o-mini", "openai", input_tokens=600,
                                                        output_tokens=400), Price(0.15, 0.6)))
              for i in range(10)]
    shadow_calls = [UsageRecord(time=MONTH_START + 100 + i, request_id=f"s{i}", model="gpt-4o", provider="openai",
                                tenant="gateway", input_tokens=600, output_tokens=400,
                                cost_usd=cost_usd(UsageRecord(0, "", "gpt-4o", "openai", input_tokens=600,
                                                              output_tokens=400), gpt4o))
                    for i in range(2)]
    ledger = tmp_path / "ledger.db"
    asyncio.run(_via_ledger(str(ledger), served + shadow_calls))
    parser = argparse.ArgumentParser()
    add_report_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["report", "--config", str(DEFAULT_ROUTING), "--ledger", f"sqlite://{ledger}",
                              "--premium", "gpt-4o", "--since", "2025-03-01", "--until", "2025-04-01"])
    assert run_report(args) == 0
    text = capsys.readouterr().out
    routing = sum(r.cost_usd for r in served + shadow_calls)
    premium_only = sum(cost_usd(r, gpt4o) for r in served)           # the served requests, on gpt-4o
    overhead = sum(r.cost_usd for r in shadow_calls)
    assert f"cost with routing   ${routing:.4f}   (of which shadow evaluation, gateway overhead: ${overhead:.4f})" \
        in text, text
    assert f"premium-only cost   ${premium_only:.4f}" in text, text
    assert f"saved               ${premium_only - routing:.4f}" in text, text
    # The pure core says the same without a config.
    report = build_report(served + shadow_calls, {"gpt-4o": gpt4o}, "gpt-4o", overhead_tenants=("gateway",))
    assert report.by_tenant["gateway"].counterfactual == 0 and report.overhead == overhead


def test_per_model_rows_keep_shadow_spend_on_a_row_of_its_own():
    """Tryout 9 M4: the gateway tenant's judge and reference calls on gpt-4o were in gpt-4o's cost and not
    in its premium-only cost, so its row read "saved -204.9%" although the premium baseline (Sonnet)
    costs more per token. Now they are one row of their own in every table but by-tenant, and a model's
    row compares its traffic with that traffic's own premium-only cost."""
    sonnet, gpt4o = Price(3.0, 15.0), Price(2.5, 10.0)
    prices = {"claude-sonnet-4-6": sonnet, "gpt-4o": gpt4o}
    served = [UsageRecord(time=MONTH_START + i, request_id=f"r{i}", model="gpt-4o", provider="openai",
                          tenant="demo", surface="support", request_class="complex", input_tokens=1000,
                          output_tokens=500, cost_usd=cost_usd(UsageRecord(0, "", "gpt-4o", "openai",
                                                                           input_tokens=1000, output_tokens=500),
                                                               gpt4o)) for i in range(4)]
    judge = [UsageRecord(time=MONTH_START + 50 + i, request_id=f"s{i}", model="gpt-4o", provider="openai",
                         tenant="gateway", surface="support", request_class="complex", input_tokens=3000,
                         output_tokens=10, cost_usd=0.5) for i in range(3)]
    report = build_report(served + judge, prices, "claude-sonnet-4-6", overhead_tenants=("gateway",))
    row = report.by_model["gpt-4o"]
    assert row.requests == 4 and row.cost == pytest.approx(sum(r.cost_usd for r in served))
    assert row.counterfactual == pytest.approx(sum(cost_usd(r, sonnet) for r in served))
    assert row.savings > 0
    assert row.savings_pct == pytest.approx(100 * (1 - (2.5 * 1000 + 10 * 500) / (3 * 1000 + 15 * 500)))
    for table in (report.by_model, report.by_class, report.by_provider, report.by_surface, report.by_endpoint):
        shadow_row = table["(shadow evaluation)"]
        assert (shadow_row.requests, shadow_row.cost, shadow_row.counterfactual) == (3, pytest.approx(1.5), 0.0)
        assert sum(g.cost for g in table.values()) == pytest.approx(report.total.cost)   # rows still add up
    assert report.by_tenant["gateway"].cost == pytest.approx(1.5) and "(shadow evaluation)" not in report.by_tenant
    assert report.by_class["complex"].savings > 0 and report.by_surface["support"].savings > 0
    text = render_text(report)
    assert "(shadow evaluation)" in text and "gateway's own judge and reference calls" in text
    assert "-$" not in text.split("by model", 1)[1].split("\n\n", 1)[0].split("(shadow evaluation)")[0]


def test_cache_reads_their_share_and_their_saving_per_model_and_in_total():
    """Issue 13 item 3 / tryout 9 M2: the ledger kept cached input tokens, the report never summed them.
    The saving is the cached tokens at the model's full input price less the same tokens at its
    cached-input price; a model with no cached price saves nothing and is named."""
    prices = {"gpt-4o": Price(2.5, 10.0, cached_input=1.25), "gpt-4o-mini": Price(0.15, 0.6, cached_input=0.075),
              "llama": Price(0.05, 0.05)}

    def rec(i, model, tokens_in, cached, tenant="demo"):
        r = UsageRecord(time=MONTH_START + i, request_id=f"r{i}", model=model, provider="p", tenant=tenant,
                        input_tokens=tokens_in, output_tokens=100, cached_input_tokens=cached)
        return dataclasses.replace(r, cost_usd=cost_usd(r, prices[model]))

    records = [rec(0, "gpt-4o-mini", 2000, 0), rec(1, "gpt-4o-mini", 2200, 1920), rec(2, "gpt-4o-mini", 2400, 2176),
               rec(3, "gpt-4o", 5000, 4096), rec(4, "llama", 3000, 1500), rec(5, "gpt-4o", 1000, 0)]
    report = build_report(records, prices, "gpt-4o")
    mini, big, llama, total = report.by_model["gpt-4o-mini"], report.by_model["gpt-4o"], report.by_model["llama"], \
        report.total
    assert (mini.cached_input_tokens, mini.input_tokens) == (1920 + 2176, 6600)
    assert mini.cached_share == pytest.approx(4096 / 6600)
    assert mini.cache_saving == pytest.approx(4096 * (0.15 - 0.075) / 1e6)
    assert big.cache_saving == pytest.approx(4096 * (2.5 - 1.25) / 1e6)
    assert llama.cached_input_tokens == 1500 and llama.cache_saving == 0.0
    assert total.cached_input_tokens == 4096 + 4096 + 1500
    assert total.cache_saving == pytest.approx(mini.cache_saving + big.cache_saving)
    # The saving is exactly what the cache took off the bill: the same records without cache reads cost more.
    uncached = sum(cost_usd(UsageRecord(0, "", r.model, "p", input_tokens=r.input_tokens,
                                        output_tokens=r.output_tokens), prices[r.model]) for r in records)
    assert uncached - total.cost == pytest.approx(total.cache_saving)
    assert report.cache_unpriced == ["llama"]

    text = render_text(report)
    assert f"cache reads         {total.cached_input_tokens:,} of {total.input_tokens:,} input tokens " \
           f"({100 * total.cached_input_tokens / total.input_tokens:.1f}%), saved ${total.cache_saving:.4f}" in text
    section = text.split("prompt cache by model", 1)[1].split("\n\n", 1)[0]
    mini_row = next(line for line in section.splitlines() if line.startswith("gpt-4o-mini"))
    assert mini_row.split() == ["gpt-4o-mini", "6,600", "4,096", f"{100 * 4096 / 6600:.1f}%", "0.15", "0.075",
                                f"${mini.cache_saving:.4f}"]
    llama_row = next(line for line in section.splitlines() if line.startswith("llama"))
    assert "none" in llama_row.split() and "(no cached price)" in llama_row
    assert "no cached_input price in the catalog" in section and "llama" in section.splitlines()[-1]
    page = render_html(report)
    assert "Prompt cache reads by model" in page and f"${total.cache_saving:.4f}" in page
    assert f"{total.cached_input_tokens:,}" in page and "no saving counted" in page


def test_the_premium_models_own_cache_writes_are_in_its_baseline():
    """Tryout 11 M2: writes are billed at Anthropic's premium (cost_usd), but the baseline priced the same
    tokens without it, so the premium model's own row read "saved -55%"."""
    from extproc.providers.base import Usage
    price = Price(3.0, 15.0, cached_input=0.30)
    usage = Usage(input_tokens=2000, output_tokens=100, cache_write_tokens=1500, cache_write_1h_tokens=500)
    r = UsageRecord(time=MONTH_START, request_id="w", model="premium", provider="anthropic", input_tokens=2000,
                    output_tokens=100, cache_write_tokens=1500, cache_write_1h_tokens=500,
                    cost_usd=cost_usd(usage, price))
    report = build_report([r], {"premium": price}, "premium")
    assert report.by_model["premium"].savings == pytest.approx(0.0, abs=1e-12)
    assert report.total.savings == pytest.approx(0.0, abs=1e-12), report.total
    assert report.total.counterfactual == pytest.approx(r.cost_usd)
