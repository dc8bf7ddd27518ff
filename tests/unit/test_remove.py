"""goship remove's plan as data: a probe's output in, the steps per host out. Nothing runs;
the probe texts are shaped like the real script's output on a lab host (systemd, Lua) and
on this machine (goship's own supervisord and nginx)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from goship.command import Cmd
from goship.config.load import Environment
from goship.deploy.layout import Paths
from goship.deploy.remove import (
    FleetRemoval,
    Reached,
    RemoveFacts,
    _nginx_sites,
    file_sd_left,
    own_units,
    parse_probe,
    plan_host,
)
from goship.facts import parse_facts
from goship.transport.base import Result
from goship.transport.fake import Answer, FakeTransport
from tests.conftest import CliResult

P = Paths("/srv", "shop")

# Captured on lab host h1 (systemd, Lua): `shop` deployed twice (its green moved to 9101:
# prometheus-node-exporter holds 9100; blue is the warm standby under its timer) beside
# `shop-admin` on 8093, with a file in shop's data; then the probe.
LAB = """\
@root
yes
@entries
blue
current
green
incoming
journal.jsonl
logs
nginx-default-site.off
releases
run
shared
state.json
@shared
data
env.blue
env.green
envs
@data
1
4
@releases
v1.0.0-f0f8ab8594
v1.1.0-c4fbadfd03
@lock
@unitfiles
/etc/systemd/system/multi-user.target.wants/shop-admin-blue@9200.service
/etc/systemd/system/multi-user.target.wants/shop-green@9101.service
/etc/systemd/system/shop-admin-blue@.service
/etc/systemd/system/shop-admin-green@.service
/etc/systemd/system/shop-blue@.service
/etc/systemd/system/shop-green@.service
@units
goship-shop-standby-blue.service loaded inactive dead    goship: stop the warm standby blue of shop
shop-admin-blue@9200.service     loaded active   running shop-admin (blue color) on port 9200
shop-blue@9000.service           loaded active   running shop (blue color) on port 9000
shop-green@9101.service          loaded active   running shop (green color) on port 9101
goship-shop-standby-blue.timer   loaded active   waiting goship: stop the warm standby blue of shop
@etc
/etc/sysusers.d/shop.conf
/etc/tmpfiles.d/goship-shop.conf
/run/goship/shop
/etc/nginx/conf.d/goship-shop.conf
/var/log/nginx/goship-shop.access.log
@nginx
active
@defaultoff
link
\tlisten 80 default_server;
\tlisten [::]:80 default_server;
@defaults
    listen 8093 default_server;
