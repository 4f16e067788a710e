"""The ext_proc gRPC service: a thin shell that turns Envoy's messages into Gateway calls.

Both stages are served on one port by one process, so the upstream stage finds
the router stage's plan and original body in memory. Envoy tells the stages
apart by the ``x-llm-stage`` gRPC metadata each filter sends (see envoy/).
The same port serves Envoy's access log service: the router's upstream log
reports every attempt when it ends (``AttemptLog``), the first attempt
included, which no stage watches unless it holds a stream's first token.
State lives in ``exchanges`` from the router stage's first body message until
its stream ends, whichever way it ends (done, error, or cancelled by Envoy).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, AsyncIterator

import grpc
from envoy.config.core.v3 import base_pb2
from envoy.extensions.filters.http.ext_proc.v3 import processing_mode_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc
from envoy.type.v3 import http_status_pb2
from google.protobuf import duration_pb2, struct_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from . import endings, telemetry, tokens, validate
from . import retry_after as retry_after_
from .access_log import AccessLogService, Verdicts
from .accounting import BUDGET_REFUSED, TIMEOUT, client_api_of
from .errors import GatewayError, QuotaExceeded, Unavailable, UpstreamError
from .providers.base import ChatTranslator
from .status import StatusService
from .first_token import FirstContent, hand_over
from .gateway import (COUNT_TOKENS_PATH, DEADLINE_PASSED_HEADER, ENDPOINTS, FIRST_TOKEN_HEADER, HEDGE_ENV,
                      PROVIDER_RESET_HEADER,
                      KEY_HEADER, Answer, Exchange, Gateway, Rewrite, hedge_hosts)
from .accounting import FEEDBACK_PATH
from .apis import CLIENT_API, client_api
from .bookkeeping import Bookkeeping
from .config import Config
from .cost import UNLIMITED, Allowance
from .policy import who   # who is asking: tenant, workload, surface (pure; raises InvalidRequest)
from .health import HealthTracker
from .keys import Caller, KeyFile, keys_path, watch_keys
from .reload import ConfigSource, watch
from .shadow_runner import ShadowRunner
from .metrics import Metrics
from .telemetry import Tracing, provider_fault, tracer_provider

log = logging.getLogger("extproc")

STAGE_METADATA = "x-llm-stage"
REPLY_HEADER = "x-llm-reply"   # on the processor's own replies (see ``immediate``)
QUEUE_POLL_S = 0.02      # how often a queued request looks for capacity again
MAX_QUEUE_WAIT_S = 30    # the longest Envoy lets the processor hold a message (max_message_timeout)
DRAIN_QUIET_S = 1.0      # on SIGTERM: stop taking streams once none has opened for this long
VERDICT_WAIT_S = 2.0     # how long an unclear ending waits for Envoy's access log entry (flushed every 50 ms)
STALL_S = 10.0           # an upstream reset after this much silence is a stalled stream (outcome timeout)
# The longest a stream that is not cut at its first token (pinned, batch: ``Exchange.cuts_first_token``)
# has its provider's headers held for the first content, from the attempt's start; then they go on as
# they are. Below the hold stage's message_timeout (30 s, envoy/), past which Envoy would answer its own
# 503 unretried. The attempt's own deadline comes first when shorter: Envoy's per-try timeout (the
# plan's longest deadline + 0.5 s) runs until its router has the headers, and would cut the attempt.
HOLD_LIMIT_S = 25.0
RECENT_EXCHANGES = 4096  # exchanges remembered after they end, for attempt reports that come later
COUNT_OFF_LOOP_BYTES = 64 * 1024   # count_tokens bodies from this size are tokenized in a worker thread
# Bodies from that size that an estimate near a window may have counted (policy.counts_needed): parsed
# and counted in the worker thread too (a 3 MB /v1/messages body near a 1M window: 146 ms of tokenizer)
COUNTED_PATHS = frozenset({"/v1/embeddings", "/v1/chat/completions", "/v1/messages", "/v1/responses"})
_OVERWRITE = base_pb2.HeaderValueOption.OVERWRITE_IF_EXISTS_OR_ADD
_NO_BODY = processing_mode_pb2.ProcessingMode(response_body_mode=processing_mode_pb2.ProcessingMode.NONE)
_BODY_MODES = {"pass": processing_mode_pb2.ProcessingMode.NONE,
               "stream": processing_mode_pb2.ProcessingMode.STREAMED,
               "whole": processing_mode_pb2.ProcessingMode.STREAMED}


# Envoy's config skips response processing (so its own replies to malformed HTTP/1, sent before
# any request headers reached the processor, go out: envoyproxy/envoy#29440); a request the
# processor took turns it on here, for this request only (allow_mode_override).
_ROUTED = processing_mode_pb2.ProcessingMode(
    request_header_mode=processing_mode_pb2.ProcessingMode.SEND,
    request_body_mode=processing_mode_pb2.ProcessingMode.BUFFERED,
    response_header_mode=processing_mode_pb2.ProcessingMode.SEND,
    response_body_mode=processing_mode_pb2.ProcessingMode.STREAMED)


def headers_of(message: pb.HttpHeaders) -> dict[str, str]:
    out: dict[str, str] = {}
    for h in message.headers.headers:
        value = h.raw_value.decode("latin-1") if h.raw_value else h.value
        key = h.key.lower()
        out[key] = f"{out[key]},{value}" if key in out else value
    return out


def mutation(set_headers: dict[str, str], remove: list[str]) -> pb.HeaderMutation:
    return pb.HeaderMutation(
        set_headers=[base_pb2.HeaderValueOption(header=base_pb2.HeaderValue(key=k, raw_value=v.encode()),
                                                append_action=_OVERWRITE) for k, v in set_headers.items()],
        remove_headers=remove)


# Marks the processor's own replies so Envoy's local_reply_config leaves them as they are.
_OWN_REPLY = struct_pb2.Struct()
_OWN_REPLY.update({"llm_gateway": {"reply": "processor"}})
# Marks a request the processor routed: Envoy's 504 without it means the processor was too busy
# to answer in time (over capacity: local_reply_config makes it a 503 with retry-after).
_ROUTED_MARK = struct_pb2.Struct()
_ROUTED_MARK.update({"llm_gateway": {"routed": "yes"}})


def retry_after(status: int, headers: dict[str, str]) -> float | None:
    """A rate-limited answer's retry-after in seconds (any provider's form), or None."""
    return retry_after_.from_headers(headers, time.time()) if status in retry_after_.LIMITED else None


def _release_held(pending: int) -> list[pb.ProcessingResponse]:
    """The upstream stage lets held headers go on as they are, then the ``pending`` body chunks it held
    unanswered; the rest of the body need not come to it (mode_override)."""
    return [pb.ProcessingResponse(response_headers=pb.HeadersResponse(), mode_override=_NO_BODY),
            *(pb.ProcessingResponse(response_body=pb.BodyResponse()) for _ in range(pending))]


def _wait_longer() -> pb.ProcessingResponse:
    """Asks Envoy to wait up to MAX_QUEUE_WAIT_S for the next answer on this stream, past its message
    timeout: for a request queued for capacity, or a large body tokenized in a worker thread."""
    return pb.ProcessingResponse(override_message_timeout=duration_pb2.Duration(seconds=MAX_QUEUE_WAIT_S))


def immediate(answer: Answer) -> pb.ProcessingResponse:
    """The processor's own reply, already OpenAI-shaped: marked (metadata for the router stage, a header
    for the upstream stage, whose metadata Envoy's local_reply_config does not see) so Envoy leaves it."""
    return pb.ProcessingResponse(
        immediate_response=pb.ImmediateResponse(status=http_status_pb2.HttpStatus(code=answer.status),
                                                headers=mutation({**answer.headers, REPLY_HEADER: "processor"}, []),
                                                body=answer.body),
        dynamic_metadata=_OWN_REPLY)


