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
    assert cfg.models["claude-haiku-4-5"].target().base_path == "/v1"
    assert cfg.models["gemini-3.5-flash-lite"].target().base_path == "/v1beta"


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


# ---- routing classes, workloads, surfaces, tenants, classifier ---------------------------------------

SEED = """{"routing_rules": {
   "simple_queries":    {"primary": "gpt-3.5-turbo", "fallback": "claude-haiku", "max_cost_per_1k": 0.002},
   "complex_reasoning": {"primary": "gpt-4", "fallback": "claude-opus", "max_latency_ms": 5000}}}"""


def test_seed_document_loads_with_the_builtin_catalog(tmp_path):
    path = tmp_path / "seed.json"
    path.write_text(SEED)
    cfg = load(path)
    assert set(cfg.providers) == {"openai", "anthropic"} and cfg.aliases == {"auto"}
    simple, complex_ = cfg.classes["simple_queries"], cfg.classes["complex_reasoning"]
    assert [(t.name, [m.id for m in t.models], t.target_ms) for t in simple.tiers] == [
        ("primary", ["gpt-3.5-turbo"], 1500), ("fallback", ["claude-haiku"], 3000)]
    assert [(t.name, [m.id for m in t.models], t.target_ms) for t in complex_.tiers] == [
        ("primary", ["gpt-4"], 5000), ("fallback", ["claude-opus"], 5000)]
    assert simple.max_cost_per_1k == 0.002 and cfg.default_class == "simple_queries"
    assert cfg.models["claude-haiku"].provider.api == "anthropic"
    assert cfg.models["claude-opus"].upstream_model == "claude-opus-5-5"   # Claude 3 Opus is retired


def test_seed_document_routes(tmp_path):
    from extproc.policy import decide

    path = tmp_path / "seed.json"
    path.write_text(SEED)
    cfg = load(path)
    body = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
    assert [m.id for m in decide(cfg, body, "chat", {}).models] == ["gpt-3.5-turbo", "claude-haiku"]
    hard = type("C", (), {"name": "hard", "score": 0.9})()   # not a class name: the score band decides
    assert [m.id for m in decide(cfg, body, "chat", {}, classification=hard).models] == ["gpt-4", "claude-opus"]


def test_seed_document_may_add_its_own_models():
    cfg = parse({"models": {"my-model": {"provider": "openai"}},
                 "routing_rules": {"c": {"primary": "my-model", "fallback": "gpt-4"}}})
    assert "gpt-4" in cfg.models and [m.id for m in cfg.classes["c"].tiers[0].models] == ["my-model"]


def test_document_with_providers_gets_no_hidden_models():
    assert set(parse(MINIMAL).models) == {"m"}


def test_extended_tiers_and_defaults():
    cfg = parse({**MINIMAL, "models": {"m": {"provider": "p"}, "n": {"provider": "p"}, "o": {"provider": "p"}},
                 "routing_rules": {"c": {"tiers": [{"models": ["m"]}, {"models": ["n"]}, {"models": ["o"]}]}}})
    assert [(t.name, t.target_ms) for t in cfg.classes["c"].tiers] == [
        ("primary", 1500), ("secondary", 3000), ("tertiary", 10000)]


def test_fallback_to_another_class_appends_its_tiers():
    cfg = parse({**MINIMAL, "models": {"m": {"provider": "p"}, "n": {"provider": "p"}},
                 "routing_rules": {"a": {"primary": "m", "fallback": "b"}, "b": {"primary": "n"}}})
    assert [(t.name, [m.id for m in t.models]) for t in cfg.classes["a"].tiers] == [
        ("primary", ["m"]), ("b/primary", ["n"])]


def _rules(rules, **top):
    return {**MINIMAL, "models": {"m": {"provider": "p"}, "n": {"provider": "p"}}, "routing_rules": rules, **top}


