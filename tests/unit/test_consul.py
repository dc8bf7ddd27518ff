"""Consul as data: the lab cluster's agent configs, and what a deploy registers,
puts in maintenance and deregisters, as agent API calls sent through a transport."""

from __future__ import annotations

import json
import shlex
from typing import Any

import pytest

from goship.config import parse
from goship.deploy import consul
from goship.errors import ApplyError, ConfigErrors
from goship.lab import consul as lab_consul
from goship.lab import consul_build
from goship.lab.layout import HostLayout
from goship.transport.base import Result
from goship.transport.fake import FakeTransport


def config(**section: Any) -> Any:
    return parse({"app": {"name": "shop"}, "run": {"health": {"path": "/healthz"}},
                  "consul": {"enabled": True, **section},
                  "env": {"p": {"local": True}}}).env("p").config


def test_registration_names_release_track_color_and_checks_health_locally() -> None:
    c = config(tags=["web"], meta={"team": "pay"}, check_interval="5s", check_timeout="1s",
               deregister_after="2m")
    calls = consul.plan_register(c, release="r42", color="green", ports=[9001, 9002],
                                 address="10.78.0.12", env="p")
    assert [x.path for x in calls] == [
        "/v1/agent/service/register",
        "/v1/agent/service/maintenance/shop-green-9001?enable=false",
        "/v1/agent/service/register",
        "/v1/agent/service/maintenance/shop-green-9002?enable=false",
    ]
    body = calls[0].body
    assert body is not None
    assert body["ID"] == "shop-green-9001"
    assert body["Name"] == "shop"
    assert body["Address"] == "10.78.0.12"
    assert body["Port"] == 9001
    assert body["Tags"] == ["web", "release=r42", "track=stable", "color=green"]
    assert body["Meta"] == {"team": "pay", "release": "r42", "track": "stable",
                            "color": "green", "env": "p"}
    assert body["Check"] == {
        "CheckID": "shop-green-9001-http", "Name": "shop health on 9001",
        "HTTP": "http://127.0.0.1:9001/healthz", "Method": "GET", "Interval": "5s",
        "Timeout": "1s", "DeregisterCriticalServiceAfter": "2m", "Status": "passing"}


def test_standby_goes_to_maintenance_and_a_stop_deregisters() -> None:
    c = config()
    standby = consul.plan_standby(c, color="blue", ports=[9000], release="r41")
    assert [(x.method, x.path) for x in standby] == [
        ("PUT", "/v1/agent/service/maintenance/shop-blue-9000?enable=true"
                "&reason=goship%3A%20standby%20%28r41%29")]
    gone = consul.plan_deregister(c, color="blue", ports=[9000, 9001])
    assert [x.path for x in gone] == ["/v1/agent/service/deregister/shop-blue-9000",
                                      "/v1/agent/service/deregister/shop-blue-9001"]


def test_disabled_plans_nothing() -> None:
    c = config(enabled=False)
    assert consul.plan_register(c, release="r", color="blue", ports=[1], address=None) == []
    assert consul.plan_standby(c, color="blue", ports=[1], release="r") == []
    assert consul.plan_deregister(c, color="blue", ports=[1]) == []


def test_commands_carry_the_body_on_stdin_and_fail_on_http_errors() -> None:
    c = config(meta={"note": "a=b:c/d+e"})
    call = consul.plan_register(c, release="r1", color="blue", ports=[9000], address=None)[0]
    cmd = consul.command("127.0.0.1:8500", call)
    argv = shlex.split(cmd.shell())
    assert argv[0] == "curl"
    assert "--fail-with-body" in argv
    assert argv[-1] == "http://127.0.0.1:8500/v1/agent/service/register"
    assert cmd.stdin is not None
    assert json.loads(cmd.stdin) == call.body


def test_hostile_meta_is_refused_at_validation() -> None:
    with pytest.raises(ConfigErrors, match=r"consul\.meta\.note"):
        config(meta={"note": "a'b;$(x)"})


def test_apply_raises_naming_the_host_and_call() -> None:
    calls = consul.plan_deregister(config(), color="blue", ports=[9000])
    t = FakeTransport("h1", {"curl": Result(22, "", "curl: (7) Failed to connect")})
    with pytest.raises(ApplyError, match=r"h1: Consul deregistration failed .*Failed to conn"):
        consul.apply(t, "127.0.0.1:8500", calls, "deregistration")
    ok = FakeTransport("h1", {"curl": Result(0, "true", "")})
    consul.apply(ok, "127.0.0.1:8500", calls, "deregistration")
    assert len(ok.calls) == 1


def test_agent_address_is_validated() -> None:
    with pytest.raises(ConfigErrors):
        config(agent="127.0.0.1:8500; rm -rf /")


