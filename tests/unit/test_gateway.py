"""The request lifecycle without Envoy: validation, planning, per-attempt rewrites, response handling."""

from __future__ import annotations

import json

import pytest

from extproc import errors
from extproc.config import load
from extproc.credentials import Credentials, Secret
from extproc.devstack import DEFAULT_ROUTING
from extproc.gateway import KEY_HEADER, TRY_HEADERS, Gateway
from extproc.keys import KeyEntry, KeyFile, digest

KEYS = {"OPENAI_API_KEY": "sk-openai", "ANTHROPIC_API_KEY": "sk-ant", "GEMINI_API_KEY": "g-key",
        "AZURE_OPENAI_API_KEY": "az-key"}
DEMO_KEY = "sk-unit-demo"   # tenant "demo" of the shipped config: may choose every surface and workload
AUTH = {"authorization": f"Bearer {DEMO_KEY}"}
CHAT = {":method": "POST", ":path": "/v1/chat/completions", "content-type": "application/json", **AUTH}


def demo_keys() -> KeyFile:
    keys = KeyFile(None)
    keys.entries = {digest(DEMO_KEY): KeyEntry("demo", "demo", digest(DEMO_KEY))}
    return keys


@pytest.fixture
def gw() -> Gateway:
    return Gateway(load(DEFAULT_ROUTING), Credentials(KEYS), clock=lambda: 1_700_000_000.5, keys=demo_keys())


def _exchange(gw: Gateway, body: dict, path: str = "/v1/chat/completions"):
    return gw.request_body({**CHAT, ":path": path}, json.dumps(body).encode())


def test_models_listing_and_lookup(gw):
    answer = gw.request_headers({":method": "GET", ":path": "/v1/models", **AUTH}, True)
    ids = [m["id"] for m in json.loads(answer.body)["data"]]
    assert "gpt-4o-mini" in ids and "auto" in ids
    assert json.loads(gw.request_headers({":method": "GET", ":path": "/v1/models/gpt-4o", **AUTH},
                                         True).body)["id"] == "gpt-4o"
    assert gw.request_headers({":method": "GET", ":path": "/v1/models/nope", **AUTH}, True).status == 404


@pytest.mark.parametrize("headers,status", [
    ({":method": "POST", ":path": "/v1/completions", "content-type": "application/json", **AUTH}, 404),
    ({":method": "GET", ":path": "/v1/chat/completions", **AUTH}, 404),
    ({":method": "POST", ":path": "/v1/chat/completions", "content-type": "text/plain", **AUTH}, 415),
    ({**CHAT, "content-length": str(10**9)}, 413),
])
def test_header_stage_rejections(gw, headers, status):
    answer = gw.request_headers(headers, False)
    assert answer.status == status and set(json.loads(answer.body)["error"]) == {"message", "type", "param", "code"}


def test_empty_body_is_400(gw):
    assert gw.request_headers(CHAT, True).status == 400


def test_content_type_with_charset_is_accepted(gw):
    assert gw.request_headers({**CHAT, "content-type": "application/json; charset=utf-8"}, False) is None


def test_route_sets_one_try_header_per_attempt_and_rewrites_attempt_1(gw):
    ex = _exchange(gw, {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}]})
    route = gw.route(ex)
    assert [route.set_headers[h] for h in TRY_HEADERS] == ["anthropic"] * 3
    assert route.set_headers[KEY_HEADER] == ex.key
    # Attempt 1's provider is known here: the router stage translates for it, key included.
    assert route.set_headers[":path"] == "/v1/messages" and route.set_headers["x-api-key"] == "sk-ant"
    assert json.loads(route.body)["model"] == "claude-haiku-4-5"
    assert "authorization" in route.remove_headers            # the client's key goes nowhere
    assert not set(TRY_HEADERS) & set(route.remove_headers)   # Envoy still routes on them


