"""goship maintenance on lab hosts (real systemd, nginx with Lua): 503 with the page and
Retry-After while the health path still reaches the app, all without a reload (nginx's
master and workers keep their pids), under a steady load on the health path: 0 failed;
the flag survives a reload and a restart; `--hold` keeps a request until `off` lets it
through; a host that cannot do it is reported while the others change."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import CliResult, need
from tests.e2e.conftest import Lab
from tests.e2e.helpers import Project, example_repo, free_port
from tests.e2e.load import Load

pytestmark = [pytest.mark.lab, pytest.mark.slow]
Run = Callable[..., CliResult]
HOSTS = {"h1": "10.78.0.11", "h2": "10.78.0.12"}
APP, LISTEN = "maintapp", 8132

TOML = f"""
[app]
name = "{APP}"

[app.stamp]
"main.version" = "{{version}}"

[build]
assets = ["templates", "static"]

[run]
base_port = 9400
drain_timeout = 5.0

[run.health]
interval = 0.2
deadline = 15.0

[proxy]
listen = {LISTEN}

[env.lab]
lab = 2
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, lab: Lab) -> Iterator[Project]:
    p = Project(tmp_path_factory.mktemp("maint") / APP, TOML)
    p.release("v1.0.0")
    r = subprocess.run([sys.executable, "-m", "goship", "deploy", "lab", "--skip-checks"],
                       cwd=p.root, capture_output=True, text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    yield p
    lab.remove_app(APP, ["h1", "h2"], f"goship-{APP}-standby-*")


def get(addr: str, path: str = "/", timeout: float = 30) -> tuple[int, dict[str, str], str]:
    try:
        with urllib.request.urlopen(f"http://{addr}:{LISTEN}{path}", timeout=timeout) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def nginx_pids(lab: Lab, host: str) -> tuple[str, str]:
    master = lab.ssh(host, "cat /run/nginx.pid").stdout.strip()
    workers = lab.ssh(host, f"pgrep -P {master} | sort").stdout.strip()
    assert master
    assert workers
    return master, workers


def test_on_off_without_a_reload_health_still_reaches_the_app(
        run_cli: Run, project: Project, lab: Lab) -> None:
    pids = {h: nginx_pids(lab, h) for h in HOSTS}
    with Load(f"http://{HOSTS['h1']}:{LISTEN}/health") as load:
        r = run_cli("maintenance", "on", "lab", "--message", 'Back at <10:00> & "soon"',
                    "--retry-after", "120", cwd=project.root)
        assert r.code == 0, r.out + r.err
        assert "h1: maintenance on (503 with the maintenance page, Retry-After 120s)" in r.out
        assert "h2: maintenance on" in r.out
        for addr in HOSTS.values():
            code, headers, body = get(addr, "/api/items")
            assert code == 503
            assert headers["Retry-After"] == "120"
            assert headers["Content-Type"].startswith("text/html")
            assert "<p>Back at &lt;10:00&gt; &amp; &quot;soon&quot;</p>" in body
            code, _, body = get(addr, "/health")  # from the app itself
            assert (code, json.loads(body)) == (200, {"status": "ok"})
        st = run_cli("status", "lab", cwd=project.root)
        assert "h1: MAINTENANCE on: 503 with the page, Retry-After 120s" in st.out, st.out
        assert json.loads(run_cli("status", "lab", "--json", cwd=project.root).out)[
            "hosts"]["h2"]["maintenance"] == {"on": True, "hold": 0, "retry_after": 120}
        r = run_cli("maintenance", "off", "lab", cwd=project.root)
        assert r.code == 0, r.out + r.err
        for addr in HOSTS.values():
            assert get(addr, "/version")[0] == 200
    assert load.result.failed == 0, load.result.text
    assert {h: nginx_pids(lab, h) for h in HOSTS} == pids  # never reloaded


def test_the_flag_survives_a_reload_and_a_restart(run_cli: Run, project: Project,
                                                  lab: Lab) -> None:
    r = run_cli("maintenance", "on", "lab", cwd=project.root)
    assert r.code == 0, r.out + r.err
    try:
        lab.ssh("h1", "systemctl reload nginx")
        lab.ssh("h2", "systemctl restart nginx")
        for addr in HOSTS.values():
            code, _, body = get(addr, "/")
            assert code == 503
            assert "Down for maintenance" in body
            assert get(addr, "/health")[0] == 200
    finally:
        r = run_cli("maintenance", "off", "lab", cwd=project.root)
    assert r.code == 0, r.out + r.err
    lab.ssh("h2", "systemctl restart nginx")  # off is what comes back too
    for addr in HOSTS.values():
        assert get(addr, "/")[0] == 200


def test_a_held_request_goes_through_when_off_runs(run_cli: Run, project: Project,
                                                   lab: Lab) -> None:
    r = run_cli("maintenance", "on", "lab", "--hold", "60", cwd=project.root)
    assert r.code == 0, r.out + r.err
    assert "requests held up to 60s, then 503" in r.out
    got: list[tuple[int, dict[str, str], str]] = []
    client = threading.Thread(target=lambda: got.append(get(HOSTS["h1"], "/version", 90)))
    client.start()
    client.join(2.0)
    assert client.is_alive()  # held, not answered
    r = run_cli("maintenance", "off", "lab", cwd=project.root)
    assert r.code == 0, r.out + r.err
    client.join(30)
    assert not client.is_alive()
    code, _, body = got[0]
    assert code == 200  # the app answered it
    assert json.loads(body)["version"] == "v1.0.0"


def test_a_host_that_cannot_is_reported_the_others_change(run_cli: Run, project: Project,
                                                          lab: Lab) -> None:
    lab.ssh("h2", "systemctl stop nginx")
    try:
        r = run_cli("maintenance", "on", "lab", cwd=project.root)
        assert r.code == 1, r.out + r.err
        assert "h1: maintenance on" in r.out
        assert "h2: FAILED: h2: nginx's control socket does not answer" in r.out
        assert "maintenance on lab: 1 of 2 host(s); failed: h2" in r.out
        assert get(HOSTS["h1"], "/")[0] == 503
    finally:
        lab.ssh("h2", "systemctl start nginx")
        off = run_cli("maintenance", "off", "lab", cwd=project.root)
    assert off.code == 0, off.out + off.err
    assert get(HOSTS["h2"], "/")[0] == 200  # h2 never went into maintenance


def test_local_mode_has_it_too(run_cli: Run, tmp_path: Path) -> None:
    """This machine (goship's own supervisord and nginx, with the Lua module): the same."""
    need("nginx")
    listen = free_port(10000, 15000)
    base = tmp_path / "deploy"
    root = example_repo(tmp_path / "svc", toml=f"""
[app]
name = "maintlocal"
[build]
assets = ["templates", "static"]
[run]
base_port = {free_port(15000, 29000)}
[run.health]
interval = 0.2
[deploy]
base_path = "{base}"
[env.local]
local = true
[env.local.proxy]
listen = {listen}
""")
    r = run_cli("deploy", "local", "--skip-checks", cwd=root)
    try:
        assert r.code == 0, r.out + r.err
        pid = (base / "maintlocal" / "run" / "nginx.pid").read_text()
        on = run_cli("maintenance", "on", "local", "--message", "local <b>", cwd=root)
        assert on.code == 0, on.out + on.err
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{listen}/", timeout=10)
        assert e.value.code == 503
        assert "<p>local &lt;b&gt;</p>" in e.value.read().decode()
        with urllib.request.urlopen(f"http://127.0.0.1:{listen}/health", timeout=10) as ok:
            assert ok.status == 200
        off = run_cli("maintenance", "off", "local", cwd=root)
        assert off.code == 0, off.out + off.err
        with urllib.request.urlopen(f"http://127.0.0.1:{listen}/", timeout=10) as ok:
            assert ok.status == 200
        assert (base / "maintlocal" / "run" / "nginx.pid").read_text() == pid  # no restart
    finally:
        run_cli("remove", "local", "--yes", "--purge-data", cwd=root)
