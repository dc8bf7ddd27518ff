"""`[processes.NAME]` under systemd: workers (a template unit per color, one instance per
index) and scheduled jobs (a oneshot unit and its timer per color). They switch with the
web process: the new color's started and proven live before nginx switches, the old
color's stopped after (or, `overlap = false`, before the new ones start)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from goship.command import Cmd
from goship.config import Config
from goship.config.model import Process
from goship.deploy.layout import COLORS, Paths
from goship.errors import ApplyError
from goship.transport.base import Result, Transport

if TYPE_CHECKING:
    from goship.deploy.host import Host
    from goship.deploy.services import Supervisor


def unit_base(app: str, process: str, color: str) -> str:
    """`shop.worker-blue`: the dot keeps them apart from the web units (`shop-blue@PORT`)
    and from another app's (app names have no dot)."""
    return f"{app}.{process}-{color}"


def units(config: Config, color: str, names: list[str] | None = None) -> list[str]:
    """The systemd units that run `color`'s processes: worker instances and timers."""
    out = []
    for name, p in sorted(config.processes.items()):
        if names is not None and name not in names:
            continue
        base = unit_base(config.app.name, name, color)
        if p.schedule is None:
            out += [f"{base}@{i}.service" for i in range(1, p.instances + 1)]
        else:
            out.append(f"{base}.timer")
    return out


def programs(config: Config, color: str, names: list[str] | None = None) -> list[str]:
    """supervisord's programs of `color`'s workers (`shop.worker-blue-1`: the dot keeps
    them apart from the web programs, `shop-blue-8080`)."""
    from goship.deploy.layout import ident

    return [f"{ident(config.app.name)}.{name}-{color}-{i}"
            for name, p in sorted(config.processes.items())
            if p.schedule is None and (names is None or name in names)
            for i in range(1, p.instances + 1)]


def supervisord_programs(config: Config, paths: Paths, *, live: str | None, user: str | None,
                         log_dir: str, root: Path | None = None,
                         releases: dict[str, str] | None = None) -> dict[str, str]:
    """Program files of the workers, per color (schedules need systemd: refused earlier)."""
    from goship.deploy import runfiles
    from goship.deploy.layout import ident
    from goship.render.engine import render

    out: dict[str, str] = {}
    data = runfiles.data_root(paths)
    for name, p in sorted(config.processes.items()):
        if p.schedule is not None:
            continue
        for color in COLORS:
            release = (releases or {}).get(color, "RELEASE")
            binary = f"{paths.color_link(color)}/{name}"
            every = range(1, p.instances + 1)
            env = [f"{k}={v}" for k, v in sorted(p.env.items())]
            commands = {i: runfiles.supervisord_command(
                [paths.env_script(color), "/usr/bin/env", f"GOSHIP_PROCESS={name}",
                 f"GOSHIP_INSTANCE={i}", *env, binary], list(p.args), port=i, color=color,
                release=release, data=data) for i in every}
            out[f"programs/{config.app.name}.{name}-{color}.conf"] = render(
                "supervisord.process.j2", root, app=config.app.name, process=name,
                color=color, program_prefix=f"{ident(config.app.name)}.{name}-{color}",
                instances=list(every), commands=commands, color_dir=paths.color_link(color),
                user=user, autostart=color == live,
                drain=int(config.run.drain_timeout + 0.999), log_dir=log_dir)
    return out


def env_line(name: str, value: str) -> str:
    """`Environment=` wants one double-quoted word: \\ and " escaped, % doubled (a
    specifier otherwise), a newline written \\n."""
    text = (f"{name}={value}".replace("\\", "\\\\").replace('"', '\\"')
            .replace("%", "%%").replace("\n", "\\n").replace("\r", "\\r"))
    return f'"{text}"'


