"""A Gin service whose port defaults to 9000 on lab hosts where something real holds
9100 (prometheus-node-exporter on a monitored server): green moves to a free port, says
so, and every later deploy, canary and rollback keeps 0 failed requests. The old color
stays warm for the rollback window, so a rollback is a health answer and a switch; the
host's own timer stops it when the window ends."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import CliResult
from tests.e2e.conftest import Lab
from tests.e2e.helpers import Project
from tests.e2e.load import Load

pytestmark = [pytest.mark.lab, pytest.mark.slow]
Run = Callable[..., CliResult]
H1, H2 = "10.78.0.11", "10.78.0.12"
APP = "portly"

TOML = f"""
[app]
name = "{APP}"

[app.stamp]
"main.version" = "{{version}}"

[build]
assets = ["templates", "static"]

[run]
base_port = 9000
drain_timeout = 5.0

[run.health]
interval = 0.2
deadline = 15.0

[proxy]
listen = 8091

[env.lab]
lab = 2

[env.strict]
lab = 2
[env.strict.run.ports]
blue = [9000]
green = [9100]

[env.short]
lab = 2
[env.short.deploy]
rollback_window = 12.0
"""


def version(addr: str, headers: dict[str, str] | None = None) -> str:
    req = urllib.request.Request(f"http://{addr}:8091/version", headers=headers or {})
    with urllib.request.urlopen(req, timeout=5) as r:
        return str(json.loads(r.read())["version"])


def state(lab: Lab, host: str = "h1") -> dict[str, object]:
    return dict(json.loads(lab.ssh(host, f"cat /srv/{APP}/state.json").stdout))


def listener_on_9100(lab: Lab, host: str) -> str:
    """What holds 9100 on the host: the lab's copy of node_exporter, or a stand-in when this
    machine does not enable it (the test never depends on either's absence)."""
    res = lab.ssh(host, "ss -ltnpH 'sport = :9100'")
    if not res.stdout.strip():
        lab.ssh(host, "systemd-run --unit=stand-in-9100 python3 -m http.server 9100")
        for _ in range(50):
            res = lab.ssh(host, "ss -ltnpH 'sport = :9100'")
            if res.stdout.strip():
                break
            time.sleep(0.1)
    return res.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, lab: Lab) -> Iterator[Project]:
    p = Project(tmp_path_factory.mktemp("ports") / APP, TOML)
    p.release("v1.0.0")
    for h in ("h1", "h2"):
        assert listener_on_9100(lab, h)
    yield p
    lab.remove_app(APP, ["h1", "h2"], "goship-portly-standby-*", "stand-in-9100")


def deploy(run_cli: Run, project: Project, *args: str) -> CliResult:
    return run_cli("deploy", *args, "--skip-checks", cwd=project.root)


def test_doctor_names_the_holder(run_cli: Run, project: Project) -> None:
    r = run_cli("doctor", "lab", cwd=project.root)
    assert "9100 (green) is held by" in r.out + r.err


def test_green_moves_off_a_held_port_with_zero_loss(run_cli: Run, project: Project,
                                                    lab: Lab) -> None:
    r = deploy(run_cli, project, "lab")
    assert r.code == 0, r.out + r.err
    assert state(lab)["ports"]["blue"] == [9000]  # type: ignore[index]
    project.release("v1.1.0")
    with Load(f"http://{H1}:8091/api/items") as load:
        r = deploy(run_cli, project, "lab")
    assert r.code == 0, r.out + r.err
    green = state(lab)["ports"]["green"]  # type: ignore[index]
    # The next free port above 9100 (another suite's app may hold 9101 on a shared lab).
    assert green[0] > 9100
    assert "h1: 9100 is held by" in r.err
    assert f"green uses {green[0]}" in r.err
    assert version(H1) == version(H2) == "v1.1.0"
    assert load.result.failed == 0, load.result.text
    s = state(lab)
    assert s["live"]["color"] == "green"  # type: ignore[index]
    assert s["ports"] == {"blue": [9000], "green": green}
    # Deployed again: blue, and green's move is remembered, not recomputed into a clash.
    project.release("v1.2.0")
    with Load(f"http://{H2}:8091/api/items") as load:
        r = deploy(run_cli, project, "lab")
    assert r.code == 0, r.out + r.err
    assert version(H1) == version(H2) == "v1.2.0"
    assert load.result.failed == 0, load.result.text


