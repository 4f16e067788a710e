"""How often the gateway names a stream's ending right: client closes vs provider cuts (endings.py).

Through the real Envoy and extproc with the simulators: for each streaming API, 8 streams the
client closes after a few events and 8 the provider cuts (disconnect_after), at 5-100 ms between
events. Prints (what happened, the ledger's outcome) counts. Run: .venv/bin/python -m bench.endings_accuracy
"""

from __future__ import annotations

import asyncio
import collections
import time

import httpx
import openai

from extproc.devstack import Stack
from extproc.ledger import open_ledger

MODELS = ["openai", "azure_openai", "anthropic", "gemini", "vllm"]


PROMPT = [{"role": "user", "content": "tell me a long story about the sea and ships and more words here please"}]
STREAMS = (("gpt-4o-mini", "openai"), ("claude-haiku-4-5", "anthropic"), ("gemini-3.5-flash-lite", "gemini"))


def main() -> None:
    stack = Stack(simulate=MODELS).start()
    counts: collections.Counter = collections.Counter()
    sent: list[tuple[str, str]] = []      # (request id, what the test did to it)
    try:
        client = openai.OpenAI(base_url=stack.base_url, api_key=stack.demo_key, max_retries=0)
        for model, sim in STREAMS:
            for rep in range(8):
                interval = (5, 20, 50, 100)[rep % 4]
                faults = f"{stack.sim_url(sim)}/_sim/faults"
                httpx.put(faults, json={"chunk_interval_ms": interval})
                stream = client.chat.completions.create(model=model, messages=PROMPT, stream=True)
                for i, _ in enumerate(stream):
                    if i == 1 + rep % 3:
                        break
                stream.close()
                sent.append((stream.response.headers["x-request-id"], "client closed"))
                httpx.put(faults, json={"disconnect_after": 3 + rep % 4, "chunk_interval_ms": interval})
                try:
                    stream = client.chat.completions.create(model=model, messages=PROMPT, stream=True)
                except openai.APIStatusError:   # cut before the headers got out: Envoy's own 502
                    counts[("provider cut", "502 before any answer")] += 1
                    continue
                try:
                    for _ in stream:
                        pass
                except openai.APIError:
                    pass
                sent.append((stream.response.headers["x-request-id"], "provider cut"))
            httpx.delete(f"{stack.sim_url(sim)}/_sim/faults")
        time.sleep(1)   # the last records' batch

        async def read():
            ledger = open_ledger(f"sqlite:///{stack.workdir}/ledger.db")
            try:
                return {r.request_id: r for r in await ledger.records()}
            finally:
                await ledger.close()
        rows = asyncio.run(read())
        for request_id, what in sent:
            counts[(what, rows[request_id].outcome)] += 1
    finally:
        stack.stop()
    for (what, outcome), n in sorted(counts.items()):
        print(f"{what:14} -> {outcome:22} {n}")


if __name__ == "__main__":
    main()
