"""`goship remove ENV`: the app off every host of an environment. One probe per host reads
what of the app is there (units, timers, nginx site, supervisord, files, the service
user), a pure function turns it into the steps of a removal (printed before anything
changes, tested as data), and only the app's own names are ever touched: other apps on
the host and, unless --purge-data, the service user's data stay."""

from __future__ import annotations

import json
import os
import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from goship.command import Cmd
from goship.config import Config, Environment, Project
from goship.deploy.layout import COLORS, Paths
from goship.errors import ApplyError, GoshipError, UsageError
from goship.facts import HostFacts, gather, sections
from goship.transport.base import Transport
from goship.ui import ui

if TYPE_CHECKING:
    from goship.deploy.host import Lock

# $1 app root  $2 app  $3 service user  $4 deploy base path. One round trip; every name is an
# argument, never spliced into the script.
PROBE = r"""
root=$1; app=$2; user=$3; base=$4
echo @root; [ -d "$root" ] && echo yes
echo @entries; ls -A "$root" 2>/dev/null
echo @shared; ls -A "$root/shared" 2>/dev/null
echo @data
if [ -d "$root/shared/data" ]; then
  find "$root/shared/data" -mindepth 1 2>/dev/null | wc -l; du -sk "$root/shared/data" | cut -f1
fi
echo @releases; ls -1 "$root/releases" 2>/dev/null
echo @lock; cat "$root/.lock/owner" 2>/dev/null
echo @unitfiles
ls -1d /etc/systemd/system/"$app"-*@* /etc/systemd/system/*.wants/"$app"-*@* \
  /etc/systemd/system/"$app".*-* /etc/systemd/system/*.wants/"$app".*-* 2>/dev/null
echo @units
[ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] && \
  systemctl list-units --all --plain --no-legend "$app-*@*.service" "goship-$app-*" \
    "$app.*-*" 2>/dev/null
echo @etc
for f in /etc/sysusers.d/"$app".conf /etc/tmpfiles.d/goship-"$app".conf /run/goship/"$app" \
         /etc/nginx/conf.d/goship-"$app".conf; do [ -e "$f" ] && echo "$f"; done
ls -1 /var/log/nginx/goship-"$app".access.log* 2>/dev/null
echo @nginx
if [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then systemctl is-active nginx 2>/dev/null
elif kill -0 "$(cat /run/nginx.pid 2>/dev/null)" 2>/dev/null; then echo active; fi
echo @defaultoff
off="$root/nginx-default-site.off"
if [ -L "$off" ]; then echo link; elif [ -f "$off" ]; then echo file; fi
[ -e "$off" ] && grep -hs '^[[:space:]]*listen' "$off"
echo @defaults
[ -e /etc/nginx/sites-enabled/default ] && echo enabled
for f in /etc/nginx/conf.d/*.conf /etc/nginx/sites-enabled/*; do
  [ "$f" = /etc/nginx/conf.d/goship-"$app".conf ] && continue
  [ -f "$f" ] && grep -hs '^[[:space:]]*listen.*default_server' "$f"
done
echo @own
kill -0 "$(cat "$root/run/supervisord.pid" 2>/dev/null)" 2>/dev/null && echo supervisord
kill -0 "$(cat "$root/run/nginx.pid" 2>/dev/null)" 2>/dev/null && echo nginx
for f in "$root"/run/standby.*.pid; do [ -e "$f" ] && echo "sleeper $f"; done
echo @containers
command -v docker >/dev/null && \
  docker ps --all --filter "label=io.goship.app=$app" --format '{{.Names}}' 2>/dev/null
echo @images
command -v docker >/dev/null && \
  docker images --format '{{.Repository}}:{{.Tag}}' "goship-$app" 2>/dev/null
echo @user; id -u "$user" 2>/dev/null
echo @userrefs
grep -lsx -F "User=$user" /etc/systemd/system/*.service
awk -v u="$user" '$1 == "u" && $2 == u { print FILENAME; nextfile }' /etc/sysusers.d/*.conf \
  2>/dev/null
grep -lsx -F "user=$user" "$base"/*/run/programs/*.conf
echo @end
exit 0
"""


