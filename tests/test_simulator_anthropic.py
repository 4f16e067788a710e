"""The Anthropic simulator: its JSON and SSE answers, checks, faults, and llm-comply's Anthropic suite."""

from __future__ import annotations

import json
import pathlib
import time

import httpx
import pytest

from extproc import sse
from extproc.providers.base import Target
from extproc.providers.openai_anthropic import AnthropicChatTranslator
from extproc.simulators import anthropic as sim_anthropic, core

from .simulator_server import SimulatorServer, run_llm_comply, server_fixture

HEADERS = {"x-api-key": "test", "anthropic-version": "2023-06-01"}
MODEL = "claude-haiku-4-5"


class AnthropicServer(SimulatorServer):
    """The Anthropic simulator, with shortcuts for its Messages endpoint."""

    def post(self, body: dict, headers: dict | None = None) -> httpx.Response:
        return httpx.post(f"{self.url}/v1/messages", json=body, headers=HEADERS if headers is None else headers,
                          timeout=10)

    def stream(self, body: dict) -> tuple[httpx.Response, bytes]:
        with httpx.stream("POST", f"{self.url}/v1/messages", json={**body, "stream": True}, headers=HEADERS,
                          timeout=10) as r:
            return r, r.read()


server = server_fixture("anthropic", sim_anthropic, AnthropicServer)


@pytest.fixture(autouse=True)
def clean(server):
    server.clear()
    yield


def basic(text="Say hello in exactly 3 words.", **extra) -> dict:
    return {"model": MODEL, "max_tokens": 256, "messages": [{"role": "user", "content": text}], **extra}


WEATHER_TOOL = {"name": "get_weather", "description": "Weather now.",
                "input_schema": {"type": "object", "properties": {"location": {"type": "string"}},
                                 "required": ["location"]}}


def events_of(raw: bytes) -> list[tuple[str, dict]]:
    return [(e.event, json.loads(e.data)) for e in sse.SSEDecoder().feed(raw)]


def spec_errors(message: dict) -> list[str]:
    from llm_comply import __file__ as comply_init
    from llm_comply.schema import SpecLoader
    spec = SpecLoader(str(pathlib.Path(comply_init).parent / "specs" / "anthropic.json"))
    return spec.validate(message, "Message")


# -- JSON answers -----------------------------------------------------------------------------

def test_text_message(server):
    r = server.post(basic("Hello there"))
    assert r.status_code == 200, r.text
    assert r.headers["request-id"].startswith("req_")
    assert r.headers["content-type"].startswith("application/json")
    msg = r.json()
    assert msg["id"].startswith("msg_") and msg["type"] == "message" and msg["role"] == "assistant"
    assert msg["model"] == MODEL
    assert msg["content"] == [{"type": "text", "text": f"Hello from {MODEL}. You said: Hello there",
                               "citations": None}]
    assert msg["stop_reason"] == "end_turn" and msg["stop_sequence"] is None
    assert msg["usage"]["input_tokens"] == core.count_tokens("Hello there")
    assert msg["usage"]["output_tokens"] == core.count_tokens(msg["content"][0]["text"])
    assert msg["usage"]["cache_read_input_tokens"] == 0 and msg["usage"]["cache_creation_input_tokens"] == 0
    assert spec_errors(msg) == []


def test_tool_use_and_tool_result_round_trip(server):
    msg = server.post(basic("What is the weather in San Francisco?", tools=[WEATHER_TOOL],
                            tool_choice={"type": "any"})).json()
    assert msg["stop_reason"] == "tool_use"
    [block] = msg["content"]
    assert block["type"] == "tool_use" and block["id"].startswith("toolu_") and block["name"] == "get_weather"
    assert block["input"] == {"location": "San Francisco"}
    assert spec_errors(msg) == []

    follow_up = {"model": MODEL, "max_tokens": 256, "tools": [WEATHER_TOOL], "messages": [
        {"role": "user", "content": "What is the weather in San Francisco?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": block["id"], "name": "get_weather",
                                           "input": block["input"]}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block["id"], "content": "18C, sunny"}]},
    ]}
    r = server.post(follow_up)
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["text"] == "The tool returned: 18C, sunny"
    assert r.json()["stop_reason"] == "end_turn"

    follow_up["messages"][2]["content"][0]["tool_use_id"] = "toolu_unknown"
    r = server.post(follow_up)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert "tool_use_id" in r.json()["error"]["message"]


