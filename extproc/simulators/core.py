"""What all provider simulators share: fault injection, request recording and a
deterministic "model" that answers from the request alone.

Each provider module (``openai.py``, ``anthropic.py``, ``gemini.py``) turns its
own wire format into a :class:`Prompt`, asks :func:`think` for a :class:`Reply`,
and writes that reply back in its own wire format, JSON or SSE.

Controls (per simulator, over HTTP on the simulator's own port):

- ``PUT /_sim/faults`` with a JSON object of :class:`Faults` fields replaces the
  fault settings; ``DELETE /_sim/faults`` clears them; ``GET`` shows them.
- ``GET /_sim/requests`` returns the recorded requests (method, path, query,
  headers, body), newest last; ``DELETE /_sim/requests`` forgets them.
- ``DELETE /_sim/prompt-cache`` empties the provider's prompt cache (``PromptCache``):
  each simulator reports cache reads as its API documents them (see its module).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from aiohttp import web

from . import schema_values


REFUSALS = ("context_length", "content_filter")


@dataclass
class Faults:
    latency_ms: float = 0.0          # delay before the response starts
    ttft_ms: float = 0.0             # streams: extra delay before the first content event
    chunk_interval_ms: float = 0.0   # streams: delay between events
    status: int | None = None        # answer with this HTTP error status, in the provider's error shape
    retry_after: float | None = None  # with status 429/503: a retry-after header (seconds)
    reset: bool = False              # drop the connection without answering
    stall: bool = False              # accept the request and never answer
    disconnect_after: int | None = None  # streams: drop the connection after this many events
    error_event_after: int | None = None  # streams: after this many events, send the API's error event and end
    refusal: str | None = None       # answer 400 with the API's own refusal, in its words and shape:
                                     # "context_length" (every API: the prompt is over the window) or
                                     # "content_filter" (Azure's prompt filter; OpenAI's invalid_prompt)
    bad_answers: bool | list[str] = False   # answer without addressing the request (the shadow judge grades
                                            # it a loss): every model, or the listed upstream model ids only
    rate: float = 1.0                # fraction of requests the fault applies to
    count: int | None = None         # apply to this many more requests, then clear (None: until cleared)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Faults":
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        if data.get("refusal") not in (None, *REFUSALS):
            raise ValueError(f"refusal must be one of {list(REFUSALS)}")
        return cls(**data)


@dataclass
class Prompt:
    """A provider-neutral view of a generation request."""

    model: str
    turns: list[tuple[str, str]]          # (role, text): role is user / assistant / tool
    system: str = ""
    tools: list[tuple[str, dict]] = field(default_factory=list)  # (name, JSON schema of the arguments)
    tool_choice: str = "auto"             # auto / none / required / the name of one tool
    json_mode: bool = False
    schema: dict | None = None            # with json_mode: the JSON Schema the answer must satisfy
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    images: int = 0


@dataclass
class Reply:
    text: str = ""
    tool_calls: list[tuple[str, dict]] = field(default_factory=list)
    finish: str = "stop"                  # stop / length / tool_calls
    input_tokens: int = 0
    output_tokens: int = 0

    def words(self) -> list[str]:
        """The text cut into stream pieces (a word and its following space each)."""
        return re.findall(r"\S+\s*|\s+", self.text) or [""]


def count_tokens(text: str) -> int:
    """A stable, cheap token estimate (about 4 characters a token), never 0 for non-empty text."""
    return max(1, (len(text) + 3) // 4) if text else 0


def think(prompt: Prompt, bad: bool = False) -> Reply:
    """Answer deterministically, so tests can predict it from the request.

    ``bad`` (the ``bad_answers`` fault): a text answer that ignores the request. A request whose system
    prompt is the shadow judge's rubric (extproc/shadow.py) is graded by :func:`judge`."""
    input_tokens = count_tokens(prompt.system) + sum(count_tokens(t) for _, t in prompt.turns) + 85 * prompt.images
    last_role, last_text = prompt.turns[-1] if prompt.turns else ("user", "")
    if prompt.system.startswith(JUDGE_TAG) and last_role == "user":
        text = f"VERDICT: {judge(last_text)}"
        return Reply(text=text, input_tokens=input_tokens, output_tokens=count_tokens(text))
    if bad and not prompt.json_mode and not prompt.tools:
        text = "Sorry, I am not sure."
        return Reply(text=text, input_tokens=input_tokens, output_tokens=count_tokens(text))
    wants_tool = prompt.tools and prompt.tool_choice != "none" and last_role != "tool"
    if wants_tool and (prompt.tool_choice != "auto" or _mentions(last_text, prompt.tools)):
        name, schema = next(((n, s) for n, s in prompt.tools if n == prompt.tool_choice), prompt.tools[0])
        args = _arguments_for(schema, last_text)
        return Reply(tool_calls=[(name, args)], finish="tool_calls", input_tokens=input_tokens,
                     output_tokens=count_tokens(json.dumps(args)) + 5)
    if last_role == "tool":
        text = f"The tool returned: {last_text}"
    elif prompt.json_mode and isinstance(prompt.schema, dict):
        text = json.dumps(schema_values.value(prompt.schema, _hint(last_text)), ensure_ascii=False)
    elif prompt.json_mode:
        text = json.dumps({"model": prompt.model, "answer": _echo(last_text)})
    else:
        text = f"Hello from {prompt.model}. You said: {_echo(last_text)}"
    if prompt.images:
        text += f" (I see {prompt.images} image{'s' if prompt.images > 1 else ''}.)"
    finish = "stop"
    for stop in prompt.stop:
        if stop and stop in text:
            text = text[:text.index(stop)]
    if prompt.max_tokens is not None and count_tokens(text) > prompt.max_tokens:
        text, finish = cut(text, prompt.max_tokens), "length"
    return Reply(text=text, finish=finish, input_tokens=input_tokens, output_tokens=count_tokens(text))