@dataclass(frozen=True)
class Unit:
    name: str
    active: str  # active, inactive, failed, activating...


@dataclass(frozen=True)
class RemoveFacts:
    """What of one app a host holds (parsed from PROBE's output)."""

    root_exists: bool = False
    entries: tuple[str, ...] = ()  # top level of the app's root
    shared: tuple[str, ...] = ()  # entries of shared/
    data_entries: int | None = None  # files and directories under shared/data
    data_kib: int | None = None
    releases: tuple[str, ...] = ()
    lock_owner: dict[str, Any] | None = None
    unit_files: tuple[str, ...] = ()  # template units, their drop-ins, the boot symlinks
    units: tuple[Unit, ...] = ()  # instances and standby timers systemd knows
    etc: tuple[str, ...] = ()  # sysusers, tmpfiles, control dir, nginx site, access logs
    system_nginx: bool = False  # the host's nginx is running
    default_off: str | None = None  # Debian's default site, moved aside: link | file
    default_off_ports: tuple[int, ...] = ()
    default_enabled: bool = False  # /etc/nginx/sites-enabled/default exists
    other_default_ports: tuple[int, ...] = ()  # default_server ports of the other sites
    supervisord: bool = False  # the app's own supervisord runs
    own_nginx: bool = False  # the app's own nginx runs
    sleepers: tuple[str, ...] = ()
    user_exists: bool = False
    user_refs: tuple[str, ...] = ()  # other files that name the service user
    containers: tuple[str, ...] = ()  # run.manager = "docker": the app's containers
    images: tuple[str, ...] = ()  # and its release images (goship-APP:RELEASE)


LISTEN_PORT = re.compile(r"listen\s+(?:\[[^\]]*\]:|[^\s;:]+:)?(\d+)")


def _ports(lines: list[str]) -> tuple[int, ...]:
    found = {int(m.group(1)) for ln in lines if (m := LISTEN_PORT.search(ln))}
    return tuple(sorted(found))


def parse_probe(text: str, app: str, user: str, paths: Paths) -> RemoveFacts:
    s = sections(text)

    def lines(key: str) -> list[str]:
        return [ln.strip() for ln in s.get(key, "").splitlines() if ln.strip()]

    data = lines("data")
    owner: dict[str, Any] | None = None
    if s.get("lock"):
        try:
            raw = json.loads(s["lock"])
            owner = raw if isinstance(raw, dict) else {"who": "unknown"}
        except json.JSONDecodeError:
            owner = {"who": "unknown"}
    unit_re = own_units(app)
    units = []
    for ln in lines("units"):
        parts = ln.split()
        if len(parts) >= 3 and unit_re.match(parts[0]):
            units.append(Unit(parts[0], parts[2]))
    files = [f for f in lines("unitfiles") if unit_re.match(PurePosixPath(f).name)]
    off = lines("defaultoff")
    defaults = lines("defaults")
    own = lines("own")
    user_files = {str(PurePosixPath("/etc/systemd/system") / f"{app}-{c}@.service")
                  for c in COLORS} | {f"/etc/sysusers.d/{app}.conf",
                                      paths.join("run", "programs", f"{app}-blue.conf"),
                                      paths.join("run", "programs", f"{app}-green.conf")}
    return RemoveFacts(
        root_exists=s.get("root") == "yes",
        entries=tuple(sorted(lines("entries"))),
        shared=tuple(sorted(lines("shared"))),
        data_entries=int(data[0]) if len(data) == 2 and data[0].isdigit() else None,
        data_kib=int(data[1]) if len(data) == 2 and data[1].isdigit() else None,
        releases=tuple(sorted(lines("releases"))),
        lock_owner=owner,
        unit_files=tuple(sorted(files)),
        units=tuple(sorted(units, key=lambda u: u.name)),
        etc=tuple(lines("etc")),
        system_nginx=s.get("nginx") == "active",
        default_off=off[0] if off and off[0] in ("link", "file") else None,
        default_off_ports=_ports(off[1:]),
        default_enabled="enabled" in defaults,
        other_default_ports=_ports([d for d in defaults if d != "enabled"]),
        supervisord="supervisord" in own,
        own_nginx="nginx" in own,
        sleepers=tuple(ln.split(" ", 1)[1] for ln in own if ln.startswith("sleeper ")),
        user_exists=bool(lines("user")) and lines("user")[0].isdigit(),
        user_refs=tuple(sorted(f for f in lines("userrefs") if f not in user_files)),
        containers=tuple(sorted(c for c in lines("containers")
                                if re.fullmatch(rf"{re.escape(app)}-(blue|green)-\d+", c))),
        images=tuple(sorted(i for i in lines("images") if i.startswith(f"goship-{app}:"))),
    )