def test_stop_sequence_and_max_tokens(server):
    msg = server.post(basic("alpha beta gamma", stop_sequences=["beta"])).json()
    assert msg["stop_reason"] == "stop_sequence" and msg["stop_sequence"] == "beta"
    assert msg["content"][0]["text"] == f"Hello from {MODEL}. You said: alpha "
    msg = server.post({**basic("alpha beta gamma"), "max_tokens": 2}).json()
    assert msg["stop_reason"] == "max_tokens"
    assert msg["content"][0]["text"] == "Hello" and msg["usage"]["output_tokens"] <= 2
    # L3: never more output tokens than max_tokens (cut by words, it reported 9 to 11 for 5).
    msg = server.post({**basic("Tell me about Peru"), "max_tokens": 5}).json()
    assert msg["stop_reason"] == "max_tokens" and 0 < msg["usage"]["output_tokens"] <= 5, msg


def test_system_and_images_are_read(server):
    png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
    body = {"model": MODEL, "max_tokens": 256, "system": [{"type": "text", "text": "Respond only in JSON."}],
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": "Describe"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": png}}]}]}
    text = server.post(body).json()["content"][0]["text"]
    assert json.loads(text.split(" (I see")[0]) == {"model": MODEL, "answer": "Describe"}
    assert text.endswith("(I see 1 image.)")


def test_count_tokens(server):
    r = httpx.post(f"{server.url}/v1/messages/count_tokens", headers=HEADERS,
                   json={"model": MODEL, "messages": [{"role": "user", "content": "Hello there"}]})
    assert r.status_code == 200 and r.json() == {"input_tokens": core.count_tokens("Hello there")}


# -- request checks ---------------------------------------------------------------------------