def render_units(config: Config, paths: Paths, root: Path | None) -> dict[str, str]:
    """Unit file name -> text, for both colors (as the web process's template units)."""
    from goship.deploy import runfiles
    from goship.render.engine import render

    out: dict[str, str] = {}
    data = runfiles.data_root(paths)
    for name, p in sorted(config.processes.items()):
        for color in COLORS:
            base = unit_base(config.app.name, name, color)
            timer = p.schedule is not None
            binary = f"{paths.color_link(color)}/{name}"
            ctx = dict(app=config.app.name, process=name, color=color, unit_base=base,
                       timer=timer, user=config.service_user,
                       workdir=paths.color_link(color),
                       exec_start=runfiles.systemd_exec(binary, list(p.args), color=color,
                                                        data=data),
                       env_file=paths.env_file(color),
                       env_lines=[env_line(k, v) for k, v in sorted(p.env.items())],
                       drain=f"{config.run.drain_timeout:g}s",
                       nofile=config.run.limit_nofile, data_dir=data,
                       start_interval=60, start_burst=5, schedule=p.schedule)
            if timer:
                out[f"{base}.service"] = render("systemd.process.service.j2", root, **ctx)
                out[f"{base}.timer"] = render("systemd.process.timer.j2", root, **ctx)
            else:
                out[f"{base}@.service"] = render("systemd.process.service.j2", root, **ctx)
    return out


@dataclass
class Unit:
    name: str
    active: str = "inactive"
    sub: str = ""
    pid: int = 0
    restarts: int = 0
    extra: dict[str, str] = field(default_factory=dict)


SHOW = ("Id", "ActiveState", "SubState", "MainPID", "NRestarts")


def parse_show(text: str) -> dict[str, Unit]:
    """`systemctl show -p ...` blocks (one per unit, blank-line separated) by unit name."""
    out: dict[str, Unit] = {}
    for block in text.strip().split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if not props.get("Id"):
            continue
        out[props["Id"]] = Unit(props["Id"], props.get("ActiveState", ""),
                                props.get("SubState", ""),
                                int(props.get("MainPID", "0") or 0),
                                int(props.get("NRestarts", "0") or 0), props)
    return out


def judge(before: dict[str, Unit], after: dict[str, Unit], names: list[str]) -> str | None:
    """Why the workers are not live (None: they are): each must be running now, with the
    PID it had right after its start and no restart since."""
    for name in names:
        b, a = before.get(name, Unit(name)), after.get(name, Unit(name))
        if a.active != "active" or not a.pid:
            return f"{name} is not running ({a.active or 'unknown'}/{a.sub or '?'})"
        if a.restarts != b.restarts or (b.pid and a.pid != b.pid) or not b.pid:
            return f"{name} restarted (pid {b.pid or 'none'} -> {a.pid})"
    return None