class Processor(pb_grpc.ExternalProcessorServicer):
    def __init__(self, gateway: Gateway, tracing: Tracing, books: Bookkeeping | None = None,
                 verdicts: Verdicts | None = None):
        self.gateway = gateway
        self.tracing = tracing
        self.books = books
        self.exchanges: dict[str, Exchange] = {}
        # Attempt reports arrive after their attempt ended, often after the whole exchange did.
        self.recent: OrderedDict[str, Exchange] = OrderedDict()
        self.waiting: dict[str, int] = {}   # queued requests per workload
        self.verdicts = verdicts            # Envoy's access log verdicts (None: settle on what the stream saw)
        self.settling: set[asyncio.Task] = set()   # settlements waiting for a verdict
        self.streams = 0                    # ext_proc streams open now (both stages)
        self.last_stream = 0.0              # monotonic time the latest stream opened
        self.shadow = None                  # shadow_runner.ShadowRunner: evaluates sampled answers, off the path

    async def Process(self, requests: AsyncIterator[pb.ProcessingRequest], context: grpc.aio.ServicerContext):
        metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        if metadata.get(STAGE_METADATA) == "upstream":
            handler = self._upstream(requests)
        else:
            handler = self._router(requests, metadata)
        self.streams += 1
        self.last_stream = time.monotonic()
        try:
            async for response in handler:
                yield response
        finally:
            self.streams -= 1

    async def drained(self, quiet_s: float, limit_s: float) -> None:
        """Return once no new stream has come for ``quiet_s`` (Envoy sends them elsewhere, or traffic
        stopped), or after ``limit_s``; streams still open carry on."""
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if time.monotonic() - self.last_stream >= quiet_s:
                return
            await asyncio.sleep(0.05)

    async def _router(self, requests: AsyncIterator[pb.ProcessingRequest], metadata: dict[str, str]):
        gateway, tracing = self.gateway, self.tracing
        headers: dict[str, str] = {}
        exchange: Exchange | None = None
        status: int | None = None
        error: str | None = None
        cancelled = False    # Envoy cancelled the stream: the upstream reset (see endings.py)
        settled = False
        try:
            async for req in requests:
                kind = req.WhichOneof("request")
                if kind == "request_headers":
                    headers = headers_of(req.request_headers)
                    answer = gateway.request_headers(headers, req.request_headers.end_of_stream)
                    if answer is not None:
                        yield immediate(answer)
                        return
                    # Clients may not steer routing or impersonate the gateway's own headers.
                    spoofed = [k for k in headers if k.startswith(("x-llm-", "x-envoy-"))]
                    # The gateway's id from here on, so even Envoy's own reply before the body arrived
                    # (a 408 for a trickled body) names the id the ledger and the spans use, not Envoy's.
                    headers[KEY_HEADER] = uuid.uuid4().hex
                    yield pb.ProcessingResponse(request_headers=pb.HeadersResponse(
                        response=pb.CommonResponse(header_mutation=mutation({KEY_HEADER: headers[KEY_HEADER]},
                                                                            spoofed))), mode_override=_ROUTED)
                elif kind == "request_body":
                    raw = req.request_body.body
                    counted: dict[str, str] = {}   # x-ratelimit-*-requests, for every answer from here on
                    try:
                        caller, counted = await self._count_request(headers)
                        raw = gateway.decode(headers, raw)   # gzip, br: inflated here, with the body limit
                        path = headers.get(":path", "").split("?", 1)[0]
                        if path == FEEDBACK_PATH:
                            yield immediate(await self._feedback(headers, raw))
                            return
                        if path == COUNT_TOKENS_PATH:
                            if len(raw) < COUNT_OFF_LOOP_BYTES:
                                answer = gateway.count_tokens(headers, raw, caller)
                            else:
                                # Off the event loop: a 4 MB body takes 0.15-0.35 s of tokenizer time, which
                                # stalled every other request (tiktoken releases the GIL). Several at once
                                # outlast Envoy's 200 ms message timeout (a 503): this answer asks for longer.
                                yield _wait_longer()
                                answer = await asyncio.to_thread(gateway.count_tokens, headers, raw, caller)
                            answer.headers.update(counted)
                            yield immediate(answer)
                            return
                        counts = parsed = None
                        if path in COUNTED_PATHS and len(raw) >= COUNT_OFF_LOOP_BYTES:
                            # An estimate near a limit is counted before it may refuse (policy.COUNT_NEAR):
                            # 0.04-0.2 s of tokenizer for 300k tokens (idle or busy core), so large bodies
                            # count in a worker thread (tiktoken releases the GIL), with a longer message
                            # timeout as above.
                            yield _wait_longer()
                            # The body parsed there is the one planned: a large body is parsed once.
                            parsed, counts = await asyncio.to_thread(gateway.input_counts, raw, ENDPOINTS[path],
                                                                     path)
                        exchange = self._plan(headers, raw, caller, counts, parsed)
                        if self._must_queue(exchange):
                            # Envoy waits message_timeout for each answer; a queued request asks for longer.
                            yield _wait_longer()
                            exchange = await self._queue(headers, raw, exchange, counts, parsed)
                        exchange = await self._admit(headers, raw, exchange, counts, parsed)
                        exchange.limit_headers = {**counted, **exchange.limit_headers}
                    except GatewayError as exc:
                        self._rejected({**headers, **metadata}, exc, exchange)
                        exchange = None
                        answer = Answer.error(exc, headers.get(":path", ""))
                        answer.headers = {**counted, **answer.headers}
                        yield immediate(answer)
                        return
                    # Envoy passes its span's context in the gRPC metadata; a client's own traceparent
                    # (in the request headers) is what Envoy's span continues.
                    exchange.trail = tracing.start_request(
                        {**headers, **metadata}, "chat" if exchange.endpoint == "chat" else "embeddings",
                        exchange.body["model"], exchange.plan.reason, [m.id for m in exchange.plan.models],
                        decision={**self._labels(exchange.plan), CLIENT_API: client_api(exchange.front)})
                    self.exchanges[exchange.key] = exchange
                    self._remember(exchange)
                    route = gateway.route(exchange)   # also attempt 1, translated for its provider
                    self._attempt_started(exchange, 1, observed=False)
                    if self.books is not None:
                        self.books.open(exchange)     # an in_flight record: a crash leaves a trace
                    yield pb.ProcessingResponse(request_body=pb.BodyResponse(response=pb.CommonResponse(
                        header_mutation=mutation(route.set_headers, route.remove_headers),
                        body_mutation=pb.BodyMutation(body=route.body), clear_route_cache=True)),
                        dynamic_metadata=_ROUTED_MARK)
                elif kind == "response_headers":
                    response_headers = headers_of(req.response_headers)
                    status = int(response_headers.get(":status", "0") or 0)
                    if exchange is None:  # Envoy's own reply before any routing
                        yield pb.ProcessingResponse(response_headers=pb.HeadersResponse(),
                                                    mode_override=processing_mode_pb2.ProcessingMode(
                                                        response_body_mode=processing_mode_pb2.ProcessingMode.NONE))
                        continue
                    start = gateway.response_headers(exchange, response_headers)
                    if exchange.answering is not None and exchange.answered_by is not None:
                        tracing.answered(exchange.trail, exchange.answering, status, exchange.per_try_timeout_ms,
                                         retry_after(status, response_headers))
                    yield pb.ProcessingResponse(
                        response_headers=pb.HeadersResponse(response=pb.CommonResponse(
                            header_mutation=mutation(start.set_headers, start.remove_headers))),
                        mode_override=processing_mode_pb2.ProcessingMode(response_body_mode=_BODY_MODES[start.body]))
                elif kind == "response_body":
                    body = req.response_body
                    if exchange is not None and exchange.trail is not None:
                        tracing.first_byte(exchange.trail)
                    out = gateway.response_body(exchange, body.body, body.end_of_stream) if exchange else body.body
                    if exchange is not None and exchange.retry_after_s is not None:
                        model, seconds, exchange.retry_after_s = exchange.answered_by, exchange.retry_after_s, None
                        if model is not None and hasattr(gateway.health, "pause"):
                            gateway.health.pause(model.id, model.provider.name, seconds)
                    if body.end_of_stream and exchange is not None and exchange.trail is not None:
                        # The record is committed before the client sees the answer end: a finished
                        # request survives a crash of this process (bounded by the ledger's commit).
                        settled = True
                        await self._settle(exchange, status, durable=True)
                    if self.shadow is not None and exchange is not None:
                        # A front door's answer is read in the internal (OpenAI) form it was made from.
                        internal = getattr(exchange.translator, "last_internal", None)
                        self.shadow.observe(exchange, status, out if internal is None else internal,
                                            body.end_of_stream)
                    yield pb.ProcessingResponse(response_body=pb.BodyResponse(response=pb.CommonResponse(
                        body_mutation=pb.BodyMutation(body=out))))
                else:  # trailers: nothing to change
                    yield _continue(kind)
        except Exception as exc:
            # One request's failure must not take the service down; Envoy turns a broken stream into a 500.
            log.exception("router stage failed")
            error = type(exc).__name__
            yield immediate(Answer.error(UpstreamError("the gateway failed to process this request",
                                                       code="gateway_error", status=500), headers.get(":path", "")))
        except (asyncio.CancelledError, GeneratorExit):
            cancelled = True
            raise
        finally:
            if exchange is not None:
                self.exchanges.pop(exchange.key, None)
                if self.shadow is not None:
                    self.shadow.ended(exchange)
                if exchange.trail is not None and not settled:
                    self._settle_at_end(exchange, status, cancelled=cancelled, error=error)

    def _settle_at_end(self, exchange: Exchange, status: int | None, *, cancelled: bool, error: str | None) -> None:
        """Settle a stream that ended without its last chunk. When only Envoy knows who ended it (the
        client or the provider), wait for its access log entry (access_log.py), off this stream."""
        translator = exchange.translator
        ending = translator.ending if isinstance(translator, ChatTranslator) and exchange.stream else None
        if self.verdicts is None or not endings.unclear(status=status, end_of_stream=exchange.end_of_stream,
                                                        ending=ending, gateway_error=error is not None):
            self._settle_now(exchange, status, cancelled=cancelled, error=error)
            return
        ended = time.time()

        async def later() -> None:
            envoy = await self.verdicts.wait(exchange.key, VERDICT_WAIT_S)
            self._settle_now(exchange, status, cancelled=cancelled, error=error, envoy=envoy, ended=ended)

        task = asyncio.get_running_loop().create_task(later())
        self.settling.add(task)
        task.add_done_callback(self.settling.discard)

    async def _settle(self, exchange: Exchange, status: int | None, *, durable: bool) -> None:
        record = self._settle_now(exchange, status, cancelled=False, error=None)
        if durable and record is not None and self.books is not None:
            await self.books.commit()

    def _settle_now(self, exchange: Exchange, status: int | None, *, cancelled: bool, error: str | None,
                    envoy: str | None = None, ended: float | None = None):
        """One outcome and one bill for however the exchange ended (endings.py); ends its spans.
        ``envoy``: Envoy's access log verdict, if one came; ``ended``: when the stream ended."""
        translator, model = exchange.translator, exchange.answered_by
        ended = ended or time.time()
        ending = endings.classify(
            status=status, provider_answered=model is not None and exchange.mode != "pass",
            end_of_stream=exchange.end_of_stream,
            ending=translator.ending if isinstance(translator, ChatTranslator) and exchange.stream else None,
            cancelled=cancelled, gateway_error=error is not None,
            idle_s=ended - (exchange.last_byte or exchange.started), stall_s=STALL_S, envoy=envoy)
        billed_model = model or (exchange.attempts[max(exchange.attempts)][0] if exchange.attempts else None)
        usage = endings.bill(ending, translator.usage if translator is not None else None,
                             prompt=lambda: tokens.prompt_tokens(exchange.body),
                             delivered=lambda: exchange.delivered_tokens + tokens.count(
                                 endings.delivered_text(bytes(exchange.delivered))))
        record = None
        if exchange.hedged:
            self.tracing.hedged(exchange.trail, exchange.answering, self._wasted_usd(exchange))
            # One rule for every hedged attempt that was sent the prompt and ended without the answer: a
            # record of its own (``<id>/<attempt>``), its own model, its prompt billed. Beaten by another
            # attempt: hedge_cancelled. Nobody answered (every attempt stalled to the deadline): the
            # request's own ending (timeout, 504), the last attempt being the request's own record, as
            # unhedged (tryout 5 P2: the others, also sent the whole prompt, had no record at all).
            won = exchange.answering is not None
            unanswered = [(number, model) for number, model in self._cancelled(exchange)
                          if won or number != max(exchange.attempts)]
            if self.books is not None and unanswered:
                self.books.losers(exchange.reservation, request_id=exchange.key, losers=unanswered,
                                  prompt_tokens=tokens.prompt_tokens(exchange.body), started=exchange.started,
                                  plan=exchange.plan, endpoint=exchange.endpoint,
                                  client_api=client_api_of(exchange.path),
                                  outcome=None if won else ending.outcome, status=None if won else ending.status)
        elif self.books is not None and len(exchange.attempts) > 1:
            # The same rule for attempts in sequence: one cut by its tier's deadline had been sent the
            # whole prompt, so it gets its record (timeout, 504) and bills its prompt, charged to the
            # same budget (tryout 6 M3: only the attempt that answered was billed).
            cut = self._timed_out(exchange)
            if cut:
                self.books.losers(exchange.reservation, request_id=exchange.key, losers=cut,
                                  prompt_tokens=tokens.prompt_tokens(exchange.body), started=exchange.started,
                                  plan=exchange.plan, endpoint=exchange.endpoint,
                                  client_api=client_api_of(exchange.path), outcome=TIMEOUT, status=504)
        if self.books is not None:
            record = self.books.settle(
                exchange.reservation, request_id=exchange.key, model=billed_model, usage=usage,
                status=ending.status, outcome=ending.outcome, started=exchange.started,
                latency_ms=(ended - exchange.started) * 1000, ttft_ms=exchange.trail.ttft_ms,
                attempts=exchange.answering or len(exchange.attempts), plan=exchange.plan,
                endpoint=exchange.endpoint, rate=exchange.rate, client_api=client_api_of(exchange.path))
        self.tracing.finish(exchange.trail, status=ending.status, error=error or ending.failure,
                            cost_usd=record.cost_usd if record is not None else None, outcome=ending.outcome,
                            provider=model.provider.name if model else None, model=model.id if model else None,
                            response_model=model.upstream_model if model else None,
                            input_tokens=usage.input_tokens if usage else None,
                            output_tokens=usage.output_tokens if usage else None)
        if self.tracing.awaiting_log(exchange.trail):
            # An unwatched attempt's span waits for Envoy's upstream log (flushed every 50 ms), which has
            # its real status (attempt_ended); should none come, it ends as it did without one.
            try:
                asyncio.get_running_loop().call_later(VERDICT_WAIT_S, self.tracing.end_unreported, exchange.trail)
            except RuntimeError:   # no event loop (a caller outside the server): no log will come either
                self.tracing.end_unreported(exchange.trail)
        return record

    def _labels(self, plan) -> dict[str, str | float | None]:
        """The decision's names for the request span (and so for the metrics derived from it)."""
        return {telemetry.CLASS: plan.route_class, telemetry.SURFACE: plan.surface, telemetry.TENANT: plan.tenant,
                telemetry.WORKLOAD: plan.workload, telemetry.SCORE: plan.score}

    @staticmethod
    def _wasted_usd(exchange: Exchange) -> float:
        """What the attempts that did not answer cost: each provider was sent the whole prompt (the
        estimate; a cancelled attempt reports no usage), and bills its input tokens."""
        tokens = exchange.plan.prompt_tokens
        return sum(tokens * model.price.input / 1_000_000 for _number, model in Processor._cancelled(exchange))

    @staticmethod
    def _cancelled(exchange: Exchange) -> list:
        """The hedged attempts another attempt beat, as (number, model): not the answer, and not one its
        provider refused (an error status: providers bill no refused request, so neither do we)."""
        out = []
        for number, (model, _translator) in sorted(exchange.attempts.items()):
            status = getattr(exchange.trail.attempts.get(number), "status", None)
            if number != exchange.answering and not (status is not None and status >= 400):
                out.append((number, model))
        return out

    @staticmethod
    def _timed_out(exchange: Exchange) -> list:
        """The attempts of an unhedged request cut at their own deadline, as (number, model): sent the
        prompt, ended without an answer (a held stream's 200 headers, no first token, count as none),
        and not refused with an error status (a refusal bills nothing; a reset before any answer
        neither, README outcome table). Not the attempt the request's own record bills (the one
        answering, else the last)."""
        own = exchange.answering or max(exchange.attempts)
        out = []
        for number, (model, _translator) in sorted(exchange.attempts.items()):
            attempt = exchange.trail.attempts.get(number) if exchange.trail is not None else None
            refused = attempt is not None and attempt.status is not None and attempt.status >= 400
            if number != own and attempt is not None and attempt.failure == "timeout" and not refused:
                out.append((number, model))
        return out

    def _remember(self, exchange: Exchange) -> None:
        self.recent[exchange.key] = exchange
        while len(self.recent) > RECENT_EXCHANGES:
            self.recent.popitem(last=False)

    def attempt_ended(self, report: "AttemptReport") -> None:
        """Envoy's upstream log reports an attempt that ended (see ``AttemptLog``).

        Its retry-after pauses the provider whichever attempt it was. Its outcome counts in the
        health tracker only for an attempt nobody else watched end: attempt 1 (sent by the router
        stage, no upstream stage) when it was not the answer (the router stage saw that one)."""
        exchange = self.recent.get(report.request_id)
        if exchange is None or not exchange.plan.models:
            return
        models = exchange.plan.models
        attempt = report.attempt
        if exchange.hedged:
            # Hedged attempts overlap, and Envoy logs the header map as the last attempt left it: the
            # endpoint says which attempt it was (attempt N goes to the N-th host of x-llm-hosts).
            if report.upstream not in exchange.hedge_hosts:
                return
            attempt = exchange.hedge_hosts.index(report.upstream) + 1
            report = dataclasses.replace(report, attempt=attempt)
        model = models[min(attempt, len(models)) - 1]
        tracker = self.gateway.health
        if report.retry_after_s is not None and hasattr(tracker, "pause"):
            tracker.pause(model.id, model.provider.name, report.retry_after_s)
        trail = exchange.trail
        if attempt in exchange.held_closed and trail is not None:
            # Its stream closed before its first content: the provider failed (the log has its status or
            # a reset / timeout flag), or the client left: Envoy cancelled the attempt itself, and the
            # log has neither (measured on Envoy 1.40: no flag, no status, where a provider's reset
            # after its 200 headers reads upstream_remote_reset).
            exchange.held_closed.discard(attempt)
            if report.status is None and report.kind in (None, "failed"):
                self.tracing.attempt_left(trail, attempt)
            else:
                self.tracing.attempt_reported(trail, attempt, report.status, report.kind or "reset",
                                              report.retry_after_s)
            return
        if exchange.hedged and trail is not None and trail.answered not in (None, attempt) and report.kind in (
                "reset", "timeout", "failed"):
            # A hedge that lost: Envoy reset it once another attempt answered. That is no failure of
            # its provider, nor a latency sample (it never finished): the health tracker skips it.
            self.tracing.attempt_cancelled(trail, attempt)
            return
        if report.attempt != 1 or trail is None or trail.answered == 1:
            return
        if self.tracing.attempt_reported(trail, 1, report.status, report.kind, report.retry_after_s):
            return   # the span was still open: it now ends with the real outcome and reports it itself
        if report.kind is None:
            return   # no failure of the provider (a refusal, the client left): nothing for the health tracker
        attempt = trail.attempts.get(1)
        if attempt is not None and attempt.status is None and report.status is not None:
            attempt.status = report.status   # a refusal, not a cut: billed nothing (``_timed_out``)
        if attempt is not None and attempt.from_log and hasattr(tracker, "record"):
            tracker.record(model.id, model.provider.name, ok=False, latency_ms=report.duration_ms,
                           kind=report.kind, retry_after_s=report.retry_after_s)

    def _attempt_started(self, exchange: Exchange, number: int, observed: bool = True) -> None:
        model = exchange.attempts[number][0]
        self.tracing.start_attempt(exchange.trail, number, "chat" if exchange.endpoint == "chat" else "embeddings",
                                   api=model.provider.api, provider=model.provider.name, model=model.id,
                                   upstream_model=model.upstream_model,
                                   per_try_timeout_ms=exchange.deadline_ms(number), observed=observed,
                                   concurrent=exchange.hedged)

    def _plan(self, headers: dict[str, str], raw: bytes, caller: Caller | None = None,
              input_counts: list[int] | None = None, parsed: Any = None) -> Exchange:
        """The gateway's plan. When only the budget stood in the way (every candidate's estimate is
        over what is left), a budget with money left still serves: estimates are upper bounds, and
        the reservation is corrected to the bill. A spent budget answers 429 with retry-after.
        ``caller``: the request's, when already authenticated (``_count_request``); ``input_counts`` and
        ``parsed``: a large body's counts and its parse, made off the event loop (``Gateway.input_counts``)."""
        try:
            return self.gateway.request_body(headers, raw, caller=caller, input_counts=input_counts, parsed=parsed)
        except QuotaExceeded as exc:
            if self.books is None:
                raise
            caller = caller or self.gateway.authenticate(headers)
            tenant, _workload, surface = who(self.gateway.config, headers, caller)
            if self.books.spent(tenant, surface) and self.books.free_tier(tenant, surface) is None:
                raise self.books.quota_error(exc, tenant, surface) from None
            # Money left (or a free tier model that _admit sends the request to): the allowance doubles
            # from what is left until a candidate fits, so the cheapest candidates (within 2x) go first.
            allowance = max(self.books.budgets.remaining(tenant, surface) or 0.0, 1e-9)
            for _ in range(64):
                try:
                    return self.gateway.request_body(headers, raw, budgets=Allowance(allowance), caller=caller,
                                                     input_counts=input_counts, parsed=parsed)
                except QuotaExceeded:
                    allowance *= 2
            return self.gateway.request_body(headers, raw, budgets=UNLIMITED, caller=caller,
                                             input_counts=input_counts, parsed=parsed)

    def _must_queue(self, exchange: Exchange) -> bool:
        """Every candidate is at its max_inflight, and the workload waits rather than piling on."""
        workload = self.gateway.config.workloads.get(exchange.plan.workload or "")
        return (workload is not None and workload.queue_timeout_ms is not None and bool(exchange.plan.candidates)
                and all(self.gateway.health.model_health(c.model.id).saturated for c in exchange.plan.candidates))

    async def _queue(self, headers: dict[str, str], raw: bytes, exchange: Exchange,
                     counts: list[int] | None = None, parsed: Any = None) -> Exchange:
        """Background work waits, in a bounded queue with a timeout, for a candidate to have capacity.
        Each re-plan reuses the body parsed (and counted) once (``counts``, ``parsed``: as ``_plan``)."""
        workload = self.gateway.config.workloads[exchange.plan.workload]
        waiting = self.waiting.get(workload.name, 0)
        if waiting >= workload.queue_size:
            raise Unavailable(f"every candidate is at its max_inflight and the '{workload.name}' queue is full "
                              f"({workload.queue_size} waiting)", code="queue_full")
        self.waiting[workload.name] = waiting + 1
        try:
            timeout_s = min(workload.queue_timeout_ms / 1000, MAX_QUEUE_WAIT_S - 1)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                await asyncio.sleep(QUEUE_POLL_S)
                exchange = self._plan(headers, raw, exchange.caller, counts, parsed)
                if not self._must_queue(exchange):
                    return exchange
            raise Unavailable(f"every candidate stayed at its max_inflight for {timeout_s * 1000:.0f} ms "
                              f"(the '{workload.name}' queue timeout)", code="queue_timeout")
        finally:
            self.waiting[workload.name] -= 1

    async def _count_request(self, headers: dict[str, str]) -> tuple[Caller | None, dict[str, str]]:
        """Count a request to a model endpoint against its caller's requests-per-minute limits (429 past
        one), before its body is read or parsed: valid or not, so one tenant cannot make the gateway
        parse without bound. Unsuccessful requests count, as OpenAI counts them. ``count_tokens``
        counts in a window of its own under the same limits (ratelimit.py: Anthropic limits token
        counting apart from message creation), so counting before each turn spends no message
        requests while a flood of counts is still bounded (tryout 6 M2: 125 count_tokens calls past a
        120 RPM limit, 4 MB bodies slowing every tenant). Returns the caller (None: not asked) and
        the ``x-ratelimit-*-requests`` headers for the answer."""
        path = headers.get(":path", "").split("?", 1)[0]
        if self.books is None or ENDPOINTS.get(path, "feedback") == "feedback":
            return None, {}   # feedback scores a past request: no model traffic
        caller = self.gateway.authenticate(headers)
        pool = "count_tokens" if path == COUNT_TOKENS_PATH else ""
        admission = await self.books.rates.admit(self.gateway.config, caller, 0, kinds=("requests",), pool=pool)
        return caller, admission.headers

    async def _admit(self, headers: dict[str, str], raw: bytes, exchange: Exchange,
                     counts: list[int] | None = None, parsed: Any = None) -> Exchange:
        """Count the request's tokens against its rate limits (429; the request itself was counted by
        ``_count_request``), then reserve its budget (a spent budget may send it to its free tier model,
        re-planned from the body parsed and counted once: ``counts``, ``parsed`` as ``_plan``)."""
        books = self.books
        if books is None:
            return exchange
        plan = exchange.plan
        free = books.free_tier(plan.tenant, plan.surface)
        if free is not None:
            exchange = self.gateway.request_body(headers, raw, model=free, caller=exchange.caller,
                                                 input_counts=counts, parsed=parsed)
        exchange.rate = await books.rates.admit(self.gateway.config, exchange.caller,
                                                exchange.plan.prompt_tokens + exchange.plan.output_tokens,
                                                kinds=("tokens",))   # the request itself: _count_request
        exchange.limit_headers = exchange.rate.headers
        estimate = exchange.plan.candidates[0].cost if exchange.plan.candidates else 0.0
        try:
            exchange.reservation = await books.admit(plan.tenant, plan.surface, estimate,
                                                     free_tier=free is not None)
        except GatewayError:
            books.rates.settle(exchange.rate, 0)   # refused: it used no tokens
            raise
        return exchange

    async def _feedback(self, headers: dict[str, str], raw: bytes) -> Answer:
        if self.books is None:
            raise UpstreamError("feedback needs the usage ledger", code="feedback_unavailable", status=503)
        validate.parse(raw)   # strict JSON first: no lone surrogate reaches the ledger's queries
        # Only the tenant that made a request may score it (others get the unknown id's 404).
        tenant = self.gateway.authenticate(headers).tenant
        return Answer(200, await self.books.feedback(raw, tenant=tenant))

    def _rejected(self, headers: dict[str, str], exc: GatewayError, exchange: Exchange | None = None) -> None:
        """A request refused before routing is still a request: it gets its span, and once it was
        planned (a spent budget, a full queue) its ledger record, billed nothing."""
        quota = isinstance(exc, QuotaExceeded)
        names: dict[str, str | float | None] | None = None
        if exchange is not None:
            names = self._labels(exchange.plan)
        elif quota:   # refused by the policy for the budget: who it was for is still known
            tenant, workload, surface = who(self.gateway.config, headers, self.gateway.authenticate(headers))
            names = {telemetry.TENANT: tenant, telemetry.WORKLOAD: workload, telemetry.SURFACE: surface}
        trail = self.tracing.start_request(headers, "chat", "", f"rejected: {exc.message}", [], decision=names)
        outcome = BUDGET_REFUSED if quota else None
        self.tracing.finish(trail, status=exc.status, response_model=None, input_tokens=None, output_tokens=None,
                            error=exc.code if exc.status >= 500 else None, outcome=outcome)
        if names is not None and self.books is not None:
            endpoint = ENDPOINTS.get(headers.get(":path", "").split("?", 1)[0], "chat")
            self.books.refused(request_id=exchange.key if exchange is not None else headers.get(KEY_HEADER, ""),
                               status=exc.status, outcome=outcome, started=time.time(), endpoint=endpoint,
                               tenant=names.get(telemetry.TENANT), surface=names.get(telemetry.SURFACE),
                               workload=names.get(telemetry.WORKLOAD), request_class=names.get(telemetry.CLASS),
                               client_api=client_api_of(headers.get(":path", "")))

    async def _upstream(self, requests: AsyncIterator[pb.ProcessingRequest]):
        exchange: Exchange | None = None
        number = 0
        hold = False                      # this stage holds the response headers until the first token
        cut = False                       # ... and cuts the attempt when it misses its deadline (else lets go)
        first: FirstContent | None = None  # while not None, the headers are held
        pending = 0                       # body chunks received while holding, not answered yet
        deadline: float | None = None     # monotonic time a held stream's first token is due (or let go)
        try:
            # Timed here only while the headers are held; before they come, the egress listener times
            # them (x-llm-headers-deadline-ms).
            async for req in _until(requests, lambda: deadline if first is not None else None):
                if req is None and not cut:
                    # A stream that is not cut at its first token, held to its attempt's deadline (at most
                    # HOLD_LIMIT_S) without content (a slow reasoning model): its headers go on as they are,
                    # and from here on a failure reaches the client mid-stream, as on an unheld stream.
                    first, deadline = None, None
                    for released in _release_held(pending):
                        yield released
                    return   # as at the first content (below)
                if req is None:
                    # A held stream without its first token by its own tier's deadline. The held headers
                    # go on as a 504 (marked like the egress listener's), which Envoy's router retries on
                    # the next tier. Not an ImmediateResponse: an upstream filter's local reply goes to the
                    # client as it is, never retried (measured on 1.40, before and while holding headers).
                    self.tracing.attempt_reported(exchange.trail, number, None, "timeout", None)
                    first, deadline = None, None
                    yield pb.ProcessingResponse(response_headers=pb.HeadersResponse(response=pb.CommonResponse(
                        header_mutation=mutation({":status": "504", DEADLINE_PASSED_HEADER: "passed"}, []))),
                        mode_override=_NO_BODY)
                    for _ in range(pending):   # what came of the body while held: not for the client
                        yield pb.ProcessingResponse(response_body=pb.BodyResponse(response=pb.CommonResponse(
                            body_mutation=pb.BodyMutation(clear_body=True))))
                    pending = 0
                    continue
                kind = req.WhichOneof("request")
                if kind == "response_headers" and exchange is not None:
                    response_headers = headers_of(req.response_headers)
                    status = int(response_headers.get(":status", "0") or 0)
                    if DEADLINE_PASSED_HEADER in response_headers or PROVIDER_RESET_HEADER in response_headers:
                        # The egress listener's 504 (the attempt's deadline passed) or 502 (the provider reset
                        # before its headers): a timeout or a reset, not the provider's status.
                        self.tracing.attempt_reported(exchange.trail, number, None, "timeout" if
                                                      DEADLINE_PASSED_HEADER in response_headers else "reset", None)
                        yield pb.ProcessingResponse(response_headers=pb.HeadersResponse())
                        continue
                    self.tracing.attempt_status(exchange.trail, number, status, retry_after(status, response_headers))
                    if hold and status == 200:
                        # Not yet: Envoy sends the body anyway; these headers are answered at the first
                        # token, or at the attempt's deadline turned into a 504 (above), or let go as
                        # they are when this stream is not cut.
                        first = FirstContent(exchange.attempts[number][0].provider.api)
                        continue
                    deadline = None
                    yield pb.ProcessingResponse(response_headers=pb.HeadersResponse(),
                                                mode_override=_NO_BODY if hold else None)
                    continue
                if kind == "response_body" and first is not None:
                    pending += 1
                    # A plan holds at most policy.MAX_ATTEMPTS models, and x-envoy-max-retries lets Envoy
                    # try each once: the plan's length is how many attempts there are.
                    if first.feed(req.response_body.body, req.response_body.end_of_stream) and hand_over(
                            first.failed, number, len(exchange.plan.models)):
                        # The provider's error event before any content (Anthropic's overloaded_error
                        # after message_start): nothing reached the client, so, as at the deadline,
                        # the held headers go on as the status the event stands for (a 5xx or 429 the
                        # router retries on the next tier; Envoy's upstream log and this span count it
                        # against the provider with that status), the held body emptied.
                        failed = first.failed
                        self.tracing.attempt_reported(exchange.trail, number, failed, str(failed), None)
                        first, deadline = None, None
                        yield pb.ProcessingResponse(response_headers=pb.HeadersResponse(response=pb.CommonResponse(
                            header_mutation=mutation({":status": str(failed)}, []))), mode_override=_NO_BODY)
                        for _ in range(pending):
                            yield pb.ProcessingResponse(response_body=pb.BodyResponse(response=pb.CommonResponse(
                                body_mutation=pb.BodyMutation(clear_body=True))))
                        pending = 0
                        continue
                    if first.seen:
                        first, deadline = None, None
                        for released in _release_held(pending):
                            yield released
                        # Nothing more for this stage: closing its gRPC stream tells Envoy to ignore it for
                        # the rest of the request (chunks already on their way pass unchanged). Held open,
                        # every stream cost two processor streams for its whole life: half the streams
                        # the extproc cluster's circuit breaker admits (measured: 40 open for 20 streams).
                        return
                    continue
                if kind != "request_headers":
                    yield _continue(kind)
                    continue
                headers = headers_of(req.request_headers)
                exchange = self.exchanges.get(headers.get(KEY_HEADER, ""))
                if exchange is None:
                    yield immediate(Answer.error(UpstreamError("request state lost between stages",
                                                               code="gateway_error", status=500)))
                    return
                number = int(headers.get("x-envoy-attempt-count", "1") or 1)
                hold = headers.get(FIRST_TOKEN_HEADER) == "hold"
                cut = hold and exchange.cuts_first_token
                if cut and exchange.deadline_ms(number):
                    deadline = time.monotonic() + exchange.deadline_ms(number) / 1000
                elif hold:
                    deadline = time.monotonic() + min(exchange.deadline_ms(number) or 1e9, HOLD_LIMIT_S * 1000) / 1000
                if number == 1:
                    # Attempt 1 of a stream: the router stage translated it; this stage only watches it.
                    self.tracing.watch(exchange.trail, 1)
                    yield pb.ProcessingResponse(request_headers=pb.HeadersResponse())
                    continue
                try:
                    rewrite = self.gateway.attempt(exchange, number)
                except GatewayError as exc:
                    refused = Answer.error(exc, exchange.path)
                    # This attempt never left: the earlier ones are all a provider saw (the route adds
                    # Envoy's count, which includes this one, only where the reply has none).
                    refused.headers["x-llm-attempts"] = str(number - 1)
                    yield immediate(refused)
                    return
                self._attempt_started(exchange, number)
                yield _replace(rewrite)
        except Exception:
            log.exception("upstream stage failed")
            yield immediate(Answer.error(UpstreamError("the gateway failed to prepare the upstream request",
                                                       code="gateway_error", status=500)))
        finally:
            if exchange is not None and exchange.trail is not None and number:
                late = deadline is not None and time.monotonic() >= deadline
                if hold and not late and (first is not None or self.tracing.status_of(exchange.trail, number) is None):
                    # A held stream closed before its first content (its headers held, or none come yet) and
                    # before its deadline: the provider reset, or the client left (Envoy closes the stage
                    # then too). Only Envoy's upstream log tells which (attempt_ended); counted as resets,
                    # five clients leaving ejected a healthy model.
                    exchange.held_closed.add(number)
                    self.tracing.attempt_unsettled(exchange.trail, number)
                else:
                    if first is not None:   # Envoy's per-try timeout (the backstop past the deadline) cut it
                        self.tracing.attempt_reported(exchange.trail, number, None, "timeout", None)
                    self.tracing.attempt_closed(exchange.trail, number, exchange.per_try_timeout_ms)


