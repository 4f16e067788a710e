"""Should the client retry the gateway's failed answer? The ``x-should-retry`` header.

The official openai and anthropic Python SDKs retry 408, 409, 429 and every 5xx by default
(``max_retries=2``: up to three calls), unless the response says ``x-should-retry: true`` or
``false``, which they read before their own status rules (``_base_client.py``, ``_should_retry``,
in both packages). Each such retry runs the gateway's whole plan again: its fallbacks, and a stream
cut after its provider's 200 is billed its prompt each time (README, "Streams that fail before
content"). So where the gateway already spent its plan, it says ``false``:

- its own deadline passed (the 504 ``gateway_timeout``): every attempt ran to its tier's deadline,
  and each was sent, and billed, the prompt;
- a provider's 5xx after more than one attempt: the plan's fallbacks were all tried.

Envoy's 502 ``provider_cut`` (a provider's reset with no attempt left) says ``false`` too, from its
local reply mapper (envoy/envoy.yaml): no processor code runs for it.

Left to the SDK's own rules: anything with a ``retry-after`` (a 429, a 503 over capacity: the answer
says when to come back), any 4xx, and a single attempt's 5xx (the gateway retried nothing; a provider
bills no error, and a pinned model's transient 500 is what the SDK's retry is for).

Pure: plain values in, a header value out.
"""

from __future__ import annotations

SHOULD_RETRY_HEADER = "x-should-retry"


def spent(status: int, attempts: int, *, deadline_passed: bool, retry_after: bool) -> bool:
    """True when the client should not retry this answer: the gateway already did what a retry would.

    ``status``: the client's status; ``attempts``: provider attempts made for it (``x-llm-attempts``);
    ``deadline_passed``: it is the gateway's deadline 504; ``retry_after``: the answer says when to
    come back (``retry-after``, ``retry-after-ms``, a rate limit reset)."""
    if retry_after or status < 500:
        return False
    return deadline_passed or attempts > 1
