"""`[consul] enabled = true` on the lab's Consul cluster (`lab up --consul`, 3 servers):
a deploy registers the new color with each host's agent before the switch and puts the old
one in maintenance; a rollback flips them; `goship remove` deregisters; the catalog is read
through Consul's health API after each step, and steady load loses no request."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import CliResult
from tests.e2e.conftest import Lab
from tests.e2e.helpers import Project
from tests.e2e.load import Load

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.components("consul")]
Run = Callable[..., CliResult]
H1, H2 = "10.78.0.11", "10.78.0.12"
APP = "hello-gin"

TOML = """
[app]
name = "hello-gin"
version = "git"

[app.stamp]
"main.version" = "{version}"

[build]
assets = ["templates", "static"]

[run]
drain_timeout = 5.0
base_port = 9000

[run.health]
interval = 0.2
deadline = 15.0

[consul]
enabled = true
tags = ["web"]
meta = { team = "core" }
check_interval = "1s"
check_timeout = "1s"

[env.lab]
lab = 2

# the same hosts, the old color stopped at once: no rollback window
[env.nowindow]
lab = 2
[env.nowindow.deploy]
rollback_window = 0
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, lab: Lab) -> Iterator[Project]:
    from goship.lab import hosts

    hosts.up(3, consul=True)
    p = Project(tmp_path_factory.mktemp("consul") / APP, TOML)
    (p.root / ".gitignore").write_text("dist/\n")
    p.release("v1.0.0")
    yield p
    # Later suites get fresh servers: the agents and the app go with the hosts' disks.
    hosts.down()
    hosts.up(3)


def catalog() -> dict[tuple[str, str], dict[str, Any]]:
    """(node, color) -> release, tags, status of its HTTP check, in maintenance or not: this
    app's instances as Consul's health API answers (from a server)."""
    url = f"http://{H1}:8500/v1/health/service/{APP}"
    with urllib.request.urlopen(url, timeout=5) as r:
        entries = json.loads(r.read().decode())
    out = {}
    for e in entries:
        svc, checks = e["Service"], {c["CheckID"]: c["Status"] for c in e["Checks"]}
        out[(e["Node"]["Node"], svc["Meta"]["color"])] = {
            "id": svc["ID"], "release": svc["Meta"]["release"], "tags": svc["Tags"],
            "address": svc["Address"], "meta": svc["Meta"],
            "check": checks.get(f"{svc['ID']}-http"),
            "maintenance": f"_service_maintenance:{svc['ID']}" in checks,
        }
    return out


