"""What the bench sends, and how the mock behaves for it.

Every scenario is one OpenAI chat request body (the same bytes to every
target) plus the mock's knobs. Envoy alone sends every body to the mock's
OpenAI port, so its numbers are the floor: the cost of a proxy hop with no
routing, translation or telemetry.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

CHUNKS = 50
PROMPT = [{"role": "system", "content": "You are a terse assistant."},
          {"role": "user", "content": "Give me three short facts about the sea."}]


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    model: str
    stream: bool = False
    fail_every: int = 0          # mock: every Nth request on the primary (OpenAI) port is a 503
    litellm: bool = True         # LiteLLM has an equivalent (no routing fallback config there)
    knobs: dict = field(default_factory=dict)

    def body(self) -> bytes:
        body = {"model": self.model, "messages": PROMPT, "max_tokens": 64}
        if self.stream:
            body["stream"] = True
        return json.dumps(body).encode()


SCENARIOS = [
    Scenario("passthrough", "OpenAI -> OpenAI, routed (JSON)", "gpt-4o-mini"),
    Scenario("translated", "OpenAI -> Anthropic, translated (JSON)", "claude-haiku-4-5"),
    Scenario("stream", f"OpenAI -> OpenAI stream, {CHUNKS} chunks", "gpt-4o-mini", stream=True),
    Scenario("stream_translated", f"OpenAI -> Anthropic stream, {CHUNKS} chunks", "claude-haiku-4-5", stream=True),
    Scenario("fallback", "model auto, 20% primary 503 -> fallback", "auto", fail_every=5, litellm=False),
]
BY_NAME = {s.name: s for s in SCENARIOS}
