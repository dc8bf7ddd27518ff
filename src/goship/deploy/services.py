"""Service managers on a host: systemd (template units per color) or goship's own
supervisord. Both start and stop one color's instances and tell their PIDs."""

from __future__ import annotations

import abc
import hashlib
import re
import shlex
import shutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from goship.command import Cmd
from goship.config import Config
from goship.deploy.holders import port_holders, ports_in_use_errors
from goship.deploy.layout import (
    COLORS,
    Paths,
    PortMap,
    default_port_map,
    ident,
    program_name,
    standby_unit,
)
from goship.deploy.scripts import (
    DRAIN_WAIT,
    ENSURE_FILE,
    INSTALL_FILE,
    STANDBY_CANCEL,
    STANDBY_SLEEPER,
    SYSTEMD_CANCEL,
    SYSTEMD_ENABLE,
    SYSTEMD_LINKS,
    SYSTEMD_SCHEDULE,
)
from goship.envquote import systemd as _env_quote
from goship.errors import ApplyError, GoshipError, PrerequisiteError
from goship.render import kinds
from goship.transport.base import Transport

DRAIN_WAIT_SHA = hashlib.sha256(DRAIN_WAIT.encode()).hexdigest()[:12]


def install_cmd(path: str, text: str, mode: str = "644", *,
                secrets: Iterable[str] = ()) -> Cmd:
    """INSTALL_FILE for `text` at `path`. The content's digest is masked like the secrets
    (a weak secret could be guessed from the digest of a file otherwise known)."""
    data = text.encode()
    digest = hashlib.sha256(data).hexdigest()
    secrets = list(secrets)
    return Cmd.of("sh", "-c", INSTALL_FILE, "goship-install", path, mode, digest,
                  secrets=[*secrets, digest] if secrets else []).with_stdin(data)


def install_file(t: Transport, path: str, text: str, mode: str = "644", *,
                 later: bool = False) -> bool:
    """Whether the file changed (`later`: not known, the answer is read later)."""
    cmd = install_cmd(path, text, mode)
    if later:
        t.later(cmd)
        return True
    res = t.check(cmd)
    return res.stdout.strip() == "changed"


