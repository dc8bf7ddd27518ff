"""Facts about a host: one probe command, parsed by pure functions (tested as data)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from goship.command import Cmd
from goship.transport.base import Transport

# $1 = deploy base path, $2 = service user, $3 = 1 for systemd's state. One round trip
# gathers everything.
PROBE = r"""
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
# Shell builtins wherever they do: each process started here is paid on every host by every
# deploy, rollback and status.
set -f  # the listeners below are split into words, never globbed
echo @os; uname -sm
echo @pid1; { IFS= read -r comm < /proc/1/comm && printf '%s\n' "$comm"; } 2>/dev/null
# systemd's own state only for `goship doctor` ($3 = 1): a systemctl call costs the host
# milliseconds of CPU, on every host of every release.
echo @systemd; [ "$3" != 1 ] || systemctl is-system-running 2>/dev/null
# nginx's version only for doctor too (nginx -v is a heavy start); where it is, otherwise.
echo @nginx; if [ "$3" = 1 ]; then nginx -v 2>&1; else command -v nginx; fi
echo @lua; set +f; n=0
for f in /usr/lib/nginx/modules/*lua*; do [ -e "$f" ] && n=$((n + 1)); done
set -f; echo "$n"
echo @disk; p="$1"
while [ ! -e "$p" ] && [ "$p" != / ]; do p=${p%/*}; p=${p:-/}; done
df=$(df -Pk "$p"); printf '%s\n' "${df##*
}"
echo @user; id "$2" 2>&1
uid=; while read -r k v _; do [ "$k" = Uid: ] && uid=$v && break; done < /proc/self/status
echo @uid; echo "$uid"
echo @sudo
if [ "$uid" = 0 ]; then echo root
elif sudo -n true 2>/dev/null; then echo yes
else echo no; fi
echo @supervisord; command -v supervisord
echo @docker; command -v docker
echo @listen
if listen=$(ss -ltnpH 2>/dev/null); then printf '%s\n' "$listen"; else echo "no-ss"; fi
echo @units
# The unit (or other cgroup) of each listening process: "held by prometheus-node-exporter".
seen=" "
for w in $listen; do
  while :; do
    case $w in *pid=[0-9]*) ;; *) break ;; esac
    w=${w#*pid=}; pid=${w%%[!0-9]*}
    case $seen in *" $pid "*) continue ;; esac
    seen="$seen$pid "
    last=
    while IFS= read -r line; do last=$line; done 2>/dev/null < /proc/"$pid"/cgroup
    printf '%s %s\n' "$pid" "${last##*/}"
  done
