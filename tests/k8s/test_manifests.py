"""The Kubernetes manifests: every kustomize target renders and validates (k8s/check.py),
a broken manifest fails the check, the deployment norms hold, and the Envoy drain
script really drains a real Envoy before it exits."""

from __future__ import annotations

import copy
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("k8s_check", ROOT / "k8s" / "check.py")
check = importlib.util.module_from_spec(_spec)
sys.modules["k8s_check"] = check
_spec.loader.exec_module(check)


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return check.render_all()


def find(docs, kind, name=None):
    for doc in docs:
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"].startswith(name)):
            return doc
    raise AssertionError(f"no {kind} {name or ''}")


def pod(docs):
    return find(docs, "Deployment", "llm-gateway")["spec"]["template"]["spec"]


def container(docs, name):
    spec = pod(docs)
    return next(c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == name)


def envoy_config(docs) -> dict:
    return yaml.safe_load(find(docs, "ConfigMap", "llm-gateway-envoy")["data"]["envoy.yaml"])


# ---- the unmutated render passes ------------------------------------------------------------

def test_every_target_renders_and_validates(rendered):
    assert set(rendered) == {"base", "observability", "mesh-istio", "scale-out"}
    assert check.check(rendered) == []


def test_generated_copies_match_their_sources():
    assert check.drift_errors() == [], "run `make k8s-sync`"


def test_the_check_covers_crds_and_envoy_configs(rendered):
    kinds = {d["kind"] for docs in rendered.values() for d in docs}
    assert {"EnvoyFilter", "ServiceEntry", "DestinationRule", "ServiceMonitor", "AuthorizationPolicy"} <= kinds
    for docs in rendered.values():
        assert check.is_envoy_config("envoy.yaml", find(docs, "ConfigMap", "llm-gateway-envoy")["data"]["envoy.yaml"])


# ---- a broken manifest fails ------------------------------------------------------------------

def _deployment(docs):
    return find(docs, "Deployment", "llm-gateway")


def _set_envoy(docs, text):
    find(docs, "ConfigMap", "llm-gateway-envoy")["data"]["envoy.yaml"] = text


MUTATIONS = {
    # schema: unknown field, wrong type, missing required field
    "unknown field": ("base", lambda d: _deployment(d)["spec"]["template"]["spec"].update(bogusField=1),
                      "bogusField"),
    "wrong type": ("base", lambda d: find(d, "Service", "llm-gateway")["spec"]["ports"][0].update(port="eighty"),
                   "eighty"),
    "wrong type object": ("base", lambda d: find(d, "PodDisruptionBudget", "llm-gateway-redis")["spec"]
                         .update(maxUnavailable={"a": 1}), "maxUnavailable"),
    "unknown apiVersion": ("base", lambda d: d.append({"apiVersion": "example.com/v1", "kind": "Widget",
                                                      "metadata": {"name": "w"}}), "no schema"),
    # CRDs
    "istio enum": ("mesh-istio", lambda d: find(d, "ServiceEntry", "openai")["spec"].update(resolution="DNSX"),
                   "resolution"),
    "istio type": ("mesh-istio", lambda d: find(d, "DestinationRule", "anthropic")["spec"]["trafficPolicy"]
                   ["portLevelSettings"][0]["port"].update(number="80"), "number"),
    "envoyfilter enum": ("mesh-istio", lambda d: find(d, "EnvoyFilter")["spec"]["configPatches"][0]
                         .update(applyTo="HTTP_FILTERZ"), "applyTo"),
    "servicemonitor pattern": ("observability", lambda d: find(d, "ServiceMonitor")["spec"]["endpoints"][0]
                               .update(interval="soon"), "interval"),
    "prometheusrule": ("observability", lambda d: d.append({
        "apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": {"name": "r"},
        "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up == 0", "for": "five minutes"}]}]}}),
        "for"),
    # what ConfigMaps carry
    "envoy config": ("base", lambda d: _set_envoy(d, envoy_yaml(d).replace(
        "filters.http.router.v3.Router", "filters.http.router.v3.NoSuchFilter", 1)), "envoy rejects"),
    "envoy config yaml": ("scale-out", lambda d: _set_envoy(d, envoy_yaml(d).replace("port_value: 10000",
                                                                                      "port_value: ten")),
                          "envoy rejects"),
    "drain script": ("base", lambda d: find(d, "ConfigMap", "llm-gateway-envoy")["data"].update(
        {"drain.sh": "while true; do\n"}), "bash rejects"),
    "routing config": ("base", lambda d: find(d, "ConfigMap", "llm-gateway-routing")["data"].update(
        {"routing.yaml": "providers: {}\nmodels: {x: {provider: nope}}\n"}), "routing.yaml"),
}


