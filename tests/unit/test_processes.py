"""[processes.*]: validation (hostile names and schedules refused with one line), the
systemd units rendered for them, and the liveness verdict of the worker gate, as data."""

from __future__ import annotations

from typing import Any

import pytest

from goship.config import parse
from goship.config.model import Config
from goship.deploy import processes
from goship.deploy.layout import Paths
from goship.errors import ConfigErrors

BASE: dict[str, Any] = {"app": {"name": "shop"}}


def config(**procs: Any) -> Config:
    return parse({**BASE, "processes": procs}).base


def error_of(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigErrors) as info:
        parse(raw, file="goship.toml")
    return "\n".join(e.line() for e in info.value.errors)


REFUSED = [
    ({"Worker": {"main": "cmd/worker"}}, "expected a process name"),
    ({"../x": {"main": "cmd/worker"}}, "expected a process name"),
    ({"w;rm": {"main": "cmd/worker"}}, "expected a process name"),
    ({"w": {"main": "../outside"}}, "processes.w.main"),
    ({"w": {"main": "cmd/w", "schedule": "*-*-* 03:00:00\nExecStart=/bin/sh"}},
     "expected a systemd calendar event"),
    ({"w": {"main": "cmd/w", "schedule": "daily; rm -rf /"}},
     "expected a systemd calendar event"),
    ({"w": {"main": "cmd/w", "schedule": "*-*-* 03:00:00 $(id)"}},
     "expected a systemd calendar event"),
    ({"w": {"main": "cmd/w", "schedule": "tomorrow at noon"}}, "systemd-analyze calendar"),
    ({"w": {"main": "cmd/w", "schedule": "daily", "instances": 2}},
     "a scheduled process runs once per schedule"),
    ({"w": {"main": "cmd/w", "instances": 0}}, "processes.w.instances"),
    ({"w": {"main": "cmd/w", "env": {"A B": "x"}}}, "processes.w.env"),
    ({"w": {"main": "cmd/w", "args": ["a\nb"]}}, "one line"),
    ({"w": {"main": "cmd/w", "health_command": "ok\nrm -rf /"}}, "one command on one line"),
    ({"w": {"main": "."}}, "is the web process's (app.main)"),
    ({"shop": {"main": "cmd/shop"}}, "the web binary is named shop"),
    ({"a": {"main": "cmd/w"}, "b": {"main": "cmd/w"}}, "two processes name the same main"),
    ({"w": {"main": "cmd/w", "colour": "blue"}}, "processes.w.colour"),
]


@pytest.mark.parametrize(("procs", "said"), REFUSED, ids=[s for _, s in REFUSED])
def test_refused_with_one_line(procs: dict[str, Any], said: str) -> None:
    assert said in error_of({**BASE, "processes": procs})


def test_a_schedule_under_supervisord_is_refused_with_the_fix() -> None:
    said = error_of({**BASE, "run": {"manager": "supervisord"},
                     "processes": {"w": {"main": "cmd/w"},
                                   "nightly": {"main": "cmd/n", "schedule": "daily"}}})
    assert 'processes.nightly.schedule: run.manager = "supervisord" has no timers' in said
    assert "run the job from the host's cron (the binary ships as " \
           "BASE/APP/current/nightly)" in said
    # workers alone run under supervisord; docker runs none yet
    parse({**BASE, "run": {"manager": "supervisord"}, "processes": {"w": {"main": "cmd/w"}}})
    said = error_of({**BASE, "run": {"manager": "docker"},
                     "processes": {"w": {"main": "cmd/w"}}})
    assert 'run.manager = "docker" cannot run [processes.*] yet' in said


def test_defaults_and_env_override() -> None:
    project = parse({**BASE, "processes": {"worker": {"main": "cmd/worker"}},
                     "env": {"prod": {"hosts": ["app1"],
                                      "processes": {"worker": {"main": "cmd/worker",
                                                               "instances": 3}}}}})
    w = project.base.processes["worker"]
    assert (w.instances, w.overlap, w.schedule, w.args, w.env) == (1, True, None, [], {})
    assert project.env("prod").config.processes["worker"].instances == 3