def cut(text: str, max_tokens: int) -> str:
    """``text`` stopped at ``max_tokens`` as ``count_tokens`` counts them: whole words while they fit,
    else as many characters as fit. A real API never reports more output tokens than the cap (the
    words-for-tokens cut it replaces gave 9 to 11 tokens for max_tokens 5)."""
    limit = max_tokens * 4                     # count_tokens(s) <= n exactly when len(s) <= 4n
    if len(text) <= limit:
        return text
    head = text[:limit]
    if not text[limit].isspace() and re.search(r"\s", head):
        head = head[:re.search(r"\S*$", head).start()]   # back to the end of the last whole word
    return head.rstrip() or text[:limit]


JUDGE_TAG = "[llm-gateway shadow judge rubric v1]"   # extproc.shadow.RUBRIC_TAG (the simulators import nothing of it)
_JUDGE_PARTS = re.compile(r"## User request\n(?P<q>.*?)\n\n## Answer A\n(?P<a>.*?)\n\n## Answer B\n(?P<b>.*?)\n\n",
                          re.DOTALL)


def judge(text: str) -> str:
    """The deterministic judge: 'A', 'B' or 'TIE' for the shadow judge's request ``text``.

    The rule: an answer's merit is how many distinct words of four or more letters of the user request
    (case-folded) it contains; the answer with more merit wins, equal merit is a tie. So two ordinary
    simulator answers (both echo the request) tie, and a ``bad_answers`` answer loses to either."""
    found = _JUDGE_PARTS.search(text)
    if found is None:
        return "TIE"
    words = {w for w in re.findall(r"[a-z]{4,}", found["q"].lower())}

    def merit(answer: str) -> int:
        return len(words & set(re.findall(r"[a-z]{4,}", answer.lower())))

    a, b = merit(found["a"]), merit(found["b"])
    return "A" if a > b else "B" if b > a else "TIE"


