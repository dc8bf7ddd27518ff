"""[processes.*] workers under goship's own supervisord (`local = true` on this machine,
no systemd): started and gated before the switch under load with 0 failed requests, the
old release's stopped after it; a crashing worker aborts with nothing switched; rollback
brings back the old worker; status lists them. The lab test (test_processes.py) covers
systemd and timers."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
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
CMD = Path(__file__).resolve().parents[1] / "projects" / "procs" / "cmd"


@pytest.fixture
def local_project(tmp_path: Path) -> Iterator[tuple[Path, int, Path]]:
    need("nginx")
    need("wrk")
    root = tmp_path / "svc"
    base = tmp_path / "deploy"
    listen = free_port(10000, 15000)
    app_port = free_port(15000, 29000) // 2 * 2
    beats = base / "beats"
    example_repo(root, tag=None, toml=f"""
[app]
name = "procs-local"
[app.stamp]
"main.version" = "{{version}}"
[build]
assets = ["templates", "static"]
[run]
base_port = {app_port}
drain_timeout = 3.0
[run.health]
interval = 0.2
min_uptime = 3.0
[processes.worker]
main = "cmd/worker"
instances = 2
env = {{ HEARTBEAT_DIR = "{beats}" }}
[deploy]
base_path = "{base}"
[env.local]
local = true
[env.local.proxy]
listen = {listen}
""")
    shutil.copytree(CMD / "worker", root / "cmd" / "worker")
    beats.mkdir(parents=True)
    git(root, "add", ".")
    git(root, "commit", "-qm", "worker")
    git(root, "tag", "v1.0.0")
    app_dir = base / "procs-local"
    yield root, listen, beats
    run = app_dir / "run"
    for sleeper in run.glob("standby.*.pid"):
        with contextlib.suppress(ValueError, ProcessLookupError):
            os.killpg(int(sleeper.read_text()), signal.SIGTERM)
    for pid_file, sig in (("nginx.pid", signal.SIGQUIT), ("supervisord.pid", signal.SIGTERM)):
        with contextlib.suppress(FileNotFoundError, ProcessLookupError, ValueError):
            os.kill(int((run / pid_file).read_text()), sig)


def version(listen: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{listen}/version", timeout=5) as r:
        return str(json.loads(r.read().decode())["version"])


def beat(beats: Path, i: int) -> dict[str, str]:
    try:
        text = (beats / f"heartbeat-worker-{i}").read_text()
    except FileNotFoundError:
        return {}
    return dict(w.split("=", 1) for w in text.split() if "=" in w)


def until(what: Callable[[], bool], seconds: float = 20) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if what():
            return True
        time.sleep(0.2)
    return what()


def alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    return True


def release(root: Path, tag: str) -> None:
    (root / "static" / "style.css").write_text(f"/* {tag} */\n")
    git(root, "commit", "-qam", tag)
    git(root, "tag", tag)


def test_workers_under_supervisord(run_cli: Run,
                                   local_project: tuple[Path, int, Path]) -> None:
    root, listen, beats = local_project
    r = run_cli("deploy", "local", "--skip-checks", cwd=root)
    assert r.code == 0, r.out + r.err
    assert "2 worker instance(s) live on" in r.out + r.err
    assert until(lambda: beat(beats, 2).get("version") == "v1.0.0")
    v1_pid = beat(beats, 1)["pid"]

    release(root, "v2.0.0")
    with Load(f"http://127.0.0.1:{listen}/api/items") as load:
        r = run_cli("deploy", "local", "--skip-checks", cwd=root)
        assert r.code == 0, r.out + r.err
    assert load.result.failed == 0, load.result.text
    assert version(listen) == "v2.0.0"
    for i in (1, 2):
        assert until(lambda i=i: beat(beats, i).get("version") == "v2.0.0")  # type: ignore[misc]
    assert until(lambda: not alive(v1_pid))  # the old release's worker stopped
    v2 = beat(beats, 1)
    assert v2["release"].startswith("v2.0.0-")

    release(root, "v3.0.0-crash")
    with Load(f"http://127.0.0.1:{listen}/api/items") as load:
        r = run_cli("deploy", "local", "--skip-checks", cwd=root)
    assert r.code == 1, r.out + r.err
    assert "worker gate failed" in r.out + r.err
    assert "cannot reach the queue" in r.out + r.err  # the worker's log tail
    assert load.result.failed == 0, load.result.text
    assert version(listen) == "v2.0.0"
    assert alive(v2["pid"])  # the live release's worker never stopped
    assert until(lambda: beat(beats, 1).get("release") == v2["release"])

    status = run_cli("status", "local", "--json", cwd=root)
    assert status.code == 0, status.out + status.err
    procs = json.loads(status.out)["hosts"]["local"]["processes"]
    assert [(p["unit"].split("-", 1)[0], p["state"]) for p in procs] == [
        ("procs_local.worker", "active/running"), ("procs_local.worker", "active/running")]

    back = run_cli("rollback", "local", cwd=root)
    assert back.code == 0, back.out + back.err
    assert version(listen) == "v1.0.0"
    for i in (1, 2):
        assert until(lambda i=i: beat(beats, i).get("version") == "v1.0.0")  # type: ignore[misc]
    assert until(lambda: not alive(v2["pid"]))
