"""How often the gateway names a stream's ending right: client closes vs provider cuts (endings.py).

Through the real Envoy and extproc with the simulators: for each streaming API, 8 streams the
client closes after a few events and 8 the provider cuts (disconnect_after), at 5-100 ms between
events. Prints (what happened, the ledger's outcome) counts. Run: .venv/bin/python -m bench.endings_accuracy
"""
import asyncio, time, httpx, openai, collections
from extproc.devstack import Stack
from extproc.ledger import open_ledger
MODELS = ["openai", "azure_openai", "anthropic", "gemini", "vllm"]
st = Stack(simulate=MODELS).start()
res = collections.Counter()
ids = []
try:
    c = openai.OpenAI(base_url=st.base_url, api_key="x", max_retries=0)
    msg = [{"role": "user", "content": "tell me a long story about the sea and ships and more words here please"}]
    for model, sim in (("gpt-4o-mini", "openai"), ("claude-3-5-haiku", "anthropic"), ("gemini-2.0-flash", "gemini")):
        for rep in range(8):
            interval = [5, 20, 50, 100][rep % 4]
            httpx.put(f"{st.sim_url(sim)}/_sim/faults", json={"chunk_interval_ms": interval})
            s = c.chat.completions.create(model=model, messages=msg, stream=True)
            rid = s.response.headers["x-request-id"]
            for i, ev in enumerate(s):
                if i == 1 + rep % 3: break
            s.close(); ids.append((rid, "close"))
            httpx.put(f"{st.sim_url(sim)}/_sim/faults", json={"disconnect_after": 3 + rep % 4, "chunk_interval_ms": interval})
            try:
                s = c.chat.completions.create(model=model, messages=msg, stream=True)
            except openai.APIStatusError:
                res[("cut", "before headers (Envoy 502)")] += 1
                continue
            rid = s.response.headers["x-request-id"]
            try:
                for ev in s: pass
            except Exception: pass
            ids.append((rid, "cut"))
        httpx.delete(f"{st.sim_url(sim)}/_sim/faults")
    time.sleep(1)
    async def read():
        led = open_ledger(f"sqlite:///{st.workdir}/ledger.db")
        try: return {r.request_id: r for r in await led.records()}
        finally: await led.close()
    rows = asyncio.run(read())
    for rid, kind in ids:
        res[(kind, rows[rid].outcome)] += 1
finally:
    st.stop()
print(dict(res))