def _echo(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 120 else text[:117] + "..."


def _mentions(text: str, tools: list[tuple[str, dict]]) -> bool:
    """With tool_choice auto, call a tool when the user's words touch its name."""
    lowered = text.lower()
    return any(part in lowered for name, _ in tools for part in name.lower().split("_") if len(part) > 3)


def _hint(text: str) -> str:
    return _capitalised_phrase(text) or _echo(text)[:40] or "example"


def _arguments_for(schema: dict, text: str) -> dict:
    """Arguments that satisfy the tool's JSON schema, drawn from the user's words where it takes strings."""
    args = schema_values.value(schema or {"type": "object", "properties": {}}, _hint(text))
    return args if isinstance(args, dict) else {}


def _capitalised_phrase(text: str) -> str:
    """The last run of capitalised words after the first word: 'weather in San Francisco?' gives 'San Francisco'."""
    runs = re.findall(r"(?<!^)\b([A-Z][a-z]+(?:\s+[A-Z][a-z]+)*)", text.strip())
    return runs[-1] if runs else ""


# ---------------------------------------------------------------------------------------------------------------
# Prompt caches: what the providers' caches would have read, deterministically.
#
# A prompt is a list of pieces (tag, text) in the API's order; the simulator's token count of a piece is
# count_tokens(text), so token i of a piece is its characters 4i..4i+3 (the last one may be shorter). A
# *prefix* is given as a position (piece index, characters of that piece); its length in tokens is the
# pieces before it plus count_tokens of the characters taken. Each provider module decides which
# prefixes it writes and looks up (OpenAI: every 128 tokens from 1,024; Anthropic: its cache_control
# breakpoints; Gemini: content boundaries), and with what minimum and TTL.


def prefix_tokens(pieces: list[tuple[str, str]], position: tuple[int, int]) -> int:
    """Tokens of the prefix ending at ``position`` (piece index, characters of that piece)."""
    index, chars = position
    return sum(count_tokens(text) for _, text in pieces[:index]) + count_tokens(pieces[index][1][:chars])


def positions_at(pieces: list[tuple[str, str]], lengths: list[int]) -> dict[int, tuple[int, int]]:
    """The prefix position (a token boundary) of each length in ``lengths`` (tokens, ascending) within
    the prompt; lengths past its end are left out. One pass over the pieces."""
    out: dict[int, tuple[int, int]] = {}
    start, k = 0, 0
    for i, (_, text) in enumerate(pieces):
        n = count_tokens(text)
        while k < len(lengths) and lengths[k] <= start + n:
            out[lengths[k]] = (i, min(len(text), 4 * (lengths[k] - start)))
            k += 1
        start += n
    return out


def prefix_digests(pieces: list[tuple[str, str]], positions: list[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
    """A digest of each prefix in ``positions``: equal digests mean equal pieces up to that point (tags
    and text). One pass over the text however many positions (a 1M-token prompt has 8,000 of OpenAI's)."""
    out: dict[tuple[int, int], bytes] = {}
    wanted = sorted(set(positions))
    h = hashlib.blake2b(digest_size=16)
    k = 0
    for i, (tag, text) in enumerate(pieces):
        # The tag (and a separator no text holds unescaped) marks where a piece starts, so "ab"+"c" and
        # "a"+"bc" differ; a piece's own length is not hashed, so a longer piece shares its shorter prefixes.
        h.update(b"\x1e" + tag.encode() + b"\x1f")
        done = 0
        while k < len(wanted) and wanted[k][0] == i:
            end = wanted[k][1]
            h.update(text[done:end].replace("\x1e", "\x1e\x1e").encode())
            done = end
            out[wanted[k]] = h.copy().digest()
            k += 1
        h.update(text[done:].replace("\x1e", "\x1e\x1e").encode())
    return out


class PromptCache:
    """Cached prompt prefixes by digest, each with its expiry, as one simulator process's provider keeps
    them: bounded (the least recently used go first past ``max_entries``), and timed by ``clock``
    (seconds; ``time.monotonic`` by default, a test passes its own)."""

    def __init__(self, max_entries: int = 20_000, clock=time.monotonic):
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[tuple[Any, bytes], float] = OrderedDict()

    def hit(self, namespace: Any, digest: bytes) -> bool:
        """Whether the prefix is cached and unexpired (a hit does not refresh it: ``store`` does)."""
        key = (namespace, digest)
        expiry = self._entries.get(key)
        if expiry is None:
            return False
        if expiry <= self.clock():
            del self._entries[key]
            return False
        return True

    def store(self, namespace: Any, digest: bytes, ttl_s: float) -> None:
        """Cache (or refresh) a prefix for ``ttl_s`` seconds from now; a longer TTL already set is kept."""
        key = (namespace, digest)
        expiry = max(self.clock() + ttl_s, self._entries.get(key, 0.0))
        self._entries[key] = expiry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class TooLarge(Exception):
    """The request body is over the simulator's limit (``Simulator.max_body``): answer 413/400 as the API does."""


# Recorded bodies above this size are kept as a note, not parsed: 200 recorded requests must not
# hold gigabytes because a test (or a hostile client) sent big ones.
_RECORD_LIMIT = 1024 * 1024


class Simulator:
    """One loopback provider: its routes plus the shared controls.

    ``max_body`` bounds what one request may make the process hold (bytes); each provider
    module sets it to its API's documented request size limit before the app is built.
    ``models`` is the set of model ids served, or None to serve any (self-hosted servers
    and Azure deployments are named by their operators).
    """

    def __init__(self, name: str, seed: int = 0, max_body: int = 32 * 1024 * 1024):
        self.name = name
        self.faults = Faults()
        self.requests: list[dict[str, Any]] = []
        self.max_body = max_body
        self._random = random.Random(seed)
        self.prompt_cache = PromptCache()     # the provider's prompt cache (each API module decides its rules)

    def app(self, routes: list[web.RouteDef]) -> web.Application:
        app = web.Application(client_max_size=self.max_body, middlewares=[_swallow_aborts])
        app.add_routes(routes)
        app.add_routes([
            web.get("/_sim/faults", self._get_faults),
            web.put("/_sim/faults", self._put_faults),
            web.delete("/_sim/faults", self._clear_faults),
            web.get("/_sim/requests", self._get_requests),
            web.delete("/_sim/requests", self._clear_requests),
            web.delete("/_sim/prompt-cache", self._clear_prompt_cache),
        ])
        return app

    async def record(self, request: web.Request) -> bytes:
        """Read and remember the request; raises ``TooLarge`` past ``max_body`` (before reading it all)."""
        entry = {"method": request.method, "path": request.path, "query": dict(request.query),
                 "headers": dict(request.headers), "body": None}
        self.requests.append(entry)
        del self.requests[:-200]  # keep the last 200
        if request.content_length is not None and request.content_length > self.max_body:
            entry["body"] = f"<{request.content_length} bytes: over the {self.max_body}-byte limit>"
            raise TooLarge()
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            entry["body"] = f"<over the {self.max_body}-byte limit>"
            raise TooLarge() from None
        if len(body) > _RECORD_LIMIT:
            entry["body"] = f"<{len(body)} bytes>"
            return body
        try:
            entry["body"] = json.loads(body) if body else None
        except ValueError:
            entry["body"] = body.decode("utf-8", errors="replace")
        return body

    def draw(self) -> Faults | None:
        """The faults that apply to this request, or None; counts down ``count``."""
        f = self.faults
        active = f.status is not None or f.reset or f.stall or f.disconnect_after is not None \
            or f.error_event_after is not None or f.refusal is not None \
            or f.latency_ms or f.ttft_ms or f.chunk_interval_ms or f.bad_answers
        if not active or self._random.random() >= f.rate:
            return None
        if f.count is not None:
            f.count -= 1
            if f.count <= 0:
                self.faults = Faults()
        return f

    async def faults_for(self, request: web.Request) -> Faults | None:
        """Draw this request's faults and apply those that act before any byte of the answer:
        latency, stall, reset. The caller applies the rest (status, stream faults)."""
        faults = self.draw()
        if faults is None:
            return None
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.stall:
            await asyncio.sleep(3600)
        if faults.reset:
            abort(request)
        return faults

    async def _get_faults(self, _: web.Request) -> web.Response:
        return web.json_response(asdict(self.faults))

    async def _put_faults(self, request: web.Request) -> web.Response:
        try:
            self.faults = Faults.from_json(await request.json())
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(asdict(self.faults))

    async def _clear_faults(self, _: web.Request) -> web.Response:
        self.faults = Faults()
        return web.json_response(asdict(self.faults))

    async def _get_requests(self, _: web.Request) -> web.Response:
        return web.json_response(self.requests)

    async def _clear_requests(self, _: web.Request) -> web.Response:
        self.requests.clear()
        return web.json_response([])

    async def _clear_prompt_cache(self, _: web.Request) -> web.Response:
        self.prompt_cache.clear()
        return web.json_response({"entries": 0})


class StreamWriter:
    """Writes SSE events with the stream faults applied: pacing, time to first token, disconnects."""

    def __init__(self, request: web.Request, response: web.StreamResponse, faults: Faults | None,
                 error: bytes | None = None):
        self.request = request
        self.response = response
        self.faults = faults or Faults()
        self.sent = 0
        self.error = error    # the API's mid-stream error event, when not the one its path implies

    async def send(self, payload: bytes, *, content: bool = True) -> None:
        f = self.faults
        if f.disconnect_after is not None and self.sent >= f.disconnect_after:
            abort(self.request)
        if f.error_event_after is not None and self.sent >= f.error_event_after:
            await self.response.write(self.error or error_event(self.request.path))
            await self.response.write_eof()
            raise Finished(self.response)
        if content and self.sent and f.chunk_interval_ms:
            await asyncio.sleep(f.chunk_interval_ms / 1000)
        await self.response.write(payload)
        self.sent += 1

    async def first_content_delay(self) -> None:
        if self.faults.ttft_ms:
            await asyncio.sleep(self.faults.ttft_ms / 1000)


class Aborted(Exception):
    pass


class Finished(Exception):
    """The stream was ended early, cleanly (an error event went out)."""

    def __init__(self, response: web.StreamResponse):
        self.response = response


def error_event(path: str) -> bytes:
    """The error event each API sends mid-stream (OpenAI's error object, Anthropic's ``event: error``,
    Google's error status object), by the request path."""
    if path.endswith("/messages"):
        return (b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", '
                b'"message": "Overloaded"}}\n\n')
    if ":streamGenerateContent" in path:
        return (b'data: {"error": {"code": 503, "message": "The model is overloaded. Please try again later.", '
                b'"status": "UNAVAILABLE"}}\n\n')
    return (b'data: {"error": {"message": "The server had an error while processing your request.", '
            b'"type": "server_error", "param": null, "code": null}}\n\n')


@web.middleware
async def _swallow_aborts(request: web.Request, handler):
    try:
        return await handler(request)
    except Aborted:
        return web.Response(status=499)  # never sent: the connection is already gone
    except ConnectionResetError:
        # The client went away mid-answer (aiohttp's "Cannot write to closing transport"): for a provider
        # that is normal (the gateway cut an attempt at its deadline, or a hedge lost), not an error to log
        # with a traceback. aiohttp drops the 499 quietly, as for Aborted.
        return web.Response(status=499)
    except Finished as done:
        return done.response


def abort(request: web.Request) -> None:
    """Drop the TCP connection at once (the client sees a reset or an early close)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
    raise Aborted()


def sse_headers(extra: dict[str, str] | None = None) -> dict[str, str]:
    return {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache", **(extra or {})}