def own_units(app: str) -> re.Pattern[str]:
    """The app's own systemd names, exactly: its template units and their instances, their
    drop-in directories, the standby timers, and [processes.*] (`shop.worker-blue@1`,
    `shop.nightly-blue.timer`). `shop` never matches `shop-admin`."""
    a = re.escape(app)
    return re.compile(rf"^(?:{a}-(?:blue|green)@\d*\.service(?:\.d)?"
                      rf"|{a}\.[a-z][a-z0-9-]*-(?:blue|green)(?:@\d*)?\.(?:service|timer)"
                      rf"(?:\.d)?"
                      rf"|goship-{a}-standby-(?:blue|green)\.(?:timer|service))$")


# ---- the plan -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    """One thing the removal does on a host, in order. `what`: the names it touches."""

    kind: str
    what: tuple[str, ...]
    detail: str = ""

    def line(self, root: str = "") -> str:
        names = ", ".join(self.what)
        if root and len(self.what) > 1 and all(w.startswith(f"{root}/") for w in self.what):
            names = f"{root}/ " + ", ".join(w[len(root) + 1:] for w in self.what)
        return f"{self.kind}: {names}" + (f" ({self.detail})" if self.detail else "")


@dataclass(frozen=True)
class HostRemoval:
    host: str
    steps: tuple[Step, ...]
    kept: tuple[str, ...] = ()
    lock: str | None = None  # who holds the deploy lock, when someone does
    root: str = ""
    take_lock: bool = False  # the app's root exists: the removal holds the deploy lock

    @property
    def nothing(self) -> bool:
        return not self.steps

    def lines(self) -> list[str]:
        out = [f"{self.host}: nothing to remove" if self.nothing else f"{self.host}:"]
        out += [f"  {s.line(self.root)}" for s in self.steps]
        if self.kept:
            out.append(f"  keeps: {'; '.join(self.kept)}")
        if self.lock:
            out.append(f"  deploy lock held by {self.lock}: remove refuses until it ends")
        return out


def _size(kib: int | None) -> str:
    if kib is None:
        return "size unknown"
    return f"{kib / 1024:.1f} MiB" if kib >= 1024 else f"{kib} KiB"


# The deploy lock's own files (the removal holds the lock, releases it, then clears them)
# and shared/, whose entries are judged one by one.
LOCK_FILES = (".lock", ".lock.guard", "shared")


