"""Every Envoy config in the repo, and the one local runs derive from it, passes `envoy --mode validate`."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from extproc import envoy_config
from extproc.config import FORWARDABLE_HEADERS, load
from extproc.devstack import DEFAULT_ROUTING, envoy_binary

ROOT = Path(__file__).resolve().parents[2]


def _validate(path: Path) -> None:
    result = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "OK" in result.stdout + result.stderr


@pytest.mark.parametrize("path", sorted(ROOT.glob("envoy/**/*.yaml")), ids=lambda p: p.name)
def test_repo_envoy_configs_validate(path):
    _validate(path)


def test_localized_config_validates(tmp_path):
    local = envoy_config.localize(envoy_config.load(), listen_port=18000, admin_port=18001, extproc="unix:/tmp/x.sock",
                                  endpoints={"anthropic": ("127.0.0.1", 18002)})
    envoy_config.dump(local, tmp_path / "local.yaml")
    _validate(tmp_path / "local.yaml")


def test_every_provider_in_the_routing_config_has_a_cluster():
    clusters = envoy_config.clusters(envoy_config.load())
    assert {p.cluster for p in load(DEFAULT_ROUTING).providers.values()} <= clusters


def test_a_broken_config_fails_validation(tmp_path):
    broken = envoy_config.load()
    broken["static_resources"]["clusters"][0]["type"] = "NOT_A_TYPE"
    envoy_config.dump(broken, tmp_path / "broken.yaml")
    with pytest.raises(AssertionError):
        _validate(tmp_path / "broken.yaml")


def test_the_edge_lets_through_what_providers_may_be_configured_to_receive():
    allowed = envoy_config.edge_allowlist(envoy_config.load())
    assert set(FORWARDABLE_HEADERS) <= allowed
    assert {"authorization", "content-type", "traceparent"} <= allowed
    assert not {"cookie", "proxy-authorization", "openai-organization", "user-agent"} & allowed


@pytest.mark.parametrize("envoy_path,routing_path", [
    (ROOT / "envoy" / "envoy.yaml", DEFAULT_ROUTING), (ROOT / "k8s" / "base" / "envoy.yaml", ROOT / "k8s" / "base" /
                                                       "routing.yaml")])
def test_envoys_body_limit_is_the_gateways(envoy_path, routing_path):
    """A body at exactly limits.max_body_bytes is served; one byte more is Envoy's 413, never a 500."""
    envoy = envoy_config.load(envoy_path)
    limit = envoy_config.buffer_limit(envoy)
    assert limit == load(routing_path).max_body_bytes
    hcm = envoy_config._gateway_listener(envoy)["filter_chains"][0]["filters"][0]["typed_config"]
    too_large = next(m for m in hcm["local_reply_config"]["mappers"]
                     if m["filter"].get("and_filter", {}).get("filters", [{}])[0].get("status_code_filter", {})
                     .get("comparison", {}).get("value", {}).get("default_value") == 413)
    assert f"limit of {limit} bytes" in too_large["body_format_override"]["json_format"]["error"]["message"]


def test_egress_listeners_are_localized_to_free_ports_and_hedging_taken_out_without_them():
    source = envoy_config.load()
    clusters = envoy_config.hedge_clusters(source)
    assert set(clusters) == {p.cluster for p in load(DEFAULT_ROUTING).providers.values()}
    ports = {c: 20000 + i for i, c in enumerate(clusters)}
    local = envoy_config.localize(source, listen_port=18000, admin_port=18001, extproc="127.0.0.1:1",
                                  endpoints={"gemini": ("127.0.0.1", 18003)}, hedge_ports=ports)
    listeners = {lst["name"]: lst["address"]["socket_address"]["port_value"]
                 for lst in local["static_resources"]["listeners"]}
    assert listeners == {"llm_gateway": 18000, **{f"egress_{c}": p for c, p in ports.items()}}
    (pool,) = [c for c in local["static_resources"]["clusters"] if c["name"] == "hedge_pool"]
    assert [e["endpoint"]["address"]["socket_address"]["port_value"]
            for e in pool["load_assignment"]["endpoints"][0]["lb_endpoints"]] == list(ports.values())
    by_name = {c["name"]: c for c in local["static_resources"]["clusters"]}
    port_of = lambda c: c["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
        "socket_address"]["port_value"]
    # The routed cluster goes to its egress listener; the simulator replaces what that listener forwards to.
    assert port_of(by_name["gemini"]) == ports["gemini"] and port_of(by_name["provider_gemini"]) == 18003
    assert "transport_socket" not in by_name["provider_gemini"] and "transport_socket" in by_name["provider_openai"]
    plain = envoy_config.localize(source, listen_port=18000, admin_port=18001, extproc="127.0.0.1:1", endpoints={})
    assert [lst["name"] for lst in plain["static_resources"]["listeners"]] == [
        "llm_gateway", *(f"egress_{c}" for c in clusters)]
    assert "hedge_pool" not in envoy_config.clusters(plain)
    routes = plain["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"][
        "route_config"]["virtual_hosts"][0]["routes"]
    assert all(r.get("route", {}).get("cluster") != "hedge_pool" for r in routes) and len(routes) == 2
