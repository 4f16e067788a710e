"""When a provider says to come back: its rate-limit answer, in seconds from now.

Pure: headers and bodies in, seconds out; the wall clock is passed in as ``now``
(Unix seconds) for the forms that carry a point in time.

The forms, in the order they are trusted:

- ``retry-after-ms`` (OpenAI, Azure OpenAI): milliseconds;
- ``retry-after`` (RFC 9110 section 10.2.3): delta-seconds, or an HTTP-date;
- ``anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-reset``
  (Anthropic): RFC 3339 times at which each limit is replenished; on a 429 the
  latest of them is when every limit has room again;
- ``google.rpc.RetryInfo`` in a Gemini error body's ``error.details``:
  ``retryDelay`` in the protobuf JSON form of a Duration (``"7s"``, ``"0.5s"``).
"""

from __future__ import annotations

import json
from datetime import datetime
from email.utils import parsedate_to_datetime

ANTHROPIC_RESETS = ("anthropic-ratelimit-requests-reset", "anthropic-ratelimit-tokens-reset",
                    "anthropic-ratelimit-input-tokens-reset", "anthropic-ratelimit-output-tokens-reset")
# Every response header any form above uses (Envoy logs only the headers it is told to).
HEADERS = ("retry-after-ms", "retry-after", *ANTHROPIC_RESETS)
RETRY_INFO = "type.googleapis.com/google.rpc.RetryInfo"
LIMITED = (429, 503, 529)   # statuses whose retry-after means "not before then"


def from_headers(headers: dict[str, str], now: float) -> float | None:
    """Seconds until the provider takes requests again, from response headers (lower-case names), or None."""
    value = headers.get("retry-after-ms")
    if value:
        seconds = _number(value)
        if seconds is not None:
            return seconds / 1000
    value = headers.get("retry-after")
    if value:
        seconds = _number(value)
        if seconds is None:
            try:
                seconds = parsedate_to_datetime(value).timestamp() - now
            except (TypeError, ValueError, IndexError):
                seconds = None
        if seconds is not None:
            return max(0.0, seconds)
    resets = [_rfc3339(headers[h]) for h in ANTHROPIC_RESETS if headers.get(h)]
    resets = [r for r in resets if r is not None]
    if resets:
        return max(0.0, max(resets) - now)
    return None


def from_gemini_body(body: bytes) -> float | None:
    """``retryDelay`` of the RetryInfo detail in a Gemini (Google API) error body, or None."""
    try:
        error = json.loads(body).get("error", {})
    except (ValueError, AttributeError):
        return None
    details = error.get("details") if isinstance(error, dict) else None
    for detail in details if isinstance(details, list) else ():
        if isinstance(detail, dict) and detail.get("@type") == RETRY_INFO:
            delay = detail.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                return _number(delay[:-1])
    return None


def _number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if value >= 0 and value == value and value != float("inf") else None


def _rfc3339(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
