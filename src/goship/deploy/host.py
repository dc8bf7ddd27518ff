"""One host as deploy sees it: its transport, facts, service manager and nginx, and the
operations of a release on it (design: upload, start, gate, switch, drain, record)."""

from __future__ import annotations

import getpass
import json
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from goship.command import Cmd
from goship.config import Config, Environment
from goship.deploy import scripts
from goship.deploy.layout import Paths, PortMap, default_port_map, layout_dirs, layout_fixes
from goship.deploy.lock import Lock as Lock
from goship.deploy.lock import LockHeld as LockHeld
from goship.deploy.plan import HostView
from goship.deploy.ports import recorded_ports
from goship.deploy.proxy import Nginx, OwnNginx, SystemNginx
from goship.deploy.services import Services, Supervisor, Systemd, install_cmd
from goship.errors import ApplyError, CommandFailed, TransportError
from goship.facts import HostFacts, gather
from goship.render import kinds
from goship.transport.base import Transport


def local_base() -> str:
    """Where a local deploy lives when goship is not root: the user's data directory."""
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return str(Path(data) / "goship")


@dataclass
class Gate:
    ok: bool
    detail: str


@dataclass
class Host:
    t: Transport
    env: Environment
    facts: HostFacts
    paths: Paths
    services: Services
    nginx: Nginx
    local: bool
    state: dict[str, Any] = field(default_factory=dict)
    live_color: str | None = None
    live_release: str | None = None
    state_read: bool = False  # `state` is what the host held (refresh), not a blank

    @property
    def name(self) -> str:
        return self.t.name

    @property
    def config(self) -> Config:
        return self.env.config

    @property
    def port_map(self) -> PortMap:
        """The ports each color uses on this host: recorded in its state, set by a plan.
        One dict shared with the services and nginx, so all three agree."""
        return self.services.port_map

    def use_ports(self, port_map: PortMap) -> None:
        self.services.port_map.clear()
        self.services.port_map.update({c: list(p) for c, p in port_map.items()})

    # ---- facts -------------------------------------------------------------------------
    def refresh(self) -> None:
        res, *site = self.t.run_all([Cmd.of("cat", self.paths.state), *self.nginx.live_cmds()])
        try:
            self.state = json.loads(res.stdout) if res.ok else {}
        except json.JSONDecodeError:
            self.state = {}
        if not isinstance(self.state, dict):
            self.state = {}
        self.use_ports(recorded_ports(self.state, self.config))
        self.nginx.site_ports = {c: list(p) for c, p in self.port_map.items()}
        self.live_color, self.live_release = self.nginx.live_from(*site)
        self.nginx.saw(site[0], site[1])
        self.state_read = True

    def reread(self) -> None:
        """Everything a plan reads, read again (another release ran since)."""
        self.facts = gather(self.t, self.paths.base, self.config.service_user)
        self.refresh()

    def facts_confirmed(self) -> None:
        """The lock is ours and no release wrote the state since these facts were read:
        what nginx was seen serving then is what it serves now (its first switch need not
        ask again)."""
        self.nginx.trust_seen()

    def view(self) -> HostView:
        """The facts a plan reads: releases on disk with their sha256, environments kept,
        instances running, listeners, state, what nginx serves."""
        import time

        inventory = Cmd.of("sh", "-c", scripts.INVENTORY, "goship-inventory", self.paths.root)
        query = self.services.running_query()
        if query is not None:  # both reads in one round trip
            res, units = self.t.run_all([inventory, query[0]])
            running = query[1](units.stdout)
        else:
            res = self.t.run(inventory)
            running = self.services.running()
        releases: dict[str, str | None] = {}
        envs: set[str] = set()
        leftovers: list[str] = []
        for line in res.stdout.splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "R" and rest:
                rid, _, sha = rest.partition(" ")
                releases[rid] = sha.strip() or None
            elif kind == "E" and rest:
                envs.add(rest.strip())
            elif kind == "L" and rest:
                leftovers.append(rest.strip())
        supervised = self.services.name == "supervisord"
        kept = sorted(e for e in envs if not e.endswith(".sh")
                      and (not supervised or f"{e}.sh" in envs))
        return HostView(name=self.name, manager=self.services.name, lua=self.nginx.lua,
                        live_color=self.live_color, live_release=self.live_release,
                        state=dict(self.state), releases=releases,
                        listeners=self.facts.listeners, running=running,
                        env_kept=kept, now=time.time(), leftovers=leftovers,
                        apps=self.facts.apps)

    def releases_on_disk(self) -> list[str]:
        res = self.t.run(Cmd.of("ls", "-1", self.paths.releases))
        return sorted(x for x in res.stdout.split() if not x.startswith("."))

    # ---- layout ------------------------------------------------------------------------
    def ensure_layout(self) -> list[str]:
        """The user and directories; returns what had to be created."""
        p = self.paths
        user = self.config.service_user
        changes = []
        owner = None if self.local else user
        seen = self.t.run(Cmd.of("stat", "-c", "%a %U:%G %n", *layout_dirs(p, owner))).stdout
        if not any(line.endswith(f" {p.releases}") for line in seen.splitlines()):
            changes.append(f"{p.root}/")
        if not self.local and not self.facts.user_exists:
            changes.append(f"user {user}")
            self.t.check(Cmd.of("useradd", "--system", "--no-create-home", "--home-dir",
                                p.join("shared", "data"), "--shell", "/usr/sbin/nologin",
                                user))
            self.facts = gather(self.t, self.config.deploy.base_path, user)
        for argv in layout_fixes(p, owner, seen):
            self.t.check(Cmd.of(*argv))
        # Hosts deployed before environments were kept per color had one shared/env: the
        # running color keeps reading it (as env.COLOR) when it restarts.
        self.t.run(Cmd.of("sh", "-c", 'test -f "$1" || exit 0; for f in "$2" "$3"; do '
                          'test -e "$f" || cp -p "$1" "$f"; done', "goship-env",
                          p.join("shared", "env"), p.env_file("blue"), p.env_file("green")))
        return changes

    def _env_forms(self, color: str, rid: str) -> list[tuple[str, str, str]]:
        """(kept with the release, read by the color, mode): the EnvironmentFile, and on
        supervisord hosts the wrapper script that exports it."""
        saved = self.paths.release_env(rid)
        forms = [(saved, self.paths.env_file(color), "600")]
        if self.services.name == "supervisord":
            forms.append((f"{saved}.sh", self.paths.env_script(color), "700"))
        return forms

    def write_env(self, env: dict[str, str], color: str, rid: str, *,
                  use: bool = True) -> None:
        """The release's environment (run.env and run.env_file), kept with the release so
        a rollback brings back the configuration it ran with, then (`use`) the color's own
        copy: a canary's environment never reaches the stable color's instances."""
        texts = [self.services.env_text(env), kinds.env_script(env)]
        forms = self._env_forms(color, rid)
        for (saved, _, mode), text in zip(forms, texts, strict=False):
            self.t.check(install_cmd(saved, text, mode, secrets=env.values()))
        if use:
            self._use_env(forms)

    def restore_env(self, color: str, rid: str, *, use: bool = True) -> bool:
        """The environment `rid` was deployed with, back on `color` (`use`); False when
        this host has none kept (a release deployed before goship kept them)."""
        forms = self._env_forms(color, rid)
        if not all(self.t.run(Cmd.of("test", "-f", saved)).ok for saved, *_ in forms):
            return False
        if use:
            self._use_env(forms)
        return True

    def use_env(self, color: str, rid: str) -> None:
        """The kept environment of `rid` becomes `color`'s (written or found at staging)."""
        self._use_env(self._env_forms(color, rid))

    def _use_env(self, forms: list[tuple[str, str, str]]) -> None:
        for saved, live, mode in forms:
            self.t.check(Cmd.of("cp", "-p", "--", saved, live))
            if not self.local and mode == "600":
                user = self.config.service_user
                self.t.check(Cmd.of("chown", f"{user}:{user}", saved, live))

    # ---- release -----------------------------------------------------------------------
    def has_release(self, rid: str, sha: str) -> bool:
        res = self.t.run(Cmd.of("sh", "-c", scripts.HAS_RELEASE, "goship-has-release",
                                self.paths.release(rid), sha))
        return res.stdout.strip() == "yes" and self.services.has_release(rid)

    def upload(self, rid: str, data: bytes, sha: str) -> None:
        incoming = f"{self.paths.incoming}/{rid}.tar.gz"
        self.t.put(incoming, data, mode=0o600)
        res = self.t.run(Cmd.of("sh", "-c", scripts.UNPACK, "goship-unpack", incoming, sha,
                                self.paths.releases, rid), timeout=300)
        if not res.ok:
            raise ApplyError(f"{self.name}: the upload failed verification, nothing was "
                             f"used: {res.stderr.strip().splitlines()[-1:] or res.stdout}")
        self.services.receive(rid, data)

    def link(self, link: str, target: str, *, later: bool = False) -> None:
        cmd = Cmd.of("sh", "-c", scripts.LINK, "goship-link", link, target)
        if later:
            self.t.later(cmd)  # a record: what follows does not depend on it
        else:
            self.t.check(cmd)

    def point_color(self, color: str, rid: str) -> None:
        self.link(self.paths.color_link(color), f"releases/{rid}")

    # ---- health ------------------------------------------------------------------------
    def gate(self, color: str, *, interval: float | None = None,
             successes: int | None = None, known: dict[int, int] | None = None) -> Gate:
        """The color's instances answer their health check, and none stopped or restarted
        meanwhile. `known`: their PIDs as already read (a warm standby's, from the facts)."""
        h = self.config.run.health
        urls = [f"http://127.0.0.1:{p}{h.path}" for p in self.services.ports(color)]

        def gate_cmd(pids: dict[int, int]) -> Cmd:
            return Cmd.of("sh", "-c", scripts.HEALTH_GATE, "goship-gate", f"{h.deadline:g}",
                          str(successes or h.successes), f"{interval or h.interval:g}",
                          f"{h.timeout:g}", " ".join(f"{p}:{pid}" for p, pid in pids.items()),
                          *urls)

        timeout = h.deadline + 30
        before: dict[int, int | None] = {}
        if self.services.pid_alone_tells:
            before = (dict(known) if known is not None
                      and set(known) == set(self.services.ports(color))
                      else self.services.pids(color))
        running = {p: pid for p, pid in before.items() if pid}
        if before and len(running) == len(before):
            # The host checks these PIDs still run once the URLs answered: no second read.
            res = self.t.run(gate_cmd(running), timeout=timeout)
            after = before
        else:  # not told by PIDs alone, or an instance not running yet: read again after
            query = self.services.pids_query(color)
            if query is not None:
                # PIDs before, the gate, PIDs after: in order on the host, one round trip.
                cmd, parse = query
                b, res, a = self.t.run_all([cmd, gate_cmd({}), cmd], timeout=timeout)
                for r in (b, a):
                    if not r.ok:
                        raise CommandFailed(self.name, cmd.display(), r.code,
                                            r.stderr.strip())
                before, after = parse(b.stdout), parse(a.stdout)
            else:
                before = self.services.pids(color)
                res = self.t.run(gate_cmd({}), timeout=timeout)
                after = self.services.pids(color) if res.ok else {}
        last = (res.stdout.strip().splitlines() or ["fail ? no output"])[-1]
        if last.startswith("gone "):
            _, port, pid = [*last.split(), "?", "?"][:3]
            return Gate(False, f"instance on port {port} (pid {pid}) stopped or restarted "
                               "during the gate")
        if not res.ok:
            return _failed_gate(last)
        dead = [p for p, pid in after.items() if pid is None]
        if dead:
            return Gate(False, f"instance on port {dead[0]} is not running after the gate")
        restarted = [p for p in after if before.get(p) and after[p] != before[p]]
        if restarted:
            return Gate(False, f"instance on port {restarted[0]} restarted during the gate "
                        f"(pid {before[restarted[0]]} -> {after[restarted[0]]})")
        return Gate(True, f"{len(urls)} instance(s) healthy")

    def standby_pids(self, color: str) -> dict[int, int] | None:
        """The color's instances' PIDs as the facts saw them listening, each in its own
        unit; None unless every instance was seen."""
        seen = self.facts.listeners or {}
        out: dict[int, int] = {}
        for port in self.services.ports(color):
            listener = seen.get(port)
            unit = self.services.unit_of(color, port)
            if listener is None or listener.pid is None or unit is None \
                    or listener.unit != unit:
                return None
            out[port] = listener.pid
        return out

    # ---- records -----------------------------------------------------------------------
    def write_state(self, *, later: bool = False, **changes: Any) -> None:
        """`later`: the answer is read with the next command's (`settle` raises)."""
        state = {**self.state, **changes, "app": self.config.app.name, "schema": 1,
                 "updated": now(), "manager": self.services.name}
        data = (json.dumps(state, indent=2, sort_keys=True) + "\n").encode()
        if later:
            self.t.put_later(self.paths.state, data, mode=0o644)
        else:
            self.t.put(self.paths.state, data, mode=0o644)
        self.state = state

    def journal(self, entry: dict[str, Any]) -> None:
        """Append to the host's audit trail. Best effort: an unreachable host must not hide
        the outcome it would record."""
        line = json.dumps({"time": now(), "who": who(), "host": self.name, **entry},
                          sort_keys=True)
        try:
            # Read with the next command's answer; the engine settles (and warns) at the end.
            self.t.later(Cmd.of("sh", "-c", scripts.APPEND, "goship-journal",
                                self.paths.journal, line), timeout=15)
        except TransportError as e:
            from goship.ui import ui

            ui.warn(f"{self.name}: journal not written: {e.message}")

    def read_journal(self, last: int = 1) -> list[dict[str, Any]]:
        res = self.t.run(Cmd.of("tail", "-n", str(last), self.paths.journal))
        out = []
        for line in res.stdout.splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return out

    def clean(self, leftovers: list[str]) -> None:
        """Remove what an aborted run left (paths relative to the app root, from the
        inventory; never anything outside releases/ and incoming/)."""
        safe = [self.paths.join(p) for p in leftovers
                if p.startswith(("releases/.", "incoming/")) and ".." not in p.split("/")]
        if safe:
            self.t.run(Cmd.of("rm", "-rf", "--", *safe))

    def remove_releases(self, doomed: list[str]) -> list[str]:
        """The plan's prune list: each release with its kept environment."""
        for rid in doomed:
            env = self.paths.release_env(rid)
            self.t.run(Cmd.of("rm", "-rf", "--", self.paths.release(rid), env, f"{env}.sh"))
        self.services.forget(doomed)
        return doomed