def test_units_per_color() -> None:
    c = config(worker={"main": "cmd/worker", "instances": 2},
               nightly={"main": "cmd/nightly", "schedule": "*-*-* 03:00:00"})
    assert processes.units(c, "blue") == ["shop.nightly-blue.timer",
                                          "shop.worker-blue@1.service",
                                          "shop.worker-blue@2.service"]
    assert processes.units(c, "green", ["worker"]) == ["shop.worker-green@1.service",
                                                       "shop.worker-green@2.service"]


def test_rendered_units() -> None:
    c = config(worker={"main": "cmd/worker", "args": ["--queue", "{release}"],
                       "env": {"QUEUE": 'a "b" 100%\\n'}},
               nightly={"main": "cmd/nightly", "schedule": "Mon..Fri 02:30"})
    units = processes.render_units(c, Paths("/srv", "shop"), None)
    assert sorted(units) == ["shop.nightly-blue.service", "shop.nightly-blue.timer",
                             "shop.nightly-green.service", "shop.nightly-green.timer",
                             "shop.worker-blue@.service", "shop.worker-green@.service"]
    w = units["shop.worker-green@.service"]
    assert "ExecStart=/srv/shop/green/worker --queue ${GOSHIP_RELEASE}\n" in w
    assert "WorkingDirectory=/srv/shop/green\n" in w
    assert "EnvironmentFile=-/srv/shop/shared/env.green\n" in w
    assert "Environment=GOSHIP_INSTANCE=%i\n" in w
    assert 'Environment="QUEUE=a \\"b\\" 100%%\\\\n"\n' in w
    assert "Restart=on-failure" in w
    assert "WantedBy=multi-user.target" in w
    job = units["shop.nightly-blue.service"]
    assert "Type=oneshot" in job
    assert "[Install]" not in job  # started by its timer only
    assert "ExecStart=/srv/shop/blue/nightly\n" in job
    timer = units["shop.nightly-blue.timer"]
    assert "OnCalendar=Mon..Fri 02:30\n" in timer
    assert "Unit=shop.nightly-blue.service\n" in timer


def test_web_units_include_the_processes() -> None:
    from goship.render.kinds import systemd_units

    c = config(worker={"main": "cmd/worker"})
    assert "shop.worker-blue@.service" in systemd_units(c, Paths("/srv", "shop"))


SHOW_BEFORE = """Id=shop.worker-blue@1.service
ActiveState=active
SubState=running
MainPID=101
NRestarts=0

Id=shop.worker-blue@2.service
ActiveState=active
SubState=running
MainPID=102
NRestarts=0
"""

U1, U2 = "shop.worker-blue@1.service", "shop.worker-blue@2.service"
VERDICTS = [
    ("live", SHOW_BEFORE, None),
    ("restarted", SHOW_BEFORE.replace("MainPID=102\nNRestarts=0", "MainPID=140\nNRestarts=1"),
     f"{U2} restarted (pid 102 -> 140)"),
    ("crashed", SHOW_BEFORE.replace("ActiveState=active\nSubState=running\nMainPID=102",
                                    "ActiveState=activating\nSubState=auto-restart\n"
                                    "MainPID=0"),
     f"{U2} is not running (activating/auto-restart)"),
    ("failed", SHOW_BEFORE.replace("ActiveState=active\nSubState=running\nMainPID=101",
                                   "ActiveState=failed\nSubState=failed\nMainPID=0"),
     f"{U1} is not running (failed/failed)"),
]


@pytest.mark.parametrize(("name", "after", "why"), VERDICTS, ids=[v[0] for v in VERDICTS])
def test_gate_verdict(name: str, after: str, why: str | None) -> None:
    before = processes.parse_show(SHOW_BEFORE)
    assert processes.judge(before, processes.parse_show(after), [U1, U2]) == why


def test_not_running_at_the_first_look_is_not_live() -> None:
    before = processes.parse_show(SHOW_BEFORE.replace("MainPID=101", "MainPID=0"))
    assert processes.judge(before, processes.parse_show(SHOW_BEFORE), [U1]) == \
        f"{U1} restarted (pid none -> 101)"