def plan_host(host: str, app: str, user: str, paths: Paths, f: RemoveFacts, *,
              purge_data: bool) -> HostRemoval:
    """What removing `app` does on one host: a pure function of its facts."""
    steps: list[Step] = []
    kept: list[str] = []
    site = f"/etc/nginx/conf.d/goship-{app}.conf"
    if site in f.etc:
        steps.append(Step("nginx site", (site,), "nginx -t, then reload" if f.system_nginx
                          else "nginx is not running: file only"))
    if f.default_off:
        off = paths.join("nginx-default-site.off")
        clash = set(f.default_off_ports) & set(f.other_default_ports)
        if not f.default_enabled and not clash:
            steps.append(Step("nginx default site", ("/etc/nginx/sites-enabled/default",),
                              "Debian's default site back from " + off))
        elif f.default_off == "file":
            steps.append(Step("nginx default site",
                              (f"/etc/nginx/sites-available/default.goship-{app}",),
                              "another site is the default server: kept there, disabled"))
    if f.own_nginx:
        steps.append(Step("stop nginx", (paths.join("run", "nginx.conf"),),
                          "goship's own nginx of this app"))
    if f.sleepers:
        steps.append(Step("cancel standby stop", f.sleepers))
    timers = tuple(u.name for u in f.units if u.name.startswith("goship-")
                   or u.name.endswith(".timer"))
    if timers:
        steps.append(Step("stop timers", timers))
    instances = tuple(u.name for u in f.units if u.name not in timers
                      and not u.name.partition("@")[2].startswith("."))
    if instances:
        running = sum(1 for u in f.units if u.name in instances and u.active != "inactive")
        steps.append(Step("stop and disable units", instances, f"{running} running"))
    if f.containers:
        steps.append(Step("stop and remove containers", f.containers))
    if f.supervisord:
        steps.append(Step("stop supervisord", (paths.join("run", "supervisord.conf"),),
                          "every program of this app, then its supervisord"))
    if f.unit_files:
        steps.append(Step("remove unit files", f.unit_files, "then daemon-reload"))
    for kind, path in (("remove tmpfiles.d entry", f"/etc/tmpfiles.d/goship-{app}.conf"),
                       ("remove control socket dir", f"/run/goship/{app}")):
        if path in f.etc:
            steps.append(Step(kind, (path,)))
    logs = tuple(e for e in f.etc if e.startswith("/var/log/nginx/"))
    if logs:
        steps.append(Step("remove nginx access logs", logs))
    # The app's files: everything under its root but the service user's data (and the
    # lock, which the removal holds and releases last).
    data = paths.join("shared", "data")
    has_data = bool(f.data_entries)
    keep_data = has_data and not purge_data
    doomed = [paths.join(e) for e in f.entries if e not in LOCK_FILES]
    doomed += [paths.join("shared", e) for e in f.shared if e != "data" or not keep_data]
    if doomed:
        detail = f"{len(f.releases)} release(s), state, journal, environments" \
            if f.releases else ""
        steps.append(Step("remove files", tuple(doomed), detail))
    if f.images:
        steps.append(Step("remove images", f.images))
    if keep_data:
        n = f.data_entries
        kept.append(f"{data} ({n} entr{'y' if n == 1 else 'ies'}, {_size(f.data_kib)}; "
                    f"--purge-data removes it)")
    sysusers = f"/etc/sysusers.d/{app}.conf"
    user_note = ""
    if f.user_exists and f.user_refs:
        user_note = f"user {user} (also named by {', '.join(f.user_refs)})"
    if purge_data:
        if sysusers in f.etc:
            steps.append(Step("remove sysusers.d entry", (sysusers,)))
        if f.user_exists and not f.user_refs:
            steps.append(Step("delete user", (user,), "userdel"))
        elif user_note:
            kept.append(user_note)
    elif f.user_exists or sysusers in f.etc:
        kept.append(f"user {user}" + (f" and {sysusers}" if sysusers in f.etc else "") +
                    " (owner of the data; --purge-data removes it)")
    owner = f.lock_owner
    lock = None
    if owner:
        lock = f"{owner.get('who', 'unknown')} pid {owner.get('pid', '?')}, " \
               f"`{owner.get('command', '?')}`"
    return HostRemoval(host, tuple(steps), tuple(kept), lock, paths.root,
                       take_lock=f.root_exists and bool(steps))


@dataclass
class FleetRemoval:
    app: str
    env: str
    hosts: list[HostRemoval]
    file_sd: str | None = None  # the Prometheus file_sd file whose groups of this env go

    @property
    def nothing(self) -> bool:
        return all(h.nothing for h in self.hosts) and self.file_sd is None

    def lines(self) -> list[str]:
        out = [f"remove {self.app} from {self.env}: {len(self.hosts)} host(s)"]
        for h in self.hosts:
            out += h.lines()
        if self.file_sd:
            out.append(f"here: prometheus targets of {self.env} out of {self.file_sd}")
        return out


