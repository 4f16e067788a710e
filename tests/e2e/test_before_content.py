"""Who is at fault when a request ends before its first content: the client that left, or the provider.

- A client that leaves a held stream before its first content is no failure of the provider (review 8).
  Every unhedged stream is held by the upstream stage until its first content, so the stage's stream also
  closes when the client leaves. It used to count that as the provider's reset: five clients giving up on
  a slow first token ejected a healthy model for everyone. Only Envoy's upstream log tells a client that
  left from a provider that reset; a provider's reset before content must still count.
- A provider that resets before its headers is the same 502 provider_cut as one that resets after them
  (tryout 10 H1): it was the egress listener's plain-text 503, retried twice by the SDKs.
"""

from __future__ import annotations

import httpx
import pytest

from .conftest import CLIENT_KEY, NO_EJECTION, fault, reset_faults, stack_with, wait_for

MODEL = "gpt-4o-mini"


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    with stack_with(tmp_path_factory, "client_leaves", {"/health": NO_EJECTION}) as stack:
        yield stack


def health(gw) -> dict:
    return httpx.get(gw.status_url).json()["models"].get(MODEL, {"requests": 0, "failures": 0, "resets": 0,
                                                                  "inflight": 0})


def stream(gw, timeout: float) -> httpx.Response | None:
    try:
        with httpx.stream("POST", f"{gw.base_url}/chat/completions", timeout=timeout,
                          headers={"authorization": f"Bearer {CLIENT_KEY}"},
                          json={"model": MODEL, "stream": True, "messages": [{"role": "user", "content": "hi"}]}) as r:
            r.read()
            return r
    except (httpx.TimeoutException, httpx.RemoteProtocolError):
        return None


def test_a_client_leaving_before_the_first_content_is_no_failure_of_its_provider(gw):
    before = health(gw)
    fault(gw, "openai", ttft_ms=5000)     # headers at once, the first token 5 s later
    try:
        for _ in range(3):
            assert stream(gw, timeout=1.0) is None    # the client gives up while the headers are held
        # each attempt's span ends once Envoy's upstream log says the client left
        wait_for(lambda: health(gw)["inflight"] == 0, what="the three abandoned attempts to end")
    finally:
        reset_faults(gw, "openai")
    after = health(gw)
    assert (after["failures"], after["resets"]) == (before["failures"], before["resets"]), (before, after)


def test_a_provider_reset_before_the_first_content_still_counts(gw):
    before = health(gw)
    fault(gw, "openai", disconnect_after=0, count=1)   # its 200 headers, then a reset
    try:
        reply = stream(gw, timeout=30)
        assert reply is not None and reply.status_code == 502, reply
        after = wait_for(lambda: (h := health(gw))["resets"] > before["resets"] and h, what="the reset counted")
    finally:
        reset_faults(gw, "openai")
    assert after["failures"] == before["failures"] + 1


# ---- a provider that resets before its headers (tryout 10 H1) -------------------------------------------

@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_reset_before_the_providers_headers_is_a_502_provider_cut_called_once(gw, stream):
    # It was the egress listener's plain-text 503 ("upstream connect error or disconnect/reset before
    # headers"), read as the provider's 503: no x-should-retry, so the SDK called three times.
    import openai
    from .conftest import clear_requests, upstream_requests
    before = health(gw)
    clear_requests(gw, "openai")
    fault(gw, "openai", reset=True)
    try:
        client = openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY)   # the SDK's default retries
        with pytest.raises(openai.APIStatusError) as info:
            answer = client.chat.completions.create(model=MODEL, stream=stream,
                                                    messages=[{"role": "user", "content": "hi"}])
            if stream:
                list(answer)
        err = info.value
        assert err.status_code == 502 and err.response.headers.get("x-should-retry") == "false"
        assert (err.body["type"], err.body["code"]) == ("upstream_error", "provider_cut"), err.body
        assert "x-llm-provider-reset" not in err.response.headers
        assert len(upstream_requests(gw, "openai")) == 1
        # the provider's failure, whichever stage saw it end
        wait_for(lambda: health(gw)["failures"] == before["failures"] + 1, what="the reset counted")
    finally:
        reset_faults(gw, "openai")


def test_a_reset_before_claudes_headers_is_anthropics_502_on_the_messages_door(gw):
    fault(gw, "anthropic", reset=True)
    try:
        r = httpx.post(f"{gw.base_url.removesuffix('/v1')}/v1/messages", timeout=30,
                       headers={"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"},
                       json={"model": "claude-haiku-4-5", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]})
    finally:
        reset_faults(gw, "anthropic")
    assert r.status_code == 502 and r.headers.get("x-should-retry") == "false", r.text
    body = r.json()
    assert body["type"] == "error" and body["error"]["type"] == "api_error", body
