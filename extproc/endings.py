"""How a request ended, and what it is billed: one outcome and one bill for every ending (sans-I/O).

The router stage's stream ends in one of these ways; ``classify`` names it from
what the stage saw (plain values, no clock: the caller passes the seconds since
the last upstream byte):

============================  =================  ======  ================  =====================================
ending                        outcome            status  provider failure  billed
============================  =================  ======  ================  =====================================
answer complete               ok                 2xx     no                provider's usage (else counted)
client closed mid-answer      cancelled          499     no                prompt + completion delivered
client closed before answer   cancelled          499     no                prompt
provider error status         by status          4xx/5xx by status (5xx,   nothing (providers bill no errors)
                                                         429)
provider cut mid-stream       provider_cut       502     yes (``cut``)     prompt + completion delivered
upstream reset before answer  upstream_error     502     yes (``reset``)   nothing
stream ended by error event   stream_error       502     yes               prompt + completion delivered
stalled stream                timeout            504     yes (``timeout``) prompt + completion delivered
Envoy's timeout reply (504)   timeout            504     yes               prompt
gateway failure               gateway_error      500     no                prompt + completion delivered
============================  =================  ======  ================  =====================================

How the client and a provider cut are told apart: Envoy says so. Its access
log entry for a stream that ended early carries response flags (DC: the client
went away; UC/UR/UPE: the upstream reset; UT/SI: a timeout), and envoy.yaml
sends those entries to the processor (``access_log.py``), which waits up to
``VERDICT_WAIT_S`` for one before settling an unclear ending. Without one it
falls back to how Envoy ended the processor's gRPC stream: half-closed when the
client went away, cancelled when the upstream reset (right 46 times of 47 on
Envoy 1.40, ``bench/endings_accuracy.py`` before the access log: the miss was a
cut that looked like a close). A stream whose translator
saw the provider's terminal event (``ending == "completed"``) is complete
however the gRPC stream ended.

Which count wins: when the answer completed, the provider's reported usage is
the bill. When it did not, the provider's partial counts (Anthropic reports
input tokens up front) are kept and the rest is counted with ``tokens``: the
input from the request, the output from the text the client was sent (the
larger of the provider's partial output count and ours).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable

from . import accounting, sse
from .accounting import GATEWAY_ERROR, PROVIDER_CUT, STREAM_ERROR
from .providers.base import Usage
CLIENT_CLOSED_STATUS = 499   # nginx's code for "client closed request", as load balancers log it
# Envoy's word on an early end (its access log's response flags, access_log.py).
CLIENT_CLOSED, UPSTREAM_RESET, TIMED_OUT = "client_closed", "upstream_reset", "timed_out"


@dataclass(frozen=True)
class Ending:
    outcome: str                 # an accounting outcome (accounting.OUTCOMES)
    status: int                  # the status the request is recorded with
    failure: str | None = None   # the provider's failure kind (span error.type), None if not its fault
    bill: str = "none"           # "usage": as reported; "partial": prompt + delivered; "prompt"; "none"

    @property
    def complete(self) -> bool:
        return self.bill == "usage"


def unclear(*, status: int | None, end_of_stream: bool, ending: str | None, gateway_error: bool) -> bool:
    """Whether only Envoy can say who ended this request (the client or the upstream): worth waiting
    for its access log entry before ``classify``."""
    return not gateway_error and not end_of_stream and ending is None and (status is None or status < 400)


def classify(*, status: int | None, provider_answered: bool, end_of_stream: bool, ending: str | None,
             cancelled: bool, gateway_error: bool, idle_s: float = 0.0, stall_s: float = 10.0,
             sent_upstream: bool = True, envoy: str | None = None) -> Ending:
    """The ending of one request.

    ``status``: the response status the router stage saw (None: no response headers);
    ``provider_answered``: those headers came from a provider (not Envoy's own reply);
    ``end_of_stream``: the last body chunk arrived; ``ending``: the translator's
    (``ChatTranslator.ending``: "completed", "error_event", "cut" or None);
    ``cancelled``: Envoy cancelled the gRPC stream (an upstream reset) rather than
    closing it; ``idle_s``: seconds since the last upstream byte when it ended;
    ``stall_s``: from this much silence on, an upstream reset counts as a stall (timeout);
    ``envoy``: Envoy's own account when it logged one (CLIENT_CLOSED, UPSTREAM_RESET, TIMED_OUT),
    which wins over ``cancelled`` and ``idle_s``.
    """
    if envoy is not None:
        cancelled = envoy != CLIENT_CLOSED
        idle_s = stall_s if envoy == TIMED_OUT else 0.0
    if gateway_error:
        return Ending(GATEWAY_ERROR, 500, None, "partial" if provider_answered else "prompt")
    if status is None:
        if not sent_upstream:
            return Ending(accounting.CANCELLED, CLIENT_CLOSED_STATUS, None, "none")
        if cancelled:
            if idle_s >= stall_s:
                return Ending(accounting.TIMEOUT, 504, "timeout", "prompt")
            return Ending(accounting.UPSTREAM_ERROR, 502, "reset", "none")
        return Ending(accounting.CANCELLED, CLIENT_CLOSED_STATUS, None, "prompt")
    if status >= 400:
        outcome = accounting.outcome_for_status(status)
        if not provider_answered and status == 504:
            return Ending(outcome, status, "timeout", "prompt")
        return Ending(outcome, status, None, "none")
    if ending == "completed":
        return Ending(accounting.OK, status, None, "usage")
    if ending == "error_event":
        return Ending(STREAM_ERROR, 502, "error_event", "partial")
    if ending == "cut":
        return Ending(PROVIDER_CUT, 502, "cut", "partial")
    if end_of_stream:
        return Ending(accounting.OK, status, None, "usage")
    if cancelled:
        if idle_s >= stall_s:
            return Ending(accounting.TIMEOUT, 504, "timeout", "partial")
        return Ending(PROVIDER_CUT, 502, "cut", "partial")
    return Ending(accounting.CANCELLED, CLIENT_CLOSED_STATUS, None, "partial")


def bill(ending: Ending, reported: Usage | None, prompt: Callable[[], int], delivered: Callable[[], int]
         ) -> Usage | None:
    """The usage a request is billed for (see the module docstring for which count wins).

    ``prompt`` and ``delivered`` count tokens lazily: they run only when the provider's report is missing."""
    if ending.bill == "none":
        return None
    if ending.bill == "usage" and reported is not None and (reported.input_tokens or reported.output_tokens):
        return reported
    input_tokens = reported.input_tokens if reported is not None and reported.input_tokens else prompt()
    cached = reported.cached_input_tokens if reported is not None else 0
    output = 0
    if ending.bill in ("usage", "partial"):
        output = max(reported.output_tokens if reported is not None else 0, delivered())
    return Usage(input_tokens=input_tokens, output_tokens=output, cached_input_tokens=min(cached, input_tokens))


def delivered_text(sse_bytes: bytes) -> str:
    """The completion text in an OpenAI chat stream (``chat.completion.chunk`` events): content,
    refusals and tool-call names and arguments, as the client received them."""
    decoder = sse.SSEDecoder()
    parts: list[str] = []
    for event in decoder.feed(sse_bytes):
        _collect(event.data, parts)
    return "".join(parts)


def answer_text(body: bytes) -> str:
    """The completion text of a whole ``chat.completion`` body (for an answer cut before its end: '')."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    parts: list[str] = []
    for choice in (data.get("choices") or []) if isinstance(data, dict) else []:
        _message_text((choice or {}).get("message") or {}, parts)
    return "".join(parts)


def _collect(data: str, parts: list[str]) -> None:
    if not data or data == "[DONE]" or '"choices"' not in data:
        return
    try:
        chunk = json.loads(data)
    except ValueError:
        return
    for choice in chunk.get("choices") or [] if isinstance(chunk, dict) else []:
        if isinstance(choice, dict):
            _message_text(choice.get("delta") or {}, parts)


def _message_text(message: Any, parts: list[str]) -> None:
    if not isinstance(message, dict):
        return
    for key in ("content", "refusal"):
        if isinstance(message.get(key), str):
            parts.append(message[key])
    for call in message.get("tool_calls") or []:
        fn = call.get("function") if isinstance(call, dict) else None
        if isinstance(fn, dict):
            for key in ("name", "arguments"):
                if isinstance(fn.get(key), str):
                    parts.append(fn[key])