def file_sd_left(groups: list[dict[str, Any]], env: str,
                 addresses: set[str]) -> list[dict[str, Any]]:
    """A file_sd file's groups without this env's targets on the removed hosts."""
    out = []
    for g in groups:
        labels = g.get("labels") or {}
        targets = [t for t in g.get("targets") or []
                   if not (labels.get("env") == env and str(t).rsplit(":", 1)[0] in addresses)]
        if targets:
            out.append({**g, "targets": targets})
    return out


# ---- applying it -------------------------------------------------------------------------
def removal_paths(env: Environment) -> Paths:
    from goship.deploy.host import local_base
    from goship.targets import kind

    base = env.config.deploy.base_path
    if kind(env).local and os.geteuid() != 0 and base == "/srv":
        base = local_base()  # where open_host puts a user's local deploy
    return Paths(base, env.config.app.name)


@dataclass
class Reached:
    t: Transport
    facts: HostFacts
    found: RemoveFacts
    address: str


def probe(t: Transport, env: Environment, paths: Paths, address: str) -> Reached:
    config = env.config
    facts = gather(t, paths.base, config.service_user)
    res = t.check(Cmd.of("sh", "-c", PROBE, "goship-remove-probe", paths.root,
                         config.app.name, config.service_user, paths.base), timeout=60)
    found = parse_probe(res.stdout, config.app.name, config.service_user, paths)
    return Reached(t, facts, found, address)


def apply_host(r: Reached, env: Environment, paths: Paths, plan: HostRemoval,
               consul_token: str | None = None) -> list[str]:
    """Run one host's steps in order; returns what was done, one phrase per step."""
    from goship.deploy.proxy import OwnNginx
    from goship.deploy.services import Supervisor
    from goship.targets import kind

    t, config = r.t, env.config
    done: list[str] = []
    for step in plan.steps:
        k = step.kind
        if k in ("nginx site", "nginx default site"):
            if k == "nginx default site" and any(x.kind == "nginx site" for x in plan.steps):
                done.append(step.line())
                continue  # done with the site: one nginx -t, one reload for both
            _nginx_sites(r, env, paths, plan)
        elif k == "stop nginx":
            own = OwnNginx(t, config, paths, lua=False)
            t.run(Cmd.of(*own.base(), "-s", "quit"))
            t.run(Cmd.of("sh", "-c", WAIT_GONE, "goship-wait-gone", own.pid_file, "30"),
                  timeout=40)
        elif k == "cancel standby stop":
            from goship.deploy.scripts import STANDBY_CANCEL

            for pid_file in step.what:
                t.run(Cmd.of("sh", "-c", STANDBY_CANCEL, "goship-standby-cancel", pid_file))
        elif k == "stop timers":
            t.run(Cmd.of("systemctl", "stop", *step.what), timeout=60)
            t.run(Cmd.of("systemctl", "reset-failed", *step.what))
        elif k == "stop and disable units":
            t.check(Cmd.of("systemctl", "stop", *step.what),
                    timeout=config.run.drain_timeout + 60)
            t.run(Cmd.of("systemctl", "disable", "--quiet", "--no-reload", *step.what))
            t.run(Cmd.of("systemctl", "reset-failed", *step.what))
        elif k == "stop and remove containers":
            from goship.deploy.docker import STOP

            wait = str(max(1, int(config.run.drain_timeout + 0.999)))
            t.check(Cmd.of("sh", "-c", STOP, "goship-stop", wait, *step.what),
                    timeout=config.run.drain_timeout + 60)
        elif k == "remove images":
            t.run(Cmd.of("docker", "image", "rm", *step.what), timeout=120)
        elif k == "stop supervisord":
            sup = Supervisor(t, config, paths, local=kind(env).local, as_user=None)
            t.run(sup.ctl("stop", "all"), timeout=config.run.drain_timeout + 60)
            t.run(sup.ctl("shutdown"), timeout=60)
            t.run(Cmd.of("sh", "-c", WAIT_GONE, "goship-wait-gone",
                         paths.join("run", "supervisord.pid"), "30"), timeout=40)
        elif k == "remove unit files":
            t.check(Cmd.of("rm", "-rf", "--", *step.what))
            t.check(Cmd.of("systemctl", "daemon-reload"))
        elif k in ("remove tmpfiles.d entry", "remove control socket dir",
                   "remove nginx access logs", "remove files", "remove sysusers.d entry"):
            t.check(Cmd.of("rm", "-rf", "--", *step.what), timeout=300)
        elif k == "delete user":
            res = t.run(Cmd.of("userdel", step.what[0]))
            if not res.ok:
                raise ApplyError(f"{t.name}: userdel {step.what[0]} failed: "
                                 f"{(res.stderr or res.stdout).strip()}")
        else:  # pragma: no cover (a step kind without an action is a bug)
            raise AssertionError(k)
        done.append(step.line())
    if config.consul.enabled and plan.steps:
        _consul_deregister(t, config, consul_token)
    # /run/goship stays while other apps use it; the root goes when nothing is kept in it.
    t.run(Cmd.of("rmdir", "--ignore-fail-on-non-empty", "/run/goship"))
    return done


