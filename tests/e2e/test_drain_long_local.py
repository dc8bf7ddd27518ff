"""run.drain_timeout_long under goship's own supervisord (`local = true`, this machine, no
lab): the detached sleeper keeps the old color for its SSE and websocket clients after the
deploy returned, under a steady load (0 failed requests), and stops it once they leave."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, CliResult, need
from tests.e2e.helpers import free_port, git
from tests.e2e.load import Load
from tests.e2e.test_drain_long import DRAIN, open_clients, wait_for

pytestmark = pytest.mark.slow
Run = Callable[..., CliResult]


@pytest.fixture
def local_app(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    need("nginx")
    need("wrk")
    # supervisord's socket path must stay short (AF_UNIX): not under pytest's tmp_path.
    root, base = tmp_path / "streams", Path(tempfile.mkdtemp(prefix="gsdl"))
    listen = free_port(10000, 15000)
    app_port = free_port(15000, 29000) // 2 * 2
    shutil.copytree(REPO / "tests" / "projects" / "drain-stream", root)
    (root / "goship.toml").write_text(f"""
[app]
name = "streams-local"
[app.stamp]
"main.version" = "{{version}}"
[run]
base_port = {app_port}
drain_timeout = 3.0
drain_timeout_long = {DRAIN}
[run.health]
interval = 0.2
[deploy]
base_path = "{base}"
rollback_window = 0
[proxy]
stream_paths = ["/events"]
[env.local]
local = true
[env.local.proxy]
listen = {listen}
""")
    git(root, "init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "v1")
    git(root, "tag", "v1.0.0")
    yield root, listen
    run = base / "streams-local" / "run"
    for sleeper in run.glob("standby.*.pid"):  # a drain still waiting: not needed now
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.killpg(int(sleeper.read_text()), signal.SIGTERM)
    for pid_file, sig in (("nginx.pid", signal.SIGQUIT), ("supervisord.pid", signal.SIGTERM)):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
            os.kill(int((run / pid_file).read_text()), sig)
    time.sleep(1)
    shutil.rmtree(base, ignore_errors=True)


def test_supervisord_keeps_the_old_color_for_its_clients(run_cli: Run,
                                                         local_app: tuple[Path, int]) -> None:
    root, listen = local_app
    r = run_cli("deploy", "local", "--skip-checks", cwd=root)
    assert r.code == 0, r.out + r.err

    def status() -> dict[str, object]:
        got = json.loads(run_cli("status", "local", "--json", cwd=root).out)
        return dict(next(iter(got["hosts"].values())))

    clients = open_clients("127.0.0.1", listen)
    try:
        assert wait_for(lambda: all(c.versions_after(0) == {"v1.0.0"} for c in clients), 10)
        old = status()["color"]
        git(root, "commit", "-qm", "v2", "--allow-empty")
        git(root, "tag", "v2.0.0")
        with Load(f"http://127.0.0.1:{listen}/health") as load:
            r = run_cli("deploy", "local", "--skip-checks", cwd=root)
            done = time.time()
            assert r.code == 0, r.out + r.err
        assert load.result.failed == 0, load.result.text
        draining = status()["draining"]
        assert isinstance(draining, dict)
        assert draining["color"] == old
        assert draining["connections"] >= len(clients)
        time.sleep(9)
        for c in clients:
            assert c.ended is None, f"{c.kind} ended: {c.error}"
            assert c.versions_after(done + 8) == {"v1.0.0"}, c.kind
    finally:
        for c in clients:
            c.close()
    assert wait_for(lambda: status()["draining"] is None, done + DRAIN - 2 - time.time()), \
        "the old color still runs after its clients left"