def wait_catalog(want: Callable[[dict[tuple[str, str], dict[str, Any]]], bool],
                 timeout: float = 20) -> dict[tuple[str, str], dict[str, Any]]:
    """The catalog once `want` holds (agents sync it to the servers asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        found = catalog()
        if want(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def live(lab: Lab, host: str) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(lab.ssh(host, f"cat /srv/{APP}/state.json").stdout)
    return state


def serving(found: dict[tuple[str, str], dict[str, Any]], color: str, release: str) -> bool:
    return all(
        (e := found.get((n, color))) is not None and e["release"] == release
        and e["check"] == "passing" and not e["maintenance"]
        for n in ("lab-h1", "lab-h2"))


def parked(found: dict[tuple[str, str], dict[str, Any]], color: str) -> bool:
    return all((e := found.get((n, color))) is not None and e["maintenance"]
               for n in ("lab-h1", "lab-h2"))


def test_deploy_registers_then_parks_the_old_color(run_cli: Run, project: Project,
                                                   lab: Lab) -> None:
    r = run_cli("deploy", "lab", "--skip-checks", cwd=project.root)
    assert r.code == 0, r.out + r.err
    first = live(lab, "h1")["live"]
    found = wait_catalog(lambda f: serving(f, first["color"], first["release"]))
    assert serving(found, first["color"], first["release"]), found
    e = found[("lab-h2", first["color"])]
    assert e["address"] == H2
    assert e["id"] == f"{APP}-{first['color']}-{live(lab, 'h2')['ports'][first['color']][0]}"
    assert e["tags"] == ["web", f"release={first['release']}", "track=stable",
                         f"color={first['color']}"]
    assert e["meta"]["team"] == "core"
    assert e["meta"]["env"] == "lab"
    assert len(found) == 2  # one instance a host, nothing of the other color yet

    project.release("v1.1.0")
    with Load(f"http://{H1}/api/items") as load:
        r = run_cli("deploy", "lab", "--skip-checks", cwd=project.root)
    assert r.code == 0, r.out + r.err
    assert load.result.failed == 0, load.result.text
    second = live(lab, "h1")["live"]
    assert second["color"] != first["color"]
    found = wait_catalog(lambda f: serving(f, second["color"], second["release"])
                         and parked(f, first["color"]))
    assert serving(found, second["color"], second["release"]), found
    # the old color stands by, warm but out of every healthy answer
    assert parked(found, first["color"]), found
    status = run_cli("status", "lab", "--json", cwd=project.root)
    assert status.code == 0, status.err
    for h in ("h1", "h2"):
        instances = json.loads(status.out)["hosts"][h]["instances"]
        assert [i["consul"] for i in instances.values()] == ["passing"], instances


def test_rollback_flips_the_catalog(run_cli: Run, project: Project, lab: Lab) -> None:
    before = live(lab, "h1")
    with Load(f"http://{H2}/api/items") as load:
        r = run_cli("rollback", "lab", cwd=project.root)
    assert r.code == 0, r.out + r.err
    assert load.result.failed == 0, load.result.text
    back = live(lab, "h1")["live"]
    assert back["color"] == before["standby"]["color"]
    found = wait_catalog(lambda f: serving(f, back["color"], back["release"])
                         and parked(f, before["live"]["color"]))
    assert serving(found, back["color"], back["release"]), found
    assert parked(found, before["live"]["color"]), found


def test_a_failed_registration_fails_the_deploy_before_traffic_moves(
        run_cli: Run, project: Project, lab: Lab) -> None:
    serving_now = live(lab, "h1")["live"]
    lab.ssh("h2", "systemctl stop goship-consul.service")
    try:
        project.release("v1.2.0")
        r = run_cli("deploy", "lab", "--skip-checks", cwd=project.root)
        assert r.code != 0, r.out
        assert "consul register failed" in r.out + r.err
        # every host still serves what it served
        for h, addr in (("h1", H1), ("h2", H2)):
            assert live(lab, h)["live"] == serving_now
            with urllib.request.urlopen(f"http://{addr}/version", timeout=5) as resp:
                assert serving_now["release"].startswith(json.loads(resp.read())["version"])
    finally:
        lab.ssh("h2", "systemctl start goship-consul.service; for i in $(seq 100); do "
                      "curl -sf http://127.0.0.1:8500/v1/status/leader | grep -q : && exit 0; "
                      "sleep 0.2; done; exit 1")


def test_an_old_color_goship_stops_is_deregistered(run_cli: Run, project: Project,
                                                   lab: Lab) -> None:
    old = live(lab, "h1")["live"]
    r = run_cli("deploy", "nowindow", "--skip-checks", cwd=project.root)
    assert r.code == 0, r.out + r.err
    new = live(lab, "h1")["live"]
    assert new["release"].startswith("v1.2.0-")
    found = wait_catalog(lambda f: serving(f, new["color"], new["release"])
                         and not any(c == old["color"] for _, c in f))
    assert serving(found, new["color"], new["release"]), found
    assert sorted(found) == [("lab-h1", new["color"]), ("lab-h2", new["color"])], found


def tracks(found: dict[tuple[str, str], dict[str, Any]], color: str) -> set[str]:
    return {t for n in ("lab-h1", "lab-h2") if (e := found.get((n, color)))
            for t in e["tags"] if t.startswith("track=")}


def test_a_canary_is_its_own_track_until_promoted(run_cli: Run, project: Project,
                                                  lab: Lab) -> None:
    stable = live(lab, "h1")["live"]
    project.release("v1.3.0")
    r = run_cli("canary", "start", "lab", "--weight", "10", "--skip-checks", cwd=project.root)
    assert r.code == 0, r.out + r.err
    canary = live(lab, "h1")["canary"]["rules"]
    assert canary["color"] != stable["color"]
    found = wait_catalog(lambda f: tracks(f, canary["color"]) == {"track=canary"}
                         and all(f.get((n, canary["color"]), {}).get("check") == "passing"
                                 for n in ("lab-h1", "lab-h2")))
    # a balancer discovering the stable track never sees the canary's instances
    assert tracks(found, canary["color"]) == {"track=canary"}, found
    assert tracks(found, stable["color"]) == {"track=stable"}, found
    assert serving(found, stable["color"], stable["release"]), found

    r = run_cli("canary", "abort", "lab", cwd=project.root)
    assert r.code == 0, r.out + r.err
    found = wait_catalog(lambda f: not any(c == canary["color"] for _, c in f))
    assert sorted(found) == [("lab-h1", stable["color"]), ("lab-h2", stable["color"])], found

    r = run_cli("canary", "start", "lab", "--weight", "10", "--skip-checks", cwd=project.root)
    assert r.code == 0, r.out + r.err
    with Load(f"http://{H1}/api/items") as load:
        r = run_cli("canary", "promote", "lab", cwd=project.root)
    assert r.code == 0, r.out + r.err
    assert load.result.failed == 0, load.result.text
    promoted = live(lab, "h1")["live"]
    assert promoted["color"] == canary["color"]
    found = wait_catalog(lambda f: serving(f, promoted["color"], promoted["release"])
                         and tracks(f, promoted["color"]) == {"track=stable"}
                         and parked(f, stable["color"]))
    assert tracks(found, promoted["color"]) == {"track=stable"}, found
    assert serving(found, promoted["color"], promoted["release"]), found
    assert parked(found, stable["color"]), found  # the old stable stands by, unserved


def test_doctor_checks_the_agent(run_cli: Run, project: Project) -> None:
    r = run_cli("doctor", "lab", cwd=project.root)
    assert "ok   h1: consul: Consul 1.20.6 agent lab-h1 (server) in lab, leader 10.78.0.1" \
        in r.out, r.out + r.err


def test_remove_deregisters(run_cli: Run, project: Project) -> None:
    r = run_cli("remove", "lab", "--yes", cwd=project.root)
    assert r.code == 0, r.out + r.err
    found = wait_catalog(lambda f: not f)
    assert found == {}