done
set +f
echo @apps
# What every goship app's nginx site claims (several apps on one host): its claim line, or
# for a site written before claim lines, its header, listen and server_name.
# One grep for every site (a glob matching nothing stays a name grep cannot open).
grep -H -E -e '^# goship-claim: |: written by goship \(' -e '^ *listen [0-9]|^ *server_name ' \
  /etc/nginx/conf.d/goship-*.conf "$1"/*/run/site.conf 2>/dev/null
echo @end
"""


@dataclass(frozen=True)
class Listener:
    """A process listening on a TCP port of the host."""

    port: int
    process: str | None  # None: `ss` could not see the owner (another user's process)
    pid: int | None
    unit: str | None  # the systemd unit (or cgroup leaf) of that process

    def describe(self) -> str:
        name = (self.unit.removesuffix(".service") if self.unit and
                self.unit.endswith(".service") else self.process) or "an unknown process"
        return f"{name} (pid {self.pid})" if self.pid else name


SS_LOCAL = re.compile(r"^(?:\[(?P<v6>[^\]]*)\]|(?P<v4>[^\s]*?))(?:%\S+)?:(?P<port>\d+)$")
SS_USER = re.compile(r'\("(?P<name>[^"]*)",pid=(?P<pid>\d+)')


def parse_listeners(text: str, units: str = "") -> dict[int, Listener] | None:
    """`ss -ltnpH` lines (state, recv-q, send-q, local, peer, users) -> port -> listener.
    The first owner seen wins: IPv4 and IPv6 sockets of one process name the same."""
    if text.strip() == "no-ss":
        return None
    unit_of: dict[int, str] = {}
    for line in units.splitlines():
        num, _, unit = line.strip().partition(" ")
        if num.isdigit() and unit:
            unit_of[int(num)] = unit
    out: dict[int, Listener] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 5 or parts[0] != "LISTEN":
            continue
        m = SS_LOCAL.match(parts[3])
        if not m:
            continue
        port = int(m.group("port"))
        user = SS_USER.search(line)
        pid = int(user.group("pid")) if user else None
        listener = Listener(port, user.group("name") if user else None, pid,
                            unit_of.get(pid) if pid else None)
        known = out.get(port)
        if known is None or (known.pid is None and pid is not None):
            out[port] = listener
    return out


@dataclass(frozen=True)
class AppClaim:
    """What a goship app's nginx site on the host claims: where it listens, under which
    names and path, and what it runs (read from its site file's claim line)."""

    app: str
    listen: list[int]  # every port its server blocks listen on (HTTP, HTTPS)
    server_names: list[str]  # empty: the default server of those ports
    path: str | None
    release: str | None = None
    color: str | None = None
    ports: dict[str, list[int]] = field(default_factory=dict)
    file: str = ""


CLAIM_HEADER = re.compile(r"^# ([a-z0-9][a-z0-9-]*): written by goship "
                          r"\(release ([A-Za-z0-9._-]+), color (blue|green)\)")


def _ints(raw: object) -> list[int]:
    return [int(p) for p in raw if isinstance(p, int)] if isinstance(raw, list) else []


def parse_claims(text: str) -> list[AppClaim]:
    """The @apps section: `FILE:LINE` lines grep printed -> one claim per site file."""
    by_file: dict[str, list[str]] = {}
    for line in text.splitlines():
        path, sep, rest = line.partition(":")
        if sep and path.startswith("/"):
            by_file.setdefault(path, []).append(rest)
    out: list[AppClaim] = []
    for path, lines in by_file.items():
        claim = _claim_line(path, lines) or _claim_legacy(path, lines)
        if claim is not None:
            out.append(claim)
    return sorted(out, key=lambda c: c.app)


def _claim_line(path: str, lines: list[str]) -> AppClaim | None:
    for line in lines:
        if line.startswith("# goship-claim: "):
            try:
                d = json.loads(line.removeprefix("# goship-claim: "))
            except ValueError:
                return None
            if not isinstance(d, dict) or not isinstance(d.get("app"), str):
                return None
            ports = d.get("ports")
            raw_path = d.get("path")
            return AppClaim(
                app=d["app"], listen=_ints(d.get("listen")),
                server_names=[n for n in d.get("server_names") or [] if isinstance(n, str)],
                path=raw_path if isinstance(raw_path, str) else None,
                release=d.get("release") if isinstance(d.get("release"), str) else None,
                color=d.get("color") if isinstance(d.get("color"), str) else None,
                ports={c: _ints(v) for c, v in ports.items()} if isinstance(ports, dict)
                else {}, file=path)
    return None


def _claim_legacy(path: str, lines: list[str]) -> AppClaim | None:
    """A site written before claim lines: its header, listens and first server_name."""
    head = next((m for m in map(CLAIM_HEADER.match, lines) if m), None)
    if head is None:
        return None
    listen: list[int] = []
    names: list[str] = []
    for line in lines:
        words = line.strip().rstrip(";").split()
        if words[:1] == ["listen"] and len(words) > 1 and words[1].isdigit():
            if int(words[1]) not in listen:
                listen.append(int(words[1]))
        elif words[:1] == ["server_name"] and not names:
            names = [n for n in words[1:] if n != "_"]
    return AppClaim(app=head.group(1), listen=listen, server_names=names, path=None,
                    release=head.group(2), color=head.group(3), file=path)


@dataclass(frozen=True)
class HostFacts:
    os: str | None
    arch: str | None
    pid1: str | None
    systemd_state: str | None
    nginx_version: str | None  # None: not installed, or not asked (then see nginx_path)
    nginx_lua: bool
    free_kib: int | None
    free_path: str | None
    user_exists: bool
    uid: int | None
    privilege: str  # root | sudo | none
    supervisord: bool
    docker: bool
    # port -> who listens there; None when `ss` is missing (the preflight cannot look).
    listeners: dict[int, Listener] | None = None
    # what the goship apps' nginx sites on the host claim (this app's included)
    apps: list[AppClaim] = field(default_factory=list)
    nginx_path: str | None = None  # where nginx is, when its version was not asked

    @property
    def nginx_installed(self) -> bool:
        return self.nginx_version is not None or self.nginx_path is not None

    @property
    def systemd_pid1(self) -> bool:
        return self.pid1 == "systemd"


def probe_cmd(base_path: str, user: str, *, full: bool = False) -> Cmd:
    return Cmd.of("sh", "-c", PROBE, "goship-probe", base_path, user,
                  "1" if full else "0")


def sections(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("@") and re.fullmatch(r"@[a-z0-9]+", line.strip()):
            current = line.strip()[1:]
            out[current] = ""
        elif current is not None:
            out[current] += line + "\n"
    return {k: v.strip() for k, v in out.items()}


ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "i386": "386",
          "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def parse_uname(text: str) -> tuple[str | None, str | None]:
    parts = text.split()
    if len(parts) != 2:
        return None, None
    return parts[0].lower(), ARCHES.get(parts[1], parts[1])


NGINX_VERSION = re.compile(r"nginx version:\s*\S*?/(\d+\.\d+\.\d+)")


def parse_nginx_version(text: str) -> str | None:
    m = NGINX_VERSION.search(text)
    return m.group(1) if m else None


def parse_df(line: str) -> tuple[int | None, str | None]:
    """`df -Pk` data line: filesystem, 1024-blocks, used, available, capacity, mounted on."""
    parts = line.split()
    if len(parts) < 6 or not parts[3].isdigit():
        return None, None
    return int(parts[3]), parts[5]


def parse_facts(text: str) -> HostFacts:
    s = sections(text)
    os_, arch = parse_uname(s.get("os", ""))
    free, mount = parse_df(s.get("disk", ""))
    uid = s.get("uid", "")
    return HostFacts(
        os=os_, arch=arch,
        pid1=s.get("pid1") or None,
        systemd_state=s.get("systemd") or None,
        nginx_version=parse_nginx_version(s.get("nginx", "")),
        nginx_path=s.get("nginx", "").strip() if s.get("nginx", "").startswith("/") else None,
        nginx_lua=s.get("lua", "0").strip() not in ("", "0"),
        free_kib=free, free_path=mount,
        user_exists=s.get("user", "").startswith("uid="),
        uid=int(uid) if uid.isdigit() else None,
        privilege={"root": "root", "yes": "sudo"}.get(s.get("sudo", ""), "none"),
        supervisord=bool(s.get("supervisord")),
        docker=bool(s.get("docker")),
        listeners=parse_listeners(s.get("listen", "no-ss"), s.get("units", "")),
        apps=parse_claims(s.get("apps", "")),
    )


def gather(t: Transport, base_path: str, user: str, *,
           full: bool = False) -> HostFacts:
    """`full`: also systemd's own state (`systemctl is-system-running`) and nginx's
    version, which only doctor shows."""
    res = t.check(probe_cmd(base_path, user, full=full), timeout=30)
    return parse_facts(res.stdout)
