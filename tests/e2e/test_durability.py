"""extproc killed or stopped under traffic: what the ledger, the budgets and the clients see.

SIGKILL: every request whose client saw the whole answer has its final record (written before the
answer ended); requests in flight are left as in_flight records, which the restarted extproc (the
dev stack restarts it, as `make run` does) marks interrupted; the budget counter matches the ledger.
SIGTERM: readiness fails at once, requests that keep coming during the drain are served (no 500),
the stream in flight finishes, and the process exits 0.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import grpc
import httpx
import openai
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from extproc.devstack import Stack
from extproc.keys import digest

from .conftest import CLIENT_KEY, MODELS, fault, ledger_records, routing_with, scrape, shipped_routing, wait_for

METERED_KEY = "sk-metered-tenant"   # tenant "metered", whose daily budget the tests read

PROMPT = "Write about harbours, tides and the boats that come and go with them, at length please"


@pytest.fixture
def gw(tmp_path):
    path = routing_with(tmp_path, {
        **{f"/models/{model}/price": {"input": 2.0, "output": 100.0} for model in shipped_routing()["models"]},
        "/budgets": {"tenants": {"metered": {"daily": 1000}}},
        "/tenants/metered": {"workload": "interactive", "api_keys_sha256": [digest(METERED_KEY)]}})
    stack = Stack(routing=path, simulate=list(MODELS), workdir=tmp_path, demo_key=CLIENT_KEY).start()
    yield stack
    stack.stop()


def client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=METERED_KEY, max_retries=0, timeout=30)


def budget_spent(gw) -> float:
    text = scrape(gw)
    for line in text.splitlines():
        if line.startswith('llm_gateway_budget_remaining_usd{name="metered:daily"'):
            return 1000 - float(line.rsplit(" ", 1)[1])
    raise AssertionError("no budget gauge")


class Traffic:
    """Clients in threads: quick whole answers in a loop, and slow streams, each noting how it ended."""

    def __init__(self, gw, streams: int):
        self.gw = gw
        self.completed: dict[str, str] = {}     # request id -> "json" / "stream", answer seen whole
        self.broken: set[str] = set()           # request ids whose answer broke off
        self.statuses: list[int] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._quick, daemon=True)]
        self.threads += [threading.Thread(target=self._stream, daemon=True) for _ in range(streams)]

    def start(self) -> "Traffic":
        for t in self.threads:
            t.start()
        return self

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)

    def _quick(self) -> None:
        c = client(self.gw)
        while not self.stop.is_set():
            try:
                raw = c.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
                raw.parse()
                self.statuses.append(raw.status_code)
                self.completed[raw.headers["x-request-id"]] = "json"
            except openai.APIStatusError as exc:
                self.statuses.append(exc.status_code)
            except openai.APIError:
                self.statuses.append(0)
            time.sleep(0.02)

    def _stream(self) -> None:
        c = client(self.gw)
        stream = c.chat.completions.create(model="claude-haiku-4-5", stream=True,
                                           messages=[{"role": "user", "content": PROMPT}])
        request_id = stream.response.headers["x-request-id"]
        try:
            finished = [chunk.choices[0].finish_reason for chunk in stream if chunk.choices]
            if finished and finished[-1]:
                self.completed[request_id] = "stream"
            else:
                self.broken.add(request_id)
        except openai.APIError:
            self.broken.add(request_id)


def test_sigkill_under_traffic_loses_no_finished_request_and_the_restart_closes_the_open_ones(gw):
    fault(gw, "anthropic", chunk_interval_ms=150)
    traffic = Traffic(gw, streams=4).start()
    wait_for(lambda: len(traffic.completed) >= 10, what="some finished requests")
    os.kill(gw.extproc_pid, signal.SIGKILL)
    traffic.join()

    # What was finished is there, final (the restarted extproc never saw those requests).
    rows = ledger_records(gw)
    finished = dict(traffic.completed)
    assert finished and all(rid in rows and rows[rid].outcome == "ok" for rid in finished), \
        [(rid, rows.get(rid)) for rid in finished if rid not in rows or rows[rid].outcome != "ok"]
    assert len(traffic.broken) == 4        # the slow streams were open when extproc died
    # Each open one left its in_flight record, billed its prompt estimate (interrupted once restarted).
    assert all(rows[rid].outcome in ("in_flight", "interrupted") and rows[rid].cost_usd > 0
               for rid in traffic.broken), [rows.get(rid) for rid in traffic.broken]

    # The dev stack restarts extproc; the restarted one closes the dead one's records.
    wait_for(lambda: gw.restarts == 1, what="the extproc restart")
    rows = wait_for(lambda: (r := ledger_records(gw)) and all(r[rid].outcome == "interrupted"
                                                            for rid in traffic.broken) and r,
                    what="interrupted records")
    assert all(rows[rid].status == 502 for rid in traffic.broken)
    answer = wait_for(lambda: _try(gw), what="a request answered after the restart")
    assert answer.status_code == 200
    # The budget counter agrees with the records, though the counter's last sync was lost with the process.
    rows = ledger_records(gw)
    spent = sum(r.cost_usd for r in rows.values() if r.tenant == "metered")
    assert budget_spent(gw) == pytest.approx(spent, abs=1e-6)


def _try(gw):
    try:
        return client(gw).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    except openai.APIError:
        return None


def test_sigterm_fails_readiness_first_then_drains_without_refusing_new_requests(gw):
    fault(gw, "anthropic", chunk_interval_ms=100)
    traffic = Traffic(gw, streams=1).start()
    wait_for(lambda: len(traffic.completed) >= 3, what="some finished requests")
    channel = grpc.insecure_channel(f"127.0.0.1:{gw.extproc_port}")
    health = health_pb2_grpc.HealthStub(channel)
    assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    extproc = gw._extproc
    os.kill(extproc.pid, signal.SIGTERM)
    wait_for(lambda: health.Check(health_pb2.HealthCheckRequest()).status
             == health_pb2.HealthCheckResponse.NOT_SERVING, timeout=5, what="NOT_SERVING")
    during = len(traffic.statuses)
    time.sleep(1.5)   # requests keep coming while it drains
    assert len(traffic.statuses) > during + 5
    traffic.join()
    channel.close()
    assert extproc.wait(timeout=60) == 0
    # Nothing got a 500 (or a broken connection); the stream in flight finished.
    assert set(traffic.statuses) == {200}, traffic.statuses
    assert not traffic.broken and "stream" in traffic.completed.values()


def test_a_terminated_extproc_is_replaced_within_seconds(gw):
    """make run supervises extproc: a SIGTERM'd one drains (serving what keeps coming, as in
    production), exits as soon as its streams are done (Envoy's access-log streams held it for its
    whole 30 s grace, then 503s for 15 s) and the dev stack's next one serves."""
    seen: list[tuple[float, int]] = []
    stop = threading.Event()

    def loop():
        c = client(gw)
        while not stop.is_set():
            try:
                status = c.chat.completions.with_raw_response.create(
                    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]).status_code
            except openai.APIStatusError as exc:
                status = exc.status_code
            except openai.APIError:
                status = 0
            seen.append((time.monotonic(), status))
            time.sleep(0.02)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    wait_for(lambda: len(seen) >= 3, what="some answers")
    old = gw._extproc
    os.kill(old.pid, signal.SIGTERM)
    # Under steady traffic it drains for half its grace (15 s), then stops and exits.
    assert old.wait(timeout=25) == 0
    exited = time.monotonic()
    wait_for(lambda: gw.restarts == 1 and any(t > exited and s == 200 for t, s in seen), timeout=20,
             what="an answer from the next extproc")
    stop.set()
    thread.join(timeout=30)
    refused = [t for t, s in seen if s != 200]
    assert set(s for _, s in seen) <= {200, 503}, seen      # never a 500 or a broken connection
    assert not refused or refused[-1] - refused[0] < 5, f"503s for {refused[-1] - refused[0]:.1f} s"