def envoy_yaml(docs) -> str:
    return find(docs, "ConfigMap", "llm-gateway-envoy")["data"]["envoy.yaml"]


@pytest.mark.parametrize("name", MUTATIONS)
def test_a_broken_manifest_fails(rendered, name):
    target, mutate, expected = MUTATIONS[name]
    docs = copy.deepcopy(rendered[target])
    mutate(docs)
    errors = check.check({target: docs})
    assert errors, f"mutation {name!r} passed the check"
    assert any(expected in e for e in errors), errors


def test_the_command_line_check_fails_on_a_broken_overlay(tmp_path):
    """`make k8s-check` itself (not only the functions) exits non-zero on a broken overlay."""
    overlay = tmp_path / "broken"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        f"resources: [{os.path.relpath(ROOT / 'k8s' / 'base', overlay)}]\n"
        "patches:\n- target: {kind: Deployment, name: llm-gateway}\n"
        "  patch: |-\n    - {op: add, path: /spec/template/spec/containers/0/securityContext/privileged, value: true}\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    code = (f"import runpy, sys; sys.argv=['check.py']; m = runpy.run_path({str(ROOT / 'k8s' / 'check.py')!r}); "
            f"m['TARGETS'].clear(); m['TARGETS']['broken'] = __import__('pathlib').Path({str(overlay)!r}); "
            "sys.exit(m['main']([]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    # main() reads the module-level TARGETS of the module run_path executed: the broken overlay only
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "privileged" in proc.stderr


# ---- norms -----------------------------------------------------------------------------------

NORM_MUTATIONS = {
    "runAsNonRoot": lambda d: container(d, "envoy")["securityContext"].pop("runAsNonRoot") and
    pod(d)["securityContext"].pop("runAsNonRoot"),
    "readOnlyRootFilesystem": lambda d: container(d, "extproc")["securityContext"].update(readOnlyRootFilesystem=False),
    "allowPrivilegeEscalation": lambda d: container(d, "envoy")["securityContext"].pop("allowPrivilegeEscalation"),
    "capabilities.drop": lambda d: container(d, "extproc")["securityContext"].pop("capabilities"),
    "seccompProfile": lambda d: pod(d)["securityContext"].pop("seccompProfile"),
    "livenessProbe": lambda d: container(d, "envoy").pop("livenessProbe"),
    "readinessProbe": lambda d: container(d, "extproc").pop("readinessProbe"),
    "resources": lambda d: container(d, "extproc")["resources"].pop("limits"),
    "PodDisruptionBudget": lambda d: d.remove(find(d, "PodDisruptionBudget", "llm-gateway")),
    "HorizontalPodAutoscaler": lambda d: d.remove(find(d, "HorizontalPodAutoscaler", "llm-gateway")),
    "NetworkPolicy": lambda d: d.remove(find(d, "NetworkPolicy", "llm-gateway")),
    "topologySpreadConstraints": lambda d: pod(d).pop("topologySpreadConstraints"),
    "native sidecar": lambda d: container(d, "extproc").pop("restartPolicy"),
    "preStop drain": lambda d: container(d, "envoy").pop("lifecycle"),
    "terminationGracePeriodSeconds": lambda d: pod(d).update(terminationGracePeriodSeconds=60),
    "replicas": lambda d: _deployment(d)["spec"].update(replicas=3),
}


@pytest.mark.parametrize("norm", NORM_MUTATIONS)
def test_each_norm_is_enforced(rendered, norm):
    docs = copy.deepcopy(rendered["base"])
    NORM_MUTATIONS[norm](docs)
    errors = check.norm_errors(docs)
    assert any(norm in e for e in errors), errors


def test_pod_shape(rendered):
    for target, docs in rendered.items():
        spec = pod(docs)
        extproc, envoy = container(docs, "extproc"), container(docs, "envoy")
        # extproc is a native sidecar: started before Envoy, stopped after it has drained.
        assert extproc["restartPolicy"] == "Always" and extproc in spec["initContainers"], target
        assert envoy["lifecycle"]["preStop"]["exec"]["command"] == ["/bin/bash", "/etc/envoy/drain.sh"]
        drain = int(next(e["value"] for e in envoy["env"] if e["name"] == "DRAIN_MAX_SECONDS"))
        assert drain + 5 + 10 <= spec["terminationGracePeriodSeconds"]
        # the route timeout bounds a request; the drain waits for it
        assert drain >= 280
        assert extproc["args"][:3] == ["serve", "--listen", "127.0.0.1:50051"]
        for c in (extproc, envoy):
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] and sc["runAsUser"] > 0 and sc["readOnlyRootFilesystem"]
            assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
        assert envoy["image"] == "envoyproxy/envoy:v1.40.0"
        assert {t["topologyKey"] for t in spec["topologySpreadConstraints"]} == {
            "topology.kubernetes.io/zone", "kubernetes.io/hostname"}