@dataclass(frozen=True)
class AttemptReport:
    """One upstream attempt as Envoy's upstream log saw it end."""

    request_id: str
    attempt: int                 # 1-based, from the x-envoy-attempt-count Envoy sent upstream
    cluster: str
    status: int | None           # the provider's status, None when none came (timeout, reset)
    kind: str | None             # failure kind for the health tracker; None: not the provider's failure
    retry_after_s: float | None
    duration_ms: float
    upstream: str = ""           # the endpoint's "ip:port"


def attempt_report(entry, now: float) -> AttemptReport:
    """An ``HTTPAccessLogEntry`` of the router's upstream log as an ``AttemptReport``."""
    common, flags = entry.common_properties, entry.common_properties.response_flags
    status = entry.response.response_code.value or None
    headers = {k.lower(): v for k, v in entry.response.response_headers.items()}
    attempt = entry.request.request_headers.get("x-envoy-attempt-count", "1")
    if flags.downstream_remote_reset or flags.downstream_connection_termination:
        kind = None      # the client left: nothing to hold against the provider
    elif DEADLINE_PASSED_HEADER in headers:
        kind, status = "timeout", None   # the egress listener cut it at the attempt's own deadline
    elif PROVIDER_RESET_HEADER in headers:
        kind, status = "reset", None     # the egress listener's 502: the provider reset before its headers
    elif status is not None:
        kind = str(status) if provider_fault(status) else None
    elif flags.upstream_request_timeout:
        kind = "timeout"
    elif (flags.upstream_remote_reset or flags.upstream_connection_failure or flags.local_reset
          or flags.upstream_connection_termination or flags.upstream_protocol_error):
        kind = "reset"
    else:
        kind = "failed"
    limited = status in retry_after_.LIMITED
    return AttemptReport(
        request_id=entry.request.request_id, attempt=int(attempt) if attempt.isdigit() else 1,
        cluster=common.upstream_cluster, status=status, kind=kind,
        retry_after_s=retry_after_.from_headers(headers, now) if limited else None,
        duration_ms=common.duration.ToNanoseconds() / 1e6,
        upstream=f"{common.upstream_remote_address.socket_address.address}:"
                 f"{common.upstream_remote_address.socket_address.port_value}")


