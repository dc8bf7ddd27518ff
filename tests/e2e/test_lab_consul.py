"""`goship lab up --consul` on 4 lab hosts: Consul servers on h1..h3 and a client agent on
h4, each a systemd unit of its host, one leader, every member alive; `lab status` shows it;
`lab down` leaves no agent behind."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import CliResult
from tests.e2e.conftest import Lab

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.components("consul")]
Run = Callable[..., CliResult]
SERVERS = {"lab-h1": "10.78.0.11", "lab-h2": "10.78.0.12", "lab-h3": "10.78.0.13"}


def api(addr: str, path: str) -> Any:
    with urllib.request.urlopen(f"http://{addr}:8500{path}", timeout=5) as r:
        return json.loads(r.read().decode())


@pytest.fixture(scope="module")
def cluster(lab: Lab) -> Iterator[Lab]:
    from goship.lab import hosts

    hosts.up(4, consul=True)
    yield lab
    # Later suites get fresh servers, 3 of them: the agents go with the hosts' disks.
    hosts.down()
    hosts.up(3)


def test_three_servers_a_client_one_leader_all_alive(cluster: Lab) -> None:
    leader = api("10.78.0.11", "/v1/status/leader")
    assert leader.split(":")[0] in SERVERS.values()
    peers = api("10.78.0.14", "/v1/status/peers")  # the client knows the servers too
    assert sorted(p.split(":")[0] for p in peers) == sorted(SERVERS.values())
    members = {m["Name"]: m for m in api("10.78.0.12", "/v1/agent/members")}
    assert set(members) == {*SERVERS, "lab-h4"}
    assert all(m["Status"] == 1 for m in members.values()), members  # alive
    assert {n for n, m in members.items() if m["Tags"]["role"] == "consul"} == set(SERVERS)
    assert members["lab-h4"]["Tags"]["role"] == "node"
    assert members["lab-h4"]["Addr"] == "10.78.0.14"
    for h in ("h1", "h4"):
        unit = cluster.ssh(h, "systemctl is-active goship-consul.service; "
                              "systemctl is-enabled goship-consul.service")
        assert unit.stdout.split() == ["active", "enabled"]
        # the agent API where deploys register: the host's loopback
        self_ = cluster.ssh(h, "curl -sf http://127.0.0.1:8500/v1/agent/self").stdout
        conf = json.loads(self_)["Config"]
        assert conf["NodeName"] == f"lab-{h}"
        assert conf["Version"] == "1.20.6"  # the version stamped into the build


def test_lab_status_shows_consul(cluster: Lab, run_cli: Run) -> None:
    r = run_cli("lab", "status", "--json")
    assert r.code == 0, r.err
    found = json.loads(r.out)["consul"]
    assert found["servers"] == ["h1", "h2", "h3"]
    assert found["clients"] == ["h4"]
    assert found["leader"]
    assert found["alive"] == ["lab-h1", "lab-h2", "lab-h3", "lab-h4"]
    text = run_cli("lab", "status")
    assert "consul v1.20.6  servers h1,h2,h3  clients h4" in text.out
    assert "4 member(s) alive" in text.out


def test_up_again_keeps_the_cluster(cluster: Lab) -> None:
    from goship.lab import hosts

    leader = api("10.78.0.11", "/v1/status/leader")
    hosts.up(4, consul=True)
    assert api("10.78.0.13", "/v1/status/leader") == leader


def test_down_removes_every_agent(cluster: Lab) -> None:
    from goship.lab import hosts

    hosts.down()
    try:
        left = subprocess.run(["pgrep", "-f", "goship-consul.d"], capture_output=True,
                              text=True, check=False)
        assert left.stdout == "", left.stdout
    finally:
        hosts.up(4, consul=True)  # the fixture's teardown expects a lab
