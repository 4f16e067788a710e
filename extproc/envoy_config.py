"""Adapt the repo's Envoy config (envoy/envoy.yaml) for local runs and tests.

The file in envoy/ is the production shape: TLS clusters to the providers'
public hosts and extproc on 127.0.0.1:50051. ``localize`` changes only what a
local run must: the listener and admin ports, the extproc address (TCP or a
Unix socket) and, for each provider served by a simulator, its endpoint
(loopback, plain HTTP). Everything else, filters, routes and retries, is the
same config platform teams deploy.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "envoy" / "envoy.yaml"
COLLECTOR = "opentelemetry_collector"
EDGE_ALLOWLIST = "llm_edge_allowlist"
MAIN_LISTENER = "llm_gateway"
HEDGE_POOL = "hedge_pool"
EGRESS_LISTENER = "egress_"    # + the provider cluster's name: where its attempts (and hedges) leave
PROVIDER_CLUSTER = "provider_"  # + the provider cluster's name: the egress listener's cluster (DNS, TLS)


def load(path: str | Path = DEFAULT_PATH) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


def localize(config: dict[str, Any], *, listen_port: int, admin_port: int, extproc: str,
             endpoints: dict[str, tuple[str, int]], otlp: str | None = None,
             hedge_ports: dict[str, int] | None = None) -> dict[str, Any]:
    """A copy of ``config`` for this machine.

    ``extproc`` is "HOST:PORT" or "unix:PATH"; ``endpoints`` maps provider
    cluster names to the (host, port) of the simulator that replaces them;
    ``otlp`` is the collector's "HOST:PORT", or None to turn Envoy's tracing off
    (no collector runs locally unless a test or the user starts one).
    ``hedge_ports`` maps provider clusters to the loopback ports of their egress
    listeners (free ports, so stacks can run side by side), which are also the hedge
    pool's endpoints; without it the listeners keep the file's ports and hedging is
    taken out (its pool and route), so hedged plans fall back in sequence.
    """
    out = copy.deepcopy(config)
    if otlp is None:
        for listener in out["static_resources"]["listeners"]:
            for chain in listener["filter_chains"]:
                for f in chain["filters"]:
                    f.get("typed_config", {}).pop("tracing", None)
        out["static_resources"]["clusters"] = [c for c in out["static_resources"]["clusters"]
                                               if c["name"] != COLLECTOR]
    else:
        endpoints = {**endpoints, COLLECTOR: _host_port(otlp)}
    out["admin"]["address"]["socket_address"]["port_value"] = admin_port
    resources = out["static_resources"]
    for listener in resources["listeners"]:
        if listener["name"] == MAIN_LISTENER:
            listener["address"]["socket_address"]["port_value"] = listen_port
    _localize_hedging(resources, hedge_ports)
    for cluster in resources["clusters"]:
        name = cluster["name"]
        if name == "extproc":
            cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"] = _address(extproc)
        elif name == COLLECTOR and COLLECTOR in endpoints or (
                name.startswith(PROVIDER_CLUSTER) and name[len(PROVIDER_CLUSTER):] in endpoints):
            host, port = endpoints[name.removeprefix(PROVIDER_CLUSTER)]
            cluster["type"] = "STATIC"
            cluster.pop("dns_lookup_family", None)
            cluster.pop("transport_socket", None)
            cluster["load_assignment"]["endpoints"] = [{"lb_endpoints": [{"endpoint": {"address": {
                "socket_address": {"address": host, "port_value": port}}}}]}]
    return out


def _localize_hedging(resources: dict[str, Any], hedge_ports: dict[str, int] | None) -> None:
    if hedge_ports is None:
        resources["clusters"] = [c for c in resources["clusters"] if c["name"] != HEDGE_POOL]
        for listener in resources["listeners"]:
            for chain in listener["filter_chains"]:
                for f in chain["filters"]:
                    for vhost in f.get("typed_config", {}).get("route_config", {}).get("virtual_hosts", []):
                        vhost["routes"] = [r for r in vhost["routes"]
                                           if r.get("route", {}).get("cluster") != HEDGE_POOL]
        return
    for listener in resources["listeners"]:
        if listener["name"].startswith(EGRESS_LISTENER):
            listener["address"]["socket_address"]["port_value"] = hedge_ports[listener["name"][len(EGRESS_LISTENER):]]
    for cluster in resources["clusters"]:
        if cluster["name"] in hedge_ports:   # the routed provider cluster: to its egress listener
            cluster["load_assignment"]["endpoints"] = [{"lb_endpoints": [{"endpoint": {"address": {
                "socket_address": {"address": "127.0.0.1", "port_value": hedge_ports[cluster["name"]]}}}}]}]
        elif cluster["name"] == HEDGE_POOL:
            cluster["load_assignment"]["endpoints"] = [{"lb_endpoints": [
                {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}
                for port in hedge_ports.values()]}]


def hedge_clusters(config: dict[str, Any]) -> list[str]:
    """The provider clusters that have an egress listener (a hedge-pool endpoint), in file order."""
    return [lst["name"][len(EGRESS_LISTENER):] for lst in config["static_resources"]["listeners"]
            if lst["name"].startswith(EGRESS_LISTENER)]


def _address(spec: str) -> dict[str, Any]:
    if spec.startswith("unix:"):
        return {"pipe": {"path": spec[len("unix:"):]}}
    host, port = _host_port(spec)
    return {"socket_address": {"address": host, "port_value": port}}


def _host_port(spec: str) -> tuple[str, int]:
    host, _, port = spec.rpartition(":")
    return host or "127.0.0.1", int(port)


def http_filters(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The listener's HTTP filters, in order."""
    hcm = _gateway_listener(config)["filter_chains"][0]["filters"][0]["typed_config"]
    return hcm["http_filters"]


def edge_allowlist(config: dict[str, Any]) -> set[str]:
    """The client headers the edge allowlist (the llm_edge_allowlist Lua filter) lets through."""
    lua = next(f for f in http_filters(config) if f["name"] == EDGE_ALLOWLIST)
    source = lua["typed_config"]["default_source_code"]["inline_string"]
    table = source[source.index("local allowed = {"):source.index("}")]
    return set(re.findall(r'\["([a-z0-9-]+)"\] = true', table))


def buffer_limit(config: dict[str, Any]) -> int:
    """The listener's per-connection buffer limit: the largest request body Envoy lets through."""
    return int(_gateway_listener(config)["per_connection_buffer_limit_bytes"])


def _gateway_listener(config: dict[str, Any]) -> dict[str, Any]:
    return next(listener for listener in config["static_resources"]["listeners"] if listener["name"] == "llm_gateway")


def clusters(config: dict[str, Any]) -> set[str]:
    return {c["name"] for c in config["static_resources"]["clusters"]}


def dump(config: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(config, sort_keys=False))
