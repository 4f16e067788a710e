"""Accounting and secrets at the edges, end to end: a key in the query string never reaches the stack log
or the spans (L1), an attempt cut by its tier's deadline is billed its prompt (M3), count_tokens and
invalid requests count against the tenant's request rate (M2), the simulators stop at max_tokens (L3)."""

from __future__ import annotations

import httpx

from .conftest import AUTH, wait_for
from .otlp_receiver import attributes

SIMPLE = [{"role": "user", "content": "What is the capital of France?"}]
QUERY_SECRET = "sk-sent-in-the-query-string-0123456789"


def _log(stack) -> str:
    return (stack.workdir / "stack.log").read_text(errors="replace")


def test_a_key_in_the_query_string_reaches_no_log_and_no_span(gateway, otlp):
    """L1: Envoy's access log and its span's http.url recorded the path with its query, so a client that
    put its key in the URL (Gemini's ``?key=`` style) left it in the stack log, for refused requests
    (routed ones log the rewritten path)."""
    root = f"http://127.0.0.1:{gateway.listen_port}"
    chat = {"model": "gpt-4o-mini", "messages": SIMPLE}
    sent = [
        # the key only in the query: refused (401) before any routing
        ("/v1/chat/completions", {}, chat, 401),
        # a known caller, an unknown URL: refused (404)
        ("/v1/nope", AUTH, chat, 404),
        # routed ones too (Claude Code's ?beta=true beside it)
        ("/v1/chat/completions", AUTH, chat, 200),
        ("/v1/messages", AUTH, {"model": "claude-haiku-4-5", "max_tokens": 16, "messages": SIMPLE}, 200),
    ]
    ids = []
    for path, headers, body, status in sent:
        r = httpx.post(f"{root}{path}?beta=true&key={QUERY_SECRET}", headers=headers, json=body, timeout=20)
        assert r.status_code == status, (path, r.text)
        assert QUERY_SECRET not in r.text
        ids.append((path, r.headers["x-request-id"]))
    # Envoy writes each access log line when its request ends; wait for all four.
    lines = wait_for(lambda: [line for line in _log(gateway).splitlines() if any(f"id={i}" in line for _p, i in ids)]
                     if all(f"id={i}" in _log(gateway) for _p, i in ids) else None, what="the access log lines")
    assert len(lines) == len(ids)
    assert QUERY_SECRET not in _log(gateway)
    assert all("?" not in line.split('"')[1] for line in lines), lines   # the path is logged, its query is not
    assert any('"POST /v1/chat/completions" 401' in line for line in lines), lines
    # Envoy's ingress spans still say which path was asked, without the query.
    urls = otlp.wait_for(lambda spans: [attributes(s).get("http.url") for svc, s in spans
                                        if svc == "llm-gateway-envoy"
                                        and attributes(s).get("guid:x-request-id") in {i for _p, i in ids}]
                         if len([1 for svc, s in spans if svc == "llm-gateway-envoy"
                                 and attributes(s).get("guid:x-request-id") in {i for _p, i in ids}]) >= len(ids)
                         else None)
    assert "/v1/chat/completions" in urls and "/v1/nope" in urls, urls
    assert QUERY_SECRET.encode() not in otlp.raw()
