"""Cost of a request from usage and catalog prices; usage records; the feedback body."""

import json

import pytest

from extproc.accounting import (BUDGET_REFUSED, CANCELLED, CLIENT_ERROR, OK, RATE_LIMITED, TIMEOUT, UPSTREAM_ERROR,
                                UsageRecord, cost_usd, make_record, outcome_for_status, parse_feedback)
from extproc.config import Price
from extproc.errors import InvalidRequest
from extproc.providers.base import Usage


def test_cost_without_cache():
    # gpt-4o-mini list price: $0.15 in / $0.60 out per 1M tokens
    assert cost_usd(Usage(1000, 500), Price(0.15, 0.60)) == pytest.approx((1000 * 0.15 + 500 * 0.60) / 1e6)


def test_cached_input_billed_at_its_own_price():
    # input_tokens includes the cached ones: 800 of 1000 were cached
    cost = cost_usd(Usage(1000, 100, 800), Price(2.50, 10.0, cached_input=1.25))
    assert cost == pytest.approx((200 * 2.50 + 800 * 1.25 + 100 * 10.0) / 1e6)


def test_cached_input_without_a_catalog_discount_pays_full_price():
    assert cost_usd(Usage(1000, 0, 800), Price(3.0, 15.0)) == pytest.approx(1000 * 3.0 / 1e6)


def test_cached_count_is_clamped_to_input_and_negative_counts_to_zero():
    assert cost_usd(Usage(100, 0, 500), Price(1.0, 1.0, 0.0)) == 0.0
    assert cost_usd(Usage(-5, -5, -5), Price(1.0, 1.0)) == 0.0


def test_worked_example_unit_prices():
    # $0.03 per 1K tokens = $30 per 1M; 1,000 tokens per request -> $0.03 a request
    assert cost_usd(Usage(500, 500), Price(30, 30)) == pytest.approx(0.03)
    assert cost_usd(Usage(500, 500), Price(2, 2)) == pytest.approx(0.002)


@pytest.mark.parametrize("status, kwargs, outcome", [
    (200, {}, OK), (400, {}, CLIENT_ERROR), (422, {}, CLIENT_ERROR), (429, {}, RATE_LIMITED),
    (429, {"budget_refused": True}, BUDGET_REFUSED), (502, {}, UPSTREAM_ERROR), (503, {}, UPSTREAM_ERROR),
    (504, {}, TIMEOUT), (200, {"cancelled": True}, CANCELLED)])
def test_outcome_for_status(status, kwargs, outcome):
    assert outcome_for_status(status, **kwargs) == outcome


def test_make_record_and_round_trip():
    r = make_record(time=1_700_000_000.5, request_id="req-1", model="gpt-4o-mini", provider="openai",
                    usage=Usage(1000, 200, 100), price=Price(0.15, 0.60, 0.075), status=200, latency_ms=812.0,
                    ttft_ms=120.0, attempts=2, tenant="acme", surface="web", request_class="simple",
                    workload="interactive")
    assert r.cost_usd == pytest.approx((900 * 0.15 + 100 * 0.075 + 200 * 0.60) / 1e6)
    assert r.outcome == OK and r.quality is None and not r.is_error and r.total_tokens == 1200
    d = r.to_dict()
    assert d["class"] == "simple" and "request_class" not in d
    assert UsageRecord.from_dict(json.loads(json.dumps(d))) == r
    scored = r.with_quality(0.75, "thumbs")
    assert (scored.quality, scored.quality_source, scored.cost_usd) == (0.75, "thumbs", r.cost_usd)


def test_make_record_of_a_failure_costs_nothing():
    r = make_record(time=1.0, request_id="x", model="m", provider="p", usage=None, price=Price(1, 1), status=502)
    assert (r.cost_usd, r.input_tokens, r.outcome, r.is_error) == (0.0, 0, UPSTREAM_ERROR, True)


def test_parse_feedback():
    f = parse_feedback(b'{"request_id": "abc", "score": 0.8, "source": "evaluator:groundedness"}')
    assert (f.request_id, f.score, f.source) == ("abc", 0.8, "evaluator:groundedness")
    assert parse_feedback({"request_id": "abc", "score": 1}).source == "user"


@pytest.mark.parametrize("body, param", [
    (b"not json", None), (b"[]", None), (b'{"score": 1}', "request_id"), (b'{"request_id": "", "score": 1}', "request_id"),
    (b'{"request_id": "a", "score": 1.5}', "score"), (b'{"request_id": "a", "score": true}', "score"),
    (b'{"request_id": "a", "score": "good"}', "score"), (b'{"request_id": "a", "score": 1, "source": "a b"}', "source")])
def test_parse_feedback_errors(body, param):
    with pytest.raises(InvalidRequest) as e:
        parse_feedback(body)
    assert e.value.status == 400 and e.value.param == param
