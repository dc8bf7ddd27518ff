"""Host facts are parsed from one probe's output; doctor judges them. Both pure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from goship.command import Cmd
from goship.config import parse
from goship.doctor import host_checks, judge, parse_go_version, version_tuple
from goship.facts import HostFacts, parse_df, parse_facts, parse_nginx_version, parse_uname
from goship.transport import FakeTransport, Result

PROBE_OUTPUT = """\
@os
Linux x86_64
@pid1
systemd
@systemd
running
@nginx
nginx version: nginx/1.22.1
@lua
1
@disk
/dev/vda        263112772 12001288 251095100       5% /
@user
uid=998(shop) gid=998(shop) groups=998(shop)
@uid
0
@sudo
root
@supervisord
@docker
/usr/bin/docker
@listen
LISTEN 0      4096         0.0.0.0:9100      0.0.0.0:*    users:(("prometheus-node",pid=312,fd=3))
LISTEN 0      511    0.0.0.0:80   0.0.0.0:*  users:(("nginx",pid=200,fd=6),("nginx",pid=201,fd=6))
LISTEN 0      4096            [::]:9100         [::]:*    users:(("prometheus-node",pid=312,fd=3))
LISTEN 0      4096   127.0.0.53%lo:53        0.0.0.0:*
LISTEN 0      128                *:8080            *:*    users:(("shop",pid=9,fd=3))
@units
312 prometheus-node-exporter.service
200 nginx.service
9 shop-blue@8080.service
@end
"""


def test_parse_probe() -> None:
    f = parse_facts(PROBE_OUTPUT)
    assert (f.os, f.arch) == ("linux", "amd64")
    assert f.systemd_pid1
    assert f.systemd_state == "running"
    assert f.nginx_version == "1.22.1"
    assert f.nginx_lua
    assert f.free_kib == 251095100
    assert f.free_path == "/"
    assert f.user_exists
    assert f.uid == 0
    assert f.privilege == "root"
    assert not f.supervisord
    assert f.docker


def test_a_release_probe_finds_nginx_without_asking_its_version() -> None:
    """Deploys and rollbacks ask where nginx is (no process started); doctor asks its
    version. Either way a missing nginx is missing."""
    quick = PROBE_OUTPUT.replace("nginx version: nginx/1.22.1", "/usr/sbin/nginx")
    assert "/usr/sbin/nginx" in quick
    f = parse_facts(quick)
    assert (f.nginx_version, f.nginx_path, f.nginx_installed) == (None, "/usr/sbin/nginx", True)
    assert parse_facts(PROBE_OUTPUT).nginx_installed
    gone = parse_facts(quick.replace("/usr/sbin/nginx\n", ""))
    assert not gone.nginx_installed


@pytest.mark.parametrize("full", [False, True])
def test_the_probe_runs_in_sh_and_says_what_this_machine_is(full: bool) -> None:
    """The probe script itself (shell builtins where it can), run by this machine's sh."""
    import os
    import subprocess

    from goship.facts import probe_cmd

    argv = probe_cmd("/srv/goship-test/not/there", "root", full=full).argv
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    f = parse_facts(out)
    assert f.os == "linux"
    assert f.uid == os.geteuid()
    assert f.user_exists
    assert f.free_path is not None
    assert f.free_kib
    assert f.pid1 == Path("/proc/1/comm").read_text().strip()
    assert f.nginx_installed  # this machine has nginx (the test command installs it)
    assert (f.nginx_version is not None) == full
    assert f.listeners is not None
    for port, who in f.listeners.items():  # every owner ss names keeps its pid
        assert port > 0
        assert (who.pid is None or who.pid > 0)


@pytest.mark.parametrize(("text", "expected"), [
    ("Linux aarch64", ("linux", "arm64")), ("Darwin arm64", ("darwin", "arm64")),
    ("garbage", (None, None)),
])
def test_uname(text: str, expected: tuple[str | None, str | None]) -> None:
    assert parse_uname(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("nginx version: nginx/1.25.3", "1.25.3"),
    ("nginx version: openresty/1.21.4.1", "1.21.4"),
    ("sh: 1: nginx: not found", None), ("", None),
])
def test_nginx_version(text: str, expected: str | None) -> None:
    assert parse_nginx_version(text) == expected


def test_df() -> None:
    assert parse_df("tmpfs 2097152 1024 2096128 1% /run") == (2096128, "/run")
    assert parse_df("df: /nope: No such file") == (None, None)


