"""Hostile input through the real Envoy and extproc, generated with hypothesis.

At least 500 generated requests (bodies near and far from the OpenAI schema, broken bytes,
odd headers) must each get either an answer or an OpenAI-shaped 4xx: never a 5xx, never a
reset, and the gateway keeps serving. Also: a provider answer chunk over 4 MiB (once a 200 with
0 bytes), and slow clients cut without hurting normal traffic."""

from __future__ import annotations

import gzip
import json
import re
import signal
import socket
import threading
import time

import brotli
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc import envoy_config
from extproc.devstack import Stack

from ..strategies import chat_bodies, json_value, shaped, well_typed_chat
from .conftest import AUTH, CLIENT_KEY, MODELS, fault, upstream_requests
from .test_headers import STUB, StubbedStack

SENT = {"requests": 0}
MODEL_NAMES = [*MODELS.values(), "auto", "text-embedding-3-small", "no-such-model"]

models = st.sampled_from(MODEL_NAMES)
chat_json = st.one_of(chat_bodies, well_typed_chat).flatmap(lambda b: models.map(lambda m: {**b, "model": m}))
embeddings_json = st.fixed_dictionaries({"model": models, "input": st.one_of(st.text(max_size=20), shaped)},
                                        optional={"encoding_format": shaped, "dimensions": shaped})


def _mangle(raw: bytes, how: str, where: int) -> bytes:
    """Break valid JSON bytes the ways clients and attackers do."""
    at = where % (len(raw) + 1)
    return {"truncate": raw[:at], "nan": raw.replace(b'"max_tokens": 1', b'"max_tokens": NaN'),
            "surrogate": raw[:at] + b"\\ud800" + raw[at:], "deep": b'{"a": ' + b"[" * 5000 + b"]" * 5000 + b"}",
            "bigint": raw.replace(b'"model"', b'"n": ' + b"7" * 5000 + b', "model"', 1),
            "latin1": raw + "é".encode("latin-1"), "nul": raw[:at] + b"\x00" + raw[at:],
            "infinity": raw.replace(b"{", b'{"temperature": -Infinity, ', 1)}[how]


bodies = st.one_of(
    chat_json.map(lambda b: ("/chat/completions", json.dumps(b).encode())),
    embeddings_json.map(lambda b: ("/embeddings", json.dumps(b).encode())),
    st.tuples(st.sampled_from(["/chat/completions", "/embeddings", "/feedback"]),
              json_value.map(lambda v: json.dumps(v).encode())),
    st.tuples(st.sampled_from(["/chat/completions", "/embeddings", "/feedback"]), st.binary(max_size=64)),
    st.tuples(st.just("/chat/completions"),
              st.tuples(chat_json.map(lambda b: json.dumps({**b, "max_tokens": 1}).encode()),
                        st.sampled_from(["truncate", "nan", "surrogate", "deep", "bigint", "latin1", "nul",
                                         "infinity"]),
                        st.integers(0, 10_000)).map(lambda t: _mangle(*t))),
)
content_types = st.sampled_from(["application/json", "application/json; charset=utf-8", "text/plain", "",
                                 "application/x-www-form-urlencoded", "APPLICATION/JSON"])


def check(response: httpx.Response) -> None:
    """No 5xx; an error is OpenAI-shaped JSON with a code (clients key on it: never null or empty)."""
    assert response.status_code < 500, (response.status_code, response.text[:400])
    if response.status_code >= 400:
        assert response.headers["content-type"].startswith("application/json"), response.headers
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}, error
        assert isinstance(error["message"], str) and isinstance(error["type"], str)
        assert isinstance(error["code"], str) and error["code"], error


@pytest.fixture(scope="module")
def http(gateway):
    with httpx.Client(base_url=gateway.base_url, timeout=30, headers=AUTH) as client:
        yield client


@settings(max_examples=520, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(body=bodies, content_type=content_types, stream=st.booleans())
def test_generated_hostile_requests_get_an_answer_or_an_openai_error(http, body, content_type, stream):
    path, raw = body
    if stream and raw.startswith(b"{") and path == "/chat/completions":
        raw = raw.replace(b"{", b'{"stream": true, ', 1)
    headers = {"content-type": content_type} if content_type else {}
    response = http.post(path, content=raw, headers=headers)
    SENT["requests"] += 1
    check(response)


def test_at_least_500_were_sent_and_the_gateway_still_serves(gateway, http):
    assert SENT["requests"] >= 500, SENT
    response = http.post("/chat/completions", json={"model": "gpt-4o-mini",
                                                    "messages": [{"role": "user", "content": "still there?"}]})
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"].endswith("still there?")


# ---- compressed bodies ------------------------------------------------------------------------------

def _chat(content: bytes) -> bytes:
    return b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "' + content + b'"}]}'


