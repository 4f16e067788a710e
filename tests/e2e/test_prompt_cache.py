"""Prompt-cache reads end to end: the simulators report them as each API documents it, the gateway maps
them into OpenAI's ``prompt_tokens_details.cached_tokens`` and the ledger, and ``extproc report`` shows
them with their saving (issue 13 item 3; tryout 9 M2).

Prices here are steep (USD per 1M tokens) so a saving shows in four decimals: gpt-4o-mini costs $100 per
1M input tokens and $10 per 1M cached input tokens, so every cached token saves $90 per 1M.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import httpx
import openai
import pytest

from extproc.devstack import ROOT
from extproc.ledger import open_ledger

from .conftest import CLIENT_KEY, stack_with, wait_for

MINI = {"input": 100.0, "output": 100.0, "cached_input": 10.0}
# A support bot's system prompt of 1,500 simulator tokens (4 characters each): over OpenAI's 1,024.
HANDBOOK = "".join(f"Policy {i:04d}: refunds are due within thirty days of a claim. " for i in range(120))[:6000]


@pytest.fixture(scope="module")
def gw(tmp_path_factory):
    with stack_with(tmp_path_factory, "prompt-cache", {"/models/gpt-4o-mini/price": MINI}) as stack:
        yield stack


@pytest.fixture(autouse=True)
def _cold_caches(gw):
    """Each test starts with the providers' prompt caches empty (its prompts share a handbook)."""
    for name in gw.simulators:
        httpx.delete(f"{gw.sim_url(name)}/_sim/prompt-cache").raise_for_status()


@pytest.fixture(scope="module")
def client(gw):
    with openai.OpenAI(base_url=gw.base_url, api_key=CLIENT_KEY, max_retries=0, timeout=30) as c:
        yield c


def records(gw, request_ids: set[str]) -> dict:
    """The ledger's finished records of ``request_ids``, once all are written (the gateway writes them
    after the answer)."""
    async def read():
        ledger = open_ledger(f"sqlite:///{gw.workdir}/ledger.db")
        try:
            return {r.request_id: r for r in await ledger.records() if r.request_id in request_ids
                    and r.outcome != "in_flight"}
        finally:
            await ledger.close()

    return wait_for(lambda: (lambda got: got if len(got) == len(request_ids) else None)(asyncio.run(read())),
                    what="the ledger records")


def report(gw) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "extproc", "report", "--config", str(gw.routing), "--premium", "gpt-4o",
         "--ledger", f"sqlite:///{gw.workdir}/ledger.db"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_a_long_system_prompt_repeated_over_turns_is_read_from_the_cache_and_the_report_shows_the_saving(gw, client):
    messages = [{"role": "system", "content": HANDBOOK}, {"role": "user", "content": "Is a claim from May covered?"}]
    cached, ids = [], set()
    for question in ("What about one from June?", "And from July?", None):
        raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages, max_tokens=30)
        answer = raw.parse()
        assert raw.headers["x-llm-model"] == "gpt-4o-mini"
        ids.add(raw.headers["x-request-id"])
        cached.append(answer.usage.prompt_tokens_details.cached_tokens)
        if question:
            messages += [{"role": "assistant", "content": answer.choices[0].message.content},
                         {"role": "user", "content": question}]
    # Turn 1 wrote the prefix; each later turn reads the conversation so far, in OpenAI's 128-token steps.
    assert cached[0] == 0 and all(c >= 1408 and c % 128 == 0 for c in cached[1:]), cached
    got = records(gw, ids)
    assert sorted(r.cached_input_tokens for r in got.values()) == sorted(cached)
    total_cached = sum(cached)
    for r in got.values():     # the ledger's cost bills the cached part at the cached-input price
        assert r.cost_usd == pytest.approx(((r.input_tokens - r.cached_input_tokens) * 100.0 + r.cached_input_tokens
                                            * 10.0 + r.output_tokens * 100.0) / 1e6)

    text = report(gw)
    saving = total_cached * (MINI["input"] - MINI["cached_input"]) / 1e6     # the price difference
    section = text.split("prompt cache by model", 1)[1].split("\n\n", 1)[0]
    row = next(line.split() for line in section.splitlines() if line.startswith("gpt-4o-mini "))
    input_tokens = sum(r.input_tokens for r in got.values())
    assert row == ["gpt-4o-mini", f"{input_tokens:,}", f"{total_cached:,}",
                   f"{100 * total_cached / input_tokens:.1f}%", "100", "10", f"${saving:.4f}"], section
    assert saving > 0.2 and "cache reads" in text


def test_a_stream_reports_the_cache_read_in_its_usage_chunk(gw, client):
    messages = [{"role": "system", "content": HANDBOOK}, {"role": "user", "content": "Summarise policy 3."}]
    usages = []
    for _ in range(2):
        stream = client.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=30, stream=True,
                                                stream_options={"include_usage": True})
        usages += [chunk.usage for chunk in stream if chunk.usage is not None]
    assert [u.prompt_tokens_details.cached_tokens for u in usages] == [0, 1408]