class Services(abc.ABC):
    name: str

    def __init__(self, t: Transport, config: Config, paths: Paths,
                 port_map: PortMap | None = None) -> None:
        self.t, self.config, self.paths = t, config, paths
        # The host's ports per color (shared with its Host and nginx; the plan sets them).
        self.port_map: PortMap = port_map if port_map is not None else \
            default_port_map(config)

    def ports(self, color: str) -> list[int]:
        return self.port_map[color]

    @abc.abstractmethod
    def install(self, target: str, live: str | None,
                root: Path | None, releases: dict[str, str] | None = None) -> bool:
        """Write the service definitions; make `target`'s definitions current. `releases`:
        the release each color runs, where a definition names it."""

    @abc.abstractmethod
    def start(self, color: str) -> None: ...

    @abc.abstractmethod
    def stop(self, color: str, ports: list[int] | None = None) -> None:
        """Stop the color's instances (on `ports`, default: the color's ports)."""

    @abc.abstractmethod
    def running(self) -> dict[str, list[int]]:
        """color -> ports of this app's instances running now, whatever the config says."""

    @abc.abstractmethod
    def schedule_stop(self, color: str, ports: list[int], seconds: float) -> None:
        """The host stops the color by itself in `seconds` (a warm standby's window), so
        nothing depends on goship still running then."""

    def schedule_drain(self, color: str, ports: list[int], delay: float,
                       drain: float) -> None:
        """The host stops the color by itself: `delay` seconds from now (0: now), once no
        client holds a connection to its ports, `drain` seconds at most after that. A
        deploy never waits for it. Managers without a drain: the plain (scheduled) stop."""
        if delay > 0:
            self.schedule_stop(color, ports, delay)
        else:
            self.stop(color, ports)

    def drain_command(self, ports: list[int], drain: float, stop: list[str]) -> list[str]:
        """The host's wait for clients to leave `ports`, then `stop`; its script is
        (re)written on the host first."""
        # Named for its content: a host that has it is not sent it again (every release
        # schedules a drain). In order before the command that runs it; its answer is read
        # with the next one's.
        path = self.paths.join("run", f"drain-{DRAIN_WAIT_SHA}.sh")
        self.t.later(Cmd.of("sh", "-c", ENSURE_FILE, "goship-ensure", path, "644")
                     .with_stdin(DRAIN_WAIT.encode()))
        return ["/bin/sh", path, str(max(1, int(drain + 0.999))), *map(str, ports), "--",
                *stop]

    @abc.abstractmethod
    def cancel_stop(self, color: str) -> None:
        """Forget a scheduled stop (the standby is used, or replaced)."""

    @abc.abstractmethod
    def pids(self, color: str) -> dict[int, int | None]:
        """port -> running PID (None when not running)."""

    def running_query(self) -> tuple[Cmd, Callable[[str], dict[str, list[int]]]] | None:
        """`running` as a command and the parser of its output, to be sent with other
        reads in one round trip; None: call `running`."""
        return None

    def pids_query(self, color: str
                   ) -> tuple[Cmd, Callable[[str], dict[int, int | None]]] | None:
        """`pids` as a command and the parser of its output, so the health gate can send
        it with the gate in one round trip; None: call `pids`."""
        return None

    # True when an instance that stops or restarts always leaves its PID (the manager
    # waits for the old process before a new one): then the gate's host checks /proc for
    # the PIDs it was given instead of asking the manager again.
    pid_alone_tells = False

    def unit_of(self, color: str, port: int) -> str | None:
        """The systemd unit an instance runs in (what the facts' listeners name), if any."""
        return None

    @abc.abstractmethod
    def log_tail(self, color: str, lines: int = 15) -> str: ...

    @abc.abstractmethod
    def enable(self, live: str, also: list[int] | None = None,
               root: Path | None = None) -> None:
        """Start the live color at boot, not the other one. `root`: the project's root
        (its own templates say what enabling a unit links)."""

    def why(self, color: str, lines: int = 4) -> str:
        """Why a color did not start or pass its gate, for the error: the last lines of its
        instances' log and, when a port is the cause, the process holding it. Empty when
        neither says anything."""
        try:
            tail = self.log_tail(color, 40)
            pids = self.pids(color)
        except GoshipError:
            return ""
        # A bind the log says failed, else a port whose instance is not running.
        ports = ports_in_use_errors(tail) or [p for p, pid in pids.items() if pid is None]
        held = port_holders(self.t, ports, exclude={pid for pid in pids.values() if pid})
        shown = [ln.strip() for ln in tail.splitlines() if ln.strip()][-lines:]
        parts = ([f"log: {' | '.join(shown)}"] if shown else []) + held
        return "; ".join(parts)

    @abc.abstractmethod
    def logs_cmd(self, follow: bool, since: str | None, lines: int) -> Cmd: ...

    # Hooks for managers that run releases from something besides the unpacked archive
    # (docker: the release's image). The defaults are the unpacked archive alone.
    def env_text(self, env: dict[str, str]) -> str:
        """The color's environment file, in the syntax its instances' manager reads."""
        return "".join(f"{k}={_env_quote(v)}\n" for k, v in sorted(env.items()))

    def has_release(self, rid: str) -> bool:
        """Beyond the unpacked archive, the host holds what runs `rid`."""
        return True

    def receive(self, rid: str, archive: bytes) -> str:
        """After the archive is unpacked: what else runs it, made from it."""
        return ""

    def forget(self, rids: list[str]) -> None:
        """Pruned releases: what receive() made for them goes too."""
        return None

    def details(self, color: str) -> dict[int, dict[str, object]]:
        """For `goship status`: what the manager knows of each instance beyond its PID."""
        return {}