COMPRESS = {"gzip": lambda b: gzip.compress(b), "br": lambda b: brotli.compress(b, quality=5)}


@pytest.mark.parametrize("coding", sorted(COMPRESS))
def test_a_decompression_bomb_is_413_whichever_coding(http, coding):
    """64 MiB of JSON in under 70 KB: 413 request_too_large, as for a plain body over the limit. Envoy's
    brotli decompressor stopped at 100x per chunk and passed the cut body on: a 400 for invalid JSON."""
    bomb = COMPRESS[coding](_chat(b"x" * (64 * 1024 * 1024)))
    assert len(bomb) < 70_000
    response = http.post("/chat/completions", content=bomb, headers={"content-type": "application/json",
                                                                      "content-encoding": coding})
    check(response)
    assert response.status_code == 413, response.text[:300]
    assert response.json()["error"]["code"] == "request_too_large"


@pytest.mark.parametrize("coding", sorted(COMPRESS))
def test_a_legitimate_body_compressed_beyond_100x_is_served_whole(gateway, http, coding):
    content = b"the tide comes in " * 16_000           # 288 KB of repeated text, within the model's window
    packed = COMPRESS[coding](_chat(content))
    assert len(content) / len(packed) > 100
    response = http.post("/chat/completions", content=packed, headers={"content-type": "application/json",
                                                                        "content-encoding": coding})
    assert response.status_code == 200, response.text[:300]
    # The provider got the whole prompt, uncompressed (not the first 100x of it).
    (sent,) = upstream_requests(gateway, "openai")
    assert sent["body"]["messages"][0]["content"] == content.decode()
    assert "content-encoding" not in {k.lower() for k in sent["headers"]}


@pytest.mark.parametrize("coding", sorted(COMPRESS))
def test_a_cut_compressed_stream_is_400(http, coding):
    packed = COMPRESS[coding](_chat(b"hello " * 1000))
    response = http.post("/chat/completions", content=packed[:-6], headers={"content-type": "application/json",
                                                                             "content-encoding": coding})
    check(response)
    assert response.status_code == 400 and response.json()["error"]["param"] == "content-encoding", response.text


# ---- large provider answers -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stubbed(tmp_path_factory):
    stack = StubbedStack(simulate=list(MODELS), demo_key=CLIENT_KEY).start()
    yield stack
    stack.stop()


@pytest.mark.parametrize("size", [5 * 1024 * 1024, 12 * 1024 * 1024])
def test_a_provider_answer_over_4_mib_arrives_whole(stubbed, size):
    """A 200 once ended with 0 bytes: the chunk was over grpcio's default 4 MiB message limit."""
    stubbed.stub.answer_bytes = size
    try:
        response = httpx.post(f"{stubbed.base_url}/chat/completions", timeout=60, headers=AUTH,
                              json={"model": MODELS[STUB], "messages": [{"role": "user", "content": "big"}]})
    finally:
        stubbed.stub.answer_bytes = 0
    assert response.status_code == 200
    assert len(response.json()["choices"][0]["message"]["content"]) == size


# ---- slow clients -------------------------------------------------------------------------------------

_USER = [{"role": "user", "content": "hi"}]
_CHAT = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]'
_BAD_ARGS = [*_USER, {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                                          "function": {"name": "f", "arguments": "{not json"}}]},
             {"role": "tool", "tool_call_id": "c1", "content": "r"}]