def _failed_gate(last: str) -> Gate:
    """The gate script's last line, `fail URL DETAIL`, as the gate's failure."""
    _, url, detail = ([*last.split(" ", 2), "", ""])[:3]
    return Gate(False, f"{url}: {detail}")


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


def open_host(t: Transport, env: Environment, *, root_hint: bool = True) -> Host:
    """Gather facts and choose the service manager and nginx for this host."""
    config = env.config
    from goship.targets import kind

    local = kind(env).local
    base = config.deploy.base_path
    if local and os.geteuid() != 0 and base == "/srv":
        base = local_base()  # the default /srv is root's; a user deploys under their home
    facts = gather(t, base, config.service_user)
    paths = Paths(base, config.app.name)
    manager = config.run.manager
    if manager == "docker" and not facts.docker:
        raise ApplyError(f"{t.name}: run.manager is docker but the host has no docker "
                         f"command", hint="apt-get install docker.io (or your engine)")
    systemd_ok = facts.systemd_pid1 and facts.privilege != "none"
    if manager == "auto":
        manager = "systemd" if systemd_ok else "supervisord"
    if manager == "systemd" and not facts.systemd_pid1:
        raise ApplyError(f"{t.name}: run.manager is systemd but PID 1 is "
                         f"{facts.pid1 or 'unknown'}", hint='set run.manager = "auto"')
    if not facts.nginx_installed:
        raise ApplyError(f"{t.name}: nginx is not installed", hint="apt-get install nginx")
    switch = config.proxy.switch
    if switch == "lua" and not facts.nginx_lua:
        raise ApplyError(f"{t.name}: proxy.switch = \"lua\" but nginx has no Lua module",
                         hint="apt-get install libnginx-mod-http-lua, or set "
                              "proxy.switch = \"auto\"")
    lua = switch == "lua" or (switch == "auto" and facts.nginx_lua)
    services: Services
    nginx: Nginx
    port_map = default_port_map(config)
    if manager == "docker":
        from goship.deploy.docker import DockerServices  # its build imports: Docker hosts only

        services = DockerServices(t, config, paths, systemd=facts.systemd_pid1)
        services.check_engine()  # a clear line, before anything changes, when it is down
        nginx = OwnNginx(t, config, paths, lua) if local or facts.privilege == "none" \
            else SystemNginx(t, config, paths, systemd=facts.systemd_pid1, lua=lua)
    elif manager == "systemd":
        services = Systemd(t, config, paths)
        nginx = SystemNginx(t, config, paths, systemd=True, lua=lua)
    else:
        services = Supervisor(t, config, paths, local=local,
                              as_user=None if local else config.service_user)
        nginx = OwnNginx(t, config, paths, lua) if local or facts.privilege == "none" \
            else SystemNginx(t, config, paths, systemd=facts.systemd_pid1, lua=lua)
    if local and config.proxy.listen < 1024 and os.geteuid() != 0:
        raise ApplyError(f"local: proxy.listen = {config.proxy.listen} needs root",
                         hint="set [env.local.proxy] listen = 8800 (or any port >= 1024)")
    services.port_map = nginx.port_map = port_map
    host = Host(t, env, facts, paths, services, nginx, local)
    host.refresh()
    return host
