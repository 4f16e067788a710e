"""One request's life through the gateway, as plain values (sans-I/O).

The gRPC servicer (``server.py``) calls these methods with header dicts and
body bytes and turns their results into ext_proc messages; nothing here knows
about gRPC, sockets or Envoy's protobufs, so it is tested in microseconds.

Router stage (once per client request):
  ``request_headers`` -> an immediate answer (401 without a valid gateway key,
                         ``/v1/models``, 404, 415) or None;
  ``request_body``    -> an ``Exchange`` holding the plan and the original body;
  ``route``           -> the headers Envoy routes on (``x-llm-try-N``) and attempt 1
                         already rewritten for its provider.
Upstream stage (on retries, on the provider cluster Envoy picked):
  ``attempt``         -> path, authority, credential and body for that provider.
Router stage, response side:
  ``response_headers`` / ``response_body`` -> provenance headers and the answer
                         normalised to the OpenAI shape.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from . import affinity, client_retry, content_encoding, errors, retry_after, tokens, validate
from .config import FORWARDABLE_HEADERS, Config, Model
from .credentials import Credentials
from .errors import GatewayError, InvalidRequest, NotFound, PayloadTooLarge, UnsupportedMediaType
from .keys import Caller, KeyFile, authenticate
from .cost import UNLIMITED, BudgetView
from .policy import (ASK_PLANNER, NO_HEALTH, SURFACE_HEADER, WORKLOAD_HEADER, HealthView, Plan, counts_needed, decide,
                     refusal, who)
from .apis import FRONT_DOORS, FrontDoorTranslator, client_api
from .providers import CREDENTIAL_HEADERS, chat_translator, credential_header, embeddings_translator
from .providers.base import ChatTranslator, EmbeddingsTranslator, UpstreamRequest

# Headers the router stage sets for Envoy's route: attempt N goes to the cluster in x-llm-try-N.
TRY_HEADERS = ("x-llm-try-1", "x-llm-try-2", "x-llm-try-3")
# Joins the upstream stage's attempt to the router stage's exchange. The router stage
# sets it to a fresh id, so a client cannot collide with another request's state.
# Upstream filters edit the header map that retries reuse, so it must survive every
# attempt: that is why it is x-request-id, which Envoy forwards upstream anyway.
KEY_HEADER = "x-request-id"
# Front doors (extproc/apis/) are chat requests once parsed: the same policy, budgets and accounting.
ENDPOINTS = {"/v1/chat/completions": "chat", "/v1/embeddings": "embeddings", "/v1/feedback": "feedback",
             "/v1/messages": "chat", "/v1/responses": "chat", "/v1/messages/count_tokens": "count_tokens"}
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
RETRY_SLACK_MS = 500   # added to a request's deadline for Envoy's backoff between retries
# Headers one provider's translator sets that another provider must not receive on a retry.
PROVIDER_HEADERS = ("anthropic-version",)
# A front door's client headers a pass-through to a provider of the same API sends on (extproc/apis).
FRONT_DOOR_HEADERS = ("anthropic-version", "anthropic-beta")
OBSERVE_LIMIT = 8 * 1024 * 1024   # bytes of a pass-through answer kept to read its usage
# Hedging: each provider cluster's endpoint in Envoy's hedge pool (its loopback listener, see envoy/),
# overridden by $LLM_GATEWAY_HEDGE_ENDPOINTS ("openai=127.0.0.1:10101,anthropic=...").
# Set on every unhedged stream: the upstream stage runs on every attempt and holds the provider's response
# headers until the first content, so a failure before content (a reset, an error event) is still Envoy's
# router's to retry on the next tier or to answer with a status (README, "Streams that fail before
# content"); for latency-first work with a fallback it is also the first-token deadline
# (``Exchange.cuts_first_token``).
FIRST_TOKEN_HEADER = "x-llm-first-token"
# The client's API (``apis.client_api``: openai_chat, anthropic_messages, openai_responses), for Envoy's
# own replies: its local_reply_config answers in that API's error shape, whatever :path the request was
# rewritten to for the provider (envoy/envoy.yaml). An x-llm-* header: the egress hop never sends it on.
CLIENT_API_HEADER = "x-llm-client-api"
# Each attempt's own deadline, set per attempt (router stage for attempt 1, upstream stage for retries)
# and read by the provider's egress listener in Envoy (envoy/), which turns it into its own timeout:
# for a JSON answer the whole answer (DEADLINE_HEADER), for a stream the time to the response headers
# (HEADERS_DEADLINE_HEADER). Envoy's per-try timeout is one value for every attempt of a request.
DEADLINE_HEADER = "x-llm-deadline-ms"
HEADERS_DEADLINE_HEADER = "x-llm-headers-deadline-ms"
DEADLINE_PASSED_HEADER = "x-llm-attempt-deadline"   # on the egress listener's 504 when the deadline passed
EGRESS_HEADER = "x-llm-egress"   # on a provider response: the cluster whose egress listener it came through
# on the egress listener's own 502 when the provider reset or closed the connection before its headers
PROVIDER_RESET_HEADER = "x-llm-provider-reset"
# Envoy's per-try timeout is a backstop above the longest attempt deadline, so the attempt's own
# deadline (egress listener or upstream stage) always ends it first, with a clean retry.
BACKSTOP_SLACK_MS = 500
HEDGE_ENV = "LLM_GATEWAY_HEDGE_ENDPOINTS"
HEDGE_HOSTS = {"openai": "127.0.0.1:10101", "azure_openai": "127.0.0.1:10102", "anthropic": "127.0.0.1:10103",
               "gemini": "127.0.0.1:10104", "vllm": "127.0.0.1:10105"}


def hedge_hosts(value: str | None) -> dict[str, str]:
    """``cluster=host:port,...`` (from $LLM_GATEWAY_HEDGE_ENDPOINTS) as a dict; the defaults when unset."""
    if not value:
        return dict(HEDGE_HOSTS)
    pairs = (item.split("=", 1) for item in value.split(",") if "=" in item)
    return {cluster.strip(): address.strip() for cluster, address in pairs}


@dataclass
class Answer:
    """A complete response the gateway gives without asking a provider."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": "application/json"})

    @classmethod
    def error(cls, exc: GatewayError, path: str = "") -> "Answer":
        """The error in the shape of the API ``path`` belongs to (its front door's, else OpenAI's)."""
        return cls(exc.status, error_body(path, exc.status, exc.body()),
                   {"content-type": "application/json", **exc.headers})


