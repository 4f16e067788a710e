"""Fixtures shared by the unit and end-to-end tests: a real redis-server (Debian's redis-server
package, installed by make test) for the ledger and budget tests."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest


def _free_port() -> int:
    from extproc.devstack import free_port   # below the ephemeral range: see its docstring
    return free_port()


def start_redis(tmp_path):
    """A throwaway redis-server (Debian package ``redis-server``); fails, never skips, when it is missing."""
    exe = shutil.which("redis-server")
    assert exe, "redis-server not found on PATH: install Debian's redis-server package (make test's setup does)"
    port = _free_port()
    proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
                s.sendall(b"PING\r\n")
                if s.recv(16).startswith(b"+PONG"):
                    break
        except OSError:
            pass
        assert proc.poll() is None, "redis-server exited at start"
        assert time.monotonic() < deadline, "redis-server did not answer PING within 10 s"
        time.sleep(0.05)
    return proc, f"redis://127.0.0.1:{port}/0"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    proc, url = start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    proc.terminate()
    proc.wait(5)
