"""Checks of the bench harness itself (not run by `make test`): PYTHONPATH=. .venv/bin/python -m pytest bench/test_bench.py"""

from __future__ import annotations

import asyncio
import json

import pytest

from bench import configs, mock, report
from bench.client import Connection, request_bytes
from extproc import envoy_config
from bench.stack import free_port

PORTS = dict(listen_port=10001, admin_port=10002, openai_port=10003, anthropic_port=10004)


@pytest.mark.parametrize("kind", ["gateway", "floor"])
def test_envoy_configs_validate(tmp_path, kind):
    config = configs.gateway(extproc="127.0.0.1:10005", **PORTS) if kind == "gateway" else configs.floor(**PORTS)
    path = tmp_path / f"{kind}.yaml"
    envoy_config.dump(config, path)
    configs.validate(path)
    assert configs.has_ext_proc(config) == (kind == "gateway")


def test_floor_keeps_the_listener_and_retry_policy():
    gateway, floor = configs.gateway(extproc="127.0.0.1:1", **PORTS), configs.floor(**PORTS)
    hcm = lambda c: c["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    assert hcm(floor)["local_reply_config"] == hcm(gateway)["local_reply_config"]
    route = hcm(floor)["route_config"]["virtual_hosts"][0]["routes"][0]["route"]
    assert route["cluster"] == "provider_openai" and "retry_policy" in route   # no egress hop in the floor


def test_mock_speaks_both_apis_and_fails_on_schedule():
    async def scenario():
        port = free_port()
        task = asyncio.ensure_future(mock.serve([port]))
        await asyncio.sleep(0.2)
        conn = await Connection.open(port)
        status, body = await conn.request(request_bytes(port, b'{"model":"m"}'))
        assert status == 200 and json.loads(body)["object"] == "chat.completion"
        chunks = []
        status, body = await conn.request(request_bytes(port, b'{"stream": true}', path="/v1/messages"), chunks)
        assert status == 200 and body.count(b"event: content_block_delta") == 50 and b"message_stop" in body
        # A chunked request body (what Envoy sends after the upstream stage replaced it).
        knobs = b'{"fail_every": 2}'
        raw = (b"POST /_mock/config HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n"
               b"%x\r\n%s\r\n0\r\n\r\n" % (len(knobs), knobs))
        status, body = await conn.request(raw)
        assert json.loads(body)["fail_every"] == 2
        statuses = [(await conn.request(request_bytes(port, b"{}")))[0] for _ in range(4)]
        assert statuses.count(503) == 2
        conn.close()
        task.cancel()
    asyncio.run(scenario())


def test_report_renders_a_minimal_run():
    out = {"machine": {"nproc": 2, "cpu": "x", "kernel": "k", "python": "3", "envoy": "1.40.0", "wrk": "wrk"},
           "layout": {"server_cpus": "0", "load_cpus": "1"},
           "settings": {"seconds": 1, "concurrency": [1], "chunks": 50, "open_loop_rps": 200, "pause_ms": 2},
           "scenarios": {"passthrough": "p"}, "open_loop": [], "streams": [], "memory": {}, "pending": {},
           "wrk": [{"scenario": "passthrough", "connections": 1, "target": t, "rps": r, "p50_us": p, "p99_us": p * 2,
                    "non2xx": 0, "socket_errors": 0} for t, r, p in (("envoy", 2000, 400), ("gateway", 1000, 1200))]}
    text = report.render(out)
    assert "| c=1 passthrough: added p50 | <= 1.0 ms | 0.80 ms | **holds** |" in text