def test_gemini_implicit_cache_reads_reach_the_client_as_cached_tokens(gw, client):
    manual = HANDBOOK * 3      # 4,500 tokens: over the 4,096 minimum of Gemini 3.x models
    messages = [{"role": "system", "content": manual}, {"role": "user", "content": "Is May covered?"}]
    first = client.chat.completions.create(model="gemini-3.5-flash-lite", messages=messages, max_tokens=30)
    second = client.chat.completions.create(model="gemini-3.5-flash-lite", messages=messages, max_tokens=30)
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    assert second.usage.prompt_tokens_details.cached_tokens == second.usage.prompt_tokens   # the whole prompt
    stream = client.chat.completions.create(model="gemini-3.5-flash-lite", messages=messages, max_tokens=30,
                                            stream=True, stream_options={"include_usage": True})
    usage = [chunk.usage for chunk in stream if chunk.usage is not None]
    assert [u.prompt_tokens_details.cached_tokens for u in usage] == [second.usage.prompt_tokens]


def test_a_messages_request_with_cache_control_is_read_on_its_second_call(gw):
    """The /v1/messages front door passes cache_control through to Claude: the first call writes the marked
    prefix, the second reads it; the client sees Anthropic's own usage and the ledger bills the read at the
    cached-input price."""
    body = {"model": "claude-sonnet-4-6", "max_tokens": 30,
            "system": [{"type": "text", "text": HANDBOOK, "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": "Is a claim from May covered?"}]}
    headers = {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"}
    first = httpx.post(f"{gw.base_url}/messages", json=body, headers=headers, timeout=30)
    second = httpx.post(f"{gw.base_url}/messages", json=body, headers=headers, timeout=30)
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    u1, u2 = first.json()["usage"], second.json()["usage"]
    assert (u1["cache_creation_input_tokens"], u1["cache_read_input_tokens"]) == (1500, 0)
    assert (u2["cache_creation_input_tokens"], u2["cache_read_input_tokens"]) == (0, 1500)
    got = records(gw, {first.headers["x-request-id"], second.headers["x-request-id"]})
    read = got[second.headers["x-request-id"]]
    assert read.model == "claude-sonnet-4-6" and read.cached_input_tokens == 1500
    assert read.input_tokens == u2["input_tokens"] + 1500
    written = got[first.headers["x-request-id"]]
    assert written.cached_input_tokens == 0 and written.input_tokens == u1["input_tokens"] + 1500
    # the write is billed as Anthropic bills it: 1.25x the input price for the default 5-minute lifetime
    from extproc.config import load
    price = load(str(gw.routing)).models["claude-sonnet-4-6"].price
    plain = (written.input_tokens * price.input + written.output_tokens * price.output) / 1e6
    assert written.cost_usd == pytest.approx(plain + 1500 * 0.25 * price.input / 1e6)
    section = report(gw).split("prompt cache by model", 1)[1].split("\n\n", 1)[0]
    row = next(line.split() for line in section.splitlines() if line.startswith("claude-sonnet-4-6 "))
    assert row[2] == "1,500" and row[-1] == f"${1500 * (3.00 - 0.30) / 1e6:.4f}"


def test_affinitys_cache_assumption_holds_on_every_provider(gw, client):
    """Affinity prices a pinned turn's prefix as a cache read only where ``providers.prompt_cache_floor``
    says its provider reads one (README, "Conversation affinity"): now checked against what each
    simulator reports. A 6,000-token prompt, over every floor, sent twice to one model of each provider
    API reads the cache on the second call exactly where the floor says so (Claude through the chat
    translator: never, as no cache_control is sent); and a named session's turns stay on one model and
    read the conversation so far where that model's provider caches."""
    from extproc import config, providers

    from .conftest import MODELS
    catalog = config.load(str(gw.routing)).models
    system = HANDBOOK * 4
    for provider, model in MODELS.items():
        messages = [{"role": "system", "content": system}, {"role": "user", "content": f"Hello {provider}"}]
        reads = [client.chat.completions.create(model=model, messages=messages, max_tokens=20)
                 .usage.prompt_tokens_details.cached_tokens for _ in range(2)]
        floor = providers.prompt_cache_floor(catalog[model].target())
        assert reads[0] == 0 and (reads[1] > 0) == (floor is not None), (provider, model, reads, floor)

    messages = [{"role": "system", "content": system}, {"role": "user", "content": "Is a May claim covered?"}]
    served, reads = [], []
    for question in ("And June?", "And July?", None):
        raw = client.chat.completions.with_raw_response.create(
            model="auto", messages=messages, max_tokens=20, extra_headers={"x-llm-session": "cache-check-1"})
        answer = raw.parse()
        served.append(raw.headers["x-llm-model"])
        reads.append(answer.usage.prompt_tokens_details.cached_tokens)
        if question:
            messages += [{"role": "assistant", "content": answer.choices[0].message.content},
                         {"role": "user", "content": question}]
    assert len(set(served)) == 1, served
    floor = providers.prompt_cache_floor(catalog[served[0]].target())
    assert all((r > 0) == (floor is not None) for r in reads[1:]), (served, reads)