def front_door_of(path: str):
    """The front-door module (extproc.apis) for a request path (query ignored), or None."""
    path = path.split("?", 1)[0]
    if path.startswith("/v1/messages/"):   # count_tokens, and unknown paths under it (their 404)
        path = "/v1/messages"
    return FRONT_DOORS.get(path)


# The attempts after which a provider's 400 "prompt over the context window" moves on to the next try
# (envoy/envoy.yaml, the egress listeners' llm_context_overflow filter marks it, the route retries).
OVERFLOW_RETRY_HEADER = "x-llm-overflow-retry"


def overflow_retries(models) -> str:
    """The attempt numbers (comma-separated, 1-based) whose context-length 400 is worth a retry: those
    with a later candidate of a larger ``context_window`` (an attempt of the same size in between is
    tried too: it may tokenize differently). "" when none. The gateway's token estimate chose every
    candidate as fitting; a provider that counts more tokens should not end a plan whose larger
    windows were never tried."""
    windows = [m.context_window for m in models]
    return ",".join(str(n) for n in range(1, len(windows)) if max(windows[n:]) > windows[n - 1])


def in_client_terms(exc: errors.GatewayError, exchange: "Exchange") -> errors.GatewayError:
    """``exc`` (about the internal chat request: a provider translator's or the planner's) naming the
    fields of the client's own API, through the ``FieldNames`` its front door made while parsing; as
    it is for chat (no front door: the internal fields are the client's)."""
    return exchange.field_names.renamed(exc) if exchange.field_names is not None else exc


def error_body(path: str, status: int, body: bytes) -> bytes:
    """An OpenAI-shaped error body in the shape of ``path``'s client API."""
    door = front_door_of(path)
    return door.reshape_error(status, body) if door is not None else body


@dataclass
class Rewrite:
    """Changes to a request on its way upstream."""

    set_headers: dict[str, str]
    remove_headers: list[str]
    body: bytes | None = None


@dataclass
class ResponseStart:
    """What to do with the provider's response headers, and how to treat its body."""

    set_headers: dict[str, str]
    remove_headers: list[str]
    body: str          # "pass": skip the body; "stream": see every chunk as it comes; "whole": buffer it


Translator = ChatTranslator | EmbeddingsTranslator


@dataclass
class Exchange:
    """The state of one client request, shared by both stages, keyed by ``key``."""

    key: str
    endpoint: str
    body: dict
    plan: Plan
    created: int
    response_id: str
    path: str = ""                         # the client's request path (its API: errors come in its shape)
    front: Any = None                      # the front door's module (extproc.apis), None for OpenAI chat
    client_body: dict | None = None        # the client's request as sent, for a front door's answer
    field_names: Any = None                # its front door's FieldNames (apis.base): errors name the client's fields
    front_headers: dict[str, str] = field(default_factory=dict)   # its API's headers (a pass-through sends them)
    first: tuple[Translator, UpstreamRequest] | None = None   # attempt 1, translated up front
    # Translations the planner made to check capability, by model id, each used by one attempt.
    translations: dict[str, tuple[Translator, UpstreamRequest]] = field(default_factory=dict)
    attempts: dict[int, tuple[Model, Translator]] = field(default_factory=dict)   # by attempt number
    answering: int | None = None           # the attempt whose response is coming back
    per_try_timeout_ms: int | None = None  # Envoy's, one value for every attempt (a backstop; see deadlines)
    deadlines: list[int] = field(default_factory=list)   # attempt N's own deadline (ms) at [N-1]
    trail: Any = None                      # the exchange's spans (telemetry.Trail), owned by the server
    reservation: Any = None                # its budget reservation (budgets.Reservation), owned by the server
    started: float = 0.0
    mode: str = "pass"
    buffer: bytearray = field(default_factory=bytearray)
    error_status: int | None = None
    deadline_passed: str | None = None     # the gateway's deadline that ended the request, in words (a 504)
    reset_before_headers: bool = False     # the answer is the egress listener's 502: the provider reset first
    caller: Caller | None = None           # who asked (extproc.keys)
    rate: Any = None                       # its rate limit admission (ratelimit.Admission), owned by the server
    limit_headers: dict[str, str] = field(default_factory=dict)   # x-ratelimit-* for the client
    forwardable: dict[str, str] = field(default_factory=dict)   # client headers a provider may be given
    retry_after_s: float | None = None     # learned from the answering provider's error body
    hedged: bool = False                   # attempts may run side by side (Envoy's hedge pool)
    hedge_hosts: list[str] = field(default_factory=list)   # the pool endpoint of attempt N at [N-1]
    # attempts whose stream closed while the upstream stage held their headers, before their deadline:
    # the provider reset, or the client left; Envoy's upstream log says which (server.attempt_ended)
    held_closed: set[int] = field(default_factory=set)
    # What accounting needs to bill an answer that never completed (endings.py):
    end_of_stream: bool = False            # the provider's last body chunk arrived
    last_byte: float | None = None         # clock time of the latest provider body chunk
    delivered: bytearray = field(default_factory=bytearray)   # OpenAI SSE sent to the client, not yet counted
    delivered_tokens: int = 0              # tokens of delivered text already counted (long streams)
    affinity_key: str | None = None        # its conversation (extproc.affinity), tenant-scoped

    @property
    def stream(self) -> bool:
        return self.endpoint == "chat" and self.body.get("stream") is True

    @property
    def cuts_first_token(self) -> bool:
        """Is this stream's attempt cut when its first content misses the attempt's deadline? Only
        latency-first work with a later tier to take over; other held streams are let go as they are
        (``server.HOLD_LIMIT_S``), their deadline bounding the response headers only."""
        return self.stream and not self.hedged and self.plan.prefer == "latency" and len(self.plan.models) > 1

    def deadline_ms(self, number: int) -> int | None:
        """Attempt ``number``'s own deadline: its tier's target x attempt_timeout_factor (capped by a JSON
        answer's overall deadline). For a JSON answer the whole answer, for a stream that
        ``cuts_first_token`` the first content, for other streams the response headers."""
        if not self.deadlines:
            return None
        return self.deadlines[min(number, len(self.deadlines)) - 1]

    @property
    def translator(self) -> Translator | None:
        return self.attempts[self.answering][1] if self.answering in self.attempts else None

    @property
    def answered_by(self) -> Model | None:
        return self.attempts[self.answering][0] if self.answering in self.attempts else None