def _consul_deregister(t: Transport, config: Config, token: str | None) -> None:
    """[consul] enabled: every instance of the app the host's agent holds leaves the
    catalog. An agent that does not answer does not stop a removal: it is said (Consul
    reaps them `deregister_after` after their checks fail)."""
    from goship.deploy import consul

    try:
        res = t.run(consul.services_query(config.consul.agent, token))
        if not res.ok:
            raise ApplyError(f"{t.name}: the Consul agent did not list its services: "
                             f"{(res.stdout + res.stderr).strip()}")
        consul.apply(t, config.consul.agent, consul.plan_remove(config, json.loads(res.stdout)),
                     "deregistration", token)
    except (ApplyError, ValueError) as e:
        ui.warn(str(e.message if isinstance(e, ApplyError) else e))


def _nginx_sites(r: Reached, env: Environment, paths: Paths, plan: HostRemoval) -> None:
    """The app's site out and, when the plan says so, Debian's default site back: one
    `nginx -t` and one reload, so the other apps' keepalive connections are closed once.
    A test that fails puts the app's site back and stops the removal there."""
    from goship.deploy.proxy import SystemNginx, _reason
    from goship.deploy.services import install_file
    from goship.render import kinds as kinds_

    t, app = r.t, env.config.app.name
    nginx = SystemNginx(t, env.config, paths, systemd=r.facts.systemd_pid1, lua=False)
    kinds = {s.kind: s for s in plan.steps}
    old = nginx.read_site() if "nginx site" in kinds else None
    # A path app's locations (in the server path apps share) name its site's log format.
    locations = kinds_.system_paths_files(env.config)[0] if env.config.proxy.path else None
    old_locations = t.run(Cmd.of("cat", locations)) if locations and old is not None else None
    if "nginx site" in kinds:
        t.check(Cmd.of("rm", "-f", "--", nginx.site_path, *([locations] if locations else [])))
    restored = None
    if "nginx default site" in kinds:
        dest = kinds["nginx default site"].what[0]
        t.check(Cmd.of("mv", "-f", "--", paths.join("nginx-default-site.off"), dest))
        restored = dest if dest.startswith("/etc/nginx/sites-enabled/") else None
    if not r.found.system_nginx:
        return
    problem = nginx.test()
    if problem and restored:
        # A clash nobody foresaw: Debian's site stays disabled rather than nginx broken.
        t.check(Cmd.of("mv", "-f", "--", restored,
                       f"/etc/nginx/sites-available/default.goship-{app}"))
        problem = nginx.test()
    if problem:
        if old is not None:
            install_file(t, nginx.site_path, old)
        if locations and old_locations is not None and old_locations.ok:
            install_file(t, locations, old_locations.stdout)
        raise ApplyError(f"{t.name}: nginx -t fails without {app}'s site, which is back in "
                         f"place; nothing else was changed: {_reason(problem)}")
    nginx.reload()