@pytest.mark.parametrize("path, raw, headers, code", [
    ("/chat/completions", _CHAT + b', "metadata": {"a": ' + b"[" * 1000 + b"]" * 1000 + b"}}", {}, "invalid_value"),
    ("/chat/completions", _CHAT + b', "metadata": {"a": ' + b"[" * 33 + b"]" * 33 + b"}}", {}, "invalid_value"),
    ("/chat/completions", _CHAT + b', "temperature": NaN}', {}, "invalid_value"),
    ("/chat/completions", _CHAT + b', "top_p": Infinity}', {}, "invalid_value"),
    ("/chat/completions", _CHAT + b', "seed": -Infinity}', {}, "invalid_value"),
    ("/chat/completions", _CHAT + b', "max_tokens": ' + b"9" * 20 + b"}", {}, "integer_above_max_value"),
    ("/chat/completions", _CHAT + b', "max_tokens": ' + b"9" * 21 + b"}", {}, "integer_above_max_value"),
    ("/chat/completions", _CHAT + b', "max_tokens": ' + b"9" * 4300 + b"}", {}, "integer_above_max_value"),
    ("/chat/completions", _CHAT + b', "max_tokens": 1e400}', {}, "decimal_above_max_value"),
    ("/chat/completions", _CHAT + b"} xx", {}, "invalid_json"),
    ("/chat/completions", b"\xef\xbb\xbf" + _CHAT + b"}", {}, "invalid_json"),
    ("/chat/completions", b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "\xff\xfe"}]}', {},
     "invalid_json"),
    ("/chat/completions", b"", {}, "invalid_json"),
    ("/chat/completions", b"null", {}, "invalid_type"),
    ("/chat/completions", b"[1, 2]", {}, "invalid_type"),
    ("/chat/completions", b'"x"', {}, "invalid_type"),
    ("/chat/completions", json.dumps({"model": "claude-haiku-4-5", "messages": _BAD_ARGS}).encode(), {},
     "invalid_value"),
    ("/chat/completions", json.dumps({"model": "gemini-3.5-flash-lite", "messages": _BAD_ARGS}).encode(), {},
     "invalid_value"),
    ("/chat/completions", json.dumps({"model": "gemini-3.5-flash-lite", "messages": [
        *_USER, {"role": "tool", "tool_call_id": "zz", "content": "r"}]}).encode(), {}, "invalid_value"),
    ("/chat/completions", _CHAT + b"}", {"x-llm-surface": "no-such-surface"}, "invalid_value"),
    ("/feedback", b'{"request_id": "r1", "score": 1.5}', {}, "decimal_above_max_value"),
    ("/feedback", b"{", {}, "invalid_json"),
])
def test_every_refusal_names_a_code(http, path, raw, headers, code):
    """Clients and SDKs key on the code: every kind of 4xx has one, the same at both sides of a limit
    (nesting 33 and 1,000, 20 and 21 digits), OpenAI's where OpenAI has one (README, "Errors")."""
    response = http.post(path, content=raw, headers={"content-type": "application/json", **headers})
    check(response)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code, response.text


def test_a_responses_output_without_its_call_is_named_in_the_responses_api_terms(http):
    response = http.post("/responses", json={"model": "gemini-3.5-flash-lite", "input": [
        {"type": "message", "role": "user", "content": "hi"},
        {"type": "function_call_output", "call_id": "x", "output": "42"}]})
    check(response)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"]) == ("input[1].call_id", "invalid_value"), error
    assert "messages" not in error["message"] and "tool_call_id" not in error["message"], error


HEADERS_TIMEOUT_S, REQUEST_TIMEOUT_S, SILENT_TIMEOUT_S, IDLE_TIMEOUT_S = 1, 3, 1, 4
DRAIN_TIMEOUT_S = 5   # the connection manager's drain_timeout, Envoy's default


@pytest.fixture(scope="module")
def impatient(monkeypatch_module):
    """The shipped Envoy config with its slow-client timeouts shortened, so the test takes seconds."""
    original = envoy_config.load

    def load(path=envoy_config.DEFAULT_PATH):
        config = original(path)
        hcm = envoy_config._gateway_listener(config)["filter_chains"][0]["filters"][0]["typed_config"]
        listener = envoy_config._gateway_listener(config)
        hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
        assert (hcm["request_headers_timeout"], hcm["request_timeout"]) == ("10s", "60s")   # what README says
        assert (listener["listener_filters_timeout"], hcm["common_http_protocol_options"]["idle_timeout"]) == \
            ("10s", "60s")
        hcm["request_headers_timeout"] = f"{HEADERS_TIMEOUT_S}s"
        hcm["request_timeout"] = f"{REQUEST_TIMEOUT_S}s"
        listener["listener_filters_timeout"] = f"{SILENT_TIMEOUT_S}s"
        hcm["common_http_protocol_options"]["idle_timeout"] = f"{IDLE_TIMEOUT_S}s"
        return config
    monkeypatch_module.setattr(envoy_config, "load", load)
    stack = Stack(simulate=list(MODELS), demo_key=CLIENT_KEY).start()
    monkeypatch_module.undo()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def monkeypatch_module():
    patch = pytest.MonkeyPatch()
    yield patch
    patch.undo()