def test_a_retry_is_rewritten_for_its_own_provider(gw):
    body = {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}]}
    ex = _exchange(gw, body)
    first = gw.route(ex)
    retry = gw.attempt(ex, 2)
    assert retry.set_headers[":path"] == "/v1/messages"
    assert retry.set_headers[":authority"] == "api.anthropic.com"
    assert retry.set_headers["x-api-key"] == "sk-ant"
    assert retry.set_headers["content-length"] == str(len(retry.body))
    assert {"authorization", "x-goog-api-key", "api-key"} <= set(retry.remove_headers)
    # Envoy routes every retry on the try headers: they stay (the egress listener keeps them from the provider).
    assert not set(TRY_HEADERS) & set(retry.remove_headers)
    assert retry.set_headers["x-llm-for"] == "anthropic"   # its egress listener takes only this provider's
    # A retry starts again from the original body, which was never edited.
    assert retry.body == first.body and ex.body == body


def test_a_retry_on_another_api_drops_the_first_providers_headers():
    config = load(DEFAULT_ROUTING)
    gw = Gateway(config, Credentials(KEYS), keys=demo_keys())
    ex = gw.request_body({**CHAT, ":path": "/v1/chat/completions"}, json.dumps(
        {"model": "auto", "messages": [{"role": "user", "content": "What is the capital of France?"}]}).encode())
    assert [m.provider.api for m in ex.plan.models[:2]] == ["openai", "gemini"]
    retry = gw.attempt(ex, 2)
    assert retry.set_headers["x-goog-api-key"] == "g-key"
    assert {"authorization", "anthropic-version"} <= set(retry.remove_headers)


def test_alias_goes_to_the_default_model(gw):
    ex = _exchange(gw, {"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
    assert ex.plan.models[0].id == "gpt-4o-mini" and "alias" in ex.plan.reason


@pytest.mark.parametrize("raw,exc,fragment", [
    (b"\xff", errors.InvalidRequest, "UTF-8"),
    (b"{", errors.InvalidRequest, "parse the JSON"),
    (b"3", errors.InvalidRequest, "JSON object"),
    (b'{"model": "gpt-4o-mini"}', errors.InvalidRequest, "messages"),
    (b'{"model": "gpt-4o-mini", "messages": []}', errors.InvalidRequest, "empty array"),
    (b'{"model": "gpt-4o-mini", "messages": ["hi"]}', errors.InvalidRequest, "messages[0]"),
    (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "q"}], "stream": "yes"}', errors.InvalidRequest, "stream"),
    (b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "q"}], "n": true}', errors.InvalidRequest, "'n'"),
    (b'{"model": "x", "messages": [{"role": "user", "content": "q"}]}', errors.ModelNotFound, "'x'"),
    (b'{"model": "text-embedding-3-small", "messages": [{"role": "user", "content": "q"}]}',
     errors.UnsupportedFeature, "does not serve"),
    (b'{"model": "claude-haiku-4-5", "n": 2, "messages": [{"role": "user", "content": "q"}]}',
     errors.UnsupportedFeature, "n"),
])
def test_body_rejections(gw, raw, exc, fragment):
    with pytest.raises(exc) as info:
        gw.request_body(CHAT, raw)
    assert fragment in info.value.message


def test_embeddings_need_input(gw):
    with pytest.raises(errors.InvalidRequest, match="input"):
        _exchange(gw, {"model": "text-embedding-3-small"}, "/v1/embeddings")


def _answered(gw, body):
    ex = _exchange(gw, body)
    gw.attempt(ex, 1)
    return ex


UPSTREAM = {":status": "200", "x-envoy-upstream-service-time": "3", "x-envoy-attempt-count": "1"}