@pytest.mark.parametrize("data,expected", [
    (_rules({"c": {"primary": "ghost"}}), "routing_rules.c.primary: unknown model 'ghost'"),
    (_rules({"c": {"tiers": [{"models": []}]}}), "routing_rules.c.tiers[0].models: a tier needs at least one"),
    (_rules({"c": {"tiers": [{"name": "primary"}]}}), "routing_rules.c.tiers[0].models: a tier needs at least one"),
    (_rules({"c": {"tiers": []}}), "routing_rules.c.tiers: must be a non-empty list"),
    (_rules({"c": {}}), "routing_rules.c: a routing class needs tiers"),
    (_rules({"c": {"primary": "m", "colour": 1}}), "routing_rules.c.colour: unknown key"),
    (_rules({"c": {"primary": "m", "max_cost_per_1k": "cheap"}}), "routing_rules.c.max_cost_per_1k: must be a number"),
    (_rules({"c": {"primary": "m", "tiers": [{"models": ["m"]}]}}), "routing_rules.c.primary: give either tiers"),
    (_rules({"a": {"primary": "m", "fallback": "b"}, "b": {"primary": "n", "fallback": "a"}}),
     "routing_rules.b.fallback: cycle in fallbacks: a -> b -> a"),
    (_rules({"a": {"primary": "m", "fallback": "a"}}), "routing_rules.a.fallback: cycle in fallbacks: a -> a"),
    (_rules({"a": {"primary": "m", "fallback": "nowhere"}}), "routing_rules.a.fallback: unknown model or routing class"),
    (_rules({"m": {"primary": "m"}}), "routing_rules.m: a routing class cannot share its name"),
    (_rules({"c": {"tiers": [{"models": ["m"], "target_latency_ms": 9000}], "max_latency_ms": 5000}}),
     "routing_rules.c.tiers[0].target_latency_ms: 9000 exceeds the class's max_latency_ms 5000"),
    (_rules({"c": {"primary": "m", "min_score": 2}}), "routing_rules.c.min_score: must be between 0 and 1"),
    (_rules({"c": {"primary": "m"}}, routing={"default_class": "x"}), "routing.default_class: unknown routing class"),
    (_rules({}, workloads={"batch": {"prefer": "speed"}}), "workloads.batch.prefer: must be one of latency, cost"),
    (_rules({}, workloads={"w": {"prefer": "cost", "windows": [{"tz": "Mars/Olympus", "start": "09:00",
                                                                 "end": "10:00"}]}}),
     "workloads.w.windows[0].tz: unknown time zone 'Mars/Olympus'"),
    (_rules({}, workloads={"w": {"prefer": "cost", "windows": [{"start": "9am", "end": "10:00"}]}}),
     "workloads.w.windows[0].start: must be a time like"),
    (_rules({}, workloads={"w": {"prefer": "cost", "windows": [{"days": ["monday"], "start": "09:00",
                                                                 "end": "10:00"}]}}),
     "workloads.w.windows[0].days: unknown value 'monday'"),
    (_rules({}, surfaces={"s": {"quality_floor": "high"}}), "surfaces.s.quality_floor: must be an integer"),
    (_rules({}, surfaces={"s": {"deny": ["ghost"]}}), "surfaces.s.deny: unknown model 'ghost'"),
    (_rules({}, routing={"default_surface": "s"}), "routing.default_surface: unknown surface 's'"),
    (_rules({}, routing={"default_workload": "w"}), "routing.default_workload: unknown workload 'w'"),
    (_rules({}, routing={"pinned_fallback": "yes"}), "routing.pinned_fallback: must be true or false"),
    (_rules({}, routing={"affinity_keep": "sometimes"}), "routing.affinity_keep: must be 'cost' or 'always'"),
    (_rules({}, tenants={"t": {"api_keys_sha256": ["sk-live-secret"]}}),
     "tenants.t.api_keys_sha256[0]: must be the lowercase hex sha256 of the key"),
    (_rules({}, tenants={"t": {"api_keys_sha256": ["a" * 64]}, "u": {"api_keys_sha256": ["a" * 64]}}),
     "tenants.u.api_keys_sha256[0]: key already belongs to tenant 't'"),
    (_rules({}, tenants={"t": {"surface": "nope"}}), "tenants.t.surface: unknown surface 'nope'"),
    (_rules({}, classifier=[1]), "classifier: must be a mapping"),
])
def test_routing_errors_name_the_key_path(data, expected):
    with pytest.raises(ConfigError) as info:
        parse(data, source="routing.yaml")
    assert str(info.value).startswith("routing.yaml: ")
    assert expected in str(info.value)


def test_classifier_settings_errors_are_wrapped(monkeypatch):
    import sys
    import types

    class Settings:
        @classmethod
        def from_config(cls, mapping):
            if mapping and "threshold" in mapping and not 0 <= mapping["threshold"] <= 1:
                raise ValueError("threshold: must be between 0 and 1")
            return ("settings", mapping)

    fake = types.ModuleType("extproc.classify")
    fake.ClassifierSettings = Settings
    monkeypatch.setitem(sys.modules, "extproc.classify", fake)
    import extproc
    monkeypatch.setattr(extproc, "classify", fake, raising=False)
    assert parse(_rules({}, classifier={"threshold": 0.4})).classifier == ("settings", {"threshold": 0.4})
    assert parse(_rules({})).classifier == ("settings", None)
    with pytest.raises(ConfigError, match=r"^routing.yaml: classifier.threshold: must be between 0 and 1$"):
        parse(_rules({}, classifier={"threshold": 7}), source="routing.yaml")


def test_shipped_config_has_classes_workloads_surfaces_tenants():
    cfg = load(DEFAULT_ROUTING)
    assert {"simple_queries", "complex_reasoning"} <= set(cfg.classes)
    assert {"interactive", "batch"} <= set(cfg.workloads) and cfg.workloads["batch"].windows
    assert cfg.surfaces["support"].quality_floor == 4
    # The shipped config requires a gateway key and keeps none of the public demo keys itself.
    assert cfg.auth == "required" and cfg.keys_file and not cfg.tenant_keys
    assert cfg.tenants["nightly"].workload == "batch" and not cfg.tenants["nightly"].surfaces