def _slow_client(port: int, kind: str, outcome: dict, index: int) -> None:
    """Trickle a request one byte a second; record what the gateway did and when."""
    started = time.monotonic()
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "slow"}]}'
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer %s\r\n" % CLIENT_KEY.encode())
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            if kind == "headers":
                trickle = head
            else:
                sock.sendall(head + b"Content-Length: %d\r\n\r\n" % len(body))
                trickle = body
            reply = b""
            for byte in trickle:
                try:
                    sock.sendall(bytes([byte]))
                except OSError:
                    break
                sock.settimeout(1.0)
                try:
                    reply += sock.recv(4096)
                except socket.timeout:
                    continue
                if reply:
                    break
            sock.settimeout(10)
            try:
                reply += sock.recv(4096)
            except OSError:
                pass
    except OSError as exc:
        reply = repr(exc).encode()
    outcome[index] = (kind, time.monotonic() - started, reply[:60])


def test_slow_clients_are_cut_without_hurting_normal_traffic(impatient):
    outcome: dict[int, tuple] = {}
    slow = [threading.Thread(target=_slow_client, args=(impatient.listen_port, kind, outcome, i))
            for i, kind in enumerate(["headers", "body"] * 10)]
    for t in slow:
        t.start()
    normal = []
    deadline = time.monotonic() + REQUEST_TIMEOUT_S + 1
    with httpx.Client(base_url=impatient.base_url, timeout=10, headers=AUTH) as client:
        while time.monotonic() < deadline:
            normal.append(client.post("/chat/completions", json={"model": "gpt-4o-mini",
                                                                 "messages": [{"role": "user", "content": "hi"}]}))
    for t in slow:
        t.join(30)
    assert normal and all(r.status_code == 200 for r in normal), [r.status_code for r in normal]
    for kind, elapsed, reply in outcome.values():
        limit = HEADERS_TIMEOUT_S if kind == "headers" else REQUEST_TIMEOUT_S
        assert elapsed < limit + 3, (kind, elapsed, reply)       # cut near its timeout, not when done trickling
        # cut: closed or reset (a connection whose request line is still trickling is closed when the
        # HTTP inspector gives up on it), or answered 408
        assert reply in (b"", b"ConnectionResetError(104, 'Connection reset by peer')") or \
            reply.startswith(b"HTTP/1.1 408"), (kind, reply)
    assert len(outcome) == 20
    assert any(reply.startswith(b"HTTP/1.1 408") for kind, _, reply in outcome.values() if kind == "body")


def _closed_after(sock: socket.socket, limit: float) -> float | None:
    """Seconds until the peer closed ``sock`` (recv gives b"" or a reset), or None if still open at ``limit``."""
    started = time.monotonic()
    sock.settimeout(0.2)
    while time.monotonic() - started < limit:
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - started
        except socket.timeout:
            continue
        except ConnectionResetError:
            return time.monotonic() - started
    return None


def test_silent_connections_are_closed_while_normal_traffic_continues(impatient):
    """A connection that never sends a byte is closed at listener_filters_timeout (10 s shipped, 1 s here),
    not held for the connection idle timeout; requests on other connections are served meanwhile."""
    silent = [socket.create_connection(("127.0.0.1", impatient.listen_port)) for _ in range(20)]
    try:
        with httpx.Client(base_url=impatient.base_url, timeout=10, headers=AUTH) as client:
            normal = [client.post("/chat/completions", json={"model": "gpt-4o-mini", "messages": _USER})
                      for _ in range(5)]
        assert all(r.status_code == 200 for r in normal), [r.status_code for r in normal]
        closed = [_closed_after(sock, SILENT_TIMEOUT_S + 5) for sock in silent]
    finally:
        for sock in silent:
            sock.close()
    # closed by the HTTP inspector's timeout, well before the connection idle timeout would have
    assert all(t is not None and t < IDLE_TIMEOUT_S - 1 for t in closed), closed
    # and a connection that is not silent lives on: a request still gets its answer
    response = httpx.post(f"{impatient.base_url}/chat/completions", headers=AUTH, timeout=10,
                          json={"model": "gpt-4o-mini", "messages": _USER})
    assert response.status_code == 200, response.text


def _request_bytes(body: bytes) -> bytes:
    return (b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            b"Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n" % (CLIENT_KEY.encode(), len(body)) + body)


def test_a_kept_alive_connection_with_nothing_in_flight_is_closed_at_the_idle_timeout(impatient):
    """After its answer, a connection that sends nothing more is closed at the connection idle timeout
    (60 s shipped, 4 s here) plus Envoy's drain timeout (5 s), not held for 5 minutes."""
    body = json.dumps({"model": "gpt-4o-mini", "messages": _USER}).encode()
    with socket.create_connection(("127.0.0.1", impatient.listen_port), timeout=10) as sock:
        sock.sendall(_request_bytes(body))
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += sock.recv(65536)
        assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
        assert b"connection: close" not in reply.lower()   # kept alive, as clients expect
        # Envoy closes an idle HTTP/1 connection after its drain timeout (5 s by default) past the idle one.
        elapsed = _closed_after(sock, IDLE_TIMEOUT_S + DRAIN_TIMEOUT_S + 5)
    assert elapsed is not None and elapsed >= IDLE_TIMEOUT_S - 0.5, elapsed


