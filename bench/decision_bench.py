"""Benchmark (not a test) of the routing decision: classify + policy on a 2 KB chat request, in-process.

    PYTHONPATH=. python bench/decision_bench.py [--n 20000] [--config config/routing.yaml]

Prints p50 / p99 in microseconds for the classifier, the policy and both together
(target: classify + policy p50 <= 100 us), then classify + policy over the product dev set's requests,
then the gateway's whole router stage (``Gateway.request_body``) on the 2 KB request.
Without extproc/classify.py it measures the policy alone.
"""

from __future__ import annotations

import argparse
import gc
import json
import time

from extproc.config import load
from extproc.devstack import DEFAULT_ROUTING
from extproc.policy import decide

SYSTEM = "You are a helpful support assistant for an online store. Answer briefly and politely. " * 8
QUESTION = ("My order #12345 arrived with a cracked screen. I bought it three weeks ago and the return window "
            "says 30 days. Can you walk me through the replacement, step by step, and tell me whether I need "
            "to pay for shipping? Also, the invoice shows a different address than my account. ") * 4


def request() -> dict:
    body = {"model": "auto", "temperature": 0.2, "messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Hi, I have a problem with an order."},
        {"role": "assistant", "content": "Sorry to hear that! What happened?"},
        {"role": "user", "content": QUESTION}]}
    size = len(json.dumps(body))
    assert 1900 <= size <= 2300, size
    return body


def pct(samples: list[float], q: float) -> float:
    return samples[min(len(samples) - 1, int(q * len(samples)))]


def measure(fn, n: int) -> tuple[float, float]:
    for _ in range(1000):
        fn()
    samples = []
    clock = time.perf_counter_ns
    gc.disable()
    try:
        for _ in range(n):
            t0 = clock()
            fn()
            samples.append((clock() - t0) / 1000)
    finally:
        gc.enable()
    samples.sort()
    return pct(samples, 0.50), pct(samples, 0.99)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--config", default=str(DEFAULT_ROUTING))
    args = parser.parse_args()
    cfg = load(args.config)
    body = request()
    headers = {"content-type": "application/json", "x-llm-surface": "support", "authorization": "Bearer sk-x"}
    now = time.time()
    print(f"request: {len(json.dumps(body))} bytes, {len(body['messages'])} messages; config {args.config}")
    try:
        from extproc import classify
    except ImportError:
        classify = None
    if classify is None:
        p50, p99 = measure(lambda: decide(cfg, body, "chat", headers, now=now), args.n)
        print(f"policy alone (extproc.classify not present): p50 {p50:.1f} us  p99 {p99:.1f} us")
        return
    settings = cfg.classifier if cfg.classifier is not None else classify.ClassifierSettings.from_config(None)
    clf = classify.build_classifier(settings)
    c = clf.classify(body)
    for label, fn in (("classify", lambda: clf.classify(body)),
                      ("policy", lambda: decide(cfg, body, "chat", headers, now=now, classification=c)),
                      ("classify + policy", lambda: decide(cfg, body, "chat", headers, now=now,
                                                           classification=clf.classify(body)))):
        p50, p99 = measure(fn, args.n)
        print(f"{label:18s} p50 {p50:6.1f} us  p99 {p99:6.1f} us")
    # The product dev set's requests (bench/devset): system prompts of 0.5-3.6 KB, tools, histories.
    from pathlib import Path
    devset = Path(__file__).with_name("devset") / "devset.jsonl"
    bodies = [json.loads(line)["body"] for line in devset.read_text(encoding="utf-8").splitlines()]
    # One pass from a cold capability cache first: the policy remembers capability answers per request
    # shape (policy._CAPABILITY_CACHE), and the repeated passes below find every shape there.
    from extproc import policy
    policy._CAPABILITY_CACHE.clear()
    samples = []
    clock = time.perf_counter_ns
    for b in bodies:
        t0 = clock()
        decide(cfg, b, "chat", headers, now=now, classification=clf.classify(b))
        samples.append((clock() - t0) / 1000)
    samples.sort()
    print(f"classify + policy, one pass over the {len(bodies)} dev-set requests from a cold capability cache: "
          f"p50 {pct(samples, 0.5):6.1f} us  p99 {pct(samples, 0.99):6.1f} us")
    samples = []
    gc.disable()
    try:
        for _ in range(max(1, args.n // len(bodies))):
            for b in bodies:
                t0 = clock()
                decide(cfg, b, "chat", headers, now=now, classification=clf.classify(b))
                samples.append((clock() - t0) / 1000)
    finally:
        gc.enable()
    samples.sort()
    print(f"classify + policy over the {len(bodies)} dev-set requests: p50 {pct(samples, 0.5):6.1f} us  "
          f"p99 {pct(samples, 0.99):6.1f} us")
    # The router stage's whole work on the 2 KB request, as the gateway does it: parse and validate the
    # body, authenticate, classify, plan (attempt 1 translated and kept), translate attempt 1.
    from extproc.credentials import Credentials
    from extproc.gateway import Gateway
    from extproc.keys import KeyEntry, KeyFile, digest
    keys = KeyFile(None)
    keys.entries = {digest("sk-bench"): KeyEntry("bench", "demo", digest("sk-bench"))}
    creds = Credentials({k: "x" for k in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY",
                                          "AZURE_OPENAI_API_KEY", "VLLM_API_KEY")})
    gw = Gateway(cfg, creds, clock=lambda: now, keys=keys)
    raw = json.dumps(body).encode()
    h = {":method": "POST", ":path": "/v1/chat/completions", "content-type": "application/json",
         "authorization": "Bearer sk-bench", "x-llm-surface": "support"}
    p50, p99 = measure(lambda: gw.request_body(h, raw), args.n)
    print(f"router stage request_body (parse, classify, plan, translate attempt 1): p50 {p50:6.1f} us  p99 {p99:6.1f} us")


if __name__ == "__main__":
    main()
