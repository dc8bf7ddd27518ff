"""A start that fails says why. Local mode (goship's own supervisord and nginx, as here):
the service binds a port another process holds, so supervisord gives up with a spawn
error; the deploy's error carries the instance's log and names the holder and its pid."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import CliResult, need
from tests.e2e.helpers import example_repo, free_port

pytestmark = pytest.mark.slow
Run = Callable[..., CliResult]


@pytest.fixture
def squatter() -> Iterator[tuple[int, int]]:
    """A real listener on a port: (port, pid)."""
    port = free_port(15000, 29000)
    proc = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind",
                             "0.0.0.0"],  # noqa: S104
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port, proc.pid
    proc.terminate()
    proc.wait(timeout=10)


def test_a_held_port_fails_the_start_naming_its_holder(
        run_cli: Run, tmp_path: Path, squatter: tuple[int, int]) -> None:
    need("nginx")
    held, holder_pid = squatter
    base = tmp_path / "deploy"
    listen = free_port(10000, 15000)
    app_port = free_port(15000, 29000)
    # The service reads PORT, which run.env sets to the held port; goship hands its own port
    # in another variable the service ignores (a service whose port comes from its config
    # file behaves the same way).
    root = example_repo(tmp_path / "svc", toml=f"""
[app]
name = "startfail"
[build]
assets = ["templates", "static"]
[run]
port_env = "GOSHIP_PORT_UNUSED"
base_port = {app_port}
[run.env]
PORT = "{held}"
[run.health]
interval = 0.2
deadline = 5.0
[deploy]
base_path = "{base}"
[env.local]
local = true
[env.local.proxy]
listen = {listen}
""")
    try:
        r = run_cli("deploy", "local", "--skip-checks", cwd=root)
    finally:
        run_dir = base / "startfail" / "run"
        for pid_file, sig in (("nginx.pid", signal.SIGQUIT), ("supervisord.pid",
                                                               signal.SIGTERM)):
            with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
                os.kill(int((run_dir / pid_file).read_text()), sig)
    assert r.code == 1, r.out + r.err
    said = r.out + r.err
    assert "spawn error" in said, said  # what supervisord says ...
    assert f":{held}: bind: address already in use" in said, said  # ... the log's reason ...
    name = Path(f"/proc/{holder_pid}/comm").read_text().strip()  # as ss names it
    assert f"port {held} is held by {name} (pid {holder_pid})" in said, said  # ... and who
