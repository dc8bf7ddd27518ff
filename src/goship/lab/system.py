"""Machine-side primitives the lab needs: commands, mounts, namespaces, processes."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from goship.errors import LabError, PrerequisiteError

SYSTEMD = Path("/lib/systemd/systemd")
TOOLS = {
    "ip": "iproute2", "unshare": "util-linux", "mount": "mount", "umount": "mount",
    "ssh-keygen": "openssh-client", "ssh": "openssh-client", "chroot": "coreutils",
}
HOST_BINARIES = {
    "/usr/sbin/sshd": "openssh-server", str(SYSTEMD): "systemd", "/usr/sbin/nginx": "nginx",
}
# What `goship lab up --install` installs: the tools above, and what each host runs (hosts
# boot from this machine's root). The Lua module: deploys switch and canaries shift without
# an nginx reload; iptables: the rule that lets bridge traffic past a Docker FORWARD drop.
PACKAGES = ("systemd", "openssh-server", "openssh-client", "nginx", "libnginx-mod-http-lua",
            "iproute2", "iptables", "util-linux", "mount", "coreutils")


def missing_packages(installed: Callable[[str], bool]) -> list[str]:
    """The lab's Debian packages `installed` says are absent, in PACKAGES order."""
    return [p for p in PACKAGES if not installed(p)]


def dpkg_installed(package: str) -> bool:
    res = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True,
                         text=True, check=False)
    return res.returncode == 0 and res.stdout.strip().endswith(" installed")


def install_packages(extra: tuple[str, ...] = ()) -> list[str]:
    """apt-get update + install of the lab's missing Debian packages (and `extra`: those of
    `up --kubernetes`); what it installed.
    Refuses with one line, changing nothing, when not root or not on Debian (apt-get)."""
    if os.geteuid() != 0:
        raise PrerequisiteError("installing the lab's Debian packages needs root",
                                hint="sudo goship lab up --install")
    if shutil.which("apt-get") is None or shutil.which("dpkg-query") is None:
        raise PrerequisiteError(
            "--install needs Debian's apt-get; install these packages with your system's "
            f"package manager: {' '.join((*PACKAGES, *extra))}")
    missing = missing_packages(dpkg_installed)
    missing += [p for p in extra if p not in missing and not dpkg_installed(p)]
    if not missing:
        return []
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"],
                 ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]):
        res = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=1800,
                             check=False)
        if res.returncode != 0:
            tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or ["?"]
            raise LabError(f"{' '.join(argv[:2])} failed ({res.returncode}): {tail[0]}")
    return missing


def require() -> None:
    """Root, Linux, namespaces and the tools; otherwise one line naming what is missing."""
    if platform.system() != "Linux":
        raise PrerequisiteError("the lab needs Linux (network, mount and PID namespaces)")
    if os.geteuid() != 0:
        raise PrerequisiteError("the lab needs root (namespaces, mounts, a bridge)",
                                hint="run it with sudo")
    for ns in ("net", "pid", "mnt", "uts"):
        if not Path(f"/proc/self/ns/{ns}").exists():
            raise PrerequisiteError(f"this kernel has no {ns} namespaces; the lab needs them")
    missing = [pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None]
    missing += [pkg for path, pkg in HOST_BINARIES.items() if not Path(path).exists()]
    if missing:
        pkgs = " ".join(sorted(set(missing)))
        raise PrerequisiteError(f"the lab needs packages that are not installed: {pkgs}",
                                hint=f"sudo goship lab up --install (or apt-get install -y "
                                     f"{pkgs})")


def sh(*argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                         check=False)
    if check and res.returncode != 0:
        raise LabError(f"`{' '.join(argv)}` failed: {res.stderr.strip() or res.stdout.strip()}")
    return res


def mounts_under(prefix: Path) -> list[str]:
    """Mount points at or below prefix, deepest first (the order to unmount them)."""
    found = []
    with open("/proc/self/mounts", encoding="utf-8") as f:
        for line in f:
            point = line.split()[1].replace("\\040", " ")
            if point == str(prefix) or point.startswith(str(prefix) + "/"):
                found.append(point)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def is_mountpoint(path: Path) -> bool:
    return str(path) in mounts_under(path)


def netns_exists(name: str) -> bool:
    return Path(f"/run/netns/{name}").exists()


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def netns_inode(name: str) -> int | None:
    try:
        return os.stat(f"/run/netns/{name}").st_ino
    except FileNotFoundError:
        return None


def processes_in_netns(name: str) -> list[int]:
    inode = netns_inode(name)
    if inode is None:
        return []
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}/ns/net").st_ino == inode:
                pids.append(int(entry))
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
    return pids


