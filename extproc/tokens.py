"""Token counts for billing what a provider never reported: a real tokenizer, no network.

A request that ends before the provider's usage arrives (the client closed the
stream, the provider cut it, an error event ended it) is still billed for what
it consumed: its prompt and the completion text the client was sent. The
counts come from ``o200k_base``, the tokenizer of OpenAI's GPT-4o and later
models, run by ``tiktoken``. tiktoken downloads its rank files on first use; the
gateway never does: the file ships gzipped in ``extproc/data/`` and is checked
against the SHA-256 tiktoken itself pins for it.

For OpenAI-compatible APIs this is the model's own tokenizer (or its close
relative for older models). Anthropic, Gemini and self-hosted models tokenize
differently; for them the o200k count is a documented estimate (typically within
about 15% for English text), still far closer than characters / 4.

Prompt counts follow OpenAI's cookbook recipe ("How to count tokens with
tiktoken"): 3 tokens per message, plus each string field's tokens, plus 3 that
prime the reply; tool definitions count as their JSON; an image counts as
``cost.IMAGE_TOKENS`` (the same over-estimate the router's estimate uses).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import threading
from pathlib import Path
from typing import Any

from .cost import IMAGE_TOKENS

RANKS_FILE = Path(__file__).resolve().parent / "data" / "o200k_base.tiktoken.gz"
RANKS_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"   # tiktoken's own pin
# o200k_base's split pattern and special tokens, as tiktoken_ext.openai_public defines them.
_PAT = "|".join([
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
    r"""\p{N}{1,3}""",
    r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
    r"""\s*[\r\n]+""",
    r"""\s+(?!\S)""",
    r"""\s+""",
])
_SPECIAL = {"<|endoftext|>": 199999, "<|endofprompt|>": 200018}
TOKENS_PER_MESSAGE = 3
REPLY_PRIMING = 3

_lock = threading.Lock()
_encoding: Any = None


def encoding() -> Any:
    """The ``tiktoken.Encoding`` for o200k_base, loaded once (about 0.5 s) from the shipped file.

    Raises ``RuntimeError`` when the shipped file is damaged (its hash differs)."""
    global _encoding
    if _encoding is None:
        with _lock:
            if _encoding is None:
                import tiktoken

                raw = gzip.decompress(RANKS_FILE.read_bytes())
                if hashlib.sha256(raw).hexdigest() != RANKS_SHA256:
                    raise RuntimeError(f"{RANKS_FILE} is damaged: its SHA-256 is not o200k_base's")
                ranks = {base64.b64decode(token): int(rank)
                         for token, rank in (line.split() for line in raw.splitlines() if line)}
                _encoding = tiktoken.Encoding("o200k_base", pat_str=_PAT, mergeable_ranks=ranks,
                                              special_tokens=_SPECIAL)
    return _encoding


def count(text: str) -> int:
    """Tokens in ``text`` (special-token lookalikes in it count as plain text)."""
    if not text:
        return 0
    return len(encoding().encode_ordinary(text))


def prompt_tokens(body: dict[str, Any]) -> int:
    """Input tokens of an OpenAI chat or embeddings request body (see the module docstring)."""
    messages = body.get("messages")
    if isinstance(messages, list):
        texts: list[str] = []
        images = 0
        for message in messages:
            if not isinstance(message, dict):
                continue
            for key, value in message.items():
                if isinstance(value, str):
                    texts.append(value)
                elif key == "content" and isinstance(value, list):
                    for part in value:
                        if isinstance(part, dict) and part.get("type") == "image_url":
                            images += 1
                        elif isinstance(part, dict) and isinstance(part.get("text"), str):
                            texts.append(part["text"])
                elif key == "tool_calls" and value:
                    texts.append(json.dumps(value, ensure_ascii=False))
        if body.get("tools"):
            texts.append(json.dumps(body["tools"], ensure_ascii=False))
        return (sum(count(t) for t in texts) + TOKENS_PER_MESSAGE * len(messages) + REPLY_PRIMING
                + IMAGE_TOKENS * images)
    data = body.get("input")
    if isinstance(data, str):
        return count(data)
    if isinstance(data, list):
        return sum(count(item) if isinstance(item, str) else len(item) if isinstance(item, list) else 0
                   for item in data)
    return 0


def input_counts(body: dict[str, Any]) -> list[int]:
    """Tokens of each input of an embeddings request body, in order ([] for none), counted: the
    same shapes as ``cost.input_tokens`` (a string, strings, token ids, arrays of token ids), whose
    estimate (``cost.text_units``) runs about 12% high on English prose and within about 25% on
    other scripts. OpenAI's text-embedding-3 models use cl100k_base; o200k's count is within a few
    percent of it for English."""
    data = body.get("input")
    if isinstance(data, str):
        return [count(data)]
    if isinstance(data, list):
        if data and all(isinstance(item, int) and not isinstance(item, bool) for item in data):
            return [len(data)]   # one input given as token ids
        return [count(item) if isinstance(item, str) else (len(item) if isinstance(item, list) else 1)
                for item in data]
    return []
