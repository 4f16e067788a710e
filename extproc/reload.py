"""Hot reload of the routing config.

A Kubernetes ConfigMap volume updates by writing a new timestamped directory
and swapping the ``..data`` symlink to it; the file's own mtime may not move
and editors may rewrite a file with the same mtime. So the watcher compares the
content's sha256, polled every second: a few hundred bytes read per second, no
inotify dependency, and it follows the symlink like any read.

A new config is applied only after it parsed and validated completely
(``config.load``), as one object: the gateway swaps its reference, requests in
flight keep the plan they already made. An invalid file leaves the old config
in place, logs the error and counts it in ``reload_failures``; the same bad
content is not reported again until it changes.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import logging
import os
from pathlib import Path
from typing import Any, Callable

from . import config as routing_config

log = logging.getLogger(__name__)


class ConfigSource:
    """The config file, checked on demand: ``check()`` returns a new valid Config when the content changed."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self.config: routing_config.Config | None = None
        self.digest: str | None = None        # of the content last looked at, valid or not
        self.reloads = 0
        self.reload_failures = 0
        self.last_error: str | None = None

    def load(self) -> routing_config.Config:
        """The initial load (raises ConfigError): what the server starts with."""
        try:
            raw = self._read()
        except OSError as exc:
            raise routing_config.ConfigError(f"{self.path}: cannot read: {exc.strerror}") from None
        cfg = _parse(raw, self.path)
        self.config, self.digest = cfg, hashlib.sha256(raw).hexdigest()
        return cfg

    def prime(self) -> None:
        """Remember the current content without loading it (the server already did)."""
        try:
            self.digest = hashlib.sha256(self._read()).hexdigest()
        except OSError:
            self.digest = None

    def check(self) -> routing_config.Config | None:
        try:
            raw = self._read()
        except OSError as exc:
            return self._failed(f"cannot read {self.path}: {exc.strerror}", digest=f"unreadable:{exc.errno}")
        digest = hashlib.sha256(raw).hexdigest()
        if digest == self.digest:
            return None
        try:
            cfg = _parse(raw, self.path)
        except routing_config.ConfigError as exc:
            return self._failed(str(exc), digest)
        self.config, self.digest, self.last_error = cfg, digest, None
        self.reloads += 1
        log.info("routing config reloaded from %s (sha256 %s)", self.path, digest[:12])
        return cfg

    def _failed(self, message: str, digest: str) -> None:
        if digest != self.digest:
            self.digest = digest
            self.reload_failures += 1
            self.last_error = message
            log.error("routing config not reloaded, keeping the previous one: %s", message)
        return None

    def _read(self) -> bytes:
        return self.path.read_bytes()


def _parse(raw: bytes, path: Path) -> routing_config.Config:
    # Parse the very bytes that were hashed, so the digest always describes the applied config.
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise routing_config.ConfigError(f"{path}: not UTF-8 (byte {exc.start})") from None
    return routing_config.loads(text, str(path))


async def watch(path: str | os.PathLike[str], apply: Callable[[routing_config.Config], Any], *,
                interval: float = 1.0, on_error: Callable[[str], Any] | None = None,
                source: ConfigSource | None = None) -> None:
    """Poll ``path`` every ``interval`` seconds and ``apply`` each new valid config (sync or async).

    Runs until cancelled. Pass the ``source`` whose ``load()`` gave the startup config so no change
    in between is missed; without one, the content at the start is taken as already applied.
    ``on_error(message)`` is called for each new invalid content (and if ``apply`` raises).
    """
    if source is None:
        source = ConfigSource(path)
        source.prime()
    while True:
        await asyncio.sleep(interval)
        failures = source.reload_failures
        try:
            cfg = await asyncio.to_thread(source.check)
        except Exception as exc:   # never let the watcher die: keep serving the old config
            log.exception("routing config check failed")
            source.reload_failures += 1
            cfg, source.last_error = None, f"{type(exc).__name__}: {exc}"
        if cfg is not None:
            try:
                result = apply(cfg)
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                log.exception("applying the new routing config failed; the previous one stays")
                source.reload_failures += 1
                source.last_error = f"apply failed: {exc}"
        if source.reload_failures != failures and on_error is not None:
            result = on_error(source.last_error or "reload failed")
            if inspect.isawaitable(result):
                await result