class Systemd(Services):
    name = "systemd"
    pid_alone_tells = True  # systemd waits for the old main process before a restart

    def units(self, color: str, ports: list[int] | None = None) -> list[str]:
        return [f"{self.config.app.name}-{color}@{p}.service"
                for p in (self.ports(color) if ports is None else ports)]

    def install(self, target: str, live: str | None,
                root: Path | None, releases: dict[str, str] | None = None) -> bool:
        changed = False
        for name, text in kinds.systemd_units(self.config, self.paths, root).items():
            dest = (f"/etc/sysusers.d/{name.split('/', 1)[1]}" if name.startswith("sysusers.d/")
                    else f"/etc/systemd/system/{name}")
            changed |= install_file(self.t, dest, text)
        if changed:
            self.t.check(Cmd.of("systemctl", "daemon-reload"))
        return changed

    def start(self, color: str) -> None:
        units = self.units(color)
        self.t.run(Cmd.of("systemctl", "reset-failed", *units))
        res = self.t.run(Cmd.of("systemctl", "start", *units), timeout=120)
        if not res.ok:
            said = (res.stderr or res.stdout).strip().splitlines()[:1]
            raise ApplyError(_failed(f"{self.t.name}: systemctl start failed"
                                     f"{': ' + said[0] if said else ''}", self.why(color)))

    def stop(self, color: str, ports: list[int] | None = None) -> None:
        units = self.units(color, ports)
        if not units:
            return
        timeout = self.config.run.drain_timeout + 30
        self.t.check(Cmd.of("systemctl", "stop", *units), timeout=timeout)

    def running(self) -> dict[str, list[int]]:
        cmd, parse = self.running_query()
        return parse(self.t.run(cmd).stdout)

    def running_query(self) -> tuple[Cmd, Callable[[str], dict[str, list[int]]]]:
        app = self.config.app.name
        return (Cmd.of("systemctl", "list-units", "--plain", "--no-legend",
                       "--state=active,activating,deactivating", f"{app}-*@*.service"),
                lambda text: parse_units(app, text))

    def schedule_stop(self, color: str, ports: list[int], seconds: float) -> None:
        name = standby_unit(self.config.app.name, color)
        # One command: forget an earlier timer of that name, then arm the new one. Its
        # answer is read with the next command's (`settle` raises a failure).
        self.t.later(Cmd.of("sh", "-c", SYSTEMD_SCHEDULE, "goship-standby", name,
                            f"{max(1, int(seconds + 0.999))}s",
                            f"goship: stop the warm standby {color} of {self.config.app.name}",
                            "systemctl", "stop", *self.units(color, ports)))

    def schedule_drain(self, color: str, ports: list[int], delay: float,
                       drain: float) -> None:
        if drain <= 0:
            super().schedule_drain(color, ports, delay, drain)
            return
        # The standby's unit name: cancel_stop forgets a drain as it forgets a standby.
        name = standby_unit(self.config.app.name, color)
        when = f"{max(1, int(delay + 0.999))}s" if delay > 0 else "0"
        argv = self.drain_command(ports, drain, ["systemctl", "stop", *self.units(color, ports)])
        # As schedule_stop: its answer is read with the next command's (`settle` raises).
        self.t.later(Cmd.of("sh", "-c", SYSTEMD_SCHEDULE, "goship-drain", name, when,
                            f"goship: drain and stop {color} of {self.config.app.name}",
                            *argv))

    def cancel_stop(self, color: str) -> None:
        name = standby_unit(self.config.app.name, color)
        self.t.later(Cmd.of("sh", "-c", SYSTEMD_CANCEL, "goship-standby-cancel", name))

    def unit_of(self, color: str, port: int) -> str | None:
        return self.units(color, [port])[0]

    def pids(self, color: str) -> dict[int, int | None]:
        cmd, parse = self.pids_query(color)
        return parse(self.t.check(cmd).stdout)

    def pids_query(self, color: str) -> tuple[Cmd, Callable[[str], dict[int, int | None]]]:
        units = self.units(color)
        return (Cmd.of("systemctl", "show", "-p", "MainPID", "-p", "ActiveState", *units),
                lambda text: self._parse_pids(color, text))

    def _parse_pids(self, color: str, text: str) -> dict[int, int | None]:
        blocks = list(text.strip().split("\n\n"))
        out: dict[int, int | None] = {}
        for port, block in zip(self.ports(color), blocks, strict=False):
            props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
            pid = int(props.get("MainPID", "0") or 0)
            out[port] = pid if pid and props.get("ActiveState") == "active" else None
        return out

    def log_tail(self, color: str, lines: int = 15) -> str:
        return self.t.run(journal_tail(self.units(color), lines)).stdout.strip()

    def enable(self, live: str, also: list[int] | None = None,
               root: Path | None = None) -> None:
        """Boot starts the live color's instances and no other instance of this app (the
        other color's, and `also`: ports left behind by drift)."""
        from goship.deploy.processes import units as process_units

        keep = [*self.units(live), *process_units(self.config, live)]
        stale = [u for c in COLORS for u in self.units(c, [*self.ports(c), *(also or [])])
                 if u not in keep]
        stale += [u for c in COLORS if c != live for u in process_units(self.config, c)]
        stale = list(dict.fromkeys(stale))
        dirs = {name: install_dirs(text) for name, text in
                kinds.systemd_units(self.config, self.paths, root).items()
                if not name.startswith("sysusers.d/")}
        if all(d is not None for d in dirs.values()):
            # The links themselves, as systemctl would make them: no systemctl at all.
            make = [x for u in keep for d in dirs.get(template_of(u)) or []
                    for x in (f"{UNIT_DIR}/{d}/{u}", f"{UNIT_DIR}/{template_of(u)}")]
            self.t.later(Cmd.of("sh", "-c", SYSTEMD_LINKS, "goship-enable", UNIT_DIR, *make,
                                "--", *stale))
            return
        # An [Install] that says more (Alias=, Also=...): systemctl does it.
        # --no-reload: boot only needs the symlinks; a daemon-reload costs ~0.25 s each.
        self.t.later(Cmd.of("sh", "-c", SYSTEMD_ENABLE, "goship-enable", str(len(keep)),
                            *keep, *stale))

    def logs_cmd(self, follow: bool, since: str | None, lines: int) -> Cmd:
        args = ["journalctl", "--no-pager", "-o", "short-iso", "-n", str(lines),
                "-u", f"{self.config.app.name}-*@*.service"]
        if self.config.processes:  # workers and jobs: shop.worker-blue@1, shop.nightly-...
            args += ["-u", f"{self.config.app.name}.*"]
        if since:
            args += ["--since", since]
        if follow:
            args.append("-f")
        return Cmd.of(*args)