class AttemptLog(als_pb2_grpc.AccessLogServiceServicer):
    """Envoy's gRPC access log service, fed by the router's ``upstream_log``.

    One long-lived stream per Envoy worker carries batches of entries (Envoy flushes every
    ``buffer_flush_interval``), so observing every attempt costs no gRPC stream per request."""

    def __init__(self, processor: Processor):
        self.processor = processor

    async def StreamAccessLogs(self, requests, context):
        async for message in requests:
            now = time.time()
            for entry in message.http_logs.log_entry:
                try:
                    self.processor.attempt_ended(attempt_report(entry, now))
                except Exception:   # one odd entry must not end the stream
                    log.exception("attempt report failed")
        return als_pb2.StreamAccessLogsResponse()


async def _until(requests: AsyncIterator[pb.ProcessingRequest], deadline) -> AsyncIterator[pb.ProcessingRequest | None]:
    """Envoy's messages, and None once ``deadline()`` (a monotonic time, or None: no deadline) passes
    before the next message, so the stage can answer on its own. Ends when Envoy ends the stream."""
    iterator = requests.__aiter__()
    nxt: asyncio.Task | None = None
    try:
        while True:
            due = deadline()
            if nxt is None and due is None:   # the common case: no timer, no task
                try:
                    message = await iterator.__anext__()
                except StopAsyncIteration:
                    return
                yield message
                continue
            if nxt is None:
                nxt = asyncio.ensure_future(iterator.__anext__())
            done, _ = await asyncio.wait({nxt}, timeout=None if due is None else max(0.0, due - time.monotonic()))
            if not done:
                yield None
                continue
            try:
                message = nxt.result()
            except StopAsyncIteration:
                return
            nxt = None
            yield message
    finally:
        if nxt is not None:
            # The stage stopped reading with a read in flight: cancel it, and take its outcome whatever it
            # was (Envoy's stream may have ended meanwhile), or asyncio logs "Task exception was never
            # retrieved: StopAsyncIteration" for every such attempt.
            nxt.cancel()
            nxt.add_done_callback(_outcome_taken)