@pytest.mark.parametrize("headers, body, status, kind, words", [
    ({"anthropic-version": "2023-06-01"}, basic(), 401, "authentication_error", "x-api-key"),
    ({"x-api-key": "k"}, basic(), 400, "invalid_request_error", "anthropic-version"),
    (HEADERS, {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}, 400, "invalid_request_error",
     "max_tokens"),
    (HEADERS, {"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}, 400, "invalid_request_error",
     "model"),
    (HEADERS, {"model": MODEL, "max_tokens": 5}, 400, "invalid_request_error", "messages"),
    (HEADERS, {"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "text", "text": ""}]}]}, 400, "invalid_request_error", "non-empty"),
    (HEADERS, {**basic(), "temperature": 1.5}, 400, "invalid_request_error", "temperature"),
    (HEADERS, {**basic(), "messages": [{"role": "system", "content": "x"}]}, 400, "invalid_request_error", "role"),
    (HEADERS, {**basic(), "foo": 1}, 400, "invalid_request_error", "foo: Extra inputs are not permitted"),
])
def test_rejections_in_anthropic_error_shape(server, headers, body, status, kind, words):
    r = server.post(body, headers=headers)
    assert r.status_code == status
    err = r.json()
    assert err["type"] == "error" and err["error"]["type"] == kind and words in err["error"]["message"]
    assert err["request_id"] == r.headers["request-id"]


def test_requests_are_recorded(server):
    server.post(basic("recorded please"))
    [rec] = httpx.get(f"{server.url}/_sim/requests").json()
    assert rec["path"] == "/v1/messages" and rec["method"] == "POST"
    assert rec["body"]["messages"][0]["content"] == "recorded please"
    assert rec["headers"]["anthropic-version"] == "2023-06-01"


# -- faults -----------------------------------------------------------------------------------

def test_fault_429_with_retry_after(server):
    server.faults(status=429, retry_after=3)
    r = server.post(basic())
    assert r.status_code == 429
    assert r.headers["retry-after"] == "3"
    assert r.json()["type"] == "error" and r.json()["error"]["type"] == "rate_limit_error"


@pytest.mark.parametrize("status, kind", [(529, "overloaded_error"), (503, "overloaded_error"),
                                          (500, "api_error"), (502, "api_error")])
def test_fault_statuses(server, status, kind):
    server.faults(status=status, count=1)
    r = server.post(basic())
    assert r.status_code == status and r.json()["error"]["type"] == kind
    assert "retry-after" not in r.headers
    assert server.post(basic()).status_code == 200  # count=1: only one request failed


def test_fault_disconnect_mid_stream(server):
    server.faults(disconnect_after=4)
    received = b""
    with pytest.raises(httpx.HTTPError):
        with httpx.stream("POST", f"{server.url}/v1/messages", json={**basic(), "stream": True},
                          headers=HEADERS, timeout=10) as r:
            for part in r.iter_raw():
                received += part
    kinds = [e.event for e in sse.SSEDecoder().feed(received)]
    assert kinds[:2] == ["message_start", "content_block_start"]
    assert "message_stop" not in kinds and len(kinds) <= 4


def test_fault_time_to_first_token(server):
    server.faults(ttft_ms=300)
    started = time.monotonic()
    r, _ = server.stream(basic())
    assert r.status_code == 200
    assert time.monotonic() - started >= 0.3


# -- streams ----------------------------------------------------------------------------------

def test_stream_text(server):
    r, raw = server.stream(basic("Count from 1 to 5."))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["request-id"].startswith("req_")
    events = events_of(raw)
    assert all(name == data["type"] for name, data in events)  # event name and type always agree
    kinds = [name for name, _ in events]
    assert kinds[:3] == ["message_start", "content_block_start", "ping"]
    assert kinds[-4:] == ["content_block_delta", "content_block_stop", "message_delta", "message_stop"]
    assert set(kinds[3:-3]) == {"content_block_delta"} and len(kinds[3:-3]) > 1
    start = events[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None and start["model"] == MODEL
    text = "".join(d["delta"]["text"] for k, d in events if k == "content_block_delta")
    assert text == server.post(basic("Count from 1 to 5.")).json()["content"][0]["text"]
    delta = events[-2][1]
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] == core.count_tokens(text)


def test_stream_tool_use(server):
    _, raw = server.stream(basic("What is the weather in San Francisco?", tools=[WEATHER_TOOL],
                                 tool_choice={"type": "tool", "name": "get_weather"}))
    events = events_of(raw)
    [start] = [d for k, d in events if k == "content_block_start"]
    assert start["content_block"]["type"] == "tool_use" and start["content_block"]["input"] == {}
    partial = "".join(d["delta"]["partial_json"] for k, d in events if k == "content_block_delta")
    assert json.loads(partial) == {"location": "San Francisco"}
    assert [d for k, d in events if k == "message_delta"][0]["delta"]["stop_reason"] == "tool_use"


def test_thinking_blocks(server):
    body = {**basic("What is 15 * 37?"), "max_tokens": 4096,
            "thinking": {"type": "enabled", "budget_tokens": 2048}}
    msg = server.post(body).json()
    assert [b["type"] for b in msg["content"]] == ["thinking", "text"]
    assert msg["content"][0]["thinking"] and msg["content"][0]["signature"]
    assert spec_errors(msg) == []
    _, raw = server.stream(body)
    deltas = [d["delta"]["type"] for k, d in events_of(raw) if k == "content_block_delta"]
    assert deltas[0] == "thinking_delta" and "signature_delta" in deltas and deltas[-1] == "text_delta"
    assert server.post({**body, "thinking": {"type": "enabled", "budget_tokens": 100}}).status_code == 400


# -- the gateway's translator against the simulator ------------------------------------------------

def _translator() -> AnthropicChatTranslator:
    target = Target(model="claude", upstream_model=MODEL, provider="anthropic", api="anthropic", base_path="/v1")
    return AnthropicChatTranslator(target, created=1, response_id="chatcmpl-test")


def test_translator_round_trip(server):
    t = _translator()
    req = t.request({"model": "claude", "messages": [{"role": "system", "content": "Be brief."},
                                                     {"role": "user", "content": "What is the weather in Paris?"}],
                     "tools": [{"type": "function", "function": {
                         "name": "get_weather", "parameters": {"type": "object",
                                                               "properties": {"city": {"type": "string"}}}}}]})
    r = httpx.post(server.url + req.path, content=req.body, headers={**req.headers, "x-api-key": "k"})
    assert r.status_code == 200, r.text
    out = json.loads(t.response(r.content))
    call = out["choices"][0]["message"]["tool_calls"][0]
    assert out["choices"][0]["finish_reason"] == "tool_calls"
    assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}

    t2 = _translator()
    req = t2.request({"model": "claude", "stream": True, "stream_options": {"include_usage": True}, "messages": [
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call["id"], "type": "function", "function": call["function"]}]},
        {"role": "tool", "tool_call_id": call["id"], "content": "héllo 👋"}]})
    out = b""
    with httpx.stream("POST", server.url + req.path, content=req.body,
                      headers={**req.headers, "x-api-key": "k"}) as r:
        for part in r.iter_raw(3):
            out += t2.stream_chunk(part)
    out += t2.stream_end()
    events = sse.SSEDecoder().feed(out)
    assert events[-1].data == "[DONE]"
    chunks = [json.loads(e.data) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == \
        "The tool returned: héllo 👋"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == t2.usage.output_tokens > 0


# -- llm-comply ---------------------------------------------------------------------------------

def test_llm_comply_anthropic_suite(server):
    """Every test of llm-comply's Anthropic suite passes, with no warnings and none skipped."""
    report, proc = run_llm_comply("anthropic", f"{server.url}/v1", MODEL, "-k", "test", "--auth-header", "x-api-key",
                                  "--no-bearer", "-H", "anthropic-version:2023-06-01", "--timeout", "20")
    results = {r["id"]: r for r in report["results"]}
    assert set(results) >= {"anth-basic-response", "anth-system-prompt", "anth-multi-turn", "anth-tool-calling",
                            "anth-streaming-response", "anth-streaming-usage", "anth-image-input",
                            "anth-thinking-display", "anth-error-handling"}
    not_passed = {k: r for k, r in results.items() if r["status"] != "passed" or r.get("warnings")}
    assert not not_passed, json.dumps(not_passed, indent=1)
    assert report["summary"]["failed"] == 0 and report["summary"]["skipped"] == 0
    assert proc.returncode == 0, proc.stderr


# -- strictness: what the real Messages API refuses ---------------------------------------------

def _tool_turns(call_id="toolu_01A", result_id=None, assistant_text="Checking."):
    content = ([{"type": "text", "text": assistant_text}] if assistant_text is not None else []) + [
        {"type": "tool_use", "id": call_id, "name": "get_weather", "input": {"location": "Paris"}}]
    return [{"role": "user", "content": "Weather in Paris?"}, {"role": "assistant", "content": content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": result_id or call_id,
                                          "content": "sunny"}]}]


