"""Which models a request may go to, in order: the plan.

This is the seam the routing policy grows from. Today: a concrete model id is
pinned to the provider that serves it; a route alias (``auto``) goes to the
configured default model.
"""

from __future__ import annotations

from dataclasses import dataclass

from .config import Config, Model
from .errors import InvalidRequest, ModelNotFound, UnsupportedFeature


@dataclass(frozen=True)
class Plan:
    models: tuple[Model, ...]   # attempt N goes to models[N-1]
    reason: str                 # why, in words, for the response headers and spans


def plan_for(config: Config, requested: str, endpoint: str) -> Plan:
    if requested in config.aliases:
        if config.default_model is None:
            raise InvalidRequest(f"model '{requested}' is a routing alias but no routing.default_model is configured",
                                 param="model")
        model = config.models[config.default_model]
        reason = f"alias '{requested}' -> default model"
    elif requested in config.models:
        model = config.models[requested]
        reason = "pinned: model named by the client"
    else:
        raise ModelNotFound(f"The model '{requested}' does not exist or you do not have access to it.", param="model")
    if endpoint not in model.endpoints:
        raise UnsupportedFeature(f"model '{model.id}' does not serve /v1/{_PATHS[endpoint]}", param="model")
    return Plan((model,), reason)


_PATHS = {"chat": "chat/completions", "embeddings": "embeddings"}
