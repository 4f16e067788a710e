"""Envoy's word on how a stream that ended early ended: its gRPC access log (ALS), served here.

The processor alone cannot always tell a client that went away from a provider that cut the
stream (see endings.py). Envoy can: its access log entry carries response flags (DC: downstream
connection termination; UC/UR/UPE: the upstream reset; UT/SI: a timeout). envoy/envoy.yaml sends
the entries that have a flag to this service (``envoy.service.accesslog.v3.AccessLogService``,
cluster ``extproc``, flushed every 50 ms); ``Verdicts`` keeps them by request id (the
``x-request-id`` the router stage set, the exchange's key) for the settlement that waits on them.
"""

from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator

from envoy.service.accesslog.v3 import als_pb2, als_pb2_grpc

from .endings import CLIENT_CLOSED, TIMED_OUT, UPSTREAM_RESET

KEEP_S = 60.0   # a verdict nobody asked for is forgotten after this long


def verdict(flags) -> str | None:
    """The ending Envoy's response flags (``envoy.data.accesslog.v3.ResponseFlags``) name, or None."""
    if flags.upstream_request_timeout or flags.stream_idle_timeout or flags.duration_timeout:
        return TIMED_OUT
    if (flags.upstream_connection_termination or flags.upstream_remote_reset or flags.upstream_protocol_error
            or flags.upstream_connection_failure):
        return UPSTREAM_RESET
    if flags.downstream_connection_termination or flags.downstream_remote_reset:
        return CLIENT_CLOSED
    return None


class Verdicts:
    """Request id -> how Envoy saw the stream end; waited on by the settlement of an unclear ending."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[str, float]] = {}
        self._waiting: dict[str, asyncio.Future] = {}

    def note(self, request_id: str, ending: str) -> None:
        waiter = self._waiting.pop(request_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(ending)
            return
        now = time.monotonic()
        self._seen[request_id] = (ending, now)
        if len(self._seen) > 10_000:   # entries for requests that settled without asking
            self._seen = {k: v for k, v in self._seen.items() if now - v[1] < KEEP_S}

    async def wait(self, request_id: str, timeout_s: float) -> str | None:
        seen = self._seen.pop(request_id, None)
        if seen is not None:
            return seen[0]
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = waiter
        try:
            return await asyncio.wait_for(waiter, timeout_s)
        except asyncio.TimeoutError:
            return None
        finally:
            self._waiting.pop(request_id, None)


LOG_NAME = "llm_gateway_endings"   # envoy.yaml's log_name for these entries


class AccessLogService(als_pb2_grpc.AccessLogServiceServicer):
    """The one AccessLogService of the server: streams whose first message names ``LOG_NAME`` feed
    ``verdicts``; any other log (the router's upstream log of attempts) goes to ``others``."""

    def __init__(self, verdicts: Verdicts, others: als_pb2_grpc.AccessLogServiceServicer | None = None):
        self.verdicts = verdicts
        self.others = others
        self._closed: asyncio.Future | None = None   # set by close(): every stream ends

    async def StreamAccessLogs(self, requests: AsyncIterator[als_pb2.StreamAccessLogsMessage], context):
        messages = self._until_closed(requests)
        try:
            first = await messages.__anext__()
        except StopAsyncIteration:
            return als_pb2.StreamAccessLogsResponse()
        # Envoy names its log in the first message of each stream only.
        if first.identifier.log_name != LOG_NAME and self.others is not None:
            async def replay():
                yield first
                async for message in messages:
                    yield message
            return await self.others.StreamAccessLogs(replay(), context)
        self._note(first)
        async for message in messages:
            self._note(message)
        return als_pb2.StreamAccessLogsResponse()

    async def _until_closed(self, requests: AsyncIterator[als_pb2.StreamAccessLogsMessage]):
        """Envoy's messages on one stream until it ends it or ``close`` is called: then the handler
        returns, and the stream ends with OK (a cancelled handler left the call open in gRPC's core, and
        the server's stop waited out its whole grace for it)."""
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
        closed, incoming = self._closed, requests.__aiter__()
        while not closed.done():
            following = asyncio.ensure_future(incoming.__anext__())
            await asyncio.wait((following, closed), return_when=asyncio.FIRST_COMPLETED)
            if not following.done():
                following.cancel()
                return
            try:
                yield following.result()
            except StopAsyncIteration:
                return

    def _note(self, message: als_pb2.StreamAccessLogsMessage) -> None:
        for entry in message.http_logs.log_entry:
            ending = verdict(entry.common_properties.response_flags)
            request_id = entry.request.request_id
            if ending is not None and request_id:
                self.verdicts.note(request_id, ending)

    def close(self) -> None:
        """End Envoy's log streams (they last as long as Envoy's connection): the server's stop waits
        for every open stream, and Envoy reconnects to whoever serves next."""
        if self._closed is None:
            self._closed = asyncio.get_running_loop().create_future()
        if not self._closed.done():
            self._closed.set_result(None)

    def add_to(self, server) -> None:
        als_pb2_grpc.add_AccessLogServiceServicer_to_server(self, server)