class Gateway:
    def __init__(self, config: Config, credentials: Credentials | None = None,
                 clock: Callable[[], float] = time.time, health: HealthView = NO_HEALTH,
                 budgets: BudgetView = UNLIMITED, keys: KeyFile | None = None,
                 hedge_endpoints: dict[str, str] | None = None):
        self.credentials = credentials or Credentials()
        self.keys = keys or KeyFile(None)   # the gateway key file's entries (inline config keys count too)
        self.hedge_endpoints = dict(HEDGE_HOSTS if hedge_endpoints is None else hedge_endpoints)
        self.clock = clock
        self.health = health
        self.budgets = budgets
        self.config = config

    @property
    def config(self) -> Config:
        return self._config

    @config.setter
    def config(self, config: Config) -> None:
        """Swap the routing config (hot reload): one assignment, so a request sees the old or the new."""
        self._config, self._classifier = config, make_classifier(config)
        if getattr(self, "affinity", None) is None:
            self.affinity = affinity.AffinityTable(config.affinity_ttl_s)   # in-process (README: affinity)
        self.affinity.ttl_s = config.affinity_ttl_s

    # ---- router stage, request side -------------------------------------------------------------

    def authenticate(self, headers: dict[str, str]) -> Caller:
        """The caller the request's gateway key names; raises Unauthorized (401)."""
        return authenticate(self._config, headers, self.keys.entries)

    def request_headers(self, headers: dict[str, str], end_of_stream: bool) -> Answer | None:
        method, path = headers.get(":method", ""), headers.get(":path", "").split("?", 1)[0]
        try:
            caller = self.authenticate(headers)   # first: nothing is answered to a caller without a key
            if path == "/v1/models" or path.startswith("/v1/models/"):
                if method != "GET":
                    raise NotFound(f"Invalid URL ({method} {path})", code="unknown_url")
                return self._models(path, caller, headers)
            if path.startswith("/v1/responses/") and method in ("GET", "DELETE") and path.count("/") == 3:
                # The Responses front door keeps nothing (README, "Front doors"): every id is unknown.
                raise NotFound(f"Response with id '{path.rsplit('/', 1)[1]}' not found: this gateway stores no "
                               "responses (every answer says store: false)", code="not_found")
            if path not in ENDPOINTS or method != "POST":
                raise NotFound(f"Invalid URL ({method} {path})", code="unknown_url")
            ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if ctype != "application/json":
                raise UnsupportedMediaType(
                    f"Content-Type must be application/json, not '{ctype or '(none)'}'")
            content_encoding.codings(headers.get("content-encoding", ""))   # 415 before the body comes
            if end_of_stream:
                raise InvalidRequest("The request body is empty; send a JSON object.", code=validate.INVALID_JSON)
            length = headers.get("content-length", "")
            if length.isdigit() and int(length) > self.config.max_body_bytes:
                raise self._too_large()
        except GatewayError as exc:
            return Answer.error(exc, path)
        return None

    def decode(self, headers: dict[str, str], raw: bytes) -> bytes:
        """The request body as the client meant it: gzip and br inflated up to ``limits.max_body_bytes``
        (413 past it, 400 corrupt; extproc/content_encoding.py says why not Envoy's decompressor)."""
        if "content-encoding" not in headers:
            return raw
        return content_encoding.inflate(headers["content-encoding"], raw, self.config.max_body_bytes)

    def request_body(self, headers: dict[str, str], raw: bytes, model: str | None = None,
                     budgets: BudgetView | None = None, caller: Caller | None = None,
                     input_counts: list[int] | None = None, parsed: dict | None = None) -> Exchange:
        """Parse and plan; raises GatewayError for anything the client must fix.

        ``model`` replaces the requested model (a spent budget's free tier model); ``budgets``
        replaces the gateway's budget view for this plan; ``caller``: the request's, when the
        shell already authenticated it (else its key is checked here); ``input_counts``: an embeddings
        body's ``tokens.input_counts`` when the shell counted them, and ``parsed`` the validated body
        they were counted from (``input_counts`` below): ``raw`` is then not parsed again (a front
        door's: its ``parse`` triple). ``parsed`` is never edited."""
        if len(raw) > self.config.max_body_bytes:
            raise self._too_large()
        path = headers.get(":path", "").split("?", 1)[0]
        endpoint, front = ENDPOINTS[path], FRONT_DOORS.get(path)
        client_body = names = None
        if front is not None:   # a front door's request, checked in its API's terms, in the internal form
            # (the shell's parse of it, counted off the loop, when it has one: input_counts)
            body, client_body, names = parsed if parsed is not None else front.parse(raw)
        elif parsed is not None:   # the shell already validated it (a large body counted off the loop)
            body = parsed
        else:
            body = validate.request(endpoint, raw)   # the one OpenAI request validator: 400 naming the field
        if model is not None:
            body = {**body, "model": model}
        config, classifier = self._config, self._classifier   # one config for the whole decision
        caller = caller or authenticate(config, headers, self.keys.entries)
        now = self.clock()
        classification = classifier.classify(body) if classifier is not None and endpoint == "chat" else None
        # The id the router stage gave the request with its headers (server.py), else a fresh one.
        exchange = Exchange(key=headers.get(KEY_HEADER) or uuid.uuid4().hex, endpoint=endpoint, body=body, plan=None, created=int(now),
                            response_id=f"chatcmpl-{uuid.uuid4().hex[:24]}", started=now, caller=caller,
                            path=path, front=front, client_body=client_body, field_names=names,
                            front_headers={**{h: headers[h] for h in FRONT_DOOR_HEADERS if h in headers},
                                           **beta_query(headers.get(":path", ""))},
                            forwardable={h: headers[h] for h in FORWARDABLE_HEADERS if h in headers})

        def capability(model: Model) -> str | None:
            # Candidates are asked in attempt order. The first one able to serve is attempt 1: translate
            # it now and keep the translation. The rest are only tried on a retry, which translates for
            # itself: the planner's own check (on the request's capability view, cached) answers for them.
            if exchange.translations:
                return ASK_PLANNER
            try:   # unrenamed: the planner's errors and reasons are renamed once, as it raises them
                exchange.translations[model.id] = self._translated(exchange, model)
            except errors.UnsupportedFeature as exc:
                return exc.message
            return None

        pin = None
        if endpoint == "chat":
            conversation = affinity.conversation_key(body, headers, caller.tenant)
            if conversation is not None:
                exchange.affinity_key = conversation[0]
                pin = self.affinity.get(conversation[0], now) if conversation[2] else None
        try:
            asks = getattr(front, "asks_prompt_cache", None)
            plan = decide(config, body, endpoint, headers, self.health, budgets or self.budgets, now, classification,
                          caller, capability, pin, cache_asked=bool(asks and asks(client_body or {})),
                          input_counts=input_counts)
        except errors.GatewayError as exc:
            raise in_client_terms(exc, exchange) from None
        exchange.plan = plan
        if plan.candidates:
            # Each attempt is cut at its own tier's deadline: the target is the SLO (a model slower than
            # it is demoted); the cut comes at a multiple of it, so a model can be seen to be slow before
            # its attempts fail. Envoy takes one per-try timeout for all attempts of a request, so it is
            # only the backstop above the longest of them; the attempt's own deadline is enforced per
            # attempt (the egress listener, or the upstream stage for a held stream; README, "Deadlines").
            exchange.deadlines = [int(c.target_ms * config.attempt_timeout_factor) for c in plan.candidates]
            if plan.deadline_ms is not None and not exchange.stream:
                exchange.deadlines = [min(d, plan.deadline_ms) for d in exchange.deadlines]
            exchange.per_try_timeout_ms = max(exchange.deadlines[:len(plan.models)]) + BACKSTOP_SLACK_MS
        # Translate attempt 1 now (if the planner did not): a request the provider cannot take fails
        # before it is routed.
        exchange.first = (exchange.translations.pop(plan.models[0].id, None)
                          or self._translate(exchange, plan.models[0]))
        return exchange

    def route(self, exchange: Exchange) -> Rewrite:
        """The router stage's rewrite: the headers Envoy routes on, and attempt 1 already translated.

        Attempt 1 goes to x-llm-try-1's cluster, known now, so the router stage rewrites the request
        for it (path, key, body) and Envoy needs no upstream-stage call for it; the upstream stage
        runs only on retries, where the cluster Envoy picked is known only to Envoy."""
        tries = {h: exchange.plan.models[min(i, len(exchange.plan.models) - 1)].provider.cluster
                 for i, h in enumerate(TRY_HEADERS)}
        hosts = self._hedge_hosts(exchange)
        exchange.hedged, exchange.hedge_hosts = bool(hosts), hosts
        first = self.attempt(exchange, 1)
        # Envoy retries only as often as the plan has further candidates: a pinned request (one
        # candidate) gets the provider's 429 and its retry-after at once, never the same call again.
        set_headers = {**tries, KEY_HEADER: exchange.key, **first.set_headers,
                       CLIENT_API_HEADER: client_api(exchange.front),
                       "x-envoy-max-retries": str(len(exchange.plan.models) - 1)}
        overflow = overflow_retries(exchange.plan.models)
        if overflow:
            set_headers[OVERFLOW_RETRY_HEADER] = overflow
        if hosts:
            # Envoy's hedge pool: attempt N on the N-th host, the next one started when the running
            # attempt has no response headers by its tier's target (not the cut at a multiple of it).
            # Envoy keeps one counter for hedges and retries: every distinct candidate gets its attempt
            # (issue 12: with one, the hedge used the only retry and a healthy third tier was never tried).
            first_target = exchange.plan.candidates[0].target_ms
            exchange.per_try_timeout_ms = min(first_target, exchange.per_try_timeout_ms or first_target)
            set_headers.update({"x-llm-hedge": "1", "x-llm-hosts": ",".join(hosts),
                                "x-envoy-max-retries": str(len(hosts) - 1)})
        if exchange.per_try_timeout_ms:
            # Envoy's router reads these after the filters ran: the first tier's deadline bounds each
            # attempt (Envoy keeps one per-try timeout per request), and a JSON answer has an overall
            # deadline: the class's or workload's deadline_ms, else all its attempts in sequence. A stream
            # has none (the route's timeout is 0s): the per-try timeout stops at its response headers, and
            # Envoy's idle timeouts cut it only when the provider falls silent (README, "Deadlines").
            set_headers["x-envoy-upstream-rq-per-try-timeout-ms"] = str(exchange.per_try_timeout_ms)
            if exchange.stream:
                if not hosts:
                    # Every stream's headers wait for its first content (an upstream-stage stream on
                    # attempt 1, measured in the README): a provider that fails before content has
                    # sent the client nothing, so a later tier answers or the client gets a status,
                    # never a 200 with an empty body. Not hedged streams: their hedges start when an
                    # attempt has no headers by the target, and an attempt's 504 with a hedge pending
                    # crashed Envoy 1.40 (Design, "Hedging").
                    set_headers[FIRST_TOKEN_HEADER] = "hold"
            else:
                set_headers["x-envoy-upstream-rq-timeout-ms"] = str(self.deadline_ms(exchange))
        return Rewrite(set_headers=set_headers, remove_headers=first.remove_headers, body=first.body)

    def _hedge_hosts(self, exchange: Exchange) -> list[str]:
        """The hedge pool's endpoints for this plan, in attempt order, or [] when it is not hedged.

        Only the plan's leading run of distinct providers: the pool has one endpoint per provider,
        and attempt N must land on the N-th candidate's (the upstream stage translates for it)."""
        plan = exchange.plan
        if plan.hedge <= 0 or len(plan.models) < 2:
            return []
        hosts: list[str] = []
        for model in plan.models:
            host = self.hedge_endpoints.get(model.provider.cluster)
            if host is None or host in hosts:
                break
            hosts.append(host)
        return hosts if len(hosts) >= 2 else []

    def deadline_ms(self, exchange: Exchange) -> int:
        """A JSON answer's overall deadline (ms): the configured one, else its attempts' own deadlines in
        sequence.

        Hedged, attempt N (0-based) starts at the latest N x the first tier's target (a per-try timeout
        each, or sooner when an attempt fails), and no attempt is cut on its own (see ``attempt``): the
        request ends when the candidate that starts last would reach its own deadline."""
        if exchange.hedged:
            step = exchange.per_try_timeout_ms or 0
            planned = max(n * step + d for n, d in enumerate(exchange.deadlines[:len(exchange.hedge_hosts)]))
            planned += RETRY_SLACK_MS
        else:
            planned = sum(exchange.deadlines[:len(exchange.plan.models)]) + RETRY_SLACK_MS
        configured = exchange.plan.deadline_ms
        return planned if configured is None else min(configured, planned)

    # ---- upstream stage: retries ----------------------------------------------------------------

    def attempt(self, exchange: Exchange, number: int) -> Rewrite:
        """Rewrite attempt ``number`` (1-based) for the provider that serves it, from the original body."""
        model = exchange.plan.models[min(number, len(exchange.plan.models)) - 1]
        if number > 1:
            # An earlier attempt of this same request may have just been told to wait (Envoy's upstream
            # log reports it within its flush interval): never send a 429'd provider the request again.
            retry_in_s = self.health.model_health(model.id).retry_in_s
            if retry_in_s is not None:
                raise errors.RateLimited(
                    f"{model.provider.name} is rate limiting the gateway; retry after {math.ceil(retry_in_s)} s",
                    code="rate_limit_exceeded", headers={"retry-after": str(max(1, math.ceil(retry_in_s)))})
        if number == 1 and exchange.first is not None:
            translator, upstream = exchange.first
        else:
            translator, upstream = exchange.translations.pop(model.id, None) or self._translate(exchange, model)
        exchange.attempts[number] = (model, translator)
        provider = model.provider
        set_headers = {":path": upstream.path, "content-length": str(len(upstream.body)), **upstream.headers}
        # Never the client's Host: a self-hosted provider without a configured host gets its own name.
        set_headers[":authority"] = provider.host or provider.name
        # The provider's egress listener forwards only requests translated for it (envoy/).
        set_headers["x-llm-for"] = provider.cluster
        deadline = exchange.deadline_ms(number)
        if deadline is not None and not exchange.hedged:
            # Hedged attempts get no deadline of their own: Envoy 1.40 segfaulted when an attempt's
            # deadline 504 came back while a hedge was still pending (issue 12). The per-try timeout
            # starts the next candidate instead, and a JSON answer's overall deadline ends them all.
            set_headers[HEADERS_DEADLINE_HEADER if exchange.stream else DEADLINE_HEADER] = str(deadline)
        secret = self.credentials.key_for(provider)
        if secret is not None:
            name, value = credential_header(provider.api, secret.value)
            set_headers[name] = value
        # Client headers reach a provider only when its config lists them (forward_headers).
        for name in provider.forward_headers:
            if name in exchange.forwardable:
                set_headers[name] = exchange.forwardable[name]
        # A retry reuses the previous attempt's header map: drop what was another provider's.
        remove = [h for h in (*CREDENTIAL_HEADERS, *PROVIDER_HEADERS, *FORWARDABLE_HEADERS) if h not in set_headers]
        if number == 1:   # the body sent is the gateway's own, never compressed; retries reuse this map
            remove.append("content-encoding")
        return Rewrite(set_headers=set_headers, remove_headers=remove, body=upstream.body)

    # ---- router stage, response side -------------------------------------------------------------

    def response_headers(self, exchange: Exchange, headers: dict[str, str]) -> ResponseStart:
        status = int(headers.get(":status", "0") or 0)
        # How many attempts Envoy made: the route's x-llm-attempts (envoy.yaml: Envoy's own
        # x-envoy-attempt-count is off in responses, as it leaked on Envoy's own replies).
        attempts = headers.get("x-llm-attempts") or str(max(1, len(exchange.attempts)))
        set_headers: dict[str, str] = {"x-llm-attempts": attempts, **exchange.limit_headers}
        # The egress listener's mark on its own 504 (the attempt's deadline passed): read here, never sent on.
        remove = [DEADLINE_PASSED_HEADER, EGRESS_HEADER, PROVIDER_RESET_HEADER]
        if "x-envoy-upstream-service-time" not in headers:
            # No provider answered: Envoy's own reply (no upstream, timeout), already shaped by local_reply_config,
            # or the upstream stage's (a refused retry). Envoy's router marks every upstream response with
            # x-envoy-upstream-service-time, never its own.
            exchange.answering = None
            # A hedged stream (never held, no route timeout) whose candidates all stalled before their
            # headers is cut by the route's idle timeout: Envoy's "stream timeout", which reached an OpenAI
            # client in Anthropic's shape with no code (tryout 4 N2, when the local-reply mappers keyed on
            # :path, which the attempts' translations rewrite; they now key on x-llm-client-api). It is the
            # gateway's deadline too, in the same body.
            stalled_stream = (exchange.stream and exchange.hedged and "x-llm-reply" not in headers
                              and DEADLINE_PASSED_HEADER not in headers)
            if status == 504 and exchange.plan is not None and exchange.attempts and (
                    not exchange.stream or stalled_stream):
                # The router's overall deadline (x-envoy-upstream-rq-timeout-ms) passed: the gateway's
                # deadline, in the gateway's one body for it, with the plan's provenance.
                exchange.deadline_passed = (stalled_stream_words(self.clock() - exchange.started) if stalled_stream
                                            else deadline_words(exchange.plan.deadline_ms, self.deadline_ms(exchange),
                                                                exchange.hedged))
                exchange.mode, exchange.error_status = "whole", status
                set_headers.update(exchange.plan.headers())
                set_headers["content-type"] = "application/json"
                set_headers[client_retry.SHOULD_RETRY_HEADER] = "false"   # the plan is spent (client_retry)
                return ResponseStart(set_headers, [*remove, "content-length"], "whole")
            return ResponseStart(set_headers, remove, "pass")
        exchange.answering = answering_attempt(exchange, attempts, headers.get(EGRESS_HEADER))
        model = exchange.answered_by
        if model is None:
            return ResponseStart(set_headers, remove, "pass")
        set_headers["x-llm-provider"] = model.provider.name
        set_headers["x-llm-model"] = model.id
        set_headers.update(exchange.plan.headers())
        if exchange.answering and exchange.answering > 1:
            # x-llm-route is the decision, made before any attempt: it names the plan's first choice. Read
            # alone after a fallback or a hedge it would name a model that did not answer (tryout 5 P5).
            # (a failed last attempt is no answer: tryout 10 L1)
            set_headers["x-llm-route"] += (f"; {'answered by' if status < 400 else 'failed last on'} {model.id} "
                                           f"(attempt {exchange.answering}, {'hedged' if exchange.hedged else 'fallback'})")
        if status == 504 and DEADLINE_PASSED_HEADER in headers:
            # The attempt's own deadline, cut by its egress listener (or the held stage): not the provider's 504.
            exchange.deadline_passed = (f"The gateway's deadline for attempt {exchange.answering} passed: {model.id} "
                                        f"({model.provider.name}) had not answered within "
                                        f"{exchange.deadline_ms(exchange.answering or 1)} ms (its tier's target "
                                        f"latency x attempt_timeout_factor), and no other candidate was left.")
        if status == 502 and PROVIDER_RESET_HEADER in headers:
            # The provider reset (or closed) the connection before its headers, and no attempt was left:
            # the same 502 provider_cut as a reset after its headers (Envoy's local reply), not Envoy's
            # plain-text 503 read as the provider's own 503, which the SDKs retried twice (tryout 10 H1).
            exchange.reset_before_headers = True
            exchange.mode, exchange.error_status = "whole", status
            set_headers[client_retry.SHOULD_RETRY_HEADER] = "false"   # as Envoy's provider_cut (client_retry)
            set_headers["content-type"] = "application/json"
            return ResponseStart(set_headers, [*remove, "content-length"], "whole")
        if status < 400 and exchange.affinity_key is not None:
            # a fallback of lower quality than the plan's lead does not take the conversation (tryout 9 H4)
            self.affinity.remember(exchange.affinity_key, model.id, exchange.plan.route_class,
                                   exchange.plan.prompt_tokens, self.clock(), quality=model.quality,
                                   lead_quality=exchange.plan.models[0].quality)
        translator = exchange.translator
        if status >= 400:
            exchange.mode, exchange.error_status = "whole", status
            set_headers[":status"] = str(errors.upstream_status(status))
            set_headers["content-type"] = "application/json"
            if client_retry.spent(errors.upstream_status(status), int(attempts) if attempts.isdigit() else 1,
                                  deadline_passed=exchange.deadline_passed is not None,
                                  retry_after=retry_after.from_headers(headers, self.clock()) is not None):
                set_headers[client_retry.SHOULD_RETRY_HEADER] = "false"
            return ResponseStart(set_headers, [*remove, "content-length"], "whole")
        if translator is not None and translator.passthrough_response:
            # The provider speaks OpenAI already: the bytes go out as they come, and a copy is read for usage.
            exchange.mode = "observe"
            return ResponseStart(set_headers, remove, "stream")
        if exchange.stream:
            exchange.mode = "stream"
            set_headers["content-type"] = "text/event-stream; charset=utf-8"
            return ResponseStart(set_headers, ["content-length"], "stream")
        exchange.mode = "whole"
        set_headers["content-type"] = "application/json"
        return ResponseStart(set_headers, ["content-length"], "whole")

    def response_body(self, exchange: Exchange, chunk: bytes, end_of_stream: bool) -> bytes:
        """The bytes to send the client in place of ``chunk``."""
        exchange.last_byte = self.clock()
        exchange.end_of_stream = exchange.end_of_stream or end_of_stream
        out = self._response_body(exchange, chunk, end_of_stream)
        if exchange.stream and exchange.mode in ("observe", "stream") and out:
            # Accounting counts delivered text in the internal form, whatever the client's API.
            translator = exchange.translator
            keep_delivered(exchange, translator.last_internal if isinstance(translator, FrontDoorTranslator)
                           else out)
        return out

    def _response_body(self, exchange: Exchange, chunk: bytes, end_of_stream: bool) -> bytes:
        if exchange.deadline_passed is not None or exchange.reset_before_headers:
            if not end_of_stream:
                return b""
            if exchange.deadline_passed is not None:
                status, body = 504, errors.DeadlineExceeded(exchange.deadline_passed).body()
            else:
                status, body = 502, errors.UpstreamError(
                    f"The provider ({exchange.answered_by.provider.name if exchange.answered_by else 'upstream'}) "
                    "closed the connection before answering, and no other candidate was left.",
                    code="provider_cut").body()
            # Any attempt's translator speaks the client's API (a front door's error shape).
            shaper = next((t for _, t in exchange.attempts.values() if isinstance(t, FrontDoorTranslator)), None)
            return shaper.error_body(status, body) if shaper is not None else body
        translator = exchange.translator
        if exchange.mode == "pass" or translator is None:
            return chunk
        if exchange.mode == "observe":
            if exchange.stream:
                # As the provider sent them, but for an error event, which the translator normalizes.
                out = translator.stream_chunk(chunk)
                return out + translator.stream_flush() if end_of_stream else out
            if len(exchange.buffer) + len(chunk) <= OBSERVE_LIMIT:
                exchange.buffer += chunk
                if end_of_stream:
                    translator.response(bytes(exchange.buffer))
                    exchange.buffer.clear()
            return chunk
        if exchange.mode == "stream":
            out = translator.stream_chunk(chunk)
            return out + translator.stream_end() if end_of_stream else out
        exchange.buffer += chunk
        if not end_of_stream:
            return b""
        raw = bytes(exchange.buffer)
        exchange.buffer.clear()
        if exchange.error_status is not None:
            if exchange.error_status in retry_after.LIMITED and model_api(exchange) == "gemini":
                # Gemini says when to come back in the error body (google.rpc.RetryInfo), not in a header.
                exchange.retry_after_s = retry_after.from_gemini_body(raw)
            return translator.error(exchange.error_status, raw)[1]
        try:
            return translator.response(raw)
        except (ValueError, KeyError, TypeError) as exc:
            body = errors.UpstreamError(f"the provider's answer could not be read: {exc}").body()
            return translator.error_body(502, body) if isinstance(translator, FrontDoorTranslator) else body

    # ---- helpers ---------------------------------------------------------------------------------

    def _translate(self, exchange: Exchange, model: Model) -> tuple[Translator, UpstreamRequest]:
        """``model``'s translator and its upstream request, for any attempt (the planner's capability
        check for attempt 1, a retry's): its errors name the client's own fields (``in_client_terms``)."""
        try:
            return self._translated(exchange, model)
        except errors.GatewayError as exc:
            raise in_client_terms(exc, exchange) from None

    def _translated(self, exchange: Exchange, model: Model) -> tuple[Translator, UpstreamRequest]:
        target = model.target()
        translator: Translator
        if exchange.endpoint == "chat":
            translator = chat_translator(target, created=exchange.created, response_id=exchange.response_id)
            if exchange.front is not None:   # the provider's answer, re-shaped for the client's API
                prefix = "msg_" if exchange.front.NAME == "messages" else "resp_"
                translator = exchange.front.translator(translator, exchange.client_body or {}, {
                    "id": prefix + exchange.response_id.removeprefix("chatcmpl-"), "created": exchange.created,
                    "headers": exchange.front_headers})
        else:
            translator = embeddings_translator(target)
        return translator, translator.request(exchange.body)

    def input_counts(self, raw: bytes, endpoint: str = "embeddings",
                     path: str | None = None) -> tuple[Any, list[int] | None]:
        """(the validated request, its tokens counted with the tokenizer: an embeddings request's inputs,
        a chat request's prompt as ``[n]``): the counts when planning will need them
        (``policy.counts_needed``: an estimate near a limit), else None. The request goes on to
        ``request_body(parsed=...)``, so a large body is parsed and checked once (a 1 MB body costs
        milliseconds to parse): an OpenAI-API body as the validated dict, a front door's (``path``) as
        its ``parse`` triple (internal body, client body, field names). (None, None) for a body that is
        refused: the planner parses it again to say why, in the client's terms. Meant for a worker
        thread: 300k tokens (1.1 MB) take 0.04 s on an idle core, 0.2 s on a busy one."""
        front = FRONT_DOORS.get(path) if path is not None else None
        try:
            parsed = front.parse(raw) if front is not None else validate.request(endpoint, raw)
        except errors.GatewayError:
            return None, None
        body = parsed[0] if front is not None else parsed
        if not counts_needed(self._config, body, endpoint):
            return parsed, None
        return parsed, ([tokens.prompt_tokens(body)] if endpoint == "chat" else tokens.input_counts(body))

    def count_tokens(self, headers: dict[str, str], raw: bytes, caller: Caller | None = None) -> Answer:
        """``POST /v1/messages/count_tokens``, answered by the gateway (Anthropic's shape); ``caller``:
        the request's, when the shell already authenticated it."""
        if caller is None:
            self.authenticate(headers)
        if len(raw) > self.config.max_body_bytes:
            raise self._too_large()
        from .apis import messages
        config = self.config
        return Answer(200, messages.count_tokens(
            raw, lambda m: m in config.models or m in config.aliases or m in config.classes))

    def _models(self, path: str, caller: Caller, headers: dict[str, str]) -> Answer:
        """The models this caller may name: those the planner's rules for a pinned request let it use
        for some request (``policy.refusal``: allow/deny, quality floor, cost caps), and the routing
        aliases. ``x-llm-surface`` / ``x-llm-workload`` ask for another of the caller's choices."""
        config, now = self.config, self.clock()
        chosen = {h: headers[h] for h in (SURFACE_HEADER, WORKLOAD_HEADER) if h in headers}
        usable = [m for m in config.models.values() if refusal(config, m, chosen, caller, now) is None]
        entries = [{"id": m.id, "object": "model", "created": 0, "owned_by": m.provider.name} for m in usable]
        entries += [{"id": a, "object": "model", "created": 0, "owned_by": "llm-gateway"}
                    for a in sorted(config.aliases)]
        if path == "/v1/models":
            return Answer(200, json.dumps({"object": "list", "data": entries}).encode())
        wanted = path[len("/v1/models/"):]
        for entry in entries:
            if entry["id"] == wanted:
                return Answer(200, json.dumps(entry).encode())
        return Answer.error(errors.ModelNotFound(f"The model '{wanted}' does not exist", param="model"))

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(f"The request body is larger than the gateway's limit of "
                               f"{self.config.max_body_bytes} bytes.")


