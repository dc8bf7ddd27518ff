"""`local = true`: this machine, without systemd (as here): goship's own supervisord runs the
instances and its own nginx listens on a high port. Under load: zero failed requests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import CliResult, need
from tests.e2e.helpers import example_repo, free_port, git
from tests.e2e.load import Load

pytestmark = pytest.mark.slow
Run = Callable[..., CliResult]


@pytest.fixture(params=[600.0, 0.0], ids=["warm-standby", "window-0"])
def local_project(tmp_path: Path, request: pytest.FixtureRequest
                  ) -> Iterator[tuple[Path, int, Path]]:
    need("nginx")
    need("wrk")
    root = tmp_path / "svc"
    base = tmp_path / "deploy"
    listen = free_port(10000, 15000)
    app_port = free_port(15000, 29000) // 2 * 2
    example_repo(root, toml=f"""
[app]
name = "hello-local"
[app.stamp]
"main.version" = "{{version}}"
[build]
assets = ["templates", "static"]
[run]
base_port = {app_port}
instances = 2
drain_timeout = 3.0
[run.env]
SECRET_TOKEN = "tok-$(id)-'q'"
[run.health]
interval = 0.2
[deploy]
base_path = "{base}"
rollback_window = {request.param}
[env.local]
local = true
[env.local.proxy]
listen = {listen}
""")
    yield root, listen, base / "hello-local"
    run = base / "hello-local" / "run"
    for sleeper in run.glob("standby.*.pid"):  # the standby's stop timer: not needed now
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.killpg(int(sleeper.read_text()), signal.SIGTERM)
    for pid_file, sig in (("nginx.pid", signal.SIGQUIT), ("supervisord.pid", signal.SIGTERM)):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
            os.kill(int((run / pid_file).read_text()), sig)


def get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
        return str(r.read().decode())


def test_local_deploy_switch_and_rollback(run_cli: Run,
                                          local_project: tuple[Path, int, Path]) -> None:
    root, listen, app_dir = local_project
    r = run_cli("deploy", "local", "--skip-checks", cwd=root)
    assert r.code == 0, r.out + r.err
    assert json.loads(get(listen, "/version"))["version"] == "v1.0.0"
    assert "hello-gin v1.0.0" in get(listen, "/")
    (root / "static" / "style.css").write_text("body { color: red; }\n")
    git(root, "commit", "-qam", "v2")
    git(root, "tag", "v2.0.0")
    with Load(f"http://127.0.0.1:{listen}/api/items") as load:
        r = run_cli("deploy", "local", "--skip-checks", cwd=root)
        assert r.code == 0, r.out + r.err
        back = run_cli("rollback", "local", "--json", cwd=root)
        assert back.code == 0, back.out + back.err
    assert load.result.failed == 0, load.result.text
    assert load.result.requests >= 20_000, load.result.text
    assert json.loads(get(listen, "/version"))["version"] == "v1.0.0"
    # Inside the rollback window v1 was still running, unserved: nothing started. With no
    # window the old color drains its open connections (run.drain_timeout_long) and stops:
    # only nginx's idle pooled ones here, closed within seconds, then no sleeper is left;
    # v1 starts again.
    window = "rollback_window = 600.0" in (root / "goship.toml").read_text()
    assert [h["start"] for h in json.loads(back.out)["plan"]["hosts"]] == \
        ["warm" if window else "start"]
    if window:
        assert len(list((app_dir / "run").glob("standby.*.pid"))) == 1
    else:
        deadline = time.monotonic() + 60  # far below drain_timeout_long's 300 s
        while list((app_dir / "run").glob("standby.*.pid")) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert list((app_dir / "run").glob("standby.*.pid")) == []
    # secrets: in a 0700 file only, never in output
    for env_sh in (app_dir / "run").glob("env.*.sh"):
        assert env_sh.stat().st_mode & 0o777 == 0o700
    assert len(list((app_dir / "run").glob("env.*.sh"))) == 2  # both colors ran
    assert "tok-$(id)" not in r.out + r.err + back.out + back.err
    status = run_cli("status", "local", "--json", cwd=root)
    host = json.loads(status.out)["hosts"]["local"]
    assert host["manager"] == "supervisord"
    assert len(host["instances"]) == 2
    assert all(i["health"] == "200" for i in host["instances"].values())
