"""Gateway API keys and the caller they identify: who is asking, and what it may choose.

Tenants authenticate with keys the gateway issues (``extproc keys create``).
The gateway keeps only each key's sha256, in a key file that is usually a
mounted Kubernetes Secret and is re-read when it changes (``KeyFile``)::

    # one key per line: a YAML flow mapping, so `extproc keys create` prints a line to append
    keys:
      - {id: helpdesk-7f3a9c1e, tenant: helpdesk, sha256: 3365...6c, created: 2026-11-30}
      - {id: nightly-0b12cd34, tenant: nightly, sha256: 401b...11, surfaces: [drafts], requests_per_minute: 60}

Per entry: ``id`` (public: logs, metrics, rate limits, revocation; default the
first 12 hex digits of the hash), ``tenant`` (a tenant of the routing config),
``sha256`` (lowercase hex of the key's UTF-8 bytes), optional ``surfaces`` /
``workloads`` (narrow what the tenant may choose, for this key only),
``requests_per_minute`` / ``tokens_per_minute`` (this key's rate limit, over
the tenant's ``rate_limit.per_key``) and ``created`` (informational). Keys may
also be listed inline in the routing config (``tenants.NAME.api_keys_sha256``).

A key arrives as ``Authorization: Bearer KEY`` (OpenAI clients) or
``x-api-key: KEY`` (Anthropic-style clients). ``auth: required`` (the shipped
default) answers 401 ``invalid_api_key`` without one; ``auth: optional`` lets a
request without any key through as the anonymous caller (no tenant). A key
that is sent but unknown is a 401 in both modes: a caller who sent a key
expects to be billed to it, never silently to nobody.

No header names a tenant: ``x-llm-tenant`` is ignored. Another identity can
only be one Envoy verified itself (e.g. a JWT checked by ``jwt_authn`` with its
claim copied to a header Envoy sets after stripping the client's), not built yet.

Pure except ``KeyFile`` (reads a file when asked to ``check``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from .errors import GatewayError, Unauthorized

log = logging.getLogger(__name__)

KEYS_FILE_ENV = "LLM_GATEWAY_KEYS_FILE"
DEMO_KEY_ENV = "LLM_GATEWAY_DEMO_KEY"
KEY_PREFIX = "sk-llmgw-"
AUTH_MODES = ("required", "optional")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
_ENTRY_KEYS = ("id", "tenant", "sha256", "surfaces", "workloads", "requests_per_minute", "tokens_per_minute",
               "created")


class PermissionDenied(GatewayError):
    """403: a valid key asked for something its tenant may not choose (a surface, a workload).

    The body follows OpenAI's own 403 (type ``request_forbidden``); the official SDKs raise
    ``PermissionDeniedError`` for the status."""

    status = 403
    type = "request_forbidden"
    code = "permission_denied"


def digest(key: str) -> str:
    """The lowercase hex sha256 of a key: all the gateway ever stores."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_key() -> str:
    """A fresh key: 256 random bits, URL-safe, prefixed so secret scanners and people recognise it."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class KeyEntry:
    id: str
    tenant: str
    sha256: str
    surfaces: frozenset[str] | None = None     # None: whatever the tenant may choose
    workloads: frozenset[str] | None = None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None

    def line(self, created: str | None = None) -> str:
        """The entry as one line of the key file (a YAML flow mapping in the ``keys:`` list)."""
        parts = [f"id: {self.id}", f"tenant: {self.tenant}", f"sha256: {self.sha256}"]
        for name in ("surfaces", "workloads"):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{name}: [{', '.join(sorted(value))}]")
        for name in ("requests_per_minute", "tokens_per_minute"):
            if getattr(self, name) is not None:
                parts.append(f"{name}: {getattr(self, name)}")
        if created:
            parts.append(f"created: {created}")
        return "  - {" + ", ".join(parts) + "}"


@dataclass(frozen=True)
class Caller:
    """Who is asking, as the policy and the rate limiter see it.

    ``surface`` / ``workload`` are the caller's defaults; ``surfaces`` / ``workloads`` what it may
    choose with the ``x-llm-surface`` / ``x-llm-workload`` headers (None: anything, the anonymous
    caller of ``auth: optional`` only). ``requests_per_minute`` / ``tokens_per_minute`` are this
    key's own limits (the tenant's are in the config)."""

    tenant: str | None = None
    key_id: str | None = None
    surface: str | None = None
    workload: str | None = None
    surfaces: frozenset[str | None] | None = None
    workloads: frozenset[str] | None = None
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None


ANONYMOUS = Caller()


# ---- the key file ---------------------------------------------------------------------------------

class KeyFileError(ValueError):
    """An invalid key file; the message names the file and the entry."""


def parse_keys(text: str, source: str = "<keys>") -> dict[str, KeyEntry]:
    """The entries of a key file by sha256; raises ``KeyFileError`` naming the entry.

    Tenants, surfaces and workloads are checked against the routing config when a key is used
    (``caller``), since the two files change independently."""
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        # Only the position: the parser's own message quotes the file, which may hold a pasted raw key.
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise KeyFileError(f"{source}: not valid YAML{where}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict) or set(data) - {"keys"}:
        raise KeyFileError(f"{source}: must be a mapping with one key, 'keys' (a list of entries)")
    entries = data.get("keys") or []
    if not isinstance(entries, list):
        raise KeyFileError(f"{source}: keys: must be a list")
    out: dict[str, KeyEntry] = {}
    ids: set[str] = set()
    for i, spec in enumerate(entries):
        entry = _entry(spec, f"{source}: keys[{i}]")
        if entry.sha256 in out:
            raise KeyFileError(f"{source}: keys[{i}]: the same key is listed twice (id {out[entry.sha256].id!r})")
        if entry.id in ids:
            raise KeyFileError(f"{source}: keys[{i}].id: {entry.id!r} is used twice")
        ids.add(entry.id)
        out[entry.sha256] = entry
    return out


def _entry(spec: Any, where: str) -> KeyEntry:
    if not isinstance(spec, dict):
        raise KeyFileError(f"{where}: must be a mapping such as {{id: ..., tenant: ..., sha256: ...}}")
    unknown = sorted(set(spec) - set(_ENTRY_KEYS))
    if unknown:
        raise KeyFileError(f"{where}.{unknown[0]}: unknown key (allowed: {', '.join(_ENTRY_KEYS)})")
    sha = spec.get("sha256")
    if not isinstance(sha, str) or not _SHA256.match(sha):
        raise KeyFileError(f"{where}.sha256: must be the lowercase hex sha256 of the key (never the key itself)")
    tenant = spec.get("tenant")
    if not isinstance(tenant, str) or not tenant:
        raise KeyFileError(f"{where}.tenant: must be a tenant name")
    kid = spec.get("id", sha[:12])
    if not isinstance(kid, str) or not _ID.match(kid):
        raise KeyFileError(f"{where}.id: must be 1-64 letters, digits, '_', '.', ':' or '-'")
    lists = {}
    for name in ("surfaces", "workloads"):
        value = spec.get(name)
        if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) and v for v in value)):
            raise KeyFileError(f"{where}.{name}: must be a list of names")
        lists[name] = None if value is None else frozenset(value)
    limits = {}
    for name in ("requests_per_minute", "tokens_per_minute"):
        value = spec.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise KeyFileError(f"{where}.{name}: must be a whole number >= 1")
        limits[name] = value
    return KeyEntry(id=kid, tenant=tenant, sha256=sha, **lists, **limits)


def inline_entries(config: Any) -> dict[str, KeyEntry]:
    """Keys listed in the routing config itself (``tenants.NAME.api_keys_sha256``)."""
    return {sha: KeyEntry(id=f"{tenant}-{sha[:8]}", tenant=tenant, sha256=sha)
            for sha, tenant in config.tenant_keys.items()}


class KeyFile:
    """The key file, re-read when its content changes (``check``, polled by the server).

    Like the routing config (``reload.ConfigSource``) it compares the content's sha256, so a
    Kubernetes Secret's symlink swap is seen. An invalid or unreadable new content keeps the
    previous keys (logged once per content, counted in ``reload_failures``). A file that does
    not exist at start means no keys: every keyed request is refused, the safe way round."""

    def __init__(self, path: str | os.PathLike[str] | None):
        self.path = Path(path) if path else None
        self.entries: dict[str, KeyEntry] = {}
        self.content_digest: str | None = None
        self.reloads = 0
        self.reload_failures = 0
        self.last_error: str | None = None

    def check(self) -> bool:
        """Re-read the file; True when the keys changed."""
        if self.path is None:
            return False
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            if self.content_digest is None:   # never had a file: no keys, and say so once
                if self.last_error is None:
                    self.last_error = f"{self.path}: no such file; no gateway keys from it"
                    log.warning("%s", self.last_error)
                return False
            return self._failed(f"{self.path}: disappeared; keeping the keys read before", "missing")
        except OSError as exc:
            return self._failed(f"{self.path}: cannot read: {exc.strerror}", f"unreadable:{exc.errno}")
        content = hashlib.sha256(raw).hexdigest()
        if content == self.content_digest:
            return False
        try:
            entries = parse_keys(raw.decode("utf-8"), str(self.path))
        except (KeyFileError, UnicodeDecodeError) as exc:
            return self._failed(str(exc), content)
        self.entries, self.content_digest, self.last_error = entries, content, None
        self.reloads += 1
        log.info("gateway keys loaded from %s: %d key(s)", self.path, len(entries))
        return True

    def _failed(self, message: str, marker: str) -> bool:
        if marker != self.content_digest:
            self.content_digest = marker
            self.reload_failures += 1
            self.last_error = message
            log.error("gateway keys not reloaded, keeping the previous ones: %s", message)
        return False


# ---- from request headers to a caller -------------------------------------------------------------

def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key the client sent: ``Authorization: Bearer KEY``, else ``x-api-key: KEY``; None if neither.

    Raises ``Unauthorized`` for a malformed Authorization header or two different keys."""
    bearer = None
    auth = headers.get("authorization")
    if auth is not None:
        scheme, _, value = auth.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("The Authorization header must be 'Bearer YOUR_API_KEY'.")
        bearer = value.strip()
    other = headers.get("x-api-key")
    other = other.strip() if other is not None else None
    if bearer and other and bearer != other:
        raise Unauthorized("Two different API keys were sent (Authorization and x-api-key); send one.")
    return bearer or other or None


