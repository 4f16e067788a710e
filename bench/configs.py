"""The two Envoy configs the bench compares, both derived from envoy/envoy.yaml.

- ``gateway``: the production file through ``extproc.envoy_config.localize``:
  every provider cluster points at the mock, the router-stage and upstream-stage
  ext_proc filters stay exactly as deployed.
- ``floor``: Envoy alone. The same listener (connection manager, access log,
  local replies, buffer limits) and the same route timeout and retry policy,
  but no ext_proc filter anywhere and a plain route to the OpenAI cluster,
  because without the router stage nothing sets the ``x-llm-try-N`` headers.

``python -m bench.configs`` writes both and runs ``envoy --mode validate`` on each.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from extproc import envoy_config
from extproc.devstack import envoy_binary

EXT_PROC = "envoy.filters.http.ext_proc"
UPSTREAM_CODEC = "envoy.filters.http.upstream_codec"
PROVIDER_CLUSTERS = ("openai", "azure_openai", "anthropic", "gemini", "vllm")


def mock_endpoints(openai_port: int, anthropic_port: int) -> dict[str, tuple[str, int]]:
    """Every provider cluster to the mock: Anthropic's API on its own port, the OpenAI-shaped rest on the other."""
    return {name: ("127.0.0.1", anthropic_port if name == "anthropic" else openai_port) for name in PROVIDER_CLUSTERS}


def gateway(*, listen_port: int, admin_port: int, extproc: str, openai_port: int, anthropic_port: int,
            source: dict[str, Any] | None = None) -> dict[str, Any]:
    return envoy_config.localize(source or envoy_config.load(), listen_port=listen_port, admin_port=admin_port,
                                 extproc=extproc, endpoints=mock_endpoints(openai_port, anthropic_port))


def floor(*, listen_port: int, admin_port: int, openai_port: int, anthropic_port: int,
          source: dict[str, Any] | None = None) -> dict[str, Any]:
    """Envoy alone: ``gateway`` minus every ext_proc filter, routing every request to the OpenAI cluster."""
    out = gateway(listen_port=listen_port, admin_port=admin_port, extproc="127.0.0.1:1",
                  openai_port=openai_port, anthropic_port=anthropic_port, source=source)
    resources = out["static_resources"]
    for listener in resources["listeners"]:
        for chain in listener["filter_chains"]:
            for f in chain["filters"]:
                hcm = f["typed_config"]
                if "http_filters" not in hcm:
                    continue
                hcm["http_filters"] = [h for h in hcm["http_filters"] if h["name"] != EXT_PROC]
                for vhost in hcm["route_config"]["virtual_hosts"]:
                    vhost["routes"] = [_plain_route(vhost["routes"])]
    clusters = []
    for cluster in resources["clusters"]:
        if cluster["name"] == "extproc":
            continue
        cluster = copy.deepcopy(cluster)
        for options in cluster.get("typed_extension_protocol_options", {}).values():
            if "http_filters" in options:
                # Only the codec stays: the upstream stage is an ext_proc wrapped in a matcher.
                options["http_filters"] = [h for h in options["http_filters"] if h["name"] == UPSTREAM_CODEC]
        clusters.append(cluster)
    resources["clusters"] = clusters
    return out


def _plain_route(routes: list[dict[str, Any]]) -> dict[str, Any]:
    """The gateway's routed route (first with a ``route`` action), to one fixed cluster and without the header match."""
    routed = next(r for r in routes if "route" in r)
    action = {k: v for k, v in routed["route"].items() if k != "inline_cluster_specifier_plugin"}
    action["cluster"] = "provider_openai"   # straight to the provider: Envoy alone has no egress hop
    return {"match": {"prefix": "/"}, "route": action}


def has_ext_proc(config: dict[str, Any]) -> bool:
    return EXT_PROC in repr(config)


def validate(path: str | Path) -> None:
    """``envoy --mode validate``; raises with Envoy's message if the config is rejected."""
    result = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(path), "--log-level", "error"],
                            capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"envoy rejected {path}:\n{result.stdout}{result.stderr}")


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        ports = dict(listen_port=10001, admin_port=10002, openai_port=10003, anthropic_port=10004)
        for name, config in (("gateway", gateway(extproc="127.0.0.1:10005", **ports)), ("floor", floor(**ports))):
            path = Path(tmp) / f"{name}.yaml"
            envoy_config.dump(config, path)
            validate(path)
            print(f"{name}: valid, ext_proc filters: {'yes' if has_ext_proc(config) else 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
