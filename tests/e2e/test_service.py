"""The extproc process itself: gRPC health, a stage served over a Unix socket, graceful SIGTERM."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import time

import grpc
import pytest
from envoy.config.core.v3 import base_pb2
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3 import external_processor_pb2_grpc as pb_grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from extproc.devstack import DEFAULT_ROUTING, ROOT
from extproc.keys import KEYS_FILE_ENV, KeyEntry, digest

KEY = "sk-service-test"   # tenant "demo" of the shipped config


@pytest.fixture
def extproc(tmp_path):
    address = f"unix:{tmp_path}/extproc.sock"
    keys = tmp_path / "keys.yaml"
    keys.write_text("keys:\n" + KeyEntry("demo", "demo", digest(KEY)).line() + "\n")
    proc = subprocess.Popen([sys.executable, "-m", "extproc", "serve", "--config", str(DEFAULT_ROUTING),
                             "--listen", address, "--grace", "10"], cwd=ROOT,
                            env={**os.environ, "LLM_GATEWAY_LEDGER_URL": f"sqlite:///{tmp_path}/ledger.db",
                                 KEYS_FILE_ENV: str(keys)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    channel = grpc.insecure_channel(address)
    grpc.channel_ready_future(channel).result(timeout=20)
    yield proc, channel
    channel.close()
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def _headers(**values: str) -> pb.ProcessingRequest:
    return pb.ProcessingRequest(request_headers=pb.HttpHeaders(headers=base_pb2.HeaderMap(headers=[
        base_pb2.HeaderValue(key=k.replace("_", "-").replace("PSEUDO-", ":"), raw_value=v.encode())
        for k, v in values.items()])))


def test_health_reports_serving(extproc):
    _, channel = extproc
    stub = health_pb2_grpc.HealthStub(channel)
    for service in ("", "envoy.service.ext_proc.v3.ExternalProcessor"):
        assert stub.Check(health_pb2.HealthCheckRequest(service=service)).status == \
            health_pb2.HealthCheckResponse.SERVING


def test_sigterm_lets_an_in_flight_stream_finish(extproc):
    proc, channel = extproc
    stub = pb_grpc.ExternalProcessorStub(channel)
    outbox: queue.Queue = queue.Queue()

    def messages():
        while (item := outbox.get()) is not None:
            yield item

    responses = stub.Process(messages(), metadata=(("x-llm-stage", "router"),))
    outbox.put(_headers(PSEUDO_method="POST", PSEUDO_path="/v1/chat/completions", content_type="application/json",
                        authorization=f"Bearer {KEY}"))
    assert next(responses).HasField("request_headers")

    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert proc.poll() is None  # still draining: the stream is open

    body = json.dumps({"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}]}).encode()
    outbox.put(pb.ProcessingRequest(request_body=pb.HttpBody(body=body, end_of_stream=True)))
    routed = next(responses)
    set_headers = {h.header.key: h.header.raw_value.decode() for h in routed.request_body.response.header_mutation.set_headers}
    assert set_headers["x-llm-try-1"] == "anthropic"
    assert routed.request_body.response.clear_route_cache
    outbox.put(None)
    assert proc.wait(timeout=15) == 0


def test_a_broken_stream_fails_only_that_request(extproc):
    _, channel = extproc
    stub = pb_grpc.ExternalProcessorStub(channel)
    # The upstream stage asked about a request it never saw: an error for it alone.
    (reply,) = list(stub.Process(iter([_headers(x_request_id="unknown")]), metadata=(("x-llm-stage", "upstream"),)))
    assert reply.immediate_response.status.code == 500
    # The service still answers the next request.
    (models,) = list(stub.Process(iter([pb.ProcessingRequest(request_headers=pb.HttpHeaders(
        headers=base_pb2.HeaderMap(headers=[base_pb2.HeaderValue(key=":method", raw_value=b"GET"),
                                            base_pb2.HeaderValue(key=":path", raw_value=b"/v1/models"),
                                            base_pb2.HeaderValue(key="authorization",
                                                                 raw_value=f"Bearer {KEY}".encode())]),
        end_of_stream=True))]), metadata=(("x-llm-stage", "router"),)))
    assert models.immediate_response.status.code == 200