def authenticate(config: Any, headers: Mapping[str, str], entries: Mapping[str, KeyEntry]) -> Caller:
    """The caller a request's key identifies; raises ``Unauthorized`` (401) as ``config.auth`` says.

    ``entries``: the key file's entries by sha256 (inline config keys are added here)."""
    key = presented_key(headers)
    if key is None:
        if config.auth == "optional":
            return anonymous(config)
        raise Unauthorized("You didn't provide an API key. Send your gateway key as 'Authorization: Bearer "
                           "YOUR_API_KEY' (or 'x-api-key: YOUR_API_KEY').")
    sha = digest(key)
    entry = entries.get(sha)
    if entry is None and sha in config.tenant_keys:
        entry = KeyEntry(id=f"{config.tenant_keys[sha]}-{sha[:8]}", tenant=config.tenant_keys[sha], sha256=sha)
    if entry is None:
        # Never echo the key: it may be a real secret sent to the wrong place.
        raise Unauthorized("Incorrect API key provided. Ask the gateway's operator for a key.")
    try:
        return caller(config, entry)
    except ValueError as exc:
        log.error("gateway key %s cannot be used: %s", entry.id, exc)
        raise Unauthorized("This API key is not usable: its tenant is not configured on the gateway.") from None


def anonymous(config: Any) -> Caller:
    """The caller without a key (``auth: optional``): config defaults, may choose anything."""
    return Caller(surface=config.default_surface, workload=config.default_workload)