@pytest.mark.parametrize(("text", "expected"), [
    ("go version go1.26.8 linux/amd64", (1, 26, 8)), ("go version go1.22 linux/arm64", (1, 22, 0)),
    ("nothing", None),
])
def test_go_version(text: str, expected: tuple[int, int, int] | None) -> None:
    assert parse_go_version(text) == expected
    assert version_tuple("1.25.0") > version_tuple("1.22")


def facts(**over: Any) -> HostFacts:
    return HostFacts(**{**parse_facts(PROBE_OUTPUT).__dict__, **over})


def env(**cfg: Any) -> Any:
    return parse({"app": {"name": "shop"}, **cfg, "env": {"p": {"hosts": ["h1"]}}}).env("p")


def levels(checks: list[Any]) -> dict[str, str]:
    return {c.what: c.level for c in checks}


def test_judge_a_good_host() -> None:
    checks = judge("h1", facts(), env())
    assert set(levels(checks).values()) == {"ok"}


@pytest.mark.parametrize(("over", "cfg", "what", "fix"), [
    ({"nginx_version": None}, {}, "nginx", "apt-get install nginx"),
    ({"arch": "arm64"}, {}, "os", 'add "linux/arm64" to build.targets'),
    ({"os": "darwin"}, {}, "os", "deploy to Linux hosts"),
    ({"free_kib": 1000}, {}, "disk", "free at least 1 GiB"),
    ({"privilege": "none"}, {}, "privilege", "NOPASSWD"),
    ({"pid1": "init"}, {"run": {"manager": "systemd"}}, "init", 'run.manager = "supervisord"'),
    ({"docker": False}, {"run": {"manager": "docker"}}, "docker", "install docker.io"),
])
def test_judge_problems_say_how_to_fix(over: dict[str, Any], cfg: dict[str, Any], what: str,
                                       fix: str) -> None:
    checks = judge("h1", facts(**over), env(**cfg))
    bad = [c for c in checks if c.what == what]
    assert bad
    assert bad[0].level == "fail"
    assert fix in bad[0].line()
    assert bad[0].line().startswith(f"FAIL h1: {what}:")


def test_missing_user_is_not_a_failure() -> None:
    checks = judge("h1", facts(user_exists=False), env())
    assert levels(checks)["user"] == "ok"


def test_host_checks_over_a_fake_transport() -> None:
    t = FakeTransport("h9", {"sh -c": Result(0, PROBE_OUTPUT, "")})
    checks = host_checks(t, env())
    assert levels(checks)["reachable"] == "ok"
    assert len(t.calls) == 1  # one round trip
    probe: Cmd = t.calls[0]
    # arguments, never spliced into the script; doctor asks systemd's state and nginx's version
    assert probe.argv[-3:] == ("/srv", "shop", "1")


def test_unreachable_host_is_one_failure() -> None:
    from goship.errors import TransportError

    def refuse(_: Cmd) -> Result:
        raise TransportError("h9: cannot connect over ssh: Connection refused")

    checks = host_checks(FakeTransport("h9", {"sh -c": refuse}), env())
    assert [c.what for c in checks] == ["reachable"]
    assert checks[0].level == "fail"
    assert "Connection refused" in checks[0].line()


def test_listeners_name_the_process_and_its_unit() -> None:
    f = facts()
    assert f.listeners is not None
    assert f.listeners[9100].describe() == "prometheus-node-exporter (pid 312)"
    assert f.listeners[80].unit == "nginx.service"
    assert f.listeners[53].describe() == "an unknown process"  # not ours to see
    assert f.listeners[8080].unit == "shop-blue@8080.service"


def test_without_ss_the_ports_are_unknown_not_free() -> None:
    text = PROBE_OUTPUT.replace("@listen\n", "@listen\nno-ss\n@skipped\n")
    assert parse_facts(text).listeners is None
    checks = judge("h1", HostFacts(**{**facts().__dict__, "listeners": None}), env())
    assert levels(checks)["ports"] == "warn"


def test_doctor_names_who_holds_the_apps_ports() -> None:
    checks = judge("h1", facts(), env(run={"base_port": 9000}))
    ports = next(c for c in checks if c.what == "ports")
    assert ports.level == "warn"
    assert "9100 (green) is held by prometheus-node-exporter (pid 312)" in ports.line()
    strict = judge("h1", facts(), env(run={"ports": {"blue": [9000], "green": [9100]}}))
    assert levels(strict)["ports"] == "fail"
