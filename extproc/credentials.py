"""Provider API keys, from environment variables or files (a mounted Kubernetes Secret).

Files are re-read when they change on disk, so a rotated Secret takes effect
without a restart. A key is only ever handed to the header that carries it
upstream: it is never logged, never put in a span and never sent to a client
(``Secret.__repr__`` hides it, in case one ends up in a log line by mistake).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .config import Provider


@dataclass(frozen=True)
class Secret:
    value: str

    def __repr__(self) -> str:
        return "Secret(****)"

    __str__ = __repr__


class Credentials:
    def __init__(self, environ: dict[str, str] | None = None):
        self._environ = os.environ if environ is None else environ
        self._files: dict[str, tuple[float, Secret | None]] = {}

    def key_for(self, provider: Provider) -> Secret | None:
        if provider.api_key_env:
            value = self._environ.get(provider.api_key_env, "").strip()
            if value:
                return Secret(value)
        if provider.api_key_file:
            return self._from_file(provider.api_key_file)
        return None

    def _from_file(self, path: str) -> Secret | None:
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            return None
        cached = self._files.get(path)
        if cached and cached[0] == mtime:
            return cached[1]
        try:
            with open(path, encoding="utf-8") as fh:
                value = fh.read().strip()
        except OSError:
            return None
        secret = Secret(value) if value else None
        self._files[path] = (mtime, secret)
        return secret