def _is_init(pid: int, inode: int | None) -> bool:
    """`pid` is PID 1 of its own PID namespace (the last NSpid field), in the netns."""
    try:
        if inode is not None and os.stat(f"/proc/{pid}/ns/net").st_ino != inode:
            return False
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    for line in status.splitlines():
        if line.startswith("NSpid:"):
            fields = line.split()[1:]
            return len(fields) > 1 and fields[-1] == "1"
    return False


def init_pid(netns: str) -> int | None:
    """The host's PID 1 as the machine sees it. The last one found is remembered: checking
    it again is three reads, scanning every process's netns is tens of ms (every command
    on a lab environment asks)."""
    from goship.lab.layout import LAB_DIR

    memo = LAB_DIR / f".init-{netns}"
    inode = netns_inode(netns)
    with contextlib.suppress(OSError, ValueError):
        pid = int(memo.read_text())
        if _is_init(pid, inode):
            return pid
    for pid in processes_in_netns(netns):
        if _is_init(pid, None):
            with contextlib.suppress(OSError):
                memo.write_text(str(pid))
            return pid
    return None


def end_ssh_clients(lab_dir: Path) -> None:
    """SSH clients of lab hosts on this machine end with the lab: a goship shell kept for
    the next command (transport/park.py) would otherwise wait for its keepalives to notice
    the host is gone. They are the `ssh` processes with the lab's key on their command line."""
    needle = str(lab_dir).encode() + b"/"
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if os.path.basename(argv[0]) == b"ssh" and any(needle in a for a in argv[1:]):
            with contextlib.suppress(OSError):
                os.kill(int(entry), signal.SIGTERM)


def kill_netns_processes(netns: str, timeout: float = 10) -> None:
    """Killing a PID namespace's init ends every process in it; the launcher follows."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = processes_in_netns(netns)
        if not pids:
            return
        init = init_pid(netns)
        for pid in [init] if init else pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    raise LabError(f"processes in {netns} survived SIGKILL: {processes_in_netns(netns)}")


CGROUP_ROOT = Path("/sys/fs/cgroup")
GENERIC_MOUNT_OPTS = {"rw", "ro", "relatime", "noatime", "nosuid", "nodev", "noexec"}


def cgroup_mounts() -> list[tuple[str, Path, str]]:
    """The machine's cgroup hierarchies: (fstype, mount point, controller options)."""
    found = []
    with open("/proc/self/mounts", encoding="utf-8") as f:
        for line in f:
            _, point, fstype, opts, *_ = line.split()
            if fstype in ("cgroup", "cgroup2") and point.startswith(str(CGROUP_ROOT) + "/"):
                keep = [o for o in opts.split(",") if o not in GENERIC_MOUNT_OPTS]
                found.append((fstype, Path(point), ",".join(keep)))
    return found


def host_cgroups(name: str) -> list[Path]:
    """Create the host's own cgroup in every hierarchy (LXC does the same): without it, two
    hosts' systemds share /system.slice/x.service, and stopping a unit on one host would
    kill the other host's processes."""
    dirs = []
    for fstype, point, _ in cgroup_mounts():
        parent = point / "goship-lab"
        d = parent / name
        d.mkdir(parents=True, exist_ok=True)
        if fstype == "cgroup" and (point / "cpuset.cpus").exists():
            for cg in (parent, d):  # a cpuset cgroup takes no task before cpus and mems
                for knob in ("cpuset.cpus", "cpuset.mems"):
                    if not (cg / knob).read_text().strip():
                        (cg / knob).write_text((point / knob).read_text())
        dirs.append(d)
    return dirs


def remove_host_cgroups(name: str, timeout: float = 10) -> None:
    """Remove the host's cgroups, deepest first. A cgroup whose last task is still being
    reaped refuses rmdir (EBUSY) for a moment: retry until the deadline."""
    deadline = time.monotonic() + timeout
    for _, point, _ in cgroup_mounts():
        d = point / "goship-lab" / name
        while d.exists():
            for sub in sorted((p for p in d.rglob("*") if p.is_dir()),
                              key=lambda p: len(p.parts), reverse=True):
                with contextlib.suppress(OSError):
                    sub.rmdir()
            with contextlib.suppress(OSError):
                d.rmdir()
            if not d.exists() or time.monotonic() > deadline:
                break
            time.sleep(0.05)


def remove_lab_cgroups() -> None:
    """The lab's parent cgroups, once no host is left in them."""
    for _, point, _ in cgroup_mounts():
        with contextlib.suppress(OSError):
            (point / "goship-lab").rmdir()
