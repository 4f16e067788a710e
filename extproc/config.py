"""The routing config: providers, the model catalog and routing defaults.

One YAML (or JSON) file, named by ``--config`` or ``LLM_GATEWAY_CONFIG``. It is
validated completely at load: an error names the file, the key path and what is
wrong, and nothing half-loaded is ever used.

    providers:                 # one per Envoy cluster
      NAME:
        api: openai | azure_openai | anthropic | gemini
        cluster: NAME          # Envoy cluster (default: the provider name)
        base_path: /v1         # path prefix on the provider (default per API)
        host: api.example.com  # :authority sent upstream (default: left as is)
        api_key_env: VAR       # the key comes from this environment variable,
        api_key_file: PATH     # or from this file (a mounted Secret); both optional
        options: {...}         # API specific, e.g. azure_openai api_version
    models:
      ID:                      # the id clients send as "model"
        provider: NAME
        upstream_model: NAME   # the provider's name (Azure: the deployment); default ID
        endpoints: [chat]      # chat and/or embeddings
        price: {input: 0.15, output: 0.60, cached_input: 0.075}   # USD per 1M tokens
        context_window: 128000
        capabilities: [tools, vision, json, streaming]
        quality: 1..5          # quality tier, higher is better
    routing:
      default_model: ID        # what model "auto" (and every alias) goes to
      aliases: [auto]
    limits:
      max_body_bytes: 4194304
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .providers.base import Target

CONFIG_ENV = "LLM_GATEWAY_CONFIG"

DEFAULT_BASE_PATH = {"openai": "/v1", "azure_openai": "/openai", "anthropic": "/v1", "gemini": "/v1beta"}
ENDPOINTS = ("chat", "embeddings")
CAPABILITIES = ("tools", "vision", "json", "streaming")


class ConfigError(ValueError):
    """An invalid routing config; the message names the file and the key path."""


@dataclass(frozen=True)
class Provider:
    name: str
    api: str
    cluster: str
    base_path: str
    host: str | None = None
    api_key_env: str | None = None
    api_key_file: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Price:
    input: float = 0.0          # USD per 1M input tokens
    output: float = 0.0         # USD per 1M output tokens
    cached_input: float | None = None


@dataclass(frozen=True)
class Model:
    id: str
    provider: Provider
    upstream_model: str
    endpoints: tuple[str, ...] = ("chat",)
    price: Price = Price()
    context_window: int = 128_000
    capabilities: frozenset[str] = frozenset(CAPABILITIES)
    quality: int = 3

    def target(self) -> Target:
        p = self.provider
        return Target(model=self.id, upstream_model=self.upstream_model, provider=p.name, api=p.api,
                      base_path=p.base_path, options=p.options)


@dataclass(frozen=True)
class Config:
    providers: dict[str, Provider]
    models: dict[str, Model]
    default_model: str | None
    aliases: frozenset[str]
    max_body_bytes: int = 4 * 1024 * 1024
    source: str = "<memory>"


def load(path: str | os.PathLike[str]) -> Config:
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: not valid {'JSON' if path.endswith('.json') else 'YAML'}: {exc}") from None
    return parse(data, source=path)


def parse(data: Any, source: str = "<memory>") -> Config:
    return _Parser(source).config(data)


class _Parser:
    """Walks the document keeping the key path, so every error can say where it is."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, what: str) -> ConfigError:
        return ConfigError(f"{self.source}: {where}: {what}")

    def mapping(self, value: Any, where: str, allowed: tuple[str, ...] | None = None) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(where, f"must be a mapping, not {type(value).__name__}")
        if allowed is not None:
            unknown = sorted(set(value) - set(allowed))
            if unknown:
                raise self.fail(f"{where}.{unknown[0]}" if where else unknown[0],
                                f"unknown key (allowed: {', '.join(allowed)})")
        return value

    def string(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(where, "must be a non-empty string")
        return value

    def number(self, value: Any, where: str, minimum: float = 0.0) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(where, f"must be a number, not {value!r}")
        if value < minimum:
            raise self.fail(where, f"must be >= {minimum}")
        return float(value)

    def integer(self, value: Any, where: str, minimum: int = 0) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"must be an integer, not {value!r}")
        if value < minimum:
            raise self.fail(where, f"must be >= {minimum}")
        return value

    def strings(self, value: Any, where: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(where, "must be a list of non-empty strings")
        return tuple(value)

    def names(self, value: Any, where: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
        for v in self.strings(value, where):
            if v not in allowed:
                raise self.fail(where, f"unknown value {v!r} (allowed: {', '.join(allowed)})")
        return tuple(value)

    def config(self, data: Any) -> Config:
        top = self.mapping(data, "(top level)", ("providers", "models", "routing", "limits"))
        providers = {name: self.provider(name, spec)
                     for name, spec in self.mapping(top.get("providers"), "providers").items()}
        if not providers:
            raise self.fail("providers", "at least one provider is required")
        models = {mid: self.model(mid, spec, providers)
                  for mid, spec in self.mapping(top.get("models"), "models").items()}
        if not models:
            raise self.fail("models", "at least one model is required")
        routing = self.mapping(top.get("routing"), "routing", ("default_model", "aliases"))
        default = routing.get("default_model")
        if default is not None:
            default = self.string(default, "routing.default_model")
            if default not in models:
                raise self.fail("routing.default_model", f"unknown model {default!r}")
        aliases = frozenset(self.strings(routing.get("aliases", ["auto"]), "routing.aliases"))
        clash = aliases & set(models)
        if clash:
            raise self.fail("routing.aliases", f"alias {sorted(clash)[0]!r} is also a model id")
        limits = self.mapping(top.get("limits"), "limits", ("max_body_bytes",))
        max_body = self.integer(limits.get("max_body_bytes", 4 * 1024 * 1024), "limits.max_body_bytes", 1024)
        return Config(providers=providers, models=models, default_model=default, aliases=aliases,
                      max_body_bytes=max_body, source=self.source)

    def provider(self, name: str, spec: Any) -> Provider:
        where = f"providers.{name}"
        spec = self.mapping(spec, where, ("api", "cluster", "base_path", "host", "api_key_env", "api_key_file",
                                          "options"))
        api = spec.get("api")
        if api not in DEFAULT_BASE_PATH:
            raise self.fail(f"{where}.api", f"must be one of {', '.join(DEFAULT_BASE_PATH)}, not {api!r}")
        options = self.mapping(spec.get("options"), f"{where}.options")
        if api == "azure_openai" and "api_version" not in options:
            raise self.fail(f"{where}.options.api_version", "is required for azure_openai")
        optional = {k: self.string(spec[k], f"{where}.{k}") for k in ("host", "api_key_env", "api_key_file")
                    if spec.get(k) is not None}
        base_path = self.string(spec.get("base_path", DEFAULT_BASE_PATH[api]), f"{where}.base_path").rstrip("/")
        return Provider(name=name, api=api, cluster=self.string(spec.get("cluster", name), f"{where}.cluster"),
                        base_path=base_path, options=options, **optional)

    def model(self, mid: str, spec: Any, providers: dict[str, Provider]) -> Model:
        where = f"models.{mid}"
        spec = self.mapping(spec, where, ("provider", "upstream_model", "endpoints", "price", "context_window",
                                          "capabilities", "quality"))
        pname = self.string(spec.get("provider"), f"{where}.provider")
        if pname not in providers:
            raise self.fail(f"{where}.provider", f"unknown provider {pname!r}")
        price = self.mapping(spec.get("price"), f"{where}.price", ("input", "output", "cached_input"))
        cached = price.get("cached_input")
        return Model(
            id=mid,
            provider=providers[pname],
            upstream_model=self.string(spec.get("upstream_model", mid), f"{where}.upstream_model"),
            endpoints=self.names(spec.get("endpoints", ["chat"]), f"{where}.endpoints", ENDPOINTS),
            price=Price(input=self.number(price.get("input", 0), f"{where}.price.input"),
                        output=self.number(price.get("output", 0), f"{where}.price.output"),
                        cached_input=None if cached is None else self.number(cached, f"{where}.price.cached_input")),
            context_window=self.integer(spec.get("context_window", 128_000), f"{where}.context_window", 1),
            capabilities=frozenset(self.names(spec.get("capabilities", list(CAPABILITIES)),
                                              f"{where}.capabilities", CAPABILITIES)),
            quality=self.integer(spec.get("quality", 3), f"{where}.quality", 1),
        )
