"""The status API: live health per model and provider, in flight now, ejections.

Served on the ext_proc gRPC port as ``llm_gateway.v1.GatewayStatus`` (proto in
proto/extproc/api/status.proto) and as JSON at ``GET /status`` on the status
HTTP port, beside the Prometheus metrics at ``GET /metrics``. Both read the same
health tracker the routing policy reads.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .api import status_pb2, status_pb2_grpc
from .health import HealthTracker
from .metrics import CONTENT_TYPE, Metrics

if TYPE_CHECKING:
    from .bookkeeping import Bookkeeping
    from .server import Processor


class StatusService(status_pb2_grpc.GatewayStatusServicer):
    def __init__(self, processor: "Processor", tracker: HealthTracker, metrics: Metrics | None = None,
                 books: "Bookkeeping | None" = None):
        self.processor = processor
        self.tracker = tracker
        self.metrics = metrics
        self.books = books

    def report(self) -> dict[str, Any]:
        snapshot = self.tracker.snapshot()
        snapshot["active_requests"] = len(self.processor.exchanges)
        return snapshot

    async def GetStatus(self, request, context) -> status_pb2.GetStatusResponse:
        report = self.report()
        return status_pb2.GetStatusResponse(
            window_s=report["window_s"], active_requests=report["active_requests"],
            models=[_target(name, s) for name, s in report["models"].items()],
            providers=[_target(name, s) for name, s in report["providers"].items()])

    def add_to(self, server) -> None:
        status_pb2_grpc.add_GatewayStatusServicer_to_server(self, server)

    async def serve_http(self, address: str) -> web.AppRunner:
        app = web.Application()
        app.add_routes([web.get("/status", self._http_status), web.get("/metrics", self._http_metrics)])
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        host, _, port = address.rpartition(":")
        await web.TCPSite(runner, host or "127.0.0.1", int(port)).start()
        return runner

    async def _http_status(self, _: web.Request) -> web.Response:
        return web.Response(text=json.dumps(self.report(), indent=1), content_type="application/json")

    async def _http_metrics(self, _: web.Request) -> web.Response:
        if self.metrics is None:
            raise web.HTTPNotFound()
        self.metrics.observe_health(self.tracker.snapshot())
        if self.books is not None:
            self.metrics.observe_budgets(self.books.budgets.report())
        return web.Response(body=self.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})


def _target(name: str, s: dict[str, Any]) -> status_pb2.TargetHealth:
    def pct(values: dict[str, float | None]) -> status_pb2.Percentiles:
        return status_pb2.Percentiles(**{k: v for k, v in values.items() if v is not None})

    return status_pb2.TargetHealth(
        name=name, requests=s["requests"], failures=s["failures"], error_rate=s["error_rate"],
        timeouts=s["timeouts"], rate_limited=s["rate_limited"], resets=s["resets"],
        latency_ms=pct(s["latency_ms"]), ttft_ms=pct(s["ttft_ms"]), inflight=s["inflight"],
        ejected=s["ejected"], ejected_for_s=s["ejected_for_s"] or 0.0, ejections=s["ejections"],
        half_open=s["half_open"], last_ejection_reason=s["last_ejection_reason"])
