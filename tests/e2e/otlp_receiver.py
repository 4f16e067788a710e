"""An in-process OTLP/gRPC trace receiver: what a collector or Jaeger would get."""

from __future__ import annotations

import threading
import time
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from extproc.devstack import free_port


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self._lock = threading.Lock()
        self.port = free_port()
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(self, self._server)
        self._server.add_insecure_port(f"127.0.0.1:{self.port}")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "Receiver":
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop(0)

    def Export(self, request, context):
        with self._lock:
            self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self) -> list[tuple[str, object]]:
        """(service.name, span) for everything received."""
        out = []
        with self._lock:
            for req in self.requests:
                for rs in req.resource_spans:
                    service = next((a.value.string_value for a in rs.resource.attributes if a.key == "service.name"),
                                   "")
                    for ss in rs.scope_spans:
                        out.extend((service, span) for span in ss.spans)
        return out

    def raw(self) -> bytes:
        with self._lock:
            return b"".join(r.SerializeToString() for r in self.requests)

    def wait_for(self, predicate, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate(self.spans())
            if result:
                return result
            time.sleep(0.1)
        raise AssertionError(f"spans never matched; got {[(s, sp.name) for s, sp in self.spans()][-20:]}")


def attributes(span) -> dict:
    out = {}
    for a in span.attributes:
        v = a.value
        kind = v.WhichOneof("value")
        out[a.key] = list(x.string_value for x in v.array_value.values) if kind == "array_value" else getattr(v, kind)
    return out