class ProcessRunner:
    """One host's processes under systemd."""

    def __init__(self, t: Transport, config: Config, paths: Paths) -> None:
        self.t, self.config, self.paths = t, config, paths

    @property
    def app(self) -> str:
        return self.config.app.name

    def worker_units(self, color: str, names: list[str]) -> list[str]:
        return [u for u in units(self.config, color, names) if u.endswith(".service")]

    def start_workers(self, color: str, names: list[str]) -> None:
        us = self.worker_units(color, names)
        if not us:
            return
        self.t.run(Cmd.of("systemctl", "reset-failed", *us))
        res = self.t.run(Cmd.of("systemctl", "start", *us), timeout=120)
        if not res.ok:
            said = (res.stderr or res.stdout).strip().splitlines()[:1]
            raise ApplyError(f"{self.t.name}: systemctl start failed"
                             f"{': ' + said[0] if said else ''}; {self.log_tail(us)}")

    def stop(self, color: str, names: list[str] | None = None, *, jobs: bool = True) -> None:
        """Workers and timers of `color` (`names`: those processes only; `jobs`: a job its
        timer started too)."""
        us = units(self.config, color, names)
        if not us:
            return
        if jobs:
            # A job the timer started is stopped too (it runs the old release).
            us += [u.removesuffix(".timer") + ".service" for u in us if u.endswith(".timer")]
        self.t.run(Cmd.of("systemctl", "stop", *us), timeout=self.config.run.drain_timeout + 30)

    def start_timers(self, color: str) -> None:
        us = [u for u in units(self.config, color) if u.endswith(".timer")]
        if us:
            self.t.check(Cmd.of("systemctl", "start", *us))

    def gate(self, color: str, names: list[str]) -> str | None:
        """None when every instance of `names` on `color` is live: running
        run.health.min_uptime seconds without a restart, then its health_command exits 0.
        Otherwise why not, with the log's last lines."""
        us = self.worker_units(color, names)
        if not us:
            return None
        h = self.config.run.health
        show = self.show(us)
        b, _, a = self.t.run_all([show, Cmd.of("sleep", f"{h.min_uptime:g}"), show],
                                 timeout=h.min_uptime + 60)
        why = judge(self.parse(b.stdout), self.parse(a.stdout), us)
        if why is None:
            for name in names:
                why = self.health_command(color, name)
                if why:
                    break
        if why is None:
            return None
        tail = self.log_tail(us)
        return f"{why}{'; ' + tail if tail else ''}"

    def show(self, us: list[str]) -> Cmd:
        return Cmd.of("systemctl", "show", *[f"-p{p}" for p in SHOW], *us)

    def parse(self, text: str) -> dict[str, Unit]:
        return parse_show(text)

    def health_command(self, color: str, name: str) -> str | None:
        p: Process = self.config.processes[name]
        if p.health_command is None:
            return None
        user = self.config.service_user
        # As the worker runs: its user, directory and environment, in a transient unit.
        cmd = Cmd.of("systemd-run", "--wait", "--pipe", "--quiet", "--collect",
                     "-p", f"User={user}", "-p", f"Group={user}",
                     "-p", f"WorkingDirectory={self.paths.color_link(color)}",
                     "-p", f"EnvironmentFile=-{self.paths.env_file(color)}",
                     f"--setenv=GOSHIP_PROCESS={name}",
                     "--", "/bin/sh", "-c", p.health_command)
        return _health_failed(name, self.t.run(cmd, timeout=self.config.run.health.deadline
                                               + 30))

    def log_tail(self, us: list[str], lines: int = 6) -> str:
        from goship.deploy.services import journal_tail

        return _log_line(self.t.run(journal_tail(us, lines)).stdout, lines)

    def status(self, color: str | None) -> list[dict[str, object]]:
        """Each process's units on the live color: state, PID, restarts, a timer's next run."""
        if color is None or not self.config.processes:
            return []
        us = units(self.config, color)
        props = [*SHOW, "NextElapseUSecRealtime", "LastTriggerUSec"]
        res = self.t.run(Cmd.of("systemctl", "show", *[f"-p{p}" for p in props], *us))
        shown = parse_show(res.stdout)
        out: list[dict[str, object]] = []
        for u in us:
            s = shown.get(u, Unit(u))
            row: dict[str, object] = {"unit": u, "state": f"{s.active}/{s.sub}",
                                      "pid": s.pid or None, "restarts": s.restarts}
            if u.endswith(".timer"):
                row["next"] = s.extra.get("NextElapseUSecRealtime") or None
                row["last"] = s.extra.get("LastTriggerUSec") or None
            out.append(row)
        return out


def plan(config: Config, color: str, live: str | None) -> list[dict[str, object]]:
    """What a release does with each process on a host: the new color's started (a worker
    gated before the switch, a timer started at it), the old color's stopped (after the
    switch; a worker with overlap = false before the new one starts)."""
    old = live if live is not None and live != color else None
    out: list[dict[str, object]] = []
    for name, p in sorted(config.processes.items()):
        row: dict[str, object] = {"name": name, "start": color, "stop": old}
        if p.schedule is None:
            row.update(kind="worker", instances=p.instances,
                       gate=("health_command" if p.health_command else
                             f"{config.run.health.min_uptime:g}s without a restart"),
                       stop_when=None if old is None else
                       "after the switch" if p.overlap else "before the new start")
        else:
            row.update(kind="timer", schedule=p.schedule,
                       stop_when=None if old is None else "at the switch")
        out.append(row)
    return out


def plan_lines(rows: list[dict[str, object]]) -> list[str]:
    out = []
    for r in rows:
        stop = f"; {r['stop']}'s stop {r['stop_when']}" if r.get("stop") else ""
        if r["kind"] == "worker":
            gate = ("its health_command" if r["gate"] == "health_command"
                    else f"live {r['gate']}")
            out.append(f"  process {r['name']}: {r['instances']} instance(s) on {r['start']}, "
                       f"gated before the switch ({gate}){stop}")
        else:
            out.append(f"  process {r['name']}: timer ({r['schedule']}) on {r['start']} from "
                       f"the switch{stop}")
    return out


def _log_line(text: str, lines: int) -> str:
    """A log's last non-blank lines on one line, for an error message."""
    shown = [ln.strip() for ln in text.splitlines() if ln.strip()][-lines:]
    return f"log: {' | '.join(shown)}" if shown else ""


