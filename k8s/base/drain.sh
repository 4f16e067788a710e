#!/bin/bash
# preStop hook of the Envoy container (k8s/base/deployment.yaml).
#
# Envoy exits at once on SIGTERM, cutting every open request, LLM streams included.
# So before Kubernetes sends it, this script
#   1. fails Envoy's health checks and keeps serving while the endpoint removal
#      reaches kube-proxy / the mesh (ENDPOINT_DELAY_SECONDS),
#   2. drains the client listener (HTTP/1.1 "Connection: close", HTTP/2 GOAWAY:
#      keep-alive clients reconnect to another pod), and
#   3. waits until no client request is in flight, at most DRAIN_MAX_SECONDS.
# The extproc sidecar keeps running all along: Kubernetes stops it after Envoy exits.
# Needs only bash (its /dev/tcp) and sed, both in the official Envoy image.
set -u
ADMIN_PORT=${ADMIN_PORT:-9901}
deadline=$(( SECONDS + ${DRAIN_MAX_SECONDS:-290} ))

admin() {  # METHOD PATH: print the admin interface's response body
  exec 3<>"/dev/tcp/127.0.0.1/${ADMIN_PORT}" || return 1
  printf '%s %s HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n' "$1" "$2" >&3
  sed '1,/^\r$/d' <&3
  exec 3<&-
}

admin POST /healthcheck/fail >/dev/null
sleep "${ENDPOINT_DELAY_SECONDS:-5}"
# inboundonly: the client listener (traffic_direction INBOUND); the health listener
# stays up so the kubelet's probes keep answering during the drain.
admin POST '/drain_listeners?graceful&inboundonly' >/dev/null
while (( SECONDS < deadline )); do
  active=$(admin GET '/stats?filter=^http\.llm_gateway\.downstream_rq_active$' | sed -n 's/^.*: //p')
  [ "${active:-0}" -eq 0 ] 2>/dev/null && break
  sleep 1
done
exit 0
