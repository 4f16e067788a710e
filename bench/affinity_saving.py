"""What conversation affinity does to cost and cache reads on the dev set's multi-turn conversations.
In process (the Gateway's own router stage, no Envoy), standard library only.

    python -m bench.affinity_saving [--system-tokens 5000]

Every dev-set request with earlier turns is replayed as its conversation: one request per user turn (the
history up to it), each answered by attempt 1 of its plan. A turn reads the provider's prompt cache when
the same model served the previous turn and its provider reads a cache for it
(``providers.prompt_cache_floor``: OpenAI and Azure OpenAI automatically from 1,024 tokens, Gemini 2.5+
implicitly from 2,048 / 4,096, Claude never for a chat request, which carries no cache_control); the
cached prefix is the previous turn's prompt (estimated tokens, extproc.cost). "best case" counts a cache
read on every provider at any length, which no provider does. Cost: catalog prices, cached tokens at
cached_input. The same conversations run with affinity under each rule (routing.affinity_keep cost, the
default, and always) and off (routing.affinity_ttl_s 0). --system-tokens puts a shared system prompt of
about that many tokens before each conversation (a support bot's knowledge base), where caches pay.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from extproc.affinity import HELD, cached_cost, decided  # noqa: E402
from extproc.providers import prompt_cache_floor  # noqa: E402
from extproc.config import load  # noqa: E402
from extproc.credentials import Credentials  # noqa: E402
from extproc.gateway import Gateway  # noqa: E402
from extproc.keys import KeyEntry, KeyFile, digest  # noqa: E402

KEY = "sk-bench"
HEADERS = {":method": "POST", ":path": "/v1/chat/completions", "content-type": "application/json",
           "authorization": f"Bearer {KEY}"}
ANSWERED = {":status": "200", "x-envoy-upstream-service-time": "3", "x-envoy-attempt-count": "1"}
CREDS = {"OPENAI_API_KEY": "x", "ANTHROPIC_API_KEY": "x", "GEMINI_API_KEY": "x", "AZURE_OPENAI_API_KEY": "x",
         "VLLM_API_KEY": "x"}


def conversations(system_tokens: int = 0) -> list[list[dict]]:
    """Turn-by-turn request bodies of every dev-set request that has earlier turns, each after a shared
    system prompt of about ``system_tokens`` tokens when that is not 0."""
    kb = " ".join(f"Article {i}: a customer whose order {i} arrived damaged gets a refund within {i % 9 + 2} days."
                  for i in range(system_tokens // 20 + 1)) if system_tokens else ""
    out = []
    for line in (ROOT / "bench" / "devset" / "devset.jsonl").read_text(encoding="utf-8").splitlines():
        body = json.loads(line)["body"]
        msgs = body["messages"]
        if kb:
            msgs = [{"role": "system", "content": kb}, *msgs]
        ends = [i for i, m in enumerate(msgs) if m["role"] == "user"]
        if len(ends) < 2:
            continue
        out.append([{**body, "messages": msgs[:i + 1]} for i in ends])
    return out


def replay(convs, ttl: float, best_case: bool, keep: str = "cost") -> dict:
    cfg = dataclasses.replace(load(ROOT / "config" / "routing.yaml"), affinity_ttl_s=ttl, affinity_keep=keep)
    keys = KeyFile(None)
    keys.entries = {digest(KEY): KeyEntry("bench", "demo", digest(KEY))}
    clock = [1_700_000_000.0]
    gw = Gateway(cfg, Credentials(CREDS), clock=lambda: clock[0], keys=keys)
    totals = {"turns": 0, "premium_turns": 0, "prompt_tokens": 0, "cache_read_tokens": 0, "usd": 0.0,
              "usd_without_cache": 0.0, "affinity_decided": 0, "affinity_held": 0}
    for turns in convs:
        prev_model = prev_prompt = None
        for body in turns:
            clock[0] += 30.0
            ex = gw.request_body(HEADERS, json.dumps(body).encode())
            gw.route(ex)
            gw.response_headers(ex, ANSWERED)
            model, plan = ex.plan.models[0], ex.plan
            floor = 0 if best_case else prompt_cache_floor(model.target())
            cached = prev_prompt if model.id == prev_model and floor is not None and prev_prompt >= floor else 0
            totals["turns"] += 1
            totals["premium_turns"] += model.quality >= 5
            totals["prompt_tokens"] += plan.prompt_tokens
            totals["cache_read_tokens"] += cached
            totals["usd"] += cached_cost(model, plan.prompt_tokens, plan.output_tokens, cached)
            totals["usd_without_cache"] += cached_cost(model, plan.prompt_tokens, plan.output_tokens, 0)
            # decided: the pin changed the first choice; held: the pinned model was the fresh choice anyway
            totals["affinity_decided"] += decided(plan.affinity)
            totals["affinity_held"] += bool(plan.affinity and plan.affinity.startswith(HELD))
            prev_model, prev_prompt = model.id, plan.prompt_tokens
    return totals


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--system-tokens", type=int, default=0)
    a = ap.parse_args()
    convs = conversations(a.system_tokens)
    print(f"{len(convs)} conversations, {sum(map(len, convs))} turns (dev set requests with earlier turns)"
          + (f", each after a ~{a.system_tokens}-token system prompt" if a.system_tokens else ""))
    for best_case in (False, True):
        print("-- best case: every provider reads a cache at any length" if best_case else
              "-- cache reads where the provider makes them")
        for name, ttl, keep in (("affinity cost  ", 600.0, "cost"), ("affinity always", 600.0, "always"),
                                ("affinity off   ", 0.0, "cost")):
            t = replay(convs, ttl, best_case, keep)
            print(f"  {name}: premium turns {t['premium_turns']}/{t['turns']}, affinity decided "
                  f"{t['affinity_decided']} (held {t['affinity_held']}), cache-read tokens {t['cache_read_tokens']} of {t['prompt_tokens']} "
                  f"prompt tokens, est ${t['usd']:.4f} (${t['usd_without_cache']:.4f} without cache reads, "
                  f"saving {100 * (1 - t['usd'] / t['usd_without_cache']):.1f}%)")


if __name__ == "__main__":
    main()
