"""Long connections across a release on a lab host (real systemd, nginx with Lua): SSE and
websocket clients of the old release keep receiving it after the deploy returned while new
clients get the new release, under a steady load (0 failed requests); `goship status`
shows the draining color; the old color stops once its clients leave, or at
run.drain_timeout_long when they stay (their streams end then, not before); with a rollback
window the drain starts when the window ends."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from websockets.sync.client import ClientConnection, connect

from tests.conftest import REPO, CliResult
from tests.e2e.conftest import Lab
from tests.e2e.helpers import git
from tests.e2e.load import Load

pytestmark = [pytest.mark.lab, pytest.mark.slow]
Run = Callable[..., CliResult]
APP, LISTEN, ADDR = "streams", 8141, "10.78.0.11"
DRAIN = 20  # run.drain_timeout_long, seconds

TOML = f"""
[app]
name = "{APP}"

[app.stamp]
"main.version" = "{{version}}"

[run]
base_port = 9460
drain_timeout = 5.0
drain_timeout_long = {DRAIN}

[run.health]
interval = 0.2
deadline = 15.0

[deploy]
rollback_window = 0

[proxy]
listen = {LISTEN}
stream_paths = ["/events"]

[env.lab]
lab = 1
"""


class Stream:
    """One SSE or websocket client through nginx, reading on its own thread: every message
    with the time it arrived, and when the stream ended."""

    def __init__(self, kind: str, addr: str = ADDR, port: int = LISTEN) -> None:
        self.kind, self.addr, self.port = kind, addr, port
        self.messages: list[tuple[float, str]] = []
        self.ended: float | None = None
        self.error = ""
        self._sse: http.client.HTTPConnection | None = None
        self._ws: ClientConnection | None = None
        self._opened = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._opened.wait(15), f"{kind}: not connected: {self.error}"

    def _run(self) -> None:
        try:
            if self.kind == "sse":
                self._sse = http.client.HTTPConnection(self.addr, self.port, timeout=15)
                self._sse.request("GET", "/events")
                resp = self._sse.getresponse()
                assert resp.status == 200, resp.status
                self._opened.set()
                for raw in resp:
                    line = raw.decode().strip()
                    if line.startswith("data: "):
                        self.messages.append((time.time(), line[6:]))
            else:
                self._ws = connect(f"ws://{self.addr}:{self.port}/ws", open_timeout=15)
                self._opened.set()
                for msg in self._ws:
                    self.messages.append((time.time(), str(msg)))
        except Exception as e:  # the reason a stream ended, for the assertion
            self.error = repr(e)
        finally:
            self.ended = time.time()
            self._opened.set()

    def versions_after(self, t: float) -> set[str]:
        return {m.split()[0] for at, m in list(self.messages) if at > t}

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()
        if self._sse is not None and self._sse.sock is not None:
            import socket

            self._sse.sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(10)


def open_clients(addr: str = ADDR, port: int = LISTEN) -> list[Stream]:
    return [Stream(k, addr, port) for k in ("sse", "sse", "ws", "ws")]


def wait_for(what: Callable[[], bool], seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if what():
            return True
        time.sleep(0.25)
    return what()


def active(lab: Lab, color: str) -> bool:
    out = lab.ssh("h1", f"systemctl list-units --plain --no-legend --state=active,deactivating "
                        f"'{APP}-{color}@*.service'").stdout
    return bool(out.strip())


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        shutil.copytree(REPO / "tests" / "projects" / "drain-stream", root)
        (root / "goship.toml").write_text(TOML)
        git(root, "init", "-q")
        git(root, "add", "-A")
        git(root, "commit", "-qm", "streams")

    def release(self, tag: str) -> None:
        git(self.root, "add", "-A")
        git(self.root, "commit", "-qm", tag, "--allow-empty")
        git(self.root, "tag", tag)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, lab: Lab) -> Iterator[Project]:
    import subprocess
    import sys

    p = Project(tmp_path_factory.mktemp("drain") / APP)
    p.release("v1.0.0")
    r = subprocess.run([sys.executable, "-m", "goship", "deploy", "lab", "--skip-checks"],
                       cwd=p.root, capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    yield p
    lab.remove_app(APP, ["h1"], f"goship-{APP}-standby-*")


def deploy(run_cli: Run, project: Project, tag: str) -> float:
    """Deploy `tag` under a steady load; the time the deploy returned."""
    project.release(tag)
    with Load(f"http://{ADDR}:{LISTEN}/health") as load:
        r = run_cli("deploy", "lab", "--skip-checks", cwd=project.root)
        done = time.time()
        assert r.code == 0, r.out + r.err
    assert load.result.failed == 0, load.result.text
    return done


def test_old_clients_keep_their_release_until_they_leave(run_cli: Run, project: Project,
                                                         lab: Lab) -> None:
    clients = open_clients()
    try:
        assert wait_for(lambda: all(c.versions_after(0) == {"v1.0.0"} for c in clients), 10)
        old = json.loads(run_cli("status", "lab", "--json", cwd=project.root).out)[
            "hosts"]["h1"]["color"]
        done = deploy(run_cli, project, "v2.0.0")
        fresh = Stream("sse")
        assert wait_for(lambda: bool(fresh.versions_after(0)), 10)
        assert fresh.versions_after(0) == {"v2.0.0"}  # new connections: the new release
        fresh.close()
        st = run_cli("status", "lab", cwd=project.root)
        assert re.search(rf"^h1: draining v1\.0\.0-\w+ on {old}: \d+ open connection\(s\) "
                         r"\(websockets, SSE\); stops when they close, in \d+s at the latest$",
                         st.out, re.M), st.out
        dr = json.loads(run_cli("status", "lab", "--json", cwd=project.root).out)[
            "hosts"]["h1"]["draining"]
        assert dr["color"] == old
        assert dr["connections"] >= len(clients)  # nginx's to the old color: the clients'
        time.sleep(9)
        for c in clients:  # none cut: each still receives the old release
            assert c.ended is None, f"{c.kind} ended: {c.error}"
            assert c.versions_after(done + 8) == {"v1.0.0"}, c.kind
        assert active(lab, old)
    finally:
        for c in clients:
            c.close()
    # The clients left: the old color stops without waiting for the drain timeout (which
    # would come ~DRAIN s after the deploy returned).
    assert wait_for(lambda: not active(lab, old), done + DRAIN - 2 - time.time()), \
        "the old color still runs after its clients left"
    st = json.loads(run_cli("status", "lab", "--json", cwd=project.root).out)
    assert st["hosts"]["h1"]["draining"] is None


def test_clients_that_stay_are_cut_at_the_drain_timeout(run_cli: Run, project: Project,
                                                        lab: Lab) -> None:
    old = json.loads(run_cli("status", "lab", "--json", cwd=project.root).out)[
        "hosts"]["h1"]["color"]
    clients = open_clients()
    try:
        assert wait_for(lambda: all(c.versions_after(0) == {"v2.0.0"} for c in clients), 10)
        done = deploy(run_cli, project, "v3.0.0")
        assert wait_for(lambda: all(c.ended is not None for c in clients), DRAIN + 40), \
            "the old color kept its clients past run.drain_timeout_long"
        for c in clients:
            assert c.ended is not None
            # Not cut before the timeout (its clock started before the deploy returned).
            assert c.versions_after(done + DRAIN - 5) == {"v2.0.0"}, (c.kind, c.error)
        assert wait_for(lambda: not active(lab, old), 15)
    finally:
        for c in clients:
            c.close()


def test_with_a_rollback_window_the_drain_starts_when_it_ends(run_cli: Run, project: Project,
                                                             lab: Lab) -> None:
    window = 4
    toml = project.root / "goship.toml"
    toml.write_text(toml.read_text().replace("rollback_window = 0",
                                             f"rollback_window = {window}"))
    old = json.loads(run_cli("status", "lab", "--json", cwd=project.root).out)[
        "hosts"]["h1"]["color"]
    clients = open_clients()
    try:
        assert wait_for(lambda: all(c.versions_after(0) == {"v3.0.0"} for c in clients), 10)
        done = deploy(run_cli, project, "v4.0.0")
        time.sleep(window + 4)  # past the window: the standby's stop is due, it drains
        st = run_cli("status", "lab", cwd=project.root)
        assert "h1: draining v3.0.0-" in st.out, st.out
        for c in clients:
            assert c.ended is None, f"{c.kind} ended: {c.error}"
            assert c.versions_after(done + window + 3) == {"v3.0.0"}, c.kind
    finally:
        for c in clients:
            c.close()
    assert wait_for(lambda: not active(lab, old), done + window + DRAIN - 2 - time.time()), \
        "the old color still runs after its clients left"


def test_a_deploy_that_takes_the_draining_color_cancels_its_drain(
        run_cli: Run, project: Project, lab: Lab) -> None:
    toml = project.root / "goship.toml"
    toml.write_text(re.sub(r"rollback_window = \d+", "rollback_window = 0", toml.read_text()))
    clients = open_clients()
    try:
        assert wait_for(lambda: all(c.versions_after(0) == {"v4.0.0"} for c in clients), 10)
        deploy(run_cli, project, "v5.0.0")
        draining = json.loads(run_cli("status", "lab", "--json", cwd=project.root).out)[
            "hosts"]["h1"]["draining"]
        assert draining is not None
        # The next release takes the draining color: its clients are cut then (said in
        # docs/deploy.md), and the host's drain must not stop the new instances later.
        deploy(run_cli, project, "v6.0.0")
        assert wait_for(lambda: all(c.ended is not None for c in clients), 15)
    finally:
        for c in clients:
            c.close()
    time.sleep(8)  # past nginx's idle pool timeout: a drain left running would stop now
    st = json.loads(run_cli("status", "lab", "--json", cwd=project.root).out)["hosts"]["h1"]
    assert st["color"] == draining["color"]
    assert st["release"].startswith("v6.0.0-")
    assert active(lab, draining["color"])
    fresh = Stream("ws")
    assert wait_for(lambda: bool(fresh.versions_after(0)), 10)
    assert fresh.versions_after(0) == {"v6.0.0"}
    fresh.close()
