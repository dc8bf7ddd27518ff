"""Service managers on a host: systemd (template units per color) or goship's own
supervisord. Both start and stop one color's instances and tell their PIDs."""

from __future__ import annotations

import abc
import re
import shutil
import sys
from pathlib import Path

from goship.command import Cmd
from goship.config import Config
from goship.deploy.scripts import INSTALL_FILE
from goship.errors import ApplyError, PrerequisiteError
from goship.render import kinds
from goship.render.context import COLORS, Paths, ports, program_name
from goship.transport.base import Transport


def install_file(t: Transport, path: str, text: str, mode: str = "644") -> bool:
    cmd = Cmd.of("sh", "-c", INSTALL_FILE, "goship-install", path, mode)
    res = t.check(cmd.with_stdin(text.encode()))
    return res.stdout.strip() == "changed"


class Services(abc.ABC):
    name: str

    def __init__(self, t: Transport, config: Config, paths: Paths) -> None:
        self.t, self.config, self.paths = t, config, paths

    @abc.abstractmethod
    def install(self, target: str, live: str | None,
                root: Path | None) -> bool:
        """Write the service definitions; make `target`'s definitions current."""

    @abc.abstractmethod
    def start(self, color: str) -> None: ...

    @abc.abstractmethod
    def stop(self, color: str) -> None: ...

    @abc.abstractmethod
    def pids(self, color: str) -> dict[int, int | None]:
        """port -> running PID (None when not running)."""

    @abc.abstractmethod
    def log_tail(self, color: str, lines: int = 15) -> str: ...

    @abc.abstractmethod
    def enable(self, live: str) -> None:
        """Start the live color at boot, not the other one."""

    @abc.abstractmethod
    def logs_cmd(self, follow: bool, since: str | None, lines: int) -> Cmd: ...


class Systemd(Services):
    name = "systemd"

    def units(self, color: str) -> list[str]:
        return [f"{self.config.app.name}-{color}@{p}.service" for p in ports(self.config, color)]

    def install(self, target: str, live: str | None,
                root: Path | None) -> bool:
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
        self.t.check(Cmd.of("systemctl", "start", *units), timeout=120)

    def stop(self, color: str) -> None:
        timeout = self.config.run.drain_timeout + 30
        self.t.check(Cmd.of("systemctl", "stop", *self.units(color)), timeout=timeout)

    def pids(self, color: str) -> dict[int, int | None]:
        units = self.units(color)
        res = self.t.check(Cmd.of("systemctl", "show", "-p", "MainPID", "-p", "ActiveState",
                                  *units))
        blocks = list(res.stdout.strip().split("\n\n"))
        out: dict[int, int | None] = {}
        for port, block in zip(ports(self.config, color), blocks, strict=False):
            props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
            pid = int(props.get("MainPID", "0") or 0)
            out[port] = pid if pid and props.get("ActiveState") == "active" else None
        return out

    def log_tail(self, color: str, lines: int = 15) -> str:
        args = ["journalctl", "--no-pager", "-o", "cat", "-n", str(lines)]
        for u in self.units(color):
            args += ["-u", u]
        return self.t.run(Cmd.of(*args)).stdout.strip()

    def enable(self, live: str) -> None:
        # --no-reload: boot only needs the symlinks; a daemon-reload costs ~0.25 s each.
        self.t.run(Cmd.of("systemctl", "disable", "--quiet", "--no-reload",
                          *self.units("green" if live == "blue" else "blue")))
        self.t.check(Cmd.of("systemctl", "enable", "--quiet", "--no-reload",
                            *self.units(live)))

    def logs_cmd(self, follow: bool, since: str | None, lines: int) -> Cmd:
        args = ["journalctl", "--no-pager", "-o", "short-iso", "-n", str(lines),
                "-u", f"{self.config.app.name}-*@*.service"]
        if since:
            args += ["--since", since]
        if follow:
            args.append("-f")
        return Cmd.of(*args)


class Supervisor(Services):
    """goship's own supervisord, configured under the app's run directory."""

    name = "supervisord"

    def __init__(self, t: Transport, config: Config, paths: Paths, *, local: bool,
                 as_user: str | None) -> None:
        super().__init__(t, config, paths)
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

    def programs(self, color: str) -> list[str]:
        return [program_name(self.config.app.name, color, p) for p in ports(self.config, color)]

    def running(self) -> bool:
        return self.t.run(self.ctl("pid")).stdout.strip().isdigit()

    def install(self, target: str, live: str | None,
                root: Path | None) -> bool:
        logs = self.paths.logs
        files = {"supervisord.conf": kinds.supervisord_main(self.config, self.paths, logs, root)}
        files.update(kinds.supervisord_programs(self.config, self.paths, live=live,
                                                user=self.as_user, log_dir=logs, root=root))
        changed = False
        for name, text in files.items():
            changed |= install_file(self.t, self.paths.join("run", name), text, "600")
        if not self.running():
            res = self.t.run(Cmd.of(self._bin("supervisord"), "-c", self.conf))
            if not res.ok:
                raise ApplyError(f"{self.t.name}: supervisord did not start: "
                                 f"{(res.stderr or res.stdout).strip()}")
        self.t.check(self.ctl("reread"))
        # Only the target color's programs are updated: updating the live ones would restart
        # the instances serving traffic.
        self.t.check(self.ctl("update", *self.programs(target)))
        return changed

    def start(self, color: str) -> None:
        res = self.t.run(self.ctl("start", *self.programs(color)), timeout=120)
        if not res.ok and "ERROR" in res.stdout and "already started" not in res.stdout:
            raise ApplyError(f"{self.t.name}: supervisorctl start failed: {res.stdout.strip()}")

    def stop(self, color: str) -> None:
        timeout = self.config.run.drain_timeout + 30
        self.t.run(self.ctl("stop", *self.programs(color)), timeout=timeout)

    def pids(self, color: str) -> dict[int, int | None]:
        res = self.t.run(self.ctl("status", *self.programs(color)))
        out: dict[int, int | None] = {}
        for port, name in zip(ports(self.config, color), self.programs(color), strict=True):
            m = re.search(rf"^{re.escape(name)}\s+RUNNING\s+pid (\d+)", res.stdout, re.M)
            out[port] = int(m.group(1)) if m else None
        return out

    def log_tail(self, color: str, lines: int = 15) -> str:
        files = [f"{self.paths.logs}/{self.config.app.name}-{color}-{p}.log"
                 for p in ports(self.config, color)]
        return self.t.run(Cmd.of("tail", "-q", "-n", str(lines), *files)).stdout.strip()

    def enable(self, live: str) -> None:
        # autostart is rendered from the live color at install time; nothing else to do.
        return None

    def logs_cmd(self, follow: bool, since: str | None, lines: int) -> Cmd:
        files = [f"{self.paths.logs}/{self.config.app.name}-{c}-{p}.log"
                 for c in COLORS for p in ports(self.config, c)]
        return Cmd.of("tail", "-q", "-n", str(lines), *(["-F"] if follow else []), *files)