def test_plan_lines() -> None:
    c = config(worker={"main": "cmd/worker", "instances": 2},
               mailer={"main": "cmd/mailer", "overlap": False},
               nightly={"main": "cmd/nightly", "schedule": "daily"})
    lines = processes.plan_lines(processes.plan(c, "green", "blue"))
    assert lines == [
        "  process mailer: 1 instance(s) on green, gated before the switch (live 5s "
        "without a restart); blue's stop before the new start",
        "  process nightly: timer (daily) on green from the switch; blue's stop at the "
        "switch",
        "  process worker: 2 instance(s) on green, gated before the switch (live 5s "
        "without a restart); blue's stop after the switch"]


PROBE_UNITS = """\
shop.worker-green@1.service      loaded active   running shop process worker (green color)
shop.nightly-green.timer         loaded active   waiting shop process nightly (green color)
shop.nightly-blue.service        loaded inactive dead    shop process nightly (blue color)
shopx.worker-blue@1.service      loaded active   running shopx process worker (blue color)
"""
PROBE_FILES = """\
/etc/systemd/system/multi-user.target.wants/shop.worker-green@1.service
/etc/systemd/system/timers.target.wants/shop.nightly-green.timer
/etc/systemd/system/shop.worker-green@.service
/etc/systemd/system/shop.nightly-green.timer
/etc/systemd/system/shopx.worker-blue@.service
"""


def test_remove_stops_and_deletes_the_processes_units_and_no_other_apps() -> None:
    from goship.deploy.remove import parse_probe, plan_host
    from tests.unit.test_remove import LAB, P

    text = LAB.replace("@units\n", "@units\n" + PROBE_UNITS).replace(
        "@unitfiles\n", "@unitfiles\n" + PROBE_FILES)
    plan = plan_host("h1", "shop", "shop", P, parse_probe(text, "shop", "shop", P),
                     purge_data=False)
    steps = {s.kind: s.what for s in plan.steps}
    assert "shop.nightly-green.timer" in steps["stop timers"]
    assert {"shop.worker-green@1.service", "shop.nightly-blue.service"} <= set(
        steps["stop and disable units"])
    assert {"/etc/systemd/system/shop.worker-green@.service",
            "/etc/systemd/system/timers.target.wants/shop.nightly-green.timer"} <= set(
        steps["remove unit files"])
    assert "shopx" not in repr(steps)


@pytest.mark.parametrize(("name", "ours"), [
    ("shop.worker-blue@1.service", True), ("shop.worker-green@.service", True),
    ("shop.nightly-blue.timer", True), ("shop.nightly-blue.service", True),
    ("shopx.worker-blue@1.service", False), ("shop.worker-red@1.service", False),
    ("shop.worker-blue@1.service.bak", False),
])
def test_own_process_unit_names(name: str, ours: bool) -> None:
    from goship.deploy.remove import own_units

    assert bool(own_units("shop").match(name)) is ours


def test_init_proposes_the_other_mains_commented(tmp_path: Any) -> None:
    import tomllib

    from goship import goproject
    from goship.initfile import render

    (tmp_path / "go.mod").write_text("module example.com/shop\n\ngo 1.22\n")
    for main in ("cmd/api", "cmd/worker", "cmd/nightly_report", "tools/shop"):
        d = tmp_path / main
        d.mkdir(parents=True)
        (d / "main.go").write_text("package main\n\nfunc main() {}\n")
    ins = goproject.inspect(tmp_path, main="cmd/api")
    text = render(ins, "shop").text
    assert "# [processes.worker]\n# main = \"cmd/worker\"\n" in text
    assert "# [processes.nightly-report]\n# main = \"cmd/nightly_report\"\n" in text
    assert "[processes.shop]" not in text  # the app's own name is not a process name
    assert "processes" not in tomllib.loads(text)  # proposed, not active
    # uncommented, the proposal is a valid config
    active = text.replace("# [processes.worker]\n# main", "[processes.worker]\nmain")
    assert parse(tomllib.loads(active)).base.processes["worker"].main == "cmd/worker"


