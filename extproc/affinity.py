"""Conversation affinity: the turns of one conversation stay on the model (and so the provider) that
served them, so the provider's prompt cache keeps paying and the answers keep one voice.

Pure: plain values in and out, ``now`` passed in. The table is in-process: each extproc replica keeps its
own, on purpose. The pin is read on every chat request (about 1 us here; a Redis round trip would add
0.2-0.5 ms to each), and losing it is cheap: a turn that lands on another replica is routed afresh (a
correct decision, only the cache read is lost) and pins there. Budgets and rate limits, which must be
exact across replicas, are what the gateway shares through Redis.

The conversation key, scoped to the tenant so a shared system prompt never joins strangers'
conversations, comes from the first of:

1. ``prompt_cache_key`` in the body (OpenAI's own name for "these requests share a prefix"),
2. the ``x-llm-session`` header,
3. a hash of ``user`` (OpenAI's end-user id, if any), the system prompt and the first user turn: turn 2
   of a chat repeats all three. Such a key steers only continuations (requests with an assistant turn).

A pin holds for ``ttl_s`` after the last turn it served. It applies only when its model is still among
the plan's candidates, i.e. after ejection, retry-after pauses, budgets, cost caps and capability have
had their say; and it never holds a turn below the quality the fresh plan leads with: when this turn's
plan leads with a model of higher quality than the pinned one (an escalation, whether the class changed
or a fallback had pinned a lesser model), the pin breaks. It does not yield to latency: a pinned model
whose p95 went over its tier's target (demoted for fresh traffic) keeps its conversation, whose cached
prefix is what makes it answer fast. An answer from a model of lower quality than the plan's lead (a
fallback, after the lead failed) neither creates nor moves a pin: the conversation keeps the pin it had,
or stays unpinned, so one transient failure does not hold it on the fallback (tryout 9 H4).

The pinned model's cost estimate counts the previous turn's prompt as cached input
(``price.cached_input``) only where its provider will read it from a cache
(``providers.prompt_cache_floor``): OpenAI and Azure OpenAI cache automatically from 1,024 tokens, Gemini
2.5+ implicitly from 2,048 / 4,096; Claude reads a cache only where the request marks one with
``cache_control``, which the chat translator never adds (a ``/v1/messages`` request passed through with
its own markers does). Elsewhere the pin is priced in full, as it will be billed.

What affinity did is one note on the plan (``Plan.affinity``): ``affinity:`` when the pin decided (the
plan leads with the pinned model, which a fresh decision would not have chosen; only these turns say
"conversation affinity" in ``x-llm-route``), ``affinity held`` when the pinned model is the fresh choice
anyway, ``affinity released`` (the cost rule), ``affinity broken`` (escalation) or ``affinity yielded``
(the pinned model is not a candidate now, or cannot serve this request, and why).

What a pin is worth is the routing config's ``routing.affinity_keep``:

- ``cost`` (default): the pin holds only while the pinned model, its cached prefix billed at the
  cached-input price, costs no more than the model the policy would choose now at full price. A cache
  read saves 50-90% of the prefix's input price, never the gap between a premium and a cheap model,
  so a conversation that relaxes to the simple class leaves its premium model; among models of one
  tier (or when the conversation keeps its class) the cache decides.
- ``always``: the pin holds for every turn that does not escalate (one voice over the conversation,
  whatever it costs).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from .accounting import cache_read_saving

SESSION_HEADER = "x-llm-session"
MAX_CONVERSATIONS = 100_000      # bounded memory: least recently used pins go first
KEEP = ("cost", "always")        # routing.affinity_keep
DECIDED = "affinity:"            # the note's prefix when the pin decided the plan's first choice
HELD = "affinity held"           # ... when the pinned model is the fresh choice anyway


@dataclass(frozen=True)
class Pin:
    model: str              # model id that served the conversation's last turn
    route_class: str | None  # that turn's class (an escalation's note names the change)
    prompt_tokens: int      # the last turn's estimated prompt: the next turn's cached prefix
    expires: float          # unix seconds


def _first_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str))
    return ""


def conversation_key(body: Mapping[str, Any], headers: Mapping[str, str],
                     tenant: str | None) -> tuple[str, str, bool] | None:
    """(key, source, follows) of a chat request's conversation, or None when it has none (no user turn).

    ``source`` is ``prompt_cache_key`` | ``session`` (the client named the conversation) or ``prefix``
    (a hash of the ``user`` field, the system prompt and the first user turn). ``follows``: whether a
    pin may steer this request: always for a named conversation, only for a continuation (an assistant
    turn in the history) otherwise, so that identical one-shot requests (the same question asked for
    batch and for interactive work) are not taken for one conversation. The key is a sha256 hex digest
    over the tenant and the source, so no client text is kept."""
    msgs = body.get("messages")
    if not isinstance(msgs, list):
        return None
    system = first_user = None
    follows = False
    for m in msgs:
        if not isinstance(m, Mapping):
            continue
        role = m.get("role")
        if system is None and role in ("system", "developer"):
            system = _first_text(m.get("content"))
        elif role == "user" and first_user is None:
            first_user = _first_text(m.get("content"))
        elif role == "assistant":
            follows = True
    if first_user is None:
        return None
    for source, value in (("prompt_cache_key", body.get("prompt_cache_key")), ("session", headers.get(SESSION_HEADER))):
        if isinstance(value, str) and value:
            follows = True
            break
    else:
        user = body.get("user") if isinstance(body.get("user"), str) else ""
        source, value = "prefix", f"{user}\x00{system or ''}\x00{first_user}"
    digest = hashlib.sha256(f"{tenant or ''}\x00{source}\x00{value}".encode("utf-8", "surrogatepass")).hexdigest()
    return digest, source, follows


class AffinityTable:
    """Pins by conversation key, least recently used first out; ``ttl_s`` <= 0 disables affinity."""

    def __init__(self, ttl_s: float = 600.0, max_conversations: int = MAX_CONVERSATIONS):
        self.ttl_s = ttl_s
        self.max = max_conversations
        self._pins: OrderedDict[str, Pin] = OrderedDict()

    def get(self, key: str | None, now: float) -> Pin | None:
        if key is None or self.ttl_s <= 0:
            return None
        pin = self._pins.get(key)
        if pin is None:
            return None
        if pin.expires <= now:
            del self._pins[key]
            return None
        return pin

    def remember(self, key: str | None, model: str, route_class: str | None, prompt_tokens: int, now: float,
                 quality: int, lead_quality: int) -> None:
        """The model that served this turn (a successful answer) holds the conversation for ttl_s more,
        unless its ``quality`` is below ``lead_quality``, the quality of the plan's first candidate: a
        fallback's answer, after the lead failed, leaves the pin as it was (or none), so one transient
        failure does not hold the conversation on a lesser model (tryout 9 H4). An equal or better
        fallback (another model of the lead's tier) pins: it holds the conversation's cached prefix now."""
        if key is None or self.ttl_s <= 0 or quality < lead_quality:
            return
        self._pins[key] = Pin(model, route_class, prompt_tokens, now + self.ttl_s)
        self._pins.move_to_end(key)
        while len(self._pins) > self.max:
            self._pins.popitem(last=False)

    def __len__(self) -> int:
        return len(self._pins)


def cached_cost(model: Any, prompt_tokens: int, output_tokens: int, cached_tokens: int) -> float:
    """USD estimate when ``cached_tokens`` of the prompt are a cache hit: the full price less
    ``cache_saving`` (the one pricing of a cache read; a model with no cached_input price saves nothing)."""
    price = model.price
    full = (prompt_tokens * price.input + output_tokens * price.output) / 1_000_000
    return full - cache_saving(model, min(prompt_tokens, cached_tokens))


def cache_saving(model: Any, cached_tokens: int) -> float:
    """USD a cache read of ``cached_tokens`` prompt tokens saves on ``model`` against its input price."""
    return cache_read_saving(cached_tokens, model.price)


def decided(note: str | None) -> bool:
    """Whether a plan's affinity note says the pin decided its first choice (README: affinity)."""
    return bool(note) and note.startswith(DECIDED)


def stick(pin: Pin | None, chosen: list, route_class: str | None, prompt_tokens: int,
          keep: str, cache_floor: Callable[[Any], int | None],
          left_out: Mapping[str, str] | None = None) -> tuple[list, str | None]:
    """Candidates reordered for the conversation's pin, and a note saying what affinity did (None when
    there is no pin). ``chosen``: the policy's candidates in fresh attempt order (``policy.Candidate``,
    each with its full-price ``cost`` in USD, whose reply tokens are already clamped to the model's
    output limit), already filtered for health, retry-after, budgets and configured capabilities;
    ``prompt_tokens``: this turn's estimated prompt; ``keep``: one of ``KEEP`` (see the module
    docstring); ``cache_floor(model)``: the shortest prefix its provider reads from a cache for this
    request, None for none (``providers.prompt_cache_floor``: each provider's own floor, so none is
    assumed here); ``left_out``: why the policy left each model that is not a candidate out (model id ->
    its drop reason), for the note. The pinned candidate's cost becomes its full price less the cache
    read's saving. Notes start with ``DECIDED`` when the pin moved ahead of the fresh choice, ``HELD``
    when it is the fresh choice, else ``affinity yielded`` / ``affinity broken`` / ``affinity released``.

    The pin breaks when the fresh plan leads with a model of higher quality than the pinned one: a pin
    never holds a turn below the quality a fresh decision would give it (tryout 9 H4: a pin left on a
    fallback's cheaper model held every later complex turn there). The lead compared is the fresh
    order's first candidate, before the provider-capability check the policy asks next."""
    if pin is None or not chosen:
        return chosen, None
    first = chosen[0]
    at = next((i for i, c in enumerate(chosen) if c.model.id == pin.model), None)
    if at is None:
        why = (left_out or {}).get(pin.model) or (f"not a model of class '{route_class}'" if route_class
                                                   else "not a model of this request's plan")
        return chosen, f"affinity yielded: {pin.model} is not a candidate now: {why}"
    c = chosen[at]
    if first.model.quality > c.model.quality:
        changed = f", class {pin.route_class} -> {route_class}" if route_class != pin.route_class else ""
        return chosen, (f"affinity broken: escalated to {first.model.id} (quality {first.model.quality}), above the "
                        f"pinned {pin.model} (quality {c.model.quality}){changed}")
    floor = cache_floor(c.model)
    cached = min(prompt_tokens, pin.prompt_tokens) if floor is not None and pin.prompt_tokens >= floor else 0
    cost = c.cost - cache_saving(c.model, cached)
    if at == 0:
        return [c._replace(cost=cost)] + chosen[1:], held(pin)
    if keep == "cost" and cost > first.cost:
        # the cache read would not pay for the pinned model's higher price: route afresh
        return chosen, (f"affinity released: {pin.model} with {cached} cached prompt tokens (${cost:.6f}) costs "
                        f"more than {first.model.id} (${first.cost:.6f})")
    kept = c._replace(reason=f"affinity: served this conversation's last turn ({c.tier})", cost=cost)
    return [kept] + chosen[:at] + chosen[at + 1:], f"{DECIDED} {pin.model} kept for this conversation"


def held(pin: Pin) -> str:
    return f"{HELD}: {pin.model} served this conversation's last turn and is the fresh choice too"


def settle(pin: Pin | None, note: str | None, fresh: list, chosen: list, left_out: Mapping[str, str]) -> str | None:
    """``stick``'s note once the policy has asked capability: ``chosen`` is the plan (the capable
    candidates of ``stick``'s order, at most the attempt limit), ``fresh`` the order before ``stick``.
    A pin put first that cannot serve this exact request yields (with its reason from ``left_out``); a
    pin that leads the plan decided it only if the first capable candidate of the fresh order is
    another model, else it merely held."""
    if pin is None or not chosen or not (decided(note) or (note or "").startswith(HELD)):
        return note
    if chosen[0].model.id != pin.model:
        # the policy's own reason, "cannot serve this request: <the translator's words>"
        return f"affinity yielded: {pin.model} {left_out.get(pin.model, 'cannot serve this request')}"
    if decided(note):
        # Every fresh candidate ahead of the pin was asked before any behind it (capability is asked in
        # the reordered attempt order), so the first of them in the plan is the fresh capable lead.
        ids = {c.model.id for c in chosen}
        if next(c for c in fresh if c.model.id in ids).model.id == pin.model:
            return held(pin)
    return note