def answering_attempt(exchange: Exchange, attempt_count: str, egress: str | None) -> int | None:
    """The number (1-based) of the attempt whose response this is, or None when unknown.

    ``attempt_count`` is the number of attempts Envoy made (the route's x-llm-attempts), ``egress`` the x-llm-egress the
    provider's egress listener put on its response (its cluster name). Unhedged, attempts run one after
    another and the count names the one answering. Hedged, the count is the number of attempts started
    (issue 12: attempt 1 answering after the hedges started was translated with the last one's rules
    and billed to it), so the provider names it: a hedged plan gives each provider one attempt, attempt
    N the plan's N-th model (``Gateway._hedge_hosts``)."""
    if exchange.hedged and egress:
        clusters = [model.provider.cluster for model in exchange.plan.models[:len(exchange.hedge_hosts)]]
        return clusters.index(egress) + 1 if egress in clusters else None
    return int(attempt_count) if attempt_count.isdigit() else None


def deadline_words(configured_ms: int | None, deadline_ms: int, hedged: bool) -> str:
    """The message of a 504 for a request's overall deadline (README, "Deadlines"): which one passed."""
    if configured_ms is not None and deadline_ms == configured_ms:
        which = f"its deadline_ms of {deadline_ms} ms (routing config)"
    elif hedged:
        which = (f"its deadline of {deadline_ms} ms (the last hedged candidate's start plus its own "
                 f"tier deadline)")
    else:
        which = f"its deadline of {deadline_ms} ms (its candidates' own tier deadlines, end to end)"
    return f"The gateway's deadline for this request passed before a provider answered: {which}."


