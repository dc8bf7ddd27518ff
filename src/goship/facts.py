"""Facts about a host: one probe command, parsed by pure functions (tested as data)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from goship.command import Cmd
from goship.transport.base import Transport

# $1 = deploy base path, $2 = service user. One round trip gathers everything.
PROBE = r"""
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
echo @os; uname -sm
echo @pid1; cat /proc/1/comm 2>/dev/null
echo @systemd; systemctl is-system-running 2>/dev/null
echo @nginx; nginx -v 2>&1 | head -1
echo @lua; ls /usr/lib/nginx/modules 2>/dev/null | grep -c lua
echo @disk; p="$1"
while [ ! -e "$p" ] && [ "$p" != / ]; do p=$(dirname "$p"); done
df -Pk "$p" | tail -1
echo @user; id "$2" 2>&1
uid=$(id -u); echo @uid; echo "$uid"
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
# Read with shell builtins: every command forked here is paid by every deploy and rollback.
for pid in $(printf '%s\n' "$listen" | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u); do
  last=
  while IFS= read -r line; do last=$line; done 2>/dev/null < /proc/"$pid"/cgroup
  printf '%s %s\n' "$pid" "${last##*/}"
done
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
class HostFacts:
    os: str | None
    arch: str | None
    pid1: str | None
    systemd_state: str | None
    nginx_version: str | None
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

    @property
    def systemd_pid1(self) -> bool:
        return self.pid1 == "systemd"


def probe_cmd(base_path: str, user: str) -> Cmd:
    return Cmd.of("sh", "-c", PROBE, "goship-probe", base_path, user)


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
        nginx_lua=s.get("lua", "0").strip() not in ("", "0"),
        free_kib=free, free_path=mount,
        user_exists=s.get("user", "").startswith("uid="),
        uid=int(uid) if uid.isdigit() else None,
        privilege={"root": "root", "yes": "sudo"}.get(s.get("sudo", ""), "none"),
        supervisord=bool(s.get("supervisord")),
        docker=bool(s.get("docker")),
        listeners=parse_listeners(s.get("listen", "no-ss"), s.get("units", "")),
    )


def gather(t: Transport, base_path: str, user: str) -> HostFacts:
    res = t.check(probe_cmd(base_path, user), timeout=30)
    return parse_facts(res.stdout)