def caller(config: Any, entry: KeyEntry) -> Caller:
    """The caller a key entry names, bound to its tenant; ValueError if the routing config cannot serve it."""
    tenant = config.tenants.get(entry.tenant)
    if tenant is None:
        raise ValueError(f"unknown tenant {entry.tenant!r}")
    own_surface = tenant.surface or config.default_surface
    own_workload = tenant.workload or config.default_workload
    surfaces: frozenset[str | None] = frozenset({own_surface, *tenant.surfaces})
    workloads = frozenset({own_workload, *tenant.workloads})
    surface, workload = own_surface, own_workload
    if entry.surfaces is not None:
        if not entry.surfaces <= surfaces:
            raise ValueError(f"key {entry.id}: surfaces {sorted(entry.surfaces - surfaces)} are not the tenant's")
        surfaces = frozenset(entry.surfaces)
        surface = own_surface if own_surface in surfaces else sorted(entry.surfaces)[0]
    if entry.workloads is not None:
        if not entry.workloads <= workloads:
            raise ValueError(f"key {entry.id}: workloads {sorted(entry.workloads - workloads)} are not the tenant's")
        workloads = frozenset(entry.workloads)
        workload = own_workload if own_workload in workloads else sorted(entry.workloads)[0]
    per_key = tenant.rate_limit.per_key if tenant.rate_limit is not None else None
    return Caller(tenant=entry.tenant, key_id=entry.id, surface=surface, workload=workload, surfaces=surfaces,
                  workloads=workloads,
                  requests_per_minute=entry.requests_per_minute or (per_key.requests_per_minute if per_key else None),
                  tokens_per_minute=entry.tokens_per_minute or (per_key.tokens_per_minute if per_key else None))


def tenant_caller(config: Any, tenant: str) -> Caller:
    """The caller for a tenant named by a trusted operator (``extproc explain --tenant``)."""
    return caller(config, KeyEntry(id=f"{tenant}-explain", tenant=tenant, sha256="0" * 64))


def today() -> str:
    return _dt.date.today().isoformat()


def keys_path(config: Any, environ: Mapping[str, str] | None = None) -> Path | None:
    """The key file: ``$LLM_GATEWAY_KEYS_FILE`` (a manifest or ``make run`` sets it), else ``auth.keys_file``."""
    env = os.environ if environ is None else environ
    path = env.get(KEYS_FILE_ENV) or config.keys_file
    return Path(path) if path else None


async def watch_keys(owner: Any, interval: float = 1.0) -> None:
    """Re-read ``owner.keys`` (a KeyFile) every ``interval`` seconds until cancelled: a new or revoked
    key takes effect within about a second, without a restart."""
    import asyncio

    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(owner.keys.check)
        except Exception:   # never let the watcher die: keep the keys already read
            log.exception("gateway key file check failed")


def without(text: str, entry: KeyEntry) -> str:
    """The key file's text without ``entry``'s line (comments and other lines kept as they are).

    Entries are one line each (``KeyEntry.line``); an entry spread over several lines is refused."""
    out, removed = [], 0
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        if stripped.startswith("- ") and entry.sha256 in stripped:
            removed += 1
            continue
        out.append(line)
    if removed != 1:
        raise KeyFileError(f"key {entry.id}: expected its one-line entry (with its sha256) in the file")
    return "".join(out)