def test_openai_responses_pass_through_untouched_and_their_usage_is_read(gw):
    ex = _answered(gw, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "q"}]})
    start = gw.response_headers(ex, UPSTREAM)
    # content-length stays (same bytes); only the egress listener's marks never go on
    assert start.body == "stream" and start.remove_headers == ["x-llm-attempt-deadline", "x-llm-egress", "x-llm-provider-reset"]
    assert start.set_headers["x-llm-provider"] == "openai" and start.set_headers["x-llm-model"] == "gpt-4o-mini"
    raw = json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "choices": [],
                      "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}}).encode()
    assert gw.response_body(ex, raw[:9], False) == raw[:9]
    assert gw.response_body(ex, raw[9:], True) == raw[9:]
    assert (ex.translator.usage.input_tokens, ex.translator.usage.output_tokens) == (5, 2)


def test_anthropic_json_is_buffered_and_translated(gw):
    ex = _answered(gw, {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "q"}]})
    start = gw.response_headers(ex, UPSTREAM)
    assert start.body == "whole" and "content-length" in start.remove_headers
    raw = json.dumps({"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-haiku-4-5",
                      "content": [{"type": "text", "text": "hi"}], "stop_reason": "end_turn",
                      "usage": {"input_tokens": 3, "output_tokens": 1}}).encode()
    assert gw.response_body(ex, raw[:10], False) == b""
    out = json.loads(gw.response_body(ex, raw[10:], True))
    assert out["choices"][0]["message"]["content"] == "hi" and out["usage"]["total_tokens"] == 4
    assert out["created"] == 1_700_000_000


def test_provider_errors_keep_meaningful_statuses(gw):
    ex = _answered(gw, {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "q"}]})
    start = gw.response_headers(ex, {**UPSTREAM, ":status": "529"})
    assert start.set_headers[":status"] == "503"
    body = gw.response_body(ex, b'{"type":"error","error":{"type":"overloaded_error","message":"busy"}}', True)
    assert json.loads(body)["error"]["message"] == "busy"


def test_envoys_own_replies_pass(gw):
    ex = _answered(gw, {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "q"}]})
    assert gw.response_headers(ex, {":status": "503"}).body == "pass"


def test_an_attempt_cut_at_its_deadline_reads_as_the_gateways_deadline_not_the_providers_504(gw):
    ex = _answered(gw, {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "q"}]})
    start = gw.response_headers(ex, {**UPSTREAM, ":status": "504", "x-llm-attempt-deadline": "passed"})
    assert start.set_headers[":status"] == "504" and start.set_headers["x-llm-model"] == "claude-haiku-4-5"
    assert "x-llm-attempt-deadline" in start.remove_headers
    error = json.loads(gw.response_body(ex, b"upstream request timeout", True))["error"]
    assert (error["type"], error["code"]) == ("timeout_error", "gateway_timeout")
    assert error["message"].startswith("The gateway's deadline for attempt 1 passed: claude-haiku-4-5"), error
    # A provider's own 504 keeps the provider's words.
    ex = _answered(gw, {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "q"}]})
    gw.response_headers(ex, {**UPSTREAM, ":status": "504"})
    body = gw.response_body(ex, b'{"type":"error","error":{"type":"timeout_error","message":"slow"}}', True)
    assert json.loads(body)["error"]["message"] == "slow"


def test_envoys_own_504_on_a_routed_json_request_is_the_requests_deadline(gw):
    ex = _answered(gw, {"model": "auto", "messages": [{"role": "user", "content": "q"}]})
    start = gw.response_headers(ex, {":status": "504", "content-type": "application/json"})
    assert start.body == "whole" and start.set_headers["x-llm-class"] == ex.plan.route_class
    error = json.loads(gw.response_body(ex, b'{"error":{"message":"upstream request timeout"}}', True))["error"]
    assert (error["type"], error["code"]) == ("timeout_error", "gateway_timeout")
    assert f"{gw.deadline_ms(ex)} ms" in error["message"] and "end to end" in error["message"], error


def test_secrets_do_not_print():
    assert "sk-" not in repr(Secret("sk-very-secret")) and "sk-" not in str(Secret("sk-very-secret"))