def _outcome_taken(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()


def _replace(rewrite: Rewrite) -> pb.ProcessingResponse:
    """Headers response that also replaces the whole body: one message per attempt, no body round trip."""
    return pb.ProcessingResponse(request_headers=pb.HeadersResponse(response=pb.CommonResponse(
        status=pb.CommonResponse.CONTINUE_AND_REPLACE,
        header_mutation=mutation(rewrite.set_headers, rewrite.remove_headers),
        body_mutation=pb.BodyMutation(body=rewrite.body or b""))))


def _continue(kind: str | None) -> pb.ProcessingResponse:
    if kind == "request_body":
        return pb.ProcessingResponse(request_body=pb.BodyResponse())
    if kind == "response_body":
        return pb.ProcessingResponse(response_body=pb.BodyResponse())
    if kind == "request_trailers":
        return pb.ProcessingResponse(request_trailers=pb.TrailersResponse())
    if kind == "response_trailers":
        return pb.ProcessingResponse(response_trailers=pb.TrailersResponse())
    if kind == "response_headers":
        return pb.ProcessingResponse(response_headers=pb.HeadersResponse())
    return pb.ProcessingResponse(request_headers=pb.HeadersResponse())


def build(cfg: Config, metrics: Metrics, books: Bookkeeping | None) -> tuple[Gateway, HealthTracker, Tracing]:
    """The gateway and what feeds it: spans -> health tracker + metrics (+ OTLP export if configured)."""
    tracker = HealthTracker(cfg.health, on_eject=metrics.ejected, max_inflight=_limits(cfg),
                            provider_limits=_provider_limits(cfg), model_providers=_model_providers(cfg))
    tracing = Tracing(tracer_provider(tracker, metrics))
    gateway = Gateway(cfg, health=tracker, budgets=books.budgets if books is not None else UNLIMITED,
                      hedge_endpoints=hedge_hosts(os.environ.get(HEDGE_ENV)))
    return gateway, tracker, tracing


def _limits(cfg: Config) -> dict[str, int]:
    return {m.id: m.max_inflight for m in cfg.models.values() if m.max_inflight}


def _model_providers(cfg: Config) -> dict[str, str]:
    return {m.id: m.provider.name for m in cfg.models.values()}


def _provider_limits(cfg: Config) -> dict[str, tuple[str, int]]:
    return {m.id: (m.provider.name, m.provider.max_inflight) for m in cfg.models.values() if m.provider.max_inflight}


# The largest ext_proc message, beyond its body: headers and protobuf framing.
GRPC_HEADROOM_BYTES = 1024 * 1024
# A provider answer chunk Envoy hands over in one message, and the translated whole answer sent back.
MAX_RESPONSE_MESSAGE_BYTES = 64 * 1024 * 1024


def message_limits(cfg: Config) -> list[tuple[str, int]]:
    """gRPC options sized so no body Envoy lets through breaks the ext_proc stream.

    grpcio refuses messages over 4 MiB by default: a request body at ``limits.max_body_bytes``
    plus its framing, or a large provider chunk, ended the stream (Envoy answered 500, or a 200
    with no body). A request body can be at most Envoy's buffer limit (the listener's
    per_connection_buffer_limit_bytes, kept at max_body_bytes: larger bodies get Envoy's 413), so
    it fits with headroom; responses are bounded separately. Fixed at start: a reload that raises
    max_body_bytes past twice the starting value needs a restart."""
    request = 2 * cfg.max_body_bytes + GRPC_HEADROOM_BYTES
    largest = max(request, MAX_RESPONSE_MESSAGE_BYTES)
    return [("grpc.max_receive_message_length", largest), ("grpc.max_send_message_length", largest)]


async def serve(config_path: str, address: str, grace: float = 30.0, status_address: str | None = None) -> None:
    """Serve until SIGTERM/SIGINT, then stop taking streams and let in-flight ones finish (up to ``grace`` s).

    The routing config is reloaded when its file changes (``reload.watch``)."""
    source = ConfigSource(config_path)
    cfg = source.load()
    metrics = Metrics()
    books = Bookkeeping(cfg)
    await books.start()
    interrupted = await books.recover()
    if interrupted:
        log.warning("usage ledger: %d requests were in flight when extproc last stopped; marked interrupted",
                    interrupted)
    gateway, tracker, tracing = build(cfg, metrics, books)
    # The tokenizer's ranks load once (about 0.5 s): here, not on the event loop in the first request
    # that needs a count (an embeddings estimate near a limit, a bill the provider never reported).
    await asyncio.to_thread(tokens.encoding)
    gateway.keys = KeyFile(keys_path(cfg))
    gateway.keys.check()
    metrics.observe_config(cfg)

    def apply(cfg: Config) -> None:
        gateway.config = cfg
        tracker.settings, tracker.max_inflight = cfg.health, _limits(cfg)
        tracker.provider_limits, tracker.model_providers = _provider_limits(cfg), _model_providers(cfg)
        books.reconfigure(cfg)
        if keys_path(cfg) != gateway.keys.path:
            gateway.keys = KeyFile(keys_path(cfg))
            gateway.keys.check()
        metrics.observe_config(cfg)
        metrics.config_reloads.labels("ok").inc()
        log.info("routing config reloaded from %s", config_path)

    watcher = asyncio.create_task(watch(config_path, apply, source=source,
                                        on_error=lambda _: metrics.config_reloads.labels("failed").inc()))
    key_watcher = asyncio.create_task(watch_keys(gateway))
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0), *message_limits(cfg)])
    verdicts = Verdicts()
    processor = Processor(gateway, tracing, books, verdicts)
    processor.shadow = ShadowRunner(lambda: gateway.config, books, metrics, tracing.tracer)
    # One AccessLogService: the endings log (access_log.py) and the router's upstream log of attempts.
    access_log = AccessLogService(verdicts, others=AttemptLog(processor))
    access_log.add_to(server)
    pb_grpc.add_ExternalProcessorServicer_to_server(processor, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    status = StatusService(processor, tracker, metrics, books)
    status.add_to(server)
    server.add_insecure_port(address)
    await server.start()
    http_runner = await status.serve_http(status_address) if status_address else None
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    await health_servicer.set("envoy.service.ext_proc.v3.ExternalProcessor", health_pb2.HealthCheckResponse.SERVING)
    log.info("extproc serving on %s%s", address, f", status on http://{status_address}/status" if status_address else "")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    # Readiness first: the health service says NOT_SERVING (Envoy's health checks and the Kubernetes
    # probe read it), while new streams are still served, so nothing that arrives during the drain
    # gets a 500. Once no stream has come for DRAIN_QUIET_S (or half the grace has passed), the
    # server stops taking streams and lets the open ones finish in what is left of the grace.
    log.info("shutting down: not ready; serving until streams stop coming, then draining")
    started = time.monotonic()
    watcher.cancel()
    key_watcher.cancel()
    await health_servicer.enter_graceful_shutdown()
    await processor.drained(DRAIN_QUIET_S, grace / 2)
    stopping = asyncio.create_task(server.stop(max(0.0, grace - (time.monotonic() - started))))
    while processor.streams and not stopping.done():   # the open ext_proc streams finish ...
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)     # ... and Envoy flushes their access log entries (every 50 ms)
    access_log.close()
    await stopping
    if processor.settling:   # endings still waiting for Envoy's word: settle them before the ledger closes
        await asyncio.wait(set(processor.settling), timeout=VERDICT_WAIT_S + 1)
    if http_runner is not None:
        await http_runner.cleanup()
    await processor.shadow.close()   # evaluations under way record their verdicts (or give up)
    await books.close()            # push budget counters, write the last usage records
    tracing.provider.shutdown()   # flush spans still queued for export
