"""The usage ledger and the shared budget counters, behind one interface.

Two backends:

- ``SQLiteLedger`` (the default, one replica): one file, WAL mode, survives
  restarts. All SQLite calls run on ONE dedicated worker thread (a
  single-thread executor owning the connection), so the event loop never waits
  on the disk; ``append`` only puts the record on an in-memory queue and a
  batching writer commits the queue every ``flush_interval`` seconds (default
  50 ms) in one transaction. ``synchronous=NORMAL``: in WAL mode a committed
  batch survives a process crash; a power cut can lose the last batches.
- ``RedisLedger`` (many replicas): the same batching writer; a batch is one
  MULTI/EXEC pipeline (HSET per record + ZADD into a time index), so readers
  never see half a batch. Quality feedback is a Lua script (update only if the
  record exists, atomically). Budget counters are INCRBY + EXPIREAT in
  MULTI/EXEC.

Budget counters are integers in nano-USD (1e-9 USD): INCRBY is exact and
atomic in both backends, no float drift across millions of additions
(int64 holds 9.2e9 USD).

The interface is async where it does I/O; ``append`` is synchronous and never
blocks (it only queues), so the request path can call it from anywhere. A
record is readable after the next flush (``await ledger.flush()`` forces one).
Pending records are capped (``max_pending``); past that the oldest are
dropped and counted in ``dropped`` (the store being down must not eat memory).

``open_ledger("sqlite:///var/lib/llm-gateway/ledger.db")`` (``sqlite://`` + the path), a plain path, or
``open_ledger("redis://redis:6379/0")``.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import logging
import socket
import sqlite3
import time as _time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .accounting import IN_FLIGHT, INTERRUPTED, UsageRecord

log = logging.getLogger(__name__)

NANO = 1_000_000_000   # counter units per USD
STALE_OPEN_S = 900     # an in_flight record this old belongs to a dead process (routes time out at 300 s)


def usd_to_nano(usd: float) -> int:
    return round(usd * NANO)


def nano_to_usd(nano: int) -> float:
    return nano / NANO


# Column order shared by both backends; ``class`` is a keyword in Python, ``request_class`` in the dataclass.
_COLUMNS = ("request_id", "time", "tenant", "surface", "class", "workload", "model", "provider",
            "input_tokens", "output_tokens", "cached_input_tokens", "cost_usd", "latency_ms", "ttft_ms",
            "attempts", "outcome", "status", "quality", "quality_source", "endpoint", "client_api",
            "cache_write_tokens", "cache_write_1h_tokens")
_INTS = frozenset({"input_tokens", "output_tokens", "cached_input_tokens", "attempts", "status", "cache_write_tokens",
                   "cache_write_1h_tokens"})
_FLOATS = frozenset({"time", "cost_usd", "latency_ms", "ttft_ms", "quality"})


class Ledger(abc.ABC):
    """Usage records plus the budget counters; see the module docstring for the backends."""

    def __init__(self, *, flush_interval: float = 0.05, max_batch: int = 1000, max_pending: int = 100_000):
        self.flush_interval = flush_interval
        self.max_batch = max_batch
        self.max_pending = max_pending
        self.dropped = 0
        self._pending: list[UsageRecord] = []
        self._flush_task: asyncio.Task | None = None
        self._flush_lock: asyncio.Lock | None = None
        self._closed = False

    # -- records -----------------------------------------------------------------------------------------------
    def append(self, record: UsageRecord) -> None:
        """Queue one record; it is written by the next batch (never blocks, no I/O here)."""
        if self._closed:
            raise RuntimeError("ledger is closed")
        if len(self._pending) >= self.max_pending:
            del self._pending[0]
            self.dropped += 1
        self._pending.append(record)
        if self._flush_task is None or self._flush_task.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                return          # no loop: written by the next explicit flush() / close()
            self._flush_task = loop.create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        delay = self.flush_interval
        while self._pending and not self._closed:
            await asyncio.sleep(delay)
            try:
                await self.flush()
                return
            except Exception:  # the store is down: keep the records, back off, try again
                log.exception("usage ledger: writing %d records failed; retrying", len(self._pending))
                delay = min(5.0, max(delay * 2, 0.1))

    async def flush(self) -> None:
        """Write every queued record now (raises if the store fails; the records stay queued)."""
        if self._flush_lock is None:
            self._flush_lock = asyncio.Lock()
        async with self._flush_lock:   # one writer at a time keeps batches in order
            while self._pending:
                batch = self._pending[:self.max_batch]
                await self._write(batch)
                del self._pending[:len(batch)]

    async def records(self, since: float | None = None, until: float | None = None, *,
                      tenant: str | None = None, surface: str | None = None) -> list[UsageRecord]:
        """Records with ``since <= time < until`` (unix seconds; None = open), oldest first."""
        await self.flush()
        out = await self._read(since, until)
        return [r for r in out if (tenant is None or r.tenant == tenant) and (surface is None or r.surface == surface)]

    async def spend(self, *, tenant: str | None = None, surface: str | None = None, since: float | None = None,
                    until: float | None = None) -> float:
        """USD spent by a tenant and/or surface in a window, summed from the records (the audit view;
        the budget counters are the fast view)."""
        return sum(r.cost_usd for r in await self.records(since, until, tenant=tenant, surface=surface))

    async def attach_quality(self, request_id: str, score: float, source: str | None, *,
                             tenant: str | None | object = ...) -> UsageRecord | None:
        """Attach a quality score (0..1) to a past request; the updated record, or None if the id is unknown
        (or, when ``tenant`` is given, belongs to another tenant: None is the anonymous caller's requests).

        A later score for the same request replaces the earlier one (last write wins, with its source).
        """
        await self.flush()     # the record may still be in this replica's queue
        return await self._attach_quality(request_id, float(score), source, tenant)

    # -- budget counters ---------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def add_counters(self, deltas: Mapping[str, int], expires_at: Mapping[str, float]) -> dict[str, int]:
        """Atomically add nano-USD ``deltas`` to counters (created at 0); return every counter's new value.

        ``expires_at`` (unix seconds per key) lets a counter of a past window disappear.
        """

    @abc.abstractmethod
    async def get_counters(self, keys: Iterable[str]) -> dict[str, int]:
        """Current values (0 for a counter that does not exist)."""

    single_owner = False   # True when one process owns the store (SQLite): its counters can be rebuilt

    async def mark_interrupted(self, before: float) -> int:
        """Records a dead process left ``in_flight`` (from before ``before``, unix s) become
        ``interrupted``; how many. SQLite: all of them (one process owns the file). Redis: this
        instance's, and any replica's older than ``STALE_OPEN_S``."""
        return 0

    # -- lifecycle ---------------------------------------------------------------------------------------------
    async def close(self) -> None:
        """Write what is queued, then release the store."""
        if self._closed:
            return
        try:
            await self.flush()
        finally:
            self._closed = True
            if self._flush_task is not None and not self._flush_task.done():
                self._flush_task.cancel()
            await self._close()

    # -- backend hooks -----------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def _write(self, batch: list[UsageRecord]) -> None: ...

    @abc.abstractmethod
    async def _read(self, since: float | None, until: float | None) -> list[UsageRecord]: ...

    @abc.abstractmethod
    async def _attach_quality(self, request_id: str, score: float, source: str | None,
                              tenant: str | None | object = ...) -> UsageRecord | None: ...

    @abc.abstractmethod
    async def _close(self) -> None: ...


# The dataclass attribute of each column, in _COLUMNS order (plain getattr: asdict() deep-copies and is slow).
_ATTRS = tuple("request_class" if c == "class" else c for c in _COLUMNS)


def _row(record: UsageRecord) -> tuple:
    return tuple(getattr(record, a) for a in _ATTRS)


def _from_row(row: Iterable[Any]) -> UsageRecord:
    return UsageRecord(**dict(zip(_ATTRS, row)))


# ---------------------------------------------------------------------------------------------------------------
# SQLite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    request_id TEXT PRIMARY KEY,
    time REAL NOT NULL,
    tenant TEXT, surface TEXT, class TEXT, workload TEXT,
    model TEXT NOT NULL, provider TEXT NOT NULL,
    input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0,
    cached_input_tokens INTEGER NOT NULL DEFAULT 0,
    cost_usd REAL NOT NULL DEFAULT 0,
    latency_ms REAL, ttft_ms REAL,
    attempts INTEGER NOT NULL DEFAULT 1,
    outcome TEXT NOT NULL, status INTEGER NOT NULL,
    quality REAL, quality_source TEXT,
    endpoint TEXT NOT NULL DEFAULT 'chat',
    client_api TEXT,
    cache_write_tokens INTEGER NOT NULL DEFAULT 0,
    cache_write_1h_tokens INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS usage_time ON usage(time);
CREATE TABLE IF NOT EXISTS budget_counters (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL,
    expires_at REAL NOT NULL
);
"""

# Re-appending a request id replaces the record but keeps feedback already attached to it.
_UPSERT = (f"INSERT INTO usage ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) "
           "ON CONFLICT(request_id) DO UPDATE SET "
           + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c not in ("request_id", "quality", "quality_source")))