def test_key_files_are_reread_when_rotated(tmp_path):
    from extproc.config import Provider
    path = tmp_path / "key"
    path.write_text("first\n")
    creds = Credentials({})
    provider = Provider(name="p", api="openai", cluster="p", base_path="/v1", api_key_file=str(path))
    assert creds.key_for(provider).value == "first"
    import os
    path.write_text("second")
    os.utime(path, (1, 1))
    assert creds.key_for(provider).value == "second"


def test_envoy_retries_only_as_often_as_the_plan_has_further_candidates(gw):
    pinned = gw.route(_exchange(gw, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
    assert pinned.set_headers["x-envoy-max-retries"] == "0"   # a 429 goes back to the client at once
    routed = gw.route(_exchange(gw, {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}))
    assert routed.set_headers["x-envoy-max-retries"] == "2"


def test_a_retry_to_a_provider_that_asked_for_a_pause_is_refused_with_its_retry_after():
    from extproc.health import HealthTracker
    now = [100.0]
    tracker = HealthTracker(clock=lambda: now[0], model_providers={"gpt-4o-mini": "openai", "gpt-4o": "openai"})
    gw = Gateway(load(DEFAULT_ROUTING), Credentials(KEYS), health=tracker, keys=demo_keys())
    ex = _exchange(gw, {"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
    assert [m.id for m in ex.plan.models] == ["gpt-4o-mini", "gemini-3.5-flash-lite", "gpt-4o"]
    gw.route(ex)
    tracker.pause("gpt-4o-mini", "openai", 12.2)   # attempt 1's 429, reported by Envoy's upstream log
    assert gw.attempt(ex, 2).set_headers["x-goog-api-key"] == "g-key"
    with pytest.raises(errors.RateLimited) as caught:
        gw.attempt(ex, 3)                            # gpt-4o: same provider, still paused
    assert caught.value.status == 429 and caught.value.headers == {"retry-after": "13"}
    assert caught.value.code == "rate_limit_exceeded"


def test_geminis_retry_info_in_a_final_error_body_is_learned(gw):
    ex = _exchange(gw, {"model": "gemini-3.5-flash-lite", "messages": [{"role": "user", "content": "hi"}]})
    gw.route(ex)
    start = gw.response_headers(ex, {":status": "429", "x-envoy-upstream-service-time": "3"})
    assert start.set_headers[":status"] == "429"
    body = json.dumps({"error": {"code": 429, "message": "Resource has been exhausted.", "status": "RESOURCE_EXHAUSTED",
                                 "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                                              "retryDelay": "17s"}]}}).encode()
    out = json.loads(gw.response_body(ex, body, True))
    assert out["error"]["type"] == "rate_limit_error" and ex.retry_after_s == 17.0


def test_json_answers_get_an_overall_deadline_and_streams_none():
    import yaml
    data = yaml.safe_load(DEFAULT_ROUTING.read_text())
    data["workloads"]["interactive"]["deadline_ms"] = 2000
    from extproc.config import parse
    gw = Gateway(parse(data, source="t.yaml"), Credentials(KEYS), keys=demo_keys())
    ask = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    route = gw.route(_exchange(gw, ask))
    assert route.set_headers["x-envoy-upstream-rq-timeout-ms"] == "2000"
    assert route.set_headers["x-llm-deadline-ms"] == "2000"   # attempt 1's own deadline, capped by the request's
    assert route.set_headers["x-envoy-upstream-rq-per-try-timeout-ms"] == "2500"   # Envoy's: only a backstop
    stream = gw.route(_exchange(gw, {**ask, "stream": True}))
    assert "x-envoy-upstream-rq-timeout-ms" not in stream.set_headers and "x-llm-deadline-ms" not in stream.set_headers
    assert stream.set_headers["x-llm-headers-deadline-ms"] == "3000"   # the primary's 1.5 s x 2, to its headers
    plain = Gateway(load(DEFAULT_ROUTING), Credentials(KEYS), keys=demo_keys())
    unset = plain.route(_exchange(plain, ask))
    # Sequential tiers: the sum of their own deadlines (1.5, 3 and 10 s targets, x 2).
    assert unset.set_headers["x-envoy-upstream-rq-timeout-ms"] == str(3000 + 6000 + 20000 + 500)


def test_each_attempt_carries_its_own_tiers_deadline():
    """Envoy keeps one per-try timeout per request, so it is set above the longest attempt deadline (a
    backstop), and each attempt names its own: the secondary's 3 s target is not cut at the primary's."""
    gw = Gateway(load(DEFAULT_ROUTING), Credentials(KEYS), keys=demo_keys())
    for stream, header in ((False, "x-llm-deadline-ms"), (True, "x-llm-headers-deadline-ms")):
        ex = _exchange(gw, {"model": "auto", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
        assert [c.target_ms for c in ex.plan.candidates] == [1500, 3000, 10000]
        route = gw.route(ex)
        assert route.set_headers[header] == "3000"
        assert [gw.attempt(ex, n).set_headers[header] for n in (2, 3)] == ["6000", "20000"]
        assert route.set_headers["x-envoy-upstream-rq-per-try-timeout-ms"] == str(20000 + 500)
        assert [ex.deadline_ms(n) for n in (1, 2, 3)] == [3000, 6000, 20000]


def _hedged_gateway(hedge=True, tertiary=None):
    import yaml
    from extproc.config import parse
    data = yaml.safe_load(DEFAULT_ROUTING.read_text())
    data["workloads"]["interactive"]["hedge"] = hedge
    if tertiary is not None:
        data["routing_rules"]["simple_queries"]["tiers"][2]["models"] = tertiary
    return Gateway(parse(data, source="t.yaml"), Credentials(KEYS), keys=demo_keys(),
                   hedge_endpoints={"openai": "127.0.0.1:1", "gemini": "127.0.0.1:2", "anthropic": "127.0.0.1:3"})


def test_a_hedged_plan_names_its_providers_pool_endpoints_in_attempt_order():
    gw = _hedged_gateway()
    ex = _exchange(gw, {"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
    assert [m.provider.cluster for m in ex.plan.models] == ["openai", "gemini", "openai"]
    route = gw.route(ex)
    # The leading run of distinct providers only: the pool has one endpoint per provider.
    assert route.set_headers["x-llm-hedge"] == "1" and route.set_headers["x-llm-hosts"] == "127.0.0.1:1,127.0.0.1:2"
    assert route.set_headers["x-envoy-max-retries"] == "1"
    # The hedge starts at the primary tier's target itself, not at the cut (target x 2).
    assert route.set_headers["x-envoy-upstream-rq-per-try-timeout-ms"] == "1500"
    # Attempt N starts by N x 1.5 s and keeps its own deadline from there: the JSON deadline is the
    # latest of those ends (attempt 2: 1.5 s + 6 s), not the sum.
    assert route.set_headers["x-envoy-upstream-rq-timeout-ms"] == str(1500 + 6000 + 500)
    assert ex.hedged and ex.hedge_hosts == ["127.0.0.1:1", "127.0.0.1:2"]
    # No attempt is cut on its own (Envoy 1.40 crashed on an attempt's deadline 504 with a hedge pending).
    assert "x-llm-deadline-ms" not in route.set_headers and "x-llm-deadline-ms" not in gw.attempt(ex, 2).set_headers


def test_a_hedged_plan_gives_every_distinct_candidate_an_attempt():
    """Issue 12: Envoy counts hedges and retries together; with one, a stalled hedge left the third tier untried."""
    gw = _hedged_gateway(tertiary=["claude-sonnet-4-6"])
    ex = _exchange(gw, {"model": "auto", "messages": [{"role": "user", "content": "hi"}], "stream": True})
    assert [m.provider.cluster for m in ex.plan.models] == ["openai", "gemini", "anthropic"]
    route = gw.route(ex)
    assert route.set_headers["x-llm-hosts"] == "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3"
    assert route.set_headers["x-envoy-max-retries"] == "2"
    # A hedged stream is not held for its first token: the hold's deadline 504 is the same trigger.
    assert "x-llm-first-token" not in route.set_headers and "x-envoy-upstream-rq-timeout-ms" not in route.set_headers
    assert "x-llm-headers-deadline-ms" not in gw.attempt(ex, 3).set_headers


def test_a_hedged_answer_is_the_attempt_of_the_provider_whose_egress_listener_it_came_through():
    """Issue 12 (N1): hedged, Envoy's response x-envoy-attempt-count is the attempts started (3 here) even
    when attempt 1 answers: the answer was read with attempt 3's (Anthropic's) rules and billed to it."""
    gw = _hedged_gateway(tertiary=["claude-sonnet-4-6"])
    ex = _exchange(gw, {"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
    gw.route(ex)
    gw.attempt(ex, 2), gw.attempt(ex, 3)
    started = {**UPSTREAM, "x-envoy-attempt-count": "3"}
    start = gw.response_headers(ex, {**started, "x-llm-egress": "openai"})
    assert ex.answering == 1 and ex.answered_by.id == "gpt-4o-mini"
    assert (start.set_headers["x-llm-provider"], start.body) == ("openai", "stream")   # OpenAI's bytes, as they are
    assert start.set_headers["x-llm-attempts"] == "3" and "x-llm-egress" in start.remove_headers
    gw.response_headers(ex, {**started, "x-llm-egress": "gemini"})
    assert ex.answering == 2 and ex.answered_by.provider.name == "gemini"
    # Unhedged, attempts run one after another: the count is the one answering.
    plain = Gateway(load(DEFAULT_ROUTING), Credentials(KEYS), keys=demo_keys())
    ex = _exchange(plain, {"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
    plain.route(ex)
    plain.attempt(ex, 2)
    plain.response_headers(ex, {**UPSTREAM, "x-envoy-attempt-count": "2", "x-llm-egress": "gemini"})
    assert ex.answering == 2 and ex.answered_by.provider.name == "gemini"


def test_x_llm_route_names_the_answer_when_a_later_attempt_gave_it():
    """Tryout 5 P5: x-llm-route is the decision (the plan's first choice, unchanged: the same words as the
    span's llm.route.reason); when attempt 2 or 3 answered, it says which, so read alone it never names a
    model that did not answer. Attempt 1's answer leaves it as it was."""
    gw = _hedged_gateway(tertiary=["claude-sonnet-4-6"])
    ex = _exchange(gw, {"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
    gw.route(ex)
    gw.attempt(ex, 2)
    started = {**UPSTREAM, "x-envoy-attempt-count": "2"}
    first = gw.response_headers(ex, {**started, "x-llm-egress": "openai"}).set_headers
    assert first["x-llm-route"] == ex.plan.reason and ex.plan.reason.endswith("gpt-4o-mini (primary)")
    hedge = gw.response_headers(ex, {**started, "x-llm-egress": "gemini"}).set_headers
    assert hedge["x-llm-route"] == (f"{ex.plan.reason}; answered by gemini-3.5-flash-lite (attempt 2, hedged)")
    assert hedge["x-llm-model"] == "gemini-3.5-flash-lite" and hedge["x-llm-route"].isascii()
    plain = Gateway(load(DEFAULT_ROUTING), Credentials(KEYS), keys=demo_keys())
    ex = _exchange(plain, {"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
    plain.route(ex)
    plain.attempt(ex, 2)
    fallback = plain.response_headers(ex, {**started, "x-llm-egress": "gemini"}).set_headers
    assert fallback["x-llm-route"].startswith(ex.plan.reason + "; answered by ")
    assert fallback["x-llm-route"].endswith(f"{fallback['x-llm-model']} (attempt 2, fallback)")
    # a last attempt that failed is no answer (tryout 10 L1)
    failed = plain.response_headers(ex, {**started, ":status": "503", "x-llm-egress": "gemini"}).set_headers
    assert failed["x-llm-route"].startswith(ex.plan.reason + "; failed last on ") and "answered" not in failed["x-llm-route"]


def test_a_hedged_stream_cut_by_the_idle_timeout_before_any_headers_gets_the_gateways_deadline_body():
    """Tryout 4 N2: every hedged candidate stalled before its headers; Envoy's route idle timeout (120 s)
    answered 504 {"error":{"message":"stream timeout","type":"timeout_error"},"type":"error"}: no code, no
    param, a stray top-level type, and no x-llm-* provenance."""
    gw = _hedged_gateway(tertiary=["claude-sonnet-4-6"])
    ex = _exchange(gw, {"model": "auto", "messages": [{"role": "user", "content": "hi"}], "stream": True})
    gw.route(ex)
    gw.attempt(ex, 2), gw.attempt(ex, 3)
    gw.clock = lambda: ex.started + 120.02
    start = gw.response_headers(ex, {":status": "504", "content-type": "application/json",
                                     "x-envoy-attempt-count": "3"})
    assert start.body == "whole" and start.set_headers["content-type"] == "application/json"
    assert start.set_headers["x-llm-class"] == ex.plan.route_class and "x-llm-route" in start.set_headers
    envoys = b'{"error":{"message":"stream timeout","type":"timeout_error"},"type":"error"}'
    assert gw.response_body(ex, envoys, False) == b""
    body = json.loads(gw.response_body(ex, b"", True))
    assert list(body) == ["error"], body
    error = body["error"]
    assert (error["type"], error["code"], error["param"]) == ("timeout_error", "gateway_timeout", None), error
    assert error["message"].startswith("The gateway's deadline") and "idle timeout (120 s)" in error["message"]


def test_plans_without_hedging_or_with_one_provider_are_not_hedged():
    plain = _hedged_gateway(hedge=False)
    assert "x-llm-hedge" not in plain.route(_exchange(plain, {"model": "auto", "messages": [
        {"role": "user", "content": "hi"}]})).set_headers
    gw = _hedged_gateway()
    pinned = gw.route(_exchange(gw, {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
    assert "x-llm-hedge" not in pinned.set_headers


def test_each_attempt_says_which_provider_it_was_translated_for():
    """Every attempt leaves through its provider's egress listener, which takes only its own provider's."""
    plain = Gateway(load(DEFAULT_ROUTING), Credentials(KEYS), keys=demo_keys())
    for gw in (_hedged_gateway(), plain):
        ex = _exchange(gw, {"model": "auto", "messages": [{"role": "user", "content": "hi"}]})
        assert gw.route(ex).set_headers["x-llm-for"] == "openai"
        assert gw.attempt(ex, 2).set_headers["x-llm-for"] == "gemini"


def test_every_stream_is_held_for_its_first_content_and_cut_where_a_later_tier_can_take_over(gw):
    ask = {"model": "auto", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    interactive = _exchange(gw, ask)
    assert gw.route(interactive).set_headers["x-llm-first-token"] == "hold" and interactive.cuts_first_token
    json_answer = _exchange(gw, {**ask, "stream": False})
    assert "x-llm-first-token" not in gw.route(json_answer).set_headers   # the per-try timeout covers it all
    assert not json_answer.cuts_first_token
    # Held too, so a failure before content is a status or the next tier, never a 200 with nothing; but
    # not cut at the first-token deadline: nowhere to fall back to (pinned), or latency is not the aim (batch).
    pinned = _exchange(gw, {**ask, "model": "gpt-4o-mini"})
    assert gw.route(pinned).set_headers["x-llm-first-token"] == "hold" and not pinned.cuts_first_token
    batch = gw.request_body({**CHAT, "x-llm-workload": "batch"}, json.dumps(ask).encode())
    assert len(batch.plan.models) > 1
    assert gw.route(batch).set_headers["x-llm-first-token"] == "hold" and not batch.cuts_first_token


def test_the_router_stage_translates_attempt_1_only_and_a_retry_translates_for_itself(gw, monkeypatch):
    translated = []
    real = gw._translated
    monkeypatch.setattr(gw, "_translated", lambda ex, model: translated.append(model.id) or real(ex, model))
    hard = ("Compare the two plans I described, work out exactly which is cheaper over three years with the "
            "discount rules, and explain why step by step, weighing the risks.")
    ex = _exchange(gw, {"model": "auto", "temperature": 0.5, "messages": [{"role": "user", "content": hard}]})
    models = [m.id for m in ex.plan.models]
    assert len(models) >= 2 and len({gw._config.models[m].provider.api for m in models}) >= 2
    # the fallbacks were checked (they are in the plan) without being translated
    assert translated == [models[0]] and not ex.translations
    gw.route(ex)
    retry = gw.attempt(ex, 2)
    assert translated == models[:2]
    second = gw._config.models[models[1]]
    assert json.loads(retry.body)["model"] == second.upstream_model


def test_a_pinned_models_deadline_is_the_configured_pinned_target_whatever_its_tier():
    """Tryout 3 L1: a pinned model gets routing.pinned_target_ms (default 10 s, the tertiary's) x the factor."""
    import yaml
    from extproc.config import parse
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    default = Gateway(load(DEFAULT_ROUTING), Credentials(KEYS), keys=demo_keys())
    assert default.route(_exchange(default, body)).set_headers["x-llm-deadline-ms"] == "20000"
    data = yaml.safe_load(DEFAULT_ROUTING.read_text())
    data["routing"]["pinned_target_ms"] = 4000
    gw = Gateway(parse(data, source="t.yaml"), Credentials(KEYS), keys=demo_keys())
    assert gw.route(_exchange(gw, body)).set_headers["x-llm-deadline-ms"] == "8000"


def test_a_retrys_translation_error_names_the_clients_fields_and_the_door_translates_once(gw, monkeypatch):
    """Review 7 finding 4: an error translating attempt 2+ named the internal chat field
    (``messages[1].content[1]``) to a Responses client, and every renamed error re-ran the door."""
    import dataclasses

    from extproc.apis import responses

    runs = []
    door = responses._to_internal
    monkeypatch.setattr(responses, "_to_internal", lambda client: runs.append(1) or door(client))
    body = {"model": "auto", "instructions": "Be brief.", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "What is in this picture?"},
        {"type": "input_image", "image_url": "data:image/bmp;base64,Qk0="}]}]}
    ex = _exchange(gw, body, "/v1/responses")
    assert ex.plan.models[0].provider.api == "openai"
    # A retry on a model the plan did not check for this image (Anthropic takes no BMP): its
    # translator refuses, in the client's terms; the door's field names come from the parse.
    ex.plan = dataclasses.replace(ex.plan, models=(ex.plan.models[0], gw.config.models["claude-haiku-4-5"]))
    gw.route(ex)
    with pytest.raises(errors.UnsupportedFeature) as info:
        gw.attempt(ex, 2)
    assert info.value.param == "input[0].content[1]" and "image/bmp" in info.value.message
    assert len(runs) == 1


def test_a_failure_after_the_plans_fallbacks_tells_the_sdks_not_to_retry(gw):
    """x-should-retry (client_retry): a provider's 5xx on attempt 2 says false; attempt 1's alone does not,
    nor a 503 that says when to come back (retry-after)."""
    ask = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    ex = _exchange(gw, ask)
    gw.route(ex)
    gw.attempt(ex, 2)
    upstream = {"x-envoy-upstream-service-time": "3"}
    after = gw.response_headers(ex, {":status": "500", "x-llm-attempts": "2", **upstream}).set_headers
    assert after[":status"] == "502" and after["x-should-retry"] == "false"
    alone = _exchange(gw, ask)
    gw.route(alone)
    first = gw.response_headers(alone, {":status": "500", "x-llm-attempts": "1", **upstream}).set_headers
    assert "x-should-retry" not in first
    busy = gw.response_headers(ex, {":status": "503", "x-llm-attempts": "2", "retry-after": "3", **upstream})
    assert busy.set_headers[":status"] == "503" and "x-should-retry" not in busy.set_headers