def test_a_host_without_systemd_is_refused_before_any_change() -> None:
    from types import SimpleNamespace
    from typing import cast

    from goship.deploy.engine import refuse_processes
    from goship.deploy.host import Host
    from goship.errors import UsageError

    env = parse({**BASE, "processes": {"worker": {"main": "cmd/worker"},
                                       "nightly": {"main": "cmd/nightly",
                                                   "schedule": "daily"}},
                 "env": {"prod": {"hosts": ["app1", "app2"]}}}).env("prod")
    hosts = [cast(Host, SimpleNamespace(name=n, services=SimpleNamespace(name=m)))
             for n, m in (("app1", "systemd"), ("app2", "supervisord"))]
    with pytest.raises(UsageError) as e:
        refuse_processes(env, hosts)
    assert e.value.message == ("app2: processes.nightly.schedule needs a systemd timer; "
                               "this host runs the app under supervisord")
    refuse_processes(env, hosts[:1])  # systemd hosts go on
    workers = parse({**BASE, "processes": {"worker": {"main": "cmd/worker"}},
                     "env": {"prod": {"hosts": ["app1", "app2"]}}}).env("prod")
    refuse_processes(workers, hosts)  # workers alone run under supervisord too


def test_logs_include_the_processes() -> None:
    from typing import cast

    from goship.deploy.services import Systemd
    from goship.transport.base import Transport

    c = config(worker={"main": "cmd/worker"})
    cmd = Systemd(cast(Transport, None), c, Paths("/srv", "shop")).logs_cmd(False, None, 10)
    assert cmd.argv[-4:] == ("-u", "shop-*@*.service", "-u", "shop.*")


def test_supervisord_programs() -> None:
    c = config(worker={"main": "cmd/worker", "instances": 2, "args": ["--id", "{port}"],
                       "env": {"QUEUE": "a ;b"}})
    files = processes.supervisord_programs(c, Paths("/srv", "shop"), live="blue",
                                           user="shop", log_dir="/srv/shop/logs",
                                           releases={"green": "v2-abc"})
    assert sorted(files) == ["programs/shop.worker-blue.conf",
                             "programs/shop.worker-green.conf"]
    green = files["programs/shop.worker-green.conf"]
    assert "[program:shop.worker-green-1]\n" in green
    assert "[program:shop.worker-green-2]\n" in green
    assert ("command=/srv/shop/run/env.green.sh /usr/bin/env GOSHIP_PROCESS=worker "
            "GOSHIP_INSTANCE=2 'QUEUE=a '';b' /srv/shop/green/worker --id 2\n") in green
    assert "autostart=false" in green  # only the live color's start at boot
    assert "autostart=true" in files["programs/shop.worker-blue.conf"]
    assert "stdout_logfile=/srv/shop/logs/shop.worker-green-2.log" in green
    assert processes.programs(c, "blue") == ["shop.worker-blue-1", "shop.worker-blue-2"]


def test_supervisorctl_status_verdict() -> None:
    before = processes.parse_status(
        "shop.worker-blue-1   RUNNING   pid 101, uptime 0:00:01\n"
        "shop.worker-blue-2   RUNNING   pid 102, uptime 0:00:01\n")
    after = processes.parse_status(
        "shop.worker-blue-1   RUNNING   pid 101, uptime 0:00:04\n"
        "shop.worker-blue-2   BACKOFF   Exited too quickly (process log may have details)\n")
    names = ["shop.worker-blue-1", "shop.worker-blue-2"]
    assert processes.judge(before, before, names) is None
    assert processes.judge(before, after, names) == \
        "shop.worker-blue-2 is not running (backoff/backoff)"


def test_a_canary_with_processes_is_not_yet(tmp_path: Any) -> None:
    from types import SimpleNamespace
    from typing import cast

    from goship.canary.engine import CanaryEngine
    from goship.deploy.host import Host
    from goship.errors import NotYetError

    project = parse({**BASE, "processes": {"worker": {"main": "cmd/worker"}},
                     "env": {"prod": {"hosts": ["app1"]}}}, file=str(tmp_path / "goship.toml"))
    engine = CanaryEngine(project, project.env("prod"))
    host = cast(Host, SimpleNamespace(name="app1", nginx=SimpleNamespace(lua=True)))
    with pytest.raises(NotYetError) as e:  # before anything is built or changed
        engine.start([host], {}, 5.0, allow_dirty=False, skip_checks=True)
    assert "a canary of an app with [processes.*]" in e.value.message
