#!/usr/bin/env python3
"""grpc-health-probe ADDRESS [SERVICE]: exit 0 when the gRPC health service says SERVING.

The extproc image's probe client (k8s/base/deployment.yaml): extproc listens on loopback
only, so the kubelet's own gRPC probe cannot reach it. ADDRESS is HOST:PORT or
unix:PATH; SERVICE defaults to "" (the whole server). Exit 1 when not serving or
unreachable, with the reason on stderr.
"""

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main(argv: list[str]) -> int:
    if not 1 <= len(argv) <= 2:
        print(__doc__.splitlines()[0], file=sys.stderr)
        return 2
    address, service = argv[0], (argv[1] if len(argv) == 2 else "")
    try:
        with grpc.insecure_channel(address) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=3)
    except grpc.RpcError as exc:
        print(f"grpc-health-probe: {address} {service!r}: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        print(f"grpc-health-probe: {address} {service!r}: {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
