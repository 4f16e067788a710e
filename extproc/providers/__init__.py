"""Provider API translators: the provider axis, one module per provider API from the internal form.

The internal form is the OpenAI Chat Completions request and answer (hence the ``openai_`` prefix of
each module: ``openai_anthropic`` is internal form to the Anthropic API and back). The client axis,
one module per client API to and from that form, is ``extproc.apis``.

``chat_translator`` and ``embeddings_translator`` pick the module for a
target's API kind; ``credential_header`` says how each API takes its key.
"""

from __future__ import annotations

from ..errors import UnsupportedFeature
from .base import ChatTranslator, EmbeddingsTranslator, Target, UpstreamRequest, Usage
from . import openai_anthropic, openai_gemini, openai_openai
from .openai_anthropic import AnthropicChatTranslator
from .openai_gemini import GeminiChatTranslator, GeminiEmbeddingsTranslator
from .openai_openai import OpenAIChatTranslator, OpenAIEmbeddingsTranslator

APIS = ("openai", "azure_openai", "anthropic", "gemini")

_CHAT = {
    "openai": OpenAIChatTranslator,
    "azure_openai": OpenAIChatTranslator,
    "anthropic": AnthropicChatTranslator,
    "gemini": GeminiChatTranslator,
}
_EMBEDDINGS = {
    "openai": OpenAIEmbeddingsTranslator,
    "azure_openai": OpenAIEmbeddingsTranslator,
    "gemini": GeminiEmbeddingsTranslator,
}


def chat_translator(target: Target, *, created: int, response_id: str) -> ChatTranslator:
    return _CHAT[target.api](target, created=created, response_id=response_id)


def embeddings_translator(target: Target) -> EmbeddingsTranslator:
    cls = _EMBEDDINGS.get(target.api)
    if cls is None:
        raise UnsupportedFeature(f"model '{target.model}' (provider API '{target.api}') does not offer embeddings",
                                 param="model")
    return cls(target)


def _outline(text: str) -> str:
    """``text`` reduced to what a translator reads of it: its leading and trailing whitespace around
    "x", or itself when blank (so ``strip()`` and ``rstrip()`` answer as they do on the original)."""
    core = text.strip()
    if not core:
        return text
    return text[:len(text) - len(text.lstrip())] + "x" + text[len(text.rstrip()):]


def capability_view(body: dict) -> dict:
    """The chat request as ``unable`` needs to see it: every field as sent, except message text (string
    contents and text parts), each cut to its outline (``_outline``). Translators read message text only
    for whether it is blank and for its edge whitespace (Anthropic refuses whitespace-only blocks and a
    prefill ending in whitespace), so every ``unable`` answer is the same on the view as on the body,
    while translating it skips copying and serialising kilobytes of prompt (tests/unit/test_capability_view.py
    checks this on the dev set's requests and generated ones). A translator rule that reads more of the
    text must change this function too."""
    msgs = body.get("messages")
    if not isinstance(msgs, list):
        return body
    out = []
    for m in msgs:
        if isinstance(m, dict):
            content = m.get("content")
            if isinstance(content, str):
                m = {**m, "content": _outline(content)}
            elif isinstance(content, list):
                m = {**m, "content": [{**p, "text": _outline(p["text"])}
                                      if isinstance(p, dict) and isinstance(p.get("text"), str) else p
                                      for p in content]}
        out.append(m)
    return {**body, "messages": out}


def unable(target: Target, body: dict, endpoint: str = "chat") -> str | None:
    """Why ``target`` cannot serve this exact OpenAI request, or None when it can.

    The planner asks this of every candidate before it enters a plan, so a fallback never lands
    on a provider that would reject the request. Provider rules live in the translators: a
    translator raises ``UnsupportedFeature`` for what its API cannot honour (a parameter, a
    range, a feature), and that message is the reason shown in ``explain``. The body has
    already passed the OpenAI request validator; anything else a translator raises is a bug
    and propagates."""
    try:
        if endpoint == "chat":
            chat_translator(target, created=0, response_id="chatcmpl-capability").request(body)
        else:
            embeddings_translator(target).request(body)
    except UnsupportedFeature as exc:
        return exc.message
    return None


_OUTPUT_LIMITS = {"openai": openai_openai.output_limit, "azure_openai": openai_openai.output_limit,
                  "anthropic": openai_anthropic.output_limit, "gemini": openai_gemini.output_limit}


def output_limit(target: Target) -> int | None:
    """The most tokens ``target``'s model writes in one answer (its translator clamps a larger
    max_tokens to it), or None when unknown (a self-hosted model: its context window bounds it).
    ``options.max_output_tokens`` on the provider overrides the table by model name."""
    return _OUTPUT_LIMITS[target.api](target)


def default_output(target: Target) -> int:
    """The reply budget the translator sends when the client set none, in tokens: 0 when the API needs
    none, else what the translator fills in (Anthropic requires ``max_tokens``; it counts toward the
    context window: "input length and `max_tokens` exceed context limit")."""
    return openai_anthropic.default_output(target) if target.api == "anthropic" else 0


def prompt_cache_floor(target: Target, asked: bool = False) -> int | None:
    """The shortest prompt prefix (tokens) ``target``'s provider bills as a cache read on a repeat of
    it, or None when this request's prefix is never read from a cache there. OpenAI and Azure OpenAI
    cache automatically from 1,024 tokens, Gemini 2.5+ implicitly (2,048 / 4,096), Anthropic only when
    the request ``asked`` with ``cache_control`` (the chat translator adds none)."""
    if target.api == "anthropic":
        return openai_anthropic.prompt_cache_floor(target, asked)
    if target.api == "gemini":
        return openai_gemini.prompt_cache_floor(target)
    return openai_openai.prompt_cache_floor(target)


def embedding_request_limit(target: Target) -> int | None:
    """The most tokens ``target``'s embeddings API takes summed over one request's inputs, or None
    when its API documents no such cap (each input still fits the model's window on its own)."""
    return openai_openai.EMBEDDING_REQUEST_TOKENS if target.api == "openai" else None


def credential_header(api: str, key: str) -> tuple[str, str]:
    """The header that carries an API key, in each provider's documented form."""
    if api == "anthropic":
        return "x-api-key", key
    if api == "gemini":
        return "x-goog-api-key", key
    if api == "azure_openai":
        return "api-key", key
    return "authorization", f"Bearer {key}"


# Every header any provider takes a credential in: all are stripped before one is set.
CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "api-key")

__all__ = ["APIS", "CREDENTIAL_HEADERS", "ChatTranslator", "EmbeddingsTranslator", "Target", "UpstreamRequest",
           "Usage", "capability_view", "chat_translator", "credential_header", "default_output",
           "embedding_request_limit", "embeddings_translator", "output_limit", "prompt_cache_floor", "unable"]