class SQLiteLedger(Ledger):
    """The embedded default: one SQLite file; all its calls run on one worker thread."""

    def __init__(self, path: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.path = path
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger-sqlite")
        self._conn: sqlite3.Connection | None = None
        self._executor.submit(self._open).result()   # fail at startup, not at the first request

    def _open(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.executescript(_SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(usage)")}
        if "endpoint" not in columns:   # a ledger written before records named their endpoint
            conn.execute("ALTER TABLE usage ADD COLUMN endpoint TEXT NOT NULL DEFAULT 'chat'")
        if "client_api" not in columns:   # ... or the client's API: NULL, shown by endpoint
            conn.execute("ALTER TABLE usage ADD COLUMN client_api TEXT")
        for name in ("cache_write_tokens", "cache_write_1h_tokens"):   # ... or its cache writes: none
            if name not in columns:
                conn.execute(f"ALTER TABLE usage ADD COLUMN {name} INTEGER NOT NULL DEFAULT 0")
        self._conn = conn

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _transaction(self, fn: Any) -> Any:
        conn = self._conn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")   # take the write lock up front: other processes on the file wait, not fail
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    async def _write(self, batch: list[UsageRecord]) -> None:
        rows = [_row(r) for r in batch]
        await self._call(self._transaction, lambda c: c.executemany(_UPSERT, rows))

    async def _read(self, since: float | None, until: float | None) -> list[UsageRecord]:
        def read() -> list[UsageRecord]:
            assert self._conn is not None
            cur = self._conn.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM usage WHERE time >= ? AND time < ? ORDER BY time, request_id",
                (-1e18 if since is None else since, 1e18 if until is None else until))
            return [_from_row(row) for row in cur]
        return await self._call(read)

    async def _attach_quality(self, request_id: str, score: float, source: str | None,
                              tenant: str | None | object = ...) -> UsageRecord | None:
        def attach(conn: sqlite3.Connection) -> UsageRecord | None:
            owner = "" if tenant is ... else " AND tenant IS ?"
            args = (score, source, request_id) + (() if tenant is ... else (tenant,))
            cur = conn.execute(f"UPDATE usage SET quality = ?, quality_source = ? WHERE request_id = ?{owner} "
                               f"RETURNING {', '.join(_COLUMNS)}", args)
            row = cur.fetchone()
            return _from_row(row) if row else None
        return await self._call(self._transaction, attach)

    async def add_counters(self, deltas: Mapping[str, int], expires_at: Mapping[str, float]) -> dict[str, int]:
        items = [(k, int(v), float(expires_at.get(k, 0.0))) for k, v in deltas.items()]

        def add(conn: sqlite3.Connection) -> dict[str, int]:
            out: dict[str, int] = {}
            for key, delta, expires in items:
                cur = conn.execute(
                    "INSERT INTO budget_counters (key, value, expires_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = value + excluded.value, "
                    "expires_at = max(expires_at, excluded.expires_at) RETURNING value", (key, delta, expires))
                out[key] = int(cur.fetchone()[0])
            # Counters of windows long past are dead weight: drop them while we hold the lock anyway.
            conn.execute("DELETE FROM budget_counters WHERE expires_at > 0 AND expires_at < ?", (_time.time(),))
            return out
        return await self._call(self._transaction, add)

    async def get_counters(self, keys: Iterable[str]) -> dict[str, int]:
        keys = list(keys)

        def get() -> dict[str, int]:
            assert self._conn is not None
            out = dict.fromkeys(keys, 0)
            for i in range(0, len(keys), 500):
                part = keys[i:i + 500]
                cur = self._conn.execute(
                    f"SELECT key, value FROM budget_counters WHERE key IN ({', '.join('?' * len(part))})", part)
                out.update({k: int(v) for k, v in cur})
            return out
        return await self._call(get)

    single_owner = True

    async def spend(self, *, tenant: str | None = None, surface: str | None = None, since: float | None = None,
                    until: float | None = None) -> float:
        await self.flush()
        where, args = ["time >= ?", "time < ?"], [-1e18 if since is None else since, 1e18 if until is None else until]
        for column, value in (("tenant", tenant), ("surface", surface)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)

        def total() -> float:
            assert self._conn is not None
            row = self._conn.execute(f"SELECT COALESCE(SUM(cost_usd), 0) FROM usage WHERE {' AND '.join(where)}",
                                     args).fetchone()
            return float(row[0])
        return await self._call(total)

    async def mark_interrupted(self, before: float) -> int:
        def mark(conn: sqlite3.Connection) -> int:
            return conn.execute("UPDATE usage SET outcome = ?, status = 502 WHERE outcome = ? AND time < ?",
                                (INTERRUPTED, IN_FLIGHT, before)).rowcount
        return await self._call(self._transaction, mark)

    async def _close(self) -> None:
        def close() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        try:
            await self._call(close)
        finally:
            self._executor.shutdown(wait=True)


# ---------------------------------------------------------------------------------------------------------------
# Redis

# Update a record's quality only if the record exists (and, with ARGV[3] = "1", belongs to the tenant
# ARGV[4]; "" is no tenant); return it (flat field/value list) or nil.
_ATTACH_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 and (ARGV[3] ~= '1' or (redis.call('HGET', KEYS[1], 'tenant') or '') == ARGV[4]) then
  redis.call('HSET', KEYS[1], 'quality', ARGV[1], 'quality_source', ARGV[2])
  return redis.call('HGETALL', KEYS[1])
end
return false
"""


class RedisLedger(Ledger):
    """Many replicas: records as hashes ``{prefix}req:{id}`` indexed by the sorted set ``{prefix}usage``
    (score = time), budget counters as ``{prefix}budget:{key}`` integers. Records expire after
    ``retention_days`` (default 400: a year plus the month a report may still look back on)."""

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, key_prefix: str = "llmgw:",
                 retention_days: float = 400, client: Any = None, instance: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        import redis.asyncio as aioredis   # imported here so the SQLite default needs no redis package

        self.url = url
        self.prefix = key_prefix
        self.retention = retention_days * 86400
        # This process's open (in_flight) requests, by host name: a restarted container (same pod,
        # same name) closes its own at start; another replica's are left to the stale sweep.
        self.instance = instance or socket.gethostname()
        self._redis = client if client is not None else aioredis.Redis.from_url(url)
        self._attach = self._redis.register_script(_ATTACH_LUA)

    @property
    def _open(self) -> str:
        return f"{self.prefix}open:{self.instance}"

    async def mark_interrupted(self, before: float) -> int:
        """This instance's records still ``in_flight`` (a restart after a crash), and anyone's older than
        ``STALE_OPEN_S`` (their replica is gone: no request lives that long), become ``interrupted``."""
        ids = {i.decode() if isinstance(i, bytes) else i for i in await self._redis.smembers(self._open)}
        stale = await self._redis.zrangebyscore(self._index, before - self.retention, before - STALE_OPEN_S)
        marked = 0
        for rid in ids | {i.decode() if isinstance(i, bytes) else i for i in stale}:
            key = self._rkey(rid)
            if await self._redis.hget(key, "outcome") in (IN_FLIGHT.encode(), IN_FLIGHT):
                await self._redis.hset(key, mapping={"outcome": INTERRUPTED, "status": "502"})
                marked += 1
        await self._redis.delete(self._open)
        return marked

    def _rkey(self, request_id: str) -> str:
        return f"{self.prefix}req:{request_id}"

    @property
    def _index(self) -> str:
        return f"{self.prefix}usage"

    def _ckey(self, key: str) -> str:
        return f"{self.prefix}budget:{key}"

    async def _write(self, batch: list[UsageRecord]) -> None:
        now = _time.time()
        async with self._redis.pipeline(transaction=True) as pipe:   # MULTI ... EXEC: all of the batch or none
            for r in batch:
                d = r.to_dict()
                if d["quality"] is None:  # never overwrite feedback already attached; a record born
                    d.pop("quality")      # with its score (a shadow verdict, ``<id>/shadow``) keeps it
                    d.pop("quality_source")
                mapping = {k: ("" if v is None else str(v)) for k, v in d.items()}
                key = self._rkey(r.request_id)
                pipe.hset(key, mapping=mapping)
                pipe.expireat(key, int(r.time + self.retention) + 1)
                pipe.zadd(self._index, {r.request_id: r.time})
                if r.outcome == IN_FLIGHT:
                    pipe.sadd(self._open, r.request_id)
                else:
                    pipe.srem(self._open, r.request_id)
            pipe.zremrangebyscore(self._index, "-inf", f"({now - self.retention}")
            await pipe.execute()

    async def _read(self, since: float | None, until: float | None) -> list[UsageRecord]:
        ids = await self._redis.zrangebyscore(self._index, "-inf" if since is None else since,
                                              "+inf" if until is None else f"({until}")
        out: list[UsageRecord] = []
        for i in range(0, len(ids), 1000):
            async with self._redis.pipeline(transaction=False) as pipe:
                for rid in ids[i:i + 1000]:
                    pipe.hgetall(self._rkey(rid.decode() if isinstance(rid, bytes) else rid))
                for h in await pipe.execute():
                    if h:
                        out.append(_decode_hash(h))
        out.sort(key=lambda r: (r.time, r.request_id))
        return out

    async def _attach_quality(self, request_id: str, score: float, source: str | None,
                              tenant: str | None | object = ...) -> UsageRecord | None:
        owner = ["0", ""] if tenant is ... else ["1", tenant or ""]
        flat = await self._attach(keys=[self._rkey(request_id)], args=[repr(score), source or "", *owner])
        if not flat:
            return None
        return _decode_hash(dict(zip(flat[0::2], flat[1::2])))

    async def add_counters(self, deltas: Mapping[str, int], expires_at: Mapping[str, float]) -> dict[str, int]:
        keys = list(deltas)
        async with self._redis.pipeline(transaction=True) as pipe:
            for k in keys:
                pipe.incrby(self._ckey(k), int(deltas[k]))
                if expires_at.get(k):
                    pipe.expireat(self._ckey(k), int(expires_at[k]) + 1)
            results = await pipe.execute()
        values = [v for v in results if not isinstance(v, bool)]   # INCRBY answers ints, EXPIREAT booleans
        return {k: int(v) for k, v in zip(keys, values)}

    async def get_counters(self, keys: Iterable[str]) -> dict[str, int]:
        keys = list(keys)
        if not keys:
            return {}
        values = await self._redis.mget([self._ckey(k) for k in keys])
        return {k: int(v) if v is not None else 0 for k, v in zip(keys, values)}

    async def _close(self) -> None:
        await self._redis.aclose()


def _decode_hash(h: Mapping[Any, Any]) -> UsageRecord:
    d: dict[str, Any] = {}
    for k, v in h.items():
        k = k.decode() if isinstance(k, bytes) else k
        v = v.decode() if isinstance(v, bytes) else v
        if k not in _COLUMNS:
            continue
        if v == "" or v == "None":
            d[k] = None
        elif k in _INTS:
            d[k] = int(v)
        elif k in _FLOATS:
            d[k] = float(v)
        else:
            d[k] = v
    return UsageRecord.from_dict(d)


# ---------------------------------------------------------------------------------------------------------------
# Settings

@dataclass(frozen=True)
class LedgerSettings:
    """The ``ledger:`` config section::

        ledger:
          url: sqlite:///var/lib/llm-gateway/ledger.db   # or a path, or redis://host:6379/0 (rediss:// for TLS)
          key_prefix: "llmgw:"        # Redis only
          retention_days: 400         # Redis only (SQLite keeps everything)
          flush_interval_ms: 50       # how long a record may wait in the batch
    """

    url: str = "sqlite://ledger.db"
    key_prefix: str = "llmgw:"
    retention_days: float = 400
    flush_interval_ms: float = 50

    @classmethod
    def from_config(cls, mapping: Mapping[str, Any] | None) -> LedgerSettings:
        """Raises ``ValueError("key: problem")``."""
        if mapping is None:
            return cls()
        if not isinstance(mapping, Mapping):
            raise ValueError(f"ledger: must be a mapping, not {type(mapping).__name__}")
        unknown = set(mapping) - {"url", "key_prefix", "retention_days", "flush_interval_ms"}
        if unknown:
            raise ValueError(f"ledger.{sorted(unknown)[0]}: unknown key (known: url, key_prefix, retention_days, "
                             "flush_interval_ms)")
        url = mapping.get("url", cls.url)
        if not isinstance(url, str) or not url:
            raise ValueError("ledger.url: must be a sqlite:/// path, a file path or a redis:// URL")
        prefix = mapping.get("key_prefix", cls.key_prefix)
        if not isinstance(prefix, str):
            raise ValueError("ledger.key_prefix: must be a string")
        for key in ("retention_days", "flush_interval_ms"):
            v = mapping.get(key, getattr(cls, key))
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                raise ValueError(f"ledger.{key}: must be a positive number, not {v!r}")
        return cls(url=url, key_prefix=prefix, retention_days=float(mapping.get("retention_days", cls.retention_days)),
                   flush_interval_ms=float(mapping.get("flush_interval_ms", cls.flush_interval_ms)))


def open_ledger(url: str | LedgerSettings) -> Ledger:
    """A ledger from a URL (``redis://``, ``rediss://``, ``unix://``, ``sqlite:///PATH``) or a plain file path."""
    s = url if isinstance(url, LedgerSettings) else LedgerSettings(url=url)
    flush = s.flush_interval_ms / 1000
    if s.url.startswith(("redis://", "rediss://", "unix://")):
        return RedisLedger(s.url, key_prefix=s.key_prefix, retention_days=s.retention_days, flush_interval=flush)
    # sqlite:// + the path: sqlite:///var/lib/x.db is absolute, sqlite://ledger.db relative to the cwd.
    path = s.url[len("sqlite://"):] if s.url.startswith("sqlite://") else s.url
    return SQLiteLedger(path, flush_interval=flush)