class Supervisor(Services):
    """goship's own supervisord, configured under the app's run directory."""

    name = "supervisord"

    def __init__(self, t: Transport, config: Config, paths: Paths, *, local: bool,
                 as_user: str | None, port_map: PortMap | None = None) -> None:
        super().__init__(t, config, paths, port_map)
        self.local = local
        self.as_user = as_user  # None: run as whoever runs supervisord (local non-root)
        self.conf = paths.join("run", "supervisord.conf")

    def _bin(self, name: str) -> str:
        if self.local:
            # supervisor is a goship dependency: its scripts sit next to this Python.
            candidate = Path(sys.executable).parent / name
            if candidate.exists():
                return str(candidate)
            found = shutil.which(name)
            if found:
                return found
            raise PrerequisiteError(f"{name} not found", hint="pip install supervisor")
        return name

    def ctl(self, *args: str) -> Cmd:
        return Cmd.of(self._bin("supervisorctl"), "-c", self.conf, *args)

    def programs(self, color: str, ports: list[int] | None = None) -> list[str]:
        return [program_name(self.config.app.name, color, p)
                for p in (self.ports(color) if ports is None else ports)]

    def daemon_running(self) -> bool:
        return self.t.run(self.ctl("pid")).stdout.strip().isdigit()

    def install(self, target: str, live: str | None,
                root: Path | None, releases: dict[str, str] | None = None) -> bool:
        logs = self.paths.logs
        files = {"supervisord.conf": kinds.supervisord_main(self.config, self.paths, logs, root)}
        files.update(kinds.supervisord_programs(self.config, self.paths, live=live,
                                                user=self.as_user, log_dir=logs, root=root,
                                                port_map=self.port_map, releases=releases))
        changed = False
        for name, text in files.items():
            changed |= install_file(self.t, self.paths.join("run", name), text, "600")
        if not self.daemon_running():
            res = self.t.run(Cmd.of(self._bin("supervisord"), "-c", self.conf))
            if not res.ok:
                raise ApplyError(f"{self.t.name}: supervisord did not start: "
                                 f"{(res.stderr or res.stdout).strip()}")
        self.t.check(self.ctl("reread"))
        # Only the target color's programs are updated: updating the live ones would restart
        # the instances serving traffic. Naming the color's stale programs (ports it no
        # longer uses) removes them.
        stale = [p for p in self.programs(target, self.running().get(target, []))
                 if p not in self.programs(target)]
        self.t.check(self.ctl("update", *self.programs(target), *stale))
        return changed

    def start(self, color: str) -> None:
        res = self.t.run(self.ctl("start", *self.programs(color)), timeout=120)
        if not res.ok and "ERROR" in res.stdout and "already started" not in res.stdout:
            said = " ".join(res.stdout.split())
            raise ApplyError(_failed(f"{self.t.name}: supervisorctl start failed: {said}",
                                     self.why(color)))

    def stop(self, color: str, ports: list[int] | None = None) -> None:
        programs = self.programs(color, ports)
        if not programs:
            return
        timeout = self.config.run.drain_timeout + 30
        self.t.run(self.ctl("stop", *programs), timeout=timeout)

    def running(self) -> dict[str, list[int]]:
        res = self.t.run(self.ctl("status"))
        out: dict[str, list[int]] = {c: [] for c in COLORS}
        prefix = re.escape(ident(self.config.app.name))
        for m in re.finditer(rf"^{prefix}-(blue|green)-(\d+)\s+(RUNNING|STARTING|STOPPING)",
                             res.stdout, re.M):
            out[m.group(1)].append(int(m.group(2)))
        return {c: sorted(v) for c, v in out.items()}

    def schedule_stop(self, color: str, ports: list[int], seconds: float) -> None:
        # A detached sleeper in its own session; its pid file lets a later run cancel it.
        self.cancel_stop(color)
        stop = shlex.join(self.ctl("stop", *self.programs(color, ports)).argv)
        self.t.check(Cmd.of("sh", "-c", STANDBY_SLEEPER, "goship-standby",
                            self.paths.standby_pid(color), str(max(1, int(seconds + 0.999))),
                            stop))

    def schedule_drain(self, color: str, ports: list[int], delay: float,
                       drain: float) -> None:
        if drain <= 0:
            super().schedule_drain(color, ports, delay, drain)
            return
        self.cancel_stop(color)
        stop = self.ctl("stop", *self.programs(color, ports)).argv
        self.t.check(Cmd.of("sh", "-c", STANDBY_SLEEPER, "goship-standby",
                            self.paths.standby_pid(color), str(max(1, int(delay + 0.999))),
                            shlex.join(self.drain_command(ports, drain, list(stop)))))

    def cancel_stop(self, color: str) -> None:
        self.t.run(Cmd.of("sh", "-c", STANDBY_CANCEL, "goship-standby-cancel",
                          self.paths.standby_pid(color)))

    def pids(self, color: str) -> dict[int, int | None]:
        res = self.t.run(self.ctl("status", *self.programs(color)))
        out: dict[int, int | None] = {}
        for port, name in zip(self.ports(color), self.programs(color), strict=True):
            m = re.search(rf"^{re.escape(name)}\s+RUNNING\s+pid (\d+)", res.stdout, re.M)
            out[port] = int(m.group(1)) if m else None
        return out

    def log_tail(self, color: str, lines: int = 15) -> str:
        files = [f"{self.paths.logs}/{self.config.app.name}-{color}-{p}.log"
                 for p in self.ports(color)]
        return self.t.run(Cmd.of("tail", "-q", "-n", str(lines), *files)).stdout.strip()

    def enable(self, live: str, also: list[int] | None = None,
               root: Path | None = None) -> None:
        # autostart is rendered from the live color at install time; nothing else to do.
        return None

    def logs_cmd(self, follow: bool, since: str | None, lines: int) -> Cmd:
        files = [f"{self.paths.logs}/{self.config.app.name}-{c}-{p}.log"
                 for c in COLORS for p in self.ports(c)]
        return Cmd.of("tail", "-q", "-n", str(lines), *(["-F"] if follow else []), *files)