WAIT_GONE = r"""
# $1 pid file  $2 seconds: until the process of the pid file has exited
i=0; n=$(( $2 * 10 ))
while kill -0 "$(cat "$1" 2>/dev/null)" 2>/dev/null && [ $i -lt $n ]; do
  sleep 0.1; i=$((i + 1)); done
exit 0
"""

REMOVE_ROOT = r"""
# $1 app root, after the lock is released: the lock's guard file goes, then the root when
# nothing is kept in it (shared/ only holds kept data)
[ -e "$1/.lock" ] || rm -f "$1/.lock.guard"
rmdir "$1/shared" 2>/dev/null; rmdir "$1" 2>/dev/null; exit 0
"""


def confirm(app: str, env: str, where: str, ask: Callable[[str], str] | None,
            tty: bool | None) -> None:
    """The app's name typed back, on a terminal; else refused with nothing changed."""
    interactive = sys.stdin.isatty() if tty is None else tty
    if not interactive:
        raise UsageError(f"remove {app} from {env}: no terminal to confirm on, nothing was "
                         "changed", hint="pass --yes to remove without asking")
    answer = (ask or input)(f"Remove {app} from {where}? Type the app name to confirm: ")
    if answer.strip() != app:
        raise ApplyError(f"not confirmed (expected {app!r}): nothing was changed")


def remove(project: Project, env: Environment, *, yes: bool = False, dry_run: bool = False,
           purge_data: bool = False, force: bool = False,
           ask: Callable[[str], str] | None = None, tty: bool | None = None) -> int:
    """Plan, print, confirm, then remove. Returns the exit code."""
    if env.target.kubernetes is not None:
        from goship.kube.remove import remove as remove_from_cluster

        return remove_from_cluster(project, env, yes=yes, dry_run=dry_run, force=force,
                                   ask=ask, tty=tty)
    from goship.deploy.engine import parallel
    from goship.targets import addresses, transports

    config = env.config
    app = config.app.name
    paths = removal_paths(env)
    ts = transports(env)
    addrs = addresses(env)
    reached: list[Reached] = []
    try:
        results = parallel(list(zip(ts, addrs, strict=True)),
                           lambda ta: reached.append(probe(ta[0], env, paths, ta[1])),
                           config.deploy.concurrency)
        for (t, _), err in results:
            if err is None:
                continue
            if config.deploy.on_unreachable == "skip" and isinstance(err, GoshipError) and \
                    "cannot connect" in err.message:
                ui.warn(f"{t.name}: unreachable, skipped (deploy.on_unreachable = \"skip\")")
                continue
            raise err if isinstance(err, GoshipError) else ApplyError(f"{t.name}: {err}")
        order = {t.name: i for i, t in enumerate(ts)}
        reached.sort(key=lambda r: order[r.t.name])
        plans = [plan_host(r.t.name, app, config.service_user, paths, r.found,
                           purge_data=purge_data) for r in reached]
        sd = _file_sd_change(project, env, {r.address for r in reached})
        fleet_plan = FleetRemoval(app, env.name, plans, sd)
        for line in fleet_plan.lines():
            ui.out(line)
        from goship.deploy import lb

        balancer = lb.removal_lines(env)  # proxy.lb.hosts: the balancer's site goes too
        for line in balancer:
            ui.out(line)
        if dry_run:
            ui.info("dry run: nothing was changed")
            return 0
        if fleet_plan.nothing and not balancer:
            ui.out(f"nothing of {app} to remove on {env.name}")
            return 0
        if not yes:
            confirm(app, env.name, f"every host of {env.name} ({len(plans)} host(s))", ask,
                    tty)
        code = _apply(project, env, paths, reached, fleet_plan, force)
        if code == 0:
            for line in lb.uninstall(env):
                ui.out(line)
        return code
    finally:
        for t in ts:
            t.close()