@own
@user
995
@userrefs
/etc/systemd/system/shop-blue@.service
/etc/systemd/system/shop-green@.service
/etc/sysusers.d/shop.conf
@end
"""

# Captured on this machine: `goship deploy local` twice (goship's own supervisord and nginx,
# the warm standby's sleeper), then the probe; Debian's nginx site is enabled here.
LOCAL = """\
@root
yes
@entries
blue
current
green
incoming
journal.jsonl
logs
releases
run
shared
state.json
@shared
data
env.blue
env.green
envs
@data
0
4
@releases
v1.0.0-ba593961c0
v1.1.0-f292566b15
@lock
@unitfiles
@units
@etc
@nginx
@defaultoff
@defaults
enabled
\tlisten 80 default_server;
\tlisten [::]:80 default_server;
@own
supervisord
nginx
sleeper /tmp/rmtest/deploy/rmlocal/run/standby.blue.pid
@user
@userrefs
@end
"""
LP = Paths("/tmp/rmtest/deploy", "rmlocal")

GONE = "@root\n@entries\n@shared\n@data\n@releases\n@lock\n@unitfiles\n@units\n@etc\n" \
    "@nginx\nactive\n@defaultoff\n@defaults\n@own\n@user\n998\n@userrefs\n@end\n"


def kinds(text: str, purge: bool = False) -> dict[str, tuple[str, ...]]:
    plan = plan_host("h1", "shop", "shop", P, parse_probe(text, "shop", "shop", P),
                     purge_data=purge)
    return {s.kind: s.what for s in plan.steps}


def test_a_systemd_host_loses_every_name_of_the_app_and_no_other() -> None:
    steps = kinds(LAB)
    assert list(steps) == [
        "nginx site", "nginx default site", "stop timers", "stop and disable units",
        "remove unit files", "remove tmpfiles.d entry", "remove control socket dir",
        "remove nginx access logs", "remove files"]
    assert steps["stop timers"] == ("goship-shop-standby-blue.service",
                                    "goship-shop-standby-blue.timer")
    assert steps["stop and disable units"] == ("shop-blue@9000.service",
                                               "shop-green@9101.service")
    assert steps["remove unit files"] == (
        "/etc/systemd/system/multi-user.target.wants/shop-green@9101.service",
        "/etc/systemd/system/shop-blue@.service", "/etc/systemd/system/shop-green@.service")
    assert "shop-admin" not in repr(steps)  # a prefix is not the app
    assert steps["nginx default site"] == ("/etc/nginx/sites-enabled/default",)
    # The data stays; the environments (secrets) and everything else go.
    assert steps["remove files"] == tuple(f"/srv/shop/{e}" for e in (
        "blue", "current", "green", "incoming", "journal.jsonl", "logs",
        "nginx-default-site.off", "releases", "run", "state.json", "shared/env.blue",
        "shared/env.green", "shared/envs"))


def test_data_and_user_are_kept_and_said_so_unless_purged() -> None:
    plan = plan_host("h1", "shop", "shop", P, parse_probe(LAB, "shop", "shop", P),
                     purge_data=False)
    assert plan.kept == ("/srv/shop/shared/data (1 entry, 4 KiB; --purge-data removes "
                         "it)", "user shop and /etc/sysusers.d/shop.conf (owner of the data; "
                         "--purge-data removes it)")
    assert "keeps: /srv/shop/shared/data" in "\n".join(plan.lines())
    purged = kinds(LAB, purge=True)
    assert "/srv/shop/shared/data" in purged["remove files"]
    assert purged["remove sysusers.d entry"] == ("/etc/sysusers.d/shop.conf",)
    assert purged["delete user"] == ("shop",)


def test_a_user_another_app_names_is_never_deleted() -> None:
    text = LAB.replace("@userrefs\n", "@userrefs\n/etc/systemd/system/other@.service\n")
    f = parse_probe(text, "shop", "shop", P)
    assert f.user_refs == ("/etc/systemd/system/other@.service",)  # its own units don't count
    plan = plan_host("h1", "shop", "shop", P, f, purge_data=True)
    assert "delete user" not in {s.kind for s in plan.steps}
    assert plan.kept == ("user shop (also named by /etc/systemd/system/other@.service)",)


def test_debian_default_site_stays_aside_when_another_site_is_default_on_its_port() -> None:
    clash = LAB.replace("    listen 8093 default_server;", "  listen 80 default_server;")
    assert "nginx default site" not in kinds(clash)  # a link: its target stays available
    as_file = clash.replace("@defaultoff\nlink", "@defaultoff\nfile")
    assert kinds(as_file)["nginx default site"] == (
        "/etc/nginx/sites-available/default.goship-shop",)
    enabled = LAB.replace("@defaults\n", "@defaults\nenabled\n")
    assert "nginx default site" not in kinds(enabled)


def test_local_mode_stops_the_apps_own_nginx_and_supervisord() -> None:
    f = parse_probe(LOCAL, "rmlocal", "rmlocal", LP)
    assert (f.other_default_ports, f.default_enabled) == ((80,), True)
    plan = plan_host("local", "rmlocal", "rmlocal", LP, f, purge_data=False)
    steps = {s.kind: s.what for s in plan.steps}
    assert list(steps) == ["stop nginx", "cancel standby stop", "stop supervisord",
                           "remove files"]
    assert steps["cancel standby stop"] == ("/tmp/rmtest/deploy/rmlocal/run/standby.blue.pid",)
    assert "/tmp/rmtest/deploy/rmlocal/shared/data" in steps["remove files"]  # empty
    assert plan.kept == ()  # no data, no user of its own (local mode runs as the deployer)
    assert plan.take_lock
    assert plan.lines()[-1] == (
        "  remove files: /tmp/rmtest/deploy/rmlocal/ blue, current, green, incoming, "
        "journal.jsonl, logs, releases, run, state.json, shared/data, shared/env.blue, "
        "shared/env.green, shared/envs (2 release(s), state, journal, environments)")


def test_nothing_left_is_nothing_to_remove() -> None:
    plan = plan_host("h1", "shop", "shop", P, parse_probe(GONE, "shop", "shop", P),
                     purge_data=False)
    assert plan.nothing
    assert not plan.take_lock
    assert plan.lines() == ["h1: nothing to remove", "  keeps: user shop (owner of the "
                            "data; --purge-data removes it)"]
    kept_data = GONE.replace("@root\n", "@root\nyes\n").replace(
        "@entries\n", "@entries\n.lock.guard\nshared\n").replace(
        "@shared\n", "@shared\ndata\n").replace("@data\n", "@data\n1\n4\n")
    again = plan_host("h1", "shop", "shop", P, parse_probe(kept_data, "shop", "shop", P),
                      purge_data=False)
    assert again.nothing  # only kept data: a second remove has nothing to do
    assert FleetRemoval("shop", "lab", [again]).nothing


def test_the_lock_holder_is_named_in_the_plan() -> None:
    text = LAB.replace("@lock\n", '@lock\n{"who": "ana@ci", "pid": 77, "command": '
                       '"goship deploy lab"}\n')
    plan = plan_host("h1", "shop", "shop", P, parse_probe(text, "shop", "shop", P),
                     purge_data=False)
    assert "deploy lock held by ana@ci pid 77, `goship deploy lab`" in "\n".join(plan.lines())


@pytest.mark.parametrize(("name", "ours"), [
    ("shop-blue@8000.service", True), ("shop-green@.service", True),
    ("shop-green@.service.d", True), ("goship-shop-standby-green.timer", True),
    ("goship-shop-standby-green.service", True), ("shop-admin-blue@8000.service", False),
    ("goship-shop-admin-standby-blue.timer", False), ("shop.service", False),
    ("shop-blue@8000.service.bak", False), ("myshop-blue@8000.service", False),
])
def test_only_the_apps_own_unit_names(name: str, ours: bool) -> None:
    assert bool(own_units("shop").match(name)) is ours


def test_file_sd_loses_this_envs_targets_on_the_removed_hosts_only() -> None:
    groups = [
        {"targets": ["10.0.0.1:8000"], "labels": {"env": "lab", "color": "blue"}},
        {"targets": ["10.0.0.2:8000"], "labels": {"env": "lab", "color": "blue"}},
        {"targets": ["10.0.0.1:8000"], "labels": {"env": "prod", "color": "blue"}},
    ]
    assert file_sd_left(groups, "lab", {"10.0.0.1"}) == groups[1:]
    assert file_sd_left(groups[:1], "lab", {"10.0.0.1"}) == []


def test_remove_facts_default_is_an_empty_host() -> None:
    assert plan_host("h1", "shop", "shop", P, RemoveFacts(), purge_data=True).nothing


def test_remove_needs_yes_without_a_terminal(run_cli: Callable[..., CliResult],
                                             tmp_path: Path) -> None:
    base = tmp_path / "deploy"
    (base / "shop" / "releases").mkdir(parents=True)
    (tmp_path / "goship.toml").write_text(
        f'[app]\nname = "shop"\n[deploy]\nbase_path = "{base}"\n[env.local]\nlocal = true\n'
        f"[env.local.proxy]\nlisten = 18999\n")
    r = run_cli("remove", "local", cwd=tmp_path)
    assert r.code == 2, r.out + r.err
    assert "pass --yes" in r.err
    assert (base / "shop" / "releases").is_dir()  # nothing changed
    r = run_cli("remove", "local", "--dry-run", cwd=tmp_path)
    assert r.code == 0
    assert f"remove files: {base}/shop/releases" in r.out
    r = run_cli("remove", "local", "--yes", cwd=tmp_path)
    assert r.code == 0, r.out + r.err
    assert not (base / "shop").exists()
    r = run_cli("remove", "local", cwd=tmp_path)
    assert (r.code, r.out.splitlines()[-1]) == (0, "nothing of shop to remove on local")


def _reached(text: str, answers: dict[str, Answer]) -> tuple[Reached, FakeTransport]:
    t = FakeTransport("h1", answers)
    facts = parse_facts("@pid1\nsystemd\n")
    return Reached(t, facts, parse_probe(text, "shop", "shop", P), "10.78.0.11"), t


def _env() -> Environment:
    import tomllib

    from goship.config.model import Config, Target_

    config = Config.model_validate(tomllib.loads('[app]\nname = "shop"\n'))
    return Environment("lab", Target_.model_validate({"lab": 1}), config)


def test_site_out_and_default_site_back_in_one_reload() -> None:
    ok = Result(0, "", "")
    r, t = _reached(LAB, {"cat": Result(0, "server {}\n", ""), "rm": ok, "mv": ok,
                       "nginx -t": ok, "systemctl": ok})
    plan = plan_host("h1", "shop", "shop", P, r.found, purge_data=False)
    _nginx_sites(r, _env(), P, plan)
    shells = [c.shell() for c in t.calls]
    assert shells == [
        "cat /etc/nginx/conf.d/goship-shop.conf",
        "rm -f -- /etc/nginx/conf.d/goship-shop.conf",
        "mv -f -- /srv/shop/nginx-default-site.off /etc/nginx/sites-enabled/default",
        "nginx -t", "systemctl is-active --quiet nginx", "systemctl reload nginx"]


def test_a_default_site_that_breaks_nginx_stays_disabled() -> None:
    tests = iter([Result(1, "", "nginx: [emerg] a duplicate default server for 0.0.0.0:80"),
                  Result(0, "", "")])

    def nginx_t(_: Cmd) -> Result:
        return next(tests)

    ok = Result(0, "", "")
    r, t = _reached(LAB, {"cat": Result(0, "server {}\n", ""), "rm": ok, "mv": ok,
                       "nginx -t": nginx_t, "systemctl": ok})
    plan = plan_host("h1", "shop", "shop", P, r.found, purge_data=False)
    _nginx_sites(r, _env(), P, plan)
    shells = [c.shell() for c in t.calls]
    assert "mv -f -- /etc/nginx/sites-enabled/default " \
        "/etc/nginx/sites-available/default.goship-shop" in shells
    assert shells[-1] == "systemctl reload nginx"
    assert shells.count("nginx -t") == 2