REFUSED = {
    # each: (the request's changes to a valid one, status, the API's own message or its start)
    "whitespace_user_text": ({"messages": [{"role": "user", "content": " \n "}]}, 400,
                             "messages: text content blocks must contain non-whitespace text"),
    "whitespace_text_beside_tool_use": ({"messages": _tool_turns(assistant_text="\n\n")}, 400,
                                        "messages: text content blocks must contain non-whitespace text"),
    "empty_text_block": ({"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]}, 400,
                         "messages: text content blocks must be non-empty"),
    "whitespace_system": ({"system": "   "}, 400, "system: text content blocks must contain non-whitespace text"),
    "whitespace_system_block": ({"system": [{"type": "text", "text": "\t"}]}, 400,
                                "system: text content blocks must contain non-whitespace text"),
    "foreign_tool_id": ({"messages": _tool_turns("functions.get_weather:0")}, 400,
                        "messages.1.content.1.tool_use.id: String should match pattern '^[a-zA-Z0-9_-]+$'"),
    "whitespace_stop_sequence": ({"stop_sequences": ["\n"]}, 400,
                                 "stop_sequences: each stop sequence must contain non-whitespace"),
    "empty_stop_sequence": ({"stop_sequences": [""]}, 400, "stop_sequences: each stop sequence must be non-empty"),
    "prefill_trailing_space": ({"messages": [{"role": "user", "content": "Hi"},
                                             {"role": "assistant", "content": "Sure, "}]}, 400,
                               "messages: final assistant content cannot end with trailing whitespace"),
    "no_messages": ({"messages": []}, 400, "messages: at least one message is required"),
    "tool_result_without_tool_use": ({"messages": _tool_turns(result_id="toolu_other")}, 400,
                                     "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks"),
    "tool_use_without_result": ({"messages": _tool_turns()[:2] + [{"role": "user", "content": "and?"}]}, 400,
                                "messages.1: `tool_use` ids were found without `tool_result` blocks"),
    "max_tokens_missing": ({"max_tokens": None}, 400, "max_tokens: Field required"),
    "max_tokens_zero": ({"max_tokens": 0}, 400, "max_tokens: Input should be greater than or equal to 1"),
    "max_tokens_above_model_limit": ({"max_tokens": 100000}, 400,
                                     "max_tokens: 100000 > 64000, which is the maximum allowed number of output "
                                     "tokens for claude-haiku-4-5"),
    "temperature_above_1": ({"temperature": 1.5}, 400, "temperature: Input should be less than or equal to 1"),
    "top_p_above_1": ({"top_p": 1.5}, 400, "top_p: Input should be less than or equal to 1"),
    "bmp_image": ({"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "Qk0="}}]}]}, 400,
        "messages.0.content.0.source.base64.media_type: Input should be"),
    "ftp_image_url": ({"messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "ftp://x/y.png"}}]}]}, 400,
        "messages.0.content.0.source.url: must be an http(s) URL"),
    "temperature_and_top_p": ({"temperature": 0.5, "top_p": 0.5}, 400,
                              "`temperature` and `top_p` cannot both be specified for this model. Please use only one."),
    "retired_model": ({"model": "claude-3-5-sonnet-20241022"}, 404, "model: claude-3-5-sonnet-20241022"),
    "unknown_model": ({"model": "claude-9-ultra"}, 404, "model: claude-9-ultra"),
    "prompt_over_window": ({"messages": [{"role": "user", "content": "word " * 160001}]}, 400,
                           "prompt is too long: 200002 tokens > 200000 maximum"),
    "prompt_and_max_tokens_over_window": ({"messages": [{"role": "user", "content": "word " * 150000}],
                                           "max_tokens": 64000}, 400,
                                          "input length and `max_tokens` exceed context limit: 187500 + 64000 > "
                                          "200000, decrease input length or `max_tokens` and try again"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refuses_what_the_real_api_refuses(server, case):
    changes, status, message = REFUSED[case]
    body = {k: v for k, v in {**basic(), **changes}.items() if v is not None}
    r = server.post(body)
    assert r.status_code == status, r.text
    err = r.json()
    assert err["type"] == "error" and err["request_id"] == r.headers["request-id"]
    assert err["error"]["type"] == ("not_found_error" if status == 404 else "invalid_request_error")
    assert err["error"]["message"].startswith(message), err["error"]["message"]


ACCEPTED = {
    "tool_round_trip": {"messages": _tool_turns()},
    "tool_use_alone": {"messages": _tool_turns(assistant_text=None)},
    "prefill_without_trailing_space": {"messages": [{"role": "user", "content": "Hi"},
                                                    {"role": "assistant", "content": "Sure,"}]},
    "stop_with_text": {"stop_sequences": ["\nUser:"]},
    "pdf_url_and_text_document": {"messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}},
        {"type": "text", "text": "Summarise."}]}]},
}


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_accepts_what_the_real_api_accepts(server, case):
    r = server.post({**basic(), **ACCEPTED[case]})
    assert r.status_code == 200, r.text
    assert r.json()["type"] == "message"


def test_a_body_over_32_mb_is_refused_without_taking_the_simulator_down(server):
    big = {**basic(), "system": "x" * (33 * 1024 * 1024)}
    r = server.post(big)
    assert r.status_code == 413
    assert r.json()["error"]["type"] == "request_too_large"
    assert server.post(basic()).status_code == 200  # still serving
    assert len(json.dumps(server.requests()[-2]["body"])) < 200  # the big body was not kept


def test_validate_is_the_same_check_as_a_pure_function():
    sim_anthropic.validate({**basic()})
    with pytest.raises(sim_anthropic.BadRequest, match="non-whitespace"):
        sim_anthropic.validate({**basic(), "stop_sequences": [" "]})
    with pytest.raises(sim_anthropic.NotFound):
        sim_anthropic.validate({**basic(), "model": "claude-2.1"})


def test_structured_outputs_answer_a_value_of_the_schema(server):
    schema = {"type": "object", "additionalProperties": False, "required": ["city", "days"],
              "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 3}}}
    body = {**basic("Plan a trip to Rome"), "model": "claude-sonnet-4-6",
            "output_config": {"format": {"type": "json_schema", "schema": schema}}}
    r = server.post(body)   # the grammar takes no numeric constraints: the API's 400
    assert r.status_code == 400 and "For 'integer' type, property 'minimum' is not supported" in r.text
    # moved into the description, as Anthropic's SDK does: the (simulated) model follows it
    schema["properties"]["days"] = {"type": "integer", "description": '{"minimum": 3}'}
    r = server.post(body)
    assert r.status_code == 200, r.text
    assert json.loads(r.json()["content"][0]["text"]) == {"city": "Rome", "days": 3}
    # objects must be closed (every model the API still serves has structured outputs: the older ones retired)
    r = server.post({**body, "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}}})
    assert r.status_code == 400 and "'additionalProperties' must be explicitly set to false" in r.text


def test_fault_refusal_context_length_in_anthropics_words(server):
    server.faults(refusal="context_length", count=1)
    r = server.post(basic())
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    assert r.json()["error"]["message"] == "prompt is too long: 200001 tokens > 200000 maximum"   # haiku 4.5: 200K
    assert server.post(basic()).status_code == 200


def test_fault_429_names_the_organization_as_anthropic_does(server):
    server.faults(status=429, count=1)
    message = server.post(basic()).json()["error"]["message"]
    assert f"for your organization ({sim_anthropic.SIM_ORGANIZATION})" in message


def test_the_messages_fields_are_the_specs():
    """The simulator refuses exactly the top-level fields the Messages API's own spec leaves out."""
    from .vendor_specs import _spec
    schema = _spec("anthropic").document["components"]["schemas"]["CreateMessageParams"]
    assert schema["additionalProperties"] is False
    assert sim_anthropic.MESSAGES_FIELDS == frozenset(schema["properties"])


# -- prompt caching -----------------------------------------------------------------------------

HANDBOOK = "".join(f"Policy {i:04d}: refunds within thirty days. " for i in range(200))[:8000]   # 2,000 tokens


def cached_body(question: str, model: str = "claude-sonnet-4-6", ttl: str | None = None, **extra) -> dict:
    control = {"type": "ephemeral", **({"ttl": ttl} if ttl else {})}
    return {"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": question}],
            "system": [{"type": "text", "text": "You answer from the handbook."},
                       {"type": "text", "text": HANDBOOK, "cache_control": control}], **extra}


def test_a_cache_control_breakpoint_is_written_then_read(server):
    """Anthropic "Prompt caching": the prefix up to the marked block is written on the first call
    (cache_creation_input_tokens, 5-minute TTL by default) and read on the next (cache_read_input_tokens);
    input_tokens is only the rest, and the three add up to the prompt."""
    system_tokens = core.count_tokens("You answer from the handbook.\n" + HANDBOOK)
    first = server.post(cached_body("What is policy 12?")).json()["usage"]
    total = system_tokens + core.count_tokens("What is policy 12?")
    assert (first["cache_creation_input_tokens"], first["cache_read_input_tokens"]) == (system_tokens, 0)
    assert first["input_tokens"] == total - system_tokens
    assert first["cache_creation"] == {"ephemeral_5m_input_tokens": system_tokens, "ephemeral_1h_input_tokens": 0}
    second = server.post(cached_body("And policy 13?")).json()["usage"]
    assert (second["cache_creation_input_tokens"], second["cache_read_input_tokens"]) == (0, system_tokens)
    assert second["input_tokens"] == core.count_tokens("And policy 13?")
    # Streams carry it in message_start and repeat it in message_delta.
    response, raw = server.stream(cached_body("And policy 14?"))
    events = dict(events_of(raw))
    assert events["message_start"]["message"]["usage"]["cache_read_input_tokens"] == system_tokens
    assert events["message_delta"]["usage"]["cache_read_input_tokens"] == system_tokens
    assert events["message_delta"]["usage"]["input_tokens"] == core.count_tokens("And policy 14?")
    # No breakpoint, no cache; another model or key has its own.
    plain = cached_body("And policy 15?")
    del plain["system"][1]["cache_control"]
    assert server.post(plain).json()["usage"]["cache_read_input_tokens"] == 0
    assert server.post(cached_body("x", model="claude-opus-4-8")).json()["usage"]["cache_read_input_tokens"] == 0
    other = server.post(cached_body("x"), headers={**HEADERS, "x-api-key": "sk-ant-other"}).json()["usage"]
    assert other["cache_read_input_tokens"] == 0 and other["cache_creation_input_tokens"] == system_tokens


def test_a_prefix_under_the_models_minimum_is_not_cached_and_a_growing_conversation_reads_its_past(server):
    # Haiku 4.5 caches from 4,096 tokens: the 2,008-token system prompt is processed uncached, silently.
    for _ in range(2):
        usage = server.post(cached_body("q", model="claude-haiku-4-5")).json()["usage"]
        assert usage["cache_creation_input_tokens"] == usage["cache_read_input_tokens"] == 0
    # A conversation that moves its breakpoint to the newest turn reads the previous turn's prefix (the
    # API looks back over the block boundaries before a breakpoint).
    turns = [{"role": "user", "content": [{"type": "text", "text": HANDBOOK + " Question one?",
                                           "cache_control": {"type": "ephemeral"}}]}]
    body = {"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": turns}
    first = server.post(body).json()
    written = first["usage"]["cache_creation_input_tokens"]
    assert written == core.count_tokens(HANDBOOK + " Question one?")
    turns = [{"role": "user", "content": [{"type": "text", "text": HANDBOOK + " Question one?"}]},
             {"role": "assistant", "content": first["content"][0]["text"]},
             {"role": "user", "content": [{"type": "text", "text": "Question two?",
                                           "cache_control": {"type": "ephemeral", "ttl": "1h"}}]}]
    second = server.post({**body, "messages": turns}).json()["usage"]
    assert second["cache_read_input_tokens"] == written
    assert second["cache_creation"]["ephemeral_1h_input_tokens"] == second["cache_creation_input_tokens"] > 0
    assert second["input_tokens"] == 0


def test_cache_entries_expire_after_their_ttl(server):
    now = [0.0]
    server.sim.prompt_cache.clock = lambda: now[0]
    try:
        server.post(cached_body("q"))
        now[0] += 301
        assert server.post(cached_body("q")).json()["usage"]["cache_read_input_tokens"] == 0   # 5 minutes
        server.post(cached_body("q", ttl="1h"))
        now[0] += 3000
        assert server.post(cached_body("q", ttl="1h")).json()["usage"]["cache_read_input_tokens"] > 0
    finally:
        server.sim.prompt_cache.clock = time.monotonic