def test_rollback_inside_the_window_reuses_the_warm_standby(run_cli: Run, project: Project,
                                                           lab: Lab) -> None:
    before = state(lab)
    standby = before["standby"]
    assert isinstance(standby, dict)
    assert standby["release"].startswith("v1.1.0-")
    green = state(lab)["ports"]["green"][0]  # type: ignore[index]
    pid = lab.ssh("h1", f"systemctl show -p MainPID --value {APP}-green@{green}").stdout.strip()
    assert pid not in ("", "0")
    with Load(f"http://{H1}:8091/api/items") as load:
        r = run_cli("rollback", "lab", "--json", cwd=project.root)
    assert r.code == 0, r.out + r.err
    assert load.result.failed == 0, load.result.text
    assert version(H1) == version(H2) == "v1.1.0"
    # The same process serves: nothing was started.
    assert lab.ssh("h1", f"systemctl show -p MainPID --value {APP}-green@{green}"
                   ).stdout.strip() == pid
    plan = json.loads(r.out)["plan"]
    assert [h["start"] for h in plan["hosts"]] == ["warm", "warm"]
    # ...and the release it left is now the standby, for a roll forward.
    after = state(lab)
    assert after["standby"]["release"].startswith("v1.2.0-")  # type: ignore[index]
    r = run_cli("status", "lab", cwd=project.root)
    assert "standby v1.2.0-" in r.out


def test_canary_on_moved_ports(run_cli: Run, project: Project, lab: Lab) -> None:
    project.release("v1.3.0")
    r = run_cli("canary", "start", "lab", "--weight", "0", "--skip-checks",
                cwd=project.root)
    assert r.code == 0, r.out + r.err
    try:
        canary = {"X-Goship-Track": "canary"}
        assert version(H1, canary) == version(H2, canary) == "v1.3.0"
        assert version(H1) == "v1.1.0"
        with Load(f"http://{H1}:8091/api/items") as load:
            r = run_cli("canary", "promote", "lab", cwd=project.root)
        assert r.code == 0, r.out + r.err
        assert load.result.failed == 0, load.result.text
        assert version(H1) == version(H2) == "v1.3.0"
    finally:
        run_cli("canary", "abort", "lab", cwd=project.root)


def test_explicit_ports_are_refused_before_any_change(run_cli: Run, project: Project,
                                                      lab: Lab) -> None:
    before = state(lab)
    r = deploy(run_cli, project, "strict")
    assert r.code == 2, r.out + r.err
    assert "port 9100 of run.ports.green is held by" in r.err
    assert state(lab) == before


def test_the_host_stops_the_standby_when_the_window_ends(run_cli: Run, project: Project,
                                                         lab: Lab) -> None:
    project.release("v1.4.0")
    r = deploy(run_cli, project, "short")
    assert r.code == 0, r.out + r.err
    s = state(lab)
    old = s["standby"]["color"]  # type: ignore[index]
    port = s["ports"][old][0]  # type: ignore[index]
    unit = f"{APP}-{old}@{port}"
    assert lab.ssh("h1", f"systemctl is-active {unit}", check=False).stdout.strip() == "active"
    # The stop takes up to a second (the service drains keep-alive clients), so wait for
    # a settled state, not merely "no longer active".
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if lab.ssh("h1", f"systemctl is-active {unit}",
                   check=False).stdout.strip() in ("inactive", "failed"):
            break
        time.sleep(1)
    assert lab.ssh("h1", f"systemctl is-active {unit}", check=False).stdout.strip() \
        == "inactive"
    assert version(H1) == "v1.4.0"
    # After the window: the slow path still rolls back.
    r = run_cli("rollback", "short", "--json", cwd=project.root)
    assert r.code == 0, r.out + r.err
    assert [h["start"] for h in json.loads(r.out)["plan"]["hosts"]] == ["start", "start"]
    assert version(H1) == version(H2) == "v1.3.0"