def journal_tail(units: list[str], lines: int) -> Cmd:
    """The last `lines` lines the journal holds for these units, messages only."""
    args = ["journalctl", "--no-pager", "-o", "cat", "-n", str(lines)]
    for u in units:
        args += ["-u", u]
    return Cmd.of(*args)


def _failed(what: str, why: str) -> str:
    return f"{what}; {why}" if why else what


UNIT_LINE = re.compile(r"^(?P<app>[a-z0-9][a-z0-9-]*)-(?P<color>blue|green)@(?P<port>\d+)"
                       r"\.service\s")


def parse_units(app: str, text: str) -> dict[str, list[int]]:
    """`systemctl list-units --plain --no-legend` lines -> color -> ports of `app`."""
    out: dict[str, list[int]] = {c: [] for c in COLORS}
    for line in text.splitlines():
        m = UNIT_LINE.match(line.strip() + " ")
        if m and m.group("app") == app:
            out[m.group("color")].append(int(m.group("port")))
    return {c: sorted(v) for c, v in out.items()}


UNIT_DIR = "/etc/systemd/system"
_TARGET = re.compile(r"[A-Za-z0-9:_.@-]+")


def template_of(unit: str) -> str:
    """The unit file an instance comes from: shop-blue@9000.service -> shop-blue@.service."""
    prefix, at, rest = unit.partition("@")
    return f"{prefix}@.{rest.rsplit('.', 1)[-1]}" if at else unit


def install_dirs(unit_text: str) -> list[str] | None:
    """The .wants/.requires directories a unit file's [Install] links it into when enabled;
    None when [Install] says more than WantedBy= and RequiredBy= (Alias=, Also=, a
    specifier, a continued line): then only systemctl knows what enabling it does."""
    dirs: list[str] = []
    section = ""
    for raw in unit_text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line
            continue
        if section != "[Install]":
            continue
        key, sep, value = line.partition("=")
        suffix = {"WantedBy": ".wants", "RequiredBy": ".requires"}.get(key.strip())
        if suffix is None or not sep or line.endswith("\\") or "%" in value:
            return None
        words = value.split()
        if not words:  # an empty assignment resets the list
            dirs = [d for d in dirs if not d.endswith(suffix)]
        for w in words:
            if not _TARGET.fullmatch(w):
                return None
            dirs.append(w + suffix)
    return list(dict.fromkeys(dirs))