def _apply(project: Project, env: Environment, paths: Paths, reached: list[Reached],
           plan: FleetRemoval, force: bool) -> int:
    from goship.deploy import consul
    from goship.deploy.engine import parallel

    token = consul.token_for(project, env)  # before the lock: it may run [secrets] commands
    by_host = {p.host: p for p in plan.hosts}
    lock = _lock(env, paths, [r for r in reached if by_host[r.t.name].take_lock], force)
    # A heartbeat as deploy's: a removal that outlasts deploy.lock_ttl (drains on many
    # hosts) must not look abandoned to a deploy started meanwhile.
    stop = threading.Event()
    interval = max(2.0, env.config.deploy.lock_ttl / 4)

    def beat() -> None:
        while not stop.wait(interval):
            lock.heartbeat()

    threading.Thread(target=beat, daemon=True).start()
    failed: list[str] = []
    removed: list[Reached] = []
    try:
        for note in lock.notes:
            ui.warn(note)

        def one(r: Reached) -> None:
            p = by_host[r.t.name]
            if p.nothing:
                return
            apply_host(r, env, paths, p, token)
            removed.append(r)

        for r, err in parallel(reached, one, env.config.deploy.concurrency):
            p = by_host[r.t.name]
            if err is not None:
                msg = err.message if isinstance(err, GoshipError) else \
                    f"{type(err).__name__}: {err}"
                failed.append(f"{r.t.name}: {msg}")
            elif p.nothing:
                ui.out(f"{r.t.name}: nothing to remove")
            else:
                kept = f"; kept {'; '.join(p.kept)}" if p.kept else ""
                ui.out(f"{r.t.name}: {env.config.app.name} removed ({len(p.steps)} step(s))"
                       f"{kept}")
    finally:
        stop.set()
        lock.release()
        for r in removed:
            r.t.run(Cmd.of("sh", "-c", REMOVE_ROOT, "goship-remove-root", paths.root))
    if plan.file_sd and not failed:
        _write_file_sd(project, env, {r.address for r in reached})
        ui.info(f"prometheus targets of {env.name} removed from {plan.file_sd}")
    if failed:
        ui.out(f"remove {env.config.app.name} {env.name} FAILED: {'; '.join(failed)}")
        return 1
    ui.out(f"remove {env.config.app.name} {env.name}: done on {len(removed)} host(s)")
    return 0


def _lock(env: Environment, paths: Paths, reached: list[Reached], force: bool) -> Lock:
    """The deploy's own lock on every host that has the app's root (taking it elsewhere
    would create the root): a running deploy makes remove refuse (exit 4)."""
    from goship.deploy.host import Host, Lock
    from goship.deploy.proxy import SystemNginx
    from goship.deploy.services import Systemd

    hosts = [Host(r.t, env, r.facts, paths, Systemd(r.t, env.config, paths),
                  SystemNginx(r.t, env.config, paths, systemd=True, lua=False), False)
             for r in reached]
    lock = Lock(hosts, f"goship remove {env.name}", force)
    lock.acquire()
    return lock


def _file_sd_path(project: Project, env: Environment) -> Path | None:
    target = env.config.metrics.file_sd
    return project.root / target if target else None


def _file_sd_groups(path: Path) -> list[dict[str, Any]] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return [g for g in data if isinstance(g, dict)] if isinstance(data, list) else None


def _file_sd_change(project: Project, env: Environment, addrs: set[str]) -> str | None:
    path = _file_sd_path(project, env)
    if path is None:
        return None
    groups = _file_sd_groups(path)
    if groups is None or file_sd_left(groups, env.name, addrs) == groups:
        return None
    return str(path)


def _write_file_sd(project: Project, env: Environment, addrs: set[str]) -> None:
    from goship.render.monitoring import write_file_sd

    path = _file_sd_path(project, env)
    groups = _file_sd_groups(path) if path else None
    if path is None or groups is None:
        return
    left = file_sd_left(groups, env.name, addrs)
    if left:
        write_file_sd(path, left)
    else:
        path.unlink(missing_ok=True)  # nothing of the app is left to scrape