def _health_failed(name: str, res: Result) -> str | None:
    """None when a process's health_command passed, else its exit and last lines."""
    if res.ok:
        return None
    out = " | ".join(ln for ln in (res.stdout + res.stderr).strip().splitlines()[-3:])
    return f"{name}: health_command exited {res.code}{': ' + out if out else ''}"


def for_host(h: Host) -> ProcessRunner:
    """The host's processes under its service manager (systemd or goship's supervisord)."""
    from goship.deploy.services import Supervisor

    if isinstance(h.services, Supervisor):
        return SupervisorProcesses(h.t, h.config, h.paths, h.services)
    return ProcessRunner(h.t, h.config, h.paths)


STATUS_LINE = re.compile(r"^(?P<name>\S+)\s+(?P<state>[A-Z]+)(?:\s+pid (?P<pid>\d+))?",
                         re.M)


def parse_status(text: str) -> dict[str, Unit]:
    """`supervisorctl status` lines by program name (no restart counter there: a restart
    shows as another PID)."""
    out = {}
    for m in STATUS_LINE.finditer(text):
        state = m.group("state")
        out[m.group("name")] = Unit(m.group("name"),
                                    "active" if state == "RUNNING" else state.lower(),
                                    state.lower(), int(m.group("pid") or 0))
    return out


class SupervisorProcesses(ProcessRunner):
    """Workers as programs of goship's supervisord (no timers: refused before)."""

    def __init__(self, t: Transport, config: Config, paths: Paths, sup: Supervisor) -> None:
        super().__init__(t, config, paths)
        self.sup = sup

    def worker_units(self, color: str, names: list[str]) -> list[str]:
        return programs(self.config, color, names)

    def start_workers(self, color: str, names: list[str]) -> None:
        ps = programs(self.config, color, names)
        if not ps:
            return
        # Its program files were (re)read at install for the new color only: the old
        # color's are read again here when an undo starts them.
        self.t.check(self.sup.ctl("reread"))
        self.t.check(self.sup.ctl("update", *ps))
        res = self.t.run(self.sup.ctl("start", *ps), timeout=120)
        if not res.ok and "ERROR" in res.stdout and "already started" not in res.stdout:
            said = " ".join(res.stdout.split())
            raise ApplyError(f"{self.t.name}: supervisorctl start failed: {said}; "
                             f"{self.log_tail(ps)}")

    def stop(self, color: str, names: list[str] | None = None, *, jobs: bool = True) -> None:
        ps = programs(self.config, color, names)
        if ps:
            self.t.run(self.sup.ctl("stop", *ps), timeout=self.config.run.drain_timeout + 30)

    def start_timers(self, color: str) -> None:
        return None

    def show(self, us: list[str]) -> Cmd:
        return self.sup.ctl("status", *us)

    def parse(self, text: str) -> dict[str, Unit]:
        return parse_status(text)

    def log_tail(self, us: list[str], lines: int = 6) -> str:
        files = [f"{self.paths.logs}/{u.replace(self._ident_prefix(), self.app + '.', 1)}.log"
                 for u in us]
        return _log_line(self.t.run(Cmd.of("tail", "-q", "-n", str(lines), *files)).stdout,
                         lines)

    def _ident_prefix(self) -> str:
        from goship.deploy.layout import ident

        return f"{ident(self.app)}."

    def health_command(self, color: str, name: str) -> str | None:
        p: Process = self.config.processes[name]
        if p.health_command is None:
            return None
        # As the program runs: the color's directory, its environment script, its user.
        argv = [self.paths.env_script(color), "/usr/bin/env", f"GOSHIP_PROCESS={name}",
                "/bin/sh", "-c", p.health_command]
        if self.sup.as_user:
            argv = ["runuser", "-u", self.sup.as_user, "--", *argv]
        return _health_failed(name, self.t.run(
            Cmd.of("sh", "-c", 'cd "$1" && shift && exec "$@"', "goship-health",
                   self.paths.color_link(color), *argv),
            timeout=self.config.run.health.deadline + 30))

    def status(self, color: str | None) -> list[dict[str, object]]:
        if color is None or not self.config.processes:
            return []
        ps = programs(self.config, color)
        shown = parse_status(self.t.run(self.sup.ctl("status", *ps)).stdout)
        return [{"unit": p, "state": f"{shown.get(p, Unit(p)).active}/"
                 f"{shown.get(p, Unit(p)).sub}", "pid": shown.get(p, Unit(p)).pid or None,
                 "restarts": 0} for p in ps]