@pytest.mark.parametrize(("count", "servers"), [(1, 1), (2, 1), (3, 3), (5, 3)])
def test_lab_cluster_servers_and_bootstrap(count: int, servers: int) -> None:
    hosts = [HostLayout(i) for i in range(1, count + 1)]
    confs = [lab_consul.agent_config(h, hosts) for h in hosts]
    assert [c["server"] for c in confs] == [True] * servers + [False] * (count - servers)
    for h, c in zip(hosts, confs, strict=True):
        assert c["bind_addr"] == h.addr
        assert c["advertise_addr"] == h.addr
        assert c["client_addr"] == f"127.0.0.1 {h.addr}"
        assert h.addr not in c["retry_join"]
        assert set(c["retry_join"]) <= {x.addr for x in hosts[:servers]}
        if c["server"]:
            assert c["bootstrap_expect"] == servers
        else:
            assert "bootstrap_expect" not in c
            assert len(c["retry_join"]) == servers


def test_lab_unit_runs_the_cached_binary() -> None:
    hosts = [HostLayout(1)]
    files = lab_consul.host_files(hosts[0], hosts, "/root/.cache/goship/consul/v1/consul")
    unit = files[f"/etc/systemd/system/{lab_consul.UNIT}"]
    assert "ExecStart=/root/.cache/goship/consul/v1/consul agent -config-dir=" in unit
    assert json.loads(files[f"{lab_consul.CONFIG_DIR}/agent.json"])["data_dir"] == \
        lab_consul.DATA_DIR


def test_build_stamps_the_version_and_keys_the_cache_on_sources() -> None:
    flags = consul_build.ldflags("v1.20.6")
    assert "-X github.com/hashicorp/consul/version.GitCommit=v1.20.6" in flags
    assert "version.BuildDate=" in flags
    assert len(consul_build.sources_hash()) == 64
    gomod = (consul_build.SRC / "go.mod").read_text()
    assert "github.com/hashicorp/consul v1.20.6" in gomod
    for sub in ("api", "sdk", "proto-public", "envoyextensions", "troubleshoot"):
        assert f"github.com/hashicorp/consul/{sub} => github.com/hashicorp/consul/{sub} v" \
            in gomod


def test_remove_deregisters_every_instance_of_the_app_and_nothing_else() -> None:
    services = {
        "shop-blue-9000": {"Service": "shop"}, "shop-green-9101": {"Service": "shop"},
        "shop-admin-blue-9001": {"Service": "shop-admin"}, "shop-x": {"Service": "shop"},
        "redis": {"Service": "redis"}, "shop-blue-9002": {"Service": "other"},
    }
    calls = consul.plan_remove(config(), services)
    assert [x.path for x in calls] == ["/v1/agent/service/deregister/shop-blue-9000",
                                       "/v1/agent/service/deregister/shop-green-9101"]


@pytest.mark.parametrize(("out", "health"), [
    ("passing\n200", "passing"), ("critical\n503", "critical"),
    ("maintenance\n503", "maintenance"), ("warning\n429", "warning"),
    ("ServiceId not found\n404", "not registered"), ("\n000", "no agent"), ("", "no agent"),
])
def test_status_reads_the_agents_health(out: str, health: str) -> None:
    assert consul.parse_health(out) == health


def test_status_query_names_the_instance() -> None:
    cmd = consul.health_query("127.0.0.1:8500", consul.service_id("shop", "blue", 9000))
    assert cmd.argv[-1] == ("http://127.0.0.1:8500/v1/agent/health/service/id/shop-blue-9000"
                            "?format=text")


def test_doctor_judges_the_agent() -> None:
    agent = "127.0.0.1:8500"
    me = json.dumps({"Config": {"Version": "1.20.6", "NodeName": "lab-h4", "Server": False,
                                "Datacenter": "lab"}})
    assert consul.judge_agent(agent, me, '"10.78.0.11:8300"') == (
        "ok", "Consul 1.20.6 agent lab-h4 (client) in lab, leader 10.78.0.11:8300", "")
    level, detail, _ = consul.judge_agent(agent, me, '""')
    assert (level, detail.endswith("the cluster has no leader")) == ("fail", True)
    assert consul.judge_agent(agent, None, None)[:2] == (
        "fail", "no Consul agent answers at 127.0.0.1:8500")
    assert consul.judge_agent(agent, "<html>", "x")[0] == "fail"


def test_a_cluster_takes_clients_but_keeps_its_servers() -> None:
    four = [HostLayout(i) for i in range(1, 5)]
    found = {"servers": ["h1", "h2", "h3"], "clients": ["h4"]}
    assert lab_consul.refused_resize(None, four) is None
    assert lab_consul.refused_resize(found, four) is None
    assert lab_consul.refused_resize(found, [*four, HostLayout(5)]) is None
    why = lab_consul.refused_resize({"servers": ["h1"], "clients": []}, four)
    assert why == "the lab's Consul servers are h1, not h1, h2, h3"