def test_make_run_keeps_its_ledger_where_report_looks_and_says_where(tmp_path):
    import subprocess
    import sys

    from extproc.devstack import ROOT, free_port

    path = routing_with(tmp_path, {"/ledger": {"url": f"sqlite://{tmp_path}/kept.db"}})
    env = {k: v for k, v in os.environ.items() if k not in ("LLM_GATEWAY_LEDGER_URL", "LLM_GATEWAY_CONFIG")}
    port = free_port()
    dev = subprocess.Popen([sys.executable, "-m", "extproc", "dev", "--config", str(path), "--port", str(port)],
                           cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in dev.stdout:
            lines.append(line)
            if line.startswith("demo key:"):
                break
        assert f"usage ledger: sqlite://{tmp_path}/kept.db" in "".join(lines), lines
        key = lines[-1].split(":", 1)[1].strip()
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=30,
                            headers={"authorization": f"Bearer {key}"},
                            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
        assert answer.status_code == 200
    finally:
        dev.send_signal(signal.SIGTERM)
        dev.wait(timeout=60)
    report = subprocess.run([sys.executable, "-m", "extproc", "report", "--premium", "gpt-4o"], cwd=tmp_path,
                            env={**env, "LLM_GATEWAY_CONFIG": str(path)}, capture_output=True, text=True, timeout=60)
    assert report.returncode == 0, report.stderr
    assert "requests            1 " in report.stdout and "gpt-4o-mini" in report.stdout
