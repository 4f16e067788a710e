"""Routing config: loads the shipped file, and every mistake gets an error naming file, key path and problem."""

from __future__ import annotations

import pytest

from extproc.config import ConfigError, load, parse
from extproc.devstack import DEFAULT_ROUTING

MINIMAL = {"providers": {"p": {"api": "openai"}}, "models": {"m": {"provider": "p"}},
           "routing": {"default_model": "m"}}


def test_shipped_config_loads():
    cfg = load(DEFAULT_ROUTING)
    assert cfg.default_model in cfg.models and "auto" in cfg.aliases
    assert {p.api for p in cfg.providers.values()} == {"openai", "azure_openai", "anthropic", "gemini"}
    assert cfg.models["claude-3-5-haiku"].target().base_path == "/v1"
    assert cfg.models["gemini-2.0-flash"].target().base_path == "/v1beta"


def test_defaults():
    cfg = parse(MINIMAL)
    model = cfg.models["m"]
    assert model.upstream_model == "m" and model.provider.cluster == "p" and model.endpoints == ("chat",)
    assert cfg.aliases == {"auto"}


def _with(path: str, value):
    import copy
    data = copy.deepcopy(MINIMAL)
    node = data
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    node[keys[-1]] = value
    return data


@pytest.mark.parametrize("path,value,expected", [
    ("providers.p.api", "bedrock", "providers.p.api: must be one of"),
    ("providers.p.colour", "red", "providers.p.colour: unknown key"),
    ("models.m.provider", "nobody", "models.m.provider: unknown provider 'nobody'"),
    ("models.m.price", {"input": "cheap"}, "models.m.price.input: must be a number"),
    ("models.m.price", {"input": -1}, "models.m.price.input: must be >= 0"),
    ("models.m.endpoints", ["chat", "audio"], "models.m.endpoints: unknown value 'audio'"),
    ("models.m.capabilities", ["telepathy"], "models.m.capabilities: unknown value 'telepathy'"),
    ("models.m.context_window", 0, "models.m.context_window: must be >= 1"),
    ("routing.default_model", "ghost", "routing.default_model: unknown model 'ghost'"),
    ("routing.aliases", ["m"], "routing.aliases: alias 'm' is also a model id"),
    ("limits.max_body_bytes", "1MB", "limits.max_body_bytes: must be an integer"),
    ("surprise", 1, "surprise: unknown key"),
])
def test_errors_name_the_key_path(path, value, expected):
    with pytest.raises(ConfigError) as info:
        parse(_with(path, value), source="routing.yaml")
    assert str(info.value).startswith("routing.yaml: ")
    assert expected in str(info.value)


def test_azure_needs_an_api_version():
    with pytest.raises(ConfigError, match="providers.p.options.api_version: is required"):
        parse(_with("providers.p.api", "azure_openai"))


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "routing.yaml"
    bad.write_text("providers: [unclosed")
    with pytest.raises(ConfigError, match=f"{bad}: not valid YAML"):
        load(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "missing.yaml")
