"""examples/hello-gin is a real Gin service; its routes and test knobs work as documented."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import EXAMPLE
from tests.e2e.helpers import free_port

pytestmark = pytest.mark.slow


def get(port: int, path: str, timeout: float = 5) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_up(port: int, proc: subprocess.Popen[bytes], deadline: float = 10) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"service exited {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("service did not listen")


@contextmanager
def service(binary: Path, **env: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    proc = subprocess.Popen([str(binary)], cwd=EXAMPLE, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            env={"PATH": os.environ["PATH"], "PORT": str(port), **env})
    try:
        if "HELLO_TEST_CRASH_AFTER" not in env and "HELLO_TEST_START_DELAY" not in env:
            wait_up(port, proc)
        yield port, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def test_routes_version_templates_static(hello_bin: Path) -> None:
    with service(hello_bin) as (port, _):
        assert get(port, "/health") == (200, '{"status":"ok"}')
        code, body = get(port, "/version")
        assert code == 200
        assert json.loads(body) == {"version": "v9.8.7-test", "commit": "abc1234",
                                    "build_time": "2026-01-02T03:04:05Z"}
        code, body = get(port, "/api/items")
        assert code == 200
        assert json.loads(body)["items"][0]["name"] == "gopher"
        code, body = get(port, "/")
        assert code == 200
        assert "<h1>hello-gin v9.8.7-test</h1>" in body  # template read from the working dir
        code, body = get(port, "/static/style.css")
        assert code == 200
        assert "font-family" in body


def test_logs_are_json_lines(hello_bin: Path) -> None:
    with service(hello_bin) as (port, proc):
        get(port, "/api/items")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=10)
    records = [json.loads(line) for line in out.decode().splitlines()]
    requests = [r for r in records if r.get("msg") == "request"]
    assert requests[0]["path"] == "/api/items"
    assert requests[0]["status"] == 200
    assert records[-1]["msg"] == "stopped"


def test_failing_health_knob(hello_bin: Path) -> None:
    with service(hello_bin, HELLO_TEST_FAIL_HEALTH="1") as (port, _):
        assert get(port, "/health")[0] == 503
        assert get(port, "/api/items")[0] == 200


def test_error_percent_knob(hello_bin: Path) -> None:
    with service(hello_bin, HELLO_TEST_ERROR_PERCENT="30") as (port, _):
        codes = [get(port, "/api/items")[0] for _ in range(300)]
        assert get(port, "/health")[0] == 200  # health is never failed by this knob
    errors = codes.count(500)
    assert set(codes) == {200, 500}
    assert 45 <= errors <= 135  # 30% of 300, far outside chance either way


def test_latency_knob(hello_bin: Path) -> None:
    with service(hello_bin, HELLO_TEST_LATENCY="300ms") as (port, _):
        start = time.monotonic()
        assert get(port, "/health")[0] == 200
        assert time.monotonic() - start >= 0.3


def test_crash_knob(hello_bin: Path) -> None:
    with service(hello_bin, HELLO_TEST_CRASH_AFTER="300ms") as (_, proc):
        assert proc.wait(timeout=10) == 2


def test_slow_start_knob(hello_bin: Path) -> None:
    with service(hello_bin, HELLO_TEST_START_DELAY="700ms") as (port, proc):
        time.sleep(0.3)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        wait_up(port, proc)
        assert get(port, "/health")[0] == 200


def test_sigterm_drains_in_flight_requests(hello_bin: Path) -> None:
    with service(hello_bin, HELLO_TEST_LATENCY="1s", DRAIN_TIMEOUT="5s") as (port, proc):
        result: dict[str, object] = {}

        def slow() -> None:
            result["answer"] = get(port, "/api/items")

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.3)  # the request is in flight
        proc.send_signal(signal.SIGTERM)
        t.join(timeout=10)
        assert result["answer"] is not None
        answer = result["answer"]
        assert isinstance(answer, tuple)
        assert answer[0] == 200  # finished, not cut
        assert proc.wait(timeout=10) == 0


def test_once_told_to_stop_a_keep_alive_client_is_told_to_close(hello_bin: Path) -> None:
    """A client straight on the service (a Kubernetes Service, no proxy) is told to close
    its keep-alive connection with an answer, instead of having it closed under it."""
    import http.client

    with service(hello_bin, DRAIN_TIMEOUT="4s") as (port, proc):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/health")
        first = conn.getresponse()
        first.read()
        assert first.getheader("Connection") is None  # kept alive
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.2)  # the signal is handled (the drain lasts 1s)
        conn.request("GET", "/health")
        second = conn.getresponse()
        assert second.status == 200
        assert second.getheader("Connection") == "close"
        conn.close()
        assert proc.wait(timeout=10) == 0
