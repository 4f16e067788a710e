"""Prices, token estimates and the budget hook.

The policy needs a request's cost *before* it is sent, so it estimates tokens
cheaply and deterministically from the text's characters (``text_units``), plus a
fixed overhead per message (role and separators, as in OpenAI's cookbook "How to
count tokens": 3-4 per message, 3 to prime the reply). It is an estimate for caps,
budgets, rate limits, context windows and ordering, not for billing: usage reported
by the provider is the truth after the fact.

Characters / 4 (the rule of thumb OpenAI documents for English) holds for ASCII text
and reads other scripts low: measured with o200k (``tokens.count``), Chinese and
Japanese run about 0.7 token a character and Korean 0.6 (2.5-3x over chars/4),
while Cyrillic, Arabic, Hebrew, Greek, Devanagari and Thai run 0.25-0.4. UTF-8
bytes / 4 would fix the first group and read Devanagari and Thai about 2x high
(their letters are 3 bytes too). So each character is weighed by what its UTF-8
lead byte says of its block: ASCII a quarter token (today's chars / 4, exactly),
U+0080-U+2FFF (accented Latin, Greek, Cyrillic, Hebrew, Arabic, Indic scripts,
Thai, punctuation) a third, U+3000-U+FFFF (CJK symbols, kana, ideographs, Hangul,
full-width forms) 0.7, and beyond the BMP (emoji, rare ideographs) one.
``tests/unit/test_estimate.py`` holds it within 0.75x-1.35x of o200k per script.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

CHARS_PER_TOKEN = 4     # ASCII characters a token
# A text's weight in integer units of 1/60 token, so the sums stay exact and ASCII
# text keeps chars // 4 to the token (15 units a character).
TOKEN_UNITS = 60
ASCII_UNITS = TOKEN_UNITS // CHARS_PER_TOKEN   # 15: a quarter token
LETTER_UNITS = 20        # U+0080-U+2FFF: a third of a token (UTF-8 lead bytes C2-E2)
WIDE_UNITS = 42          # U+3000-U+FFFF: 0.7 token (lead bytes E3-EF): CJK, kana, Hangul
ASTRAL_UNITS = 60        # U+10000 and up: one token (lead bytes F0-F4): emoji, rare ideographs
# bytes.translate drops ASCII and continuation bytes (one lead byte is left per non-ASCII
# character) and marks the lead bytes of wide and astral characters: two C-speed passes
# over the UTF-8 text, about 0.8 ns a byte, instead of a Python loop over characters.
_NOT_LEADS = bytes(range(0xC0))
_WIDE, _ASTRAL = 0xE3, 0xF0
_LEAD_CLASS = bytes(b if b < 0xC0 else (_ASTRAL if b >= 0xF0 else _WIDE if b >= 0xE3 else 0xC0)
                    for b in range(256))
MESSAGE_OVERHEAD = 4     # tokens per message: role, separators
REPLY_PRIMING = 3        # tokens that start the assistant's reply
IMAGE_TOKENS = 765       # one 1024x1024 image at OpenAI's "high" detail; a deliberate over-estimate


def text_units(text: str) -> int:
    """The estimate's weight of ``text`` in units of 1/``TOKEN_UNITS`` token (see the module docstring).

    ASCII text (``str.isascii``, a flag CPython keeps: O(1)) weighs ``ASCII_UNITS`` a character, so
    ``text_units(s) // TOKEN_UNITS == len(s) // 4`` for it; other text costs one UTF-8 encoding and
    one ``bytes.translate`` (about 80 us for 100 KB). Lone surrogates (valid in JSON escapes) count as
    wide characters rather than failing the encoding."""
    if text.isascii():
        return ASCII_UNITS * len(text)
    leads = text.encode("utf-8", "surrogatepass").translate(_LEAD_CLASS, _NOT_LEADS)
    wide = leads.count(_WIDE)
    astral = leads.count(_ASTRAL)
    return (ASCII_UNITS * (len(text) - len(leads)) + LETTER_UNITS * (len(leads) - wide - astral)
            + WIDE_UNITS * wide + ASTRAL_UNITS * astral)


def text_tokens(text: str) -> int:
    """Estimated tokens of one text: ``text_units`` rounded down to whole tokens (chars // 4 for ASCII)."""
    return text_units(text) // TOKEN_UNITS


def prompt_tokens(body: dict[str, Any]) -> int:
    """Estimated input tokens of a chat or embeddings request body.

    The message texts, tool calls and tool definitions (as JSON, non-ASCII kept as characters, as a
    provider's tokenizer sees them, not as ``\\uXXXX`` escapes) are weighed together (``text_units``),
    then rounded down once, plus the per-message overhead and ``IMAGE_TOKENS`` an image."""
    messages = body.get("messages")
    if isinstance(messages, list):
        units = 0
        images = 0
        for message in messages:
            if not isinstance(message, dict):
                continue
            content = message.get("content")
            if isinstance(content, str):
                units += text_units(content)
            elif isinstance(content, list):
                for part in content:
                    if isinstance(part, dict):
                        if part.get("type") == "image_url":
                            images += 1
                        else:
                            text = part.get("text")
                            if isinstance(text, str):
                                units += text_units(text)
            calls = message.get("tool_calls")
            if calls:
                units += text_units(json.dumps(calls, ensure_ascii=False))
        tools = body.get("tools")
        if tools:
            units += text_units(json.dumps(tools, ensure_ascii=False))
        return units // TOKEN_UNITS + MESSAGE_OVERHEAD * len(messages) + REPLY_PRIMING + IMAGE_TOKENS * images
    return sum(input_tokens(body))


def input_tokens(body: dict[str, Any]) -> list[int]:
    """Estimated tokens of each input of an embeddings request body, in order ([] for none).

    An embeddings model's window applies to each input on its own, not to their sum: OpenAI's
    reference for ``input`` says each must fit the model's max input tokens (8,192), an array holds at
    most 2,048 of them, and a request at most 300,000 tokens summed over its inputs; Gemini's
    embedding models take 2,048 tokens per input. The sum is what is billed and rate limited."""
    data = body.get("input")
    if isinstance(data, str):
        return [text_tokens(data) + 1]
    if isinstance(data, list):
        if data and all(isinstance(item, int) and not isinstance(item, bool) for item in data):
            return [len(data)]   # one input given as token ids
        return [text_tokens(item) + 1 if isinstance(item, str) else (
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