def stalled_stream_words(elapsed_s: float) -> str:
    """The message of a 504 for a hedged stream none of whose candidates sent response headers before
    the route's idle timeout cut it (``elapsed_s``: seconds since the request arrived)."""
    return (f"The gateway's deadline for this request passed before a provider answered: no hedged candidate "
            f"sent its response headers within the stream's idle timeout ({elapsed_s:.0f} s).")


DELIVERED_LIMIT = 1024 * 1024   # bytes of delivered stream kept uncounted; past it, counted and dropped


def keep_delivered(exchange: Exchange, out: bytes) -> None:
    """Keep what the client was sent, to bill it if the provider never reports usage. Counting
    waits until it is needed (most streams end with the provider's usage); a very long stream is
    counted in whole events as it passes the limit, so memory stays bounded."""
    exchange.delivered += out
    if len(exchange.delivered) > DELIVERED_LIMIT:
        from .endings import delivered_text
        from .tokens import count

        end = exchange.delivered.rfind(b"\n\n")
        if end < 0:
            return
        cut = end + 2
        exchange.delivered_tokens += count(delivered_text(bytes(exchange.delivered[:cut])))
        del exchange.delivered[:cut]


def model_api(exchange: Exchange) -> str | None:
    model = exchange.answered_by
    return model.provider.api if model is not None else None


def beta_query(path: str) -> dict[str, str]:
    """Claude Code calls ``/v1/messages?beta=true``: the one query parameter a pass-through to Anthropic
    keeps (as ``{":beta": "true"}`` beside the front door's headers); any other stays home."""
    query = path.partition("?")[2]
    for pair in query.split("&") if query else ():
        name, _, value = pair.partition("=")
        if name == "beta" and value in ("true", "false"):
            return {":beta": value}
    return {}


def make_classifier(config: Config):
    """The request classifier for this config, or None when the config does not route by class."""
    if not config.classes:
        return None
    from .classify import build_classifier   # rules, linear or combined, as classifier.kind says
    return build_classifier(config.classifier)