def test_a_408_for_a_trickled_body_names_the_gateway_request_id(impatient):
    """Envoy's own 408 comes after the processor took the headers: it carries the id the gateway keys the
    request by (32 hex digits), not an id of Envoy's own nobody can look up."""
    body = json.dumps({"model": "gpt-4o-mini", "messages": _USER}).encode()
    with socket.create_connection(("127.0.0.1", impatient.listen_port), timeout=REQUEST_TIMEOUT_S + 10) as sock:
        sock.sendall(_request_bytes(body)[:-5])   # the last bytes never come
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    head = reply.split(b"\r\n\r\n", 1)[0].decode().lower().split("\r\n")
    assert head[0].startswith("http/1.1 408"), reply[:300]
    ids = [line.split(":", 1)[1].strip() for line in head[1:] if line.startswith("x-request-id:")]
    assert len(ids) == 1 and re.fullmatch(r"[0-9a-f]{32}", ids[0]), head
    assert not [line for line in head if line.startswith(("x-envoy-", "x-llm-reply"))], head


def test_a_408_for_a_trickled_messages_body_is_anthropics_invalid_request_error(impatient):
    """Envoy's own 4xx on /v1/messages in Anthropic's words: its Errors page types a 4xx it does not
    list invalid_request_error (api_error is its 500)."""
    body = json.dumps({"model": "gpt-4o-mini", "max_tokens": 10, "messages": _USER}).encode()
    head = (b"POST /v1/messages HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            b"x-api-key: %s\r\nContent-Length: %d\r\n\r\n" % (CLIENT_KEY.encode(), len(body)))
    with socket.create_connection(("127.0.0.1", impatient.listen_port), timeout=REQUEST_TIMEOUT_S + 10) as sock:
        sock.sendall(head + body[:-5])   # the last bytes never come
        reply = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 408"), reply[:300]
    head, _, chunked = reply.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower(), reply
    size, _, data = chunked.partition(b"\r\n")
    assert json.loads(data[:int(size, 16)]) == {
        "type": "error", "error": {"type": "invalid_request_error", "message": "request timeout"}}, reply


# ---- beyond capacity -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(monkeypatch_module):
    """The shipped config with the gateway's capacity (the extproc cluster's circuit breaker) cut to 2."""
    original = envoy_config.load

    def load(path=envoy_config.DEFAULT_PATH):
        config = original(path)
        cluster = next(c for c in config["static_resources"]["clusters"] if c["name"] == "extproc")
        assert cluster["circuit_breakers"]["thresholds"][0]["max_requests"] == 2048   # what README says
        cluster["circuit_breakers"]["thresholds"][0].update(max_requests=2, max_pending_requests=2)
        return config
    monkeypatch_module.setattr(envoy_config, "load", load)
    stack = Stack(simulate=list(MODELS), demo_key=CLIENT_KEY).start()
    monkeypatch_module.undo()
    yield stack
    stack.stop()


def test_beyond_capacity_clients_get_503_with_retry_after(tiny):
    fault(tiny, "openai", latency_ms=1500)
    results: list[httpx.Response] = []

    def one():
        results.append(httpx.post(f"{tiny.base_url}/chat/completions", timeout=30, headers=AUTH, json={
            "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}))
    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(r.status_code for r in results)
    assert statuses.count(200) >= 2 and set(statuses) <= {200, 503}, statuses
    refused = [r for r in results if r.status_code == 503]
    assert refused, statuses
    for r in refused:
        assert r.headers["retry-after"] == "1"
        assert r.json()["error"]["type"] == "server_error" and "over capacity" in r.json()["error"]["message"]



def test_a_processor_too_busy_to_answer_is_503_with_retry_after(gateway):
    """The processor frozen (SIGSTOP) stands for one too busy to answer within message_timeout."""
    extproc = next(p for p in gateway.processes if "serve" in p.args)
    extproc.send_signal(signal.SIGSTOP)
    try:
        response = httpx.post(f"{gateway.base_url}/chat/completions", timeout=30, headers=AUTH, json={
            "model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
    finally:
        extproc.send_signal(signal.SIGCONT)
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    assert "over capacity" in response.json()["error"]["message"]
    assert response.json()["error"]["code"] == "service_unavailable"   # a stable code, Envoy's detail in the message
