"""Shadow evaluation, the I/O shell: capture a sampled answer, then, off the client's path, ask the
reference model and the judge (through Envoy, with the gateway's internal key) and record the verdict.

The decisions are ``extproc.shadow``'s; this module only moves bytes and keeps count:

- ``observe`` is called by the router stage for every response body message (server.py). The first
  call draws the sample (``shadow.skip_reason``); a sampled answer's bytes are copied in memory until
  the end of the stream, then the evaluation starts as a background task and the message goes on
  unchanged: the client never waits for it.
- The evaluation's calls go to ``shadow.gateway_url`` (Envoy) with the key named by ``shadow.key_env``:
  its tenant (``shadow.tenant``) is never sampled, and its requests are ledger records of that tenant:
  the evaluation's cost is gateway overhead, visible as that tenant's spend. Give that tenant no rate
  limit or budget (its calls are bounded by the sampling rates and ``budget_usd_per_day``).
- Prompts and answers live only in the task's memory; the ledger gets the verdict (``<id>/shadow``,
  quality 1 / 0.5 / 0, source ``shadow``), never text, unless ``store_text`` (then a JSON line per
  evaluation in ``$LLM_GATEWAY_SHADOW_TEXT_LOG``).
- A span ``shadow evaluation`` links to the evaluated request's span; the calls carry its trace context.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
import time
from typing import Any, Callable

import httpx
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from . import shadow
from .accounting import UsageRecord

log = logging.getLogger("extproc.shadow")
MAX_RUNNING = 8          # evaluations in flight at once; more sampled answers are dropped (counted)
MAX_CAPTURE_BYTES = 1 << 20   # an answer larger than this is not evaluated (memory bound)
CALL_TIMEOUT_S = 120.0
TEXT_LOG_ENV = "LLM_GATEWAY_SHADOW_TEXT_LOG"
_PROPAGATOR = TraceContextTextMapPropagator()


class ShadowRunner:
    def __init__(self, config_of: Callable[[], Any], books: Any, metrics: Any, tracer: trace.Tracer, *,
                 draw: Callable[[], float] = random.random, clock: Callable[[], float] = time.time):
        self.config_of = config_of     # the current routing config (it reloads)
        self.books = books
        self.metrics = metrics
        self.tracer = tracer
        self.draw = draw
        self.clock = clock
        self.captures: dict[str, bytearray | None] = {}   # request id -> answer so far (None: not sampled)
        self.tasks: set[asyncio.Task] = set()
        self.spent: dict[str, float] = {}                  # UTC day -> USD spent on evaluation calls
        self._client: httpx.AsyncClient | None = None

    # ---- on the request path: cheap -------------------------------------------------------------
    def observe(self, exchange: Any, status: int | None, chunk: bytes, end: bool) -> None:
        """One response body message of ``exchange`` as the client gets it (OpenAI JSON or SSE)."""
        key = exchange.key
        if key not in self.captures:
            self.captures[key] = bytearray() if status == 200 and self._sampled(exchange) else None
        buf = self.captures[key]
        if buf is not None:
            buf += chunk
            if len(buf) > MAX_CAPTURE_BYTES:
                self.captures[key] = None
        if end:
            buf = self.captures.pop(key, None)
            if buf is not None:
                self._start(exchange, bytes(buf))

    def ended(self, exchange: Any) -> None:
        """The exchange ended without its last body message. A stream whose ``[DONE]`` was already sent
        is a whole answer (the client may close right after reading it, before Envoy's end of stream
        reaches us): it is evaluated; anything else is dropped."""
        buf = self.captures.pop(exchange.key, None)
        if buf is not None and bytes(buf).rstrip().endswith(b"data: [DONE]"):
            self._start(exchange, bytes(buf))

    def _sampled(self, exchange: Any) -> bool:
        cfg = self.config_of()
        if cfg.shadow is None or not os.environ.get(cfg.shadow.key_env) or not self._url(cfg):
            return False   # no key or no gateway to call: nothing is captured
        plan = exchange.plan
        reason = shadow.skip_reason(cfg, cfg.shadow, endpoint=exchange.endpoint, body=exchange.body,
                                    route_class=plan.route_class, surface=plan.surface, tenant=plan.tenant,
                                    served_model=exchange.answered_by, draw=self.draw())
        return reason is None

    def _start(self, exchange: Any, answer: bytes) -> None:
        if len(self.tasks) >= MAX_RUNNING:
            self.metrics.shadow_skipped.labels("busy").inc()
            return
        task = asyncio.get_running_loop().create_task(self._evaluate(exchange, answer))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # ---- off the path ---------------------------------------------------------------------------
    async def _evaluate(self, exchange: Any, answer: bytes) -> None:
        cfg = self.config_of()
        settings = cfg.shadow
        plan, served = exchange.plan, exchange.answered_by
        served_text = shadow.answer_text(answer, bool(exchange.stream))
        reference = shadow.reference_model(cfg, settings, plan.route_class, plan.surface)
        if served_text is None or reference is None or settings is None:
            self.metrics.shadow_skipped.labels("not_text").inc()
            return
        day = time.strftime("%Y-%m-%d", time.gmtime(self.clock()))
        if self.spent.get(day, 0.0) >= settings.budget_usd_per_day:
            self.metrics.shadow_skipped.labels("budget").inc()
            return
        links = []
        if exchange.trail is not None:
            links = [Link(exchange.trail.request.get_span_context())]
        with self.tracer.start_as_current_span("shadow evaluation", kind=SpanKind.INTERNAL, links=links,
                                               attributes={"llm.shadow.request_id": exchange.key,
                                                           "llm.shadow.served_model": served.id,
                                                           "llm.shadow.reference_model": reference.id,
                                                           "llm.shadow.judge_model": settings.judge_model}
                                               ) as span:
            try:
                verdict = await self._judge(cfg, settings, exchange.body, served_text, reference.id, day)
            except Exception as exc:   # noqa: BLE001 - an evaluation's failure never touches traffic
                span.set_attribute("error.type", type(exc).__name__)
                log.warning("shadow evaluation of %s failed: %s", exchange.key, exc)
                self.metrics.shadow_skipped.labels("failed").inc()
                return
            span.set_attribute("llm.shadow.verdict", verdict or "none")
        if verdict is None:
            self.metrics.shadow_skipped.labels("no_verdict").inc()
            return
        self.books.ledger.append(UsageRecord(
            time=exchange.started, request_id=exchange.key + shadow.SHADOW_SUFFIX, model=served.id,
            provider=served.provider.name, tenant=settings.tenant, surface=plan.surface,
            request_class=plan.route_class, workload=plan.workload, outcome=shadow.SHADOW_OUTCOME, status=200,
            attempts=0, quality=shadow.SCORES[verdict], quality_source=shadow.SHADOW_SOURCE,
            endpoint=exchange.endpoint))
        self.metrics.shadow_verdict(plan.route_class, plan.surface, served.id, verdict)

    async def _judge(self, cfg: Any, settings: Any, body: dict, served_text: str, reference: str,
                     day: str) -> str | None:
        request = {k: v for k, v in body.items() if k not in ("stream", "stream_options", "n")}
        ref = await self._call(cfg, {**request, "model": reference}, day)
        ref_text = shadow.answer_text(ref, stream=False)
        if ref_text is None:
            return None
        question = shadow.question_of(body)
        first, second = await asyncio.gather(
            self._call(cfg, shadow.judge_request(question, served_text, ref_text, settings.judge_model), day),
            self._call(cfg, shadow.judge_request(question, ref_text, served_text, settings.judge_model), day))
        verdict = shadow.combine(shadow.parse_grade(shadow.answer_text(first, False)),
                                 shadow.parse_grade(shadow.answer_text(second, False)))
        if settings.store_text and os.environ.get(TEXT_LOG_ENV):
            with open(os.environ[TEXT_LOG_ENV], "a", encoding="utf-8") as f:
                f.write(json.dumps({"question": question, "served": served_text, "reference": ref_text,
                                    "verdict": verdict}) + "\n")
        return verdict

    async def _call(self, cfg: Any, body: dict, day: str) -> bytes:
        settings = cfg.shadow
        key, url = os.environ.get(settings.key_env), self._url(cfg)
        if not url or not key:
            raise RuntimeError(f"shadow evaluation needs shadow.gateway_url and the key in ${settings.key_env}")
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=CALL_TIMEOUT_S)
        headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
        _PROPAGATOR.inject(headers)   # the call's spans hang under the evaluation's span
        response = await self._client.post(url.rstrip("/") + "/chat/completions",
                                           headers=headers, content=json.dumps(body))
        response.raise_for_status()
        usage = response.json().get("usage") or {}
        model = cfg.models.get(body["model"])
        if model is not None:
            cost = (usage.get("prompt_tokens", 0) * model.price.input
                    + usage.get("completion_tokens", 0) * model.price.output) / 1_000_000
            self.spent[day] = self.spent.get(day, 0.0) + cost
            self.metrics.shadow_cost.inc(cost)
        return response.content

    @staticmethod
    def _url(cfg: Any) -> str | None:
        return cfg.shadow.gateway_url or os.environ.get(shadow.URL_ENV)

    async def close(self) -> None:
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=5)
        if self._client is not None:
            await self._client.aclose()
