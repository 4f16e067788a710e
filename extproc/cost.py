"""Prices, token estimates and the budget hook.

The policy needs a request's cost *before* it is sent, so it estimates tokens
cheaply and deterministically: characters / 4 over the message text (the rule of
thumb OpenAI documents for English), plus a fixed overhead per message (role and
separators, as in OpenAI's cookbook "How to count tokens": 3-4 per message, 3 to
prime the reply). It is an estimate for caps and ordering, not for billing:
usage reported by the provider is the truth after the fact.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD = 4     # tokens per message: role, separators
REPLY_PRIMING = 3        # tokens that start the assistant's reply
IMAGE_TOKENS = 765       # one 1024x1024 image at OpenAI's "high" detail; a deliberate over-estimate


def prompt_tokens(body: dict[str, Any]) -> int:
    """Estimated input tokens of a chat or embeddings request body."""
    messages = body.get("messages")
    if isinstance(messages, list):
        chars = 0
        images = 0
        for message in messages:
            if not isinstance(message, dict):
                continue
            content = message.get("content")
            if isinstance(content, str):
                chars += len(content)
            elif isinstance(content, list):
                for part in content:
                    if isinstance(part, dict):
                        if part.get("type") == "image_url":
                            images += 1
                        else:
                            text = part.get("text")
                            if isinstance(text, str):
                                chars += len(text)
            calls = message.get("tool_calls")
            if calls:
                chars += len(json.dumps(calls))
        tools = body.get("tools")
        if tools:
            chars += len(json.dumps(tools))
        return chars // CHARS_PER_TOKEN + MESSAGE_OVERHEAD * len(messages) + REPLY_PRIMING + IMAGE_TOKENS * images
    return sum(input_tokens(body))


def input_tokens(body: dict[str, Any]) -> list[int]:
    """Estimated tokens of each input of an embeddings request body, in order ([] for none).

    An embeddings model's window applies to each input on its own, not to their sum: OpenAI's
    reference for ``input`` says each must fit the model's max input tokens (8,192), an array holds at
    most 2,048 of them, and a request at most 300,000 tokens summed over its inputs; Gemini's
    embedding models take 2,048 tokens per input. The sum is what is billed and rate limited."""
    data = body.get("input")
    if isinstance(data, str):
        return [len(data) // CHARS_PER_TOKEN + 1]
    if isinstance(data, list):
        if data and all(isinstance(item, int) and not isinstance(item, bool) for item in data):
            return [len(data)]   # one input given as token ids
        return [len(item) // CHARS_PER_TOKEN + 1 if isinstance(item, str) else (
                len(item) if isinstance(item, list) else 1) for item in data]
    return []


def output_tokens(body: dict[str, Any], default: int) -> int:
    """The reply's token budget: what the client capped it at, else ``default``."""
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return default


def request_cost(price_in: float, price_out: float, tokens_in: int, tokens_out: int) -> float:
    """USD for one request; prices are USD per 1M tokens."""
    return (tokens_in * price_in + tokens_out * price_out) / 1_000_000


def cost_per_1k(cost: float, tokens_in: int, tokens_out: int) -> float:
    """The request's blended price per 1K tokens (input and output together)."""
    total = tokens_in + tokens_out
    return cost * 1000 / total if total else 0.0


class BudgetView(Protocol):
    """What budget accounting (a separate component) tells the policy.

    ``remaining`` is the USD a tenant/surface pair may still spend, or None for
    no limit. The policy drops candidates whose estimated cost exceeds it.
    """

    def remaining(self, tenant: str | None, surface: str | None) -> float | None: ...


class _Unlimited:
    def remaining(self, tenant: str | None, surface: str | None) -> float | None:
        return None


UNLIMITED: BudgetView = _Unlimited()


class Allowance:
    """A budget view with a fixed amount left for every caller (a plan held to one spend limit)."""

    def __init__(self, usd: float):
        self.usd = usd

    def remaining(self, tenant: str | None, surface: str | None) -> float | None:
        return self.usd
