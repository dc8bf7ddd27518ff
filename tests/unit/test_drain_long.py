"""The host-side wait of run.drain_timeout_long, run here on real sockets: it holds the
stop while a client keeps a connection to the color's port, runs it once the client
leaves, or at the timeout; the connection count `goship status` shows; the plan's words."""

from __future__ import annotations

import shlex
import socket
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from goship.config.model import Config
from goship.deploy.plan import HostPlan
from goship.deploy.scripts import CONNECTIONS, DRAIN_WAIT, STANDBY_CANCEL, STANDBY_SLEEPER


@pytest.fixture
def server() -> Iterator[tuple[socket.socket, int]]:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    yield s, s.getsockname()[1]
    s.close()


def connect(server: tuple[socket.socket, int]) -> tuple[socket.socket, socket.socket]:
    client = socket.create_connection(("127.0.0.1", server[1]))
    accepted, _ = server[0].accept()
    return client, accepted


def drain(tmp_path: Path, seconds: int, port: int) -> tuple[subprocess.Popen[bytes], Path]:
    script = tmp_path / "drain.sh"
    script.write_text(DRAIN_WAIT)
    stopped = tmp_path / "stopped"
    proc = subprocess.Popen(["/bin/sh", str(script), str(seconds), str(port), "--",
                             "touch", str(stopped)])
    return proc, stopped


def test_the_stop_waits_for_the_client_then_runs_when_it_leaves(
        tmp_path: Path, server: tuple[socket.socket, int]) -> None:
    client, accepted = connect(server)
    proc, stopped = drain(tmp_path, 60, server[1])
    try:
        time.sleep(2.5)
        assert proc.poll() is None  # a client still holds a connection: no stop yet
        assert not stopped.exists()
        client.close()
        accepted.close()
        assert proc.wait(timeout=20) == 0
        assert stopped.exists()
    finally:
        proc.kill()


def test_a_client_that_stays_is_cut_at_the_timeout(
        tmp_path: Path, server: tuple[socket.socket, int]) -> None:
    client, accepted = connect(server)
    try:
        proc, stopped = drain(tmp_path, 1, server[1])
        assert proc.wait(timeout=20) == 0
        assert stopped.exists()
    finally:
        client.close()
        accepted.close()


def test_without_clients_the_stop_runs_at_once(tmp_path: Path,
                                               server: tuple[socket.socket, int]) -> None:
    proc, stopped = drain(tmp_path, 60, server[1])
    assert proc.wait(timeout=20) == 0
    assert stopped.exists()


def test_supervisord_sleeper_drains_and_a_later_run_cancels_it_while_it_waits(
        tmp_path: Path, server: tuple[socket.socket, int]) -> None:
    """Without systemd the detached sleeper runs the same wait; its pid file stays until the
    stop ran, so a deploy taking the color cancels a drain still waiting for clients."""
    script = tmp_path / "drain.sh"
    script.write_text(DRAIN_WAIT)
    pid_file, stopped = tmp_path / "standby.blue.pid", tmp_path / "stopped"
    command = shlex.join(["/bin/sh", str(script), "60", str(server[1]), "--",
                          "touch", str(stopped)])
    client, accepted = connect(server)
    try:
        subprocess.run(["sh", "-c", STANDBY_SLEEPER, "goship-standby", str(pid_file), "1",
                        command], check=True, timeout=10)
        time.sleep(3)  # past the sleep: waiting for the client
        assert pid_file.exists()
        assert not stopped.exists()
        subprocess.run(["sh", "-c", STANDBY_CANCEL, "goship-standby-cancel", str(pid_file)],
                       check=True, timeout=10)
        assert not pid_file.exists()
    finally:
        client.close()
        accepted.close()
    time.sleep(2)  # the client left: a drain still running would stop now
    assert not stopped.exists()


def test_connections_counts_the_ports_established_ones(
        server: tuple[socket.socket, int]) -> None:
    def count(*ports: int) -> str:
        return subprocess.run(["sh", "-c", CONNECTIONS, "goship-connections",
                               *map(str, ports)], capture_output=True, text=True,
                              check=True).stdout.strip()

    assert count(server[1]) == "0"
    pairs = [connect(server) for _ in range(3)]
    try:
        assert count(server[1]) == "3"  # the server's side only, not the clients'
    finally:
        for a, b in pairs:
            a.close()
            b.close()


def config(extra: str) -> Config:
    return Config.model_validate(tomllib.loads('[app]\nname = "shop"\n' + extra))


def test_drain_timeout_long_defaults_to_five_minutes_and_refuses_a_negative() -> None:
    assert config("").run.drain_timeout_long == 300
    assert config("[run]\ndrain_timeout_long = 0\n").run.drain_timeout_long == 0
    with pytest.raises(ValidationError, match="drain_timeout_long"):
        config("[run]\ndrain_timeout_long = -1\n")


def plan(after: str, drain: float) -> HostPlan:
    return HostPlan(host="h1", action="deploy", release="v2",
                    live={"color": "blue", "release": "v1"}, color="green",
                    ports={"blue": [8080], "green": [8180]}, upload="upload", env="write",
                    start="start", stop_first=[], gate=1, switch="lua", after=after,  # type: ignore[arg-type]
                    standby_seconds=600.0 if after == "standby" else 0.0, drift=[],
                    prune=[], drain_seconds=drain)


def test_the_plan_says_how_long_the_old_color_drains() -> None:
    assert "  then: drain and stop blue, once its open connections (websockets, SSE) close, " \
           "20s at most" in plan("stop", 20).lines()
    assert "  then: blue stays warm for 600s (rollback window), then stops, once its open " \
           "connections (websockets, SSE) close, 300s at most" in plan("standby", 300).lines()
    assert "  then: drain and stop blue" in plan("stop", 0).lines()
