# Two commands on a fresh machine: `make run` and `make test`. Both create .venv themselves.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
PORT   ?= 10000

.PHONY: setup run test system-deps proto clean

# Debian packages the tests need (CI runs as root on a fresh machine): a real redis-server for the
# shared budget ledger tests, promtool (package prometheus) to check and unit-test the alert rules,
# chromium to check the HTML report in a real browser (tests/e2e/test_report_browser.py).
# kubectl, node and npm come with the machine image (k8s-check says so clearly when one is missing).
system-deps:
	@command -v redis-server >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || { \
		apt-get update -qq && apt-get install -y -qq redis-server prometheus >/dev/null; }
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@# xds-protos ships an old copy of the OpenTelemetry protos in the same files as opentelemetry-proto;
	@# whichever installs last wins. The OTLP exporter needs opentelemetry-proto's: put them back on top.
	$(PY) -m pip install --quiet --force-reinstall --no-deps \
		"opentelemetry-proto==$$($(PY) -c 'import importlib.metadata as m; print(m.version("opentelemetry-proto"))')"
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

setup: $(STAMP)

# The gateway on 127.0.0.1:$(PORT), with simulated providers for every provider whose key is not set.
run: setup
	$(PY) -m extproc dev --port $(PORT)

# Unit, simulator, packaging and manifest tests run on two workers (they share nothing: each picks free
# ports); the end-to-end tests, each a real Envoy + extproc stack with deadline checks, run one at a time.
test: setup system-deps k8s-check
	$(PY) -m pytest -q -p no:cacheprovider -n 2 tests/unit tests/k8s $(wildcard tests/test_*.py)
	$(PY) -m pytest -q -p no:cacheprovider tests/e2e

# Regenerate the status API's Python code (extproc/api/) from proto/ after editing the .proto.
proto: setup
	$(PY) -m grpc_tools.protoc -Iproto --python_out=. --grpc_python_out=. proto/extproc/api/status.proto

clean:
	rm -rf $(VENV) build *.egg-info

# ---- Kubernetes (k8s/) and the extproc image ----------------------------------------------
IMAGE ?= llm-gateway-extproc:0.1.0

.PHONY: image k8s-check k8s-sync

# The extproc image (Dockerfile). Needs a running Docker daemon.
image:
	@command -v docker >/dev/null 2>&1 || { echo "make image: docker not found"; exit 1; }
	@docker info >/dev/null 2>&1 || { echo "make image: the Docker daemon is not reachable"; exit 1; }
	docker build -t $(IMAGE) .

# Render every kustomize target under k8s/ and validate it offline (k8s/check.py). Needs
# kubectl (or kustomize), node + npm (CRD schemas, npm ci on first run) and the envoy binary.
k8s-check: setup
	$(PY) k8s/check.py

# Regenerate k8s/base/envoy.yaml and routing.yaml from envoy/envoy.yaml and config/routing.yaml.
k8s-sync: setup
	$(PY) k8s/check.py --sync

# ---- Benchmarks (bench/) ------------------------------------------------------------------------
# Envoy alone vs the full gateway (and PEERS=litellm) on a loopback mock upstream; prints the table
# and writes bench/results/latest.{md,json}. wrk comes from Debian; LiteLLM gets its own venv.
LITELLM_VERSION := 1.106.12
PEERS ?=

.PHONY: bench

bench: setup
	@command -v wrk >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
	@if echo "$(PEERS)" | grep -q litellm && [ ! -x bench/.venv-litellm/bin/litellm ]; then \
		$(PYTHON) -m venv bench/.venv-litellm && \
		bench/.venv-litellm/bin/pip install --quiet 'litellm[proxy]==$(LITELLM_VERSION)'; fi
	PYTHONPATH=. PEERS=$(PEERS) $(PY) -m bench