def test_envoy_config_in_the_pod(rendered):
    """The pod's Envoy config is envoy/envoy.yaml with only the pod's differences."""
    docs = rendered["base"]
    cfg = envoy_config(docs)
    listeners = {l["name"]: l for l in cfg["static_resources"]["listeners"]}
    assert listeners["llm_gateway"]["address"]["socket_address"] == {"address": "0.0.0.0", "port_value": 10000}
    assert listeners["llm_gateway"]["traffic_direction"] == "INBOUND"       # drain.sh drains it (inboundonly)
    assert "traffic_direction" not in listeners["health"]                   # ...and not the probes' listener
    assert listeners["health"]["address"]["socket_address"]["port_value"] == 9902
    assert cfg["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    clusters = {c["name"]: c for c in cfg["static_resources"]["clusters"]}
    extproc_addr = clusters["extproc"]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
    assert extproc_addr["socket_address"] == {"address": "127.0.0.1", "port_value": 50051}
    # the probes use what the health listener serves
    envoy = container(docs, "envoy")
    ports = {p["name"]: p["containerPort"] for p in envoy["ports"]}
    assert ports == {"http": 10000, "health": 9902}
    paths = {r["match"]["path"] for r in
             listeners["health"]["filter_chains"][0]["filters"][0]["typed_config"]["route_config"]
             ["virtual_hosts"][0]["routes"]}
    assert {envoy["livenessProbe"]["httpGet"]["path"], envoy["readinessProbe"]["httpGet"]["path"],
            "/grpc.health.v1.Health/Check"} <= paths
    assert container(docs, "extproc")["readinessProbe"]["grpc"]["port"] == 9902


def test_routing_config_hot_reloads_and_keys_stay_out(rendered):
    for docs in rendered.values():
        routing = find(docs, "ConfigMap", "llm-gateway-routing")
        assert routing["metadata"]["name"] == "llm-gateway-routing"    # no hash suffix: edited in place
        assert find(docs, "ConfigMap", "llm-gateway-envoy")["metadata"]["name"] != "llm-gateway-envoy"  # hashed
        mounts = {m["name"]: m for m in container(docs, "extproc")["volumeMounts"]}
        assert "subPath" not in mounts["routing"]                      # subPath mounts never update
        env = {e["name"]: e.get("value") for e in container(docs, "extproc")["env"]}
        assert env["LLM_GATEWAY_CONFIG"] == mounts["routing"]["mountPath"] + "/routing.yaml"
        assert mounts["provider-keys"]["mountPath"] == "/var/run/secrets/llm-gateway"
        assert not [d for d in docs if d["kind"] == "Secret"], "provider keys never go in the manifests"
        assert not any("API_KEY" in name for name in env)


def test_the_ledger_is_durable_in_the_base_and_shared_when_scaled_out(rendered):
    base, scaled = rendered["base"], rendered["scale-out"]
    assert find(base, "HorizontalPodAutoscaler")["spec"]["maxReplicas"] == 1
    hpa = find(scaled, "HorizontalPodAutoscaler")["spec"]
    assert hpa["minReplicas"] >= 2 and hpa["maxReplicas"] > hpa["minReplicas"]
    for docs in (base, scaled):
        env = {e["name"]: e.get("value") for e in container(docs, "extproc")["env"]}
        assert env["LLM_GATEWAY_LEDGER_URL"].startswith("redis://llm-gateway-redis:6379")
        assert find(docs, "Service", "llm-gateway-redis")
        egress = find(docs, "NetworkPolicy", "llm-gateway-to-redis")["spec"]["egress"]
        assert egress[0]["ports"][0]["port"] == 6379
    # Redis keeps its data on a volume a StatefulSet owns (a rollout replaces the pod, never surges
    # onto another node), with an append-only file: the ledger survives gateway and Redis restarts.
    redis = find(base, "StatefulSet", "llm-gateway-redis")["spec"]
    assert redis["volumeClaimTemplates"][0]["spec"]["accessModes"] == ["ReadWriteOnce"]
    args = redis["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    # No gateway pod keeps the ledger on its own disk.
    volumes = _deployment(base)["spec"]["template"]["spec"]["volumes"]
    assert not any(v["name"] == "ledger" for v in volumes)


def test_observability_wiring(rendered):
    docs = rendered["observability"]
    env = {e["name"]: e.get("value") for e in container(docs, "extproc")["env"]}
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4317"
    monitor = find(docs, "ServiceMonitor")["spec"]
    service = find(docs, "Service", "llm-gateway-metrics")
    assert {e["port"] for e in monitor["endpoints"]} <= {p["name"] for p in service["spec"]["ports"]}
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()


def test_mesh_istio(rendered):
    docs = rendered["mesh-istio"]
    assert find(docs, "Namespace")["metadata"]["labels"]["istio-injection"] == "enabled"
    assert find(docs, "EnvoyFilter")["metadata"]["namespace"] == "istio-system"
    for doc in docs:
        if doc["kind"] == "Service":
            for port in doc["spec"]["ports"]:
                assert port["name"].split("-")[0] in {"http", "grpc", "tcp", "tls"}, port   # Istio's port naming
    hosts = {d["spec"]["host"] for d in docs if d["kind"] == "DestinationRule"}
    entries = {h for d in docs if d["kind"] == "ServiceEntry" for h in d["spec"]["hosts"]}
    assert {"api.openai.com", "api.anthropic.com", "generativelanguage.googleapis.com"} <= hosts & entries
    for d in docs:
        if d["kind"] == "DestinationRule" and d["spec"]["host"] in entries:
            assert d["spec"]["trafficPolicy"]["portLevelSettings"][0]["tls"]["mode"] == "SIMPLE"


def test_mesh_istio_keeps_a_session_on_one_gateway_pod(rendered):
    # Affinity pins live in each extproc replica: in the mesh, clients' sidecars hash the session header
    # the gateway reads to one pod of the clients' Service, so a conversation's pin holds with replicas.
    from extproc.affinity import SESSION_HEADER
    docs = rendered["mesh-istio"]
    service = find(docs, "Service", "llm-gateway")
    fqdn = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local"
    rule = next(d for d in docs if d["kind"] == "DestinationRule" and d["spec"]["host"] == fqdn)
    assert rule["spec"]["trafficPolicy"]["loadBalancer"]["consistentHash"] == {"httpHeaderName": SESSION_HEADER}
    assert rule["spec"]["trafficPolicy"]["tls"]["mode"] == "ISTIO_MUTUAL"   # the namespace is STRICT mTLS


# ---- the drain really drains --------------------------------------------------------------------

def _free_port() -> int:
    from extproc.devstack import free_port   # below the ephemeral range: see its docstring
    return free_port()


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def test_drain_script_drains_a_real_envoy(rendered, tmp_path):
    """drain.sh against a real Envoy running the pod's config: health checks fail, the client
    listener drains while the health listener stays, and the script returns once idle."""
    docs = rendered["base"]
    admin, http, health = _free_port(), _free_port(), _free_port()
    text = (envoy_yaml(docs).replace("port_value: 9901", f"port_value: {admin}")
            .replace("port_value: 10000", f"port_value: {http}").replace("port_value: 9902", f"port_value: {health}")
            .replace("address: 0.0.0.0", "address: 127.0.0.1"))
    (tmp_path / "envoy.yaml").write_text(text)
    drain = tmp_path / "drain.sh"
    drain.write_text(find(docs, "ConfigMap", "llm-gateway-envoy")["data"]["drain.sh"])
    proc = subprocess.Popen([check.envoy_binary(), "-c", str(tmp_path / "envoy.yaml"), "--disable-hot-restart",
                             "--drain-strategy", "immediate", "--drain-time-s", "1", "--log-level", "error",
                             "--base-id", str(os.getpid() % 10000 + 20000)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while _get_or_none(health, "/ready") != 200:
            assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else ""
            time.sleep(0.1)
        assert _get(health, "/live") == (200, "live\n")
        assert "envoy_server" in _get(health, "/stats/prometheus")[1]
        started = time.monotonic()
        run = subprocess.run(["bash", str(drain)], env=dict(os.environ, ADMIN_PORT=str(admin),
                                                            ENDPOINT_DELAY_SECONDS="0", DRAIN_MAX_SECONDS="20"),
                             capture_output=True, text=True, timeout=30)
        assert run.returncode == 0, run.stderr
        assert time.monotonic() - started < 10, "an idle Envoy must not wait out DRAIN_MAX_SECONDS"
        assert _get(health, "/ready")[0] == 503        # failed health checks: no new traffic
        assert _get(health, "/live")[0] == 200         # the probes' listener is not drained
        deadline = time.monotonic() + 10               # the client listener closes after --drain-time-s
        while _connects(http):
            assert time.monotonic() < deadline, "the client listener was not drained"
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _get_or_none(port, path):
    try:
        return _get(port, path)[0]
    except OSError:
        return None


def _connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False
